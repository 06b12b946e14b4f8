"""The rejoin grace of browser-phone agents (issue 15) in the engine, on a fake clock and fake
telephony: the session call ends mid-call, the agent stays IN_CALL ("reconnecting") until the
grace expires; a login re-originates the session into the same room; the expiry logs the agent
out, hangs up the customer (ConfBridge does not: the agent is unmarked) and a ringing rejoin."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge import dialplan
from ami_bridge.tracker import CallAnswered, CallConnected, CallHeld
from dialer.domain.clock import FakeClock
from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.engine import Engine, EngineConfig, TelephonyItem
from dialer.engine.controls import CallControlRefused
from dialer.redis_keys import Keys
from dialer.store import EngineStore

from .factories import MONDAY_10AM, make_agent, make_campaign, make_lead
from .fakes import FakeTelephony
from .test_engine import _ended, _join

CUSTOMER = "Local/x;1"


async def _in_call(
    sm: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys, browser: str
) -> tuple[Engine, FakeTelephony, FakeClock, str, int]:
    """Agent 7 (extension 1101) on a connected progressive call; ``browser`` seats."""
    clock = FakeClock(MONDAY_10AM)
    tel = FakeTelephony()
    config = EngineConfig(
        dialer_id="d1", rejoinable_extensions=browser, rejoin_grace=timedelta(seconds=30)
    )
    engine = Engine(config, EngineStore(sm), redis, keys, tel, clock)
    camp = await make_campaign(sm)
    await make_lead(sm, camp.id, 1)
    await make_agent(sm, 7, "1101")
    await engine.agent_login(7, "1101", camp.id)
    login = tel.originates[-1][1]
    assert login.variables == ({dialplan.VAR_REJOINABLE: "1"} if browser else {})
    await engine.handle(TelephonyItem("sim", _join(login.channel_id, "agent-1101")))
    await engine.step()
    uuid = next(r for _, r in tel.originates if r.context == dialplan.CTX_OUTBOUND).channel_id
    clock.advance(5)
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, clock.now(), CUSTOMER, uuid)))
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, clock.now(), CUSTOMER, uuid)))
    await engine.drain()
    await engine.handle(
        TelephonyItem("sim", CallConnected(uuid, clock.now(), None, "agent-1101", None))
    )
    assert engine.agents[7].state is AgentState.IN_CALL
    return engine, tel, clock, login.channel_id, camp.id


async def test_the_session_is_kept_for_the_grace_and_a_login_rejoins_it(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock, session, camp = await _in_call(sessionmaker, redis, keys, "1101-1110")
    attempt = engine.agents[7].call_attempt
    clock.advance(10)
    await engine.handle(
        TelephonyItem("sim", _ended(session, CallOutcome.ANSWERED_CONNECTED, clock))
    )
    agent = engine.agents[7]
    assert agent.state is AgentState.IN_CALL and agent.is_reconnecting
    assert agent.rejoin_deadline == clock.now() + timedelta(seconds=30)
    clock.advance(29)
    await engine.step()
    assert engine.agents[7].is_reconnecting and tel.hangups == []  # still within the grace

    await engine.agent_login(7, "1101", camp)
    rejoin = tel.originates[-1][1]
    assert rejoin.context == dialplan.CTX_AGENT and rejoin.exten == "1101"
    assert rejoin.channel_id != session and rejoin.variables == {dialplan.VAR_REJOINABLE: "1"}
    await engine.handle(TelephonyItem("sim", _join(rejoin.channel_id, "agent-1101")))
    agent = engine.agents[7]
    assert agent.state is AgentState.IN_CALL and agent.call_attempt == attempt
    assert agent.room_joined and not agent.is_reconnecting
    clock.advance(60)
    await engine.step()
    assert engine.agents[7].state is AgentState.IN_CALL and tel.hangups == []


async def test_the_grace_expires_the_customer_and_a_ringing_rejoin_are_hung_up(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock, session, camp = await _in_call(sessionmaker, redis, keys, "1101")
    await engine.handle(
        TelephonyItem("sim", _ended(session, CallOutcome.ANSWERED_CONNECTED, clock))
    )
    await engine.agent_login(7, "1101", camp)  # the seat rings but is never answered
    rejoin = tel.originates[-1][1].channel_id
    clock.advance(30)
    await engine.step()
    assert engine.agents[7].state is AgentState.LOGGED_OUT
    assert not engine.agents[7].is_reconnecting
    assert ("sim", CUSTOMER) in tel.hangups and ("sim", rejoin) in tel.hangups


async def test_a_hardware_softphone_is_logged_out_at_once(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock, session, _ = await _in_call(sessionmaker, redis, keys, "")
    await engine.handle(
        TelephonyItem("sim", _ended(session, CallOutcome.ANSWERED_CONNECTED, clock))
    )
    assert engine.agents[7].state is AgentState.LOGGED_OUT
    assert tel.hangups == []  # ConfBridge ends the customer with the (marked) agent


async def test_a_muted_agent_who_rejoins_is_muted_again(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock, session, camp = await _in_call(sessionmaker, redis, keys, "1101-1110")
    attempt = engine.agents[7].call_attempt
    engine.agent_room_channel[7] = "PJSIP/1101-00000001"
    await engine.call_control(7, "mute", attempt=attempt)
    assert tel.mutes[-1][3] is True
    clock.advance(5)
    await engine.handle(
        TelephonyItem("sim", _ended(session, CallOutcome.ANSWERED_CONNECTED, clock))
    )
    await engine.agent_login(7, "1101", camp)
    rejoin = tel.originates[-1][1]
    join = replace(_join(rejoin.channel_id, "agent-1101"), channel="PJSIP/1101-00000002")
    await engine.handle(TelephonyItem("sim", join))
    # the new channel joins the room unmuted: the mute the agent screen shows is applied again
    _server, room, channel, mute = tel.mutes[-1]
    assert (room, mute) == (dialplan.agent_room("1101"), True)
    assert channel == "PJSIP/1101-00000002" and len(tel.mutes) == 2
    assert engine.calls[attempt or ""].muted


async def test_an_unmuted_agent_who_rejoins_is_left_alone(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock, session, camp = await _in_call(sessionmaker, redis, keys, "1101-1110")
    clock.advance(5)
    await engine.handle(
        TelephonyItem("sim", _ended(session, CallOutcome.ANSWERED_CONNECTED, clock))
    )
    await engine.agent_login(7, "1101", camp)
    rejoin = tel.originates[-1][1]
    await engine.handle(TelephonyItem("sim", _join(rejoin.channel_id, "agent-1101")))
    assert engine.agents[7].room_joined and tel.mutes == []


async def test_a_customer_on_hold_is_resumed_only_once_the_agent_is_back(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock, session, camp = await _in_call(sessionmaker, redis, keys, "1101-1110")
    attempt = engine.agents[7].call_attempt
    await engine.call_control(7, "hold", attempt=attempt)
    redirects = len(tel.redirects)
    clock.advance(5)
    await engine.handle(
        TelephonyItem("sim", _ended(session, CallOutcome.ANSWERED_CONNECTED, clock))
    )
    assert engine.agents[7].is_reconnecting
    # Resumed into an empty room the customer would be taken for an abandon: refused.
    with pytest.raises(CallControlRefused) as refused:
        await engine.call_control(7, "resume", attempt=attempt)
    assert refused.value.code == "agent_reconnecting"
    assert len(tel.redirects) == redirects and engine.calls[attempt or ""].on_hold_since

    await engine.agent_login(7, "1101", camp)
    await engine.handle(TelephonyItem("sim", _join(tel.originates[-1][1].channel_id, "agent-1101")))
    await engine.call_control(7, "resume", attempt=attempt)
    assert tel.redirects[-1][2] == dialplan.CTX_AGENT_ROOM
    assert engine.calls[attempt or ""].on_hold_since is None
