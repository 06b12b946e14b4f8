"""The live-against-simulated metrics (dialer.simulation.live_compare), on hand-made rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.pacing import Pacer, PacingConfig, PacingDecision, PacingSnapshot, PacingStats
from dialer.simulation.engine import simulate_run
from dialer.simulation.history import CampaignHistory
from dialer.simulation.live_compare import (
    PacingMetrics,
    StateSpan,
    live_metrics,
    side_by_side,
    sim_metrics,
)
from dialer.simulation.metrics import Estimate
from dialer.simulation.replay import AttemptRecord
from dialer.simulation.scenario import ScenarioError, parse_scenario
from dialer.simulation.standard import grid_json

T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def span(state: AgentState, a: float, b: float | None) -> StateSpan:
    return StateSpan(state, at(a), at(b) if b is not None else None)


def test_live_metrics_clip_spans_to_the_window_and_count_outcomes() -> None:
    spans = [
        span(AgentState.PAUSED, -30, -10),  # login pause, before the window: ignored
        span(AgentState.READY, -10, 20),  # 20 s inside
        span(AgentState.IN_CALL, 20, 50),  # 30 s talk
        span(AgentState.WRAP_UP, 50, 60),  # 10 s wrap-up
        span(AgentState.PAUSED, 60, 70),  # a break: not logged-in time
        span(AgentState.READY, 70, 80),
        span(AgentState.IN_CALL, 80, None),  # still talking at the end: clipped to 100
        # a second agent, ready all the time
        span(AgentState.READY, 0, None),
    ]
    outcomes = [
        CallOutcome.ANSWERED_CONNECTED,
        CallOutcome.ANSWERED_CONNECTED,
        CallOutcome.ABANDONED,
        CallOutcome.NO_ANSWER,
        CallOutcome.BUSY,
        CallOutcome.CANCELLED,  # placed, then cancelled at the pause: still a dial
        None,  # no outcome yet: still a dial
        CallOutcome.NO_ANSWER,
    ]
    m = live_metrics(outcomes, spans, at(0), at(100))
    assert m.talk_s == pytest.approx(50.0)
    assert m.wrap_s == pytest.approx(10.0)
    assert m.logged_in_s == pytest.approx(90.0 + 100.0)
    assert m.occupancy == pytest.approx(60.0 / 190.0)
    assert m.talk_share == pytest.approx(50.0 / 190.0)
    assert (m.dials, m.connects, m.live_answers, m.abandoned) == (8, 2, 3, 1)
    assert m.abandon_rate == pytest.approx(1 / 3)
    assert m.dials_per_connect == pytest.approx(4.0)


def test_live_metrics_without_connects_or_agents() -> None:
    m = live_metrics([CallOutcome.NO_ANSWER], [], at(0), at(10))
    assert (m.occupancy, m.abandon_rate) == (0.0, 0.0)
    assert math.isinf(m.dials_per_connect)
    assert m.to_json()["dials_per_connect"] is None
    with pytest.raises(ValueError):
        live_metrics([], [], at(10), at(10))


def test_sim_metrics_map_the_simulator_names() -> None:
    def e(v: float) -> Estimate:
        return Estimate(v, 0.0, v, v)

    m = sim_metrics(
        {
            "utilization": e(0.8),
            "occupancy": e(0.6),
            "abandon_30d": e(0.02),
            "dials_per_connect": e(2.5),
        }
    )
    assert (m.occupancy, m.talk_share, m.abandon_rate, m.dials_per_connect) == (
        0.8,
        0.6,
        0.02,
        2.5,
    )


def test_side_by_side_shows_each_difference_to_live() -> None:
    live = PacingMetrics(0.5, 0.4, 0.01, 3.0)
    sim = PacingMetrics(0.75, 0.6, 0.025, math.inf)
    table = side_by_side(live, [("sim", sim)])
    lines = table.splitlines()
    assert lines[0] == "| metric | live (real PBX) | sim | sim - live |"
    assert "| occupancy (talk+wrap)/logged-in | 50.00% | 75.00% | +25.00 pt |" in lines
    assert "| abandon rate (abandoned/live answers) | 1.00% | 2.50% | +1.50 pt |" in lines
    assert "| dials per connect | 3.00 | n/a | n/a |" in lines


def test_history_fits_the_scenario_the_cli_fits() -> None:
    talks = [
        AttemptRecord(at(i * 20), CallOutcome.ANSWERED_CONNECTED, 3.0 + i, 6.0 + i, 2.0, str(i % 2))
        for i in range(4)
    ]
    recs = (*talks, AttemptRecord(at(90), CallOutcome.NO_ANSWER, 20.0))
    sc = CampaignHistory(7, "c", 2.5, recs).scenario()
    assert (sc.name, sc.connect_timeout, sc.agents) == ("campaign-7", 2.5, 2)


def test_prior_answers_are_the_first_days_recorded_answers() -> None:
    """``prior_answers``: the pacer's stats start the first shift with them (today and 30 days),
    the next shift starts a new day with them in its 30-day figures only."""
    seen: list[PacingStats] = []

    class Spy(Pacer):
        def decide(self, snap: PacingSnapshot) -> PacingDecision:
            seen.append(snap.stats)
            return super().decide(snap)

    raw = grid_json(3, 0.3)
    raw.update(shift_hours=0.05, shifts=2, seeds=1, prior_answers=300)
    sc = parse_scenario(raw)
    assert sc.prior_answers == 300 and sc.to_json()["prior_answers"] == 300
    simulate_run(sc, lambda: Spy(PacingConfig()), 1)
    first = seen[0]
    assert (first.answers_today, first.answers_30d) == (300, 300)
    new_day = next(
        i for i in range(1, len(seen)) if seen[i].answers_today < seen[i - 1].answers_today
    )
    assert seen[new_day].answers_today == 0
    # the new day carries the first one (history included) in its 30-day figures
    assert seen[new_day].answers_30d >= seen[new_day - 1].answers_today > 300
    with pytest.raises(ScenarioError, match="prior_answers"):
        parse_scenario({**raw, "prior_answers": -1})
    assert "prior_answers" not in sc.with_overrides(prior_answers=0).to_json()
