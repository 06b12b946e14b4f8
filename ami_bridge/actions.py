"""Typed AMI action requests, their typed results, and the mapping of ``Response: Error``.

Pure code, no IO: each builder returns an :class:`ActionRequest` (name + ordered headers), the
connection manager (:mod:`ami_bridge.connection`) sends it and hands the reply back to the
matching ``parse_*`` function or to :func:`raise_for_error`.

Every shape here was checked against ``ami-transcripts/`` (files 03-10, 20, 22, 26, 29):

* Originate is **always** sent with ``Async: true``. Its immediate reply is only
  ``Originate successfully queued``; the outcome arrives later as ``Event: OriginateResponse``
  (routed to the call tracker, correlated by ``ActionID`` / ``ChannelId``).
* ``Variable:`` is repeated, one header per variable (as recorded).
* List actions (``CoreShowChannels``, ``PJSIPShowEndpoints``, ``PJSIPShowContacts``) reply
  ``EventList: start``, then item events, then ``<Name>Complete``.
* Errors: ``No such channel`` and ``Channel does not exist: <name>`` -> :class:`NoSuchChannel`;
  ``Permission denied`` -> :class:`PermissionDenied`; any error to Originate ->
  :class:`OriginateRejected`; anything else -> :class:`ActionFailed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ami_bridge import dialplan as dp
from ami_bridge.errors import (
    ActionFailed,
    InvalidAction,
    NoSuchChannel,
    OriginateRejected,
    PermissionDenied,
)
from ami_bridge.protocol import Message

__all__ = [
    "ActionRequest",
    "ChannelInfo",
    "ContactInfo",
    "EndpointInfo",
    "GetvarResult",
    "OriginateQueued",
    "OriginateRequest",
    "confbridge_kick",
    "confbridge_mute",
    "confbridge_unmute",
    "core_show_channels",
    "error_for",
    "getvar",
    "hangup",
    "originate",
    "parse_channels",
    "parse_contacts",
    "parse_endpoints",
    "parse_getvar",
    "ping",
    "pjsip_show_contacts",
    "pjsip_show_endpoints",
    "play_dtmf",
    "raise_for_error",
    "redirect",
    "setvar",
    "spy_agent",
    "spy_originate",
]

Headers = tuple[tuple[str, str], ...]

#: Design §6: ring at least 15 s. The builder does not enforce it (the lab uses 8 s); the
#: engine does, per campaign.
MIN_RING_TIMEOUT_MS = 15_000


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One action to send. ``list_complete`` names the event that ends a list action."""

    name: str
    headers: Headers = ()
    list_complete: str | None = None
    action_id: str | None = None
    #: Channel ids of an Originate (``ChannelId`` / ``OtherChannelId``), for the tracker.
    channel_id: str | None = None

    @property
    def is_list(self) -> bool:
        return self.list_complete is not None

    @property
    def is_originate(self) -> bool:
        return self.name.lower() == "originate"

    def with_action_id(self, action_id: str) -> ActionRequest:
        return ActionRequest(
            self.name, self.headers, self.list_complete, action_id, self.channel_id
        )


# --- builders ---------------------------------------------------------------------------------


def _text(value: str, what: str) -> str:
    if not value or "\r" in value or "\n" in value:
        raise InvalidAction(f"AMI {what} must be a non-empty single line: {value[:40]!r}")
    return value


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """An async Originate (design §4).

    Either ``context``/``exten``/``priority`` or ``application``/``data``. ``channel_id`` is the
    attempt id: it becomes the Uniqueid of the dialled channel (the ``;1`` leg of a Local
    channel), so every event of the call and the ``OriginateResponse`` carry it.
    """

    channel: str
    channel_id: str
    context: str | None = None
    exten: str | None = None
    priority: int = 1
    application: str | None = None
    data: str = ""
    other_channel_id: str | None = None
    timeout_ms: int = 30_000
    caller_id: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    account: str | None = None


def originate(req: OriginateRequest) -> ActionRequest:
    """Build an async Originate. Raises :class:`InvalidAction` on an impossible request."""
    has_dialplan = req.context is not None or req.exten is not None
    if has_dialplan == (req.application is not None):
        raise InvalidAction("Originate needs either context+exten or application, not both")
    if has_dialplan and not (req.context and req.exten):
        raise InvalidAction("Originate to the dialplan needs both context and exten")
    if req.timeout_ms <= 0:
        raise InvalidAction(f"Originate timeout must be > 0 ms, got {req.timeout_ms}")
    if req.priority < 1:
        raise InvalidAction(f"Originate priority must be >= 1, got {req.priority}")
    headers: list[tuple[str, str]] = [
        ("Channel", _text(req.channel, "Originate Channel")),
        ("ChannelId", _text(req.channel_id, "ChannelId")),
    ]
    if req.other_channel_id is not None:
        headers.append(("OtherChannelId", _text(req.other_channel_id, "OtherChannelId")))
    if req.application is not None:
        headers.append(("Application", _text(req.application, "Application")))
        if req.data:
            headers.append(("Data", req.data))
    else:
        assert req.context is not None and req.exten is not None
        headers += [
            ("Context", _text(req.context, "Context")),
            ("Exten", _text(req.exten, "Exten")),
            ("Priority", str(req.priority)),
        ]
    headers.append(("Timeout", str(req.timeout_ms)))
    if req.caller_id:
        headers.append(("CallerID", req.caller_id))
    if req.account:
        headers.append(("Account", req.account))
    for key, value in req.variables.items():
        if not key or "=" in key:
            raise InvalidAction(f"bad channel variable name {key!r}")
        headers.append(("Variable", f"{key}={value}"))
    # Always async: a sync Originate blocks the reply until answer and sends no
    # OriginateResponse (transcript 10); panoramisk also crashes without this header.
    headers.append(("Async", "true"))
    return ActionRequest("Originate", tuple(headers), channel_id=req.channel_id)


def spy_agent(agent_ext: str) -> str:
    """The agent extension for :data:`ami_bridge.dialplan.VAR_SPY_AGENT`: digits only (the
    dialplan keeps only digits, so anything else would spy on the wrong channel)."""
    ext = _text(agent_ext, "agent extension")
    if not ext.isdigit():
        raise InvalidAction(f"agent extension must be digits to be spied on, got {ext!r}")
    return ext


def spy_originate(
    supervisor_channel: str,
    agent_ext: str,
    mode: str,
    *,
    channel_id: str,
    caller_id: str | None = None,
    timeout_ms: int = 30_000,
) -> ActionRequest:
    """Ring the supervisor (``PJSIP/<ext>``); on answer, ChanSpy on agent ``agent_ext``.

    ``mode`` is ``listen`` / ``whisper`` / ``barge``: the ``marcador-spy`` context runs
    ``ChanSpy`` with the options in :data:`ami_bridge.dialplan.SPY_OPTIONS`.
    """
    return originate(
        OriginateRequest(
            channel=supervisor_channel,
            channel_id=channel_id,
            context=dp.CTX_SPY,
            exten=dp.spy_exten(mode),
            timeout_ms=timeout_ms,
            caller_id=caller_id,
            variables={dp.VAR_SPY_AGENT: spy_agent(agent_ext)},
        )
    )


def redirect(
    channel: str,
    context: str,
    exten: str,
    priority: int = 1,
    *,
    extra_channel: str | None = None,
    extra_context: str | None = None,
    extra_exten: str | None = None,
    extra_priority: int | None = None,
) -> ActionRequest:
    headers: list[tuple[str, str]] = [("Channel", _text(channel, "Channel"))]
    if extra_channel is not None:
        headers.append(("ExtraChannel", _text(extra_channel, "ExtraChannel")))
    headers += [
        ("Context", _text(context, "Context")),
        ("Exten", _text(exten, "Exten")),
        ("Priority", str(priority)),
    ]
    if extra_channel is not None:
        headers += [
            ("ExtraContext", _text(extra_context or context, "ExtraContext")),
            ("ExtraExten", _text(extra_exten or exten, "ExtraExten")),
            ("ExtraPriority", str(extra_priority or priority)),
        ]
    return ActionRequest("Redirect", tuple(headers))


def hangup(channel: str, cause: int | None = None) -> ActionRequest:
    """Hang up one channel (a ``/regex/`` channel makes it a list action: not supported here)."""
    if channel.startswith("/"):
        raise InvalidAction("Hangup with a /regex/ channel is not allowed from the dialer")
    headers: list[tuple[str, str]] = [("Channel", _text(channel, "Channel"))]
    if cause is not None:
        headers.append(("Cause", str(cause)))
    return ActionRequest("Hangup", tuple(headers))


def stop_mixmonitor(channel: str) -> ActionRequest:
    """Stop the recording on ``channel`` (the customer's leg): the file keeps what came before
    (transcript 22). The dialplan started it (``marcador-record``)."""
    return ActionRequest("StopMixMonitor", (("Channel", _text(channel, "Channel")),))


def getvar(variable: str, channel: str | None = None) -> ActionRequest:
    headers: list[tuple[str, str]] = []
    if channel is not None:
        headers.append(("Channel", _text(channel, "Channel")))
    headers.append(("Variable", _text(variable, "Variable")))
    return ActionRequest("Getvar", tuple(headers))


def setvar(variable: str, value: str, channel: str | None = None) -> ActionRequest:
    headers: list[tuple[str, str]] = []
    if channel is not None:
        headers.append(("Channel", _text(channel, "Channel")))
    headers += [("Variable", _text(variable, "Variable")), ("Value", value)]
    return ActionRequest("Setvar", tuple(headers))


def confbridge_kick(conference: str, channel: str) -> ActionRequest:
    """``channel`` may be ``all`` or ``participants`` (everyone but marked users)."""
    return ActionRequest(
        "ConfbridgeKick",
        (("Conference", _text(conference, "Conference")), ("Channel", _text(channel, "Channel"))),
    )


def confbridge_mute(conference: str, channel: str) -> ActionRequest:
    return ActionRequest(
        "ConfbridgeMute",
        (("Conference", _text(conference, "Conference")), ("Channel", _text(channel, "Channel"))),
    )


def confbridge_unmute(conference: str, channel: str) -> ActionRequest:
    return ActionRequest(
        "ConfbridgeUnmute",
        (("Conference", _text(conference, "Conference")), ("Channel", _text(channel, "Channel"))),
    )


def play_dtmf(channel: str, digit: str, duration_ms: int | None = None) -> ActionRequest:
    """Send one DTMF digit toward ``channel``'s far end (``Receive`` unset: played out)."""
    if len(digit) != 1 or digit.upper() not in "0123456789*#ABCD":
        raise InvalidAction(f"PlayDTMF takes one digit 0-9 * # A-D, not {digit[:8]!r}")
    headers: list[tuple[str, str]] = [("Channel", _text(channel, "Channel")), ("Digit", digit)]
    if duration_ms is not None:
        headers.append(("Duration", str(duration_ms)))
    return ActionRequest("PlayDTMF", tuple(headers))


def ping() -> ActionRequest:
    return ActionRequest("Ping")


def core_show_channels() -> ActionRequest:
    return ActionRequest("CoreShowChannels", list_complete="CoreShowChannelsComplete")


def pjsip_show_endpoints() -> ActionRequest:
    return ActionRequest("PJSIPShowEndpoints", list_complete="EndpointListComplete")


def pjsip_show_contacts() -> ActionRequest:
    return ActionRequest("PJSIPShowContacts", list_complete="ContactListComplete")


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OriginateQueued:
    """Asterisk accepted the Originate. The outcome follows as events (tracker)."""

    server: str
    action_id: str
    channel_id: str


@dataclass(frozen=True, slots=True)
class GetvarResult:
    variable: str
    value: str  # "" when unset (Asterisk sends an empty Value)


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One ``CoreShowChannel`` item."""

    channel: str
    uniqueid: str
    linkedid: str
    channel_state: int | None
    channel_state_desc: str
    context: str
    exten: str
    application: str
    application_data: str
    duration: str
    bridge_id: str
    caller_id_num: str


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One ``EndpointList`` item of ``PJSIPShowEndpoints``."""

    name: str
    aor: str
    contacts: tuple[str, ...]
    device_state: str  # "Not in use", "Unavailable", "In use"...
    active_channels: int | None

    @property
    def registered(self) -> bool:
        return bool(self.contacts)


@dataclass(frozen=True, slots=True)
class ContactInfo:
    """One ``ContactList`` item of ``PJSIPShowContacts``."""

    name: str
    endpoint: str
    uri: str
    status: str  # NonQualified, Reachable, Unreachable...
    user_agent: str
    roundtrip_usec: int | None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _items(messages: Sequence[Message], event: str) -> list[Message]:
    return [m for m in messages if m.get("Event") == event]


def parse_channels(messages: Sequence[Message]) -> list[ChannelInfo]:
    out: list[ChannelInfo] = []
    for m in _items(messages, "CoreShowChannel"):
        g = m.get
        out.append(
            ChannelInfo(
                channel=g("Channel", "") or "",
                uniqueid=g("Uniqueid", "") or "",
                linkedid=g("Linkedid", "") or "",
                channel_state=_int(g("ChannelState")),
                channel_state_desc=g("ChannelStateDesc", "") or "",
                context=g("Context", "") or "",
                exten=g("Exten", "") or "",
                application=g("Application", "") or "",
                application_data=g("ApplicationData", "") or "",
                duration=g("Duration", "") or "",
                bridge_id=g("BridgeId", "") or "",
                caller_id_num=g("CallerIDNum", "") or "",
            )
        )
    return out


def parse_endpoints(messages: Sequence[Message]) -> list[EndpointInfo]:
    out: list[EndpointInfo] = []
    for m in _items(messages, "EndpointList"):
        contacts = tuple(c for c in (m.get("Contacts", "") or "").split(",") if c.strip())
        out.append(
            EndpointInfo(
                name=m.get("ObjectName", "") or "",
                aor=m.get("Aor", "") or "",
                contacts=contacts,
                device_state=m.get("DeviceState", "") or "",
                active_channels=_int(m.get("ActiveChannels")),
            )
        )
    return out


def parse_contacts(messages: Sequence[Message]) -> list[ContactInfo]:
    out: list[ContactInfo] = []
    for m in _items(messages, "ContactList"):
        out.append(
            ContactInfo(
                name=m.get("ObjectName", "") or "",
                endpoint=m.get("Endpoint", "") or "",
                uri=m.get("Uri", "") or "",
                status=m.get("Status", "") or "",
                user_agent=m.get("UserAgent", "") or "",
                roundtrip_usec=_int(m.get("RoundtripUsec")),
            )
        )
    return out


def parse_getvar(message: Message) -> GetvarResult:
    return GetvarResult(message.get("Variable", "") or "", message.get("Value", "") or "")


# --- errors -----------------------------------------------------------------------------------


def error_for(action: str, message: Message) -> ActionFailed:
    """The typed error for a ``Response: Error`` reply to ``action``."""
    reason = message.get("Message", "") or ""
    low = reason.lower()
    action_id = message.action_id
    if "permission denied" in low:
        return PermissionDenied(action, reason, action_id=action_id)
    if low.startswith("no such channel") or low.startswith("channel does not exist"):
        return NoSuchChannel(action, reason, action_id=action_id)
    if action.lower() == "originate":
        return OriginateRejected(action, reason, action_id=action_id)
    return ActionFailed(action, reason, action_id=action_id)


def raise_for_error(action: str, message: Message) -> Message:
    """Return ``message`` if it is a success reply, else raise its typed error."""
    response = (message.get("Response") or "").lower()
    if response in ("success", "goodbye", "follows") or message.is_event:
        return message
    raise error_for(action, message)
