"""The live engine leaves predictive's cold start (issue 14 #9) and publishes its pacing state.

The engine itself runs a predictive campaign against the PBX simulator with four simulated
agents on a scaled clock. Before the pacer feed, the engine never fed wrap-up samples, so the
pacer stayed in cold start (progressive) forever, and nothing published the mode it applied.

The abandon cap is switched off here (its reserve made unreachable; the cap has its own tests):
on a loaded machine the scaled clock can turn a slow Redirect into an abandon, and a few of
them would hold a campaign this small under the cap for the rest of the test.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge.simulator import Agent, Population, SimulatorConfig
from dialer.db.migrate import upgrade
from dialer.db.models import Campaign, Consent, Lead, Phone
from dialer.domain.outcomes import CampaignType, Channel, DialMode
from dialer.engine import pacing_loop as engine_module
from dialer.pacing import DecisionReason, PacingConfig
from dialer.runtime import ScaledClock, dialer_runtime
from dialer.settings import Settings
from dialer.sim_agents import SimAgent, SimulatedAgents

from .factories import MONDAY_10AM, make_agent, make_campaign

SPEED = 30.0
AGENTS = [(921, "1001"), (922, "1002"), (923, "1003"), (924, "1004")]
LEADS = 150  # enough for the 40 live answers of the cold start, with room to spare


async def _bulk_leads(sm: async_sessionmaker[AsyncSession], campaign_id: int, n: int) -> None:
    """``n`` dialable leads with voice consent, in one transaction."""
    granted = MONDAY_10AM - timedelta(days=30)
    async with sm.begin() as s:
        for i in range(n):
            lead = Lead(
                campaign_id=campaign_id,
                dedupe_key=f"cc:{5000 + i}",
                national_id=str(5000 + i),
                customer_name=f"Cliente {i}",
            )
            lead.phones = [Phone(e164=f"+57301{i:07d}", position=0)]
            s.add(lead)
            s.add(
                Consent(
                    person_key=str(5000 + i),
                    channel=Channel.VOICE,
                    proof="test",
                    granted_at=granted,
                )
            )


@pytest.mark.slow
async def test_live_engine_leaves_cold_start_and_publishes_its_mode(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = engine_module.pacing_config

    def uncapped(campaign: Campaign) -> PacingConfig:
        return replace(original(campaign), cap_reserve_abandons=-1e9)

    monkeypatch.setattr(engine_module, "pacing_config", uncapped)
    db_url = (
        settings.database.url
        if settings.database.url and not settings.database.url.startswith("sqlite")
        else f"sqlite+aiosqlite:///{tmp_path / 'pacing.db'}"
    )
    settings = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": db_url})}
    )
    await asyncio.to_thread(upgrade, db_url)
    clock = ScaledClock(MONDAY_10AM, speed=SPEED)
    sim = SimulatorConfig(
        speed=SPEED,
        seed=3,
        agents=[Agent(ext) for _, ext in AGENTS],
        population=Population(
            answer=0.8,
            busy=0.2,
            congestion=0.0,
            invalid=0.0,
            rejected=0.0,
            machine=0.0,
            ring_mean=4.0,
            ring_sd=1.0,
            talk_mean=8.0,
            talk_sd=2.0,
        ),
    )
    async with dialer_runtime(settings, clock, simulator_config=sim, dialer_name="pl") as rt:
        engine = rt.engine
        sm = engine.store.sm
        redis: aioredis.Redis = rt.redis.client
        camp = await make_campaign(
            sm, name=f"Predictivo {tmp_path.name}", mode=DialMode.PREDICTIVE, max_attempts=2
        )
        for uid, ext in AGENTS:
            await make_agent(sm, uid, ext)
        await _bulk_leads(sm, camp.id, LEADS)
        agents = SimulatedAgents(
            engine,
            camp.id,
            CampaignType.CONTACTO_PROACTIVO,
            [SimAgent(uid, ext) for uid, ext in AGENTS],
            seed=2,
            wrap_range=(2.0, 5.0),
        )
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop, tick=0.03))
        reasons: set[DecisionReason] = set()
        published: list[dict[str, str]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120.0  # real-time budget
        try:
            await agents.login_all()
            while loop.time() < deadline:
                await agents.step()
                runtime = engine.campaigns.get(camp.id)
                decision = runtime.last_decision if runtime else None
                if decision is not None:
                    reasons.add(decision.reason)
                    if decision.closed_loop:
                        raw = await redis.hgetall(rt.keys.campaign_live(camp.id))  # type: ignore[misc]
                        published.append({str(k): str(v) for k, v in raw.items()})
                        if published[-1].get("mode") == DialMode.PREDICTIVE.value:
                            break
                await asyncio.sleep(0.03)
            else:
                model = runtime.pacer.model if runtime else None
                pytest.fail(
                    f"never left cold start: reasons {sorted(reasons)}, "
                    f"talk {model.talk.count if model else '-'}, "
                    f"wrap {model.wrap.count if model else '-'}, "
                    f"live answers {model.answer_rate.live_answers if model else '-'}"
                )
        finally:
            stop.set()
            await runner

    assert runtime is not None
    pacer = runtime.pacer
    cfg = pacer.config
    # every sample kind reached the pacer through the feed: wrap-ups included
    assert pacer.model.wrap.count >= cfg.cold_start_durations
    assert pacer.model.talk.count >= cfg.cold_start_durations
    assert pacer.model.answer_rate.live_answers >= cfg.cold_start_answers
    # it started progressive (cold start / first answers of the day), then predicted
    assert DecisionReason.COLD_START in reasons
    live = published[-1]
    assert live["mode"] == "predictive"
    assert live["reason"] in (DecisionReason.RISK_BOUND.value, DecisionReason.LINE_CAP.value)
    assert float(live["dial_level"]) >= 0.0
    assert 0.0 < float(live["risk_bound"]) < 1.0
