"""Agent call controls in the API (issue 15): state rules (409 with a code), the command sent
to the dialer, the dialer's refusal, and what the supervisor's live view shows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI

from dialer.db.models import Consent, Role
from dialer.domain.outcomes import Channel, LeadStatus
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys
from tests.api.helpers import (
    MONDAY_10AM,
    ApiClient,
    make_campaign,
    make_connected_attempt,
    make_lead,
)

CALL = "/api/v1/agent/call"


async def _set_state(
    redis: aioredis.Redis, keys: Keys, agent_id: int, state: str, cid: int, **extra: str
) -> None:
    await redis.hset(  # type: ignore[misc]
        keys.agent_state(agent_id),
        mapping={
            "state": state,
            "since": (MONDAY_10AM - timedelta(seconds=30)).isoformat(),
            "extension": "1001",
            "campaign_id": str(cid),
            "pause_code": "",
            "attempt": "",
            "on_hold_since": "",
            "muted": "",
            **extra,
        },
    )
    await redis.sadd(keys.agents_online, str(agent_id))  # type: ignore[misc]


async def _commands(redis: aioredis.Redis, keys: Keys) -> list[StreamEntry]:
    return [
        e
        for e in await Streams(redis).read(keys.commands_stream, "0", count=100)
        if e.type == "call_control"
    ]


async def _code(agent: ApiClient, path: str, body: dict[str, Any] | None = None) -> str:
    r = await agent.post(f"{CALL}/{path}", json=body or {})
    assert r.status_code == 409, r.text
    return str(r.json()["error"]["code"])


async def test_call_controls_state_rules_and_commands(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    for action in ("hangup", "mute", "unmute", "hold", "resume"):
        assert await _code(agent, action) == "not_logged_in"
    await _set_state(redis, keys, agent.user_id, "ready", cid)
    for action in ("hangup", "mute", "hold"):
        assert await _code(agent, action) == "not_in_call"
    assert await _code(agent, "dtmf", {"digits": "1"}) == "not_in_call"
    # a preview / manual call still ringing (RESERVED): only "hang up" (cancel) is allowed
    await _set_state(redis, keys, agent.user_id, "reserved", cid, attempt="ringing-1")
    assert await _code(agent, "hold") == "not_in_call"
    r = await agent.post(f"{CALL}/hangup", json={})
    assert r.status_code == 202, r.text
    await redis.delete(keys.commands_stream)
    lead = await make_lead(app.state.sessionmaker, cid, 1)
    attempt = await make_connected_attempt(
        app.state.sessionmaker, cid, lead, agent.user_id, outcome=None
    )
    await _set_state(redis, keys, agent.user_id, "in_call", cid, attempt=attempt)
    assert await _code(agent, "unmute") == "not_muted"
    assert await _code(agent, "resume") == "not_on_hold"
    assert await _code(agent, "hold", {"attempt": "another-call"}) == "stale_call"
    r = await agent.post(f"{CALL}/dtmf", json={"digits": "12x"})
    assert r.status_code == 422, r.text
    assert await _commands(redis, keys) == []  # nothing refused reached the dialer

    # no dialer answers within command_wait_s: accepted as pending
    for action, body in (("mute", {}), ("hold", {"attempt": attempt}), ("hangup", {})):
        r = await agent.post(f"{CALL}/{action}", json=body)
        assert r.status_code == 202, r.text
        assert r.json()["command"] == "call_control"
        assert r.json()["result"]["status"] == "pending"
    r = await agent.post(f"{CALL}/dtmf", json={"digits": "*9#a"})
    assert r.status_code == 202, r.text
    sent = [
        (e.data["action"], e.data["attempt"], e.data.get("digits"))
        for e in await _commands(redis, keys)
    ]
    assert sent == [
        ("mute", attempt, None),
        ("hold", attempt, None),
        ("hangup", attempt, None),
        ("dtmf", attempt, "*9#A"),
    ]

    # the dialer's live state says muted and on hold: the opposite controls are refused
    await _set_state(
        redis,
        keys,
        agent.user_id,
        "in_call",
        cid,
        attempt=attempt,
        muted="1",
        on_hold_since=MONDAY_10AM.isoformat(),
    )
    assert await _code(agent, "mute") == "already_muted"
    assert await _code(agent, "hold") == "already_on_hold"
    state = (await agent.get("/api/v1/agent/me")).json()["state"]
    assert state["muted"] is True and state["on_hold_since"] == MONDAY_10AM.isoformat()

    # the supervisor sees the customer on hold and the agent muted
    sup = await clients("sofia", Role.SUPERVISOR, campaigns=(cid,))
    live = (await sup.get(f"/api/v1/campaigns/{cid}/live")).json()
    [row] = live["agents"]
    assert row["muted"] is True and row["on_hold_since"] == MONDAY_10AM.isoformat()


async def _refuse_first(redis: aioredis.Redis, keys: Keys, code: str) -> None:
    """Answer the first command like a dialer that refuses it (``Keys.command_result``)."""
    streams, last = Streams(redis), "0"
    while True:
        for entry in await streams.read(keys.commands_stream, last, block_ms=200):
            last = entry.id
            body = {
                "command_id": entry.id,
                "command": entry.type,
                "status": "rejected",
                "code": code,
                "message": "the call has ended",
                "agent_id": entry.data.get("agent_id"),
            }
            await redis.set(keys.command_result(entry.id), json.dumps(body), ex=60)
            return


async def test_a_dialer_refusal_is_a_409_with_its_code(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"api": app.state.settings.api.model_copy(update={"command_wait_s": 5.0})}
    )
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    await _set_state(redis, keys, agent.user_id, "in_call", cid, attempt="a1")
    dialer = asyncio.create_task(_refuse_first(redis, keys, "call_gone"))
    r = await agent.post(f"{CALL}/hold", json={})
    await dialer
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "call_gone"
    assert r.json()["error"]["details"]["command_id"]


async def test_manual_dial_checks_state_and_every_rule(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    other = await make_campaign(app.state.sessionmaker, name="Otra")
    agent = await clients("ana", Role.AGENT, campaigns=(cid, other), extension="1001")
    ok = await make_lead(app.state.sessionmaker, cid, 1)
    async with app.state.sessionmaker.begin() as s:  # consent under the store's person key
        s.add(
            Consent(
                person_key="1001",
                channel=Channel.VOICE,
                proof="test",
                granted_at=MONDAY_10AM - timedelta(days=30),
            )
        )
    closed = await make_lead(app.state.sessionmaker, cid, 2, status=LeadStatus.EXHAUSTED)
    elsewhere = await make_lead(app.state.sessionmaker, other, 3)
    dial = f"{CALL}/dial"
    assert await _code(agent, "dial", {"lead_id": ok}) == "not_logged_in"
    await _set_state(redis, keys, agent.user_id, "in_call", cid, attempt="a1")
    assert await _code(agent, "dial", {"lead_id": ok}) == "agent_busy"
    await _set_state(redis, keys, agent.user_id, "paused", cid, pause_code="connecting")
    assert await _code(agent, "dial", {"lead_id": ok}) == "agent_busy"
    await _set_state(redis, keys, agent.user_id, "paused", cid, pause_code="manual_call")
    r = await agent.post(dial, json={"lead_id": elsewhere})
    assert r.status_code == 409 and r.json()["error"]["code"] == "lead_not_in_campaign"
    r = await agent.post(dial, json={"lead_id": closed})
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "not_eligible"
    assert "lead_status" in [rule["code"] for rule in err["details"]["rules"]]
    assert err["details"]["summary_es"]
    assert await _commands(redis, keys) == []
    r = await agent.post(dial, json={"lead_id": ok})
    assert r.status_code == 202, r.text
    sent = [
        (e.type, e.data["lead_id"])
        for e in await Streams(redis).read(keys.commands_stream, "0", count=100)
    ]
    assert sent == [("manual_dial", ok)]


async def test_transfer_needs_a_ready_agent_of_the_campaign(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    other = await make_campaign(app.state.sessionmaker, name="Otra")
    ana = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    beto = await clients("beto", Role.AGENT, campaigns=(cid,), extension="1002")
    caro = await clients("caro", Role.AGENT, campaigns=(other,), extension="1003")
    xfer = f"{CALL}/transfer"
    r = await ana.post(xfer, json={"target_agent_id": beto.user_id})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_logged_in"
    await _set_state(redis, keys, ana.user_id, "in_call", cid, attempt="a1")
    r = await ana.post(xfer, json={"target_agent_id": beto.user_id})
    assert r.status_code == 409 and r.json()["error"]["code"] == "target_unavailable"
    await _set_state(redis, keys, beto.user_id, "paused", cid, pause_code="break")
    await _set_state(redis, keys, caro.user_id, "ready", other)
    targets = (await ana.get("/api/v1/agent/transfer-targets")).json()
    assert [(t["id"], t["state"]) for t in targets] == [(beto.user_id, "paused")]
    for target in (beto.user_id, caro.user_id):
        r = await ana.post(xfer, json={"target_agent_id": target})
        assert r.status_code == 409 and r.json()["error"]["code"] == "target_unavailable"
    await _set_state(redis, keys, beto.user_id, "ready", cid)
    r = await ana.post(xfer, json={"target_agent_id": beto.user_id})
    assert r.status_code == 202, r.text
    [sent] = await _commands(redis, keys)
    assert sent.data["action"] == "transfer"
    assert sent.data["target_agent_id"] == beto.user_id and sent.data["attempt"] == "a1"


async def test_transfer_out_allow_list_and_commands(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    admin = await clients("root", Role.ADMIN)
    ana = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    sup = await clients("sara", Role.SUPERVISOR, campaigns=(cid,), extension="2001")
    # the allow list: admins only, numbers normalised (E.164), one entry per number
    r = await sup.post("/api/v1/transfer-numbers", json={"number": "6015550100", "label": "X"})
    assert r.status_code == 403, r.text
    r = await admin.post(
        "/api/v1/transfer-numbers", json={"number": "(601) 555 0100", "label": "Soporte"}
    )
    assert r.status_code == 201, r.text
    allowed = r.json()
    assert allowed["number"] == "+576015550100"
    r = await admin.post("/api/v1/transfer-numbers", json={"number": "6015550100", "label": "Y"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_listed"
    r = await admin.post("/api/v1/transfer-numbers", json={"number": "12345", "label": "Z"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_phone"
    gone = await admin.post(
        "/api/v1/transfer-numbers", json={"number": "3001234567", "label": "Borrado"}
    )
    assert (await admin.delete(f"/api/v1/transfer-numbers/{gone.json()['id']}")).status_code == 204

    await _set_state(redis, keys, ana.user_id, "in_call", cid, attempt="a1")
    dest = (await ana.get("/api/v1/agent/transfer-destinations")).json()
    assert [(s["id"], s["extension"]) for s in dest["supervisors"]] == [(sup.user_id, "2001")]
    assert [(e["id"], e["label"]) for e in dest["external"]] == [(allowed["id"], "Soporte")]
    assert "number" not in dest["external"][0]  # agents see labels, not numbers

    # a number not on the list, an agent as "supervisor": refused with a code
    r = await ana.post(
        f"{CALL}/transfer-out", json={"target_kind": "external", "target_id": gone.json()["id"]}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "number_not_allowed"
    r = await ana.post(
        f"{CALL}/consult", json={"target_kind": "supervisor", "target_id": ana.user_id}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "target_unavailable"
    assert await _code(ana, "consult/complete") == "not_consulting"
    assert await _code(ana, "consult/cancel") == "not_consulting"
    r = await ana.post(
        f"{CALL}/transfer-out", json={"target_kind": "supervisor", "target_id": sup.user_id}
    )
    assert r.status_code == 202, r.text
    r = await ana.post(
        f"{CALL}/consult", json={"target_kind": "external", "target_id": allowed["id"]}
    )
    assert r.status_code == 202, r.text
    sent = await _commands(redis, keys)
    assert [(e.data["action"], e.data["target_kind"], e.data["target"]) for e in sent] == [
        ("transfer_out", "supervisor", "2001"),
        ("consult", "external", "+576015550100"),
    ]
    assert sent[1].data["target_label"] == "Soporte" and sent[1].data["attempt"] == "a1"
    # while consulting: no second transfer; complete / cancel go to the dialer
    await _set_state(
        redis, keys, ana.user_id, "in_call", cid, attempt="a1", transfer_state="consulting"
    )
    assert (
        await _code(ana, "transfer-out", {"target_kind": "supervisor", "target_id": sup.user_id})
        == "transfer_in_progress"
    )
    assert (await ana.post(f"{CALL}/consult/complete", json={})).status_code == 202
    assert (await ana.post(f"{CALL}/consult/cancel", json={})).status_code == 202
    actions = [e.data["action"] for e in await _commands(redis, keys)]
    assert actions[-2:] == ["consult_complete", "consult_cancel"]
    # the supervisor's live view shows the consult
    live = (await sup.get(f"/api/v1/campaigns/{cid}/live")).json()
    [row] = live["agents"]
    assert row["transfer_state"] == "consulting"
