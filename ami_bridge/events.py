"""Typed AMI events: frozen, slotted dataclasses, and :func:`to_event`.

``to_event(message)`` turns a parsed :class:`~ami_bridge.protocol.Message` into one of the
classes below. It never raises: an event Marcador does not model becomes :class:`UnknownEvent`,
a reply to an action becomes :class:`Response`, and a modelled event with missing or malformed
headers gets empty strings / ``None`` in those fields (numbers that do not parse are ``None``).

Header names are read as Asterisk spells them (``Uniqueid``, ``ActionID``...); that is what
both a real Asterisk 22 and the in-project simulator send.

Conventions:

* ``uniqueid`` is the channel's Uniqueid. For an Originate with ``ChannelId`` it equals the
  ChannelId on the ``;1`` leg; the ``;2`` leg gets ``OtherChannelId`` (default
  ``<ChannelId>;2``).
* ``channel_state`` is the numeric ``ChannelState`` (6 = Up), ``None`` if absent.
* ``OriginateResponse.uniqueid`` is ``None`` when Asterisk sends ``<unknown>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ami_bridge.protocol import Message

__all__ = [
    "AMIEvent",
    "BridgeEnter",
    "BridgeLeave",
    "ChannelEvent",
    "ChannelHungup",
    "ConfbridgeEnd",
    "ConfbridgeJoin",
    "ConfbridgeLeave",
    "ConfbridgeStart",
    "ContactStatus",
    "CoreShowChannel",
    "CoreShowChannelsComplete",
    "DeviceStateChange",
    "DialBegin",
    "DialEnd",
    "FullyBooted",
    "Hangup",
    "HangupRequest",
    "Newchannel",
    "Newexten",
    "Newstate",
    "OriginateResponse",
    "Response",
    "Shutdown",
    "SoftHangupRequest",
    "UnknownEvent",
    "VarSet",
    "to_event",
]

CHANNEL_STATE_UP = 6


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _yes(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("yes", "true", "1", "on")


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """Fields shared by every event about one channel."""

    channel: str
    uniqueid: str
    linkedid: str
    channel_state: int | None
    context: str
    exten: str

    @property
    def is_up(self) -> bool:
        return self.channel_state == CHANNEL_STATE_UP


@dataclass(frozen=True, slots=True)
class Newchannel(ChannelEvent):
    caller_id_num: str
    caller_id_name: str


@dataclass(frozen=True, slots=True)
class Newstate(ChannelEvent):
    channel_state_desc: str


@dataclass(frozen=True, slots=True)
class Hangup(ChannelEvent):
    cause: int | None
    cause_txt: str


@dataclass(frozen=True, slots=True)
class HangupRequest(ChannelEvent):
    cause: int | None


@dataclass(frozen=True, slots=True)
class SoftHangupRequest(ChannelEvent):
    cause: int | None  # 4 during `core restart` is a soft-hangup flag, not a Q.850 cause


@dataclass(frozen=True, slots=True)
class VarSet(ChannelEvent):
    variable: str
    value: str


@dataclass(frozen=True, slots=True)
class Newexten(ChannelEvent):
    extension: str
    priority: int | None
    application: str
    app_data: str


@dataclass(frozen=True, slots=True)
class BridgeEnter(ChannelEvent):
    bridge_uniqueid: str
    bridge_type: str
    bridge_technology: str
    bridge_num_channels: int | None


@dataclass(frozen=True, slots=True)
class BridgeLeave(ChannelEvent):
    bridge_uniqueid: str
    bridge_type: str
    bridge_technology: str
    bridge_num_channels: int | None


@dataclass(frozen=True, slots=True)
class ConfbridgeJoin(ChannelEvent):
    conference: str
    bridge_uniqueid: str
    admin: bool
    muted: bool


@dataclass(frozen=True, slots=True)
class ConfbridgeLeave(ChannelEvent):
    conference: str
    bridge_uniqueid: str


@dataclass(frozen=True, slots=True)
class CoreShowChannel(ChannelEvent):
    action_id: str | None
    application: str
    application_data: str
    duration: str
    bridge_id: str


@dataclass(frozen=True, slots=True)
class ConfbridgeStart:
    conference: str
    bridge_uniqueid: str


@dataclass(frozen=True, slots=True)
class ConfbridgeEnd:
    conference: str
    bridge_uniqueid: str


@dataclass(frozen=True, slots=True)
class DialBegin:
    """A dial attempt. For the Originate's own dial there is no caller: ``channel``/``uniqueid``
    are ``None`` and only the ``dest_*`` fields are set."""

    channel: str | None
    uniqueid: str | None
    dest_channel: str
    dest_uniqueid: str
    dest_linkedid: str
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnd:
    channel: str | None
    uniqueid: str | None
    dest_channel: str
    dest_uniqueid: str
    dest_linkedid: str
    dial_status: str  # ANSWER, BUSY, NOANSWER, CONGESTION, CHANUNAVAIL, CANCEL...


@dataclass(frozen=True, slots=True)
class OriginateResponse:
    action_id: str | None
    response: str  # "Success" | "Failure"
    reason: int | None  # 4 answered, 5 busy, 8 congestion, 3 no answer, 0 anything else
    channel: str  # real channel name on success; the dial string as requested on failure
    uniqueid: str | None  # None for "<unknown>"; equals ChannelId when one was given
    context: str
    exten: str
    application: str
    caller_id_num: str
    caller_id_name: str

    @property
    def success(self) -> bool:
        return self.response == "Success"


@dataclass(frozen=True, slots=True)
class FullyBooted:
    uptime: int | None
    last_reload: int | None
    status: str


@dataclass(frozen=True, slots=True)
class Shutdown:
    shutdown: str  # "Cleanly" | "Uncleanly"
    restart: bool


@dataclass(frozen=True, slots=True)
class ContactStatus:
    uri: str
    contact_status: str  # NonQualified (registered, qualify off), Created, Reachable, Removed...
    aor: str
    endpoint_name: str
    roundtrip_usec: int | None


@dataclass(frozen=True, slots=True)
class DeviceStateChange:
    device: str
    state: str  # NOT_INUSE, INUSE, RINGING, UNAVAILABLE...


@dataclass(frozen=True, slots=True)
class CoreShowChannelsComplete:
    action_id: str | None
    list_items: int | None


@dataclass(frozen=True, slots=True)
class ChannelHungup:
    """List item of ``Hangup`` with a ``/regex/`` channel."""

    action_id: str | None
    channel: str


@dataclass(frozen=True, slots=True)
class Response:
    """The reply to an action (``Response: Success|Error|Goodbye|Follows``)."""

    response: str
    action_id: str | None
    message_text: str | None  # the ``Message:`` header
    event_list: str | None  # "start" on the first reply of a list action
    message: Message = field(repr=False, compare=False)

    @property
    def success(self) -> bool:
        return self.response in ("Success", "Goodbye", "Follows")

    @property
    def is_list_start(self) -> bool:
        return (self.event_list or "").lower() == "start"


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """Any event Marcador does not model (or a message that is neither event nor response)."""

    name: str
    message: Message = field(repr=False)

    @property
    def action_id(self) -> str | None:
        return self.message.action_id


AMIEvent = (
    Newchannel
    | Newstate
    | Hangup
    | HangupRequest
    | SoftHangupRequest
    | VarSet
    | Newexten
    | BridgeEnter
    | BridgeLeave
    | ConfbridgeJoin
    | ConfbridgeLeave
    | ConfbridgeStart
    | ConfbridgeEnd
    | DialBegin
    | DialEnd
    | OriginateResponse
    | FullyBooted
    | Shutdown
    | ContactStatus
    | DeviceStateChange
    | CoreShowChannel
    | CoreShowChannelsComplete
    | ChannelHungup
    | Response
    | UnknownEvent
)

_Decoder = Callable[[Mapping[str, str]], AMIEvent]


def _chan(h: Mapping[str, str]) -> tuple[str, str, str, int | None, str, str]:
    g = h.get
    return (
        g("Channel", ""),
        g("Uniqueid", ""),
        g("Linkedid", ""),
        _int(g("ChannelState")),
        g("Context", ""),
        g("Exten", ""),
    )


def _newchannel(h: Mapping[str, str]) -> AMIEvent:
    return Newchannel(*_chan(h), h.get("CallerIDNum", ""), h.get("CallerIDName", ""))


def _newstate(h: Mapping[str, str]) -> AMIEvent:
    return Newstate(*_chan(h), h.get("ChannelStateDesc", ""))


def _hangup(h: Mapping[str, str]) -> AMIEvent:
    return Hangup(*_chan(h), _int(h.get("Cause")), h.get("Cause-txt", ""))


def _hangup_request(h: Mapping[str, str]) -> AMIEvent:
    return HangupRequest(*_chan(h), _int(h.get("Cause")))


def _soft_hangup_request(h: Mapping[str, str]) -> AMIEvent:
    return SoftHangupRequest(*_chan(h), _int(h.get("Cause")))


def _varset(h: Mapping[str, str]) -> AMIEvent:
    return VarSet(*_chan(h), h.get("Variable", ""), h.get("Value", ""))


def _newexten(h: Mapping[str, str]) -> AMIEvent:
    g = h.get
    return Newexten(
        *_chan(h), g("Extension", ""), _int(g("Priority")), g("Application", ""), g("AppData", "")
    )


def _bridge_fields(h: Mapping[str, str]) -> tuple[str, str, str, int | None]:
    g = h.get
    return (
        g("BridgeUniqueid", ""),
        g("BridgeType", ""),
        g("BridgeTechnology", ""),
        _int(g("BridgeNumChannels")),
    )


def _bridge_enter(h: Mapping[str, str]) -> AMIEvent:
    return BridgeEnter(*_chan(h), *_bridge_fields(h))


def _bridge_leave(h: Mapping[str, str]) -> AMIEvent:
    return BridgeLeave(*_chan(h), *_bridge_fields(h))


def _confbridge_join(h: Mapping[str, str]) -> AMIEvent:
    g = h.get
    return ConfbridgeJoin(
        *_chan(h),
        g("Conference", ""),
        g("BridgeUniqueid", ""),
        _yes(g("Admin")),
        _yes(g("Muted")),
    )


def _confbridge_leave(h: Mapping[str, str]) -> AMIEvent:
    return ConfbridgeLeave(*_chan(h), h.get("Conference", ""), h.get("BridgeUniqueid", ""))


def _confbridge_start(h: Mapping[str, str]) -> AMIEvent:
    return ConfbridgeStart(h.get("Conference", ""), h.get("BridgeUniqueid", ""))


def _confbridge_end(h: Mapping[str, str]) -> AMIEvent:
    return ConfbridgeEnd(h.get("Conference", ""), h.get("BridgeUniqueid", ""))


def _dial_fields(h: Mapping[str, str]) -> tuple[str | None, str | None, str, str, str]:
    g = h.get
    return (
        g("Channel"),
        g("Uniqueid"),
        g("DestChannel", ""),
        g("DestUniqueid", ""),
        g("DestLinkedid", ""),
    )


def _dial_begin(h: Mapping[str, str]) -> AMIEvent:
    return DialBegin(*_dial_fields(h), h.get("DialString", ""))


def _dial_end(h: Mapping[str, str]) -> AMIEvent:
    return DialEnd(*_dial_fields(h), h.get("DialStatus", ""))


def _originate_response(h: Mapping[str, str]) -> AMIEvent:
    g = h.get
    uid = g("Uniqueid")
    return OriginateResponse(
        g("ActionID"),
        g("Response", ""),
        _int(g("Reason")),
        g("Channel", ""),
        None if uid is None or uid == "<unknown>" or not uid else uid,
        g("Context", ""),
        g("Exten", ""),
        g("Application", ""),
        g("CallerIDNum", ""),
        g("CallerIDName", ""),
    )


def _fully_booted(h: Mapping[str, str]) -> AMIEvent:
    return FullyBooted(_int(h.get("Uptime")), _int(h.get("LastReload")), h.get("Status", ""))


def _shutdown(h: Mapping[str, str]) -> AMIEvent:
    return Shutdown(h.get("Shutdown", ""), _yes(h.get("Restart")))


def _contact_status(h: Mapping[str, str]) -> AMIEvent:
    g = h.get
    return ContactStatus(
        g("URI", ""),
        g("ContactStatus", ""),
        g("AOR", ""),
        g("EndpointName", ""),
        _int(g("RoundtripUsec")),
    )


def _device_state_change(h: Mapping[str, str]) -> AMIEvent:
    return DeviceStateChange(h.get("Device", ""), h.get("State", ""))


def _core_show_channel(h: Mapping[str, str]) -> AMIEvent:
    g = h.get
    return CoreShowChannel(
        *_chan(h),
        g("ActionID"),
        g("Application", ""),
        g("ApplicationData", ""),
        g("Duration", ""),
        g("BridgeId", ""),
    )


def _core_show_channels_complete(h: Mapping[str, str]) -> AMIEvent:
    return CoreShowChannelsComplete(h.get("ActionID"), _int(h.get("ListItems")))


def _channel_hungup(h: Mapping[str, str]) -> AMIEvent:
    return ChannelHungup(h.get("ActionID"), h.get("Channel", ""))


DECODERS: dict[str, _Decoder] = {
    "Newchannel": _newchannel,
    "Newstate": _newstate,
    "Hangup": _hangup,
    "HangupRequest": _hangup_request,
    "SoftHangupRequest": _soft_hangup_request,
    "VarSet": _varset,
    "Newexten": _newexten,
    "BridgeEnter": _bridge_enter,
    "BridgeLeave": _bridge_leave,
    "ConfbridgeJoin": _confbridge_join,
    "ConfbridgeLeave": _confbridge_leave,
    "ConfbridgeStart": _confbridge_start,
    "ConfbridgeEnd": _confbridge_end,
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "OriginateResponse": _originate_response,
    "FullyBooted": _fully_booted,
    "Shutdown": _shutdown,
    "ContactStatus": _contact_status,
    "DeviceStateChange": _device_state_change,
    "CoreShowChannel": _core_show_channel,
    "CoreShowChannelsComplete": _core_show_channels_complete,
    "ChannelHungup": _channel_hungup,
}
_LOWER_DECODERS: dict[str, _Decoder] = {k.lower(): v for k, v in DECODERS.items()}


def to_event(message: Message) -> AMIEvent:
    """Decode one message. Never raises (see the module docstring)."""
    h = message.index
    name = h.get("Event")
    if name is None:
        response = h.get("Response")
        if response is not None:
            return Response(
                response, h.get("ActionID"), h.get("Message"), h.get("EventList"), message
            )
        return UnknownEvent(message.name, message)
    decoder = DECODERS.get(name) or _LOWER_DECODERS.get(name.lower())
    if decoder is None:
        return UnknownEvent(name, message)
    try:
        return decoder(h)
    except Exception:  # defensive: a decoder bug must never take the bridge down
        return UnknownEvent(name, message)
