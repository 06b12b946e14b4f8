"""The live event feed: the per-process broadcaster (fan-out, per-role filtering, slow clients,
reader restarts, resume) and the SSE route's auth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import httpx
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from api.auth import ROLE_SCOPES, Principal, Scope
from api.events import RETRY_HINT, Broadcaster
from dialer.db.models import Role
from dialer.redis_client import Streams
from dialer.redis_keys import Keys

#: Safety net so a broken broadcaster fails the test instead of hanging it (not a timing check).
GUARD_S = 20.0
NEVER = 3600.0  # no keep-alive comments during a test


def _principal(role: Role, user_id: int) -> Principal:
    return Principal(
        kind="session",
        actor=f"user:{user_id}",
        scopes=ROLE_SCOPES[role],
        user_id=user_id,
        role=role,
    )


ADMIN_KEY = Principal(kind="api_key", actor="apikey:x", scopes=frozenset({Scope.EVENTS_READ}))


def _broadcaster(redis: aioredis.Redis | Any, keys: Keys, **kw: Any) -> Broadcaster:
    kw.setdefault("block_ms", 50)
    kw.setdefault("coalesce_s", 0.0)
    return Broadcaster(cast(aioredis.Redis, redis), keys, **kw)


async def _subscribe(
    b: Broadcaster,
    principal: Principal,
    campaigns: frozenset[int] | None,
    last_id: str | None = None,
) -> AsyncGenerator[bytes, None]:
    """An SSE body, advanced past the retry hint: the subscription is registered."""
    gen = b.events(principal, campaigns, last_id, heartbeat_s=NEVER)
    assert await anext(gen) == RETRY_HINT
    return gen


async def _take(gen: AsyncIterator[bytes], n: int) -> list[tuple[str, str]]:
    """The next ``n`` events as ``(id, type)``, in order."""
    out: list[tuple[str, str]] = []
    async with asyncio.timeout(GUARD_S):
        while len(out) < n:
            chunk = (await anext(gen)).decode()
            for block in chunk.split("\n\n"):
                lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                if "id" in lines:
                    out.append((lines["id"], lines["event"]))
    assert len(out) == n, out
    return out


async def test_events_filtered_per_role(redis: aioredis.Redis, keys: Keys) -> None:
    b = _broadcaster(redis, keys)
    agent1 = await _subscribe(b, _principal(Role.AGENT, 1), frozenset({10}))
    sup = await _subscribe(b, _principal(Role.SUPERVISOR, 5), frozenset({10}))
    admin = await _subscribe(b, ADMIN_KEY, None)
    s = Streams(redis)
    await s.add(keys.events_stream, "agent_state", {"agent_id": 1, "campaign_id": "10"})
    await s.add(keys.events_stream, "screen_pop", {"agent_id": 2, "campaign_id": 20})
    await s.add(keys.events_stream, "call_ended", {"campaign_id": 10, "outcome": "busy"})
    await s.add(keys.events_stream, "marker", {"agent_id": 1, "campaign_id": 10})
    try:
        assert [t for _, t in await _take(agent1, 2)] == ["agent_state", "marker"]
        assert [t for _, t in await _take(sup, 3)] == ["agent_state", "call_ended", "marker"]
        assert [t for _, t in await _take(admin, 4)] == [
            "agent_state",
            "screen_pop",
            "call_ended",
            "marker",
        ]
        assert b.reads >= 1
    finally:
        for gen in (agent1, sup, admin):
            await gen.aclose()
        await b.close()
    assert not b.subscribers


class CountingRedis:
    """Delegates to a real client, counting XREAD calls."""

    def __init__(self, real: aioredis.Redis) -> None:
        self.real = real
        self.xreads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        self.xreads += 1
        return await self.real.xread(*args, **kwargs)


async def test_fan_out_reads_once_for_many_subscribers(redis: aioredis.Redis, keys: Keys) -> None:
    counting = CountingRedis(redis)
    # A long block: no idle XREADs during the test, so every call carried events.
    b = _broadcaster(counting, keys, block_ms=10_000)
    subs = [await _subscribe(b, ADMIN_KEY, None) for _ in range(60)]
    s = Streams(redis)
    ids = [await s.add(keys.events_stream, "tick", {"n": n, "campaign_id": 1}) for n in range(25)]
    try:
        for gen in subs:
            assert [i for i, _ in await _take(gen, 25)] == ids
        # One reader for the 60 clients: at most one XREAD per event (a per-client reader
        # would need at least 60), plus the one still blocked.
        assert counting.xreads <= 26
        assert b.delivered == 60 * 25
    finally:
        for gen in subs:
            await gen.aclose()
        await b.close()


async def test_slow_subscriber_does_not_block_others(redis: aioredis.Redis, keys: Keys) -> None:
    b = _broadcaster(redis, keys, queue_size=3)
    slow = await _subscribe(b, ADMIN_KEY, None)  # never read until the end
    fast = await _subscribe(b, ADMIN_KEY, None)
    s = Streams(redis)
    ids = []
    try:
        for n in range(10):
            ids.append(await s.add(keys.events_stream, "tick", {"n": n}))
            assert (await _take(fast, 1))[0][0] == ids[-1]
        lagging = [sub.lagging for sub in b.subscribers]
        assert sorted(lagging) == [False, True]  # the slow one overflowed; the fast one did not
        # The slow client then gets everything, in order, with nothing lost or repeated:
        # what was queued, then the rest straight from Redis.
        assert [i for i, _ in await _take(slow, 10)] == ids
        ids.append(await s.add(keys.events_stream, "tick", {"n": 10}))
        assert (await _take(slow, 1))[0][0] == ids[-1]  # and is fed live again
        assert (await _take(fast, 1))[0][0] == ids[-1]
    finally:
        for gen in (slow, fast):
            await gen.aclose()
        await b.close()


class FlakyRedis:
    """Delegates to a real client; the first ``fail`` XREADs raise a connection error."""

    def __init__(self, real: aioredis.Redis, fail: int) -> None:
        self.real = real
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail > 0:
            self.fail -= 1
            raise RedisConnectionError("connection lost")
        return await self.real.xread(*args, **kwargs)


async def test_reader_restarts_after_redis_error(redis: aioredis.Redis, keys: Keys) -> None:
    flaky = FlakyRedis(redis, fail=2)
    b = _broadcaster(flaky, keys, retry_s=0.0)
    gen = await _subscribe(b, ADMIN_KEY, None)
    s = Streams(redis)
    first = await s.add(keys.events_stream, "tick", {"n": 1})
    second = await s.add(keys.events_stream, "tick", {"n": 2})
    try:
        assert [i for i, _ in await _take(gen, 2)] == [first, second]
        assert b.errors == 2  # both failures were survived, from the same cursor
        third = await s.add(keys.events_stream, "tick", {"n": 3})
        assert (await _take(gen, 1))[0][0] == third
    finally:
        await gen.aclose()
        await b.close()


async def test_resume_after_last_event_id(redis: aioredis.Redis, keys: Keys) -> None:
    s = Streams(redis)
    ids = [
        await s.add(keys.events_stream, "call_ended", {"campaign_id": c, "n": n})
        for n, c in enumerate((10, 20, 10, 10))
    ]
    b = _broadcaster(redis, keys)
    sup = _principal(Role.SUPERVISOR, 5)
    gen = await _subscribe(b, sup, frozenset({10}), last_id=ids[0])
    try:
        assert [i for i, _ in await _take(gen, 2)] == [ids[2], ids[3]]  # after ids[0], own only
        live = await s.add(keys.events_stream, "call_ended", {"campaign_id": 10})
        assert [i for i, _ in await _take(gen, 1)] == [live]
    finally:
        await gen.aclose()
        await b.close()


async def test_event_stream_requires_auth(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/api/v1/events/stream")
    assert r.status_code == 401
