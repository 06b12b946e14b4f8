"""``marcador user create`` and ``marcador apikey create``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from dialer.cli import app as cli
from dialer.db.models import ApiKey, AuditLog, Role, User
from dialer.settings import Settings


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MARCADOR_DATABASE__URL", settings.database_url)
    monkeypatch.setenv("MARCADOR_DATA_DIR", str(settings.data_dir))
    saved = structlog.get_config()
    try:
        yield
    finally:  # the CLI configures logging to CliRunner's (then closed) stderr
        structlog.configure(**saved)


async def test_user_and_key_create(
    env: None, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    runner = CliRunner()
    r = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["user", "create", "--username", "jefe", "--role", "admin", "--password-stdin"],
        input="una clave muy larga\n",
    )
    assert r.exit_code == 0, r.output
    assert "una clave muy larga" not in r.output
    r = await asyncio.to_thread(
        runner.invoke, cli, ["user", "create", "--username", "ag1", "--role", "agent", "--generate"]
    )
    assert r.exit_code == 0, r.output
    assert "shown once" in r.output
    r = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["user", "create", "--username", "jefe", "--role", "admin", "--generate"],
    )
    assert r.exit_code == 1
    r = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["user", "create", "--username", "x1", "--role", "agent", "--password-stdin"],
        input="short\n",
    )
    assert r.exit_code == 2
    r = await asyncio.to_thread(
        runner.invoke, cli, ["apikey", "create", "--name", "dms", "--scopes", "appointments:write"]
    )
    assert r.exit_code == 0, r.output
    printed_key = r.output.split("Key (shown once): ")[1].split()[0]
    r = await asyncio.to_thread(
        runner.invoke, cli, ["apikey", "create", "--name", "bad", "--scopes", "root"]
    )
    assert r.exit_code == 2
    async with sessionmaker() as s:
        users = {u.username: u for u in await s.scalars(sa.select(User))}
        assert users["jefe"].role is Role.ADMIN
        assert users["jefe"].password_hash.startswith("$argon2")
        key = await s.scalar(sa.select(ApiKey))
        assert key is not None and key.scopes == {"scopes": ["appointments:write"]}
        assert printed_key.startswith(f"mk_{key.prefix}_")
        assert printed_key.split("_", 2)[2] not in key.key_hash
        actors = set(await s.scalars(sa.select(AuditLog.actor)))
    assert actors == {"cli"}
