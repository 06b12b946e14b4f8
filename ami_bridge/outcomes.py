"""System outcomes of a call attempt (design.md §5): the call tracker's verdict.

Each attempt ends in exactly one :class:`CallOutcome`. The AMI call tracker
(:mod:`ami_bridge.tracker`) produces it; the engine stores it and feeds it to the retry policy.
Agents add a disposition on top of ``ANSWERED_CONNECTED`` calls.

It lives here, in the bridge (the bottom layer), because the tracker decides it and the bridge
never imports the dialer; :mod:`dialer.domain.outcomes` re-exports the same class, so
``dialer.domain.outcomes.CallOutcome is ami_bridge.outcomes.CallOutcome``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CallOutcome"]


class CallOutcome(StrEnum):
    ANSWERED_CONNECTED = "answered_connected"  # live answer, bridged to an agent
    ABANDONED = "abandoned"  # live answer, no agent within connect_timeout (safe-harbor)
    MACHINE = "machine"  # answering machine detected (AMD)
    #: answered, then hung up before the dialplan's verdict (during AMD, before the hold):
    #: never offered to an agent, never heard the safe-harbor message; not a live answer
    #: (docs/outcomes.md)
    EARLY_HANGUP = "early_hangup"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    REJECTED = "rejected"  # customer side rejected before answer (cause 21)
    INVALID_NUMBER = "invalid_number"  # unallocated number, no such extension (cause 1 / 0)
    FAILED = "failed"  # PBX or trunk error, or lost during a PBX outage
    CANCELLED = "cancelled"  # the dialer hung up: campaign paused or window closed

    @property
    def is_live_answer(self) -> bool:
        """A human answered (counts in the abandon-rate denominator)."""
        return self in (CallOutcome.ANSWERED_CONNECTED, CallOutcome.ABANDONED)

    @property
    def is_contact(self) -> bool:
        """The customer was actually spoken to."""
        return self is CallOutcome.ANSWERED_CONNECTED
