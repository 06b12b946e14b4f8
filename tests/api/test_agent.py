"""Agent screen actions, disposition flow, screen-pop and agent isolation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import redis.asyncio as aioredis
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from api.authcache import AuthCache
from dialer.db.models import Appointment, CallAttempt, Disposition, Lead, Role
from dialer.domain.outcomes import CallOutcome, LeadStatus
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys
from tests.api.helpers import (
    MONDAY_10AM,
    ApiClient,
    make_campaign,
    make_connected_attempt,
    make_lead,
)

AGENT = "/api/v1/agent"


async def _set_state(
    redis: aioredis.Redis, keys: Keys, agent_id: int, state: str, attempt: str = "", cid: int = 0
) -> None:
    await redis.hset(  # type: ignore[misc]
        keys.agent_state(agent_id),
        mapping={
            "state": state,
            "since": (MONDAY_10AM - timedelta(seconds=42)).isoformat(),
            "extension": "1001",
            "campaign_id": str(cid or ""),
            "pause_code": "",
            "attempt": attempt,
        },
    )


async def test_login_ready_pause_logout_send_commands(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    r = await agent.post(f"{AGENT}/ready")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "not_logged_in"
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": cid})
    assert r.status_code == 202, r.text
    await _set_state(redis, keys, agent.user_id, "ready", cid=cid)
    assert (await agent.post(f"{AGENT}/pause", json={"code": "lunch"})).status_code == 202
    r = await agent.post(f"{AGENT}/pause", json={"code": "siesta"})
    assert r.status_code == 422
    assert (await agent.post(f"{AGENT}/ready")).status_code == 202
    assert (await agent.post(f"{AGENT}/logout")).status_code == 202
    entries = await Streams(redis).read(keys.commands_stream, "0")
    assert [(e.type, e.data) for e in entries] == [
        ("agent_login", {"agent_id": agent.user_id, "extension": "1001", "campaign_id": cid}),
        ("agent_pause", {"agent_id": agent.user_id, "code": "lunch"}),
        ("agent_ready", {"agent_id": agent.user_id}),
        ("agent_logout", {"agent_id": agent.user_id}),
    ]


async def test_login_checks(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], redis: aioredis.Redis, keys: Keys
) -> None:
    mine = await make_campaign(app.state.sessionmaker, "Mía")
    other = await make_campaign(app.state.sessionmaker, "Ajena")
    agent = await clients("ana", Role.AGENT, campaigns=(mine,))
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": other, "extension": "1001"})
    assert r.status_code == 404
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": mine})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "extension_required"
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": mine, "extension": "1001;x"})
    assert r.status_code == 422
    await _set_state(redis, keys, agent.user_id, "ready", cid=mine)
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": mine, "extension": "1001"})
    assert r.status_code == 409


async def test_a_reconnecting_agent_may_log_in_again_to_rejoin(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], redis: aioredis.Redis, keys: Keys
) -> None:
    """Issue 15: a browser phone's page reloaded mid-call; the dialer keeps the call and the
    state ("reconnecting" until rejoin_deadline) and a login rejoins the session."""
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    await _set_state(redis, keys, agent.user_id, "in_call", attempt="att-1", cid=cid)
    deadline = (MONDAY_10AM + timedelta(seconds=30)).isoformat()
    await redis.hset(keys.agent_state(agent.user_id), "rejoin_deadline", deadline)  # type: ignore[misc]
    me = (await agent.get(f"{AGENT}/me")).json()["state"]
    assert me["state"] == "in_call" and me["attempt"] == "att-1"
    assert me["reconnecting"] is True and me["rejoin_deadline"] == deadline
    sup = await clients("sofia", Role.SUPERVISOR, campaigns=(cid,))
    [row] = (await sup.get(f"/api/v1/campaigns/{cid}/live")).json()["agents"]
    assert row["state"] == "in_call" and row["reconnecting"] is True  # "reconectando…"
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": cid})
    assert r.status_code == 202, r.text
    entries = await Streams(redis).read(keys.commands_stream, "0")
    assert [(e.type, e.data) for e in entries] == [
        ("agent_login", {"agent_id": agent.user_id, "extension": "1001", "campaign_id": cid})
    ]
    # Rejoined: an ordinary IN_CALL again, and a login is refused as before.
    await redis.hset(keys.agent_state(agent.user_id), "rejoin_deadline", "")  # type: ignore[misc]
    assert (await agent.get(f"{AGENT}/me")).json()["state"]["reconnecting"] is False
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": cid})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_logged_in"


async def test_disposition_flow(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 1)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    other = await clients("beto", Role.AGENT, campaigns=(cid,), extension="1002")
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id)
    await _set_state(redis, keys, agent.user_id, "wrap_up", attempt=attempt, cid=cid)

    me = (await agent.get(f"{AGENT}/me")).json()
    assert me["state"]["state"] == "wrap_up"
    assert me["state"]["seconds_in_state"] == 42.0
    call = me["call"]
    assert call["lead"]["customer_name"] == "Cliente 1"
    assert (
        call["script"]
        == "Buenos días Cliente 1, le llamamos de Carrazos por su Renault Duster (ABC001)."
    )
    assert call["lead"]["phones"][0]["number"].endswith("0001")
    assert "*" in call["lead"]["phones"][0]["number"]
    assert "cita_agendada" in [d["code"] for d in call["dispositions"]]
    assert call["history"]["attempts"][0]["uuid"] == attempt
    assert (await agent.post(f"{AGENT}/ready")).status_code == 409  # disposition first

    when = (MONDAY_10AM + timedelta(days=2)).isoformat()
    body = {
        "attempt": attempt,
        "code": "cita_agendada",
        "details": {
            "appointment_at": when,
            "branch": "Tunja",
            "service": "Mantenimiento 10.000 km",
        },
    }
    r = await other.post(f"{AGENT}/disposition", json=body)
    assert r.status_code == 404  # another agent's call does not exist for beto
    missing = {**body, "details": {"appointment_at": when}}
    r = await agent.post(f"{AGENT}/disposition", json=missing)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_disposition"
    r = await agent.post(f"{AGENT}/disposition", json={**body, "code": "no_such_code"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unknown_disposition"

    r = await agent.post(f"{AGENT}/disposition", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["lead_status"] == "contacted"
    assert out["appointment_id"] is not None
    r = await agent.post(f"{AGENT}/disposition", json=body)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "already_recorded"

    async with sm() as s:
        lead = await s.get_one(Lead, lead_id)
        assert lead.status is LeadStatus.CONTACTED
        appt = await s.get_one(Appointment, out["appointment_id"])
        assert appt.branch == "Tunja"
        assert await s.scalar(sa.select(sa.func.count()).select_from(Disposition)) == 1
    commands = await Streams(redis).read(keys.commands_stream, "0")
    assert [(e.type, e.data) for e in commands] == [
        ("agent_dispositioned", {"agent_id": agent.user_id})
    ]
    events = [e.type for e in await Streams(redis).read(keys.events_stream, "0")]
    assert events == ["appointment_booked", "disposition_recorded"]


async def test_complaint_creates_pqrs_event(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], redis: aioredis.Redis, keys: Keys
) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 2)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,))
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id)
    r = await agent.post(
        f"{AGENT}/disposition",
        json={
            "attempt": attempt,
            "code": "queja_reclamo",
            "details": {"description": "El carro salió con ruido"},
            "pause_code": "break",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["pqrs_id"] is not None
    commands = await Streams(redis).read(keys.commands_stream, "0")
    assert commands[-1].data == {"agent_id": agent.user_id, "pause_code": "break"}
    events = await Streams(redis).read(keys.events_stream, "0")
    assert events[0].type == "complaint_raised"
    assert events[0].data["pqrs_id"] == r.json()["pqrs_id"]


async def test_disposition_on_unfinished_call_is_409(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 3)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,))
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id, outcome=None)
    r = await agent.post(
        f"{AGENT}/disposition",
        json={"attempt": attempt, "code": "servicio_en_otro_taller"},
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "call_in_progress"


async def test_agent_isolation(app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_a = await make_lead(sm, cid, 10)
    lead_b = await make_lead(sm, cid, 11)
    lead_none = await make_lead(sm, cid, 12)
    a = await clients("ana", Role.AGENT, campaigns=(cid,))
    b = await clients("beto", Role.AGENT, campaigns=(cid,))
    call_a = await make_connected_attempt(sm, cid, lead_a, a.user_id)
    call_b = await make_connected_attempt(sm, cid, lead_b, b.user_id)

    assert (await a.get(f"/api/v1/leads/{lead_a}")).status_code == 200
    assert (await a.get(f"/api/v1/leads/{lead_b}")).status_code == 404
    assert (await a.get(f"/api/v1/leads/{lead_none}")).status_code == 404
    assert (await a.get(f"/api/v1/leads/{lead_b}/explain")).status_code == 404
    assert [x["id"] for x in (await a.get("/api/v1/leads")).json()["items"]] == [lead_a]
    assert [x["uuid"] for x in (await a.get("/api/v1/calls")).json()["items"]] == [call_a]
    assert (await a.get(f"/api/v1/calls/{call_b}")).status_code == 404
    assert (await b.get(f"/api/v1/calls/{call_b}")).status_code == 200
    r = await a.get("/api/v1/calls", params={"agent_id": b.user_id})
    assert r.json()["items"] == []
    detail = (await a.get(f"/api/v1/leads/{lead_a}")).json()
    assert "*" in detail["lead"]["phones"][0]["number"]


async def test_supervisor_reads_full_history_and_explain(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    other = await make_campaign(sm, "Otra")
    lead = await make_lead(sm, cid, 20)
    hidden = await make_lead(sm, other, 21)
    await make_connected_attempt(sm, cid, lead, None)
    sup = await clients("sup", Role.SUPERVISOR, campaigns=(cid,))
    detail = (await sup.get(f"/api/v1/leads/{lead}")).json()
    assert detail["lead"]["phones"][0]["number"] == "+573000000020"
    assert len(detail["history"]["attempts"]) == 1
    assert set(detail["history"]) == {
        "attempts",
        "dispositions",
        "whatsapp_messages",
        "events",
        "appointments",
        "pqrs",
    }
    assert (await sup.get(f"/api/v1/leads/{hidden}")).status_code == 404
    explain = (await sup.get(f"/api/v1/leads/{lead}/explain")).json()
    assert explain["ready"] is False  # in progress
    assert explain["rules"] and explain["summary_en"]
    page = (await sup.get("/api/v1/leads", params={"q": "ABC020"})).json()
    assert [x["id"] for x in page["items"]] == [lead]
    page = (await sup.get("/api/v1/leads", params={"phone": "300 000 0020"})).json()
    assert page["total"] == 1
    r = await sup.get("/api/v1/leads", params={"phone": "12"})
    assert r.status_code == 422


async def test_supervisor_forces_pause(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], redis: aioredis.Redis, keys: Keys
) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,))
    outsider = await clients("otro", Role.AGENT)
    sup = await clients("sup", Role.SUPERVISOR, campaigns=(cid,))
    await _set_state(redis, keys, agent.user_id, "ready", cid=cid)
    agents = (await sup.get("/api/v1/agents")).json()
    assert [(x["id"], x["state"]) for x in agents] == [(agent.user_id, "ready")]
    assert (await sup.post(f"/api/v1/agents/{agent.user_id}/pause", json={})).status_code == 202
    assert (await sup.post(f"/api/v1/agents/{outsider.user_id}/logout")).status_code == 404
    commands = await Streams(redis).read(keys.commands_stream, "0")
    assert commands[-1].data == {"agent_id": agent.user_id, "code": "supervisor"}


def _no_cache_expiry(app: FastAPI) -> None:
    """Keep the caches' TTLs out of the query counts: the principal cache on a clock that does
    not move (no refresh-ahead reload of the cached user) and the campaign list cached for an
    hour. On a loaded machine two polls of ``/agent/me`` can be more than the live cache's 1 s
    apart, and the campaign list reload was counted as a screen-pop query."""
    app.state.auth_cache = AuthCache(monotonic=lambda: 1000.0)
    app.state.live_cache_s = 3600.0


class _Queries:
    """Counts the SQL statements the engine runs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.n = 0
        self._engine = engine.sync_engine
        sa.event.listen(self._engine, "before_cursor_execute", self._count)

    def _count(self, *_: object) -> None:
        self.n += 1

    def close(self) -> None:
        sa.event.remove(self._engine, "before_cursor_execute", self._count)


async def test_screen_pop_is_loaded_once_per_call(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
    engine: AsyncEngine,
) -> None:
    """Polling ``/agent/me`` reads no SQL while the call and state are unchanged; a state
    change re-reads only the attempt row (its end shows, in the history too); a new call shows
    its own customer at once; the disposition drops the cached screen-pop."""
    _no_cache_expiry(app)
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    first, second = await make_lead(sm, cid, 1), await make_lead(sm, cid, 2)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    attempt = await make_connected_attempt(sm, cid, first, agent.user_id, outcome=None)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=attempt, cid=cid)
    me = (await agent.get(f"{AGENT}/me")).json()
    assert me["call"]["lead"]["customer_name"] == "Cliente 1"
    assert me["call"]["attempt"]["ended_at"] is None
    assert me["pause_codes"] and me["campaigns"][0]["id"] == cid

    queries = _Queries(engine)
    try:
        again = (await agent.get(f"{AGENT}/me")).json()
        assert again == me
        assert queries.n == 0  # session from Redis, user and campaigns cached, call cached

        async with sm.begin() as s:
            await s.execute(
                sa.update(CallAttempt)
                .where(CallAttempt.uuid == attempt)
                .values(ended_at=MONDAY_10AM, outcome=CallOutcome.ANSWERED_CONNECTED)
            )
        queries.n = 0
        await redis.hset(keys.agent_state(agent.user_id), "state", "wrap_up")  # type: ignore[misc]
        wrap = (await agent.get(f"{AGENT}/me")).json()
        assert queries.n == 1  # the attempt row only
        assert wrap["state"]["state"] == "wrap_up"
        assert wrap["call"]["attempt"]["outcome"] == "answered_connected"
        assert wrap["call"]["history"]["attempts"][0]["outcome"] == "answered_connected"
        assert wrap["call"]["lead"] == me["call"]["lead"]

        body = {"attempt": attempt, "code": "numero_equivocado", "details": {}}
        r = await agent.post(f"{AGENT}/disposition", json=body)
        assert r.status_code == 200, r.text
        queries.n = 0
        after = (await agent.get(f"{AGENT}/me")).json()
        assert queries.n > 1  # reloaded: the history now has the disposition
        assert [d["code"] for d in after["call"]["history"]["dispositions"]] == [
            "numero_equivocado"
        ]
    finally:
        queries.close()

    nxt = await make_connected_attempt(sm, cid, second, agent.user_id, outcome=None)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=nxt, cid=cid)
    me = (await agent.get(f"{AGENT}/me")).json()
    assert me["call"]["attempt"]["uuid"] == nxt
    assert me["call"]["lead"]["customer_name"] == "Cliente 2"
    await _set_state(redis, keys, agent.user_id, "ready", cid=cid)
    assert (await agent.get(f"{AGENT}/me")).json()["call"] is None


async def test_screen_pop_is_prepared_from_the_event_feed(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
    engine: AsyncEngine,
) -> None:
    """The dialer's ``agent_state`` event (call connected) starts loading the screen-pop, so
    the agent screen's next poll needs no SQL and shows the call's customer."""
    _no_cache_expiry(app)
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 3)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    assert (await agent.get(f"{AGENT}/me")).json()["call"] is None  # user cached
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id, outcome=None)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=attempt, cid=cid)
    live = await redis.hgetall(keys.agent_state(agent.user_id))  # type: ignore[misc]
    app.state.broadcaster.dispatch(
        [StreamEntry(keys.events_stream, "1-1", "agent_state", {"agent_id": agent.user_id, **live})]
    )
    loading = app.state.agent_call_loading[agent.user_id]
    assert loading[0] == attempt
    await loading[2]
    assert agent.user_id not in app.state.agent_call_loading

    queries = _Queries(engine)
    try:
        me = (await agent.get(f"{AGENT}/me")).json()
    finally:
        queries.close()
    assert queries.n == 0
    assert me["call"]["attempt"]["uuid"] == attempt
    assert me["call"]["lead"]["customer_name"] == "Cliente 3"
    assert "Cliente 3" in me["call"]["script"]


async def _play_dialer(redis: aioredis.Redis, keys: Keys, status: str, message: str) -> None:
    """Answer the first command like a dialer does (``Keys.command_result``)."""
    streams, last = Streams(redis), "0"
    while True:
        for entry in await streams.read(keys.commands_stream, last, block_ms=200):
            last = entry.id
            body = {
                "command_id": entry.id,
                "command": entry.type,
                "status": status,
                "code": "not_owned" if status == "rejected" else "",
                "message": message,
                "agent_id": entry.data.get("agent_id"),
            }
            await redis.set(keys.command_result(entry.id), json.dumps(body), ex=60)
            return


async def test_login_shows_the_dialers_answer(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    """Issue 14 defect 7: a login no dialer acts on is refused with the reason, not lost."""
    app.state.settings = app.state.settings.model_copy(
        update={"api": app.state.settings.api.model_copy(update={"command_wait_s": 5.0})}
    )
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    dialer = asyncio.create_task(
        _play_dialer(redis, keys, "rejected", f"no dialer runs campaign {cid} (is it started?)")
    )
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": cid})
    await dialer
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "login_refused"
    assert f"campaign {cid}" in r.json()["error"]["message"]
    await redis.delete(keys.commands_stream)
    dialer = asyncio.create_task(_play_dialer(redis, keys, "accepted", ""))
    r = await agent.post(f"{AGENT}/login", json={"campaign_id": cid})
    await dialer
    assert r.status_code == 202, r.text
    assert r.json()["result"]["status"] == "accepted"
    command_id = r.json()["command_id"]
    r = await agent.get(f"{AGENT}/commands/{command_id}")
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    other = await clients("beto", Role.AGENT, campaigns=(cid,), extension="1002")
    assert (await other.get(f"{AGENT}/commands/{command_id}")).status_code == 404


async def test_ready_while_connecting_is_refused(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], redis: aioredis.Redis, keys: Keys
) -> None:
    """Issue 14 defect 13: the dialer always rejects it, so the API says why at once."""
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    await _set_state(redis, keys, agent.user_id, "paused", cid=cid)
    await redis.hset(keys.agent_state(agent.user_id), "pause_code", "connecting")  # type: ignore[misc]
    r = await agent.post(f"{AGENT}/ready")
    assert r.status_code == 409 and r.json()["error"]["code"] == "connecting"
    await redis.hset(keys.agent_state(agent.user_id), "pause_code", "break")  # type: ignore[misc]
    assert (await agent.post(f"{AGENT}/ready")).status_code == 202


async def test_screen_pop_masks_the_national_id(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    """docs/security.md promises masked personal data: an agent sees the cédula's last four
    digits (enough to confirm identity), a supervisor the whole number."""
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    lead_id = await make_lead(sm, cid, 7)
    async with sm.begin() as s:
        await s.execute(sa.update(Lead).where(Lead.id == lead_id).values(national_id="1049601234"))
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    attempt = await make_connected_attempt(sm, cid, lead_id, agent.user_id)
    await _set_state(redis, keys, agent.user_id, "in_call", attempt=attempt, cid=cid)
    me = await agent.get(f"{AGENT}/me")
    assert me.json()["call"]["lead"]["national_id"] == "******1234"
    assert "1049601234" not in me.text
    lead = await agent.get(f"/api/v1/leads/{lead_id}")
    assert lead.status_code in (200, 404)
    assert "1049601234" not in lead.text
    sup = await clients("sup", Role.SUPERVISOR, campaigns=(cid,))
    assert (await sup.get(f"/api/v1/leads/{lead_id}")).json()["lead"]["national_id"] == (
        "1049601234"
    )
