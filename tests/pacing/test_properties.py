from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.domain.outcomes import AgentState
from dialer.pacing import AgentView, CallView, Pacer, PacingConfig, PacingSnapshot, PacingStats
from tests.pacing.conftest import SEG, train

NOW = 50_000.0
_TRAINED = train(Pacer(PacingConfig()))
# busy states whose expected remaining time is far beyond the answer horizon
_FAR = st.sampled_from([AgentState.IN_CALL, AgentState.RESERVED, AgentState.PAUSED])


@st.composite
def unavailable_snapshots(draw: st.DrawFn) -> PacingSnapshot:
    """No agent is, or will be, free within the answer horizon.

    Agents talk (expected remaining talk + wrap-up is minutes), are reserved or paused; READY
    agents, if any, are all already claimed by answered calls waiting in hold.
    """
    busy = draw(st.lists(st.tuples(_FAR, st.floats(0.0, 3000.0)), min_size=0, max_size=40))
    ready = draw(st.integers(0, 5))
    waiting = draw(st.integers(ready, ready + 3))
    agents = [AgentView(f"b{i}", s, NOW - e) for i, (s, e) in enumerate(busy)]
    agents += [AgentView(f"r{i}", AgentState.READY, NOW - 1.0) for i in range(ready)]
    ring = draw(st.lists(st.floats(0.0, 60.0), max_size=30))
    calls = tuple(CallView(str(i), NOW - r, SEG) for i, r in enumerate(ring))
    answers = draw(st.integers(2000, 50_000))
    stats = PacingStats(answers, int(answers * 0.01), answers * 20, int(answers * 0.2))
    return PacingSnapshot(NOW, tuple(agents), calls, waiting, stats, SEG)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unavailable_snapshots())
def test_never_dials_without_an_agent_within_the_horizon(snapshot: PacingSnapshot) -> None:
    pacer = copy.deepcopy(_TRAINED)
    assert pacer.decide(snapshot).launch == 0


@settings(max_examples=100, deadline=None)
@given(
    st.floats(20.0, 600.0),
    st.integers(1, 10),
    st.integers(0, 10),
)
def test_known_free_times_beyond_horizon_are_not_dialed_for(
    beyond: float, n_wrap: int, n_ring: int
) -> None:
    """Agents whose engine-known free time is past the horizon do not count as supply."""
    pacer = copy.deepcopy(_TRAINED)
    horizon = pacer.model.tables.gate_horizon
    agents = tuple(
        AgentView(str(i), AgentState.WRAP_UP, NOW - 1.0, expected_free_at=NOW + horizon + beyond)
        for i in range(n_wrap)
    )
    calls = tuple(CallView(str(i), NOW - 2.0, SEG) for i in range(n_ring))
    stats = PacingStats(5000, 50, 100_000, 1000)
    snap = PacingSnapshot(NOW, agents, calls, 0, stats, SEG)
    assert pacer.decide(snap).launch == 0


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.integers(0, 5))
def test_launch_is_never_negative_and_respects_line_cap(
    ready: int, wrap: int, talk: int, ringing: int
) -> None:
    pacer = copy.deepcopy(_TRAINED)
    agents = [AgentView(f"r{i}", AgentState.READY, NOW - 1.0) for i in range(ready)]
    agents += [AgentView(f"w{i}", AgentState.WRAP_UP, NOW - 14.0) for i in range(wrap)]
    agents += [AgentView(f"t{i}", AgentState.IN_CALL, NOW - 90.0) for i in range(talk)]
    calls = tuple(CallView(str(i), NOW - 3.0, SEG) for i in range(ringing))
    snap = PacingSnapshot(NOW, tuple(agents), calls, 0, PacingStats(5000, 50, 100_000, 1000), SEG)
    d = pacer.decide(snap)
    assert d.launch >= 0
    active = ready + wrap + talk
    if active:
        assert ringing + talk + d.launch <= max(
            pacer.config.max_dial_level * active, ringing + talk + ready
        )
    else:
        assert d.launch == 0
