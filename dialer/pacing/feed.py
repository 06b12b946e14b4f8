"""The one adapter that feeds a pacer what happened: the live engine and the simulator share it.

The pacer learns from three kinds of samples (``observe_call``, ``observe_talk``,
``observe_wrap``). Deriving them by hand in two places let the live engine and the simulator
drift apart: the engine never fed wrap-up samples, so predictive never left its cold start live.
Both now report only plain facts to a :class:`PacerFeed`, and it derives every sample:

* ``dialed(call, segment, at, under)`` when a call is originated, with the reason of the pacing
  decision that launched it (the outer loop counts the outcomes of risk-bounded calls, whatever
  the pacer's state when the outcome arrives);
* ``call_ended(call, outcome, ready_at)`` when its outcome is known;
* ``agent_state(agent, state, at)`` on every agent state change. A talk sample is the time
  from IN_CALL to WRAP_UP; a wrap-up sample is the time in a WRAP_UP that followed a call,
  until the agent is READY, PAUSED or RESERVED again (a log-out mid wrap-up is no sample).

Pure: no IO, no clock; times are float seconds on the caller's clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.pacing.types import DecisionReason, PacingDecision, PacingSnapshot, Segment

_IN_CALL = AgentState.IN_CALL
_WRAP = AgentState.WRAP_UP
_OUT = AgentState.LOGGED_OUT


class PacingPolicy(Protocol):
    """What a feed drives: :class:`~dialer.pacing.Pacer`, or a benchmark baseline."""

    def decide(self, snap: PacingSnapshot) -> PacingDecision: ...

    def observe_call(
        self,
        segment: Segment,
        outcome: CallOutcome,
        ring_seconds: float,
        dialed_under: DecisionReason | None = None,
    ) -> None: ...

    def observe_talk(self, seconds: float) -> None: ...

    def observe_wrap(self, seconds: float) -> None: ...


class PacerFeed:
    """Turns call and agent facts into pacer samples, identically live and simulated."""

    __slots__ = ("_agents", "_calls", "policy")

    def __init__(self, policy: PacingPolicy) -> None:
        self.policy = policy
        # call -> (segment, dialed at, reason of the decision that launched it)
        self._calls: dict[Hashable, tuple[Segment, float, DecisionReason | None]] = {}
        # agent -> (state, entered at, whether this WRAP_UP followed a call)
        self._agents: dict[Hashable, tuple[AgentState, float, bool]] = {}

    # -- calls ---------------------------------------------------------------------------------
    def dialed(
        self, call_id: Hashable, segment: Segment, at: float, under: DecisionReason | None
    ) -> None:
        """A call was originated at ``at`` under a decision with reason ``under``.

        ``under`` is None for calls the pacer did not launch (preview).
        """
        self._calls[call_id] = (segment, at, under)

    def call_ended(self, call_id: Hashable, outcome: CallOutcome, ready_at: float) -> bool:
        """The call's outcome is known. False if the feed never saw it dialed.

        ``ready_at``: for a live answer (connected or abandoned), the moment it was ready for an
        agent (after AMD); otherwise the end of the attempt.
        """
        dial = self._calls.pop(call_id, None)
        if dial is None:
            return False
        segment, at, under = dial
        self.policy.observe_call(segment, outcome, max(0.0, ready_at - at), under)
        return True

    def forget(self, call_id: Hashable) -> None:
        """Drop a call whose outcome will never be reported here (no sample)."""
        self._calls.pop(call_id, None)

    @property
    def calls_in_flight(self) -> int:
        return len(self._calls)

    # -- agents --------------------------------------------------------------------------------
    def agent_state(self, agent_id: Hashable, state: AgentState, at: float) -> None:
        """The agent is in ``state`` since ``at``. Repeating the current state is harmless."""
        prev = self._agents.get(agent_id)
        if state is _OUT:
            self._agents.pop(agent_id, None)
            return
        if prev is None:
            # first sight (login, or a session taken over after a restart): no sample
            self._agents[agent_id] = (state, at, False)
            return
        old, since, after_call = prev
        if old is state:
            return
        if old is _IN_CALL and state is _WRAP:
            self.policy.observe_talk(max(0.0, at - since))
            self._agents[agent_id] = (state, at, True)
            return
        if old is _WRAP and after_call:
            self.policy.observe_wrap(max(0.0, at - since))
        self._agents[agent_id] = (state, at, False)

    def rebind(self, policy: PacingPolicy) -> None:
        """Feed a new policy (the campaign's pacer was rebuilt); calls in flight keep their tags."""
        self.policy = policy
