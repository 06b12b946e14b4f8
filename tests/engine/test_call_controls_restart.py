"""A dialer killed while its agent had the customer on hold (issue 15 call controls).

The customer waits in ``marcador-onhold,<ext>`` (not in the room) when the dialer dies. The
restarted dialer must adopt the call as that agent's, on hold: the agent stays IN_CALL, and
"resume" puts the customer back into the room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import pytest

from ami_bridge import dialplan
from ami_bridge.simulator import Agent, Population, SimulatorConfig, SimulatorServer, serve
from dialer.db.migrate import upgrade
from dialer.domain.outcomes import AgentState
from dialer.engine import EngineConfig
from dialer.runtime import ScaledClock, dialer_runtime
from dialer.settings import Settings

from .factories import MONDAY_10AM, make_agent, make_campaign, make_lead

SPEED = 60.0


def _config(run: str) -> EngineConfig:
    return EngineConfig(
        dialer_id=f"d.{run}",
        dialer_name="d",
        claim_ttl=timedelta(seconds=600),
        campaign_lease_ms=30_000,
        lead_lease_ms=30_000,
        maintenance_interval=0.5,
        trunks={"pbx": "PJSIP/{number}@trunk"},
    )


async def _until(cond: Callable[[], bool], within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


def _where(sim: SimulatorServer, name: str) -> tuple[str, str | None] | None:
    for c in sim.channels():
        if c.name == name:
            return c.context, c.conference
    return None


@pytest.mark.slow
async def test_a_call_on_hold_is_adopted_on_hold_after_a_restart(
    settings: Settings, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'hold-restart.db'}"
    await asyncio.to_thread(upgrade, db_url)
    sim = await serve(
        "127.0.0.1",
        0,
        SimulatorConfig(
            speed=SPEED,
            seed=5,
            agents=[Agent("1001")],
            population=Population(answer=1.0, machine=0.0, talk_mean=3000.0, talk_sd=5.0),
        ),
    )
    server = {
        "name": "pbx",
        "host": "127.0.0.1",
        "port": sim.port,
        "username": "dialer",
        "secret": "dialer-secret",
        "trunk": "PJSIP/{number}@trunk",
    }
    s = settings.model_copy(
        update={
            "database": settings.database.model_copy(update={"url": db_url}),
            "asterisk": settings.asterisk.model_copy(
                update={
                    "servers": [
                        type(settings.asterisk).model_validate({"servers": [server]}).servers[0]
                    ]
                }
            ),
        }
    )
    clock = ScaledClock(MONDAY_10AM, speed=SPEED)
    room = dialplan.agent_room("1001")
    try:
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(
                dialer_runtime(s, clock, dialer_name="d", engine_config=_config("first"))
            )
            sm = a.engine.store.sm
            camp = await make_campaign(sm, name=f"Espera {tmp_path.name}")
            await make_lead(sm, camp.id, 300)
            await make_agent(sm, 931, "1001")
            stop_a = asyncio.Event()
            run_a = asyncio.create_task(a.engine.run(stop_a, tick=0.03))
            await _until(lambda: camp.id in a.engine.campaigns)
            await a.engine.agent_login(931, "1001", camp.id)
            await _until(lambda: a.engine.agents[931].state is AgentState.IN_CALL)
            attempt = a.engine.agents[931].call_attempt
            assert attempt is not None
            customer = a.engine.calls[attempt].channel
            assert customer is not None
            await a.engine.call_control(931, "hold")
            await _until(lambda: _where(sim, customer) == (dialplan.CTX_ONHOLD, None))
            stop_a.set()
            await run_a  # killed: the call stays on hold on the PBX
            await a.telephony.close()

            b = await stack.enter_async_context(
                dialer_runtime(s, clock, dialer_name="d", engine_config=_config("second"))
            )
            stop_b = asyncio.Event()
            run_b = asyncio.create_task(b.engine.run(stop_b, tick=0.03))
            try:
                await _until(
                    lambda: (
                        attempt in b.engine.calls
                        and b.engine.agents.get(931) is not None
                        and b.engine.agents[931].call_attempt == attempt
                    )
                )
                assert b.engine.agents[931].state is AgentState.IN_CALL
                assert b.engine.calls[attempt].on_hold_since is not None
                assert b.engine.calls[attempt].agent_id == 931
                await b.engine.call_control(931, "resume")
                await _until(lambda: _where(sim, customer) == (dialplan.CTX_AGENT_ROOM, room))
                await b.engine.call_control(931, "hangup")
                await _until(lambda: b.engine.agents[931].state is AgentState.WRAP_UP)
            finally:
                stop_b.set()
                await run_b
    finally:
        await sim.close()
