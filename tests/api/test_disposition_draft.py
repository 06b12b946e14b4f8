"""A disposition saved during the call (a draft in Redis) is recorded when the call ends,
without the agent's page; and the API's clock for the pages (``GET /clock``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import redis.asyncio as aioredis
import sqlalchemy as sa
from fastapi import FastAPI

from api.deps import get_clock
from dialer.db.models import CallAttempt, Disposition, Role
from dialer.domain.clock import FakeClock
from dialer.domain.outcomes import CallOutcome
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys
from dialer.runtime import ScaledClock
from tests.api.helpers import (
    MONDAY_10AM,
    ApiClient,
    make_campaign,
    make_connected_attempt,
    make_lead,
)
from tests.api.test_agent import _set_state

AGENT = "/api/v1/agent"
DRAFT = f"{AGENT}/disposition/draft"


def _body(attempt: str) -> dict[str, object]:
    return {
        "attempt": attempt,
        "code": "cita_agendada",
        "details": {
            "appointment_at": (MONDAY_10AM + timedelta(days=2)).isoformat(),
            "branch": "Tunja",
            "service": "Mantenimiento 10.000 km",
        },
        "pause_code": "break",
    }


async def _end_call(app: FastAPI, attempt: str) -> None:
    async with app.state.sessionmaker.begin() as s:
        row = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == attempt))
        row.outcome = CallOutcome.ANSWERED_CONNECTED
        row.ended_at = MONDAY_10AM - timedelta(seconds=30)


async def _dispositions(app: FastAPI) -> int:
    async with app.state.sessionmaker() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(Disposition)) or 0)


async def test_draft_saved_during_the_call_is_recorded_when_it_ends(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
    clock: FakeClock,
) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 1)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id, outcome=None)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=attempt, cid=cid)

    r = await agent.put(DRAFT, json=_body(attempt))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "saved"
    ttl = await redis.ttl(keys.disposition_draft(agent.user_id, attempt))
    assert 0 < ttl <= 4 * 3600
    # The page reloads: the form comes back from the server.
    r = await agent.get(DRAFT, params={"attempt": attempt})
    assert r.status_code == 200
    assert r.json()["draft"] == _body(attempt)
    assert await _dispositions(app) == 0

    # The customer hangs up: the dialer reports wrap-up (delivered twice: applied once).
    await _end_call(app, attempt)
    await _set_state(redis, keys, agent.user_id, "wrap_up", attempt=attempt, cid=cid)
    live = await redis.hgetall(keys.agent_state(agent.user_id))  # type: ignore[misc]
    event = StreamEntry(
        keys.events_stream, "1-1", "agent_state", {"agent_id": agent.user_id, **live}
    )
    app.state.broadcaster.dispatch([event, event])
    tasks = [t for t in app.state.background if t.get_name() == "disposition-draft"]
    assert len(tasks) == 2
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks)

    assert await _dispositions(app) == 1
    assert (await agent.get(DRAFT, params={"attempt": attempt})).status_code == 404
    commands = await Streams(redis).read(keys.commands_stream, "0")
    assert [(e.type, e.data) for e in commands] == [
        ("agent_dispositioned", {"agent_id": agent.user_id, "pause_code": "break"})
    ]
    events = [e.type for e in await Streams(redis).read(keys.events_stream, "0")]
    assert events == ["appointment_booked", "disposition_recorded"]


async def test_draft_after_the_call_ended_is_recorded_at_once(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 2)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id)
    await _set_state(redis, keys, agent.user_id, "wrap_up", attempt=attempt, cid=cid)
    r = await agent.put(DRAFT, json=_body(attempt))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "applied"
    assert out["outcome"]["appointment_id"] is not None
    assert await _dispositions(app) == 1
    assert await redis.exists(keys.disposition_draft(agent.user_id, attempt)) == 0


async def test_draft_is_checked_when_saved_and_can_be_dropped(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 3)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    other = await clients("beto", Role.AGENT, campaigns=(cid,), extension="1002")
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id, outcome=None)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=attempt, cid=cid)
    body = _body(attempt)
    r = await agent.put(DRAFT, json={**body, "details": {"branch": "Tunja"}})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_disposition"
    assert (await other.put(DRAFT, json=body)).status_code == 404
    assert (await agent.put(DRAFT, json=body)).status_code == 200
    assert (await agent.delete(DRAFT, params={"attempt": attempt})).status_code == 204
    assert (await agent.get(DRAFT, params={"attempt": attempt})).status_code == 404
    assert await redis.exists(keys.disposition_draft(agent.user_id, attempt)) == 0


async def test_clock_tells_the_pages_time_speed_and_zone(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    sup = await clients("sara", Role.SUPERVISOR)
    out = (await sup.get("/api/v1/clock")).json()
    assert out == {
        "now": MONDAY_10AM.isoformat().replace("+00:00", "Z"),
        "speed": 1.0,
        "timezone": "America/Bogota",
        "timezone_label": "Bogotá",
    }
    demo = ScaledClock(MONDAY_10AM, speed=5)
    app.dependency_overrides[get_clock] = lambda: demo
    assert (await sup.get("/api/v1/clock")).json()["speed"] == 5.0


async def test_draft_during_the_call_before_the_row_names_the_agent(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    """While the call is up the attempt row may not name the agent yet: the agent's live
    state (this call) is enough; another agent still cannot save a draft for it."""
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 4)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    other = await clients("beto", Role.AGENT, campaigns=(cid,), extension="1002")
    attempt = await make_connected_attempt(sm, cid, lead_id, None, outcome=None)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=attempt, cid=cid)
    assert (await other.put(DRAFT, json=_body(attempt))).status_code == 404
    r = await agent.put(DRAFT, json=_body(attempt))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "saved"


async def test_draft_that_fails_at_hang_up_is_kept_and_reported(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    """The store refuses the draft (here: the attempt row has no outcome yet): the agent's
    screen is told (``command_rejected``) and the draft stays for the page to show again."""
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 5)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id, outcome=None)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=attempt, cid=cid)
    assert (await agent.put(DRAFT, json=_body(attempt))).status_code == 200
    event = StreamEntry(
        keys.events_stream,
        "1-1",
        "agent_state",
        {"agent_id": agent.user_id, "state": "wrap_up", "attempt": attempt},
    )
    app.state.broadcaster.dispatch([event])
    tasks = [t for t in app.state.background if t.get_name() == "disposition-draft"]
    async with asyncio.timeout(10):
        assert await asyncio.gather(*tasks) == [None]
    assert await _dispositions(app) == 0
    events = await Streams(redis).read(keys.events_stream, "0")
    assert [(e.type, e.data) for e in events] == [
        (
            "command_rejected",
            {"agent_id": agent.user_id, "command": "disposition_draft", "attempt": attempt},
        )
    ]
    r = await agent.get(DRAFT, params={"attempt": attempt})
    assert r.status_code == 200
    assert r.json()["draft"]["code"] == "cita_agendada"


async def test_disposition_of_a_call_transferred_out_is_recorded_when_it_ends(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    """Transferred to a supervisor / external number, the call goes on without the agent, who
    wraps it up: their disposition frees them at once (``pending``) and is recorded when the
    call ends (``call_ended`` with ``transferred_by``), without a second ``dispositioned``."""
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 1)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id, outcome=None)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=attempt, cid=cid)
    r = await agent.post(f"{AGENT}/disposition", json=_body(attempt))
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_in_progress", r.text

    await _set_state(redis, keys, agent.user_id, "wrap_up", attempt=attempt, cid=cid)
    r = await agent.post(f"{AGENT}/disposition", json=_body(attempt))
    assert r.status_code == 200, r.text
    assert r.json()["pending"] is True and r.json()["lead_status"] is None
    assert await _dispositions(app) == 0
    assert (await agent.get(DRAFT, params={"attempt": attempt})).status_code == 200

    await _end_call(app, attempt)
    event = StreamEntry(
        keys.events_stream,
        "1-1",
        "call_ended",
        {"attempt": attempt, "lead_id": lead_id, "transferred_by": agent.user_id},
    )
    app.state.broadcaster.dispatch([event])
    tasks = [t for t in app.state.background if t.get_name() == "disposition-draft"]
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks)
    assert await _dispositions(app) == 1
    commands = await Streams(redis).read(keys.commands_stream, "0")
    assert [(e.type, e.data) for e in commands] == [
        ("agent_dispositioned", {"agent_id": agent.user_id, "pause_code": "break"})
    ]
