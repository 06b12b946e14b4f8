"""The call tracker's bookkeeping: the indexes of tracked calls, the milestones every
handler shares (bind a leg, answered, connected) and the resolution of a call into its one
:class:`CallEnded` (then it is forgotten).

:class:`TrackerCore` is the base of :class:`~ami_bridge.tracker.CallTracker`; the per-event
handlers are :mod:`ami_bridge.tracker_handlers` and the outcome decision is
:mod:`ami_bridge.verdict`. Pure: ``now`` is always passed in.
"""

from __future__ import annotations

from datetime import datetime

from ami_bridge.outcomes import CallOutcome
from ami_bridge.tracker_model import (
    END_PBX_RESTART,
    CallAnswered,
    CallConnected,
    CallEnded,
    CallState,
    TrackerConfig,
    TrackerOutput,
)
from ami_bridge.verdict import decide, is_conclusive, right_cause

__all__ = ["TrackerCore"]


class TrackerCore:
    """Indexes, shared milestones and resolution; see the module docstring."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._calls: dict[str, CallState] = {}
        self._by_action: dict[str, CallState] = {}
        self._by_uid: dict[str, CallState] = {}
        self._by_match: dict[tuple[str, str], CallState] = {}
        self._match_names: set[str] = set()
        # bridge id -> {uniqueid: channel name}, for every bridge seen (not only ours)
        self._bridges: dict[str, dict[str, str]] = {}

    def _bind(self, call: CallState, uid: str, channel: str, primary: bool) -> None:
        if primary:
            if call.primary_uid is None:
                call.primary_uid = uid
            call.channel = channel
        elif call.other_uid is None:
            call.other_uid = uid
        self._by_uid[uid] = call
        call.legs.setdefault(uid, True)
        call.saw_channel = True

    def _answered(self, call: CallState, now: datetime) -> list[TrackerOutput]:
        if call.answered_at is not None:
            return []
        call.answered_at = now
        call.settle_at = None
        call.deadline = now + self.config.max_call_duration
        return [CallAnswered(call.call_id, now, call.channel, call.primary_uid)]

    def _connected(
        self,
        call: CallState,
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

    def _check_bridges(self, call: CallState, now: datetime) -> list[TrackerOutput]:
        uid = call.primary_uid
        if uid is None or call.connected_at is not None:
            return []
        for bridge_id, members in self._bridges.items():
            if uid in members:
                for other, channel in members.items():
                    if self._by_uid.get(other) is not call:
                        return self._connected(call, now, channel, None, bridge_id)
        return []

    def _maybe_settle(self, call: CallState, now: datetime) -> list[TrackerOutput]:
        """Unanswered call: resolve once the response is in and every leg seen is down."""
        if call.answered_at is not None:
            return []
        legs_down = not any(call.legs.values())
        response = call.response
        # A sync "Originate failed" comes *before* the call's channels: wait for them.
        if response is not None and legs_down and (call.legs or response != "Error"):
            if is_conclusive(call):
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

    def _resolve(self, call: CallState, now: datetime, note: str) -> CallEnded:
        outcome, detail = decide(call)
        if note:
            detail = f"{detail}; {note}" if detail else note
        return self._end(call, now, outcome, detail)

    def _end(self, call: CallState, now: datetime, outcome: CallOutcome, detail: str) -> CallEnded:
        self._forget(call)
        return CallEnded(
            call_id=call.call_id,
            outcome=outcome,
            detail=detail,
            hangup_cause=right_cause(call),
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

    def _forget(self, call: CallState) -> None:
        self._calls.pop(call.call_id, None)
        if self._by_action.get(call.action_id) is call:
            del self._by_action[call.action_id]
        for uid in self._uids_of(call):
            del self._by_uid[uid]
        if call.match is not None and self._by_match.get(call.match) is call:
            del self._by_match[call.match]

    def _uids_of(self, call: CallState) -> list[str]:
        uids = set(call.legs)
        for uid in (call.primary_uid, call.other_uid):
            if uid is not None:
                uids.add(uid)
        return [u for u in uids if self._by_uid.get(u) is call]
