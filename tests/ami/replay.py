"""Replay a recorded transcript through parser -> typed events -> call tracker.

Shared by the transcript tests, the fuzz tests and (later) the simulator-parity suite: it drives
the tracker exactly as the connection manager will, from the transcript's own records.

* Every ``Action: Originate`` the client sent is tracked *before* later received bytes are fed,
  with call id = its ActionID, ``channel_id``/``other_channel_id`` from ``ChannelId`` /
  ``OtherChannelId``, and, when there is no ChannelId, ``match_variable=("LEAD_ID", ...)``.
  ``Context: preview`` with a numeric ``Exten`` is an agent-first preview dial.
* An ``Action: Hangup`` aimed at a tracked call's channel (either leg) marks it cancelled first.
* When a new TCP connection starts (a reconnect), the tracker is reconciled against an empty
  live-channel set (these recordings hold no CoreShowChannels after a restart).
* ``now`` is the transcript time; at the end the tracker is ticked far in the future, so that
  no call stays pending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ami_bridge.errors import AMIProtocolError
from ami_bridge.events import AMIEvent, to_event
from ami_bridge.protocol import AMIParser, Banner, Message, ParsedItem
from ami_bridge.tracker import CallEnded, CallTracker, TrackerOutput
from ami_bridge.transcripts import Record, Transcript

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@dataclass
class Replay:
    outputs: list[TrackerOutput] = field(default_factory=list)
    items: dict[str, list[ParsedItem]] = field(default_factory=dict)
    events: dict[str, list[AMIEvent]] = field(default_factory=dict)
    originates: list[str] = field(default_factory=list)

    @property
    def ended(self) -> dict[str, CallEnded]:
        return {o.call_id: o for o in self.outputs if isinstance(o, CallEnded)}

    def messages(self, connection: str = "A") -> list[Message]:
        return [i for i in self.items.get(connection, []) if isinstance(i, Message)]

    def errors(self) -> list[AMIProtocolError]:
        return [i for v in self.items.values() for i in v if isinstance(i, AMIProtocolError)]

    def banners(self) -> list[Banner]:
        return [i for v in self.items.values() for i in v if isinstance(i, Banner)]


def sent_message(record: Record) -> Message:
    items = AMIParser(expect_banner=False).feed(record.data)
    msgs = [i for i in items if isinstance(i, Message)]
    assert len(msgs) == 1, record
    return msgs[0]


def _base(channel: str) -> str:
    return channel[:-2] if channel.endswith((";1", ";2")) else channel


def track_originate(
    tracker: CallTracker, msg: Message, now: datetime, outputs: list[TrackerOutput] | None = None
) -> str:
    action_id = msg["ActionID"]
    channel_id = msg.get("ChannelId")
    match: tuple[str, str] | None = None
    if channel_id is None:
        for var in msg.getall("Variable"):
            key, _, value = var.partition("=")
            if key == "LEAD_ID":
                match = (key, value)
    preview = msg.get("Context") == "preview" and (msg.get("Exten") or "").isdigit()
    timeout_ms = int(msg.get("Timeout") or "30000")

    def _track() -> None:
        tracker.track(
            action_id,
            action_id=action_id,
            now=now,
            channel_id=channel_id,
            other_channel_id=msg.get("OtherChannelId"),
            match_variable=match,
            ring_timeout=timedelta(milliseconds=timeout_ms),
            preview=preview,
        )

    try:
        try:
            _track()
        except ValueError:
            # a call still waiting for late events (``late_event_grace``) holds the reused
            # LEAD_ID: the recordings reuse it for calls run one after the other, so let that
            # grace pass first (a dialer never reuses a match variable)
            ended = tracker.tick(now + tracker.config.late_event_grace)
            if outputs is not None:
                outputs += ended
            _track()
    except ValueError:
        # the same LEAD_ID is live twice (file 26: customer and agent legs); fall back to the
        # correlation by ActionID / OriginateResponse only
        tracker.track(
            action_id,
            action_id=action_id,
            now=now,
            ring_timeout=timedelta(milliseconds=timeout_ms),
            preview=preview,
        )
    return action_id


def replay(
    transcript: Transcript,
    *,
    tracker: CallTracker | None = None,
    chunker: Callable[[bytes], Iterable[bytes]] | None = None,
    event_filter: Callable[[list[tuple[datetime, AMIEvent]]], list[tuple[datetime, AMIEvent]]]
    | None = None,
) -> Replay:
    """Replay ``transcript``.

    ``chunker`` splits each received record into reads (parser fuzzing). ``event_filter``
    receives *all* received events at the end and may reorder them before they reach the
    tracker (tracker fuzzing); originates are then all tracked before any event is fed, so use
    it only on scenarios whose calls do not depend on ``cancel``/reused LEAD_IDs.
    """
    tr = tracker if tracker is not None else CallTracker()  # (an empty tracker is falsy)
    result = Replay()
    parsers: dict[str, AMIParser] = {}
    current: str | None = None
    pending: list[tuple[datetime, AMIEvent]] = []
    now = T0
    for rec in transcript.records:
        now = T0 + timedelta(seconds=rec.seconds)
        if rec.connection != current:
            if current is not None and rec.connection not in parsers:
                result.outputs += tr.reconcile(set(), now)
            current = rec.connection
        if rec.direction == "out":
            msg = sent_message(rec)
            action = (msg.get("Action") or "").lower()
            if action == "originate":
                result.originates.append(track_originate(tr, msg, now, result.outputs))
            elif action == "hangup":
                target = msg.get("Channel") or ""
                for call_id in tr.call_ids():
                    channel, _ = tr.channel_of(call_id)
                    if channel and _base(channel) == _base(target):
                        tr.cancel(call_id, now)
            continue
        parser = parsers.setdefault(rec.connection, AMIParser())
        chunks = chunker(rec.data) if chunker else (rec.data,)
        items = result.items.setdefault(rec.connection, [])
        events = result.events.setdefault(rec.connection, [])
        for chunk in chunks:
            for item in parser.feed(chunk):
                items.append(item)
                if isinstance(item, Message):
                    event = to_event(item)
                    events.append(event)
                    if event_filter is None:
                        result.outputs += tr.feed(event, now)
                    else:
                        pending.append((now, event))
    if event_filter is not None:
        for when, event in event_filter(pending):
            result.outputs += tr.feed(event, when)
    for conn, parser in parsers.items():
        result.items[conn] += parser.feed_eof()
    result.outputs += tr.tick(now + timedelta(hours=5))
    assert len(tr) == 0
    return result
