"""Run policies over seeds (optionally on 2 processes), bisection for the best fixed ratio."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from dialer.simulation.baselines import PolicySpec
from dialer.simulation.engine import simulate_run
from dialer.simulation.metrics import Estimate, SeedMetrics, seed_metrics, summarize
from dialer.simulation.scenario import Scenario

MAX_PROCESSES = 2  # the benchmark machine has 2 cores shared with other work

Progress = Callable[[int], None]  # called with the number of seed runs just completed


@dataclass(frozen=True, slots=True)
class PolicyResult:
    scenario: str
    policy: str
    per_seed: tuple[SeedMetrics, ...]
    summary: dict[str, Estimate]
    ratio: float | None = None  # for fixed_ratio: the ratio used


def _run_one(args: tuple[Scenario, PolicySpec, int]) -> SeedMetrics:
    scenario, spec, seed = args
    run = simulate_run(
        scenario, spec.factory(scenario), seed, spec.tick_interval, spec.reveal_free_times
    )
    return seed_metrics(run)


def run_tasks(
    tasks: Sequence[tuple[Scenario, PolicySpec, int]],
    processes: int = 1,
    progress: Progress | None = None,
) -> list[SeedMetrics]:
    """Run (scenario, policy, seed) tasks, in order, on up to 2 worker processes."""
    processes = max(1, min(processes, MAX_PROCESSES, len(tasks)))
    if processes == 1:
        out = []
        for t in tasks:
            out.append(_run_one(t))
            if progress:
                progress(1)
        return out
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        results: list[SeedMetrics] = []
        for m in pool.imap(_run_one, tasks):
            results.append(m)
            if progress:
                progress(1)
        return results


def run_policy(
    scenario: Scenario,
    spec: PolicySpec,
    processes: int = 1,
    progress: Progress | None = None,
) -> PolicyResult:
    per_seed = run_tasks([(scenario, spec, s) for s in scenario.seeds], processes, progress)
    ratio = spec.ratio if spec.kind == "fixed_ratio" else None
    return PolicyResult(scenario.name, spec.label, tuple(per_seed), summarize(per_seed), ratio)


def bisect_fixed_ratio(
    scenario: Scenario,
    target: float = 0.03,
    lo: float = 1.0,
    hi: float = 3.0,
    iterations: int = 7,
    tune_seeds: int = 2,
    tune_shifts: int = 10,
    processes: int = 1,
    progress: Progress | None = None,
) -> float:
    """Largest fixed ratio whose 30-day abandon rate stays at or below ``target``.

    Tuned offline on a smaller copy of the scenario (``tune_seeds`` seeds x ``tune_shifts``
    shifts, seeds disjoint from the evaluation seeds) so the baseline is not fitted to the
    exact random draws it is then measured on.
    """
    base = max(scenario.seeds) + 1000
    tune = replace(
        scenario,
        seeds=tuple(range(base, base + tune_seeds)),
        shifts=min(scenario.shifts, tune_shifts),
    )

    def abandon(ratio: float) -> float:
        spec = PolicySpec("fixed_ratio", ratio)
        ms = run_tasks([(tune, spec, s) for s in tune.seeds], processes, progress)
        return sum(m.abandon_30d for m in ms) / len(ms)

    if abandon(lo) > target:
        return lo
    for _ in range(iterations):
        mid = (lo + hi) / 2.0
        if abandon(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo
