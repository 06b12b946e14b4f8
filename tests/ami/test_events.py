"""Typed events: decoding of every recorded message, and robustness on bad input."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from ami_bridge.events import (
    BridgeEnter,
    ConfbridgeJoin,
    ConfbridgeStart,
    DialBegin,
    DialEnd,
    Hangup,
    Newchannel,
    OriginateResponse,
    Response,
    UnknownEvent,
    VarSet,
    to_event,
)
from ami_bridge.protocol import Message, parse_messages
from ami_bridge.transcripts import Transcript


def first(stream_events: Sequence[object], cls: type) -> object:
    return next(e for e in stream_events if isinstance(e, cls))


def all_events(transcripts: dict[str, Transcript]) -> list[object]:
    out: list[object] = []
    for t in transcripts.values():
        for conn in t.connections:
            for item in parse_messages(t.received_stream(conn), expect_banner=True):
                if isinstance(item, Message):
                    out.append(to_event(item))
    return out


def test_every_recorded_message_decodes(transcripts: dict[str, Transcript]) -> None:
    events = all_events(transcripts)
    assert len(events) > 2000
    names = {type(e).__name__ for e in events}
    for expected in (
        "Newchannel",
        "Newstate",
        "Hangup",
        "HangupRequest",
        "SoftHangupRequest",
        "VarSet",
        "Newexten",
        "BridgeEnter",
        "BridgeLeave",
        "ConfbridgeJoin",
        "ConfbridgeLeave",
        "ConfbridgeStart",
        "ConfbridgeEnd",
        "DialBegin",
        "DialEnd",
        "OriginateResponse",
        "FullyBooted",
        "Shutdown",
        "ContactStatus",
        "DeviceStateChange",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
        "ChannelHungup",
        "Response",
        "UnknownEvent",
    ):
        assert expected in names
    for e in events:
        assert dataclasses.is_dataclass(e) and not isinstance(e, type)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(e, dataclasses.fields(e)[0].name, None)


def test_field_values(transcripts: dict[str, Transcript]) -> None:
    events = [
        to_event(m)
        for m in parse_messages(transcripts["04"].received_stream(), expect_banner=True)
        if isinstance(m, Message)
    ]
    nc = first(events, Newchannel)
    assert isinstance(nc, Newchannel)
    assert nc.channel.endswith(";1") and nc.channel_state == 0 and nc.context == "customers"
    hangups = [e for e in events if isinstance(e, Hangup)]
    assert {h.cause for h in hangups} == {0, 17}
    assert any(h.cause_txt == "User busy" for h in hangups)
    var = first(events, VarSet)
    assert isinstance(var, VarSet) and var.variable == "CAMPAIGN" and var.value == "demo"
    begin = first(events, DialBegin)
    assert isinstance(begin, DialBegin) and begin.channel is None and begin.uniqueid is None
    end = first(events, DialEnd)
    assert isinstance(end, DialEnd) and end.dial_status == "BUSY"
    resp = first(events, OriginateResponse)
    assert isinstance(resp, OriginateResponse) and resp.action_id == "orig-3002"
    assert resp.channel == "Local/3002@customers" and resp.uniqueid is None


def test_confbridge_and_bridge_fields(transcripts: dict[str, Transcript]) -> None:
    events = [
        to_event(m)
        for m in parse_messages(transcripts["26"].received_stream(), expect_banner=True)
        if isinstance(m, Message)
    ]
    join = first(events, ConfbridgeJoin)
    assert isinstance(join, ConfbridgeJoin)
    assert join.conference == "dialer-conf" and not join.admin and not join.muted
    start = first(events, ConfbridgeStart)
    assert isinstance(start, ConfbridgeStart) and start.bridge_uniqueid == join.bridge_uniqueid
    enter = first(events, BridgeEnter)
    assert isinstance(enter, BridgeEnter) and enter.bridge_technology == "softmix"


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("Foo", "bar")],
        [("Event", "NoSuchEvent"), ("X", "y")],
        [("Event", "Hangup")],
        [("Event", "Hangup"), ("Cause", "not-a-number"), ("ChannelState", "")],
        [("Event", "OriginateResponse"), ("Reason", "x"), ("Uniqueid", "<unknown>")],
        [("Event", "newstate"), ("Uniqueid", "1.1"), ("ChannelState", "6")],
        [("Response", "Error"), ("Message", "Missing action in request")],
    ],
)
def test_malformed_and_unknown_never_raise(headers: list[tuple[str, str]]) -> None:
    event = to_event(Message(headers))
    assert dataclasses.is_dataclass(event)


def test_unknown_and_response_shapes() -> None:
    unknown = to_event(Message([("Event", "AgentConnect"), ("ActionID", "a")]))
    assert isinstance(unknown, UnknownEvent)
    assert unknown.name == "AgentConnect" and unknown.action_id == "a"
    resp = to_event(Message([("Response", "Error"), ("ActionID", "z"), ("Message", "nope")]))
    assert isinstance(resp, Response) and not resp.success and resp.message_text == "nope"
    bad = to_event(Message([("Event", "Hangup"), ("Cause", "x")]))
    assert isinstance(bad, Hangup) and bad.cause is None and bad.uniqueid == ""
    lower = to_event(Message([("Event", "newstate"), ("ChannelState", "6")]))
    assert getattr(lower, "is_up", False)
