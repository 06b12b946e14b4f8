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

Layout: this module is the public API (:class:`CallTracker`, and every name below is importable
from here); the data (config, outputs, per-call state) is :mod:`ami_bridge.tracker_model`, the
indexes and the resolution :mod:`ami_bridge.tracker_core`, one handler per event type
:mod:`ami_bridge.tracker_handlers`, and the outcome decision (pure functions of a call's state,
the rules below) :mod:`ami_bridge.verdict`.

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

from collections.abc import Collection, Iterator
from datetime import datetime, timedelta

from ami_bridge.events import AMIEvent
from ami_bridge.outcomes import CallOutcome
from ami_bridge.tracker_handlers import EventHandlers
from ami_bridge.tracker_model import (
    END_PBX_RESTART,
    SOFTHANGUP_SHUTDOWN,
    CallAbandoning,
    CallAnswered,
    CallConnected,
    CallEnded,
    CallHeld,
    CallRinging,
    CallState,
    DuplicateCallError,
    TrackerConfig,
    TrackerOutput,
)
from ami_bridge.verdict import outcome_from_cause

__all__ = [
    "END_PBX_RESTART",
    "SOFTHANGUP_SHUTDOWN",
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


class CallTracker(EventHandlers):
    """See the module docstring.

    Built in layers: :class:`~ami_bridge.tracker_core.TrackerCore` (indexes, milestones,
    resolution), :class:`~ami_bridge.tracker_handlers.EventHandlers` (one step per event type,
    :mod:`ami_bridge.verdict` for the outcome); this class is the public API.
    """

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
        call = CallState(
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
        call = CallState(call_id, action_id, now, deadline, False, None)
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
        return self._dispatch(event, now)

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
