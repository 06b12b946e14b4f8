"""``kill`` of the dialer mid-call, restart under the same name, against the PBX simulator.

The calls live on in the (simulated) PBX while no dialer runs. The restarted dialer must find
the connected call from CoreShowChannels (its Uniqueid is the attempt id, its dialplan position
``marcador-agent-room``/<ext>), adopt it, follow it to its end and give the agent the wrap-up:
the outcome is ``answered_connected`` with that agent, not ``failed`` "lost".
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ami_bridge.simulator import Agent, Population, SimulatorConfig, serve
from dialer.db.migrate import upgrade
from dialer.db.models import CallAttempt, Disposition
from dialer.domain.outcomes import AgentState, CallOutcome, CampaignType
from dialer.engine import EngineConfig
from dialer.runtime import ScaledClock, dialer_runtime
from dialer.settings import Settings
from dialer.sim_agents import SimAgent, SimulatedAgents

from .factories import MONDAY_10AM, make_agent, make_campaign, make_lead

SPEED = 60.0
AGENTS = [(921, "1001"), (922, "1002")]


def _config(run: str) -> EngineConfig:
    return EngineConfig(
        dialer_id=f"d.{run}",
        dialer_name="d",
        claim_ttl=timedelta(seconds=600),  # virtual: 10 s real, longer than the test's restart
        campaign_lease_ms=30_000,  # real: the restart must not wait for it
        lead_lease_ms=30_000,
        maintenance_interval=0.5,
        trunks={"pbx": "PJSIP/{number}@trunk"},
    )


@pytest.mark.slow
async def test_killed_dialers_connected_call_is_adopted_after_restart(
    settings: Settings, tmp_path: Path
) -> None:
    db_url = (
        settings.database.url
        if settings.database.url and not settings.database.url.startswith("sqlite")
        else f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    )
    await asyncio.to_thread(upgrade, db_url)
    sim = await serve(
        "127.0.0.1",
        0,
        SimulatorConfig(
            speed=SPEED,
            seed=5,
            agents=[Agent(ext) for _, ext in AGENTS],
            population=Population(answer=1.0, machine=0.0, talk_mean=240.0, talk_sd=5.0),
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
    loop = asyncio.get_running_loop()
    try:
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(
                dialer_runtime(s, clock, dialer_name="d", engine_config=_config("first"))
            )
            sm = a.engine.store.sm
            camp = await make_campaign(sm, name=f"Reinicio {tmp_path.name}")
            for n in range(2):
                await make_lead(sm, camp.id, 200 + n)
            for uid, ext in AGENTS:
                await make_agent(sm, uid, ext)
            stop_a = asyncio.Event()
            run_a = asyncio.create_task(a.engine.run(stop_a, tick=0.03))
            sims = SimulatedAgents(
                a.engine,
                camp.id,
                CampaignType.CONTACTO_PROACTIVO,
                [SimAgent(uid, ext) for uid, ext in AGENTS],
                seed=3,
                wrap_range=(1.0, 2.0),
            )
            await sims.login_all()
            connected: dict[str, int] = {}
            deadline = loop.time() + 30
            while not connected and loop.time() < deadline:
                await sims.step()
                connected = {
                    ag.call_attempt: ag.agent_id
                    for ag in a.engine.agents.values()
                    if ag.state is AgentState.IN_CALL and ag.call_attempt
                }
                await asyncio.sleep(0.03)
            assert connected, "no call reached an agent"
            stop_a.set()
            await run_a  # killed: no logout, no hangup, its calls stay on the PBX
            await a.telephony.close()

            b = await stack.enter_async_context(
                dialer_runtime(s, clock, dialer_name="d", engine_config=_config("second"))
            )
            stop_b = asyncio.Event()
            run_b = asyncio.create_task(b.engine.run(stop_b, tick=0.03))
            sims.engine = b.engine
            uuid, agent_id = next(iter(connected.items()))
            deadline = loop.time() + 60
            adopted = False
            disposed = None
            while loop.time() < deadline:
                adopted = adopted or uuid in b.engine.calls
                await sims.step()
                async with sm() as ss:
                    att = (
                        await ss.scalars(sa.select(CallAttempt).where(CallAttempt.uuid == uuid))
                    ).one()
                    disposed = await ss.scalar(
                        sa.select(Disposition.id).where(Disposition.attempt_id == att.id)
                    )
                if disposed is not None:
                    break
                await asyncio.sleep(0.03)
            stop_b.set()
            await run_b
    finally:
        await sim.close()
    assert adopted, "the restarted dialer did not adopt the live call"
    assert att.outcome is CallOutcome.ANSWERED_CONNECTED, att.detail
    assert att.agent_id == agent_id
    assert disposed is not None  # the agent got the wrap-up and dispositioned it
