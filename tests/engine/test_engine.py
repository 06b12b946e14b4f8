from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge import dialplan
from ami_bridge.errors import AMIError
from ami_bridge.events import ConfbridgeJoin
from ami_bridge.tracker import CallAbandoning, CallAnswered, CallConnected, CallEnded, CallHeld
from dialer.db.models import CallAttempt, Campaign, Lead, LeadClaim, Phone
from dialer.domain.clock import FakeClock
from dialer.domain.errors import NoDialablePhone
from dialer.domain.outcomes import AgentState, CallOutcome, LeadStatus
from dialer.engine import Engine, EngineConfig, SpyRefused, TelephonyItem
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys
from dialer.store import EngineStore

from .factories import MONDAY_10AM, make_agent, make_campaign, make_lead
from .fakes import FakeTelephony


def _ended(call_id: str, outcome: CallOutcome, clock: FakeClock, **kw: object) -> CallEnded:
    now = clock.now()
    base: dict[str, object] = {
        "call_id": call_id,
        "outcome": outcome,
        "detail": "",
        "hangup_cause": None,
        "originate_reason": None,
        "dial_status": None,
        "amd_status": None,
        "amd_cause": None,
        "started_at": now,
        "ringing_at": None,
        "answered_at": None,
        "connected_at": None,
        "ended_at": now,
        "channel": None,
        "uniqueid": call_id,
        "action_id": "a",
    }
    base.update(kw)
    return CallEnded(**base)  # type: ignore[arg-type]


def _join(uniqueid: str, conference: str) -> ConfbridgeJoin:
    fields: dict[str, object] = {f: "" for f in ConfbridgeJoin.__dataclass_fields__}
    fields.update(uniqueid=uniqueid, conference=conference, admin=False, muted=False)
    return ConfbridgeJoin(**fields)  # type: ignore[arg-type]


def _state(engine: Engine, agent_id: int = 7) -> AgentState:
    return engine.agents[agent_id].state


async def _engine(
    sm: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> tuple[Engine, FakeTelephony, FakeClock]:
    clock = FakeClock(MONDAY_10AM)
    tel = FakeTelephony()
    engine = Engine(EngineConfig(dialer_id="d1"), EngineStore(sm), redis, keys, tel, clock)
    return engine, tel, clock


async def _ready_agent(
    engine: Engine, tel: FakeTelephony, campaign_id: int, agent_id: int = 7, ext: str = "1001"
) -> None:
    await make_agent(engine.store.sm, agent_id, ext)
    await engine.agent_login(agent_id, ext, campaign_id)
    login = tel.originates[-1][1]
    assert login.channel == f"PJSIP/{ext}" and login.context == dialplan.CTX_AGENT
    await engine.handle(TelephonyItem("sim", _join(login.channel_id, f"agent-{ext}")))
    assert _state(engine, agent_id) is AgentState.READY


async def test_progressive_call_connects_to_longest_idle_agent(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    for n in range(3):
        await make_lead(sessionmaker, camp.id, n)
    await engine.step()
    assert tel.originates == []  # no agent: progressive launches nothing
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    calls = [r for _, r in tel.originates if r.context == dialplan.CTX_OUTBOUND]
    assert len(calls) == 1  # exactly one line per READY agent
    req = calls[0]
    assert req.timeout_ms >= 15_000
    assert req.variables[dialplan.VAR_CONNECT_TIMEOUT] == "2"
    uuid = req.channel_id
    async with sessionmaker() as s:
        attempt = (await s.scalars(sa.select(CallAttempt))).one()
    assert attempt.uuid == uuid and attempt.action_id is not None  # row written, then dialed

    clock.advance(8)
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, clock.now(), "Local/x;1", uuid)))
    assert tel.redirects == []  # AMD may still be listening: no Redirect on the bare answer
    assert _state(engine) is AgentState.READY
    clock.advance(2)
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.drain()  # the Redirect runs in a background task
    assert tel.redirects == [("sim", "Local/x;1", dialplan.CTX_AGENT_ROOM, "1001")]
    assert _state(engine) is AgentState.RESERVED
    await engine.handle(
        TelephonyItem("sim", CallConnected(uuid, clock.now(), None, "agent-1001", None))
    )
    assert _state(engine) is AgentState.IN_CALL
    await engine.step()
    assert len([r for _, r in tel.originates if r.context == dialplan.CTX_OUTBOUND]) == 1

    clock.advance(120)
    answered = clock.now() - timedelta(seconds=120)
    await engine.handle(
        TelephonyItem(
            "sim",
            _ended(
                uuid,
                CallOutcome.ANSWERED_CONNECTED,
                clock,
                answered_at=answered,
                connected_at=answered,
            ),
        )
    )
    assert _state(engine) is AgentState.WRAP_UP
    async with sessionmaker() as s:
        lead = await s.get_one(Lead, attempt.lead_id)
    assert lead.status is LeadStatus.IN_PROGRESS  # waits for the disposition
    events = await Streams(redis).read(keys.events_stream, "0")
    types = [e.type for e in events]
    assert "screen_pop" in types and "call_ended" in types


async def test_dialed_at_is_when_the_originate_goes_out_not_the_rounds_start(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim and the attempt row can wait on the database (10 s under SQLite's write lock
    in the live-vs-simulated benchmark): ring times and the pacer's samples start at the
    Originate, so ``dialed_at`` is taken then; ``created_at`` stays the round's time."""
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await make_lead(sessionmaker, camp.id, 0)
    await _ready_agent(engine, tel, camp.id)
    create = engine.store.create_attempt

    async def slow_create(*args: object, **kw: object) -> object:
        clock.advance(10)  # the row waited 10 s for the database
        return await create(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.store, "create_attempt", slow_create)
    start = clock.now()
    await engine.step()
    (req,) = [r for _, r in tel.originates if r.context == dialplan.CTX_OUTBOUND]
    async with sessionmaker() as s:
        attempt = (await s.scalars(sa.select(CallAttempt))).one()
    assert attempt.created_at == start
    assert attempt.dialed_at == start + timedelta(seconds=10)
    assert engine.calls[req.channel_id].dialed_at == start + timedelta(seconds=10)


async def test_no_agent_on_answer_leaves_abandon_to_dialplan(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await make_lead(sessionmaker, camp.id, 1)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    uuid = tel.originates[-1][1].channel_id
    await engine.agent_command(7, "pause", code="break")
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.drain()  # the Redirect runs in a background task
    assert tel.redirects == []
    clock.advance(3)
    await engine.handle(
        TelephonyItem("sim", _ended(uuid, CallOutcome.ABANDONED, clock, answered_at=clock.now()))
    )
    async with sessionmaker() as s:
        lead = (await s.scalars(sa.select(Lead))).one()
    assert lead.last_outcome is CallOutcome.ABANDONED
    assert lead.next_attempt_at is not None
    assert lead.next_attempt_at >= clock.now() + timedelta(hours=72)


async def test_exhausted_lead_goes_to_whatsapp_stream_once(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker, max_attempts=1)
    await make_lead(sessionmaker, camp.id, 1)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    uuid = tel.originates[-1][1].channel_id
    await engine.handle(TelephonyItem("sim", _ended(uuid, CallOutcome.NO_ANSWER, clock)))
    await engine.handle(TelephonyItem("sim", _ended(uuid, CallOutcome.NO_ANSWER, clock)))
    entries = await Streams(redis).read(keys.whatsapp_stream, "0")
    assert [e.type for e in entries] == ["lead_exhausted"]
    assert await engine.republish_outbox() == 1  # still queued until the worker sends it


async def test_agent_channel_hangup_logs_out_at_once(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    from ami_bridge.events import Hangup

    engine, tel, _ = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await _ready_agent(engine, tel, camp.id)
    channel_id = tel.originates[-1][1].channel_id
    fields: dict[str, object] = {f: "" for f in Hangup.__dataclass_fields__}
    fields.update(uniqueid=channel_id, cause=16, cause_txt="Normal Clearing")
    await engine.handle(TelephonyItem("sim", Hangup(**fields)))  # type: ignore[arg-type]
    assert _state(engine) is AgentState.LOGGED_OUT
    assert await redis.hget(keys.agent_state(7), "state") == "logged_out"  # type: ignore[misc]


async def test_preview_offer_call_skip_and_countdown(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    from dialer.domain.outcomes import DialMode

    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker, mode=DialMode.PREVIEW)
    for n in range(3):
        await make_lead(sessionmaker, camp.id, n)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    first = engine.previews[7]
    assert [r.context for _, r in tel.originates] == [dialplan.CTX_AGENT]  # nothing dialed yet
    assert await redis.hget(keys.agent_state(7), "preview_lead") == str(first.lead_id)  # type: ignore[misc]

    assert await engine.preview_skip(7)
    await engine.step()
    second = engine.previews[7]
    assert second.lead_id != first.lead_id  # the skipped lead waits 15 minutes
    async with sessionmaker() as s:
        skipped = await s.get_one(Lead, first.lead_id)
    assert skipped.next_attempt_at == clock.now() + timedelta(minutes=15)

    assert await engine.preview_call(7)
    req = tel.originates[-1][1]
    assert (req.context, req.exten) == (dialplan.CTX_PREVIEW, "1001")
    assert _state(engine) is AgentState.RESERVED
    uuid = req.channel_id
    await engine.handle(
        TelephonyItem("sim", CallConnected(uuid, clock.now(), None, "agent-1001", None))
    )
    assert _state(engine) is AgentState.IN_CALL

    await engine.handle(TelephonyItem("sim", _ended(uuid, CallOutcome.ANSWERED_CONNECTED, clock)))
    assert _state(engine) is AgentState.WRAP_UP
    await engine.agent_command(7, "dispositioned")
    # The countdown: no answer from the agent for 20 s places the call by itself.
    await engine.step()
    assert 7 in engine.previews
    before = len(tel.originates)
    clock.advance(21)
    await engine.step()
    assert len(tel.originates) == before + 1


async def _in_call(engine: Engine, tel: FakeTelephony, camp_id: int) -> str:
    """Agent 7 on a customer call (state set directly: the answer -> connect path is not
    what these tests are about)."""
    await make_lead(engine.store.sm, camp_id, 1)
    await engine.step()
    uuid = [r for _, r in tel.originates if r.context == dialplan.CTX_OUTBOUND][-1].channel_id
    now = engine.clock.now()
    engine.agents[7] = engine.agents[7].reserve(uuid, now).connected(uuid, now)
    return uuid


async def test_supervisor_spy_belongs_to_the_spied_call(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """Issue 14 defect 12: the spy ends when the spied customer leaves (ChanSpy's E would
    follow the agent's nailed-up channel into the next call), and a second request replaces
    the first instead of stacking a second ChanSpy."""
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await _ready_agent(engine, tel, camp.id)
    with pytest.raises(SpyRefused, match="not on a call"):
        await engine.spy(7, "2001", "listen", supervisor_id=99)
    with pytest.raises(ValueError, match="spy mode"):
        await engine.spy(7, "2001", "shout", supervisor_id=99)
    uuid = await _in_call(engine, tel, camp.id)

    first = await engine.spy(7, "2001", "listen", supervisor_id=99)
    req = tel.originates[-1][1]
    assert (req.channel, req.context, req.exten) == ("PJSIP/2001", dialplan.CTX_SPY, "listen")
    assert req.variables[dialplan.VAR_SPY_AGENT] == "1001"
    assert req.channel_id == first.spy_id and first.attempt == uuid
    await engine.handle(
        TelephonyItem("sim", CallAnswered(first.spy_id, clock.now(), "PJSIP/2001-1", first.spy_id))
    )

    second = await engine.spy(7, "2001", "barge", supervisor_id=99)
    assert ("sim", first.spy_id) in tel.hangups  # replaced, not stacked
    assert engine.spies == {"user:99": second.spy_id}
    answered = clock.now()
    await engine.handle(
        TelephonyItem(
            "sim", _ended(first.spy_id, CallOutcome.ABANDONED, clock, answered_at=answered)
        )
    )
    await engine.handle(
        TelephonyItem(
            "sim", CallAnswered(second.spy_id, clock.now(), "PJSIP/2001-2", second.spy_id)
        )
    )
    assert ("sim", second.spy_id) not in tel.hangups

    clock.advance(30)  # the customer hangs up: the spy on their call ends with it
    await engine.handle(
        TelephonyItem(
            "sim",
            _ended(
                uuid,
                CallOutcome.ANSWERED_CONNECTED,
                clock,
                answered_at=answered,
                connected_at=answered,
            ),
        )
    )
    assert ("sim", second.spy_id) in tel.hangups
    await engine.handle(
        TelephonyItem(
            "sim", _ended(second.spy_id, CallOutcome.ABANDONED, clock, answered_at=answered)
        )
    )
    assert engine.spies == {} and engine.spy_calls == {}
    events = [
        e for e in await Streams(redis).read(keys.events_stream, "0") if e.type.startswith("spy_")
    ]
    assert [(e.type, e.data.get("reason")) for e in events] == [
        ("spy_ringing", None),
        ("spy_started", None),
        ("spy_ringing", None),
        ("spy_ended", "replaced"),
        ("spy_started", None),
        ("spy_ended", "call_ended"),
    ]
    assert all("agent_id" not in e.data and e.data["spied_agent_id"] == 7 for e in events)


async def test_supervisor_phone_is_dialled_like_an_agent_phone(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """The supervisor's spy call uses the server's ``agent_channel`` template (a lab virtual
    phone here), not a hard-coded ``PJSIP/``: the real-PBX tier's supervisor has no SIP phone."""
    lab = "Local/{extension}@marcador-lab-vagent"
    clock = FakeClock(MONDAY_10AM)
    tel = FakeTelephony()
    config = EngineConfig(dialer_id="d1", agent_channels={"sim": lab})
    engine = Engine(config, EngineStore(sessionmaker), redis, keys, tel, clock)
    camp = await make_campaign(sessionmaker)
    await make_agent(sessionmaker, 7, "1001")
    await engine.agent_login(7, "1001", camp.id)
    login = tel.originates[-1][1]
    assert login.channel == lab.format(extension="1001")
    await engine.handle(TelephonyItem("sim", _join(login.channel_id, "agent-1001")))
    await _in_call(engine, tel, camp.id)
    await engine.spy(7, "2001", "listen", supervisor_id=99)
    assert tel.originates[-1][1].channel == lab.format(extension="2001")


async def test_supervisor_spy_failures_and_stop_are_reported(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """Issue 14 defect 11: a refused Originate ("Extension does not exist.") or a phone that
    never answers is reported as ``spy_failed`` (the API shows it), never silently dropped."""
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await _ready_agent(engine, tel, camp.id)

    def cmd(type_: str, **data: object) -> StreamEntry:
        return StreamEntry(keys.commands_stream, f"1-{len(tel.originates)}{type_}", type_, data)

    spy = {"agent_id": 7, "supervisor_id": 99, "supervisor_extension": "2001", "mode": "listen"}
    await engine.handle_command(cmd("spy", **spy))  # not on a call
    await _in_call(engine, tel, camp.id)
    tel.fail_originate = True
    await engine.handle_command(cmd("spy", **spy))  # the PBX refuses the Originate
    assert engine.spies == {} and engine.spy_calls == {}
    tel.fail_originate = False
    await engine.handle_command(cmd("spy", **spy))
    (spy_id,) = engine.spies.values()
    await engine.handle(
        TelephonyItem("sim", _ended(spy_id, CallOutcome.FAILED, clock, detail="no channel created"))
    )  # the supervisor's phone is not registered
    await engine.handle_command(cmd("spy", **spy))
    (spy_id,) = engine.spies.values()
    await engine.handle_command(cmd("spy_stop", supervisor_id=99, agent_id=7))
    assert ("sim", spy_id) in tel.hangups
    await engine.handle(TelephonyItem("sim", _ended(spy_id, CallOutcome.CANCELLED, clock)))
    events = [
        e for e in await Streams(redis).read(keys.events_stream, "0") if e.type.startswith("spy_")
    ]
    got = [(e.type, e.data.get("code"), e.data.get("reason")) for e in events]
    assert got[0] == ("spy_failed", "agent_not_in_call", "agent 7 is not on a call")
    assert got[1][:2] == ("spy_failed", "pbx_refused")
    assert got[2:] == [
        ("spy_ringing", None, None),
        ("spy_failed", None, "no channel created"),
        ("spy_ringing", None, None),
        ("spy_ended", None, "stopped"),
    ]
    assert all(e.data["command_id"] for e in events)


async def test_lead_without_a_dialable_phone_is_closed_not_retried(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eligibility passed at claim time, but no phone is left when the attempt row is written
    (a race with a DNC update or a per-phone quota): the lead is closed, the round goes on."""
    engine, tel, _clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    bad = await make_lead(sessionmaker, camp.id, 1)
    good = await make_lead(sessionmaker, camp.id, 2)
    real_next_phone = engine.store._next_phone

    async def next_phone(s: AsyncSession, lead: Lead, campaign: Campaign) -> Phone:
        if lead.id == bad.id:
            raise NoDialablePhone("the lead has no dialable phone with attempts left")
        return await real_next_phone(s, lead, campaign)

    monkeypatch.setattr(engine.store, "_next_phone", next_phone)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    async with sessionmaker() as s:
        closed = await s.get_one(Lead, bad.id)
        claims = list(await s.scalars(sa.select(LeadClaim.lead_id)))
        dialed = list(await s.scalars(sa.select(CallAttempt.lead_id)))
    assert closed.status is LeadStatus.EXCLUDED
    assert closed.status_reason == "no_dialable_phone"
    assert bad.id not in claims
    assert dialed == [good.id]  # the round went on with the next lead


async def test_agent_who_becomes_ready_takes_the_oldest_call_waiting_in_hold(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """Issue 14 defect 2: a customer in hold gets the agent who frees up (ready, disposition)."""
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    for n in range(2):
        await make_lead(sessionmaker, camp.id, n)
    await _ready_agent(engine, tel, camp.id)
    await _ready_agent(engine, tel, camp.id, 8, "1002")
    await engine.step()  # progressive: one call per READY agent
    uuids = [r.channel_id for _, r in tel.originates if r.context == dialplan.CTX_OUTBOUND]
    assert len(uuids) == 2
    first, second = uuids
    await engine.agent_command(7, "pause", code="break")
    await engine.agent_command(8, "pause", code="lunch")
    # two customers reach hold while the only agent is on a break: they wait
    for i, uuid in enumerate((second, first)):  # `second` has waited longer
        clock.advance(0.3)
        chan = f"Local/{uuid};1"
        await engine.handle(TelephonyItem("sim", CallAnswered(uuid, clock.now(), chan, uuid)))
        await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), chan, uuid)))
        del i
    assert tel.redirects == []
    clock.advance(0.5)
    await engine.agent_command(7, "ready")
    await engine.drain()  # the Redirect runs in a background task
    assert tel.redirects == [("sim", f"Local/{second};1", dialplan.CTX_AGENT_ROOM, "1001")]
    assert _state(engine) is AgentState.RESERVED
    assert engine.agents[7].call_attempt == second
    # connected, ended, dispositioned -> the other waiting customer (still in hold) is next
    await engine.handle(
        TelephonyItem("sim", CallConnected(second, clock.now(), None, "agent-1001", None))
    )
    clock.advance(1)
    await engine.handle(
        TelephonyItem(
            "sim",
            _ended(
                second,
                CallOutcome.ANSWERED_CONNECTED,
                clock,
                answered_at=clock.now(),
                connected_at=clock.now(),
            ),
        )
    )
    assert _state(engine) is AgentState.WRAP_UP
    assert len(tel.redirects) == 1
    await engine.agent_command(7, "dispositioned")
    await engine.drain()  # the Redirect runs in a background task
    assert tel.redirects[-1] == ("sim", f"Local/{first};1", dialplan.CTX_AGENT_ROOM, "1001")
    assert engine.agents[7].call_attempt == first


async def test_redirect_losing_the_race_with_safe_harbor_frees_the_agent(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """The safe-harbor path starts as the Redirect is sent: the call is ABANDONED, the agent is
    released at once (the dialplan sends the customer back to the safe harbor) and is not
    recorded on the call."""
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await make_lead(sessionmaker, camp.id, 1)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    uuid = tel.originates[-1][1].channel_id
    await engine.agent_command(7, "pause", code="break")
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), "Local/x;1", uuid)))
    clock.advance(1.99)
    await engine.agent_command(7, "ready")
    await engine.drain()  # the Redirect runs in a background task
    assert len(tel.redirects) == 1 and _state(engine) is AgentState.RESERVED
    clock.advance(0.02)
    await engine.handle(TelephonyItem("sim", CallAbandoning(uuid, clock.now())))
    assert _state(engine) is AgentState.READY
    assert engine.agents[7].call_attempt is None
    clock.advance(3)
    await engine.handle(
        TelephonyItem("sim", _ended(uuid, CallOutcome.ABANDONED, clock, answered_at=clock.now()))
    )
    assert _state(engine) is AgentState.READY
    assert len(tel.redirects) == 1  # never offered again
    async with sessionmaker() as s:
        attempt = (await s.scalars(sa.select(CallAttempt))).one()
    assert attempt.outcome is CallOutcome.ABANDONED and attempt.agent_id is None


async def test_agent_joining_the_room_takes_a_call_waiting_in_hold(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await make_lead(sessionmaker, camp.id, 1)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    uuid = tel.originates[-1][1].channel_id
    await engine.agent_command(7, "logout")
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.drain()  # the Redirect runs in a background task
    assert tel.redirects == []
    await make_agent(sessionmaker, 8, "1002")
    await engine.agent_login(8, "1002", camp.id)
    login = tel.originates[-1][1]
    assert tel.redirects == []  # still connecting: not in the room yet
    await engine.handle(TelephonyItem("sim", _join(login.channel_id, "agent-1002")))
    await engine.drain()  # the Redirect runs in a background task
    assert tel.redirects == [("sim", "Local/x;1", dialplan.CTX_AGENT_ROOM, "1002")]
    assert _state(engine, 8) is AgentState.RESERVED


async def test_failed_redirect_frees_the_agent_and_the_call_is_not_offered_again(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await make_lead(sessionmaker, camp.id, 1)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    uuid = tel.originates[-1][1].channel_id

    async def gone(server: str, channel: str, context: str, exten: str) -> None:
        tel.redirects.append((server, channel, context, exten))
        raise AMIError("Channel does not exist")

    tel.redirect = gone  # type: ignore[method-assign]
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.drain()  # the Redirect runs in a background task
    assert len(tel.redirects) == 1
    assert _state(engine) is AgentState.READY
    await engine.agent_command(7, "pause", code="break")
    await engine.agent_command(7, "ready")
    await engine.drain()  # the Redirect runs in a background task
    assert len(tel.redirects) == 1


async def test_claim_kept_for_nothing_is_released_after_two_rounds(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """A connected call's lead waits for its agent's disposition; if that agent stops owing it
    by a path that did not free the lead, the dialer no longer keeps renewing the claim (the
    pg-private chaos run found leads left ``in_progress`` that way)."""
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await make_lead(sessionmaker, camp.id, 1)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    uuid = next(r for _, r in tel.originates if r.context == dialplan.CTX_OUTBOUND).channel_id
    clock.advance(8)
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), "Local/x;1", uuid)))
    await engine.drain()
    await engine.handle(
        TelephonyItem("sim", CallConnected(uuid, clock.now(), None, "agent-1001", None))
    )
    clock.advance(60)
    at = clock.now() - timedelta(seconds=60)
    ended = _ended(uuid, CallOutcome.ANSWERED_CONNECTED, clock, answered_at=at, connected_at=at)
    await engine.handle(TelephonyItem("sim", ended))
    assert _state(engine) is AgentState.WRAP_UP
    # The agent owes the disposition: two rounds change nothing.
    assert await engine.release_idle_claims() == []
    assert await engine.release_idle_claims() == []
    async with sessionmaker() as s:
        lead_id = (await s.scalars(sa.select(Lead.id))).one()
        assert (await s.get_one(Lead, lead_id)).status is LeadStatus.IN_PROGRESS
    # Now the agent no longer holds the call (a path that did not free the lead).
    agent = engine.agents[7]
    engine.agents[7] = replace(agent, state=AgentState.READY, call_attempt=None)
    assert await engine.release_idle_claims() == []  # seen idle once: not yet
    assert await engine.release_idle_claims() == [lead_id]
    async with sessionmaker() as s:  # back in the pool (the same release as _leave_wrap_up)
        assert (await s.get_one(Lead, lead_id)).status is not LeadStatus.IN_PROGRESS
