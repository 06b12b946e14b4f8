"""Issue 20 property check, shortened: random scenarios from the documented ranges.

The ranges are ``PROPERTY_RANGES`` (agents 2-60, p 0.1-0.5, talk 60-400 s with cv 0.5-1.5,
wrap-up 5-60 s, fast failures 0-20%). The benchmark runs it at full length
(``scripts/bench_pacing.py --property``: 30 scenarios x 5 shifts of 8 h); here each scenario
runs one 4-hour shift, so the whole check takes about 30 s on a loaded 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from dialer.simulation.baselines import PolicySpec
from dialer.simulation.engine import simulate_run
from dialer.simulation.metrics import seed_metrics
from dialer.simulation.standard import (
    PROPERTY_RANGES,
    family_json,
    family_scenarios,
    property_json,
    property_scenarios,
)

COUNT = 30


def test_scenarios_are_drawn_from_the_documented_ranges() -> None:
    scenarios = property_scenarios(COUNT, shifts=1, hours=4.0)
    assert len({sc.name for sc in scenarios}) == COUNT
    r = PROPERTY_RANGES
    for sc in scenarios:
        assert r["agents"][0] <= sc.agents <= r["agents"][1]
        assert r["answer_prob"][0] <= sc.answer_prob[0] <= r["answer_prob"][1]
        assert r["talk_mean"][0] <= sc.talk.mean <= r["talk_mean"][1]
        assert r["talk_cv"][0] <= sc.talk.b <= r["talk_cv"][1]
        assert r["wrap_mean"][0] <= sc.wrap.mean <= r["wrap_mean"][1]
        assert r["fast_fail_share"][0] <= sc.fast_fail_share <= r["fast_fail_share"][1]
    assert property_json(20, 3) == property_json(20, 3)  # seeded: same draw every run


def test_random_scenarios_keep_abandon_limit_and_beat_progressive() -> None:
    failures = []
    for sc in property_scenarios(COUNT, shifts=1, hours=4.0):
        got = {}
        for kind in ("progressive", "predictive"):
            spec = PolicySpec(kind)
            run = simulate_run(sc, spec.factory(sc), sc.seeds[0], spec.tick_interval)
            got[kind] = seed_metrics(run)
        pred, prog = got["predictive"], got["progressive"]
        if pred.abandon_30d > 0.03 or pred.occupancy < prog.occupancy:
            failures.append(
                f"{sc.description}: abandon {pred.abandon_30d:.4f}, occupancy "
                f"{pred.occupancy:.4f} vs progressive {prog.occupancy:.4f}"
            )
    assert not failures, "\n".join(failures)


def test_shipped_family_files_match_their_definitions() -> None:
    """The family_*.json files the benchmark loads are exactly ``family_json()``."""
    folder = Path(__file__).resolve().parents[2] / "dialer" / "simulation" / "scenarios"
    defined = {d["name"]: d for d in family_json()}
    shipped = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("family_*")}
    assert shipped == defined
    counts: dict[str, int] = {}
    for name in defined:
        family = name.split("_")[1]
        counts[family] = counts.get(family, 0) + 1
    assert set(counts) == {"shortwrap", "tiny", "swing", "halfstaff", "longtalk", "delay"}
    assert all(2 <= n <= 3 for n in counts.values())
    for sc in family_scenarios():
        if sc.name.startswith("family_swing"):
            assert max(sc.answer_prob) >= 2 * min(sc.answer_prob)
        if sc.name.startswith("family_tiny"):
            assert 2 <= sc.agents <= 4
        if sc.name.startswith("family_longtalk"):
            assert sc.talk.b >= 1.3
        if sc.name.startswith("family_halfstaff"):
            counts_over_shift = [n for _, n in sc.agent_schedule]
            assert min(counts_over_shift) * 2 == sc.agents == counts_over_shift[-1]
        if sc.name.startswith("family_delay"):
            assert (sc.answer_delay.a, sc.answer_delay.b) == (5.0, 12.0)
