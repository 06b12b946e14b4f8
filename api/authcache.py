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
  :data:`AUTH_CACHE_S`. Keep it small. A user used past :data:`REFRESH_AHEAD` of the TTL is
  reloaded in the background while the still-valid entry answers, batched with the other
  users ageing within :data:`REFRESH_BATCH_S` (two queries for all of them), so users who keep
  calling the API never wait for a reload and cost no query each (the bound holds: no entry
  outlives its TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis

from api.auth import Principal
from dialer.db.models import Role
from dialer.logging import get_logger
from dialer.redis_keys import Keys

log = get_logger(__name__)

#: Seconds a cached principal is reused (a revoked key or disabled user changed outside the
#: API stops working within this time; through the API it stops at once).
AUTH_CACHE_S = 5.0
#: The shared epoch is re-read from Redis at most this often per process (changes made through
#: another API process apply here within this time; through this process, at once).
EPOCH_CHECK_S = 0.5
#: Bound on cached entries per kind (oldest dropped first).
AUTH_CACHE_MAX = 10_000
#: A cached user used after this share of the TTL is reloaded in the background (the request
#: is answered from the entry, which is still valid), so users who call the API more often
#: than the TTL (every agent screen polls ``/agent/me``) never wait for the reload.
REFRESH_AHEAD = 0.5
#: Users found ageing within this many seconds are reloaded together (two queries per batch).
REFRESH_BATCH_S = 0.5

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


#: Loads several users at once: ``{user_id: user}`` for the active ones among the ids.
LoadMany = Callable[[list[int]], Coroutine[Any, Any, dict[int, CachedUser]]]


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

    def ageing(self, key: object, share: float) -> bool:
        """True if the entry exists and more than ``share`` of its TTL has passed."""
        entry = self._data.get(key)
        return entry is not None and entry.expires - self._monotonic() < self.ttl_s * (1 - share)

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
        #: Users queued for the next background reload, and that reload.
        self._ageing: set[int] = set()
        self._batch: asyncio.Task[None] | None = None
        self.batch_s = REFRESH_BATCH_S
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests: a gate
        self._monotonic = monotonic
        self._epoch = "0"
        self._epoch_at: float | None = None
        self._epoch_read: asyncio.Future[str] | None = None

    async def epoch(self, redis: aioredis.Redis, keys: Keys) -> str:
        """The shared auth epoch, re-read at most every :data:`EPOCH_CHECK_S`."""
        now = self._monotonic()
        if self._epoch_at is not None and now - self._epoch_at < EPOCH_CHECK_S:
            return self._epoch
        if self._epoch_read is not None:  # one read at a time; the others use the last value
            if self._epoch_at is not None:
                return self._epoch
            return await asyncio.shield(self._epoch_read)
        self._epoch_read = asyncio.ensure_future(read_epoch(redis, keys))
        try:
            epoch = await asyncio.shield(self._epoch_read)
        finally:
            self._epoch_read = None
        if self._epoch_at is None or self._epoch_at <= now:  # not set meanwhile (set_epoch)
            self._epoch, self._epoch_at = epoch, now
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

    def refresh_ahead(self, user_id: int, epoch: str, load_many: LoadMany) -> bool:
        """Queue a cached user past :data:`REFRESH_AHEAD` of its TTL for the next batched
        background reload (:data:`REFRESH_BATCH_S`); True if it is queued."""
        if user_id in self._ageing:
            return True
        if not self.users.ageing(user_id, REFRESH_AHEAD):
            return False
        self._ageing.add(user_id)
        if self._batch is None:
            self._batch = asyncio.create_task(self._reload(epoch, load_many), name="auth-reload")
        return True

    async def _reload(self, epoch: str, load_many: LoadMany) -> None:
        """Reload the queued users in one go (one query for all, not per user)."""
        try:
            await self.sleep(self.batch_s)  # users ageing meanwhile join this batch
            ids, self._ageing = self._ageing, set()
            users = await load_many(sorted(ids))
            for user_id in ids:
                user = users.get(user_id)
                if user is None:
                    self.users.drop(user_id)  # disabled or deleted: at once
                else:
                    self.users.put(user_id, user, epoch)
        except Exception as exc:  # the entries stay valid until their TTL
            log.warning("auth_cache_reload_failed", error=repr(exc))
            self._ageing.clear()
        finally:
            self._batch = None
            if self._ageing:  # queued while this batch was loading: the next batch
                self._batch = asyncio.create_task(self._reload(epoch, load_many))

    async def close(self) -> None:
        """Cancel a background reload (app shutdown)."""
        task, self._batch = self._batch, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
