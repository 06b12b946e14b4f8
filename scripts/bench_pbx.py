"""Benchmark on the real PBX (issue 14, "Benchmark on the real PBX").

Runs calls through a lab Asterisk 22 (:class:`dialer.pbx_lab.LabPbx`, its own run directory and
free ports) with the **real engine**: a ``marcador dialer`` and a ``marcador api`` process
(``tests/pbx/stack.py``), one progressive campaign, N virtual agents
(``Local/{ext}@marcador-lab-vagent``: no SIP seat needed, so N is not bounded by the lab's
1001-1010 seats) logged in through the API, then N leads on digit-0 numbers (answer and talk
until hung up) released in one transaction. Every call is answered and connected to an agent,
so N calls end up up at once.

Measured at the PBX, from AMI events of a separate lab-admin session (``timestampevents = yes``
in the lab's manager.conf: each event carries Asterisk's own clock):

* ``answer_to_join_p50_ms`` / ``answer_to_join_p99_ms``: customer leg ``Newstate`` Up (the
  ``;1`` half of ``Local/<number>@marcador-lab-pstn``) to its ``ConfbridgeJoin`` into
  ``agent-<ext>``: the dialplan's hold verdict, the tracker, the engine's connect decision, the
  Redirect and ConfBridge together;
* ``concurrent_calls``: peak number of customers joined to agents at the same time;
* ``originates_per_s``: customer channels created, first to last (the engine launches at most
  ``max_launch_per_tick`` = 20 per 0.5 s tick);
* ``dialer_cpu_fraction`` / ``asterisk_cpu_fraction``: user+sys CPU of the ``marcador dialer``
  process and of Asterisk (psutil) over the window from the release of the leads to the last
  join, divided by the wall time (1.0 = one core).

A baseline run with fewer calls (``--baseline-calls``, default 20) on the same lab comes first;
the table shows the ratios of the main run against it and against the 50 ms goal. The machine
load (``os.getloadavg``) is reported with the figures: on a shared machine it matters.

Usage::

    .venv/bin/python scripts/bench_pbx.py                 # table (200 calls, baseline 20)
    .venv/bin/python scripts/bench_pbx.py --json          # one JSON object on the last line
    .venv/bin/python scripts/bench_pbx.py --calls 3 --baseline-calls 0 --json   # smoke

Progress goes to stderr. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from dialer.domain.outcomes import DialMode  # noqa: E402
from dialer.lab_pstn import PSTN_CONTEXT, lab_number  # noqa: E402
from dialer.pbx_lab import AmiCredentials, LabPbx, bundle_present  # noqa: E402
from dialer.redis_client import Streams, connect_redis  # noqa: E402
from dialer.redis_keys import Keys  # noqa: E402
from tests.pbx.stack import AgentUser, PbxStack  # noqa: E402

GOAL_P99_MS = 50.0
EVENTS = ("Newchannel", "Newstate", "Newexten", "ConfbridgeJoin", "Hangup")
CTX_HOLD, CTX_ROOM = "marcador-hold", "marcador-agent-room"
Rows = list[tuple[str, str, str]]


def say(msg: str) -> None:
    print(f"[bench_pbx {time.strftime('%X')}] {msg}", file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- AMI watcher ------------------------------------------------------------------------------


@dataclass
class Customer:
    created: float
    up: float | None = None
    hold: float | None = None  # first dialplan step in marcador-hold: the verdict
    room: float | None = None  # first step in marcador-agent-room: the Redirect ran
    joined: float | None = None
    gone: float | None = None


@dataclass
class Recorder:
    """Customer legs seen on the PBX, by Uniqueid; timestamps are the PBX's (seconds)."""

    expected: int
    customers: dict[str, Customer] = field(default_factory=dict)
    joined_now: int = 0
    peak_joined: int = 0
    up_now: int = 0
    peak_up: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    untimestamped: int = 0

    def feed(self, msg: dict[str, str]) -> None:
        name = msg.get("Event")
        if name not in EVENTS:
            return
        uid = msg.get("Uniqueid", "")
        try:
            ts = float(msg["Timestamp"])
        except (KeyError, ValueError):
            ts = time.time()
            self.untimestamped += 1
        if name == "Newchannel":
            chan = msg.get("Channel", "")
            if f"@{PSTN_CONTEXT}-" in chan and chan.endswith(";1"):
                self.customers[uid] = Customer(ts)
                self.up_now += 1
                self.peak_up = max(self.peak_up, self.up_now)
            return
        c = self.customers.get(uid)
        if c is None:
            return
        if name == "Newstate" and msg.get("ChannelState") == "6" and c.up is None:
            c.up = ts
        elif name == "Newexten":
            ctx = msg.get("Context")
            if ctx == CTX_HOLD and c.hold is None:
                c.hold = ts
            elif ctx == CTX_ROOM and c.room is None:
                c.room = ts
            return
        elif name == "ConfbridgeJoin" and c.joined is None and c.gone is None:
            c.joined = ts
            self.joined_now += 1
            self.peak_joined = max(self.peak_joined, self.joined_now)
        elif name == "Hangup" and c.gone is None:
            c.gone = ts
            self.up_now -= 1
            if c.joined is not None:
                self.joined_now -= 1
        done = sum(1 for x in self.customers.values() if x.joined is not None or x.gone)
        if done >= self.expected:
            self.settled.set()


async def _read_message(reader: asyncio.StreamReader) -> dict[str, str]:
    msg: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("AMI closed the connection")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if msg:
                return msg
            continue
        key, sep, value = text.partition(":")
        if sep:
            msg.setdefault(key.strip(), value.strip())


async def watch(creds: AmiCredentials, rec: Recorder, ready: asyncio.Event) -> None:
    """A lab-admin AMI session feeding ``rec`` until cancelled."""
    reader, writer = await asyncio.open_connection(creds.host, creds.port)
    try:
        await reader.readline()  # banner
        writer.write(
            (
                f"Action: Login\r\nUsername: {creds.username}\r\nSecret: {creds.secret}\r\n"
                "Events: call,dialplan\r\nActionID: login\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        while True:
            msg = await asyncio.wait_for(_read_message(reader), 10.0)
            if msg.get("ActionID") == "login":
                if msg.get("Response") != "Success":
                    raise ConnectionError(f"AMI login refused: {msg.get('Message')}")
                break
        # Only the four events we need (less work for Asterisk and for us).
        regex = "Event: (" + "|".join(EVENTS) + ")"
        writer.write(
            f"Action: Filter\r\nOperation: Add\r\nFilter: {regex}\r\nActionID: f\r\n\r\n".encode()
        )
        await writer.drain()
        ready.set()
        while True:
            rec.feed(await _read_message(reader))
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# --- agents ---------------------------------------------------------------------------------


async def login_agents(
    stack: PbxStack, campaign_id: int, users: list[AgentUser], within: float
) -> None:
    """Log the agents in the way the API does it (``agent_login`` on the command stream), without
    200 password checks, and wait until every one is ready in its room. A login is sent again
    after 5 s while the agent is still logged out (a dialer that is still starting may not have
    joined the stream yet)."""
    settings = stack.redis_settings()
    keys = Keys(settings.redis.key_prefix)
    redis = connect_redis(settings)
    streams = Streams(redis.client)
    sent: dict[int, float] = {}
    deadline = time.monotonic() + within
    try:
        while True:
            states = [
                await redis.client.hget(keys.agent_state(u.id), "state")  # type: ignore[misc]
                for u in users
            ]
            if all(st == "ready" for st in states):
                return
            now = time.monotonic()
            if now > deadline:
                n = sum(1 for st in states if st == "ready")
                raise TimeoutError(f"only {n} of {len(users)} agents ready after {within:.0f} s")
            for u, st in zip(users, states, strict=True):
                if st in (None, "logged_out") and now - sent.get(u.id, -1e9) > 5.0:
                    sent[u.id] = now
                    await streams.add(
                        keys.commands_stream,
                        "agent_login",
                        {"agent_id": u.id, "extension": u.extension, "campaign_id": campaign_id},
                    )
            await asyncio.sleep(0.5)  # polling another process's state
    finally:
        await redis.close()


# --- one run ----------------------------------------------------------------------------------


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


async def run_once(
    lab: LabPbx, tmp: Path, calls: int, ext_base: int, serial_base: int
) -> dict[str, Any]:
    say(f"run of {calls} calls: starting marcador api + dialer")
    stack = PbxStack(lab, tmp / f"run-{calls}", max_channels=calls + 20, log_level="warning")
    stack.start()
    watcher: asyncio.Task[None] | None = None
    try:
        camp, _ = await stack.seed_campaign(
            [], mode=DialMode.PROGRESSIVE, max_attempts=1, ring_timeout=15
        )
        users = await stack.add_agents(camp, [str(ext_base + i) for i in range(calls)])
        say(f"logging in {calls} virtual agents (agent_login commands)")
        t_login = time.monotonic()
        await login_agents(stack, camp, users, within=60.0 + 1.0 * calls)
        login_s = time.monotonic() - t_login
        say(f"agents in their rooms after {login_s:.1f} s")

        # What the rooms alone cost Asterisk: N agents logged in, no call (5 s).
        asterisk = psutil.Process(lab.pid)
        idle0, idle_wall0 = _cpu(asterisk), time.monotonic()
        await asyncio.sleep(5.0)  # a measuring window, not a wait for an event
        idle_cpu = (_cpu(asterisk) - idle0) / (time.monotonic() - idle_wall0)
        say(f"Asterisk with {calls} agents in their rooms, no call: {idle_cpu:.3f} of one core")

        rec = Recorder(calls)
        ready = asyncio.Event()
        watcher = asyncio.create_task(watch(lab.admin, rec, ready))
        await asyncio.wait_for(ready.wait(), 15.0)
        dialer = psutil.Process(stack.procs["dialer-1"].popen.pid)
        load0 = os.getloadavg()
        cpu_d0, cpu_a0, wall0 = _cpu(dialer), _cpu(asterisk), time.monotonic()
        numbers = [lab_number("0", serial_base + i) for i in range(calls)]
        await stack.add_leads(camp, numbers)
        say(f"{calls} leads released; waiting for every call to join its agent")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rec.settled.wait(), 30.0 + 0.5 * calls)
        wall = time.monotonic() - wall0
        cpu_d, cpu_a = _cpu(dialer) - cpu_d0, _cpu(asterisk) - cpu_a0
        load1 = os.getloadavg()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        say("hanging up and stopping the processes")
        await stack.aclose()

    custs = list(rec.customers.values())
    lat = [(c.joined - c.up) * 1000.0 for c in custs if c.joined is not None and c.up is not None]
    created = sorted(c.created for c in custs)

    def split(a: str, b: str) -> tuple[float, float]:
        ms = [
            (getattr(c, b) - getattr(c, a)) * 1000.0
            for c in custs
            if getattr(c, a) is not None and getattr(c, b) is not None
        ]
        return round(_pct(ms, 0.50), 2), round(_pct(ms, 0.99), 2)

    span = created[-1] - created[0] if len(created) > 1 else 0.0
    ops = (len(created) - 1) / span if span > 0 else float(len(created))
    return {
        "calls": calls,
        "originated": len(custs),
        "answered": sum(1 for c in custs if c.up is not None),
        "joined": len(lat),
        "not_joined": sum(1 for c in custs if c.joined is None),
        "answer_to_join_p50_ms": round(_pct(lat, 0.50), 2),
        "answer_to_join_p99_ms": round(_pct(lat, 0.99), 2),
        "answer_to_join_max_ms": round(max(lat, default=float("nan")), 2),
        # Where the time goes (p50, p99): Asterisk's dialplan to the hold verdict, the dialer
        # (tracker, connect decision, Redirect round trip), Asterisk's ConfBridge join.
        "answer_to_hold_ms": split("up", "hold"),
        "hold_to_redirect_ms": split("hold", "room"),
        "redirect_to_join_ms": split("room", "joined"),
        "concurrent_calls": rec.peak_joined,
        "originates_per_s": round(ops, 1),
        "dialer_cpu_fraction": round(cpu_d / wall, 3),
        "asterisk_cpu_fraction": round(cpu_a / wall, 3),
        "asterisk_idle_rooms_cpu_fraction": round(idle_cpu, 3),
        "window_s": round(wall, 2),
        "agent_login_s": round(login_s, 1),
        "load_avg_1m": round((load0[0] + load1[0]) / 2, 2),
        "untimestamped_events": rec.untimestamped,
    }


# --- table ------------------------------------------------------------------------------------


def _ratio(value: float, base: float) -> str:
    if not base or base != base or value != value:
        return ""
    return f"{value / base:.2f}x baseline"


def _pair(v: list[float] | tuple[float, float]) -> str:
    return f"{v[0]:.2f} / {v[1]:.2f} ms"


def table(main: dict[str, Any], base: dict[str, Any] | None, cpus: int) -> str:
    b = base or {}
    rows: Rows = [
        ("calls (all answered, talk until hung up)", f"{main['calls']}", ""),
        (
            "originated / answered / joined an agent",
            f"{main['originated']} / {main['answered']} / {main['joined']}",
            "",
        ),
        (
            "answer -> ConfbridgeJoin p50",
            f"{main['answer_to_join_p50_ms']:.2f} ms",
            _ratio(main["answer_to_join_p50_ms"], b.get("answer_to_join_p50_ms", 0.0)),
        ),
        (
            "answer -> ConfbridgeJoin p99",
            f"{main['answer_to_join_p99_ms']:.2f} ms",
            "; ".join(
                x
                for x in (
                    f"{main['answer_to_join_p99_ms'] / GOAL_P99_MS:.2f}x of the goal",
                    _ratio(main["answer_to_join_p99_ms"], b.get("answer_to_join_p99_ms", 0.0)),
                )
                if x
            ),
        ),
        ("answer -> ConfbridgeJoin max", f"{main['answer_to_join_max_ms']:.2f} ms", ""),
        ("  answer -> hold (Asterisk) p50/p99", _pair(main["answer_to_hold_ms"]), ""),
        ("  hold -> Redirect ran (dialer) p50/p99", _pair(main["hold_to_redirect_ms"]), ""),
        ("  Redirect -> join (ConfBridge) p50/p99", _pair(main["redirect_to_join_ms"]), ""),
        (
            "concurrent calls (peak joined)",
            f"{main['concurrent_calls']}",
            _ratio(main["concurrent_calls"], b.get("concurrent_calls", 0)),
        ),
        (
            "originates per second",
            f"{main['originates_per_s']:.1f}",
            _ratio(main["originates_per_s"], b.get("originates_per_s", 0.0)),
        ),
        (
            "dialer CPU (fraction of one core)",
            f"{main['dialer_cpu_fraction']:.3f} over {main['window_s']:.1f} s",
            _ratio(main["dialer_cpu_fraction"], b.get("dialer_cpu_fraction", 0.0)),
        ),
        (
            "Asterisk CPU (fraction of one core)",
            f"{main['asterisk_cpu_fraction']:.3f}",
            _ratio(main["asterisk_cpu_fraction"], b.get("asterisk_cpu_fraction", 0.0)),
        ),
        (
            "Asterisk CPU, agents in rooms, no call",
            f"{main['asterisk_idle_rooms_cpu_fraction']:.3f}",
            _ratio(
                main["asterisk_idle_rooms_cpu_fraction"],
                b.get("asterisk_idle_rooms_cpu_fraction", 0.0),
            ),
        ),
        ("agent login (all rooms)", f"{main['agent_login_s']:.1f} s", ""),
        ("machine load (1 min avg)", f"{main['load_avg_1m']:.2f} on {cpus} CPUs", ""),
    ]
    lines = []
    if base:
        lines.append(
            f"Baseline ({base['calls']} calls): p50 {base['answer_to_join_p50_ms']:.2f} ms, "
            f"p99 {base['answer_to_join_p99_ms']:.2f} ms, "
            f"{base['originates_per_s']:.1f} originates/s, "
            f"dialer CPU {base['dialer_cpu_fraction']:.3f}, "
            f"Asterisk CPU {base['asterisk_cpu_fraction']:.3f}, load {base['load_avg_1m']:.2f}"
        )
    lines.append(f"Real PBX, engine path ({main['calls']} calls)")
    width = max(len(r[0]) for r in rows)
    for metric, value, ratio in rows:
        lines.append(f"  {metric:<{width}}  {value:<28} {ratio}")
    return "\n".join(lines)


# --- CLI --------------------------------------------------------------------------------------


async def _bench(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    say(f"starting a lab PBX in {run_dir}")
    lab = LabPbx.start(run_dir / "lab", progress=say, timestamp_events=True)
    try:
        base = None
        if args.baseline_calls > 0:
            base = await run_once(lab, run_dir, args.baseline_calls, 60_000, 0)
        main = await run_once(lab, run_dir, args.calls, 70_000, 5_000)
    finally:
        say("stopping the lab PBX")
        lab.stop()
    result: dict[str, Any] = dict(main)
    result["goal_p99_ms"] = GOAL_P99_MS
    result["goal_met"] = bool(
        main["joined"] == main["calls"] and main["answer_to_join_p99_ms"] <= GOAL_P99_MS
    )
    result["cpus"] = os.cpu_count() or 0
    result["baseline"] = base
    if base:
        result["p99_vs_baseline"] = round(
            main["answer_to_join_p99_ms"] / base["answer_to_join_p99_ms"], 2
        )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark on the real (lab) PBX, engine path")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--calls", type=int, default=200, help="concurrent calls (default 200)")
    ap.add_argument(
        "--baseline-calls", type=int, default=20, help="baseline run first (0: none; default 20)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args(argv)
    if args.calls < 1:
        ap.error("--calls must be >= 1")
    if not bundle_present():
        print("no Asterisk bundle (see dialer/pbx_lab.py): nothing to measure", file=sys.stderr)
        return 2
    run_dir = Path(tempfile.mkdtemp(prefix="marcador-bench-pbx-"))
    try:
        result = asyncio.run(asyncio.wait_for(_bench(args, run_dir), 300.0 + 3.0 * args.calls))
    finally:
        if args.keep:
            say(f"run directory kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(table(result, result["baseline"], result["cpus"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
