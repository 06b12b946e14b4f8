"""Every recorded AMI session, replayed through parser -> typed events -> call tracker.

The expected outcomes follow ami-transcripts/README.md and design.md §5: an answered call that
never reached an agent is ABANDONED (live answer without agent), AMD MACHINE is MACHINE, a call
bridged with an agent (queue, Dial, ConfBridge) is ANSWERED_CONNECTED.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ami_bridge.events import (
    ContactStatus,
    CoreShowChannel,
    CoreShowChannelsComplete,
    DeviceStateChange,
    FullyBooted,
    Hangup,
    OriginateResponse,
    Response,
    Shutdown,
    UnknownEvent,
)
from ami_bridge.transcripts import Transcript
from dialer.domain.outcomes import CallOutcome
from tests.ami.replay import T0, replay

O = CallOutcome  # noqa: E741

EXPECTED: dict[str, dict[str, CallOutcome]] = {
    "03": {"orig-3001": O.ABANDONED},
    "04": {"orig-3002": O.BUSY, "orig-3002-b": O.BUSY},
    "05": {"orig-3003": O.CONGESTION},
    "06": {"orig-3004": O.NO_ANSWER},
    "07": {
        "orig-3999": O.INVALID_NUMBER,
        "orig-pjsip-9999": O.FAILED,
        "orig-pjsip-1003": O.FAILED,
        "orig-badctx": O.INVALID_NUMBER,
    },
    "08": {"orig-3005": O.ABANDONED},
    "09": {"orig-3010": O.REJECTED, "orig-3011": O.INVALID_NUMBER},
    "10": {
        "orig-sync-3002": O.BUSY,
        "orig-sync-3009": O.ABANDONED,
        "orig-app-3001": O.ABANDONED,
    },
    "11": {"orig-amd-3006": O.MACHINE, "orig-amd-3007": O.ABANDONED, "orig-amd-3008": O.MACHINE},
    "12": {"orig-q-1": O.ANSWERED_CONNECTED},
    "13": {"orig-q-2": O.ANSWERED_CONNECTED},
    "14": {"orig-q-3": O.ABANDONED},
    "15": {"orig-q-4": O.ABANDONED},
    "16": {"orig-q-5": O.ABANDONED},
    "17": {"orig-d-1": O.ANSWERED_CONNECTED},
    "18": {"orig-d-2": O.ABANDONED, "orig-d-3": O.ABANDONED, "orig-d-4": O.ABANDONED},
    "19": {"orig-p-1": O.ANSWERED_CONNECTED, "orig-p-2": O.BUSY},
    "20": {"orig-hold-1": O.ABANDONED},
    "22": {"orig-cc-1": O.ANSWERED_CONNECTED},
    "24": {"orig-rs-1": O.ANSWERED_CONNECTED},
    "25": {"orig-kill-1": O.ABANDONED},
    "26": {"orig-cf-1": O.ANSWERED_CONNECTED, "orig-cf-2": O.ANSWERED_CONNECTED},
    "27": {
        "burst-1": O.ANSWERED_CONNECTED,
        "burst-2": O.BUSY,
        "burst-3": O.NO_ANSWER,
        "burst-4": O.CONGESTION,
    },
    "29": {"orig-cancel-1": O.CANCELLED, "orig-cancel-2": O.CANCELLED, "orig-sip-busy": O.BUSY},
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_originate_outcomes(transcripts: dict[str, Transcript], key: str) -> None:
    result = replay(transcripts[key])
    got = {call_id: ended.outcome for call_id, ended in result.ended.items()}
    assert got == EXPECTED[key]
    assert not result.errors()
    for ended in result.ended.values():
        assert ended.ended_at >= ended.started_at
        if ended.outcome.is_live_answer or ended.outcome is O.MACHINE:
            assert ended.answered_at is not None
        if ended.outcome is O.ANSWERED_CONNECTED:
            assert ended.connected_at is not None


def test_busy_uses_the_second_leg_cause(transcripts: dict[str, Transcript]) -> None:
    ended = replay(transcripts["04"]).ended
    assert ended["orig-3002-b"].hangup_cause == 17
    assert ended["orig-3002-b"].uniqueid == "lead-124-a"
    assert ended["orig-3002-b"].originate_reason == 5


def test_sip_486_is_busy_although_reason_is_0(transcripts: dict[str, Transcript]) -> None:
    ended = replay(transcripts["29"]).ended["orig-sip-busy"]
    assert (ended.originate_reason, ended.hangup_cause) == (0, 17)


def test_no_answer_timeout_times(transcripts: dict[str, Transcript]) -> None:
    ended = replay(transcripts["06"]).ended["orig-3004"]
    assert ended.ringing_at is not None and ended.answered_at is None
    assert ended.ended_at - ended.started_at > timedelta(seconds=8)


def test_amd_fields(transcripts: dict[str, Transcript]) -> None:
    ended = replay(transcripts["11"]).ended
    assert ended["orig-amd-3006"].amd_cause == "INITIALSILENCE-2500-2500"
    assert ended["orig-amd-3007"].amd_status == "HUMAN"
    assert ended["orig-amd-3008"].amd_cause == "LONGGREETING-1500-1500"


def test_queue_connect_records_agent(transcripts: dict[str, Transcript]) -> None:
    ended = replay(transcripts["12"]).ended["orig-q-1"]
    assert ended.answered_at is not None and ended.connected_at is not None
    assert ended.connected_at > ended.answered_at
    assert ended.hangup_cause == 16


def test_preview_outcome_comes_from_the_customer_dial(transcripts: dict[str, Transcript]) -> None:
    ended = replay(transcripts["19"]).ended
    assert ended["orig-p-2"].dial_status == "BUSY"
    assert ended["orig-p-1"].connected_at is not None


def test_kill_is_resolved_by_reconcile(transcripts: dict[str, Transcript]) -> None:
    t = transcripts["25"]
    assert t.eof_connections[0] == "A"
    ended = replay(t).ended["orig-kill-1"]
    assert "PBX outage" in ended.detail
    assert ended.answered_at is not None


def test_events_off_leaves_call_to_the_stuck_timeout(transcripts: dict[str, Transcript]) -> None:
    # file 23: with `Events: off` no OriginateResponse arrives; the tracker must not hang
    result = replay(transcripts["23"])
    assert result.ended["orig-ev-1"].outcome is O.FAILED
    assert "stuck" in result.ended["orig-ev-1"].detail
    assert {"orig-ev-2", "orig-ev-3"} <= set(result.ended)
    ev_on = [e for e in result.events["A"] if isinstance(e, Response)]
    assert any((e.message.get("Events") or "") == "On" for e in ev_on)


def test_01_login_ping_logoff(transcripts: dict[str, Transcript]) -> None:
    result = replay(transcripts["01"])
    assert [b.version for b in result.banners()] == ["11.0.0"]
    events = result.events["A"]
    assert isinstance(events[0], Response) and events[0].message_text == "Authentication accepted"
    assert isinstance(events[1], FullyBooted) and events[1].uptime == 191
    pings = [e for e in events if isinstance(e, Response) and e.message.get("Ping") == "Pong"]
    assert [p.action_id for p in pings] == ["ping-1", "ping-001", None]
    assert isinstance(events[-1], Response) and events[-1].response == "Goodbye"
    assert transcripts["01"].eof_connections == ("A",)


def test_02_login_failures(transcripts: dict[str, Transcript]) -> None:
    t = transcripts["02"]
    result = replay(t)
    responses = [e for evs in result.events.values() for e in evs if isinstance(e, Response)]
    failed = [r for r in responses if r.message_text == "Authentication failed"]
    assert len(failed) >= 2 and all(not r.success for r in failed)
    denied = [r for r in responses if r.message_text == "Permission denied"]
    assert any(r.action_id == "orig-monitor" for r in denied)
    assert result.ended["orig-before-login"].outcome is O.FAILED
    assert "Permission denied" in result.ended["orig-monitor"].detail
    assert {"A", "B"} <= set(t.eof_connections)


def test_20_list_actions(transcripts: dict[str, Transcript]) -> None:
    events = replay(transcripts["20"]).events["A"]
    starts = [e for e in events if isinstance(e, Response) and e.is_list_start]
    assert starts and all(e.event_list == "start" for e in starts)
    completes = [e for e in events if isinstance(e, CoreShowChannelsComplete)]
    items = [e for e in events if isinstance(e, CoreShowChannel)]
    assert [c.list_items for c in completes].count(0) >= 1
    assert sum(c.list_items or 0 for c in completes) == len(items)
    assert all(i.action_id for i in items)
    hung = [e for e in events if type(e).__name__ == "ChannelHungup"]
    assert hung and all(getattr(h, "action_id", None) for h in hung)
    unknown_action = [
        e
        for e in events
        if isinstance(e, Response) and not e.success and "Invalid/unknown" in (e.message_text or "")
    ]
    assert unknown_action


def test_21_queue_member_actions(transcripts: dict[str, Transcript]) -> None:
    events = replay(transcripts["21"]).events["A"]
    texts = [e.message_text for e in events if isinstance(e, Response)]
    assert "Member not dynamic" in " ".join(t or "" for t in texts)
    assert any(isinstance(e, UnknownEvent) and e.name == "QueueMemberAdded" for e in events)


def test_24_graceful_restart(transcripts: dict[str, Transcript]) -> None:
    t = transcripts["24"]
    result = replay(t)
    events_a = result.events["A"]
    shutdown = [e for e in events_a if isinstance(e, Shutdown)]
    assert shutdown == [Shutdown("Cleanly", True)]
    assert events_a.index(shutdown[0]) > max(
        i for i, e in enumerate(events_a) if isinstance(e, Hangup)
    )
    assert "A" in t.eof_connections
    booted = [e for e in result.events["B"] if isinstance(e, FullyBooted)]
    assert booted and booted[0].uptime == 0
    assert any(isinstance(e, ContactStatus) for e in result.events["B"])


def test_28_registration_events(transcripts: dict[str, Transcript]) -> None:
    events = replay(transcripts["28"]).events["A"]
    statuses = [e.contact_status for e in events if isinstance(e, ContactStatus)]
    assert "Removed" in statuses
    assert any(isinstance(e, DeviceStateChange) and e.state == "UNAVAILABLE" for e in events)


def test_every_transcript_is_covered(transcripts: dict[str, Transcript]) -> None:
    covered = set(EXPECTED) | {"01", "02", "20", "21", "23", "24", "25", "28"}
    assert covered == set(transcripts)
    # and every Originate the client sent in those files has an expected outcome
    for key, outcomes in EXPECTED.items():
        assert set(replay(transcripts[key]).originates) == set(outcomes), key


def test_originate_response_uniqueid_unknown_is_none(transcripts: dict[str, Transcript]) -> None:
    events = replay(transcripts["04"]).events["A"]
    responses = [e for e in events if isinstance(e, OriginateResponse)]
    assert [r.uniqueid for r in responses] == [None, "lead-124-a"]
    assert all(not r.success and r.reason == 5 for r in responses)
    assert T0.tzinfo is not None
