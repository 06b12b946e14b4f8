"""The live event feed: per-role filtering and auth."""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis

from api.auth import ROLE_SCOPES, Principal, Scope
from api.events import event_source
from dialer.db.models import Role
from dialer.redis_client import Streams
from dialer.redis_keys import Keys


def _principal(role: Role, user_id: int) -> Principal:
    return Principal(
        kind="session",
        actor=f"user:{user_id}",
        scopes=ROLE_SCOPES[role],
        user_id=user_id,
        role=role,
    )


async def _collect(
    redis: aioredis.Redis, keys: Keys, principal: Principal, campaigns: frozenset[int] | None
) -> list[str]:
    out = []
    async for chunk in event_source(
        redis, keys, principal, campaigns, "0-0", block_ms=10, max_reads=2
    ):
        out.append(chunk)
    return [c for c in out if c.startswith("id:")]


async def test_events_filtered_per_role(redis: aioredis.Redis, keys: Keys) -> None:
    s = Streams(redis)
    await s.add(keys.events_stream, "agent_state", {"agent_id": 1, "campaign_id": "10"})
    await s.add(keys.events_stream, "screen_pop", {"agent_id": 2, "campaign_id": 20})
    await s.add(keys.events_stream, "call_ended", {"campaign_id": 10, "outcome": "busy"})
    agent1 = await _collect(redis, keys, _principal(Role.AGENT, 1), frozenset({10}))
    assert len(agent1) == 1 and "event: agent_state" in agent1[0]
    sup = await _collect(redis, keys, _principal(Role.SUPERVISOR, 5), frozenset({10}))
    assert [c.split("\n")[1] for c in sup] == ["event: agent_state", "event: call_ended"]
    admin = Principal(kind="api_key", actor="apikey:x", scopes=frozenset({Scope.EVENTS_READ}))
    assert len(await _collect(redis, keys, admin, None)) == 3


async def test_event_stream_requires_auth(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/api/v1/events/stream")
    assert r.status_code == 401
