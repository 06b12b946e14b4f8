"""A short-lived, per-process cache of who a caller is, so requests skip the database.

Without it every authenticated request loads the user (or the API key) and the user's campaign
scope from SQL, and holds a pooled connection from authentication to the response.

What is cached, for :data:`AUTH_CACHE_S` seconds (process-local monotonic time):

- per **user id**: username, role and the campaign scope (``user_campaigns``), loaded with a
  short session of its own that is closed at once;
- per **API key** (keyed by the SHA-256 of the presented key): the resulting principal.

What is *not* cached: the web session itself. Each request still reads its session hash from
Redis (one round trip), so logout, expiry and "sign out
everywhere" (password, role or active changes) take effect at once, in every API process.

Invalidation:

- **Auth epoch**: every change made through the API that affects a principal (user edit,
  deactivation, campaign assignment, a supervisor creating a campaign, API key revocation)
  increments a Redis counter (:func:`epoch_key`) and clears the local cache, so it applies at
  once in that process. Every process re-reads the counter at most every
  :data:`EPOCH_CHECK_S` and reloads entries cached under another epoch, so the change
  applies within that time in the other API processes.
- **TTL**: changes made behind the API's back (SQL by hand) apply within
  :data:`AUTH_CACHE_S`. Keep it small.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis

from api.auth import Principal
from dialer.db.models import Role
from dialer.redis_keys import Keys

#: Seconds a cached principal is reused (a revoked key or disabled user changed outside the
#: API stops working within this time; through the API it stops at once).
AUTH_CACHE_S = 5.0
#: The shared epoch is re-read from Redis at most this often per process (changes made through
#: another API process apply here within this time; through this process, at once).
EPOCH_CHECK_S = 0.5
#: Bound on cached entries per kind (oldest dropped first).
AUTH_CACHE_MAX = 10_000

V = TypeVar("V")


def epoch_key(keys: Keys) -> str:
    """Redis counter bumped on every principal-affecting change made through the API."""
    return f"{keys.prefix}:api:auth_epoch"


def api_key_digest(raw: str) -> str:
    return hashlib.sha256(raw.strip().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CachedUser:
    """What authentication needs from the ``users`` and ``user_campaigns`` rows."""

    user_id: int
    username: str
    full_name: str
    extension: str | None
    role: Role
    #: Campaign ids the user is assigned to; None for admins (every campaign).
    campaigns: frozenset[int] | None


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    epoch: str
    expires: float


class _TtlMap(Generic[V]):
    def __init__(self, ttl_s: float, monotonic: Callable[[], float], max_entries: int) -> None:
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._max = max_entries
        self._data: dict[object, _Entry[V]] = {}

    def get(self, key: object, epoch: str) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.epoch != epoch or self._monotonic() >= entry.expires:
            del self._data[key]
            return None
        return entry.value

    def put(self, key: object, value: V, epoch: str) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._data) >= self._max:
            self._data.pop(next(iter(self._data)))
        self._data.pop(key, None)
        self._data[key] = _Entry(value, epoch, self._monotonic() + self.ttl_s)

    def drop(self, key: object) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class AuthCache:
    """Users by id and API-key principals by key digest, each tagged with the auth epoch."""

    def __init__(
        self,
        ttl_s: float = AUTH_CACHE_S,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_entries: int = AUTH_CACHE_MAX,
    ) -> None:
        self.users: _TtlMap[CachedUser] = _TtlMap(ttl_s, monotonic, max_entries)
        self.api_keys: _TtlMap[Principal] = _TtlMap(ttl_s, monotonic, max_entries)
        self._loading: dict[tuple[int, str], asyncio.Future[CachedUser | None]] = {}
        self._monotonic = monotonic
        self._epoch = "0"
        self._epoch_at: float | None = None

    async def epoch(self, redis: aioredis.Redis, keys: Keys) -> str:
        """The shared auth epoch, re-read at most every :data:`EPOCH_CHECK_S`."""
        now = self._monotonic()
        if self._epoch_at is None or now - self._epoch_at >= EPOCH_CHECK_S:
            self._epoch = await read_epoch(redis, keys)
            self._epoch_at = now
        return self._epoch

    def set_epoch(self, epoch: str) -> None:
        self._epoch = epoch
        self._epoch_at = self._monotonic()

    async def load_user(
        self,
        user_id: int,
        epoch: str,
        load: Callable[[], Coroutine[Any, Any, CachedUser | None]],
    ) -> CachedUser | None:
        """``load()`` once for concurrent misses of the same user (and epoch); cache the row."""
        key = (user_id, epoch)
        future = self._loading.get(key)
        if future is None:

            async def run() -> CachedUser | None:
                try:
                    user = await load()
                    if user is not None:
                        self.users.put(user_id, user, epoch)
                    return user
                finally:
                    self._loading.pop(key, None)

            future = self._loading[key] = asyncio.ensure_future(run())
        # shield: a caller that goes away does not cancel the load for the others
        return await asyncio.shield(future)

    def clear(self) -> None:
        self.users.clear()
        self.api_keys.clear()


async def read_epoch(redis: aioredis.Redis, keys: Keys) -> str:
    value = await redis.get(epoch_key(keys))
    return str(value or "0")


async def invalidate(redis: aioredis.Redis, keys: Keys, cache: AuthCache | None) -> None:
    """Call after committing a change to users, their campaigns or API keys."""
    epoch = await redis.incr(epoch_key(keys))
    if cache is not None:
        cache.clear()
        cache.set_epoch(str(epoch))
