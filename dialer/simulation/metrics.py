"""Per-seed metrics and their mean with a 95% confidence interval over seeds (design.md §8)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from dialer.simulation.engine import RunResult

# two-sided 97.5% Student t quantiles by degrees of freedom
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


def t975(df: int) -> float:
    if df <= 0:
        return math.nan
    best = max(k for k in _T975 if k <= df)
    return _T975[best] if df <= 30 else 1.96


@dataclass(frozen=True, slots=True)
class SeedMetrics:
    occupancy: float  # talk / logged-in (paused excluded)
    utilization: float  # (talk + wrap) / logged-in
    abandon_30d: float  # abandoned / live answers over all shifts
    abandon_worst_day: float  # worst shift
    idle_wait_mean: float  # seconds a READY agent waited for its next connected call
    idle_wait_p90: float
    connects_per_agent_hour: float
    dials_per_connect: float
    peak_lines_per_agent: float


METRIC_NAMES = tuple(SeedMetrics.__dataclass_fields__)


def seed_metrics(run: RunResult) -> SeedMetrics:
    talk = sum(s.talk for s in run.shifts)
    wrap = sum(s.wrap for s in run.shifts)
    logged = sum(s.logged_in for s in run.shifts)
    live = sum(s.live for s in run.shifts)
    ab = sum(s.abandoned for s in run.shifts)
    connects = sum(s.connects for s in run.shifts)
    dials = sum(s.dials for s in run.shifts)
    worst = max((s.abandoned / s.live for s in run.shifts if s.live), default=0.0)
    waits = sorted(run.idle_waits)
    p90 = waits[min(len(waits) - 1, int(0.9 * len(waits)))] if waits else 0.0
    return SeedMetrics(
        occupancy=talk / logged if logged else 0.0,
        utilization=(talk + wrap) / logged if logged else 0.0,
        abandon_30d=ab / live if live else 0.0,
        abandon_worst_day=worst,
        idle_wait_mean=sum(waits) / len(waits) if waits else 0.0,
        idle_wait_p90=p90,
        connects_per_agent_hour=connects / (logged / 3600.0) if logged else 0.0,
        dials_per_connect=dials / connects if connects else math.inf,
        peak_lines_per_agent=run.peak_lines_per_agent,
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    mean: float
    ci95: float  # half-width
    lo: float  # min over seeds
    hi: float  # max over seeds

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "ci95": self.ci95, "min": self.lo, "max": self.hi}


def estimate(values: list[float]) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan)
    m = sum(values) / n
    if n == 1:
        return Estimate(m, 0.0, m, m)
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return Estimate(m, t975(n - 1) * math.sqrt(var / n), min(values), max(values))


def summarize(per_seed: list[SeedMetrics]) -> dict[str, Estimate]:
    rows = [asdict(m) for m in per_seed]
    return {name: estimate([float(r[name]) for r in rows]) for name in METRIC_NAMES}
