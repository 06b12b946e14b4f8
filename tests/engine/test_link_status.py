"""The dialer publishes each AMI link's status to Redis with a TTL (``/readyz`` reads it)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import cast

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from ami_bridge.connection import LinkState, LinkStatus, ServerSpec
from dialer.redis_keys import Keys
from dialer.settings import Settings
from dialer.telephony import LINK_HEARTBEAT_S, LINK_STATUS_TTL_S, BridgeTelephony


async def _connected(settings: Settings, redis: aioredis.Redis, keys: Keys) -> BridgeTelephony:
    """A bridge whose link "pbx-a" (never really connected) has reported itself connected."""
    sim = ServerSpec("pbx-a", "127.0.0.1", 1, "dialer", SecretStr("x"))
    tel = BridgeTelephony(settings, redis, keys, simulator=sim, now=lambda: datetime.now(UTC))
    await tel._on_status(LinkStatus("pbx-a", LinkState.CONNECTED, sessions=1))
    return tel


async def test_link_status_hash_expires_unless_refreshed(
    settings: Settings, redis: aioredis.Redis, keys: Keys
) -> None:
    await _connected(settings, redis, keys)
    key = keys.ami_link("pbx-a")
    assert await redis.hget(key, "state") == "connected"  # type: ignore[misc]
    beat = float(await redis.hget(key, "heartbeat_at") or 0)  # type: ignore[misc]
    assert abs(beat - time.time()) < 60  # /readyz checks it against now (LINK_STALE_S)
    assert LINK_HEARTBEAT_S <= 1.0  # re-published often enough for a 5 s staleness check
    ttl = await redis.ttl(key)
    # A dialer killed with -9 stops refreshing: its "connected" disappears within the TTL.
    assert 0 < ttl <= LINK_STATUS_TTL_S


async def test_close_publishes_the_final_state_then_ignores_late_callbacks(
    settings: Settings, redis: aioredis.Redis, keys: Keys
) -> None:
    tel = await _connected(settings, redis, keys)
    key = keys.ami_link("pbx-a")
    await tel.close()
    # the link's own (not connected) state replaced "connected" at shutdown
    assert await redis.hget(key, "state") != "connected"  # type: ignore[misc]
    # a status callback fired by a closing connection after close() writes nothing
    await redis.delete(key)
    await tel._on_status(LinkStatus("pbx-a", LinkState.CONNECTED, sessions=2))
    assert await redis.exists(key) == 0


class _Pipe:
    """A pipeline whose first execute() waits for ``gate`` (a write still in flight)."""

    def __init__(self, owner: _SlowRedis) -> None:
        self.owner = owner

    async def __aenter__(self) -> _Pipe:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def hset(self, *args: object, **kwargs: object) -> None:
        return None

    def expire(self, *args: object) -> None:
        return None

    async def execute(self) -> None:
        self.owner.calls += 1
        if self.owner.calls == 1:
            await self.owner.gate.wait()
        self.owner.finished += 1


class _SlowRedis:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0
        self.finished = 0

    def pipeline(self, transaction: bool = True) -> _Pipe:
        return _Pipe(self)


async def test_close_waits_for_a_publish_already_in_flight(
    settings: Settings, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status callback that began writing before close() finishes before close() returns,
    so the caller never closes Redis under it."""
    slow = _SlowRedis()
    sim = ServerSpec("pbx-a", "127.0.0.1", 1, "dialer", SecretStr("x"))
    tel = BridgeTelephony(
        settings, cast(aioredis.Redis, slow), keys, simulator=sim, now=lambda: datetime.now(UTC)
    )

    async def no_io() -> None:
        return None

    monkeypatch.setattr(tel.bridge, "close", no_io)
    in_flight = asyncio.create_task(
        tel._on_status(LinkStatus("pbx-a", LinkState.CONNECTED, sessions=1))
    )
    closing = asyncio.create_task(tel.close())
    for _ in range(50):  # bounded: every step of close() here is a plain coroutine, no I/O
        await asyncio.sleep(0)
    assert slow.calls >= 1 and slow.finished == slow.calls - 1  # the first write is held
    assert not closing.done()  # close() waits for it
    slow.gate.set()
    await asyncio.wait_for(closing, 5)
    assert in_flight.done() and slow.finished == slow.calls
