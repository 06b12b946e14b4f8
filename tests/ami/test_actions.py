"""Pure tests of ami_bridge.actions: request shapes and the Response: Error mapping."""

from __future__ import annotations

import pytest

from ami_bridge import actions as act
from ami_bridge import dialplan as dp
from ami_bridge.errors import (
    ActionFailed,
    InvalidAction,
    NoSuchChannel,
    OriginateRejected,
    PermissionDenied,
)
from ami_bridge.protocol import Message, serialize_action


def _error(text: str) -> Message:
    return Message([("Response", "Error"), ("ActionID", "a-1"), ("Message", text)])


def test_originate_is_async_with_channel_id_and_repeated_variables() -> None:
    req = act.originate(
        act.OriginateRequest(
            channel="PJSIP/573001234567@trunk",
            channel_id="att-42",
            other_channel_id="att-42;2",
            context=dp.CTX_OUTBOUND,
            exten=dp.EXTEN_START,
            timeout_ms=20_000,
            caller_id='"Concesionario" <6087654321>',
            variables={dp.VAR_ATTEMPT: "42", dp.VAR_LEAD: "7"},
        )
    )
    h = list(req.headers)
    assert ("Async", "true") in h and ("ChannelId", "att-42") in h
    assert ("OtherChannelId", "att-42;2") in h and ("Timeout", "20000") in h
    assert [v for k, v in h if k == "Variable"] == ["MARCADOR_ATTEMPT=42", "MARCADOR_LEAD=7"]
    assert req.is_originate and not req.is_list and req.channel_id == "att-42"
    wire = serialize_action(req.name, req.headers, action_id="x").decode()
    assert wire.count("Variable: ") == 2 and wire.endswith("\r\n\r\n")


def test_originate_application_and_bad_requests() -> None:
    app = act.originate(
        act.OriginateRequest(channel="PJSIP/1001", channel_id="c", application="Wait", data="1")
    )
    assert ("Application", "Wait") in app.headers and (
        "Context",
        dp.CTX_OUTBOUND,
    ) not in app.headers
    with pytest.raises(InvalidAction):  # neither dialplan nor application
        act.originate(act.OriginateRequest(channel="PJSIP/1001", channel_id="c"))
    with pytest.raises(InvalidAction):  # both
        act.originate(
            act.OriginateRequest(
                channel="PJSIP/1001", channel_id="c", context="x", exten="s", application="Wait"
            )
        )
    with pytest.raises(InvalidAction):  # header injection through a value
        act.originate(
            act.OriginateRequest(
                channel="PJSIP/1\r\nAction: Hangup", channel_id="c", application="W"
            )
        )


def test_spy_redirect_hangup_and_lists() -> None:
    spy = act.spy_originate("PJSIP/2001", "1001", dp.SPY_WHISPER, channel_id="spy-1")
    assert ("Context", dp.CTX_SPY) in spy.headers and ("Exten", "whisper") in spy.headers
    assert ("Variable", f"{dp.VAR_SPY_AGENT}=1001") in spy.headers
    with pytest.raises(ValueError):
        act.spy_originate("PJSIP/2001", "1001", "shout", channel_id="spy-2")
    with pytest.raises(InvalidAction):  # the dialplan FILTERs digits: refuse anything else
        act.spy_originate("PJSIP/2001", "1001-x", dp.SPY_LISTEN, channel_id="spy-3")
    red = act.redirect("Local/x;1", dp.CTX_AGENT_ROOM, "1001", extra_channel="PJSIP/1001-1")
    assert ("ExtraChannel", "PJSIP/1001-1") in red.headers
    assert ("ExtraContext", dp.CTX_AGENT_ROOM) in red.headers
    assert ("Cause", "16") in act.hangup("PJSIP/x", 16).headers
    with pytest.raises(InvalidAction):
        act.hangup("/.*/")
    assert act.core_show_channels().list_complete == "CoreShowChannelsComplete"
    assert act.pjsip_show_endpoints().is_list and act.pjsip_show_contacts().is_list


@pytest.mark.parametrize(
    ("action", "text", "kind"),
    [
        ("Hangup", "No such channel", NoSuchChannel),
        ("Redirect", "Channel does not exist: Local/3012@customers-00000020;1", NoSuchChannel),
        ("Originate", "Permission denied", PermissionDenied),
        ("Originate", "Originate failed", OriginateRejected),
        ("Getvar", "No variable specified", ActionFailed),
    ],
)
def test_errors_map_to_typed_exceptions(action: str, text: str, kind: type[Exception]) -> None:
    err = act.error_for(action, _error(text))
    assert type(err) is kind and err.reason == text and err.action_id == "a-1"
    with pytest.raises(kind):
        act.raise_for_error(action, _error(text))
    ok = Message([("Response", "Success"), ("Variable", "X"), ("Value", "1")])
    assert act.raise_for_error(action, ok) is ok
    assert act.parse_getvar(ok) == act.GetvarResult("X", "1")
