"""The dialer publishes each AMI link's status to Redis with a TTL (``/readyz`` reads it)."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis
from pydantic import SecretStr

from ami_bridge.connection import LinkState, LinkStatus, ServerSpec
from dialer.redis_keys import Keys
from dialer.settings import Settings
from dialer.telephony import LINK_STATUS_TTL_S, BridgeTelephony


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
