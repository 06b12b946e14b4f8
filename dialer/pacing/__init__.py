"""Pacing: how many calls to launch now (pure, no IO; ``now`` travels in the snapshot).

The live engine keeps one :class:`Pacer` per running campaign, calls :meth:`Pacer.decide` with a
:class:`PacingSnapshot` on every pacing tick and agent state change, launches
``decision.launch`` calls, and feeds outcomes back with ``observe_call`` / ``observe_talk`` /
``observe_wrap``. The simulator drives the very same object.
"""

from dialer.pacing.config import PacingConfig
from dialer.pacing.feed import PacerFeed, PacingPolicy
from dialer.pacing.pacer import (
    AgentCounts,
    Pacer,
    budget_headroom,
    fixed_ratio_launch,
    progressive_launch,
)
from dialer.pacing.types import (
    CLOSED_LOOP_REASONS,
    DEFAULT_SEGMENT,
    AgentView,
    CallView,
    DecisionReason,
    PacingDecision,
    PacingSnapshot,
    PacingStats,
    Segment,
)

__all__ = [
    "CLOSED_LOOP_REASONS",
    "DEFAULT_SEGMENT",
    "AgentCounts",
    "AgentView",
    "CallView",
    "DecisionReason",
    "Pacer",
    "PacerFeed",
    "PacingConfig",
    "PacingDecision",
    "PacingPolicy",
    "PacingSnapshot",
    "PacingStats",
    "Segment",
    "budget_headroom",
    "fixed_ratio_launch",
    "progressive_launch",
]
