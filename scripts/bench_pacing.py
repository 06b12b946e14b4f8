"""Pacing benchmark: standard grid + stress scenarios, every policy in the same simulator.

    .venv/bin/python scripts/bench_pacing.py            # full run (5 seeds x 20 shifts of 8 h)
    .venv/bin/python scripts/bench_pacing.py --quick    # smaller run while iterating
    .venv/bin/python scripts/bench_pacing.py --json     # one JSON object, one line (stdout)

Prints one row per scenario (occupancy and abandonment per policy, ratios against the
progressive baseline measured in the same run) and the issue's targets next to the measured
values. Uses at most 2 worker processes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dialer.simulation.compare import (  # noqa: E402
    DEFAULT_POLICIES,
    ScenarioReport,
    compare,
    runs_needed,
)
from dialer.simulation.runner import PolicyResult  # noqa: E402
from dialer.simulation.scenario import Scenario, load_scenario  # noqa: E402

SCENARIO_DIR = ROOT / "dialer" / "simulation" / "scenarios"
OCC_TARGETS = {10: 0.80, 20: 0.86, 50: 0.88}


def load_all(quick: bool, only: str | None) -> list[Scenario]:
    files = sorted(SCENARIO_DIR.glob("grid_*.json"), key=_grid_key) + sorted(
        SCENARIO_DIR.glob("stress_*.json")
    )
    out = []
    for f in files:
        sc = load_scenario(f)
        if only and only not in sc.name:
            continue
        if quick:
            if sc.name.startswith("grid_") and not sc.name.endswith("_p30"):
                continue
            sc = replace(sc, seeds=(1, 2), shifts=5)
        out.append(sc)
    return out


def _grid_key(p: Path) -> tuple[int, str]:
    n = p.stem.split("_")[1]
    return (int(n[1:]), p.stem)


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _m(r: PolicyResult | None, key: str) -> float:
    return r.summary[key].mean if r else float("nan")


def scenario_rows(reports: list[ScenarioReport]) -> list[str]:
    head = (
        "| scenario | ceiling | progressive occ | best fixed ratio occ / ab30 | "
        "VICIdial-style occ / ab30 / worst | predictive occ (±CI) | predictive ab30 / worst "
        "(max seed) | idle mean / p90 s | pred/prog | pred − VICIdial |"
    )
    rows = [head, "|" + "---|" * 10]
    for rep in reports:
        prog, fixed = rep.get("progressive"), rep.get("fixed_ratio")
        vici, pred = rep.get("vicidial"), rep.get("predictive")
        if pred is None or prog is None:
            continue
        po = pred.summary["occupancy"]
        fixed_s = (
            f"{pct(_m(fixed, 'occupancy'))} / {pct(_m(fixed, 'abandon_30d'))} (r={fixed.ratio:.2f})"
            if fixed and fixed.ratio is not None
            else "–"
        )
        rows.append(
            f"| {rep.scenario.name} | {pct(rep.ceiling)} | {pct(_m(prog, 'occupancy'))} | "
            f"{fixed_s} | {pct(_m(vici, 'occupancy'))} / {pct(_m(vici, 'abandon_30d'))} / "
            f"{pct(_m(vici, 'abandon_worst_day'))} | {pct(po.mean)} ±{100 * po.ci95:.2f} | "
            f"{pct(pred.summary['abandon_30d'].mean)} / "
            f"{pct(pred.summary['abandon_worst_day'].hi)} | "
            f"{pred.summary['idle_wait_mean'].mean:.1f} / "
            f"{pred.summary['idle_wait_p90'].mean:.1f} | "
            f"{po.mean / _m(prog, 'occupancy'):.3f}× | "
            f"{100 * (po.mean - _m(vici, 'occupancy')):+.2f} pt |"
        )
    return rows


def target_rows(reports: list[ScenarioReport]) -> tuple[list[str], bool]:
    rows = ["| target | required | measured | status |", "|---|---|---|---|"]
    ok_all = True

    def add(name: str, req: str, measured: str, ok: bool) -> None:
        nonlocal ok_all
        ok_all = ok_all and ok
        rows.append(f"| {name} | {req} | {measured} | {'PASS' if ok else 'MISS'} |")

    preds = [(r, r.get("predictive")) for r in reports]
    preds_ok = [(r, p) for r, p in preds if p is not None]
    worst = max(preds_ok, key=lambda x: x[1].summary["abandon_worst_day"].hi)
    add(
        "worst-day abandon, every scenario (worst seed)",
        "≤ 3.00%",
        f"{pct(worst[1].summary['abandon_worst_day'].hi)} ({worst[0].scenario.name})",
        worst[1].summary["abandon_worst_day"].hi <= 0.03,
    )
    a30 = max(preds_ok, key=lambda x: x[1].summary["abandon_30d"].mean)
    add(
        "30-day abandon, every scenario (mean over seeds)",
        "≤ 2.50%",
        f"{pct(a30[1].summary['abandon_30d'].mean)} ({a30[0].scenario.name})",
        a30[1].summary["abandon_30d"].mean <= 0.025,
    )
    a30max = max(preds_ok, key=lambda x: x[1].summary["abandon_30d"].hi)
    rows.append(
        f"| 30-day abandon, worst single seed (info) | ≤ 2.50% | "
        f"{pct(a30max[1].summary['abandon_30d'].hi)} ({a30max[0].scenario.name}) | "
        f"{'ok' if a30max[1].summary['abandon_30d'].hi <= 0.025 else 'over'} |"
    )
    for n, target in OCC_TARGETS.items():
        name = f"grid_n{n}_p30"
        found = [p for r, p in preds_ok if r.scenario.name == name]
        if not found:
            continue
        occ = found[0].summary["occupancy"]
        add(
            f"occupancy at p=0.3, N={n}",
            f"≥ {100 * target:.0f}%",
            f"{pct(occ.mean)} ±{100 * occ.ci95:.2f}",
            occ.mean >= target,
        )
    deltas = []
    for r, p in preds_ok:
        v = r.get("vicidial")
        if v is None:
            continue
        d = p.summary["occupancy"].mean - v.summary["occupancy"].mean
        ab_ok = p.summary["abandon_30d"].mean <= v.summary["abandon_30d"].mean + 1e-12
        deltas.append((d, ab_ok, r.scenario.name))
    if deltas:
        dmin = min(deltas)
        n_ok = sum(1 for d, ab_ok, _ in deltas if d >= 0.03 and ab_ok)
        add(
            "occupancy over VICIdial-style at ≤ its abandon (every scenario)",
            "≥ +3.00 pt",
            f"min {100 * dmin[0]:+.2f} pt ({dmin[2]}); {n_ok}/{len(deltas)} scenarios pass",
            n_ok == len(deltas),
        )
    below = []
    for r, p in preds_ok:
        g = r.get("progressive")
        if g is not None:
            below.append(
                (p.summary["occupancy"].mean - g.summary["occupancy"].mean, r.scenario.name)
            )
    if below:
        worst_gap = min(below)
        add(
            "never below progressive (occupancy)",
            "≥ +0.00 pt",
            f"min {100 * worst_gap[0]:+.2f} pt ({worst_gap[1]})",
            worst_gap[0] >= 0,
        )
    return rows, ok_all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="p=0.3 grid + stress, 2 seeds x 5 shifts")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--only", help="only scenarios whose name contains this")
    ap.add_argument("--processes", type=int, default=2, choices=(1, 2))
    args = ap.parse_args(argv)

    scenarios = load_all(args.quick, args.only)
    total = sum(runs_needed(sc, DEFAULT_POLICIES) for sc in scenarios)
    started = time.perf_counter()
    reports: list[ScenarioReport] = []
    err = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("pacing benchmark", total=total)
        done = 0
        for sc in scenarios:
            bar.update(task, description=f"pacing benchmark: {sc.name}")
            reports.append(
                compare(sc, DEFAULT_POLICIES, args.processes, lambda n: bar.advance(task, n))
            )
            done += runs_needed(sc, DEFAULT_POLICIES)
            if not err.is_terminal:
                # stderr is a file or a pipe: rich draws no bar there, so say how far we are
                print(
                    f"[{time.perf_counter() - started:6.0f} s] {done}/{total} runs: {sc.name} done",
                    file=sys.stderr,
                    flush=True,
                )
    elapsed = time.perf_counter() - started

    if args.json:
        targets, ok = target_rows(reports)
        print(
            json.dumps(
                {
                    "quick": args.quick,
                    "elapsed_seconds": round(elapsed, 1),
                    "scenarios": [r.to_json() for r in reports],
                    "targets_met": ok,
                    "targets_table": targets,
                },
                separators=(",", ":"),  # one line: the last line of stdout
            ),
            flush=True,
        )
        return 0
    seeds = {len(r.scenario.seeds) for r in reports}
    shifts = {r.scenario.shifts for r in reports}
    print(
        f"Pacing benchmark ({'quick' if args.quick else 'full'}): {len(reports)} scenarios, "
        f"seeds={sorted(seeds)}, shifts={sorted(shifts)} of 8 h, {elapsed:.0f} s wall on "
        f"{args.processes} process(es)\n"
    )
    print("\n".join(scenario_rows(reports)))
    print()
    rows, ok = target_rows(reports)
    print("\n".join(rows))
    print(f"\nall targets met: {'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
