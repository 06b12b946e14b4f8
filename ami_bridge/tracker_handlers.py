"""The call tracker's event handlers: one per AMI event type, each a pure step
``(call or None, event, now) -> outputs``.

:class:`EventHandlers` binds legs to calls (ChannelId, Local ``;2`` legs, a match variable,
OriginateResponse, the originate's Dial), records the facts the verdict needs (states, causes,
AMD, safe harbor, dial status, PBX restart) and emits the milestones (ringing, answered, held,
abandoning, connected). The bookkeeping it relies on is
:class:`~ami_bridge.tracker_core.TrackerCore`; the public API is
:class:`~ami_bridge.tracker.CallTracker`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

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
from ami_bridge.tracker_core import TrackerCore
from ami_bridge.tracker_model import (
    SOFTHANGUP_SHUTDOWN,
    CallAbandoning,
    CallHeld,
    CallRinging,
    CallState,
    TrackerConfig,
    TrackerOutput,
)

__all__ = ["EventHandlers"]

_STATE_RINGING = 5
_STATE_UP = 6


def _base_name(channel: str) -> str:
    return channel[:-2] if channel.endswith((";1", ";2")) else channel


class EventHandlers(TrackerCore):
    """The per-event steps; see the module docstring."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        super().__init__(config)
        self._handlers: dict[
            type, Callable[[CallState | None, object, datetime], list[TrackerOutput]]
        ]
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

    def _dispatch(self, event: AMIEvent, now: datetime) -> list[TrackerOutput]:
        """Channel events go to their call by Uniqueid; replies and OriginateResponse by
        ActionID; a Dial by either leg; Shutdown marks every live call."""
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

    def _on_newchannel(
        self, call: CallState | None, ev: Newchannel, now: datetime
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

    def _on_newstate(
        self, call: CallState | None, ev: Newstate, now: datetime
    ) -> list[TrackerOutput]:
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

    def _on_hangup(self, call: CallState | None, ev: Hangup, now: datetime) -> list[TrackerOutput]:
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
        self, call: CallState | None, ev: SoftHangupRequest, now: datetime
    ) -> list[TrackerOutput]:
        if call is not None and ev.cause == SOFTHANGUP_SHUTDOWN:
            call.pbx_shutdown = True
        return []

    def _on_varset(self, call: CallState | None, ev: VarSet, now: datetime) -> list[TrackerOutput]:
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

    def _on_newexten(
        self, call: CallState | None, ev: Newexten, now: datetime
    ) -> list[TrackerOutput]:
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
        self, call: CallState | None, ev: BridgeEnter, now: datetime
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

    def _on_bridge_leave(
        self, call: CallState | None, ev: BridgeLeave, now: datetime
    ) -> list[TrackerOutput]:
        members = self._bridges.get(ev.bridge_uniqueid)
        if members is not None:
            members.pop(ev.uniqueid, None)
            if not members:
                del self._bridges[ev.bridge_uniqueid]
        return []

    def _on_confbridge_join(
        self, call: CallState | None, ev: ConfbridgeJoin, now: datetime
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
