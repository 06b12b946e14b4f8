from __future__ import annotations

import copy

import pytest

from dialer.domain.outcomes import AgentState, CallOutcome, DialMode
from dialer.pacing import (
    CallView,
    DecisionReason,
    Pacer,
    PacingConfig,
    PacingSnapshot,
    PacingStats,
    budget_headroom,
)
from tests.pacing.conftest import SEG, agent, train

NOW = 100_000.0
GOOD_STATS = PacingStats(answers_today=2000, abandons_today=20, answers_30d=40000, abandons_30d=600)


def snap(agents: list[tuple[AgentState, float]], ringing: int = 0, **kw: object) -> PacingSnapshot:
    views = tuple(agent(i, st, NOW - el) for i, (st, el) in enumerate(agents))
    calls = tuple(CallView(str(i), NOW - 1.0, SEG) for i in range(ringing))
    return PacingSnapshot(NOW, views, calls, next_segment=SEG, **kw)  # type: ignore[arg-type]


def test_preview_never_launches() -> None:
    p = Pacer(PacingConfig(mode=DialMode.PREVIEW))
    d = p.decide(snap([(AgentState.READY, 5.0)] * 3))
    assert (d.launch, d.mode, d.reason) == (0, DialMode.PREVIEW, DecisionReason.PREVIEW)


def test_progressive_one_line_per_ready_agent() -> None:
    p = Pacer(PacingConfig(mode=DialMode.PROGRESSIVE))
    agents = [(AgentState.READY, 1.0)] * 4 + [(AgentState.IN_CALL, 30.0)] * 3
    assert p.decide(snap(agents)).launch == 4
    assert p.decide(snap(agents, ringing=3)).launch == 1
    assert p.decide(snap(agents, ringing=2, waiting=2)).launch == 0
    paused = [(AgentState.PAUSED, 1.0)] * 5
    assert p.decide(snap(paused)).launch == 0


def test_fixed_ratio_counts_lines_per_active_agent() -> None:
    p = Pacer(PacingConfig(mode=DialMode.FIXED_RATIO, fixed_ratio=2.0))
    agents = [(AgentState.READY, 1.0)] * 2 + [(AgentState.IN_CALL, 30.0)] * 2
    # a new campaign's first answers: no budget for an abandon yet, so progressive
    d = p.decide(snap(agents, ringing=1))
    assert (d.launch, d.mode, d.reason) == (1, DialMode.PROGRESSIVE, DecisionReason.CAP_WARMUP)
    d = p.decide(snap(agents, ringing=1, stats=GOOD_STATS))
    # 2.0 * 4 active = 8 lines; 2 talking + 1 ringing in use
    assert d.launch == 5
    assert d.dial_level == pytest.approx(2.0)
    assert d.reason is DecisionReason.FIXED_RATIO


def test_cold_start_runs_progressive_until_enough_answers() -> None:
    p = Pacer(PacingConfig())
    agents = [(AgentState.READY, 1.0)] * 3 + [(AgentState.WRAP_UP, 14.0)] * 3
    d = p.decide(snap(agents, stats=GOOD_STATS))
    assert (d.launch, d.mode, d.reason) == (3, DialMode.PROGRESSIVE, DecisionReason.COLD_START)
    train(p, n_dials=400)
    d = p.decide(snap(agents, stats=GOOD_STATS))
    assert d.mode is DialMode.PREDICTIVE
    assert d.launch > 3  # wrap-ups ending soon are dialed for too


def test_predictive_dials_ahead_for_wrap_ups(trained: Pacer) -> None:
    p = copy.deepcopy(trained)
    agents = [(AgentState.WRAP_UP, 12.0)] * 4 + [(AgentState.IN_CALL, 60.0)] * 6
    d = p.decide(snap(agents, stats=GOOD_STATS))
    assert d.mode is DialMode.PREDICTIVE and d.reason is DecisionReason.RISK_BOUND
    assert d.launch >= 1
    assert 0.0 < d.risk <= d.risk_bound


def test_reacts_at_once_to_logout_and_pause(trained: Pacer) -> None:
    p = copy.deepcopy(trained)
    team = [(AgentState.READY, 3.0)] * 2 + [(AgentState.WRAP_UP, 10.0)] * 3
    team += [(AgentState.IN_CALL, 40.0)] * 5
    before = p.decide(snap(team, stats=GOOD_STATS)).launch
    assert before >= 2
    # the ready and wrap-up agents log out: only talkers remain -> nothing to dial for
    talkers = [(AgentState.IN_CALL, 40.0)] * 5
    assert p.decide(snap(talkers, stats=GOOD_STATS)).launch == 0
    # they pause instead
    paused = [(AgentState.PAUSED, 1.0)] * 5 + talkers
    assert p.decide(snap(paused, stats=GOOD_STATS)).launch == 0
    # everyone logs out
    assert p.decide(snap([], stats=GOOD_STATS)).reason is DecisionReason.NO_AGENTS


def test_small_team_falls_back_to_progressive(trained: Pacer) -> None:
    p = copy.deepcopy(trained)
    d = p.decide(snap([(AgentState.READY, 2.0)], stats=GOOD_STATS))
    assert (d.launch, d.reason) == (1, DecisionReason.SMALL_TEAM)


def test_hard_cap_today_and_30d(trained: Pacer) -> None:
    p = copy.deepcopy(trained)
    agents = [(AgentState.READY, 1.0)] + [(AgentState.WRAP_UP, 13.0)] * 5
    at_limit = PacingStats(
        answers_today=1000, abandons_today=30, answers_30d=40000, abandons_30d=600
    )
    d = p.decide(snap(agents, stats=at_limit))
    assert (d.mode, d.reason, d.launch) == (
        DialMode.PROGRESSIVE,
        DecisionReason.HARD_CAP_TODAY,
        1,
    )
    month = PacingStats(answers_today=1000, abandons_today=5, answers_30d=20000, abandons_30d=600)
    assert p.decide(snap(agents, stats=month)).reason is DecisionReason.HARD_CAP_30D
    # recovers once enough clean answers came in
    recovered = PacingStats(
        answers_today=1200, abandons_today=30, answers_30d=40000, abandons_30d=600
    )
    assert p.decide(snap(agents, stats=recovered)).mode is DialMode.PREDICTIVE


def test_answers_waiting_in_hold_count_against_the_cap_reserve(trained: Pacer) -> None:
    """Live answers already waiting may still abandon: they use up the reserve before dialing."""
    p = copy.deepcopy(trained)
    agents = [(AgentState.READY, 1.0)] * 3 + [(AgentState.WRAP_UP, 13.0)] * 5
    # 3.0 abandons of today's budget left: enough with nobody waiting...
    near = PacingStats(answers_today=1000, abandons_today=27, answers_30d=40000, abandons_30d=600)
    assert p.decide(snap(agents, stats=near)).mode is DialMode.PREDICTIVE
    # ...but not with two answers in hold that could still be dropped
    d = p.decide(snap(agents, stats=near, waiting=2))
    assert (d.mode, d.reason, d.launch) == (DialMode.PROGRESSIVE, DecisionReason.HARD_CAP_TODAY, 1)


def test_hard_cap_budgets_hidden_amd_false_positives() -> None:
    plain = budget_headroom(1000, 20, 0.03, 0.0)
    with_fp = budget_headroom(1000, 20, 0.03, 0.01 / 0.99)
    assert plain == pytest.approx(10.0)
    assert with_fp < plain


def test_outer_loop_moves_the_bound(trained: Pacer) -> None:
    p = copy.deepcopy(trained)
    agents = [(AgentState.WRAP_UP, 12.0)] * 4 + [(AgentState.IN_CALL, 60.0)] * 6
    p.decide(snap(agents, stats=GOOD_STATS))  # predictive mode engaged
    start = p.risk_bound
    risky = DecisionReason.RISK_BOUND
    for _ in range(5):
        p.observe_call(SEG, CallOutcome.ABANDONED, 9.0, risky)
    assert p.risk_bound < start
    low = p.risk_bound
    for _ in range(400):
        p.observe_call(SEG, CallOutcome.ANSWERED_CONNECTED, 9.0, risky)
    assert p.risk_bound > low
    assert (p.loop_answers, p.loop_abandons) == (405, 5)
    # calls the pacer did not launch on a risk bound (cold start, cap, preview) move nothing
    for under in (DecisionReason.COLD_START, DecisionReason.HARD_CAP_TODAY, None):
        p.observe_call(SEG, CallOutcome.ABANDONED, 9.0, under)
    assert (p.loop_answers, p.loop_abandons) == (405, 5)


def test_outer_loop_counts_an_abandon_whatever_the_pacer_decided_since(trained: Pacer) -> None:
    """Issue 20: the abandon arrives ~2 s after its answer, after a "nobody free" decision."""
    p = copy.deepcopy(trained)
    d = p.decide(
        snap([(AgentState.WRAP_UP, 12.0)] * 4 + [(AgentState.IN_CALL, 60.0)] * 6, stats=GOOD_STATS)
    )
    assert d.reason is DecisionReason.RISK_BOUND and d.closed_loop
    # every agent busy for a long while: the pacer holds back (not a risk-bounded decision)
    held = p.decide(snap([(AgentState.IN_CALL, 1.0)] * 10, stats=GOOD_STATS))
    assert held.reason is DecisionReason.NO_AGENTS and not held.closed_loop
    start = p.risk_bound
    p.observe_call(SEG, CallOutcome.ABANDONED, 9.0, d.reason)
    assert p.risk_bound < start
    assert (p.loop_answers, p.loop_abandons) == (1, 1)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="target_abandon"):
        PacingConfig(target_abandon=0.05, abandon_limit=0.03)
    with pytest.raises(ValueError, match="fixed_ratio"):
        PacingConfig(fixed_ratio=0.0)


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        # 40% abandoned today (the real-PBX run: ratio 3, one agent): today's budget is gone
        (
            PacingStats(answers_today=10, abandons_today=4, answers_30d=4000, abandons_30d=40),
            DecisionReason.HARD_CAP_TODAY,
        ),
        # a quiet day, but the 30-day budget is used up
        (
            PacingStats(answers_today=200, abandons_today=0, answers_30d=4000, abandons_30d=119),
            DecisionReason.HARD_CAP_30D,
        ),
    ],
)
def test_fixed_ratio_obeys_the_abandon_cap(stats: PacingStats, reason: DecisionReason) -> None:
    """Issue 14 #3: fixed ratio over-dials, so the hard cap (today and 30 days) binds it too."""
    p = Pacer(PacingConfig(mode=DialMode.FIXED_RATIO, fixed_ratio=3.0))
    agents = [(AgentState.READY, 1.0)] * 2 + [(AgentState.IN_CALL, 30.0)] * 2
    d = p.decide(snap(agents, ringing=1, stats=stats))
    # progressive: 2 READY agents minus the 1 call ringing
    assert (d.launch, d.mode, d.reason) == (1, DialMode.PROGRESSIVE, reason)
    # with the budget intact the ratio applies again: 3 x 4 active - (2 talking + 1 ringing)
    d = p.decide(snap(agents, ringing=1, stats=GOOD_STATS))
    assert (d.launch, d.mode, d.reason) == (9, DialMode.FIXED_RATIO, DecisionReason.FIXED_RATIO)


def test_progressive_and_preview_are_not_capped() -> None:
    """Progressive cannot over-dial: the cap leaves it alone (and preview never launches)."""
    spent = PacingStats(answers_today=10, abandons_today=4, answers_30d=10, abandons_30d=4)
    agents = [(AgentState.READY, 1.0)] * 3
    d = Pacer(PacingConfig(mode=DialMode.PROGRESSIVE)).decide(snap(agents, stats=spent))
    assert (d.launch, d.reason) == (3, DecisionReason.PROGRESSIVE)
    d = Pacer(PacingConfig(mode=DialMode.PREVIEW)).decide(snap(agents, stats=spent))
    assert (d.launch, d.reason) == (0, DecisionReason.PREVIEW)
