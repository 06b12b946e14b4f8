"""Calls cut by a PBX restart are recorded from evidence, not from their hangup causes.

During ``core restart now`` Asterisk sends ``SoftHangupRequest`` with Cause 4 (the shutdown
flag) for every leg before the Hangups, whose causes (16 or 0) look like a normal end
(transcript 24) or, for a call still ringing, like a nonexistent number (Cause 0 on both legs,
OriginateResponse Failure Reason 0: the sequence below was recorded on Asterisk 22.10.1).
"""

from __future__ import annotations

from datetime import timedelta

from ami_bridge.events import AMIEvent, to_event
from ami_bridge.protocol import AMIParser, Message
from ami_bridge.tracker import END_PBX_RESTART, CallEnded, CallTracker
from ami_bridge.transcripts import Transcript
from dialer.domain.outcomes import CallOutcome
from tests.ami.replay import T0, replay


def _ev(**headers: str) -> AMIEvent:
    raw = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    (msg,) = [
        m for m in AMIParser(expect_banner=False).feed(raw.encode()) if isinstance(m, Message)
    ]
    return to_event(msg)


def _chan(event: str, leg: str, uid: str, state: str = "5", **extra: str) -> AMIEvent:
    return _ev(
        Event=event,
        Channel=f"Local/3004@customers-00000004;{leg}",
        ChannelState=state,
        ChannelStateDesc="Ringing",
        Uniqueid=uid,
        Linkedid="ring1",
        **extra,
    )


def _ringing_call_cut(restart: bool) -> CallEnded:
    tracker = CallTracker()
    tracker.track("ring1", action_id="o-ring1", now=T0, channel_id="ring1")
    events = [
        _chan("Newchannel", "1", "ring1", "0"),
        _chan("Newchannel", "2", "ring1;2", "0"),
        _chan("Newstate", "2", "ring1;2", "5"),
    ]
    if restart:
        events += [
            _chan("SoftHangupRequest", "1", "ring1", Cause="4"),
            _chan("SoftHangupRequest", "2", "ring1;2", Cause="4"),
        ]
    events += [
        _chan("HangupRequest", "2", "ring1;2", Cause="0"),
        _chan("Hangup", "1", "ring1", Cause="0", Cause_txt="Unknown"),
        _ev(
            Event="OriginateResponse",
            ActionID="o-ring1",
            Response="Failure",
            Channel="Local/3004@customers",
            Reason="0",
            Uniqueid="ring1",
        ),
        _chan("Hangup", "2", "ring1;2", Cause="0", Cause_txt="Unknown"),
    ]
    out = []
    for i, e in enumerate(events):
        out += tracker.feed(e, T0 + timedelta(milliseconds=i))
    out += tracker.tick(T0 + timedelta(minutes=5))
    (ended,) = [o for o in out if isinstance(o, CallEnded)]
    return ended


def test_ringing_call_cut_by_a_restart_is_failed_not_a_bad_number() -> None:
    ended = _ringing_call_cut(restart=True)
    assert ended.outcome is CallOutcome.FAILED  # never counts against the limits
    assert ended.end_reason == END_PBX_RESTART
    assert ended.detail.startswith(END_PBX_RESTART)


def test_the_same_hangups_without_the_restart_evidence_still_read_as_before() -> None:
    ended = _ringing_call_cut(restart=False)
    assert ended.outcome is CallOutcome.INVALID_NUMBER
    assert ended.end_reason is None


def test_connected_call_cut_by_a_restart_stays_a_contact_with_its_end_reason(
    transcripts: dict[str, Transcript],
) -> None:
    ended = replay(transcripts["24"]).ended["orig-rs-1"]
    assert ended.outcome is CallOutcome.ANSWERED_CONNECTED
    assert ended.hangup_cause == 16  # indistinguishable from a normal end by its cause
    assert ended.end_reason == END_PBX_RESTART
    assert ended.detail.startswith(END_PBX_RESTART)


def test_shutdown_marks_calls_still_up() -> None:
    tracker = CallTracker()
    tracker.track("c1", action_id="o-c1", now=T0, channel_id="c1")
    tracker.feed(_ev(Event="Shutdown", Shutdown="Cleanly", Restart="True"), T0)
    (ended,) = tracker.reconcile(set(), T0 + timedelta(seconds=2))
    assert isinstance(ended, CallEnded)
    assert (ended.outcome, ended.end_reason) == (CallOutcome.FAILED, END_PBX_RESTART)
