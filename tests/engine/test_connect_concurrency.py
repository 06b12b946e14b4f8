"""The answer -> Redirect path does not wait on other calls' IO (docs/benchmarks.md, "Real PBX").

The reservation is decided synchronously in ``Assigner.connect``; the Redirect runs in a
background task. These tests hold a Redirect in flight (a gate) and check that other calls go
on, and that a late failure only undoes what still belongs to its own call.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge import dialplan
from ami_bridge.errors import AMIError
from ami_bridge.tracker import CallAbandoning, CallAnswered, CallConnected, CallHeld
from dialer.db.models import AgentStateLog
from dialer.domain.clock import FakeClock
from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.engine import Engine, TelephonyItem
from dialer.redis_keys import Keys

from .factories import make_campaign, make_lead
from .fakes import FakeTelephony
from .test_engine import _ended, _engine, _ready_agent, _state

WAIT = 5.0  # bound on every wait (real seconds); the events come at once when all is well


class GatedRedirects:
    """Redirects of the channels in ``held`` wait for their gate; ``fail`` ones then raise."""

    def __init__(self, tel: FakeTelephony) -> None:
        self.tel = tel
        self.gates: dict[str, asyncio.Event] = {}
        self.fail: set[str] = set()
        self.sent: dict[str, asyncio.Event] = {}

    @classmethod
    def install(cls, tel: FakeTelephony) -> GatedRedirects:
        """Gate the Redirects of ``tel`` from now on."""
        gated = cls(tel)
        tel.redirect = gated  # type: ignore[method-assign]
        return gated

    def hold(self, channel: str) -> None:
        self.gates[channel] = asyncio.Event()

    def sent_event(self, channel: str) -> asyncio.Event:
        return self.sent.setdefault(channel, asyncio.Event())

    async def __call__(self, server: str, channel: str, context: str, exten: str) -> None:
        self.tel.redirects.append((server, channel, context, exten))
        self.sent_event(channel).set()
        gate = self.gates.get(channel)
        if gate is not None:
            await gate.wait()
        if channel in self.fail:
            raise AMIError("Channel does not exist")


async def _two_calls(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> tuple[Engine, FakeTelephony, FakeClock, list[str]]:
    """Two leads dialed for two ready agents (7 on 1001, 8 on 1002): their call ids."""
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    for n in range(2):
        await make_lead(sessionmaker, camp.id, n)
    await _ready_agent(engine, tel, camp.id)
    await _ready_agent(engine, tel, camp.id, 8, "1002")
    await engine.step()
    calls = [r.channel_id for _, r in tel.originates if r.context == dialplan.CTX_OUTBOUND]
    return engine, tel, clock, calls


async def _gated_call(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> tuple[Engine, FakeClock, GatedRedirects, str, str]:
    """One lead dialed for a ready agent (7 on 1001), its Redirect held at the gate:
    (engine, clock, gate, call id, the call's ``;1`` channel)."""
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    await make_lead(sessionmaker, camp.id, 1)
    await _ready_agent(engine, tel, camp.id)
    await engine.step()
    uuid = tel.originates[-1][1].channel_id
    gated = GatedRedirects.install(tel)
    chan = f"Local/{uuid};1"
    gated.hold(chan)
    return engine, clock, gated, uuid, chan


async def _held(engine: Engine, uuid: str, chan: str) -> None:
    now = engine.clock.now()
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, now, chan, uuid)))
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, now, chan, uuid)))


async def test_a_slow_redirect_does_not_hold_up_the_next_call(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock, (first, second) = await _two_calls(sessionmaker, redis, keys)
    gated = GatedRedirects.install(tel)
    gated.hold(f"Local/{first};1")  # its AMI Response is slow

    await asyncio.wait_for(_held(engine, first, f"Local/{first};1"), WAIT)
    await asyncio.wait_for(_held(engine, second, f"Local/{second};1"), WAIT)
    await asyncio.wait_for(gated.sent_event(f"Local/{second};1").wait(), WAIT)
    assert {engine.calls[first].agent_id, engine.calls[second].agent_id} == {7, 8}
    assert _state(engine, 7) is _state(engine, 8) is AgentState.RESERVED

    gated.gates[f"Local/{first};1"].set()
    assert await engine.drain(WAIT)
    for uuid in (first, second):
        agent_id = engine.calls[uuid].agent_id
        assert agent_id is not None
        await engine.handle(
            TelephonyItem("sim", CallConnected(uuid, clock.now(), None, "agent-x", None))
        )
        assert _state(engine, agent_id) is AgentState.IN_CALL
    assert await engine.drain(WAIT)
    async with sessionmaker() as s:  # the state rows, written in the background, in order
        rows = (await s.scalars(sa.select(AgentStateLog).order_by(AgentStateLog.id))).all()
    for agent_id in (7, 8):
        states = [r.state for r in rows if r.user_id == agent_id]
        assert states[-2:] == [AgentState.RESERVED, AgentState.IN_CALL]
        assert [r for r in rows if r.user_id == agent_id and r.ended_at is None] == [
            r for r in rows if r.user_id == agent_id
        ][-1:]


async def test_a_redirect_failing_after_the_safe_harbor_keeps_the_agents_next_call(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    """CallAbandoning races the Redirect: the agent is released and takes the next customer;
    the first Redirect's late failure must not release that new reservation."""
    engine, tel, clock, (first, second) = await _two_calls(sessionmaker, redis, keys)
    await engine.agent_command(8, "logout")
    await engine.agent_command(7, "pause", code="break")
    gated = GatedRedirects.install(tel)
    gated.hold(f"Local/{first};1")
    gated.fail.add(f"Local/{first};1")
    await _held(engine, first, f"Local/{first};1")
    clock.advance(0.5)
    await _held(engine, second, f"Local/{second};1")
    await engine.agent_command(7, "ready")
    assert engine.agents[7].call_attempt == first  # the oldest waiting customer
    await asyncio.wait_for(gated.sent_event(f"Local/{first};1").wait(), WAIT)

    clock.advance(1.5)
    await engine.handle(TelephonyItem("sim", CallAbandoning(first, clock.now())))
    assert engine.agents[7].call_attempt == second  # released, then given the next one
    gated.gates[f"Local/{first};1"].set()  # the first Redirect now fails
    assert await engine.drain(WAIT)
    assert _state(engine) is AgentState.RESERVED
    assert engine.agents[7].call_attempt == second
    assert engine.calls[second].agent_id == 7
    assert engine.calls[first].agent_id is None and engine.calls[first].unroutable
    state = await redis.hgetall(keys.agent_state(7))  # type: ignore[misc]
    assert state["state"] == AgentState.RESERVED.value and state["attempt"] == second


async def test_a_redirect_failing_after_the_call_ended_and_the_agent_logged_out(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, clock, gated, uuid, chan = await _gated_call(sessionmaker, redis, keys)
    gated.fail.add(chan)
    await _held(engine, uuid, chan)
    await asyncio.wait_for(gated.sent_event(chan).wait(), WAIT)
    clock.advance(1)
    await engine.handle(
        TelephonyItem("sim", _ended(uuid, CallOutcome.ABANDONED, clock, answered_at=clock.now()))
    )
    await engine.agent_command(7, "logout")
    gated.gates[chan].set()
    assert await engine.drain(WAIT)
    assert _state(engine) is AgentState.LOGGED_OUT
    assert uuid not in engine.calls
    state = await redis.hgetall(keys.agent_state(7))  # type: ignore[misc]
    assert state["state"] == AgentState.LOGGED_OUT.value


async def test_shutdown_with_a_redirect_in_flight_cancels_it_after_the_grace(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, _clock, gated, uuid, chan = await _gated_call(sessionmaker, redis, keys)
    engine.config = replace(engine.config, shutdown_grace=0.05)  # the Redirect never answers
    await _held(engine, uuid, chan)
    await asyncio.wait_for(gated.sent_event(chan).wait(), WAIT)
    (redirect,) = [t for t in engine._tasks if t.get_name().startswith("redirect:")]
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(engine.run(stop, tick=0.01), WAIT)
    assert redirect.cancelled()
    assert not engine._tasks
