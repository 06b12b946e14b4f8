"""Per-process answer cache for the dashboard endpoints (``/live``, ``/today``, ``/stats``)
and the agent screen's campaign list: a hundred open dashboards cost one computation per
campaign and interval, and a cache hit costs neither a database connection nor a JSON encoding
(the body is stored encoded).

- **Fresh** (younger than the TTL, ``app.state.live_cache_s``, default :data:`LIVE_CACHE_S`):
  served as is.
- **Stale** (up to :data:`MAX_STALE_S` past the TTL): served as is while one background task
  recomputes it, so no request waits for the SQL behind the dashboard.
- **Older** while that refresh is still running (up to :data:`MAX_REFRESHING_S`): served as is
  (waiting would only wait for the same refresh).
- **Older, or missing, or TTL 0**: computed in the request; concurrent misses for the same key
  wait for one computation (single flight).

Computations must use a database session of their own (the background refresh outlives the
request). Callers check access *before* using the cache. Changes made through this API process
(campaign edits and lifecycle) drop the campaign's entries at once (:func:`forget`); anything
else shows within the TTL plus one computation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from dialer.logging import get_logger

log = get_logger(__name__)

#: Seconds a computed answer is reused (per API process and campaign).
LIVE_CACHE_S = 0.5
#: How long past the TTL a stale answer may still be served while it is being refreshed.
MAX_STALE_S = 5.0
#: While a refresh is running (the machine is slow), the last answer is served up to this long
#: past the TTL instead of making every request wait for that same refresh.
MAX_REFRESHING_S = 30.0
#: ``/stats`` changes slowly (lead counts, abandon rates): at least this TTL (unless TTL 0).
STATS_CACHE_S = 2.0
#: Kind prefix of cached campaign lists (key ``(CAMPAIGN_LIST + scope, 0)``); any campaign
#: change drops them all.
CAMPAIGN_LIST = "campaigns:"

Key = tuple[str, int]
_monotonic = time.monotonic  # tests replace it
Compute = Callable[[], Awaitable[BaseModel]]


@dataclass(frozen=True, slots=True)
class Entry:
    at: float  # monotonic time the computation started
    value: BaseModel
    body: bytes  # value as JSON

    def response(self) -> Response:
        return Response(self.body, media_type="application/json")


def _store(state: Any) -> dict[Key, Entry]:
    cache: dict[Key, Entry] | None = getattr(state, "live_cache", None)
    if cache is None:
        cache = {}
        state.live_cache = cache
    return cache


def _locks(state: Any) -> dict[Key, asyncio.Lock]:
    locks: dict[Key, asyncio.Lock] | None = getattr(state, "live_locks", None)
    if locks is None:
        locks = {}
        state.live_locks = locks
    return locks


def _refreshing(state: Any) -> dict[Key, asyncio.Task[None]]:
    tasks: dict[Key, asyncio.Task[None]] | None = getattr(state, "live_refreshing", None)
    if tasks is None:
        tasks = {}
        state.live_refreshing = tasks
    return tasks


def cache_ttl(state: Any) -> float:
    return float(getattr(state, "live_cache_s", LIVE_CACHE_S))


async def _compute(state: Any, key: Key, compute: Compute) -> Entry:
    t = _monotonic()
    value = await compute()
    entry = Entry(t, value, value.model_dump_json().encode())
    _store(state)[key] = entry
    return entry


async def _refresh(state: Any, key: Key, compute: Compute) -> None:
    try:
        async with _locks(state).setdefault(key, asyncio.Lock()):
            await _compute(state, key, compute)
    except Exception as exc:  # the stale answer stays; the next request tries again
        log.warning("live_cache_refresh_failed", kind=key[0], campaign=key[1], error=repr(exc))
    finally:
        _refreshing(state).pop(key, None)


async def cached(state: Any, kind: str, campaign_id: int, ttl: float, compute: Compute) -> Entry:
    """The cached answer (see the module docstring for fresh / stale / computed)."""
    key = (kind, campaign_id)
    hit = _store(state).get(key)
    now = _monotonic()
    if hit is not None and now - hit.at < ttl:
        return hit
    if hit is not None and ttl > 0:
        refreshing = _refreshing(state)
        age = now - hit.at
        if age < ttl + MAX_STALE_S or (key in refreshing and age < ttl + MAX_REFRESHING_S):
            if key not in refreshing:
                task = asyncio.create_task(_refresh(state, key, compute), name=f"refresh-{kind}")
                refreshing[key] = task
            return hit
    async with _locks(state).setdefault(key, asyncio.Lock()):
        hit = _store(state).get(key)
        if hit is not None and _monotonic() - hit.at < ttl:
            return hit
        return await _compute(state, key, compute)


def forget(state: Any, campaign_id: int) -> None:
    """Drop every cached answer about one campaign (after changing it)."""
    store = _store(state)
    for key in [k for k in store if k[1] == campaign_id or k[0].startswith(CAMPAIGN_LIST)]:
        del store[key]


async def close(state: Any) -> None:
    """Cancel refreshes still running (app shutdown)."""
    tasks = list(_refreshing(state).values())
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
