from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dialer.domain.outcomes import AgentState, CallOutcome, DialMode
from dialer.pacing import (
    AgentView,
    DecisionReason,
    PacingDecision,
    PacingSnapshot,
    PacingStats,
    Segment,
)
from dialer.simulation.baselines import PolicySpec, VicidialAdaptHardLimit, parse_policy
from dialer.simulation.cli import register, simulate
from dialer.simulation.engine import simulate_run
from dialer.simulation.history import CampaignHistory, to_record
from dialer.simulation.metrics import estimate, seed_metrics
from dialer.simulation.replay import AttemptRecord, scenario_from_history
from dialer.simulation.runner import bisect_fixed_ratio
from dialer.simulation.scenario import ScenarioError, load_scenario, parse_scenario
from dialer.simulation.standard import grid_json

SCENARIOS = Path(__file__).resolve().parents[2] / "dialer" / "simulation" / "scenarios"


def small(agents: int = 5, hours: float = 1.0, shifts: int = 1, **kw: object) -> dict[str, object]:
    d = grid_json(agents, 0.3)
    d.update(shift_hours=hours, shifts=shifts, seeds=1, **kw)
    return d


def test_same_seed_same_metrics() -> None:
    sc = parse_scenario(small(agents=6, hours=2.0, shifts=2))
    spec = PolicySpec("predictive")
    a = seed_metrics(simulate_run(sc, spec.factory(sc), 3, spec.tick_interval))
    b = seed_metrics(simulate_run(sc, spec.factory(sc), 3, spec.tick_interval))
    c = seed_metrics(simulate_run(sc, spec.factory(sc), 4, spec.tick_interval))
    assert a == b
    assert a != c


def test_predictive_defaults_keep_abandon_under_limit() -> None:
    sc = parse_scenario(small(agents=10, hours=8.0, shifts=3))
    spec = PolicySpec("predictive")
    run = simulate_run(sc, spec.factory(sc), 1, spec.tick_interval)
    m = seed_metrics(run)
    assert m.abandon_30d <= 0.03
    assert m.abandon_worst_day <= 0.03
    prog = PolicySpec("progressive")
    base = seed_metrics(simulate_run(sc, prog.factory(sc), 1, prog.tick_interval))
    assert base.abandon_30d == 0.0
    assert m.occupancy > base.occupancy + 0.03


def test_progressive_never_abandons_and_metrics_are_consistent() -> None:
    sc = parse_scenario(small(agents=4, hours=2.0))
    spec = PolicySpec("progressive")
    run = simulate_run(sc, spec.factory(sc), 1, spec.tick_interval)
    m = seed_metrics(run)
    assert m.abandon_30d == 0.0
    assert 0.4 < m.occupancy < m.utilization <= 1.0
    assert m.peak_lines_per_agent <= 1.0
    assert m.dials_per_connect > 1.0
    st = run.shifts[0]
    assert st.logged_in == pytest.approx(4 * 2 * 3600.0)


def test_breaks_schedule_and_amd_scenarios_run() -> None:
    sc = parse_scenario(
        small(
            agents=6,
            hours=2.0,
            breaks={"share": 0.1, "minutes": 15},
            agent_schedule=[[0, 6], [1.0, 2]],
            machine_share=0.15,
            amd_false_positive=0.05,
            list_switches=[{"at_hour": 0.5, "list_id": "B", "answer_prob_factor": 0.5}],
        )
    )
    run = simulate_run(sc, PolicySpec("predictive").factory(sc), 1, 2.0)
    st = run.shifts[0]
    assert st.paused > 0.0
    # 6 agents for 1 h then 2 agents for 1 h (paused time excluded)
    assert st.logged_in + st.paused == pytest.approx(8 * 3600.0, rel=0.02)
    assert st.abandoned > 0  # AMD false positives count as abandoned


def test_shipped_scenarios_load() -> None:
    files = sorted(SCENARIOS.glob("*.json"))
    assert len(files) == 18 + 17  # grid + stress + family_* (issue 20)
    for f in files:
        sc = load_scenario(f)
        assert sc.name == f.stem
        assert sc.shifts == 20 and len(sc.seeds) >= 5
    assert load_scenario(SCENARIOS / "grid_n20_p30.json").ceiling == pytest.approx(180 / 195)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"agentz": 3}, "unknown key"),
        ({"agents": 0}, "agents"),
        ({"answer_prob": 1.5}, "answer_prob"),
        ({"talk": {"dist": "gamma", "mean": 3}}, "talk.dist"),
        ({"talk": {"dist": "lognormal"}}, "talk: missing 'mean'"),
        ({"no_answer_timeout": {"dist": "uniform", "min": 30, "max": 20}}, "no_answer_timeout"),
        ({"seeds": []}, "seeds"),
    ],
)
def test_scenario_errors_name_the_key(patch: dict[str, object], message: str) -> None:
    raw = small()
    raw.update(patch)
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(raw)


def test_scenario_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScenarioError, match="invalid JSON"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="no such scenario"):
        load_scenario(tmp_path / "missing.json")


def test_vicidial_controller_clamps_and_hard_limit() -> None:
    v = VicidialAdaptHardLimit()
    ready = tuple(AgentView(str(i), AgentState.READY, 0.0) for i in range(10))
    stats = PacingStats(100, 0, 100, 0)
    for t in range(0, 600, 2):
        v.decide(PacingSnapshot(float(t), ready, (), 0, stats))
    assert v.level == pytest.approx(3.0)  # all agents idle: level climbs to the clamp
    d = v.decide(PacingSnapshot(602.0, ready, (), 0, PacingStats(100, 5, 100, 5)))
    assert v.level == 1.0 and d.launch == 10  # drop % over the limit: level 1.0


def test_vicidial_controller_does_not_count_agents_in_wrap_up() -> None:
    """VICIdial pauses an agent on the disposition screen (DISPO): not an active agent."""
    agents = (
        AgentView("r", AgentState.READY, 0.0),
        AgentView("t", AgentState.IN_CALL, 0.0),
        *(AgentView(f"w{i}", AgentState.WRAP_UP, 0.0) for i in range(3)),
    )
    stats = PacingStats(100, 0, 100, 0)
    at_level_one = VicidialAdaptHardLimit().decide(PacingSnapshot(0.0, agents, (), 0, stats))
    # level 1.0 x 2 active (ready + talking) - 1 talking: one line, for the READY agent only
    assert at_level_one.launch == 1
    old = VicidialAdaptHardLimit(count_wrap_up=True).decide(
        PacingSnapshot(0.0, agents, (), 0, stats)
    )
    assert old.launch == 4  # 1.0 x 5 - 1: the earlier reading dialed for the wrap-ups too


def test_bisection_finds_a_ratio_in_range() -> None:
    sc = parse_scenario(small(agents=5, hours=1.0))
    r = bisect_fixed_ratio(sc, iterations=3, tune_seeds=1, tune_shifts=1)
    assert 1.0 <= r <= 3.0


def test_parse_policy() -> None:
    assert parse_policy("ratio:1.5") == PolicySpec("fixed_ratio", 1.5)
    assert parse_policy("Predictive").kind == "predictive"
    with pytest.raises(ValueError, match="unknown policy"):
        parse_policy("magic")


def test_estimate_ci() -> None:
    e = estimate([1.0, 2.0, 3.0, 4.0, 5.0])
    assert e.mean == 3.0 and e.lo == 1.0 and e.hi == 5.0
    assert e.ci95 == pytest.approx(2.776 * (2.5**0.5) / 5**0.5, rel=1e-3)


def _history(n: int = 3000, seed: int = 5) -> list[AttemptRecord]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    recs = []
    for i in range(n):
        t = start + timedelta(days=i // 1000, seconds=(i % 1000) * 28.0)
        u = rng.random()
        if u < 0.1:
            recs.append(AttemptRecord(t, CallOutcome.BUSY, 3.0))
        elif u < 0.1 + 0.9 * 0.3:
            recs.append(
                AttemptRecord(
                    t,
                    CallOutcome.ANSWERED_CONNECTED,
                    rng.lognormvariate(2.09, 0.47),
                    rng.lognormvariate(4.85, 0.83),
                    rng.lognormvariate(2.66, 0.29),
                    f"a{i % 7}",
                )
            )
        else:
            recs.append(AttemptRecord(t, CallOutcome.NO_ANSWER, rng.uniform(20.0, 25.0)))
    return recs


def test_scenario_from_history_recovers_the_parameters() -> None:
    sc = scenario_from_history(_history(), name="replay-test")
    assert sc.agents == 7
    assert sc.fast_fail_share == pytest.approx(0.1, abs=0.02)
    assert sum(sc.answer_prob) / len(sc.answer_prob) == pytest.approx(0.3, abs=0.04)
    assert sc.answer_delay.mean == pytest.approx(9.0, rel=0.1)
    assert sc.talk.mean == pytest.approx(180.0, rel=0.1)
    assert sc.talk.b == pytest.approx(1.0, rel=0.15)
    assert sc.wrap.mean == pytest.approx(15.0, rel=0.1)
    assert 19.0 < sc.no_answer_timeout.a < sc.no_answer_timeout.b < 26.0
    assert sc.shift_start_hour == 8
    # and it runs
    run = simulate_run(
        sc.with_overrides(shifts=1, shift_hours=1.0), PolicySpec("predictive").factory(sc), 1, 2.0
    )
    assert run.shifts[0].dials > 0


def test_scenario_from_history_rejects_thin_history() -> None:
    with pytest.raises(ScenarioError, match="no attempts"):
        scenario_from_history([])
    with pytest.raises(ScenarioError, match="live answers"):
        scenario_from_history(_history(n=3)[:1])


def test_simulate_json_and_register(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "tiny.json"
    f.write_text(json.dumps(small(agents=3, hours=0.5)))
    report = simulate(f, ["progressive", "ratio:1.2"], json_out=True)
    out = json.loads(capsys.readouterr().out)
    assert set(out["policies"]) == {"progressive", "fixed_ratio(1.20)"}
    assert out["policies"]["progressive"]["metrics"]["abandon_30d"]["mean"] == 0.0
    assert report.ceiling == pytest.approx(180 / 195)

    app = typer.Typer()

    @app.command("noop")
    def _noop() -> None:
        return None

    register(app)
    runner = CliRunner()
    res = runner.invoke(app, ["simulate", str(f), "-p", "progressive"], terminal_width=120)
    assert res.exit_code == 0, res.output
    assert "grid_n3_p30" in res.output
    assert "progressive " in res.output and "progress…" not in res.output
    assert "n/a with 1 seed" in res.output and "±0.00" not in res.output  # one seed: no CI
    res = runner.invoke(app, ["simulate", str(f), "-p", "progressive", "--seeds", "2"])
    assert res.exit_code == 0 and "n/a" not in res.output and "±" in res.output
    res = runner.invoke(app, ["simulate", "--from-campaign", "42"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["simulate", str(tmp_path / "nope.json")])
    assert res.exit_code == 2


def test_predictive_decision_reason_exposed() -> None:
    assert DecisionReason.RISK_BOUND.value == "risk_bound"
    assert DialMode.PREDICTIVE.value == "predictive"


def test_history_rows_become_attempt_records() -> None:
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    s = timedelta(seconds=1)
    rec = to_record(
        t0,
        t0,
        t0 + 8 * s,
        t0 + 8 * s,
        t0 + 128 * s,
        CallOutcome.ANSWERED_CONNECTED,
        7,
        t0 + 143 * s,
    )
    assert (rec.ring_seconds, rec.talk_seconds, rec.wrap_seconds) == (8.0, 120.0, 15.0)
    assert rec.agent_id == "7"
    rec = to_record(None, t0, None, None, t0 + 22 * s, CallOutcome.NO_ANSWER, None, None)
    assert (rec.ring_seconds, rec.talk_seconds, rec.agent_id) == (22.0, None, None)
    rec = to_record(t0, t0, t0 + 6 * s, None, t0 + 9 * s, CallOutcome.MACHINE, None, None)
    assert rec.ring_seconds == 6.0


def test_from_campaign_replays_the_loaded_history(capsys: pytest.CaptureFixture[str]) -> None:
    hist = CampaignHistory(42, "demo", 3.0, tuple(_history(n=1500)))
    report = simulate(
        None,
        ["progressive"],
        seeds=1,
        shifts=1,
        json_out=True,
        from_campaign="42",
        history_loader=lambda ref: hist,
    )
    assert report.scenario.name == "campaign-42"
    assert report.scenario.connect_timeout == 3.0
    assert json.loads(capsys.readouterr().out)["scenario"] == "campaign-42"


def test_oracle_supply_tells_the_pacer_exact_free_times() -> None:
    """The oracle policy (a bound for better prediction) sees when each busy agent frees up."""
    sc = parse_scenario(small(agents=4, hours=0.5))
    spec = parse_policy("oracle_supply")
    assert spec.reveal_free_times
    assert not PolicySpec("predictive").reveal_free_times
    seen: list[PacingSnapshot] = []
    inner = spec.factory(sc)()

    class Spy:
        def decide(self, snap: PacingSnapshot) -> PacingDecision:
            seen.append(snap)
            return inner.decide(snap)

        def observe_call(
            self,
            segment: Segment,
            outcome: CallOutcome,
            ring: float,
            dialed_under: DecisionReason | None = None,
        ) -> None:
            inner.observe_call(segment, outcome, ring, dialed_under)

        def observe_talk(self, seconds: float) -> None:
            inner.observe_talk(seconds)

        def observe_wrap(self, seconds: float) -> None:
            inner.observe_wrap(seconds)

    run = simulate_run(sc, Spy, 1, spec.tick_interval, spec.reveal_free_times)
    busy = [
        a for s in seen for a in s.agents if a.state in (AgentState.IN_CALL, AgentState.WRAP_UP)
    ]
    assert busy
    assert all(a.expected_free_at is not None and a.expected_free_at >= a.since for a in busy)
    assert all(
        a.expected_free_at is None for s in seen for a in s.agents if a.state is AgentState.READY
    )
    assert seed_metrics(run).occupancy > 0.0
