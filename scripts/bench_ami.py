"""AMI bridge benchmark (issue 3, "Performance").

Section 1: events/s through parse -> typed events -> call tracker ->
outcomes, on a byte stream built from the recorded transcripts (repeated to ~200k events),
side by side with panoramisk 1.4's own parsing of the same bytes (``AMIProtocol.data_received``
driven directly, no socket), measured in the same run.

Sections 2 and 3 live in ``bench_ami_live.py`` (they start PBX simulator processes and a
bridge child process on loopback): answer -> Redirect latency with 500 concurrent calls, and
2,000 concurrent calls across 4 simulated PBXs with the bridge's CPU and peak RSS.

    .venv/bin/python scripts/bench_ami.py                # table, all sections
    .venv/bin/python scripts/bench_ami.py --json         # one JSON object
    .venv/bin/python scripts/bench_ami.py --no-live      # section 1 only (no processes)
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ami_bridge.events import to_event
from ami_bridge.protocol import AMIParser, Message
from ami_bridge.tracker import CallEnded, CallTracker
from ami_bridge.transcripts import Transcript, load_all

READ_SIZE = 4096
T0 = datetime(2026, 11, 22, tzinfo=UTC)


@dataclass
class SectionResult:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (metric, value, ratio)
    json: dict[str, Any] = field(default_factory=dict)


def build_stream(transcripts: list[Transcript], target_events: int) -> tuple[bytes, list[str], int]:
    """Concatenate every received message (no banners) of every transcript, repeated, with
    Uniqueids/ActionIDs made unique per repetition so that the tracker sees distinct calls.
    Returns (stream, originate ActionIDs with their match values, events per repetition)."""
    base: list[bytes] = []
    for t in transcripts:
        for rec in t.records:
            if rec.direction == "in" and not rec.is_banner:
                base.append(rec.data)
    per_rep = len(base)
    reps = max(1, -(-target_events // per_rep))
    blob = b"".join(base)
    parts = []
    for r in range(reps):
        # a cheap rewrite that keeps lengths realistic: suffix every ActionID/Uniqueid value
        tag = f"-r{r}".encode()
        parts.append(
            blob.replace(b"\r\nActionID: ", b"\r\nActionID: " + tag)
            .replace(b"\r\nUniqueid: ", b"\r\nUniqueid: " + tag)
            .replace(b"\r\nDestUniqueid: ", b"\r\nDestUniqueid: " + tag)
            .replace(b"\r\nLinkedid: ", b"\r\nLinkedid: " + tag)
        )
    originates = []
    for t in transcripts:
        for rec in t.sent():
            text = rec.text
            if "Action: Originate" in text:
                for line in text.split("\r\n"):
                    if line.startswith("ActionID: "):
                        originates.append(line[len("ActionID: ") :])
    return b"".join(parts), originates, per_rep


def run_marcador(chunks: list[bytes], originates: list[str], reps: int) -> tuple[int, int, float]:
    tracker = CallTracker()
    for r in range(reps):
        for aid in originates:
            tagged = f"-r{r}{aid}"
            if tagged not in tracker:
                tracker.track(tagged, action_id=tagged, now=T0)
    parser = AMIParser(expect_banner=False)
    feed = parser.feed
    tfeed = tracker.feed
    now = T0
    events = 0
    ended = 0
    gc.collect()
    start = time.perf_counter()
    for chunk in chunks:
        for item in feed(chunk):
            if type(item) is Message:
                events += 1
                for out in tfeed(to_event(item), now):
                    if type(out) is CallEnded:
                        ended += 1
    ended += sum(1 for o in tracker.tick(now + timedelta(days=1)) if type(o) is CallEnded)
    elapsed = time.perf_counter() - start
    return events, ended, elapsed


def run_panoramisk(chunks: list[bytes]) -> tuple[int, float]:
    from panoramisk.ami_protocol import AMIProtocol

    class _Factory:
        save_stream = None
        forgetable_actions: tuple[str, ...] = ()

        def __init__(self) -> None:
            self.count = 0
            self.awaiting_actions: list[object] = []

        def dispatch(self, message: object) -> None:
            self.count += 1

        def connection_lost(self, exc: object) -> None:
            pass

    class _Transport:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    proto = AMIProtocol()
    proto.connection_made(_Transport())
    factory = _Factory()
    proto.factory = factory
    proto.version = "11.0.0"
    # count every parsed message, as we do (panoramisk only dispatches events)
    parsed = [0]
    original = proto.handle_message

    def counting(message: object) -> None:
        parsed[0] += 1
        original(message)

    proto.handle_message = counting
    gc.collect()
    start = time.perf_counter()
    for chunk in chunks:
        proto.data_received(chunk)
    elapsed = time.perf_counter() - start
    return parsed[0], elapsed


def section_events(target_events: int, rounds: int) -> SectionResult:
    transcripts = load_all()
    stream, originates, per_rep = build_stream(transcripts, target_events)
    reps = max(1, -(-target_events // per_rep))
    chunks = [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]
    best_ours = best_pano = float("inf")
    events = ended = pano_events = 0
    for _ in range(rounds):
        events, ended, t_ours = run_marcador(chunks, originates, reps)
        pano_events, t_pano = run_panoramisk(chunks)
        best_ours = min(best_ours, t_ours)
        best_pano = min(best_pano, t_pano)
    ours_rate = events / best_ours
    pano_rate = pano_events / best_pano
    cost_ratio = (best_ours / events) / (best_pano / pano_events)
    res = SectionResult()
    res.rows = [
        ("stream", f"{len(stream) / 1e6:.1f} MB, {events} messages, {ended} calls ended", ""),
        ("marcador parse+events+tracker", f"{ours_rate:,.0f} events/s", f"{cost_ratio:.2f}x cost"),
        ("panoramisk 1.4 parse only (baseline)", f"{pano_rate:,.0f} events/s", "1.00x"),
        ("goal", ">= 50,000 events/s, <= 1.5x panoramisk cost", ""),
    ]
    res.json = {
        "events_per_s": round(ours_rate),
        "panoramisk_events_per_s": round(pano_rate),
        "events_cost_ratio_vs_panoramisk": round(cost_ratio, 3),
    }
    return res


def _live_module() -> Any:
    """``bench_ami_live.py`` beside this file (scripts/ is not a package)."""
    path = Path(__file__).resolve().parent / "bench_ami_live.py"
    spec = importlib.util.spec_from_file_location("bench_ami_live", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def section_live(name: str, calls: int) -> SectionResult:
    live = _live_module()
    live.configure_logging("warning")
    fn = live.section_answer_to_redirect if name == "redirect" else live.section_concurrent
    rows, data = fn(calls) if calls else fn()
    res = SectionResult()
    res.rows = list(rows)
    res.json = dict(data)
    return res


SECTIONS: list[tuple[str, Callable[[argparse.Namespace], SectionResult | None]]] = [
    ("AMI events throughput", lambda a: section_events(a.events, a.rounds)),
    (
        "Answer -> Redirect latency (500 concurrent calls, 1 simulated PBX)",
        lambda a: None if a.no_live else section_live("redirect", 0),
    ),
    (
        "Concurrent calls on 4 simulated PBXs (one bridge process)",
        lambda a: None if a.no_live else section_live("concurrent", 0),
    ),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--events", type=int, default=200_000, help="approximate stream size")
    ap.add_argument("--rounds", type=int, default=3, help="best of N rounds")
    ap.add_argument("--no-live", action="store_true", help="skip sections 2 and 3 (processes)")
    args = ap.parse_args(argv)
    combined: dict[str, Any] = {}
    lines: list[str] = []
    for title, fn in SECTIONS:
        result = fn(args)
        if result is None:
            continue
        combined.update(result.json)
        lines.append(f"\n{title}")
        width = max(len(r[0]) for r in result.rows)
        for metric, value, ratio in result.rows:
            lines.append(f"  {metric:<{width}}  {value:<48} {ratio}")
    if args.json:
        print(json.dumps(combined))
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
