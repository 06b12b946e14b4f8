"""Pacing benchmark: grid, stress scenarios and scenario families, every policy in one simulator.

    .venv/bin/python scripts/bench_pacing.py            # full run (5 seeds x 20 shifts of 8 h)
    .venv/bin/python scripts/bench_pacing.py --quick    # smaller run while iterating
    .venv/bin/python scripts/bench_pacing.py --json     # one JSON object, one line (stdout)
    .venv/bin/python scripts/bench_pacing.py --property # 30 random scenarios x 5 shifts

Prints one row per scenario (occupancy and abandonment per policy, ratios against the
progressive baseline measured in the same run) and the issue's targets next to the measured
values. Uses at most 2 worker processes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dialer.simulation.baselines import PolicySpec  # noqa: E402
from dialer.simulation.compare import (  # noqa: E402
    DEFAULT_POLICIES,
    ScenarioReport,
    compare,
    runs_needed,
)
from dialer.simulation.runner import PolicyResult, run_tasks  # noqa: E402
from dialer.simulation.scenario import Scenario, load_scenario  # noqa: E402
from dialer.simulation.standard import property_scenarios  # noqa: E402

SCENARIO_DIR = ROOT / "dialer" / "simulation" / "scenarios"
OCC_TARGETS = {10: 0.80, 20: 0.845, 50: 0.88}
AB30_TARGET = 0.025  # every seed of every scenario
WORST_DAY_TARGET = 0.03
PROPERTY_AB30 = 0.03


def load_all(quick: bool, only: str | None) -> list[Scenario]:
    files = (
        sorted(SCENARIO_DIR.glob("grid_*.json"), key=_grid_key)
        + sorted(SCENARIO_DIR.glob("stress_*.json"))
        + sorted(SCENARIO_DIR.glob("family_*.json"))
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


@dataclass(frozen=True, slots=True)
class Target:
    target: str
    scenario: str
    seed: int | None
    required: str
    measured: str
    ok: bool

    def row(self) -> str:
        where = self.scenario + (f" seed {self.seed}" if self.seed is not None else "")
        status = "PASS" if self.ok else "MISS"
        return f"| {self.target} | {where} | {self.required} | {self.measured} | {status} |"

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "scenario": self.scenario,
            "seed": self.seed,
            "required": self.required,
            "measured": self.measured,
            "status": "PASS" if self.ok else "MISS",
        }


def targets(reports: list[ScenarioReport]) -> list[Target]:
    """Every issue-20 target next to its measured value; abandon targets per seed."""
    out: list[Target] = []
    for rep in reports:
        pred = rep.get("predictive")
        if pred is None:
            continue
        name = rep.scenario.name
        for seed, m in zip(rep.scenario.seeds, pred.per_seed, strict=True):
            out.append(
                Target(
                    "30-day abandon",
                    name,
                    seed,
                    "≤ 2.50%",
                    pct(m.abandon_30d),
                    m.abandon_30d <= AB30_TARGET,
                )
            )
            out.append(
                Target(
                    "worst-day abandon",
                    name,
                    seed,
                    "≤ 3.00%",
                    pct(m.abandon_worst_day),
                    m.abandon_worst_day <= WORST_DAY_TARGET,
                )
            )
        occ = pred.summary["occupancy"].mean
        ab = pred.summary["abandon_30d"].mean
        for n, target in OCC_TARGETS.items():
            if name == f"grid_n{n}_p30":
                ci = pred.summary["occupancy"].ci95
                out.append(
                    Target(
                        f"occupancy at p=0.3, N={n}",
                        name,
                        None,
                        f"≥ {100 * target:.1f}%",
                        f"{pct(occ)} ±{100 * ci:.2f}",
                        occ >= target,
                    )
                )
        prog, vici = rep.get("progressive"), rep.get("vicidial")
        if vici is not None:
            vo, va = _m(vici, "occupancy"), _m(vici, "abandon_30d")
            out.append(
                Target(
                    "over VICIdial-style, at ≤ its abandon",
                    name,
                    None,
                    "≥ +3.00 pt, ab30 ≤ VICIdial's",
                    f"{100 * (occ - vo):+.2f} pt, ab30 {pct(ab)} vs {pct(va)}",
                    occ - vo >= 0.03 - 1e-12 and ab <= va + 1e-12,
                )
            )
        if prog is not None:
            po = _m(prog, "occupancy")
            out.append(
                Target(
                    "never below progressive",
                    name,
                    None,
                    "≥ +0.00 pt",
                    f"{100 * (occ - po):+.2f} pt",
                    occ >= po,
                )
            )
            if rep.ceiling - po >= 0.15:
                out.append(
                    Target(
                        "over progressive (ceiling − progressive ≥ 15 pt)",
                        name,
                        None,
                        "≥ +8.00 pt",
                        f"{100 * (occ - po):+.2f} pt (ceiling − prog "
                        f"{100 * (rep.ceiling - po):.1f} pt)",
                        occ - po >= 0.08 - 1e-12,
                    )
                )
    return out


def target_rows(reports: list[ScenarioReport]) -> tuple[list[str], bool]:
    ts = targets(reports)
    rows = ["| target | scenario | required | measured | status |", "|---|---|---|---|---|"]
    kinds: dict[str, list[Target]] = {}
    for t in ts:
        kinds.setdefault(t.target, []).append(t)
    summary = ["| target | passed | misses |", "|---|---|---|"]
    for kind, items in kinds.items():
        misses = [t for t in items if not t.ok]
        where = ", ".join(
            t.scenario + (f"/s{t.seed}" if t.seed is not None else "") for t in misses
        )
        summary.append(f"| {kind} | {len(items) - len(misses)}/{len(items)} | {where or '–'} |")
    rows += [t.row() for t in ts]
    return [*summary, "", *rows], all(t.ok for t in ts)


def property_check(args: argparse.Namespace) -> int:
    """Random scenarios from the documented ranges: 30-day abandon ≤ 3%, occ ≥ progressive."""
    scenarios = property_scenarios(args.property_count, args.property_seed, args.property_shifts)
    specs = (PolicySpec("progressive"), PolicySpec("predictive"))
    tasks = [(sc, spec, sc.seeds[0]) for sc in scenarios for spec in specs]
    started = time.perf_counter()
    ms = run_tasks(tasks, args.processes)
    elapsed = time.perf_counter() - started
    rows: list[dict[str, str | float]] = []
    ok_all = True
    for i, sc in enumerate(scenarios):
        prog, pred = ms[2 * i], ms[2 * i + 1]
        ok = pred.abandon_30d <= PROPERTY_AB30 and pred.occupancy >= prog.occupancy
        ok_all = ok_all and ok
        rows.append(
            {
                "scenario": sc.description,
                "abandon_30d": pred.abandon_30d,
                "abandon_worst_day": pred.abandon_worst_day,
                "occupancy": pred.occupancy,
                "progressive_occupancy": prog.occupancy,
                "status": "PASS" if ok else "MISS",
            }
        )
    if args.json:
        out = {
            "property": True,
            "elapsed_seconds": round(elapsed, 1),
            "all_pass": ok_all,
            "shifts": args.property_shifts,
            "scenarios": rows,
        }
        print(json.dumps(out, separators=(",", ":")), flush=True)
        return 0
    print(
        f"Pacing property check: {len(rows)} random scenarios x {args.property_shifts} shifts "
        f"of 8 h (seed {args.property_seed}), {elapsed:.0f} s wall\n"
    )
    print("| scenario | ab30 (≤ 3%) | worst day | occupancy | progressive | status |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [pct(float(r[k])) for k in ("abandon_30d", "abandon_worst_day", "occupancy")]
        cells.append(pct(float(r["progressive_occupancy"])))
        print(f"| {r['scenario']} | {' | '.join(cells)} | {r['status']} |")
    print(f"\nall pass: {'yes' if ok_all else 'no'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="p=0.3 grid + stress, 2 seeds x 5 shifts")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument(
        "--save-json",
        type=Path,
        metavar="FILE",
        help="also write the JSON object to FILE (one run gives both the tables and the JSON)",
    )
    ap.add_argument("--only", help="only scenarios whose name contains this")
    ap.add_argument("--processes", type=int, default=2, choices=(1, 2))
    ap.add_argument(
        "--property",
        action="store_true",
        help="property check: random scenarios from the documented ranges, predictive vs "
        "progressive (30-day abandon ≤ 3%%, occupancy ≥ progressive)",
    )
    ap.add_argument("--property-count", type=int, default=30)
    ap.add_argument("--property-shifts", type=int, default=5)
    ap.add_argument("--property-seed", type=int, default=20)
    args = ap.parse_args(argv)
    if args.property:
        return property_check(args)

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

    table, ok = target_rows(reports)
    doc = json.dumps(
        {
            "quick": args.quick,
            "elapsed_seconds": round(elapsed, 1),
            "scenarios": [r.to_json() for r in reports],
            "targets_met": ok,
            "targets": [t.to_json() for t in targets(reports)],
            "targets_table": table,
        },
        separators=(",", ":"),  # one line: the last line of stdout
    )
    if args.save_json is not None:
        args.save_json.write_text(doc + "\n", encoding="utf-8")
    if args.json:
        print(doc, flush=True)
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
    print("\n".join(table))
    print(f"\nall targets met: {'yes' if ok else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
