"""A dialer killed mid-call and started again under the same name (issue 14, defects 4-7).

The first engine stands for the killed process: it is simply dropped (no logout, no hangup,
no acknowledgement of what it read). The second one has the same name and a new run id, as
``marcador dialer --name`` gives after a restart. The PBX is the fake's CoreShowChannels list,
shaped as Asterisk lists it (transcript 20): the customer's channel has the attempt id as its
Uniqueid, its dialplan position says where it is (``marcador-agent-room``/<ext> once
redirected to an agent), and the agent's session call is ``PJSIP/<ext>-…`` in
``marcador-agent``/<ext>.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import dialer.engine.commands as engine_mod
from ami_bridge import dialplan
from ami_bridge.actions import ChannelInfo
from ami_bridge.tracker import CallAnswered, CallConnected, CallHeld
from dialer.db.models import CallAttempt, Campaign, Lead, LeadClaim
from dialer.domain.clock import FakeClock
from dialer.domain.dispositions import DispositionRecord, validate_disposition
from dialer.domain.outcomes import AgentState, CallOutcome, CampaignStatus, LeadStatus
from dialer.engine import Engine, EngineConfig, TelephonyItem
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from dialer.store import EngineStore

from .factories import MONDAY_10AM, make_agent, make_campaign, make_lead
from .fakes import FakeTelephony, channel_info
from .test_engine import _ended, _join

AGENT, EXT = 7, "1001"


async def _result(redis: aioredis.Redis, keys: Keys, command_id: str) -> dict[str, object]:
    """Wait (blocking XREAD, bounded) for the dialer's ``command_result`` event."""
    streams, last = Streams(redis), "0"
    async with asyncio.timeout(10):
        while True:
            for entry in await streams.read(keys.events_stream, last, block_ms=200):
                last = entry.id
                if entry.type == "command_result" and entry.data["command_id"] == command_id:
                    return entry.data


def _new(
    sm: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
    run: str,
    clock: FakeClock,
    tel: FakeTelephony | None = None,
) -> tuple[Engine, FakeTelephony]:
    tel = tel or FakeTelephony()
    cfg = EngineConfig(dialer_id=f"d1.{run}", dialer_name="d1")
    return Engine(cfg, EngineStore(sm), redis, keys, tel, clock), tel


async def _connected_call(
    sm: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> tuple[Engine, FakeTelephony, FakeClock, int, str, str]:
    """First run: agent 7 logged in, one customer connected to them (IN_CALL)."""
    clock = FakeClock(MONDAY_10AM)
    engine, tel = _new(sm, redis, keys, "aaa", clock)
    camp = await make_campaign(sm)
    await make_lead(sm, camp.id, 1)
    await make_agent(sm, AGENT, EXT)
    await engine.step()
    await engine.agent_login(AGENT, EXT, camp.id)
    session = tel.originates[-1][1].channel_id
    await engine.handle(TelephonyItem("sim", _join(session, dialplan.agent_room(EXT))))
    await engine.step()
    uuid = tel.originates[-1][1].channel_id
    clock.advance(8)
    await engine.handle(
        TelephonyItem("sim", CallAnswered(uuid, clock.now(), "PJSIP/trunk-1", uuid))
    )
    # The dialplan's verdict (hold reached): only now does the engine pick the agent.
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), "PJSIP/trunk-1", uuid)))
    await engine.handle(
        TelephonyItem("sim", CallConnected(uuid, clock.now(), None, dialplan.agent_room(EXT), None))
    )
    assert engine.agents[AGENT].state is AgentState.IN_CALL
    return engine, tel, clock, camp.id, uuid, session


def _session_channel(session: str, name: str = f"PJSIP/{EXT}-00000001") -> ChannelInfo:
    return channel_info(
        session,
        channel=name,
        context=dialplan.CTX_AGENT,
        exten=EXT,
        application="ConfBridge",
        application_data=f"{dialplan.agent_room(EXT)},marcador_room,marcador_agent",
    )


async def test_call_that_ended_while_no_dialer_ran_is_connected_and_gets_its_wrap_up(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    _, _, clock, camp_id, uuid, session = await _connected_call(sessionmaker, redis, keys)
    clock.advance(30)  # the dialer is killed; the customer talks, then hangs up
    engine, tel = _new(sessionmaker, redis, keys, "bbb", clock)
    tel.channels = [_session_channel(session)]
    await engine.step()  # owns the campaign, restores agent 7
    await engine.maintenance()  # reconciles at once: the claim belongs to a dead run of d1
    async with sessionmaker() as s:
        att = (await s.scalars(sa.select(CallAttempt).where(CallAttempt.uuid == uuid))).one()
        claim = await s.get_one(LeadClaim, att.lead_id)
        lead = await s.get_one(Lead, att.lead_id)
    assert att.outcome is CallOutcome.ANSWERED_CONNECTED, att.detail
    assert att.agent_id == AGENT and att.connected_at is not None
    assert lead.status is LeadStatus.IN_PROGRESS  # waits for the disposition: no redial
    assert claim.owner == "d1.bbb"
    agent = engine.agents[AGENT]
    assert agent.state is AgentState.WRAP_UP and agent.call_attempt == uuid
    # The agent can disposition it; the lead is then decided once.
    camp = await engine.store.campaign(camp_id)
    assert camp is not None
    record: DispositionRecord = validate_disposition(
        camp.type, "no_interesado", {"reason": "precio"}, clock.now()
    )
    result = await engine.store.record_disposition(uuid, record, clock.now(), agent_id=AGENT)
    assert result.decision is not None
    await engine.agent_command(AGENT, "dispositioned")
    assert engine.agents[AGENT].state is AgentState.READY
    assert [r for _, r in tel.originates] == []  # nothing re-dialed


async def test_call_still_up_after_restart_is_adopted_and_followed_to_its_end(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    _, _, clock, _, uuid, session = await _connected_call(sessionmaker, redis, keys)
    clock.advance(5)
    engine, tel = _new(sessionmaker, redis, keys, "bbb", clock)
    customer = channel_info(
        uuid,
        channel="PJSIP/trunk-00000002",
        context=dialplan.CTX_AGENT_ROOM,
        exten=EXT,
        application="ConfBridge",
        application_data=f"{dialplan.agent_room(EXT)},marcador_room,marcador_customer",
    )
    tel.channels = [_session_channel(session), customer]
    await engine.step()
    await engine.maintenance()
    assert [a[1] for a in tel.adopted] == [uuid]
    assert tel.adopted[0][2]["conference"] == dialplan.agent_room(EXT)
    assert engine.calls[uuid].agent_id == AGENT
    assert engine.agents[AGENT].state is AgentState.IN_CALL
    assert engine.agents[AGENT].call_attempt == uuid
    async with sessionmaker() as s:
        att = (await s.scalars(sa.select(CallAttempt).where(CallAttempt.uuid == uuid))).one()
        claim = await s.get_one(LeadClaim, att.lead_id)
    assert att.outcome is None and claim.owner == "d1.bbb"
    # A second round does not adopt twice.
    await engine.maintenance()
    assert len(tel.adopted) == 1
    clock.advance(20)
    at = clock.now() - timedelta(seconds=25)
    ended = _ended(uuid, CallOutcome.ANSWERED_CONNECTED, clock, answered_at=at, connected_at=at)
    await engine.handle(TelephonyItem("sim", ended))
    async with sessionmaker() as s:
        att = (await s.scalars(sa.select(CallAttempt).where(CallAttempt.uuid == uuid))).one()
    assert att.outcome is CallOutcome.ANSWERED_CONNECTED and att.agent_id == AGENT
    assert engine.agents[AGENT].state is AgentState.WRAP_UP


async def test_nothing_known_is_still_failed_and_counted(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """A call that never reached an agent and vanished keeps the old, safe rule."""
    clock = FakeClock(MONDAY_10AM)
    first, tel1 = _new(sessionmaker, redis, keys, "aaa", clock)
    camp = await make_campaign(sessionmaker)
    await make_lead(sessionmaker, camp.id, 1)
    await make_agent(sessionmaker, AGENT, EXT)
    await first.step()
    await first.agent_login(AGENT, EXT, camp.id)
    await first.handle(TelephonyItem("sim", _join(tel1.originates[-1][1].channel_id, "agent-1001")))
    await first.step()
    uuid = tel1.originates[-1][1].channel_id
    engine, _tel = _new(sessionmaker, redis, keys, "bbb", clock)
    await engine.step()
    await engine.maintenance()
    async with sessionmaker() as s:
        att = (await s.scalars(sa.select(CallAttempt).where(CallAttempt.uuid == uuid))).one()
    assert att.outcome is CallOutcome.FAILED and att.counts_against_limit


async def test_restored_agent_with_nothing_to_disposition_is_ready_not_stuck(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    first, _, clock, _, uuid, session = await _connected_call(sessionmaker, redis, keys)
    clock.advance(40)
    ended = _ended(
        uuid,
        CallOutcome.ANSWERED_CONNECTED,
        clock,
        answered_at=clock.now() - timedelta(seconds=40),
        connected_at=clock.now() - timedelta(seconds=40),
    )
    await first.handle(TelephonyItem("sim", ended))
    assert first.agents[AGENT].state is AgentState.WRAP_UP
    # The disposition is recorded by the API (200) right after the kill.
    camp = await first.store.campaign(first.agents[AGENT].campaign_id or 0)
    assert camp is not None
    record = validate_disposition(camp.type, "no_interesado", {"reason": "precio"}, clock.now())
    await first.store.record_disposition(uuid, record, clock.now(), agent_id=AGENT)
    engine, tel = _new(sessionmaker, redis, keys, "bbb", clock)
    tel.channels = [_session_channel(session)]
    await engine.step()
    assert engine.agents[AGENT].state is AgentState.READY  # not WRAP_UP with no call
    assert engine.agents[AGENT].call_attempt is None


async def test_disposition_command_read_by_the_killed_run_is_applied_after_restart(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    first, _, clock, _, uuid, session = await _connected_call(sessionmaker, redis, keys)
    ended = _ended(
        uuid,
        CallOutcome.ANSWERED_CONNECTED,
        clock,
        answered_at=clock.now(),
        connected_at=clock.now(),
    )
    await first.handle(TelephonyItem("sim", ended))
    streams = Streams(redis)
    await streams.ensure_group(keys.commands_stream, first.command_group, "$")
    cid = await streams.add(
        keys.commands_stream, "agent_dispositioned", {"agent_id": AGENT, "pause_code": "break"}
    )
    # The killed run had read it (pending in the group) and never acknowledged it.
    read = await streams.read_group(keys.commands_stream, first.command_group, "d1.aaa")
    assert [e.id for e in read] == [cid]
    engine, tel = _new(sessionmaker, redis, keys, "bbb", clock)
    tel.channels = [_session_channel(session)]
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop, tick=0.02))
    try:
        result = await _result(redis, keys, cid)
    finally:
        stop.set()
        await task
    assert result["status"] == "accepted"
    assert engine.agents[AGENT].state is AgentState.PAUSED
    assert engine.agents[AGENT].pause_code == "break"


async def test_logout_after_restart_hangs_up_the_session_call_found_on_the_pbx(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    _, _, clock, camp_id, uuid, session = await _connected_call(sessionmaker, redis, keys)
    ended = _ended(
        uuid,
        CallOutcome.ANSWERED_CONNECTED,
        clock,
        answered_at=clock.now(),
        connected_at=clock.now(),
    )
    engine, tel = _new(sessionmaker, redis, keys, "bbb", clock)
    leftover = channel_info(
        "agent-7-0123456789ab",
        channel=f"PJSIP/{EXT}-00000009",
        context=dialplan.CTX_AGENT,
        exten=EXT,
    )
    tel.channels = [_session_channel(session), leftover]
    await engine.step()
    await engine.maintenance()
    await engine.handle(TelephonyItem("sim", ended))
    await engine.agent_command(AGENT, "logout")
    assert engine.agents[AGENT].state is AgentState.LOGGED_OUT
    hung = {ch for _, ch in tel.hangups}
    assert {f"PJSIP/{EXT}-00000001", f"PJSIP/{EXT}-00000009"} <= hung
    # Log in again while a leftover is still there: it is hung up before the new call.
    tel.hangups.clear()
    colleague = channel_info(
        "agent-8-0123456789ab", channel="PJSIP/1002-0000000a", context=dialplan.CTX_AGENT, exten=EXT
    )
    tel.channels = [leftover, colleague]
    await engine.agent_login(AGENT, EXT, camp_id)
    assert ("sim", f"PJSIP/{EXT}-00000009") in tel.hangups
    assert ("sim", "PJSIP/1002-0000000a") not in tel.hangups  # another agent's session
    assert tel.originates[-1][1].channel == f"PJSIP/{EXT}"


async def test_login_for_a_campaign_no_dialer_runs_is_refused_with_a_reason(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_mod, "COMMAND_RETRY_S", 0.3)
    clock = FakeClock(MONDAY_10AM)
    engine, tel = _new(sessionmaker, redis, keys, "aaa", clock)
    camp = await make_campaign(sessionmaker)
    async with sessionmaker.begin() as s:
        row = await s.get_one(Campaign, camp.id)
        row.status = CampaignStatus.DRAFT
    late = await make_campaign(sessionmaker, name="Arranca tarde")
    async with sessionmaker.begin() as s:
        row = await s.get_one(Campaign, late.id)
        row.status = CampaignStatus.DRAFT
    await make_agent(sessionmaker, AGENT, EXT)
    await make_agent(sessionmaker, 8, "1002")
    streams = Streams(redis)
    await streams.ensure_group(keys.commands_stream, engine.command_group, "$")
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop, tick=0.02))
    try:
        refused = await streams.add(
            keys.commands_stream,
            "agent_login",
            {"agent_id": AGENT, "extension": EXT, "campaign_id": camp.id},
        )
        started = await streams.add(
            keys.commands_stream,
            "agent_login",
            {"agent_id": 8, "extension": "1002", "campaign_id": late.id},
        )
        async with sessionmaker.begin() as s:  # the campaign starts right after the login
            row = await s.get_one(Campaign, late.id)
            row.status = CampaignStatus.RUNNING
        yes = await _result(redis, keys, started)
        no = await _result(redis, keys, refused)
    finally:
        stop.set()
        await task
    assert no["status"] == "rejected" and f"campaign {camp.id}" in str(no["message"])
    assert yes["status"] == "accepted"
    stored = json.loads(await redis.get(keys.command_result(refused)) or "{}")
    assert stored == no
    assert tel.originates[-1][1].channel == "PJSIP/1002"


async def test_logout_in_wrap_up_without_disposition_frees_the_lead(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """The reconciled call's lead is claimed for the agent's disposition; if the agent leaves
    instead, the lead must not stay ``in_progress`` for ever (found by scripts/chaos.py)."""
    _, _, clock, _, uuid, session = await _connected_call(sessionmaker, redis, keys)
    engine, tel = _new(sessionmaker, redis, keys, "bbb", clock)
    tel.channels = [_session_channel(session)]
    await engine.step()
    await engine.maintenance()
    assert engine.agents[AGENT].state is AgentState.WRAP_UP
    await engine.agent_command(AGENT, "logout")
    async with sessionmaker() as s:
        att = (await s.scalars(sa.select(CallAttempt).where(CallAttempt.uuid == uuid))).one()
        lead = await s.get_one(Lead, att.lead_id)
        claim = await s.get(LeadClaim, att.lead_id)
    assert claim is None and lead.status in (LeadStatus.NEW, LeadStatus.PENDING)
