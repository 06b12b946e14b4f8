"""The engine against the PBX simulator: the connect decision waits for the hold (issue 14).

* defect 1: AMD runs to its verdict before any Redirect; a machine is never connected, a
  human is connected only after AMD's time (~2 s, recording 11);
* defect 2: a customer waiting in hold is given the agent who becomes READY meanwhile;
* defect 8a: a customer who hangs up during AMD is ``early_hangup``, not ``abandoned``.

Real time is bounded: every wait polls with a deadline; the clock and the simulator run
``SPEED`` times faster than real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge import dialplan as dp
from ami_bridge.simulator import Agent, SimulatorConfig
from ami_bridge.simulator.config import AMD_HUMAN, AMD_MACHINE, Customer, Step
from ami_bridge.simulator.server import SimulatorServer
from dialer.db.models import CallAttempt, Campaign
from dialer.domain.outcomes import AgentState, CallOutcome, CampaignStatus
from dialer.engine import Engine
from dialer.runtime import ScaledClock, dialer_runtime
from dialer.settings import Settings

from .factories import MONDAY_10AM, make_agent, make_campaign, make_lead

SPEED = 20.0
AGENT_ID, EXT = 501, "1001"
HUMAN_TALK = Step("Converse", "30", 30.0, 8.0)  # waits up to 8 s for an agent, talks 30 s


def _number(n: int) -> str:
    return f"+57300{n:07d}"  # make_lead's number for lead n


def machine() -> Customer:
    steps = (
        Step("NoOp", "CUSTOMER machine"),
        Step("Answer"),
        Step("Playback", "sim/machine-greeting", 20.0),
        Step("Hangup", "16"),
    )
    return Customer(steps, amd=AMD_MACHINE, label="machine")


def human() -> Customer:
    steps = (Step("NoOp", "CUSTOMER human"), Step("Answer"), HUMAN_TALK, Step("Hangup", "16"))
    return Customer(steps, amd=AMD_HUMAN, label="human")


def hangs_up_during_amd() -> Customer:
    steps = (Step("NoOp", "CUSTOMER hello?"), Step("Answer"), Step("Wait", "1", 1.0))
    return Customer((*steps, Step("Hangup", "16")), amd=AMD_HUMAN, label="early")


@dataclass
class Rig:
    engine: Engine
    sim: SimulatorServer
    campaign_id: int

    async def until(self, what: str, cond: Callable[[], Awaitable[bool]], real_s: float) -> None:
        for _ in range(int(real_s / 0.02)):
            if await cond():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    async def attempts(self) -> list[CallAttempt]:
        async with self.engine.store.sm() as s:
            return list((await s.scalars(sa.select(CallAttempt))).all())

    async def finished(self, n: int = 1) -> list[CallAttempt]:
        async def done() -> bool:
            rows = await self.attempts()
            return len(rows) >= n and all(r.outcome is not None for r in rows)

        await self.until(f"{n} finished attempt(s)", done, 60.0)  # a bound, not a pace
        return await self.attempts()

    def agent_state(self) -> AgentState:
        return self.engine.agents[AGENT_ID].state

    def in_hold(self) -> bool:
        return any(c.context == dp.CTX_HOLD for c in self.sim.channels())


@asynccontextmanager
async def rig(
    settings: Settings,
    sm: async_sessionmaker[AsyncSession],
    customers: dict[int, Customer],
    *,
    amd: bool,
    speed: float = SPEED,
) -> AsyncIterator[Rig]:
    cfg = SimulatorConfig(
        speed=speed,
        seed=5,
        agents=[Agent(EXT, answer_delay=0.5)],
        customers={_number(n): c for n, c in customers.items()},
        population=None,
    )
    clock = ScaledClock(MONDAY_10AM, speed=speed)
    async with dialer_runtime(settings, clock, simulator_config=cfg) as rt:
        assert rt.simulator is not None
        camp = await make_campaign(sm, name=f"Hold {id(cfg)}", amd_enabled=amd)
        for n in customers:
            await make_lead(sm, camp.id, n)
        await make_agent(sm, AGENT_ID, EXT)
        stop = asyncio.Event()
        run = asyncio.create_task(rt.engine.run(stop, tick=0.02))
        r = Rig(rt.engine, rt.simulator, camp.id)
        try:
            await r.until("the campaign", _owned(rt.engine, camp.id), 20.0)
            yield r
        finally:
            stop.set()
            await asyncio.wait_for(run, 10.0)


async def _set_status(
    sm: async_sessionmaker[AsyncSession], cid: int, status: CampaignStatus
) -> None:
    async with sm.begin() as s:
        camp = await s.get_one(Campaign, cid)
        camp.status = status


def _owned(engine: Engine, cid: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return cid in engine.campaigns

    return check


async def _login(r: Rig) -> None:
    await r.engine.agent_login(AGENT_ID, EXT, r.campaign_id)

    async def ready() -> bool:
        return r.agent_state() is AgentState.READY

    await r.until("the agent in the room", ready, 20.0)


@pytest.mark.slow
async def test_machine_is_never_put_through_to_a_free_agent(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with rig(settings, sessionmaker, {1: machine()}, amd=True) as r:
        await _login(r)
        [attempt] = await r.finished()
        assert attempt.outcome is CallOutcome.MACHINE, attempt.detail
        assert attempt.amd_status == "MACHINE" and attempt.connected_at is None
        assert r.agent_state() is AgentState.READY  # never reserved for a machine


@pytest.mark.slow
async def test_human_is_connected_only_after_the_amd_verdict(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # slower clock: the human's patience (8 s) must outlast AMD plus a loaded machine
    async with rig(settings, sessionmaker, {2: human()}, amd=True, speed=5.0) as r:
        await _login(r)

        async def connected() -> bool:
            return r.agent_state() is AgentState.IN_CALL

        await r.until("the human connected", connected, 10.0)
        [attempt] = await r.attempts()
        live = r.engine.calls[attempt.uuid]
        assert r.sim.hangup_from_far_end(live.channel or "")
        [done] = await r.finished()
        assert done.outcome is CallOutcome.ANSWERED_CONNECTED
        assert done.amd_status == "HUMAN"
        assert done.answered_at is not None and done.connected_at is not None
        # AMD listened for its whole 2.1 s before the customer was offered to the agent
        waited = (done.connected_at - done.answered_at).total_seconds()
        assert waited >= AMD_HUMAN.seconds - 0.3, waited


@pytest.mark.slow
async def test_waiting_customer_gets_the_agent_who_becomes_ready(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Seen on the real PBX: the agent became ready 36 ms after the customer entered hold and
    the customer was still abandoned 2 s later. Now the agent takes the waiting customer."""
    # slower clock: the 2 s hold timer must leave room for a loaded machine's DB writes
    async with rig(settings, sessionmaker, {3: human()}, amd=False, speed=2.0) as r:
        await _set_status(sessionmaker, r.campaign_id, CampaignStatus.PAUSED)  # no pacing
        await _login(r)
        await r.engine.agent_command(AGENT_ID, "pause", code="break")
        # one call dialed by hand while the only agent is on a break
        rt = r.engine.campaigns[r.campaign_id]
        [lead_id] = await r.engine.store.candidate_ids(r.campaign_id, r.engine.clock.now(), 1)
        assert await r.engine._dial_lead(rt, lead_id, r.engine.clock.now(), rt.campaign.dial_mode)

        async def held() -> bool:
            return r.in_hold()

        await r.until("the customer in hold", held, 10.0)
        await asyncio.sleep(0.5 / 2.0)  # 0.5 s of hold (the 2 s timer still runs)
        await r.engine.agent_command(AGENT_ID, "ready")

        async def connected() -> bool:
            return r.agent_state() is AgentState.IN_CALL

        await r.until("the waiting customer connected", connected, 5.0)
        [attempt] = await r.attempts()
        assert r.sim.conferences().get(dp.agent_room(EXT), []) != []
        live = r.engine.calls[attempt.uuid]
        assert r.sim.hangup_from_far_end(live.channel or "")
        [done] = await r.finished()
        assert done.outcome is CallOutcome.ANSWERED_CONNECTED, done.detail


@pytest.mark.slow
async def test_hang_up_during_amd_is_not_an_abandon(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with rig(settings, sessionmaker, {4: hangs_up_during_amd()}, amd=True) as r:
        await _login(r)
        [attempt] = await r.finished()
        outcome = attempt.outcome
        assert outcome is not None and outcome.value == "early_hangup", attempt.detail
        assert not outcome.is_live_answer  # not in the abandon-rate denominator
        # as on Asterisk 22.10.1: AMD() reports the hang-up before the leg goes down
        assert attempt.amd_status == "HANGUP" and attempt.detail is not None
        assert "during AMD (HANGUP)" in attempt.detail
        assert r.agent_state() is AgentState.READY


@pytest.mark.slow
async def test_redirect_racing_the_safe_harbor_leaves_one_outcome(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A Redirect that arrives once the safe-harbor path has started (MARCADOR_ABANDONED set)
    is sent back to the safe harbor by ``marcador-agent-room``: the customer never joins the
    agent's room and the call is ABANDONED, with the message played."""
    # slower clock: the Redirect must land while the 4 s safe-harbor message plays
    async with rig(settings, sessionmaker, {5: human()}, amd=False, speed=4.0) as r:
        await _set_status(sessionmaker, r.campaign_id, CampaignStatus.PAUSED)
        await _login(r)
        await r.engine.agent_command(AGENT_ID, "pause", code="break")
        rt = r.engine.campaigns[r.campaign_id]
        [lead_id] = await r.engine.store.candidate_ids(r.campaign_id, r.engine.clock.now(), 1)
        assert await r.engine._dial_lead(rt, lead_id, r.engine.clock.now(), rt.campaign.dial_mode)

        async def safe_harbor() -> bool:
            return any(
                c.exten == dp.EXTEN_SAFE_HARBOR and c.variables.get(dp.VAR_ABANDONED) == "1"
                for c in r.sim.channels()
            )

        await r.until("the safe-harbor path", safe_harbor, 10.0)
        [chan] = [c.name for c in r.sim.channels() if c.exten == dp.EXTEN_SAFE_HARBOR]
        await r.engine.tel.redirect("sim", chan, dp.CTX_AGENT_ROOM, EXT)  # the late Redirect

        [done] = await r.finished()
        assert done.outcome is CallOutcome.ABANDONED, done.detail
        assert done.connected_at is None and done.agent_id is None
