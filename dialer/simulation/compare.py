"""Compare policies on one scenario: the body of ``marcador simulate`` and the benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dialer.simulation.baselines import PolicySpec
from dialer.simulation.runner import PolicyResult, Progress, bisect_fixed_ratio, run_policy
from dialer.simulation.scenario import Scenario

DEFAULT_POLICIES = (
    PolicySpec("progressive"),
    PolicySpec("fixed_ratio"),
    PolicySpec("vicidial"),
    PolicySpec("predictive"),
)
BISECTION_ITERATIONS = 6
BISECTION_SEEDS = 2
BISECTION_SHIFTS = 5


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    scenario: Scenario
    ceiling: float
    results: tuple[PolicyResult, ...]

    def get(self, kind: str) -> PolicyResult | None:
        for r in self.results:
            if r.policy == kind or r.policy.startswith(kind + "("):
                return r
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "seeds": len(self.scenario.seeds),
            "shifts": self.scenario.shifts,
            "ceiling": self.ceiling,
            "policies": {
                r.policy: {
                    "ratio": r.ratio,
                    "metrics": {k: v.to_json() for k, v in r.summary.items()},
                }
                for r in self.results
            },
        }


def runs_needed(scenario: Scenario, policies: Sequence[PolicySpec]) -> int:
    n = 0
    for spec in policies:
        n += len(scenario.seeds)
        if spec.kind == "fixed_ratio" and spec.ratio <= 0:
            n += BISECTION_SEEDS * (BISECTION_ITERATIONS + 1)
    return n


def compare(
    scenario: Scenario,
    policies: Sequence[PolicySpec] = DEFAULT_POLICIES,
    processes: int = 1,
    progress: Progress | None = None,
) -> ScenarioReport:
    results = []
    for spec in policies:
        if spec.kind == "fixed_ratio" and spec.ratio <= 0:
            ratio = bisect_fixed_ratio(
                scenario,
                iterations=BISECTION_ITERATIONS,
                tune_seeds=BISECTION_SEEDS,
                tune_shifts=BISECTION_SHIFTS,
                processes=processes,
                progress=progress,
            )
            spec = PolicySpec("fixed_ratio", ratio)
        results.append(run_policy(scenario, spec, processes, progress))
    return ScenarioReport(scenario, scenario.ceiling, tuple(results))
