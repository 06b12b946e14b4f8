"""End to end: a messy file is imported, then a campaign runs against the PBX simulator with
three simulated agents on a virtual clock that crosses Friday 19:00, Saturday 15:00, a Sunday
and a Colombian holiday (Tue 2026-12-08, Inmaculada Concepción), until every lead is final.

Invariants checked against the database and the WhatsApp stream:
* no lead has more counted attempts than the campaign allows;
* every call was placed while the legal window was open (and could ring 15 s before closing);
* DNC numbers (imported as DNC, or added after the import) were never dialed;
* every exhausted lead is on the WhatsApp fallback stream exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from ami_bridge.simulator import Agent, Population, SimulatorConfig
from dialer.db.models import CallAttempt, Campaign, DncEntry, DncSource, Lead
from dialer.domain.outcomes import AgentState, CampaignType, LeadStatus
from dialer.domain.windows import CallWindow, HolidayCalendar, can_start_call
from dialer.importing.service import import_file
from dialer.redis_client import Streams
from dialer.runtime import ScaledClock, dialer_runtime
from dialer.settings import Settings
from dialer.sim_agents import SimAgent, SimulatedAgents

from .factories import make_agent, make_campaign

BOGOTA = "America/Bogota"
# Friday 2026-12-04 18:20 in Bogotá: the window closes 40 minutes in.
START = datetime(2026, 12, 4, 23, 20, tzinfo=UTC)
SPEED = 60.0

MESSY_CSV = """\ufeffNombre;Cédula;Celular;Teléfono;Placa;Marca;Modelo;Sede
JOSÉ PEÑA;1049612345;300 123 4501;;abc123;Renault;Duster;Tunja
María Gómez;0040111222;+57 301 234 5602;(8) 7401234;DEF456;Kia;Picanto;Duitama
María Gómez;0040111222;3012345602;;DEF456;Kia;Picanto;Duitama
Transportes Boyacá S.A.S.;900123456;3109876503;;GHI789;Chevrolet;NHR;Tunja
Luis Rojas;52000001;12345;;JKL012;Mazda;CX-30;Tunja
Ana Suárez;52000002;3155550004;;MNO345;Toyota;Hilux;Duitama
Carlos Niño;52000003;3155550005;;PQR678;Renault;Logan;Tunja
Diana Castañeda;52000004;3155550006;;STU901;Chevrolet;Onix;Tunja
Jorge Moreno;52000005;3155550007;;VWX234;Kia;Sportage;Duitama
Paola Barrera;52000006;3155550008;;YZA567;Renault;Koleos;Tunja
Óscar Fonseca;52000007;3155550009;;BCD890;Mazda;2;Duitama
Lucía Cárdenas;52000008;3155550010;;EFG123;Toyota;Corolla;Tunja
Camilo Muñoz;52000009;3155550011;;HIJ456;Renault;Stepway;Tunja
Ángela Avendaño;52000010;3155550012;;KLM789;Kia;Rio;Duitama
Fabián Rodríguez;52000011;3155550013;;NOP012;Chevrolet;Tracker;Tunja
Nelly Martínez;52000012;3155550014;;QRS345;Mazda;CX-5;Duitama
"""

DNC_AT_IMPORT = "+573155550004"  # Ana Suárez: already on the RNE when the list arrives
DNC_LATER = "+573155550005"  # Carlos Niño: asks not to be called after the import


async def _settle(clock: ScaledClock, engine_calls: dict[str, object], budget: float) -> None:
    """Wait (real time, bounded) until no call is in flight."""
    for _ in range(int(budget / 0.05)):
        if not engine_calls:
            return
        await asyncio.sleep(0.05)
    del clock


@pytest.mark.slow
async def test_messy_import_to_final_states(settings: Settings, tmp_path: Path) -> None:
    from dialer.db.migrate import upgrade

    # A private database for this test (the runtime builds its own engine and Redis).
    db_url = (
        settings.database_url
        if settings.database.url and not settings.database.url.startswith("sqlite")
        else f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}"
    )
    settings = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": db_url})}
    )
    await asyncio.to_thread(upgrade, db_url)
    clock = ScaledClock(START, speed=SPEED)
    sim = SimulatorConfig(
        speed=SPEED,
        seed=11,
        agents=[Agent("1001"), Agent("1002"), Agent("1003")],
        population=Population(
            answer=0.2,
            busy=0.15,
            congestion=0.03,
            invalid=0.02,
            rejected=0.03,
            machine=0.1,
            talk_mean=40.0,
            talk_sd=15.0,
            ring_mean=6.0,
            ring_sd=3.0,
        ),
    )
    async with dialer_runtime(settings, clock, simulator_config=sim, dialer_name="e2e") as rt:
        engine = rt.engine
        sm = engine.store.sm
        redis: aioredis.Redis = rt.redis.client
        # Clean slate for this test's rows (the database may be shared with other tests).
        # Long retries and few answers, so the campaign spans Friday night, the weekend,
        # Monday and the Tuesday holiday before every lead is final.
        camp = await make_campaign(
            sm,
            name=f"E2E {tmp_path.name}",
            type_=CampaignType.CONTACTO_PROACTIVO,
            max_attempts=5,
            max_attempts_per_phone=5,
            retry_rules={"no_answer": "PT10H", "busy": "PT10H", "rejected": "PT10H"},
        )
        for uid, ext in ((901, "1001"), (902, "1002"), (903, "1003")):
            await make_agent(sm, uid, ext)
        async with sm.begin() as s:
            s.add(DncEntry(e164=DNC_AT_IMPORT, source=DncSource.RNE, added_at=START))
        path = tmp_path / "clientes.csv"
        path.write_bytes(MESSY_CSV.encode("utf-8"))
        report = await import_file(
            sm, camp.id, path, now=START, assume_consent="autorización habeas data (prueba)"
        )
        assert report.merged == 1  # María Gómez twice
        assert report.excluded.get("corporate") == 1
        assert report.excluded.get("dnc") == 1
        assert sum(report.rejected.values()) == 1  # Luis Rojas: "12345" is no phone
        async with sm.begin() as s:
            s.add(DncEntry(e164=DNC_LATER, source=DncSource.INTERNAL, added_at=START))

        agents = SimulatedAgents(
            engine,
            camp.id,
            CampaignType.CONTACTO_PROACTIVO,
            [SimAgent(901, "1001"), SimAgent(902, "1002"), SimAgent(903, "1003")],
            seed=5,
            wrap_range=(5.0, 15.0),
        )
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop, tick=0.03))
        jumps: list[datetime] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 150.0  # real-time budget for the whole campaign
        try:
            await agents.login_all()
            while loop.time() < deadline:
                await agents.step()
                now = clock.now()
                counts = await engine.store.counts(camp.id, now)
                active = counts.get("new", 0) + counts.get("pending", 0)
                busy = (
                    counts.get("in_progress", 0)
                    or engine.calls
                    or any(
                        a.state in (AgentState.RESERVED, AgentState.IN_CALL, AgentState.WRAP_UP)
                        for a in engine.agents.values()
                    )
                )
                if active == 0 and not busy:
                    break
                if busy or counts.get("due", 0):
                    await asyncio.sleep(0.03)
                    continue
                # Nothing to do until the next lead is due: end the shift and jump there.
                async with sm() as s:
                    nxt = await s.scalar(
                        sa.select(sa.func.min(Lead.next_attempt_at)).where(
                            Lead.campaign_id == camp.id,
                            Lead.status.in_([LeadStatus.NEW, LeadStatus.PENDING]),
                        )
                    )
                if nxt is None or nxt <= now:
                    await asyncio.sleep(0.03)
                    continue
                for sim_agent in agents.agents:
                    await engine.agent_command(sim_agent.user_id, "logout")
                await _settle(clock, engine.calls, 5.0)  # type: ignore[arg-type]
                clock.jump_to(nxt)
                jumps.append(nxt)
                await agents.login_all()
            else:
                pytest.fail(f"campaign did not finish in time: {counts}")
        finally:
            stop.set()
            await runner

        async with sm() as s:
            leads = list(await s.scalars(sa.select(Lead).where(Lead.campaign_id == camp.id)))
            attempts = list(
                await s.scalars(sa.select(CallAttempt).where(CallAttempt.campaign_id == camp.id))
            )
            campaign = await s.get_one(Campaign, camp.id)
        entries = await Streams(redis).read(rt.keys.whatsapp_stream, "0")

    statuses = Counter(lead.status for lead in leads)
    assert len(jumps) >= 3
    assert set(statuses) <= {LeadStatus.CONTACTED, LeadStatus.EXHAUSTED, LeadStatus.EXCLUDED}
    assert sum(statuses.values()) == 14  # 16 rows - 1 merged - 1 rejected

    # The clock really crossed Friday 19:00, Saturday 15:00, the Sunday and the holiday:
    # calls on Friday, Saturday, Monday and Wednesday (none on Sunday or Tuesday, see below).
    call_days = {a.created_at.astimezone(ZoneInfo(BOGOTA)).date() for a in attempts}
    assert {date(2026, 12, 4), date(2026, 12, 5), date(2026, 12, 7)} <= call_days
    assert max(call_days) >= date(2026, 12, 9)

    # Attempt limits.
    per_lead = Counter(a.lead_id for a in attempts if a.counts_against_limit)
    assert max(per_lead.values()) <= campaign.max_attempts

    # Every call inside the legal window (Ley 2300), holidays included.
    window = CallWindow()
    cal = HolidayCalendar()
    for a in attempts:
        local = a.created_at.astimezone(ZoneInfo(BOGOTA))
        assert can_start_call(window, a.created_at, BOGOTA, calendar=cal), local
        assert local.date() != date(2026, 12, 8)  # Inmaculada Concepción
        assert local.weekday() != 6  # Sunday

    # DNC numbers never dialed.
    dialed = {a.number for a in attempts}
    assert DNC_AT_IMPORT not in dialed and DNC_LATER not in dialed

    # Exhausted leads on the WhatsApp stream exactly once.
    exhausted = {lead.id for lead in leads if lead.status is LeadStatus.EXHAUSTED}
    on_stream = Counter(int(e.data["lead_id"]) for e in entries if e.type == "lead_exhausted")
    mine = {lid: n for lid, n in on_stream.items() if lid in {lead.id for lead in leads}}
    assert set(mine) == exhausted
    assert all(n == 1 for n in mine.values())
