"""Transfers out of the campaign end to end: engine -> AMI bridge -> PBX simulator (issue 15).

Blind to a supervisor's seat and to an allowed external number; attended (consult, then
complete or cancel); and the hang-ups during a consult (the customer, the target, a target that
does not answer), each ending in a defined state with the call's outcome kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from ami_bridge import dialplan
from ami_bridge.simulator import Agent, SimulatorServer
from dialer.db.models import AuditLog, CallAttempt, LeadEvent
from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.engine import CallControlRefused, Engine
from dialer.runtime import DialerRuntime
from dialer.settings import Settings

from .factories import make_agent, make_campaign, make_lead
from .sim_rig import first_call, running, sim_config, sim_runtime, sqlite_settings, until, where

SUPERVISOR = "2001"  # a supervisor's seat (answers)
NO_ANSWER = "2002"  # a seat that never answers (the 30 s ring timeout)
EXTERNAL = "+576015550100"  # an allowed external number (the simulator's customers answer)


@dataclass
class Rig:
    rt: DialerRuntime
    sim: SimulatorServer
    engine: Engine
    attempt: str
    customer: str
    lead_id: int


@asynccontextmanager
async def one_call(settings: Settings, tmp_path: Path, name: str) -> AsyncIterator[Rig]:
    """Agent 901 (1001) on a call with a customer who stays on the line."""
    settings = await sqlite_settings(settings, tmp_path / f"{name}.db")
    cfg = sim_config("1001", seed=11)
    cfg.agents.append(Agent(SUPERVISOR, answer_delay=20.0, name="Supervisora"))
    cfg.agents.append(Agent(NO_ANSWER, answer_delay=10_000.0))
    async with sim_runtime(settings, cfg, name) as (rt, sim):
        engine = rt.engine
        sm = engine.store.sm
        camp = await make_campaign(sm, name=f"Transfers {name} {tmp_path.name}")
        await make_agent(sm, 901, "1001")
        lead = await make_lead(sm, camp.id, 1)
        async with running(engine):
            attempt, customer = await first_call(engine, 901, "1001", camp.id)
            yield Rig(rt, sim, engine, attempt, customer, lead.id)


def legs(sim: SimulatorServer, seat: str) -> list[str]:
    return [c.name for c in sim.channels() if c.name.startswith(f"PJSIP/{seat}-")]


async def history(rig: Rig, want: int) -> list[str]:
    """The lead's call-control history once it has ``want`` entries (bounded wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        async with rig.engine.store.sm() as s:
            got = list(
                (
                    await s.scalars(
                        sa.select(LeadEvent.reason)
                        .where(LeadEvent.lead_id == rig.lead_id, LeadEvent.kind == "call_control")
                        .order_by(LeadEvent.id)
                    )
                ).all()
            )
        if len(got) >= want or loop.time() > deadline:
            return got
        await asyncio.sleep(0.02)


async def attempt_row(rig: Rig) -> CallAttempt:
    """The attempt's row once the call's end is recorded (bounded wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        async with rig.engine.store.sm() as s:
            row = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == rig.attempt))
        assert row is not None
        if row.outcome is not None or loop.time() > deadline:
            return row
        await asyncio.sleep(0.02)


async def test_blind_transfer_to_a_supervisor(settings: Settings, tmp_path: Path) -> None:
    async with one_call(settings, tmp_path, "blindsup") as rig:
        engine, sim = rig.engine, rig.sim
        await engine.transfer_out(901, "supervisor", SUPERVISOR, label="Supervisora Ana")
        call = engine.calls[rig.attempt]
        assert call.transfer is not None and call.transfer.state == "transferring"
        # while it rings the customer waits on hold; hold/resume and a second transfer wait
        assert where(sim, rig.customer) == (dialplan.CTX_ONHOLD, None)
        with pytest.raises(CallControlRefused) as refused:
            await engine.call_control(901, "resume")
        assert refused.value.code == "transfer_in_progress"
        with pytest.raises(CallControlRefused) as refused:
            await engine.transfer_out(901, "external", EXTERNAL)
        assert refused.value.code == "transfer_in_progress"
        room = dialplan.transfer_room(call.transfer.room)
        await until(lambda: where(sim, rig.customer) == (dialplan.CTX_TRANSFER_ROOM, room))
        (seat,) = legs(sim, SUPERVISOR)
        assert where(sim, seat) == (dialplan.CTX_TRANSFER_TARGET, room)
        # the agent is done with it: wrap-up on that call (their disposition), room empty
        # (the Redirect is sent before the engine records the hand-over: wait for it)
        await until(lambda: engine.agents[901].state is AgentState.WRAP_UP)
        assert engine.agents[901].call_attempt == rig.attempt
        assert sim.conferences()[dialplan.agent_room("1001")] == [engine.agent_room_channel[901]]
        assert call.transferred_out and call.on_hold_since is None
        # the supervisor hangs up: the customer leaves the room with them (end_marked)
        await engine.tel.hangup(call.server, seat)
        await until(lambda: rig.attempt not in engine.calls)
        assert where(sim, rig.customer) is None and not legs(sim, SUPERVISOR)
        assert engine.agents[901].state is AgentState.WRAP_UP  # untouched by the call's end
        assert not engine.transfer_legs
        row = await attempt_row(rig)
        events = await history(rig, 2)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED and row.agent_id == 901
    assert events == ["transfer_out", "transfer_out_answered"]
    async with rig.engine.store.sm() as s:
        audit = (
            await s.scalars(sa.select(AuditLog).where(AuditLog.target_id == rig.attempt))
        ).all()
    assert [a.action for a in audit] == ["call.transfer_out", "call.transfer_out_answered"]
    assert audit[0].detail["label"] == "Supervisora Ana"


async def test_blind_transfer_to_an_external_number(settings: Settings, tmp_path: Path) -> None:
    async with one_call(settings, tmp_path, "blindext") as rig:
        engine, sim = rig.engine, rig.sim
        await engine.transfer_out(901, "external", EXTERNAL, label="Soporte")
        leg = engine.calls[rig.attempt].transfer
        assert leg is not None
        room = dialplan.transfer_room(leg.room)
        await until(lambda: where(sim, rig.customer) == (dialplan.CTX_TRANSFER_ROOM, room))
        await until(lambda: engine.agents[901].state is AgentState.WRAP_UP)
        # the customer hangs up first: the dialer hangs the external leg up
        await engine.tel.hangup(leg.server, rig.customer)
        await until(lambda: rig.attempt not in engine.calls and not engine.transfer_legs)
        assert not [c for c in sim.channels() if c.context == dialplan.CTX_TRANSFER_TARGET]
        row = await attempt_row(rig)
        events = await history(rig, 2)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED and row.agent_id == 901
    assert events == ["transfer_out", "transfer_out_answered"]


async def test_consult_then_complete(settings: Settings, tmp_path: Path) -> None:
    async with one_call(settings, tmp_path, "consultok") as rig:
        engine, sim = rig.engine, rig.sim
        room = dialplan.agent_room("1001")
        with pytest.raises(CallControlRefused) as refused:
            await engine.consult_complete(901)
        assert refused.value.code == "not_consulting"
        await engine.transfer_out(901, "supervisor", SUPERVISOR, mode="consult")
        leg = engine.calls[rig.attempt].transfer
        assert leg is not None
        with pytest.raises(CallControlRefused) as refused:  # the seat rings for ~1 s
            await engine.consult_complete(901)
        assert refused.value.code == "consult_not_answered"
        await until(lambda: leg.answered)
        (seat,) = legs(sim, SUPERVISOR)
        # the consult: the supervisor in the agent's room, the customer on hold
        await until(lambda: where(sim, seat) == (dialplan.CTX_CONSULT, room))
        assert where(sim, rig.customer) == (dialplan.CTX_ONHOLD, None)
        assert leg.state == "consulting"
        await engine.consult_complete(901)
        xfer = dialplan.transfer_room(leg.room)
        await until(lambda: where(sim, rig.customer) == (dialplan.CTX_TRANSFER_ROOM, xfer))
        await until(lambda: where(sim, seat) == (dialplan.CTX_TRANSFER_TARGET, xfer))
        await until(lambda: engine.agents[901].state is AgentState.WRAP_UP)
        assert sim.conferences()[room] == [engine.agent_room_channel[901]]
        await engine.tel.hangup(leg.server, rig.customer)
        await until(lambda: rig.attempt not in engine.calls and not legs(sim, SUPERVISOR))
        row = await attempt_row(rig)
        events = await history(rig, 2)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED and row.agent_id == 901
    assert events == ["consult", "consult_complete"]


async def test_consult_then_cancel(settings: Settings, tmp_path: Path) -> None:
    async with one_call(settings, tmp_path, "consultno") as rig:
        engine, sim = rig.engine, rig.sim
        room = dialplan.agent_room("1001")
        await engine.transfer_out(901, "external", EXTERNAL, mode="consult")
        leg = engine.calls[rig.attempt].transfer
        assert leg is not None
        await until(lambda: leg.answered)
        await engine.consult_cancel(901)
        await until(lambda: where(sim, rig.customer) == (dialplan.CTX_AGENT_ROOM, room))
        await until(lambda: not engine.transfer_legs)
        assert not [c for c in sim.channels() if c.context == dialplan.CTX_CONSULT]
        call = engine.calls[rig.attempt]
        assert call.transfer is None and call.on_hold_since is None
        assert engine.agents[901].state is AgentState.IN_CALL  # the call goes on
        await engine.call_control(901, "hangup")
        await until(lambda: engine.agents[901].state is AgentState.WRAP_UP)
        events = await history(rig, 3)
    assert events == ["consult", "consult_cancel", "hangup"]


async def test_customer_hangs_up_during_the_consult(settings: Settings, tmp_path: Path) -> None:
    async with one_call(settings, tmp_path, "consultcust") as rig:
        engine, sim = rig.engine, rig.sim
        await engine.transfer_out(901, "supervisor", SUPERVISOR, mode="consult")
        leg = engine.calls[rig.attempt].transfer
        assert leg is not None
        await until(lambda: leg.answered)
        await engine.tel.hangup(leg.server, rig.customer)
        # the call ends as usual (the agent wraps it up); the consult leg is hung up
        await until(lambda: engine.agents[901].state is AgentState.WRAP_UP)
        await until(lambda: not legs(sim, SUPERVISOR) and not engine.transfer_legs)
        row = await attempt_row(rig)
        events = await history(rig, 2)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED
    assert events == ["consult", "hold_ended"]  # the hold is closed with the call


async def test_target_hangs_up_during_the_consult(settings: Settings, tmp_path: Path) -> None:
    async with one_call(settings, tmp_path, "consulttgt") as rig:
        engine, sim = rig.engine, rig.sim
        await engine.transfer_out(901, "supervisor", SUPERVISOR, mode="consult")
        leg = engine.calls[rig.attempt].transfer
        assert leg is not None
        await until(lambda: leg.answered)
        (seat,) = legs(sim, SUPERVISOR)
        await engine.tel.hangup(leg.server, seat)
        # the customer comes back to the agent, who is still on the call
        room = dialplan.agent_room("1001")
        await until(lambda: where(sim, rig.customer) == (dialplan.CTX_AGENT_ROOM, room))
        await until(lambda: engine.calls[rig.attempt].transfer is None)
        assert engine.agents[901].state is AgentState.IN_CALL
        events = await history(rig, 2)
    assert events == ["consult", "consult_ended"]


async def test_target_does_not_answer(settings: Settings, tmp_path: Path) -> None:
    async with one_call(settings, tmp_path, "consultnoans") as rig:
        engine, sim = rig.engine, rig.sim
        await engine.transfer_out(901, "supervisor", NO_ANSWER, mode="consult")
        assert engine.calls[rig.attempt].transfer is not None
        room = dialplan.agent_room("1001")
        await until(lambda: engine.calls[rig.attempt].transfer is None, within=30)
        await until(lambda: where(sim, rig.customer) == (dialplan.CTX_AGENT_ROOM, room))
        assert engine.agents[901].state is AgentState.IN_CALL
        assert not legs(sim, NO_ANSWER)
        # a blind transfer that is not answered ends the same way
        await engine.transfer_out(901, "supervisor", NO_ANSWER)
        await until(lambda: engine.calls[rig.attempt].transfer is None, within=30)
        await until(lambda: where(sim, rig.customer) == (dialplan.CTX_AGENT_ROOM, room))
        assert engine.agents[901].state is AgentState.IN_CALL
        events = await history(rig, 4)
    assert events == ["consult", "transfer_failed", "transfer_out", "transfer_failed"]
