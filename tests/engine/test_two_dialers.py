"""Two dialers on one campaign and one PBX; the owner dies mid-campaign.

* Only one dialer works the campaign at a time (campaign lease); the other takes over when
  the owner stops renewing, restores the live agent sessions and resolves the dead dialer's
  orphaned attempts from the PBX's channel list.
* Invariants: no lead is lost (every lead final), no lead is ever dialed twice at once, no
  attempt is left without an outcome, and no limit is exceeded.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ami_bridge.simulator import Agent, Population, SimulatorConfig, serve
from dialer.db.migrate import upgrade
from dialer.db.models import CallAttempt, Lead
from dialer.domain.outcomes import CampaignType, LeadStatus
from dialer.engine import EngineConfig
from dialer.runtime import ScaledClock, dialer_runtime
from dialer.settings import Settings
from dialer.sim_agents import SimAgent, SimulatedAgents

from .factories import MONDAY_10AM, make_agent, make_campaign, make_lead

SPEED = 60.0
AGENTS = [(911, "1001"), (912, "1002"), (913, "1003")]
LEADS = 12


def _config(name: str) -> EngineConfig:
    return EngineConfig(
        dialer_id=name,
        claim_ttl=timedelta(seconds=300),  # virtual: 5 s of real time at SPEED
        campaign_lease_ms=4_000,
        lead_lease_ms=5_000,  # real: a dead owner's campaign is free 4 s later
        maintenance_interval=0.5,
        trunks={"pbx": "PJSIP/{number}@trunk"},
    )


@pytest.mark.slow
async def test_owner_dies_and_the_other_dialer_finishes(settings: Settings, tmp_path: Path) -> None:
    db_url = (
        settings.database.url
        if settings.database.url and not settings.database.url.startswith("sqlite")
        else f"sqlite+aiosqlite:///{tmp_path / 'two.db'}"
    )
    await asyncio.to_thread(upgrade, db_url)
    sim = await serve(
        "127.0.0.1",
        0,
        SimulatorConfig(
            speed=SPEED,
            seed=21,
            agents=[Agent(ext) for _, ext in AGENTS],
            population=Population(answer=0.5, machine=0.0, talk_mean=30.0, talk_sd=10.0),
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
                dialer_runtime(s, clock, dialer_name="A", engine_config=_config("A"))
            )
            sm = a.engine.store.sm
            camp = await make_campaign(sm, name=f"Dos marcadores {tmp_path.name}")
            for n in range(LEADS):
                await make_lead(sm, camp.id, 100 + n)
            for uid, ext in AGENTS:
                await make_agent(sm, uid, ext)
            stop_a = asyncio.Event()
            run_a = asyncio.create_task(a.engine.run(stop_a, tick=0.03))
            await asyncio.sleep(0.1)  # A takes the campaign lease first
            b = await stack.enter_async_context(
                dialer_runtime(s, clock, dialer_name="B", engine_config=_config("B"))
            )
            stop_b = asyncio.Event()
            run_b = asyncio.create_task(b.engine.run(stop_b, tick=0.03))
            sims = SimulatedAgents(
                a.engine,
                camp.id,
                CampaignType.CONTACTO_PROACTIVO,
                [SimAgent(uid, ext) for uid, ext in AGENTS],
                seed=3,
                wrap_range=(3.0, 8.0),
            )
            await sims.login_all()
            # Let A work until a few calls are done and some are live, then kill it.
            for _ in range(400):
                await sims.step()
                async with sm() as ss:
                    done = await ss.scalar(
                        sa.select(sa.func.count())
                        .select_from(CallAttempt)
                        .where(CallAttempt.campaign_id == camp.id, CallAttempt.outcome.is_not(None))
                    )
                if (done or 0) >= 4 and a.engine.calls:
                    break
                await asyncio.sleep(0.03)
            assert camp.id in a.engine.campaigns and camp.id not in b.engine.campaigns
            stop_a.set()
            await run_a  # A stops dead: no logout, no hangup, its calls stay on the PBX
            await a.telephony.close()

            sims.engine = b.engine
            deadline = loop.time() + 90.0
            while loop.time() < deadline:
                await sims.step()
                counts = await b.engine.store.counts(camp.id, clock.now())
                if (
                    counts.get("new", 0) + counts.get("pending", 0) + counts.get("in_progress", 0)
                    == 0
                ):
                    break
                if not counts.get("due", 0) and not b.engine.calls and counts.get("pending"):
                    async with sm() as ss:
                        nxt = await ss.scalar(
                            sa.select(sa.func.min(Lead.next_attempt_at)).where(
                                Lead.campaign_id == camp.id, Lead.status == LeadStatus.PENDING
                            )
                        )
                    if nxt is not None and nxt > clock.now():
                        clock.jump_to(nxt)
                await asyncio.sleep(0.03)
            else:
                pytest.fail(f"B did not finish the campaign: {counts}")
            assert camp.id in b.engine.campaigns
            stop_b.set()
            await run_b
            async with sm() as ss:
                leads = list(await ss.scalars(sa.select(Lead).where(Lead.campaign_id == camp.id)))
                attempts = list(
                    await ss.scalars(
                        sa.select(CallAttempt).where(CallAttempt.campaign_id == camp.id)
                    )
                )
    finally:
        await sim.close()

    # No lead lost: every lead is final.
    assert len(leads) == LEADS
    assert all(lead.status.is_final for lead in leads), [lead.status for lead in leads]
    # No attempt without an outcome, and both dialers dialed.
    assert all(att.outcome is not None for att in attempts)
    assert {att.dialer_id for att in attempts} == {"A", "B"}
    # Never two live calls to one lead: attempt intervals never overlap.
    by_lead: dict[int, list[CallAttempt]] = defaultdict(list)
    for att in attempts:
        by_lead[att.lead_id].append(att)
    for lead_attempts in by_lead.values():
        lead_attempts.sort(key=lambda x: x.attempt_number)
        for before, after in itertools.pairwise(lead_attempts):
            assert before.ended_at is not None
            assert after.created_at >= before.ended_at
    # Limits hold.
    assert max(sum(1 for x in v if x.counts_against_limit) for v in by_lead.values()) <= 3
