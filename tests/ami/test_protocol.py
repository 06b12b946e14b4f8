"""The sans-IO AMI codec: framing, banner, repeats, encodings and bad input."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ami_bridge.errors import (
    BadBanner,
    InvalidAction,
    InvalidEncoding,
    MalformedLine,
    MalformedMessage,
    MessageTooLarge,
    TruncatedMessage,
)
from ami_bridge.protocol import AMIParser, Banner, Message, parse_messages, serialize_action
from ami_bridge.transcripts import Transcript

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
PING = b"Response: Success\r\nActionID: p1\r\nPing: Pong\r\n\r\n"


def msgs(items: Sequence[object]) -> list[Message]:
    return [i for i in items if isinstance(i, Message)]


def test_banner_then_message() -> None:
    p = AMIParser()
    items = p.feed(BANNER + PING)
    assert items[0] == Banner("Asterisk Call Manager/11.0.0")
    assert isinstance(items[0], Banner) and items[0].version == "11.0.0"
    assert msgs(items) == [Message([("Response", "Success"), ("ActionID", "p1"), ("Ping", "Pong")])]
    assert p.buffered == 0


def test_banner_split_across_reads() -> None:
    p = AMIParser()
    assert p.feed(b"Asterisk Call Man") == []
    assert p.feed(b"ager/11.0.0\r") == []
    items = p.feed(b"\n" + PING[:10])
    assert items == [Banner("Asterisk Call Manager/11.0.0")]
    assert msgs(p.feed(PING[10:]))[0]["Ping"] == "Pong"


def test_bad_banner_is_reported_and_parsing_continues() -> None:
    items = AMIParser().feed(b"HELLO THERE\r\n" + PING)
    assert isinstance(items[0], BadBanner)
    assert msgs(items)[0].action_id == "p1"


def test_missing_banner_with_header_line_is_kept() -> None:
    items = AMIParser().feed(PING)
    assert isinstance(items[0], BadBanner)
    assert msgs(items)[0]["Ping"] == "Pong"


def test_repeated_headers_keep_order_and_first_wins() -> None:
    raw = b"Event: X\r\nVariable: A=1\r\nVariable: B=2\r\nvariable: C=3\r\n\r\n"
    (m,) = msgs(parse_messages(raw))
    assert m.getall("Variable") == ["A=1", "B=2", "C=3"]
    assert m["Variable"] == "A=1"
    assert m.headers[1:] == (("Variable", "A=1"), ("Variable", "B=2"), ("variable", "C=3"))
    assert m.get("VARIABLE") == "A=1"
    assert m.get("missing") is None and "missing" not in m
    with pytest.raises(KeyError):
        m["missing"]


def test_empty_values_and_colons_in_values() -> None:
    raw = b"Event: X\r\nAccountCode: \r\nAppData: a:b: c\r\nKey:nospace\r\n\r\n"
    (m,) = msgs(parse_messages(raw))
    assert m["AccountCode"] == ""
    assert m["AppData"] == "a:b: c"
    assert m["Key"] == "nospace"


@pytest.mark.parametrize("cut", range(1, 40))
def test_utf8_split_at_every_byte(cut: int) -> None:
    raw = "Event: Newchannel\r\nCallerIDName: José Peña Ñandú\r\n\r\n".encode()
    p = AMIParser(expect_banner=False)
    items = p.feed(raw[:cut]) + p.feed(raw[cut:])
    (m,) = msgs(items)
    assert m["CallerIDName"] == "José Peña Ñandú"
    assert not m.encoding_errors and len(items) == 1


def test_non_utf8_is_replaced_and_reported() -> None:
    raw = b"Event: X\r\nCallerIDName: Jos\xe9\r\n\r\n" + PING
    items = parse_messages(raw)
    assert isinstance(items[0], InvalidEncoding)
    m = msgs(items)
    assert m[0]["CallerIDName"] == "Jos\ufffd" and m[0].encoding_errors
    assert m[1]["Ping"] == "Pong" and not m[1].encoding_errors


def test_garbage_lines_are_dropped_and_reported() -> None:
    raw = b"Event: X\r\nthis line has no colon\r\nA: 1\r\n\r\n"
    items = parse_messages(raw)
    assert any(isinstance(i, MalformedLine) for i in items)
    (m,) = msgs(items)
    assert m.headers == (("Event", "X"), ("A", "1"))


def test_garbage_block_is_reported() -> None:
    items = parse_messages(b"\x00\x01 garbage\r\n\r\n" + PING)
    assert isinstance(items[0], MalformedMessage)
    assert msgs(items)[0]["Ping"] == "Pong"


def test_extra_blank_lines_between_messages_are_ignored() -> None:
    items = parse_messages(b"\r\n\r\n" + PING + b"\r\n" + PING)
    assert len(msgs(items)) == 2 and len(items) == 2


def test_truncated_message_at_eof() -> None:
    p = AMIParser(expect_banner=False)
    assert msgs(p.feed(PING + b"Event: Hangup\r\nChannel: x"))
    (err,) = p.feed_eof()
    assert isinstance(err, TruncatedMessage)
    assert p.feed_eof() == []


def test_one_megabyte_header_is_bounded_and_resynchronises() -> None:
    p = AMIParser(expect_banner=False, max_message_size=64 * 1024)
    big = b"Event: X\r\nJunk: " + b"A" * (1024 * 1024)
    items: list[object] = []
    for i in range(0, len(big), 8192):
        items += p.feed(big[i : i + 8192])
        assert p.buffered <= 64 * 1024 + 8192
    errors = [i for i in items if isinstance(i, MessageTooLarge)]
    assert len(errors) == 1 and errors[0].limit == 64 * 1024
    # the rest of the huge message, its end, then a good message
    tail = p.feed(b"AAAA\r\n\r") + p.feed(b"\n" + PING)
    assert msgs(tail)[0]["Ping"] == "Pong"


def test_oversized_complete_message_in_one_read() -> None:
    p = AMIParser(expect_banner=False, max_message_size=1024)
    items = p.feed(b"Event: X\r\nJunk: " + b"B" * 5000 + b"\r\n\r\n" + PING)
    assert isinstance(items[0], MessageTooLarge)
    assert msgs(items)[0]["Ping"] == "Pong"


def test_transcript_streams_parse_cleanly(transcripts: dict[str, Transcript]) -> None:
    for t in transcripts.values():
        for conn in t.connections:
            stream = t.received_stream(conn)
            items = parse_messages(stream, expect_banner=True)
            assert not [i for i in items if not isinstance(i, Message | Banner)], t.name
            n = sum(1 for r in t.received(conn) if not r.is_banner)
            assert len(msgs(items)) == n
            # round trip: re-encoding gives the same bytes
            banner = b"".join(r.data for r in t.received(conn) if r.is_banner)
            assert banner + b"".join(m.to_bytes() for m in msgs(items)) == stream


def test_serialize_action() -> None:
    data = serialize_action(
        "Originate",
        [("Channel", "Local/3001@customers"), ("Variable", "A=1"), ("Variable", "B=é")],
        action_id="o-1",
        variables={"C": "3"},
    )
    assert (
        data
        == (
            "Action: Originate\r\nActionID: o-1\r\nChannel: Local/3001@customers\r\n"
            "Variable: A=1\r\nVariable: B=é\r\nVariable: C=3\r\n\r\n"
        ).encode()
    )
    (m,) = msgs(parse_messages(data))
    assert m.getall("Variable") == ["A=1", "B=é", "C=3"]
    assert serialize_action("Ping", {"ActionID": "x"}) == b"Action: Ping\r\nActionID: x\r\n\r\n"


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("Ping\r\nAction: Originate", {}),
        ("Ping", {"CallerID": "x\r\nAction: Hangup"}),
        ("Ping", {"Bad:Key": "x"}),
        ("Ping", {"": "x"}),
        ("", {}),
    ],
)
def test_serialize_rejects_injection(name: str, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidAction):
        serialize_action(name, headers)


def test_serialize_rejects_bad_variable() -> None:
    with pytest.raises(InvalidAction):
        serialize_action("Originate", variables={"A=B": "1"})
    with pytest.raises(InvalidAction):
        serialize_action("Originate", variables={"A": "1\nB"})
