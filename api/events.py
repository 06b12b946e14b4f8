"""Commands to the dialer, events to the stream, and the per-role filter of the live feed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from api.auth import Principal
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys

HEARTBEAT_S = 15.0


async def send_command(
    redis: aioredis.Redis, keys: Keys, type_: str, data: Mapping[str, Any]
) -> str:
    """Append a command for the dialer (``Keys.commands_stream``)."""
    return await Streams(redis).add(keys.commands_stream, type_, data)


async def publish_event(
    redis: aioredis.Redis, keys: Keys, type_: str, data: Mapping[str, Any]
) -> str:
    """Append an event for dashboards and webhooks (``Keys.events_stream``)."""
    return await Streams(redis).add(keys.events_stream, type_, data)


async def live_agent_state(redis: aioredis.Redis, keys: Keys, agent_id: int) -> dict[str, str]:
    raw: dict[str, str] = await redis.hgetall(keys.agent_state(agent_id))  # type: ignore[misc]
    return {str(k): str(v) for k, v in raw.items()}


def seconds_since(since: str, now: datetime) -> float | None:
    try:
        start = datetime.fromisoformat(since)
    except ValueError:
        return None
    if start.tzinfo is None:
        return None
    return max(0.0, (now - start).total_seconds())


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def visible(principal: Principal, campaigns: frozenset[int] | None, entry: StreamEntry) -> bool:
    """Agents: only events about themselves. Supervisors: events of their campaigns."""
    data = entry.data
    if principal.is_agent:
        return _as_int(data.get("agent_id")) == principal.user_id
    if campaigns is None:
        return True
    cid = _as_int(data.get("campaign_id"))
    return cid is not None and cid in campaigns


def sse(entry: StreamEntry) -> str:
    payload = json.dumps(
        {"type": entry.type, "data": entry.data}, separators=(",", ":"), default=str
    )
    return f"id: {entry.id}\nevent: {entry.type}\ndata: {payload}\n\n"


async def event_source(
    redis: aioredis.Redis,
    keys: Keys,
    principal: Principal,
    campaigns: frozenset[int] | None,
    last_id: str = "$",
    *,
    block_ms: int = int(HEARTBEAT_S * 1000),
    max_reads: int | None = None,
) -> AsyncIterator[str]:
    """Server-sent events from ``Keys.events_stream``, filtered for this caller.

    Yields a ``retry`` hint first, then events; a comment line every ``block_ms`` without
    events keeps proxies from closing the connection. ``max_reads`` bounds the loop (tests).
    """
    streams = Streams(redis)
    yield "retry: 2000\n\n"
    cursor = last_id
    if cursor == "$":
        # Resolve "$" once, so events published between two reads are never skipped.
        info = (
            await redis.xinfo_stream(keys.events_stream)
            if await redis.exists(keys.events_stream)
            else None
        )
        cursor = str(info["last-generated-id"]) if info else "0-0"
    reads = 0
    while max_reads is None or reads < max_reads:
        reads += 1
        entries = await streams.read(keys.events_stream, cursor, count=200, block_ms=block_ms)
        if not entries:
            yield ": keep-alive\n\n"
            continue
        for entry in entries:
            cursor = entry.id
            if visible(principal, campaigns, entry):
                yield sse(entry)
