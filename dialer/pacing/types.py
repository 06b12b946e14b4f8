"""Typed, frozen inputs and outputs of the pacing module.

The live engine (and the simulator) build a :class:`PacingSnapshot` once per pacing tick and
whenever an agent changes state; the pacer answers with a :class:`PacingDecision`. Times are
plain float seconds on any monotonic-or-epoch clock, as long as ``now`` and every ``since`` /
``dialed_at`` in one snapshot use the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from dialer.domain.outcomes import AgentState, DialMode


@dataclass(frozen=True, slots=True)
class Segment:
    """What the live-answer probability is estimated by: list, attempt number, hour of day."""

    list_id: str = "default"
    attempt: int = 1
    hour: int = 0


DEFAULT_SEGMENT = Segment()


@dataclass(frozen=True, slots=True)
class AgentView:
    """One logged-in agent. ``since`` is when the agent entered ``state``.

    ``expected_free_at`` may be set when the engine knows exactly when the agent frees up (for
    example a forced wrap-up timer); otherwise the pacer predicts it from the fitted
    talk / wrap-up distributions conditional on the time already spent in the state.
    """

    agent_id: str
    state: AgentState
    since: float
    expected_free_at: float | None = None


@dataclass(frozen=True, slots=True)
class CallView:
    """A call that has been originated and not yet answered (ringing)."""

    call_id: str
    dialed_at: float
    segment: Segment = DEFAULT_SEGMENT


@dataclass(frozen=True, slots=True)
class PacingStats:
    """Campaign abandon counters from the system of record (live answers and abandoned)."""

    answers_today: int = 0
    abandons_today: int = 0
    answers_30d: int = 0
    abandons_30d: int = 0


@dataclass(frozen=True, slots=True)
class PacingSnapshot:
    """Everything the pacer may look at for one decision."""

    now: float
    agents: tuple[AgentView, ...]
    ringing: tuple[CallView, ...] = ()
    waiting: int = 0  # live answers in the hold context waiting for an agent
    stats: PacingStats = field(default_factory=PacingStats)
    next_segment: Segment = DEFAULT_SEGMENT  # segment of the leads the next calls would dial


class DecisionReason(StrEnum):
    PREVIEW = "preview"  # agent-initiated: the pacer never launches calls itself
    PROGRESSIVE = "progressive"
    FIXED_RATIO = "fixed_ratio"
    NO_AGENTS = "no_agents"  # nobody ready, nobody about to be free
    COLD_START = "cold_start"  # predictive, but not enough answers seen yet: progressive
    SMALL_TEAM = "small_team"  # too few active agents for pooling: progressive
    HARD_CAP_TODAY = "hard_cap_today"  # today's abandon rate at its limit: progressive
    # today's budget is still too small to risk one abandon (too few live answers today, none
    # abandoned yet): progressive until enough answers are in
    CAP_WARMUP = "cap_warmup"
    HARD_CAP_30D = "hard_cap_30d"  # 30-day abandon rate at its limit: progressive
    RISK_BOUND = "risk_bound"  # predictive: largest k with P(abandon) under the bound
    LINE_CAP = "line_cap"  # predictive, limited by max_dial_level


@dataclass(frozen=True, slots=True)
class PacingDecision:
    """How many calls to originate now, and why."""

    launch: int
    mode: DialMode  # the mode actually applied (predictive may fall back to progressive)
    reason: DecisionReason
    dial_level: float  # lines (ringing + waiting + talking + launch) per active agent
    risk: float = 0.0  # predicted P(abandon | answered) of the last call launched (predictive)
    risk_bound: float = 0.0  # the bound the risk was held under (predictive)

    @property
    def closed_loop(self) -> bool:
        """Calls dialed under this decision are the outer loop's to count (risk-bounded)."""
        return self.reason in CLOSED_LOOP_REASONS


#: Decisions whose calls the predictive outer loop measures: the risk-bounded ones.
CLOSED_LOOP_REASONS = frozenset({DecisionReason.RISK_BOUND, DecisionReason.LINE_CAP})
