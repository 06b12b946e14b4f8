"""Per-process, per-campaign answer cache for the dashboard endpoints (``/live``, ``/today``,
``/stats``): a hundred open dashboards cost one computation per campaign and interval.

Entries live on ``app.state.live_cache`` as ``(kind, campaign_id) -> (monotonic time, value)``.
Concurrent misses for the same key wait for one computation (single flight). Callers check
access *before* using the cache. Changes made through this API process (campaign edits and
lifecycle) drop the campaign's entries at once (:func:`forget`); anything else shows within the
TTL (``app.state.live_cache_s``, default :data:`LIVE_CACHE_S`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

#: Seconds a computed answer is reused (per API process and campaign).
LIVE_CACHE_S = 0.5

T = TypeVar("T")


def _store(state: Any) -> dict[tuple[str, int], tuple[float, Any]]:
    cache: dict[tuple[str, int], tuple[float, Any]] | None = getattr(state, "live_cache", None)
    if cache is None:
        cache = {}
        state.live_cache = cache
    return cache


def _locks(state: Any) -> dict[tuple[str, int], asyncio.Lock]:
    locks: dict[tuple[str, int], asyncio.Lock] | None = getattr(state, "live_locks", None)
    if locks is None:
        locks = {}
        state.live_locks = locks
    return locks


def cache_ttl(state: Any) -> float:
    return float(getattr(state, "live_cache_s", LIVE_CACHE_S))


def peek(state: Any, kind: str, campaign_id: int, ttl: float) -> Any | None:
    """The fresh cached value, or None."""
    hit = _store(state).get((kind, campaign_id))
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]
    return None


async def cached(
    state: Any, kind: str, campaign_id: int, ttl: float, compute: Callable[[], Awaitable[T]]
) -> T:
    """The cached answer if fresh; else ``compute()`` once (concurrent callers wait for it)."""
    hit = peek(state, kind, campaign_id, ttl)
    if hit is not None:
        return cast(T, hit)
    key = (kind, campaign_id)
    async with _locks(state).setdefault(key, asyncio.Lock()):
        hit = peek(state, kind, campaign_id, ttl)
        if hit is not None:
            return cast(T, hit)
        t = time.monotonic()
        value = await compute()
        _store(state)[key] = (t, value)
        return value


def forget(state: Any, campaign_id: int) -> None:
    """Drop every cached answer about one campaign (after changing it)."""
    store = _store(state)
    for key in [k for k in store if k[1] == campaign_id]:
        del store[key]
