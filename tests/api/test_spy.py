"""Supervisor listen / whisper / barge through the API (issue 14, defects 11 and 12).

The API used to answer 202 to every spy request, also when Asterisk refused the Originate
("Extension does not exist."): it now waits a moment for the dialer's verdict. A stand-in
dialer answers on the event stream as
:meth:`dialer.engine.supervision.Supervision.spy_command` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from api.routers import agents as agents_router
from dialer.db.models import Role
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from tests.api.helpers import MONDAY_10AM, ApiClient, make_campaign


async def _set_state(
    redis: aioredis.Redis, keys: Keys, agent_id: int, state: str, cid: int
) -> None:
    await redis.hset(  # type: ignore[misc]
        keys.agent_state(agent_id),
        mapping={
            "state": state,
            "since": (MONDAY_10AM - timedelta(seconds=5)).isoformat(),
            "extension": "1001",
            "campaign_id": str(cid),
            "pause_code": "",
            "attempt": "att-1" if state == "in_call" else "",
        },
    )


@contextlib.asynccontextmanager
async def _dialer(
    redis: aioredis.Redis,
    keys: Keys,
    reply: Callable[[str, dict[str, object]], tuple[str, dict[str, object]] | None],
) -> AsyncIterator[list[dict[str, object]]]:
    """Reads commands and answers each on the event stream with ``reply(type, data)``."""
    seen: list[dict[str, object]] = []
    streams = Streams(redis)

    async def run() -> None:
        cursor = "0"
        while True:
            for entry in await streams.read(keys.commands_stream, cursor, block_ms=50):
                cursor = entry.id
                seen.append({"type": entry.type, **entry.data})
                answer = reply(entry.type, entry.data)
                if answer is not None:
                    await streams.add(
                        keys.events_stream, answer[0], {**answer[1], "command_id": entry.id}
                    )

    task = asyncio.create_task(run())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _setup(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], redis: aioredis.Redis, keys: Keys
) -> tuple[ApiClient, ApiClient]:
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    sup = await clients("sup", Role.SUPERVISOR, campaigns=(cid,), extension="2001")
    await _set_state(redis, keys, agent.user_id, "in_call", cid)
    return agent, sup


async def test_a_refused_spy_is_an_error_not_a_202(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], redis: aioredis.Redis, keys: Keys
) -> None:
    agent, sup = await _setup(app, clients, redis, keys)
    refused: tuple[str, dict[str, object]] = (
        "spy_failed",
        {"code": "pbx_refused", "reason": "Extension does not exist."},
    )
    async with _dialer(redis, keys, lambda t, d: refused) as seen:
        r = await sup.post(f"/api/v1/agents/{agent.user_id}/spy", json={"mode": "listen"})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"]["code"] == "spy_failed"
    assert "Extension does not exist." in body["error"]["message"]
    assert seen[0]["supervisor_id"] == sup.user_id and seen[0]["supervisor_extension"] == "2001"


async def test_spy_ringing_then_stop(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], redis: aioredis.Redis, keys: Keys
) -> None:
    agent, sup = await _setup(app, clients, redis, keys)

    def reply(type_: str, data: dict[str, object]) -> tuple[str, dict[str, object]] | None:
        return ("spy_ringing", {"spy": "spy-abc"}) if type_ == "spy" else None

    async with _dialer(redis, keys, reply) as seen:
        r = await sup.post(f"/api/v1/agents/{agent.user_id}/spy", json={"mode": "barge"})
        assert r.status_code == 202, r.text
        assert (r.json()["status"], r.json()["spy"]) == ("ringing", "spy-abc")
        stop = await sup.delete(f"/api/v1/agents/{agent.user_id}/spy")
        assert stop.status_code == 202
    stops = [
        c for c in (await Streams(redis).read(keys.commands_stream, "0")) if c.type == "spy_stop"
    ]
    assert stops[0].data["supervisor_id"] == sup.user_id
    assert seen[0]["mode"] == "barge"


async def test_spy_needs_a_call_and_says_pending_without_a_verdict(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent, sup = await _setup(app, clients, redis, keys)
    monkeypatch.setattr(agents_router, "SPY_REPLY_S", 0.2)
    r = await sup.post(f"/api/v1/agents/{agent.user_id}/spy", json={"mode": "listen"})
    assert (r.status_code, r.json()["status"]) == (202, "pending")  # no dialer answered
    await _set_state(redis, keys, agent.user_id, "ready", 0)
    r = await sup.post(f"/api/v1/agents/{agent.user_id}/spy", json={"mode": "listen"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "agent_not_in_call")
