"""AMI bridge benchmark, live sections (issue 3, "Performance", sections 2 and 3).

Both sections run the real connection manager (:class:`ami_bridge.connection.AmiBridge`: sockets,
panoramisk glue, parser, queue, workers, call trackers) against the in-project PBX simulator.
The simulators always run in a **separate process**, as Asterisk would, so the numbers are the
bridge's own.

* ``section_answer_to_redirect``: 500 concurrent calls (all answered, ring times spread). The
  engine-side handler redirects each call to an agent room as soon as the tracker reports the
  answer. Latency is measured **at the PBX**: from the moment the simulator emits the answer
  (``Newstate`` Up of the dialled leg) to the moment it runs the Redirect (first dialplan step
  in ``marcador-agent-room``). Both timestamps are ``time.monotonic()`` in the simulator
  process. Goal: p99 <= 20 ms.
* ``section_concurrent``: 2,000 concurrent calls over 4 simulated PBXs, tracked by one bridge
  process (a fresh child process, so its ``ru_maxrss`` is its own). Reports the peak number of
  calls tracked at once, the process's CPU fraction (user+sys CPU / wall time) while the calls
  run, and its peak RSS.

Each section returns ``(rows, json)``; ``scripts/bench_ami.py`` can add them to its table::

    from bench_ami_live import section_answer_to_redirect, section_concurrent
    rows, keys = section_answer_to_redirect(500)   # answer_to_redirect_p50_ms / _p99_ms
    rows, keys = section_concurrent(2000, 4)       # concurrent_calls, cpu_fraction, rss_mb

Logging should be at WARNING while measuring (info logs to a terminal skew the tail).
Standalone::

    .venv/bin/python scripts/bench_ami_live.py           # table
    .venv/bin/python scripts/bench_ami_live.py --json    # one JSON object
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from ami_bridge import dialplan as dp  # noqa: E402
from ami_bridge.actions import OriginateRequest  # noqa: E402
from ami_bridge.connection import AmiBridge, LinkOptions, ServerSpec  # noqa: E402
from ami_bridge.simulator import Population, SimulatorConfig, serve  # noqa: E402
from ami_bridge.tracker import CallEnded, CallHeld, TrackerOutput  # noqa: E402
from dialer.logging import configure_logging  # noqa: E402

Rows = list[tuple[str, str, str]]
USER, SECRET = "dialer", "dialer-secret"  # the simulator's built-in lab user (loopback only)


# --- simulator child process ------------------------------------------------------------------


async def _serve_sims(
    count: int, speed: float, answer: float, ring_mean: float, ring_min: float
) -> None:
    # Whatever is not answered rings until the Originate Timeout (no-answer).
    population = Population(
        answer=answer,
        busy=0.0,
        congestion=0.0,
        invalid=0.0,
        rejected=0.0,
        machine=0.0,
        ring_mean=ring_mean,
        ring_sd=ring_mean / 2,
        ring_min=ring_min,
    )
    marks: dict[str, list[float | None]] = {}

    def listener(event: Any) -> None:
        uid = event.get("Uniqueid")
        if not uid or uid.endswith(";2"):
            return
        if event.name == "Newstate" and event.get("ChannelState") == "6":
            marks.setdefault(uid, [time.monotonic(), None])
        elif event.name == "Newexten" and event.get("Context") == dp.CTX_AGENT_ROOM:
            mark = marks.get(uid)
            if mark is not None and mark[1] is None:
                mark[1] = time.monotonic()

    sims = []
    for i in range(count):
        config = SimulatorConfig(speed=speed, seed=100 + i, population=population)
        sim = await serve("127.0.0.1", 0, config)
        sim.add_listener(listener)
        sims.append(sim)
    print(json.dumps({"ports": [s.port for s in sims]}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    print(json.dumps({"marks": marks}), flush=True)
    for sim in sims:
        await sim.close()


class _SimProcess:
    def __init__(
        self, count: int, speed: float, answer: float, ring_mean: float, ring_min: float
    ) -> None:
        args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve-sims",
            str(count),
            "--speed",
            str(speed),
            "--answer",
            str(answer),
            "--ring-mean",
            str(ring_mean),
            "--ring-min",
            str(ring_min),
        ]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self.proc.stdout is not None
        self.ports: list[int] = json.loads(self.proc.stdout.readline())["ports"]

    def finish(self) -> dict[str, list[float | None]]:
        out, _ = self.proc.communicate(timeout=30)
        marks: dict[str, list[float | None]] = json.loads(out.strip().splitlines()[-1])["marks"]
        return marks


def _specs(ports: list[int]) -> list[ServerSpec]:
    return [
        ServerSpec(f"pbx{i + 1}", "127.0.0.1", port, USER, SecretStr(SECRET))
        for i, port in enumerate(ports)
    ]


def _request(
    channel_id: str, number: str, connect_timeout: float, timeout_ms: int = 60_000
) -> OriginateRequest:
    return OriginateRequest(
        channel=f"PJSIP/{number}@trunk",
        channel_id=channel_id,
        context=dp.CTX_OUTBOUND,
        exten=dp.EXTEN_START,
        timeout_ms=timeout_ms,
        caller_id='"Marcador" <6087654321>',
        variables={
            dp.VAR_ATTEMPT: channel_id,
            dp.VAR_CONNECT_TIMEOUT: f"{connect_timeout:g}",
        },
    )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- section 2: answer -> Redirect ------------------------------------------------------------


async def _run_redirect(ports: list[int], calls: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    ended = 0
    failures: list[str] = []
    redirects: set[asyncio.Task[None]] = set()
    bridge: AmiBridge

    async def redirect(server: str, out: CallHeld) -> None:
        if out.channel is None:
            failures.append(f"{out.call_id}: no channel")
            return
        try:
            await bridge.link(server).redirect(out.channel, dp.CTX_AGENT_ROOM, "1001")
        except Exception as exc:
            failures.append(f"{out.call_id}: {exc!r}")

    def on_output(server: str, out: TrackerOutput) -> None:
        nonlocal ended
        if isinstance(out, CallHeld):  # the dialplan verdict, as the engine does
            task = loop.create_task(redirect(server, out))
            redirects.add(task)
            task.add_done_callback(redirects.discard)
        elif isinstance(out, CallEnded):
            ended += 1
            if ended >= calls:
                done.set()

    bridge = AmiBridge(_specs(ports), options=LinkOptions(action_timeout=10.0), on_output=on_output)
    async with bridge:
        await bridge.wait_ready(10.0, all_servers=True)
        await asyncio.gather(
            *(
                bridge.originate("pbx1", _request(f"lat-{i}", f"57300{i:07d}", 30.0))
                for i in range(calls)
            )
        )
        peak = len(bridge.trackers["pbx1"])
        await asyncio.wait_for(done.wait(), 120.0)
    return {"failures": failures, "peak": peak}


def section_answer_to_redirect(calls: int = 500) -> tuple[Rows, dict[str, Any]]:
    # speed 1: real-time ring times (0.5-5 s), so answers arrive in overlapping bursts
    sims = _SimProcess(1, speed=1.0, answer=1.0, ring_mean=2.0, ring_min=0.5)
    try:
        info = asyncio.run(_run_redirect(sims.ports, calls))
    finally:
        marks = sims.finish()
    lat = [(b - a) * 1000.0 for a, b in marks.values() if a is not None and b is not None]
    p50, p99 = _pct(lat, 0.50), _pct(lat, 0.99)
    rows: Rows = [
        ("calls (concurrent, all answered)", f"{calls} (peak tracked {info['peak']})", ""),
        ("answer -> Redirect measured", f"{len(lat)} calls, {len(info['failures'])} errors", ""),
        ("answer -> Redirect p50", f"{p50:.2f} ms", ""),
        ("answer -> Redirect p99", f"{p99:.2f} ms", f"{p99 / 20.0:.2f}x of 20 ms goal"),
        ("answer -> Redirect max", f"{max(lat, default=float('nan')):.2f} ms", ""),
    ]
    return rows, {
        "answer_to_redirect_p50_ms": round(p50, 3),
        "answer_to_redirect_p99_ms": round(p99, 3),
    }


# --- section 3: 2,000 concurrent calls on 4 PBXs -----------------------------------------------


async def _run_concurrent(ports: list[int], calls: int) -> dict[str, Any]:
    ended = 0
    peak = 0
    done = asyncio.Event()
    bridge: AmiBridge

    def on_output(server: str, out: TrackerOutput) -> None:
        nonlocal ended, peak
        if isinstance(out, CallEnded):
            peak = max(peak, 1 + sum(len(t) for t in bridge.trackers.values()))
            ended += 1
            if ended >= calls:
                done.set()

    bridge = AmiBridge(_specs(ports), options=LinkOptions(action_timeout=10.0), on_output=on_output)
    async with bridge:
        await bridge.wait_ready(10.0, all_servers=True)
        servers = list(bridge.trackers)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(
            *(
                bridge.originate(
                    servers[i % len(servers)],
                    _request(f"cc-{i}", f"57310{i:07d}", 8.0, timeout_ms=20_000),
                )
                for i in range(calls)
            )
        )
        peak = max(peak, sum(len(t) for t in bridge.trackers.values()))
        await asyncio.wait_for(done.wait(), 180.0)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "concurrent_calls": peak,
        "ended": ended,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_fraction": cpu / wall,
        "rss_mb": rss_kb / 1024.0,
    }


def section_concurrent(calls: int = 2000, servers: int = 4) -> tuple[Rows, dict[str, Any]]:
    # ring_min 4 s: every call is still up when the last Originate of the burst is queued
    sims = _SimProcess(servers, speed=2.0, answer=0.6, ring_mean=6.0, ring_min=4.0)
    try:
        child = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--bridge-child",
                ",".join(map(str, sims.ports)),
                "--calls",
                str(calls),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=True,
        )
    finally:
        sims.finish()
    res: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    rows: Rows = [
        ("PBX simulators (separate process)", f"{servers}", ""),
        ("calls tracked at once (peak)", f"{res['concurrent_calls']:,}", ""),
        ("calls ended", f"{res['ended']:,} in {res['wall_s']:.1f} s", ""),
        ("bridge CPU", f"{res['cpu_s']:.2f} s", f"{res['cpu_fraction']:.3f} of one core"),
        ("bridge peak RSS", f"{res['rss_mb']:.1f} MB", ""),
    ]
    return rows, {
        "concurrent_calls": res["concurrent_calls"],
        "cpu_fraction": round(res["cpu_fraction"], 4),
        "rss_mb": round(res["rss_mb"], 1),
    }


# --- CLI --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="AMI bridge live benchmark (sections 2 and 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--calls", type=int, default=0, help="override the number of calls")
    ap.add_argument("--serve-sims", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--bridge-child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--answer", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--ring-mean", type=float, default=2.0, help=argparse.SUPPRESS)
    ap.add_argument("--ring-min", type=float, default=0.5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    configure_logging("warning")
    if args.serve_sims:
        asyncio.run(
            _serve_sims(args.serve_sims, args.speed, args.answer, args.ring_mean, args.ring_min)
        )
        return 0
    if args.bridge_child:
        ports = [int(p) for p in args.bridge_child.split(",")]
        print(json.dumps(asyncio.run(_run_concurrent(ports, args.calls or 2000))))
        return 0
    combined: dict[str, Any] = {}
    lines: list[str] = []
    sections: list[tuple[str, Callable[[], tuple[Rows, dict[str, Any]]]]] = [
        ("Answer -> Redirect latency", lambda: section_answer_to_redirect(args.calls or 500)),
        ("Concurrent calls on 4 PBXs", lambda: section_concurrent(args.calls or 2000)),
    ]
    for title, fn in sections:
        rows, result = fn()
        combined.update(result)
        lines.append(f"\n{title}")
        width = max(len(r[0]) for r in rows)
        for metric, value, ratio in rows:
            lines.append(f"  {metric:<{width}}  {value:<48} {ratio}")
    print(json.dumps(combined) if args.json else "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
