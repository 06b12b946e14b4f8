"""Async engine and session factory, built from settings (never at import time)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from dialer.settings import Settings


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """Create the async engine for the configured database.

    SQLite gets WAL, foreign keys and a busy timeout, so that several processes (dialer, api,
    whatsapp worker) can share the embedded file safely.
    """
    db_url = url or settings.database_url
    kwargs: dict[str, Any] = {"echo": settings.database.echo}
    if is_sqlite(db_url):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = settings.database.pool_size
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(db_url, **kwargs)
    if is_sqlite(db_url):
        _install_sqlite_pragmas(engine)
    return engine


def _install_sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
