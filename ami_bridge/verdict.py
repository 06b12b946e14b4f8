"""The outcome decision: pure functions of what the tracker knows about a call.

Given a :class:`~ami_bridge.tracker_model.CallState` (answer, connect, AMD, causes, Reason,
DialStatus, PBX restart evidence), :func:`decide` names its :class:`CallOutcome` and a detail;
the rules are listed in :mod:`ami_bridge.tracker`'s docstring and ``docs/outcomes.md``.
:func:`is_conclusive` tells whether an unanswered call's facts already name its outcome (no
late event can change it). No state of their own, no clock, no IO.
"""

from __future__ import annotations

from ami_bridge.outcomes import CallOutcome
from ami_bridge.tracker_model import END_PBX_RESTART, CallState

__all__ = ["decide", "decide_restart", "is_conclusive", "outcome_from_cause", "right_cause"]

_VAGUE_CAUSES = (None, 0, 16)

_CAUSE_OUTCOMES: dict[int, CallOutcome] = {
    1: CallOutcome.INVALID_NUMBER,  # unallocated number
    3: CallOutcome.INVALID_NUMBER,  # no route to destination
    22: CallOutcome.INVALID_NUMBER,  # number changed
    28: CallOutcome.INVALID_NUMBER,  # invalid number format
    16: CallOutcome.NO_ANSWER,  # normal clearing before answer
    17: CallOutcome.BUSY,
    18: CallOutcome.NO_ANSWER,  # no user responding
    19: CallOutcome.NO_ANSWER,  # alerting, no answer (originate Timeout)
    20: CallOutcome.NO_ANSWER,  # subscriber absent (phone off)
    21: CallOutcome.REJECTED,
    34: CallOutcome.CONGESTION,
    41: CallOutcome.CONGESTION,  # temporary failure
    42: CallOutcome.CONGESTION,  # switching equipment congestion
    44: CallOutcome.CONGESTION,  # requested channel not available
}
_REASON_OUTCOMES: dict[int, CallOutcome] = {
    1: CallOutcome.FAILED,
    3: CallOutcome.NO_ANSWER,
    5: CallOutcome.BUSY,
    8: CallOutcome.CONGESTION,
}
_DIALSTATUS_OUTCOMES: dict[str, CallOutcome] = {
    "BUSY": CallOutcome.BUSY,
    "CONGESTION": CallOutcome.CONGESTION,
    "NOANSWER": CallOutcome.NO_ANSWER,
    "CHANUNAVAIL": CallOutcome.FAILED,
    "CANCEL": CallOutcome.CANCELLED,
}


def outcome_from_cause(cause: int | None) -> CallOutcome | None:
    """Outcome implied by a Q.850 cause of an unanswered leg (``None``: not conclusive)."""
    if cause is None or cause == 0:
        return None
    return _CAUSE_OUTCOMES.get(cause, CallOutcome.FAILED)


def right_cause(call: CallState) -> int | None:
    """The Hangup cause that tells an unanswered call's outcome: the ``;1`` leg's unless it is
    vague (0/16), then the ``;2`` leg's (a Local busy shows 0 on ``;1`` and 17 on ``;2``); in
    preview, the dialed customer's leg."""
    if call.preview:
        return call.other_cause if call.other_cause is not None else call.primary_cause
    primary, other = call.primary_cause, call.other_cause
    if primary not in _VAGUE_CAUSES:
        return primary
    if other not in _VAGUE_CAUSES:
        return other
    return primary if primary is not None else other


def is_conclusive(call: CallState) -> bool:
    """Unanswered: do the facts already name the outcome (no late event can change it)?"""
    if call.cancel_requested or call.pbx_shutdown or call.response == "Error":
        return True
    if outcome_from_cause(right_cause(call)) is not None:
        return True
    if call.reason is not None and call.reason in _REASON_OUTCOMES:
        return True
    if call.dial_status and call.dial_status in _DIALSTATUS_OUTCOMES:
        return True
    # no named outcome (e.g. cause 0 everywhere): final once every leg we know of was seen
    # (Newchannel precedes Hangup on a channel; only the response races them)
    known = [uid for uid in (call.primary_uid, call.other_uid) if uid is not None]
    return call.saw_channel and all(uid in call.legs for uid in known)


def decide(call: CallState) -> tuple[CallOutcome, str]:
    if call.pbx_shutdown:
        return decide_restart(call)
    amd = (call.amd_status or "").upper()
    if call.connected_at is not None:
        return CallOutcome.ANSWERED_CONNECTED, "connected to agent"
    if call.answered_at is not None and not call.preview:
        if amd == "MACHINE":
            return CallOutcome.MACHINE, f"AMD {call.amd_cause or 'MACHINE'}"
        if call.abandon_signal:
            return CallOutcome.ABANDONED, f"safe-harbor ({call.abandon_signal})"
        if call.cancel_requested:
            return CallOutcome.ABANDONED, "hung up by the dialer before connect"
        if call.in_outbound and call.held_at is None:
            during = f"during AMD ({amd})" if amd else "before the hold"
            return CallOutcome.EARLY_HANGUP, f"hung up {during}: never offered to an agent"
        return CallOutcome.ABANDONED, "hung up before an agent connected"
    if call.cancel_requested:
        return CallOutcome.CANCELLED, "cancelled by the dialer"
    cause = right_cause(call)
    by_cause = outcome_from_cause(cause)
    if by_cause is not None:
        return by_cause, f"hangup cause {cause}"
    if call.reason is not None and call.reason in _REASON_OUTCOMES:
        return _REASON_OUTCOMES[call.reason], f"originate reason {call.reason}"
    if call.dial_status and call.dial_status in _DIALSTATUS_OUTCOMES:
        return _DIALSTATUS_OUTCOMES[call.dial_status], f"dial status {call.dial_status}"
    if call.response == "Error":
        return CallOutcome.FAILED, f"originate failed: {call.response_detail}"
    if not call.saw_channel and call.response is not None:
        return CallOutcome.FAILED, "no channel created (unknown or unregistered endpoint)"
    if call.saw_channel and cause == 0:
        return CallOutcome.INVALID_NUMBER, "hangup cause 0 (no such number or extension)"
    if call.response is None:
        return CallOutcome.FAILED, "no OriginateResponse"
    return CallOutcome.FAILED, f"originate reason {call.reason}"


def decide_restart(call: CallState) -> tuple[CallOutcome, str]:
    """The PBX hung the call up (restart/shutdown): its causes (16 or 0) say nothing.

    Connected: still a contact (the agent dispositions it). Answered, never connected:
    ABANDONED (the customer answered and got no agent). Not answered: FAILED, which never
    counts against the limits (docs/outcomes.md, "Outcomes from evidence").
    """
    tag = f"{END_PBX_RESTART}:"
    if call.connected_at is not None:
        return CallOutcome.ANSWERED_CONNECTED, f"{tag} connected to agent, cut by the PBX"
    if call.answered_at is not None and not call.preview:
        if (call.amd_status or "").upper() == "MACHINE":
            return CallOutcome.MACHINE, f"{tag} AMD {call.amd_cause or 'MACHINE'}"
        return CallOutcome.ABANDONED, f"{tag} answered, cut by the PBX before an agent"
    return CallOutcome.FAILED, f"{tag} cut by the PBX before an answer"
