"""Supervisor spy end to end: engine -> AMI bridge -> PBX simulator (issue 14, defect 12).

ChanSpy's ``E`` option ends only with the agent's nailed-up channel, so a spy used to follow
the agent into the next customer's call. Here the customer hangs up and the supervisor's
channel must go with the call while the agent's session stays up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from ami_bridge import dialplan
from ami_bridge.simulator import Agent, Population, SimulatorConfig, SimulatorServer
from dialer.domain.outcomes import AgentState
from dialer.redis_client import Streams
from dialer.runtime import ScaledClock, dialer_runtime
from dialer.settings import Settings

from .factories import make_agent, make_campaign, make_lead

START = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # Monday 10:00 in Bogotá
SPEED = 20.0


async def _until(cond: Callable[[], bool], within: float = 20.0) -> None:
    """Bounded wait for a condition the engine reaches on its own (real-time budget)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


def _chans(sim: SimulatorServer, prefix: str) -> list[str]:
    return [c.name for c in sim.channels() if c.name.startswith(prefix)]


async def test_spy_ends_with_the_spied_call_on_the_simulator(
    settings: Settings, tmp_path: Path
) -> None:
    from dialer.db.migrate import upgrade

    db_url = f"sqlite+aiosqlite:///{tmp_path / 'spy.db'}"
    settings = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": db_url})}
    )
    await asyncio.to_thread(upgrade, db_url)
    sim_cfg = SimulatorConfig(
        speed=SPEED,
        seed=3,
        agents=[Agent("1001", answer_delay=0.2), Agent("2001", answer_delay=0.2)],
        population=Population(
            answer=1.0,
            busy=0,
            congestion=0,
            invalid=0,
            rejected=0,
            machine=0,
            ring_mean=1.0,
            ring_sd=0.1,
            talk_mean=3000.0,
            talk_sd=1.0,
        ),
    )
    clock = ScaledClock(START, speed=SPEED)
    async with dialer_runtime(settings, clock, simulator_config=sim_cfg, dialer_name="spy") as rt:
        engine, sim = rt.engine, rt.simulator
        assert sim is not None
        sm = engine.store.sm
        camp = await make_campaign(sm, name=f"Spy {tmp_path.name}")
        await make_agent(sm, 901, "1001")
        await make_lead(sm, camp.id, 1)
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop, tick=0.03))
        try:
            await _until(lambda: camp.id in engine.campaigns)
            await engine.agent_login(901, "1001", camp.id)
            await _until(lambda: engine.agents[901].state is AgentState.IN_CALL)
            attempt = engine.agents[901].call_attempt
            assert attempt is not None
            customer = engine.calls[attempt].channel
            assert customer is not None

            spy = await engine.spy(901, "2001", dialplan.SPY_LISTEN, supervisor_id=5)
            await _until(lambda: any(s.answered for s in engine.spy_calls.values()))
            assert len(_chans(sim, "PJSIP/2001-")) == 1  # the supervisor is listening

            assert sim.hangup_from_far_end(customer)  # the customer leaves the room
            await _until(lambda: not _chans(sim, "PJSIP/2001-") and not engine.spy_calls)
            assert _chans(sim, "PJSIP/1001-")  # the agent's session is still up
            assert engine.spies == {}
        finally:
            stop.set()
            await runner
        redis: aioredis.Redis = rt.redis.client
        events = await Streams(redis).read(rt.keys.events_stream, "0", count=1000)
        mine = [(e.type, e.data.get("reason")) for e in events if e.data.get("spy") == spy.spy_id]
        assert mine == [("spy_ringing", None), ("spy_started", None), ("spy_ended", "call_ended")]
