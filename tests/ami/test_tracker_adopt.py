"""``CallTracker.adopt``: a restarted dialer follows a call it did not originate (issue 14, 4).

Checked by hand on Asterisk 22.10.1 (docs/reliability.md, "Restart evidence"): a customer
Redirected into ``agent-1001`` before the dialer was killed is listed by CoreShowChannels with
its Originate ChannelId as Uniqueid; adopted, its ``;1`` Hangup gives ANSWERED_CONNECTED.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ami_bridge.events import AMIEvent, to_event
from ami_bridge.protocol import Message
from ami_bridge.tracker import (
    CallAnswered,
    CallConnected,
    CallEnded,
    CallTracker,
    DuplicateCallError,
)
from dialer.domain.outcomes import CallOutcome

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def _hangup(uid: str, channel: str, cause: int = 16) -> AMIEvent:
    return to_event(
        Message(
            (
                ("Event", "Hangup"),
                ("Channel", channel),
                ("Uniqueid", uid),
                ("Linkedid", uid),
                ("Cause", str(cause)),
                ("Cause-txt", "Normal Clearing"),
            )
        )
    )


def test_adopted_connected_call_ends_answered_connected() -> None:
    tracker = CallTracker()
    out = tracker.adopt(
        "att-1",
        uniqueid="att-1",
        channel="Local/cust@lab-00000002;1",
        now=T0,
        answered_at=T0 - timedelta(seconds=30),
        conference="agent-1001",
        connected_at=T0 - timedelta(seconds=29),
    )
    assert [type(o) for o in out] == [CallAnswered, CallConnected]
    with pytest.raises(DuplicateCallError):
        tracker.adopt("att-1", uniqueid="att-1", channel="x", now=T0)
    ended = tracker.feed(_hangup("att-1", "Local/cust@lab-00000002;1"), T0 + timedelta(seconds=5))
    assert len(ended) == 1 and isinstance(ended[0], CallEnded)
    assert ended[0].outcome is CallOutcome.ANSWERED_CONNECTED
    assert ended[0].connected_at == T0 - timedelta(seconds=29)
    assert "att-1" not in tracker


def test_adopted_call_waiting_in_hold_that_hangs_up_is_abandoned() -> None:
    tracker = CallTracker()
    tracker.adopt("att-2", uniqueid="att-2", channel="PJSIP/trunk-1", now=T0, answered_at=T0)
    ended = tracker.feed(_hangup("att-2", "PJSIP/trunk-1"), T0 + timedelta(seconds=1))
    assert isinstance(ended[0], CallEnded) and ended[0].outcome is CallOutcome.ABANDONED


def test_adopted_ringing_call_ends_by_its_cause() -> None:
    tracker = CallTracker()
    tracker.adopt("att-3", uniqueid="att-3", channel="PJSIP/trunk-2", now=T0)
    ended = tracker.feed(_hangup("att-3", "PJSIP/trunk-2", cause=17), T0 + timedelta(seconds=1))
    assert isinstance(ended[0], CallEnded) and ended[0].outcome is CallOutcome.BUSY
