"""Sans-IO call tracker: typed AMI events + ``now`` in, call milestones and outcomes out.

Pure state machine: no IO, no clock (``now`` is always passed in), no asyncio. One instance
per Asterisk server (Uniqueids are only unique per server).

Usage (the connection manager / engine)::

    tracker = CallTracker(TrackerConfig())
    tracker.track("attempt-42", action_id="orig-42", channel_id="att-42", now=now,
                  ring_timeout=timedelta(seconds=30))
    # send: Originate Async=true ActionID=orig-42 ChannelId=att-42 OtherChannelId=att-42;2 ...
    for event in events:                       # typed events from ami_bridge.events.to_event
        for out in tracker.feed(event, now):   # CallRinging|CallAnswered|CallHeld|
            ...                                #   CallAbandoning|CallConnected|CallEnded
    tracker.tick(now)                          # call every ~1 s: resolves stuck calls
    tracker.cancel("attempt-42", now)          # BEFORE sending Hangup for a call we drop
    tracker.reconcile(live_uniqueids, now)     # after a reconnect, with CoreShowChannels' Uniqueids

Each tracked call yields exactly one :class:`CallEnded` (and at most one each of
``CallRinging``, ``CallAnswered``, ``CallHeld``, ``CallAbandoning``, ``CallConnected``);
afterwards it is forgotten and late events for it are ignored.

Correlation
-----------
* ``ActionID`` -> the call, for ``OriginateResponse`` and the action's ``Response``.
* ``channel_id`` (the Originate ``ChannelId``) is the Uniqueid of the ``;1`` leg, the one that
  runs our dialplan. The ``;2`` leg of a Local channel is bound from ``other_channel_id``
  (default ``<channel_id>;2``, what Asterisk uses without ``OtherChannelId``), or from a
  ``Newchannel`` whose name is the ``;1`` name with ``;2`` and whose Linkedid is the ``;1``
  Uniqueid.
* Without ``channel_id``, legs are bound by a ``VarSet`` of ``match_variable`` (name, value)
  (e.g. ``("MARCADOR_ATTEMPT", "42")``): Local channels copy Originate variables to both legs.
  ``OriginateResponse.Uniqueid`` and the originate's own ``DialBegin``/``DialEnd``
  (``DestUniqueid``) also bind the ``;1`` leg.

Outcome rules (``ami_bridge.outcomes.CallOutcome``; never from Reason alone)
--------------------------------------------------------------------------------
Answered = ``OriginateResponse`` Reason 4, or ``Newstate`` Up on the ``;1`` leg. Then:

1. connected to an agent (see below) -> ``ANSWERED_CONNECTED``
2. else ``AMDSTATUS=MACHINE`` (``VarSet`` on any leg) -> ``MACHINE``
3. else the safe-harbor path ran, or the dialer dropped it -> ``ABANDONED``
4. else the leg ran ``marcador-outbound`` but never reached ``marcador-hold`` (the customer
   hung up during AMD) -> ``EARLY_HANGUP``: never offered to an agent, not a live answer
5. else -> ``ABANDONED`` (a live answer that never reached an agent: the customer hanging up
   while held, or a PBX outage).

Not answered:

1. the dialer asked to drop it (:meth:`CallTracker.cancel`) -> ``CANCELLED``
2. the Hangup ``Cause`` of the right leg: the ``;1`` cause unless it is 0/16 ("Unknown" /
   normal clearing), then the ``;2`` cause (a Local busy shows 0 on ``;1`` and 17 on ``;2``).
   17 BUSY; 21 REJECTED; 1, 3, 22, 28 INVALID_NUMBER; 18, 19, 20 NO_ANSWER; 34, 41, 42, 44
   CONGESTION; 16 (cleared before answer) NO_ANSWER; other non-zero causes FAILED.
3. the OriginateResponse Reason: 5 BUSY, 8 CONGESTION, 3 NO_ANSWER, 1 FAILED.
4. the originate's ``DialEnd`` DialStatus: BUSY, CONGESTION, NOANSWER, CHANUNAVAIL (FAILED).
5. Reason 0 with cause 0 on every leg that existed -> ``INVALID_NUMBER`` (no such extension or
   number); Reason 0 and no channel ever created -> ``FAILED`` (no such endpoint, or an
   endpoint/trunk with no registered contact: a PBX/trunk problem, not the number's).

PBX restart/shutdown (evidence: a ``SoftHangupRequest`` with Cause 4 on one of the call's
legs, or a ``Shutdown`` event, before it ended): its causes say nothing, so it is decided
apart, with ``CallEnded.end_reason = "pbx_restart"`` and a detail starting with it: connected
-> ``ANSWERED_CONNECTED`` (the agent still dispositions it); answered -> ``MACHINE`` if AMD
said so, else ``ABANDONED``; not answered -> ``FAILED`` (never counted against the limits).

A call ends when its ``;1`` leg hangs up after an answer, or, unanswered, once the
OriginateResponse arrived and every leg seen has hung up (they come in any order). If one of
those facts never comes, :meth:`CallTracker.tick` resolves the call ``settle_timeout`` later
with what is known. An unanswered failure whose facts name no outcome yet (no conclusive
cause, Reason or DialStatus) while a leg it expects was never seen (e.g. the Failure response
arrived before the call's Newchannel, as recorded in ``tests/fixtures/pbx-transcripts/04``)
waits ``late_event_grace`` for the late channel events first; a conclusive Hangup arriving
meanwhile resolves it at once.

Dialplan signals relied upon (see ``deploy/asterisk/extensions.conf``, design.md §4)
-----------------------------------------------------------------------------------
* **Agent connect**: the ``;1`` leg (the leg in our dialplan) joins a ConfBridge whose name
  starts with ``agent_room_prefix`` (``ConfbridgeJoin``, default ``dialplan.ROOM_PREFIX``), or it
  shares a bridge (``BridgeEnter``) with any channel that is not one of the call's own legs.
* **Abandon / safe harbor**: the ``marcador-hold`` context, when ``connect_timeout`` expires,
  runs ``Set(MARCADOR_ABANDONED=1)`` (``dialplan.VAR_ABANDONED``) before playing the
  safe-harbor message and hanging up. The tracker records that ``VarSet``
  (``abandon_variable``) as the detail of the ``ABANDONED`` outcome; the outcome itself only
  needs "answered and never connected".
* **AMD**: ``AMD()`` in ``marcador-outbound`` sets ``AMDSTATUS``/``AMDCAUSE`` (``VarSet``).
* **Ready for an agent**: the ``;1`` leg's ``Newexten`` at ``marcador-hold,s,1`` (``read =
  dialplan``): AMD said "not a machine" (or was off). The tracker emits :class:`CallHeld`
  once; the dialer connects only then (``CallAnswered`` is the bare answer, while ``AMD()``
  may still be listening).
* **Safe harbor started**: the first ``MARCADOR_ABANDONED`` ``VarSet`` emits
  :class:`CallAbandoning` (an agent reserved for this call can be released at once).

Timeouts (no call stays pending forever)
----------------------------------------
* unanswered: ``ring_timeout + originate_grace`` after :meth:`track` -> ``FAILED``
  ("no answer/failure reported in time"), unless the facts resolve it.
* answered: ``max_call_duration`` after the answer -> resolved as if hung up now, detail says so.
* :meth:`reconcile` after a reconnect: calls with a leg still live are kept; the others are
  resolved from the last known facts, or ``FAILED`` "lost during PBX outage".
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ami_bridge import dialplan
from ami_bridge.errors import AMIError
from ami_bridge.events import (
    AMIEvent,
    BridgeEnter,
    BridgeLeave,
    ConfbridgeJoin,
    DialBegin,
    DialEnd,
    Hangup,
    Newchannel,
    Newexten,
    Newstate,
    OriginateResponse,
    Response,
    Shutdown,
    SoftHangupRequest,
    VarSet,
)
from ami_bridge.outcomes import CallOutcome

__all__ = [
    "CallAbandoning",
    "CallAnswered",
    "CallConnected",
    "CallEnded",
    "CallHeld",
    "CallRinging",
    "CallTracker",
    "DuplicateCallError",
    "TrackerConfig",
    "TrackerOutput",
    "outcome_from_cause",
]

_STATE_RINGING = 5
_STATE_UP = 6
#: ``SoftHangupRequest`` Cause during ``core restart``/``core stop``: the soft-hangup flag
#: AST_SOFTHANGUP_SHUTDOWN, not a Q.850 cause (ami-transcripts file 24; checked on 22.10.1).
SOFTHANGUP_SHUTDOWN = 4
#: :attr:`CallEnded.end_reason` of a call cut by a PBX restart or shutdown.
END_PBX_RESTART = "pbx_restart"
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


class _Call:
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


def _base_name(channel: str) -> str:
    return channel[:-2] if channel.endswith((";1", ";2")) else channel


class CallTracker:
    """See the module docstring."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._calls: dict[str, _Call] = {}
        self._by_action: dict[str, _Call] = {}
        self._by_uid: dict[str, _Call] = {}
        self._by_match: dict[tuple[str, str], _Call] = {}
        self._match_names: set[str] = set()
        # bridge id -> {uniqueid: channel name}, for every bridge seen (not only ours)
        self._bridges: dict[str, dict[str, str]] = {}
        self._handlers: dict[type, Callable[[_Call | None, object, datetime], list[TrackerOutput]]]
        self._handlers = {
            Newchannel: self._on_newchannel,  # type: ignore[dict-item]
            Newstate: self._on_newstate,  # type: ignore[dict-item]
            Hangup: self._on_hangup,  # type: ignore[dict-item]
            VarSet: self._on_varset,  # type: ignore[dict-item]
            Newexten: self._on_newexten,  # type: ignore[dict-item]
            BridgeEnter: self._on_bridge_enter,  # type: ignore[dict-item]
            BridgeLeave: self._on_bridge_leave,  # type: ignore[dict-item]
            ConfbridgeJoin: self._on_confbridge_join,  # type: ignore[dict-item]
            SoftHangupRequest: self._on_soft_hangup,  # type: ignore[dict-item]
        }

    # -- registration ------------------------------------------------------------------------

    def track(
        self,
        call_id: str,
        *,
        action_id: str,
        now: datetime,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        match_variable: tuple[str, str] | None = None,
        ring_timeout: timedelta = timedelta(seconds=30),
        preview: bool = False,
    ) -> None:
        """Start tracking an originate. Call it *before* sending the Originate.

        ``preview=True``: the originated channel is the agent and the customer is dialed from
        it (agent-first preview): the customer's answer/outcome comes from that Dial.
        Raises :class:`DuplicateCallError` if any identifier is already in use.
        """
        if call_id in self._calls:
            raise DuplicateCallError(f"call {call_id!r} is already tracked")
        if action_id in self._by_action:
            raise DuplicateCallError(f"ActionID {action_id!r} is already in use")
        uids: list[str] = []
        if channel_id:
            uids.append(channel_id)
            uids.append(other_channel_id or channel_id + ";2")
        for uid in uids:
            if uid in self._by_uid:
                raise DuplicateCallError(f"ChannelId {uid!r} is already in use")
        if match_variable is not None and match_variable in self._by_match:
            raise DuplicateCallError(f"match variable {match_variable!r} is already in use")
        call = _Call(
            call_id,
            action_id,
            now,
            now + ring_timeout + self.config.originate_grace,
            preview,
            match_variable,
        )
        if channel_id:
            call.primary_uid = channel_id
            call.other_uid = uids[1]
            for uid in uids:
                self._by_uid[uid] = call
        if match_variable is not None:
            self._by_match[match_variable] = call
            self._match_names.add(match_variable[0])
        self._calls[call_id] = call
        self._by_action[action_id] = call

    def adopt(
        self,
        call_id: str,
        *,
        uniqueid: str,
        channel: str,
        now: datetime,
        answered_at: datetime | None = None,
        conference: str | None = None,
        connected_at: datetime | None = None,
        ring_timeout: timedelta = timedelta(seconds=60),
    ) -> list[TrackerOutput]:
        """Follow a call another process originated and that is still up on the PBX.

        Used after a dialer restart (its calls survive on the PBX, see ``docs/reliability.md``):
        ``uniqueid``/``channel`` come from ``CoreShowChannels``; ``answered_at`` is set when the
        channel is Up; ``conference`` when it already sits in an agent room (the call is then
        connected). From here on the call ends exactly like an originated one: the ``;1`` leg's
        Hangup gives its :class:`CallEnded`. Returns the milestones already reached
        (``CallAnswered``/``CallConnected``). Raises :class:`DuplicateCallError` if tracked.
        """
        if call_id in self._calls or uniqueid in self._by_uid:
            raise DuplicateCallError(f"call {call_id!r} is already tracked")
        action_id = f"adopted-{call_id}"
        deadline = now + (
            self.config.max_call_duration
            if answered_at is not None
            else ring_timeout + self.config.originate_grace
        )
        call = _Call(call_id, action_id, now, deadline, False, None)
        call.response = "Success"  # the originate was accepted long ago
        call.primary_uid = uniqueid
        call.other_uid = uniqueid + ";2"
        call.channel = channel
        call.legs[uniqueid] = True
        call.saw_channel = True
        for uid in (uniqueid, call.other_uid):
            self._by_uid.setdefault(uid, call)
        self._calls[call_id] = call
        self._by_action[action_id] = call
        out: list[TrackerOutput] = []
        if answered_at is not None:
            call.answered_at = answered_at
            out.append(CallAnswered(call_id, answered_at, channel, uniqueid))
            if conference is not None and conference.startswith(self.config.agent_room_prefix):
                call.connected_at = connected_at or now
                call.conference = conference
                out.append(CallConnected(call_id, call.connected_at, None, conference, None))
        return out

    def cancel(self, call_id: str, now: datetime) -> None:
        """Record that the dialer is hanging this call up (campaign paused, window closed).

        An unanswered call then ends ``CANCELLED``; an answered, unconnected one ``ABANDONED``.
        """
        call = self._calls.get(call_id)
        if call is not None:
            call.cancel_requested = True

    def originate_failed(self, call_id: str, now: datetime, detail: str) -> list[TrackerOutput]:
        """The Originate could not be sent or was refused (timeout, connection lost...)."""
        call = self._calls.get(call_id)
        if call is None:
            return []
        return [self._end(call, now, CallOutcome.FAILED, detail)]

    # -- queries -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def call_ids(self) -> Iterator[str]:
        return iter(list(self._calls))

    def call_for_action(self, action_id: str) -> str | None:
        call = self._by_action.get(action_id)
        return call.call_id if call else None

    def channel_of(self, call_id: str) -> tuple[str | None, str | None]:
        """(channel name, uniqueid) of the call's ``;1`` leg, as far as known."""
        call = self._calls.get(call_id)
        if call is None:
            return (None, None)
        return (call.channel, call.primary_uid)

    # -- events ------------------------------------------------------------------------------

    def feed(self, event: AMIEvent, now: datetime) -> list[TrackerOutput]:
        """Process one typed event. Never raises on unexpected input; unknown calls are ignored."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            uid: str = event.uniqueid  # type: ignore[union-attr,assignment]
            return handler(self._by_uid.get(uid), event, now)
        if type(event) is OriginateResponse:
            return self._on_originate_response(event, now)
        if type(event) is DialBegin or type(event) is DialEnd:
            return self._on_dial(event, now)
        if type(event) is Response:
            return self._on_response(event, now)
        if type(event) is Shutdown:
            for call in self._calls.values():  # whatever is still up dies with the PBX
                call.pbx_shutdown = True
        return []

    def tick(self, now: datetime) -> list[TrackerOutput]:
        """Resolve calls whose facts are overdue. Call it periodically (e.g. every second)."""
        out: list[TrackerOutput] = []
        for call in list(self._calls.values()):
            if call.settle_at is not None and now >= call.settle_at:
                out.append(self._resolve(call, now, "settled after timeout"))
            elif now >= call.deadline:
                if call.answered_at is not None:
                    detail = "no hangup seen within max_call_duration"
                    out.append(self._resolve(call, now, detail))
                else:
                    detail = "stuck: no answer or failure reported in time"
                    out.append(self._end(call, now, CallOutcome.FAILED, detail))
        return out

    def reconcile(
        self,
        live_uniqueids: Collection[str],
        now: datetime,
        *,
        tracked_before: datetime | None = None,
    ) -> list[TrackerOutput]:
        """After a reconnect: keep calls with a live leg, resolve the others.

        ``live_uniqueids``: the Uniqueids of ``CoreShowChannels``. Calls tracked at or after
        ``tracked_before`` (e.g. when the snapshot was requested) are left alone.
        """
        self._bridges.clear()
        out: list[TrackerOutput] = []
        live = (
            live_uniqueids if isinstance(live_uniqueids, set | frozenset) else set(live_uniqueids)
        )
        for call in list(self._calls.values()):
            if tracked_before is not None and call.started_at >= tracked_before:
                continue
            alive = call.primary_uid in live or any(uid in live for uid in call.legs)
            if alive:
                for uid in call.legs:
                    if uid not in live:
                        call.legs[uid] = False
                continue
            for uid in call.legs:
                call.legs[uid] = False
            if call.answered_at is not None:
                out.append(self._resolve(call, now, "lost during PBX outage"))
            elif call.response is not None or any(
                c is not None for c in (call.primary_cause, call.other_cause)
            ):
                out.append(self._resolve(call, now, "resolved after reconnect"))
            else:
                out.append(self._end(call, now, CallOutcome.FAILED, "lost during PBX outage"))
        return out

    # -- handlers ----------------------------------------------------------------------------

    def _bind(self, call: _Call, uid: str, channel: str, primary: bool) -> None:
        if primary:
            if call.primary_uid is None:
                call.primary_uid = uid
            call.channel = channel
        elif call.other_uid is None:
            call.other_uid = uid
        self._by_uid[uid] = call
        call.legs.setdefault(uid, True)
        call.saw_channel = True

    def _on_newchannel(
        self, call: _Call | None, ev: Newchannel, now: datetime
    ) -> list[TrackerOutput]:
        if call is None:
            # the ;2 leg of a Local channel whose ;1 leg we know
            if not ev.channel.endswith(";2"):
                return []
            owner = self._by_uid.get(ev.linkedid)
            if owner is None or owner.other_uid is not None or owner.channel is None:
                return []
            if _base_name(owner.channel) != _base_name(ev.channel):
                return []
            self._bind(owner, ev.uniqueid, ev.channel, primary=False)
            return []
        self._bind(call, ev.uniqueid, ev.channel, primary=ev.uniqueid == call.primary_uid)
        return []

    def _on_newstate(self, call: _Call | None, ev: Newstate, now: datetime) -> list[TrackerOutput]:
        if call is None or ev.uniqueid != call.primary_uid:
            return []
        if call.channel is None:
            call.channel = ev.channel
        call.legs.setdefault(ev.uniqueid, True)
        state = ev.channel_state
        if state == _STATE_RINGING and call.ringing_at is None and not call.preview:
            call.ringing_at = now
            return [CallRinging(call.call_id, now)]
        if state == _STATE_UP and not call.preview:
            return self._answered(call, now)
        return []

    def _answered(self, call: _Call, now: datetime) -> list[TrackerOutput]:
        if call.answered_at is not None:
            return []
        call.answered_at = now
        call.settle_at = None
        call.deadline = now + self.config.max_call_duration
        return [CallAnswered(call.call_id, now, call.channel, call.primary_uid)]

    def _connected(
        self,
        call: _Call,
        now: datetime,
        agent_channel: str | None,
        conference: str | None,
        bridge_id: str | None,
    ) -> list[TrackerOutput]:
        if call.connected_at is not None:
            return []
        out: list[TrackerOutput] = []
        if call.answered_at is None:
            out.extend(self._answered(call, now))
        call.connected_at = now
        call.agent_channel = agent_channel
        call.conference = conference
        call.bridge_id = bridge_id
        out.append(CallConnected(call.call_id, now, agent_channel, conference, bridge_id))
        return out

    def _on_hangup(self, call: _Call | None, ev: Hangup, now: datetime) -> list[TrackerOutput]:
        if call is None:
            return []
        uid = ev.uniqueid
        call.legs[uid] = False
        call.saw_channel = True
        if uid == call.primary_uid:
            call.primary_cause = ev.cause
            if call.channel is None:
                call.channel = ev.channel
            if call.answered_at is not None:
                return [self._resolve(call, now, "")]
        else:
            call.other_cause = ev.cause
        return self._maybe_settle(call, now)

    def _on_soft_hangup(
        self, call: _Call | None, ev: SoftHangupRequest, now: datetime
    ) -> list[TrackerOutput]:
        if call is not None and ev.cause == SOFTHANGUP_SHUTDOWN:
            call.pbx_shutdown = True
        return []

    def _on_varset(self, call: _Call | None, ev: VarSet, now: datetime) -> list[TrackerOutput]:
        var = ev.variable
        if call is None:
            if var in self._match_names:
                owner = self._by_match.get((var, ev.value))
                if owner is not None and ev.uniqueid:
                    is_other = ev.channel.endswith(";2")
                    if not is_other and owner.primary_uid is None:
                        self._bind(owner, ev.uniqueid, ev.channel, primary=True)
                    elif is_other and owner.other_uid is None:
                        self._bind(owner, ev.uniqueid, ev.channel, primary=False)
            return []
        cfg = self.config
        if var == cfg.amd_status_variable:
            call.amd_status = ev.value or None
        elif var == cfg.amd_cause_variable:
            call.amd_cause = ev.value or None
        elif var == cfg.abandon_variable:
            first = call.abandon_signal is None
            call.abandon_signal = ev.value or None
            if first and call.abandon_signal and call.connected_at is None:
                return [CallAbandoning(call.call_id, now)]
        elif (
            var == cfg.dial_status_variable
            and ev.value
            and call.preview
            and ev.uniqueid == call.primary_uid
        ):
            call.dial_status = ev.value
            if ev.value == "ANSWER":
                return self._connected(call, now, None, None, None)
        return []

    def _on_newexten(self, call: _Call | None, ev: Newexten, now: datetime) -> list[TrackerOutput]:
        if call is None or call.preview or ev.uniqueid != call.primary_uid:
            return []
        cfg = self.config
        if ev.context == cfg.outbound_context:
            call.in_outbound = True
            return []
        if (
            ev.context != cfg.hold_context
            or ev.exten != cfg.hold_exten
            or ev.priority != 1
            or call.held_at is not None
            or call.connected_at is not None
        ):
            return []
        if call.channel is None:
            call.channel = ev.channel
        out: list[TrackerOutput] = []
        if call.answered_at is None:  # OriginateResponse/Newstate not seen (yet): it is up
            out.extend(self._answered(call, now))
        call.held_at = now
        out.append(CallHeld(call.call_id, now, call.channel, call.primary_uid))
        return out

    def _on_bridge_enter(
        self, call: _Call | None, ev: BridgeEnter, now: datetime
    ) -> list[TrackerOutput]:
        members = self._bridges.setdefault(ev.bridge_uniqueid, {})
        members[ev.uniqueid] = ev.channel
        if call is not None and ev.uniqueid == call.primary_uid:
            for uid, channel in members.items():
                if self._by_uid.get(uid) is not call:
                    return self._connected(call, now, channel, None, ev.bridge_uniqueid)
            return []
        out: list[TrackerOutput] = []
        for uid in members:
            owner = self._by_uid.get(uid)
            if owner is not None and owner is not call and uid == owner.primary_uid:
                out.extend(self._connected(owner, now, ev.channel, None, ev.bridge_uniqueid))
        return out

    def _check_bridges(self, call: _Call, now: datetime) -> list[TrackerOutput]:
        uid = call.primary_uid
        if uid is None or call.connected_at is not None:
            return []
        for bridge_id, members in self._bridges.items():
            if uid in members:
                for other, channel in members.items():
                    if self._by_uid.get(other) is not call:
                        return self._connected(call, now, channel, None, bridge_id)
        return []

    def _on_bridge_leave(
        self, call: _Call | None, ev: BridgeLeave, now: datetime
    ) -> list[TrackerOutput]:
        members = self._bridges.get(ev.bridge_uniqueid)
        if members is not None:
            members.pop(ev.uniqueid, None)
            if not members:
                del self._bridges[ev.bridge_uniqueid]
        return []

    def _on_confbridge_join(
        self, call: _Call | None, ev: ConfbridgeJoin, now: datetime
    ) -> list[TrackerOutput]:
        if call is None or ev.uniqueid != call.primary_uid:
            return []
        if ev.conference.startswith(self.config.agent_room_prefix):
            return self._connected(call, now, None, ev.conference, ev.bridge_uniqueid)
        return []

    def _on_originate_response(self, ev: OriginateResponse, now: datetime) -> list[TrackerOutput]:
        if ev.action_id is None:
            return []
        call = self._by_action.get(ev.action_id)
        if call is None:
            return []
        call.reason = ev.reason
        call.response = ev.response or "Failure"
        if ev.success:
            if ev.uniqueid and call.primary_uid is None:
                self._bind(call, ev.uniqueid, ev.channel, primary=True)
            elif call.channel is None and ev.uniqueid == call.primary_uid:
                call.channel = ev.channel
            if call.preview:
                return []
            out: list[TrackerOutput] = []
            if ev.reason == 4 or ev.reason is None:
                out.extend(self._answered(call, now))
            out.extend(self._check_bridges(call, now))  # bound late: already bridged?
            return out
        return self._maybe_settle(call, now)

    def _on_dial(self, ev: DialBegin | DialEnd, now: datetime) -> list[TrackerOutput]:
        if ev.uniqueid is None:
            # the originate's own dial: Dest* is our ;1 leg
            call = self._by_uid.get(ev.dest_uniqueid)
            if call is None:
                return []
            if type(ev) is DialEnd and not call.preview:
                call.dial_status = ev.dial_status or call.dial_status
            return []
        call = self._by_uid.get(ev.uniqueid)
        if call is None or not call.preview or ev.uniqueid != call.primary_uid:
            return []
        # preview: our (agent) channel dials the customer
        if type(ev) is DialBegin:
            if call.other_uid is None and ev.dest_uniqueid:
                self._bind(call, ev.dest_uniqueid, ev.dest_channel, primary=False)
            if call.ringing_at is None:
                call.ringing_at = now
                return [CallRinging(call.call_id, now)]
            return []
        assert type(ev) is DialEnd
        call.dial_status = ev.dial_status
        if ev.dial_status == "ANSWER":
            return self._connected(call, now, ev.channel, None, None)
        return []

    def _on_response(self, ev: Response, now: datetime) -> list[TrackerOutput]:
        if ev.action_id is None or ev.success:
            return []
        call = self._by_action.get(ev.action_id)
        if call is None or call.response is not None:
            return []
        detail = ev.message_text or ev.response
        call.response = "Error"
        call.response_detail = detail
        if detail == "Originate failed":
            # synchronous originate: the call ran and failed; its Hangup events follow
            return self._maybe_settle(call, now)
        return [self._end(call, now, CallOutcome.FAILED, f"originate refused: {detail}")]

    # -- resolution --------------------------------------------------------------------------

    def _maybe_settle(self, call: _Call, now: datetime) -> list[TrackerOutput]:
        """Unanswered call: resolve once the response is in and every leg seen is down."""
        if call.answered_at is not None:
            return []
        legs_down = not any(call.legs.values())
        response = call.response
        # A sync "Originate failed" comes *before* the call's channels: wait for them.
        if response is not None and legs_down and (call.legs or response != "Error"):
            if self._conclusive(call):
                return [self._resolve(call, now, "")]
            # OriginateResponse is not ordered against the channel events: a fast failure's
            # Newchannel/Hangup (with its cause) may still be on the way. Give them a moment.
            grace = now + self.config.late_event_grace
            if call.settle_at is None or grace < call.settle_at:
                call.settle_at = grace
            return []
        if call.settle_at is None and (response is not None or (call.legs and legs_down)):
            call.settle_at = now + self.config.settle_timeout
        return []

    def _conclusive(self, call: _Call) -> bool:
        """Unanswered: do the facts already name the outcome (no late event can change it)?"""
        if call.cancel_requested or call.pbx_shutdown or call.response == "Error":
            return True
        if outcome_from_cause(self._right_cause(call)) is not None:
            return True
        if call.reason is not None and call.reason in _REASON_OUTCOMES:
            return True
        if call.dial_status and call.dial_status in _DIALSTATUS_OUTCOMES:
            return True
        # no named outcome (e.g. cause 0 everywhere): final once every leg we know of was seen
        # (Newchannel precedes Hangup on a channel; only the response races them)
        known = [uid for uid in (call.primary_uid, call.other_uid) if uid is not None]
        return call.saw_channel and all(uid in call.legs for uid in known)

    def _resolve(self, call: _Call, now: datetime, note: str) -> CallEnded:
        outcome, detail = self._decide(call)
        if note:
            detail = f"{detail}; {note}" if detail else note
        return self._end(call, now, outcome, detail)

    def _right_cause(self, call: _Call) -> int | None:
        if call.preview:
            return call.other_cause if call.other_cause is not None else call.primary_cause
        primary, other = call.primary_cause, call.other_cause
        if primary not in _VAGUE_CAUSES:
            return primary
        if other not in _VAGUE_CAUSES:
            return other
        return primary if primary is not None else other

    def _decide(self, call: _Call) -> tuple[CallOutcome, str]:
        if call.pbx_shutdown:
            return self._decide_restart(call)
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
        cause = self._right_cause(call)
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

    def _decide_restart(self, call: _Call) -> tuple[CallOutcome, str]:
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

    def _end(self, call: _Call, now: datetime, outcome: CallOutcome, detail: str) -> CallEnded:
        self._forget(call)
        return CallEnded(
            call_id=call.call_id,
            outcome=outcome,
            detail=detail,
            hangup_cause=self._right_cause(call),
            originate_reason=call.reason,
            dial_status=call.dial_status,
            amd_status=call.amd_status,
            amd_cause=call.amd_cause,
            started_at=call.started_at,
            ringing_at=call.ringing_at,
            answered_at=call.answered_at,
            connected_at=call.connected_at,
            ended_at=now,
            channel=call.channel,
            uniqueid=call.primary_uid,
            action_id=call.action_id,
            end_reason=END_PBX_RESTART if call.pbx_shutdown else None,
            held_at=call.held_at,
        )

    def _forget(self, call: _Call) -> None:
        self._calls.pop(call.call_id, None)
        if self._by_action.get(call.action_id) is call:
            del self._by_action[call.action_id]
        for uid in self._uids_of(call):
            del self._by_uid[uid]
        if call.match is not None and self._by_match.get(call.match) is call:
            del self._by_match[call.match]

    def _uids_of(self, call: _Call) -> list[str]:
        uids = set(call.legs)
        for uid in (call.primary_uid, call.other_uid):
            if uid is not None:
                uids.add(uid)
        return [u for u in uids if self._by_uid.get(u) is call]
