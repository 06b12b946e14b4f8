"""The call tracker's data: its configuration, its outputs (call milestones and the final
:class:`CallEnded`), and :class:`CallState`, what it knows about one tracked call.

Plain data, no behaviour beyond construction. The tracker is :mod:`ami_bridge.tracker`; the
outcome decision over a :class:`CallState` is :mod:`ami_bridge.verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ami_bridge import dialplan
from ami_bridge.errors import AMIError
from ami_bridge.outcomes import CallOutcome

__all__ = [
    "END_PBX_RESTART",
    "SOFTHANGUP_SHUTDOWN",
    "CallAbandoning",
    "CallAnswered",
    "CallConnected",
    "CallEnded",
    "CallHeld",
    "CallRinging",
    "CallState",
    "DuplicateCallError",
    "TrackerConfig",
    "TrackerOutput",
]

#: ``SoftHangupRequest`` Cause during ``core restart``/``core stop``: the soft-hangup flag
#: AST_SOFTHANGUP_SHUTDOWN, not a Q.850 cause (ami-transcripts file 24; checked on 22.10.1).
SOFTHANGUP_SHUTDOWN = 4
#: :attr:`CallEnded.end_reason` of a call cut by a PBX restart or shutdown.
END_PBX_RESTART = "pbx_restart"


class DuplicateCallError(AMIError, ValueError):
    """``track()`` was given a call id, ActionID or ChannelId that is already tracked."""


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    agent_room_prefix: str = dialplan.ROOM_PREFIX
    abandon_variable: str = dialplan.VAR_ABANDONED
    amd_status_variable: str = "AMDSTATUS"
    amd_cause_variable: str = "AMDCAUSE"
    dial_status_variable: str = "DIALSTATUS"
    #: the answered leg's entry context (optional AMD): a hang-up seen there, before the hold,
    #: is ``EARLY_HANGUP``
    outbound_context: str = dialplan.CTX_OUTBOUND
    #: the hold context: its first line (``s``, priority 1) is the dialplan's "ready for an
    #: agent" verdict (AMD passed or off) -> :class:`CallHeld`
    hold_context: str = dialplan.CTX_HOLD
    hold_exten: str = dialplan.EXTEN_START
    #: extra time after ``ring_timeout`` before an unanswered call counts as stuck
    originate_grace: timedelta = timedelta(seconds=30)
    #: wait this long for a missing fact (OriginateResponse or a leg's Hangup) before resolving
    settle_timeout: timedelta = timedelta(seconds=5)
    #: an unanswered failure with nothing conclusive yet (no Q.850 cause, Reason or DialStatus
    #: that names an outcome, e.g. the OriginateResponse Failure came before the call's
    #: Newchannel/Hangup) waits this long for late events before it is decided
    late_event_grace: timedelta = timedelta(seconds=2)
    #: an answered call still up after this long is resolved (events were lost)
    max_call_duration: timedelta = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class CallRinging:
    call_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call_id: str
    at: datetime
    channel: str | None  # the ;1 leg's channel name (target for Redirect)
    uniqueid: str | None


@dataclass(frozen=True, slots=True)
class CallHeld:
    """The answered leg reached ``marcador-hold``: the dialplan's verdict (AMD passed or off).

    The only moment the dialer may Redirect the customer to an agent: before it, ``AMD()`` is
    still listening (a Redirect would cut it short and put machines through to agents).
    """

    call_id: str
    at: datetime
    channel: str | None  # the ;1 leg's channel name (target for Redirect)
    uniqueid: str | None


@dataclass(frozen=True, slots=True)
class CallAbandoning:
    """The safe-harbor path started (``MARCADOR_ABANDONED`` set): the call will not connect.

    An agent reserved for it (a Redirect that lost the race with the hold timeout) is free.
    """

    call_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallConnected:
    call_id: str
    at: datetime
    agent_channel: str | None  # peer channel in the bridge, if known
    conference: str | None  # the ConfBridge room, if the connect was a ConfbridgeJoin
    bridge_id: str | None


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    outcome: CallOutcome
    detail: str
    hangup_cause: int | None  # the cause of the "right" leg
    originate_reason: int | None
    dial_status: str | None
    amd_status: str | None
    amd_cause: str | None
    started_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    connected_at: datetime | None
    ended_at: datetime
    channel: str | None
    uniqueid: str | None
    action_id: str
    #: Why the call ended when the PBX, not a party, ended it: :data:`END_PBX_RESTART` when a
    #: ``SoftHangupRequest`` with Cause 4 (or ``Shutdown``) was seen before its Hangup.
    end_reason: str | None = None
    held_at: datetime | None = None  # reached marcador-hold (ready for an agent)


TrackerOutput = CallRinging | CallAnswered | CallHeld | CallAbandoning | CallConnected | CallEnded


class CallState:
    """What the tracker knows about one call (mutated by its handlers)."""

    __slots__ = (
        "abandon_signal",
        "action_id",
        "agent_channel",
        "amd_cause",
        "amd_status",
        "answered_at",
        "bridge_id",
        "call_id",
        "cancel_requested",
        "channel",
        "conference",
        "connected_at",
        "deadline",
        "dial_status",
        "held_at",
        "in_outbound",
        "legs",
        "match",
        "other_cause",
        "other_uid",
        "pbx_shutdown",
        "preview",
        "primary_cause",
        "primary_uid",
        "reason",
        "response",
        "response_detail",
        "ringing_at",
        "saw_channel",
        "settle_at",
        "started_at",
    )

    def __init__(
        self,
        call_id: str,
        action_id: str,
        now: datetime,
        deadline: datetime,
        preview: bool,
        match: tuple[str, str] | None,
    ) -> None:
        self.call_id = call_id
        self.action_id = action_id
        self.started_at = now
        self.deadline = deadline
        self.preview = preview
        self.match = match
        self.primary_uid: str | None = None
        self.other_uid: str | None = None
        self.channel: str | None = None
        self.legs: dict[str, bool] = {}  # uniqueid -> alive
        self.saw_channel = False
        self.primary_cause: int | None = None
        self.other_cause: int | None = None
        self.reason: int | None = None
        self.response: str | None = None  # "Success" | "Failure" | "Error"
        self.response_detail: str | None = None
        self.dial_status: str | None = None
        self.amd_status: str | None = None
        self.amd_cause: str | None = None
        self.abandon_signal: str | None = None
        self.cancel_requested = False
        self.ringing_at: datetime | None = None
        self.answered_at: datetime | None = None
        self.connected_at: datetime | None = None
        self.held_at: datetime | None = None
        self.in_outbound = False  # the ;1 leg ran the outbound (AMD) context
        self.agent_channel: str | None = None
        self.conference: str | None = None
        self.bridge_id: str | None = None
        self.settle_at: datetime | None = None
        self.pbx_shutdown = False
