"""A fast failure whose cause arrives after the OriginateResponse (issue 14, chaos defect).

Recorded on the lab PBX (``tests/fixtures/pbx-transcripts/04-unallocated-burst.txt``, 12
concurrent originates to unallocated numbers, each ``Hangup(1)`` before answer): the
``OriginateResponse`` Failure of ``unalloc-1-5`` arrives *before* the call's ``Newchannel``, so
the tracker once resolved it at once as ``failed`` ("no channel created") instead of waiting for
the Hangup with Cause 1 (``invalid_number``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ami_bridge.events import AMIEvent, Hangup, Newchannel, OriginateResponse
from ami_bridge.tracker import CallEnded, CallTracker, TrackerConfig
from ami_bridge.transcripts import load_transcript
from dialer.domain.outcomes import CallOutcome
from tests.ami.replay import T0, replay

BURST = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "pbx-transcripts"
    / "04-unallocated-burst.txt"
)


def _response_before_channel(events: list[AMIEvent]) -> set[str]:
    seen: set[str] = set()
    early: set[str] = set()
    for ev in events:
        if isinstance(ev, Newchannel):
            seen.add(ev.uniqueid)
        elif isinstance(ev, OriginateResponse) and ev.action_id:
            call = ev.action_id.removeprefix("orig-")
            if call not in seen:
                early.add(call)
    return early


def test_recording_shows_the_race() -> None:
    rp = replay(load_transcript(BURST))
    assert _response_before_channel(rp.events["A"]), "the fixture must hold the late order"


def test_recorded_burst_is_all_invalid_number() -> None:
    rp = replay(load_transcript(BURST))
    assert len(rp.ended) == 12
    for call_id, ended in rp.ended.items():
        assert ended.outcome is CallOutcome.INVALID_NUMBER, (call_id, ended.detail)
        assert ended.hangup_cause == 1


def _response_first(pending: list[tuple[object, AMIEvent]]) -> list[tuple[object, AMIEvent]]:
    """Every OriginateResponse moved before all the other events (worst case of the race)."""
    first = [p for p in pending if isinstance(p[1], OriginateResponse)]
    return first + [p for p in pending if not isinstance(p[1], OriginateResponse)]


def _response_last(pending: list[tuple[object, AMIEvent]]) -> list[tuple[object, AMIEvent]]:
    rest = [p for p in pending if not isinstance(p[1], OriginateResponse)]
    return rest + [p for p in pending if isinstance(p[1], OriginateResponse)]


def test_any_order_of_response_and_legs_gives_invalid_number() -> None:
    for order in (_response_first, _response_last):
        rp = replay(load_transcript(BURST), event_filter=order)  # type: ignore[arg-type]
        outcomes = {e.outcome for e in rp.ended.values()}
        assert outcomes == {CallOutcome.INVALID_NUMBER}, (order.__name__, rp.ended)


def test_failure_without_any_channel_still_ends_failed_after_the_grace() -> None:
    """An unknown endpoint: no channel ever comes. The call still ends FAILED, once the short
    late-event grace is over (not at the response, not after the whole ring timeout)."""
    cfg = TrackerConfig()
    tr = CallTracker(cfg)
    tr.track("c1", action_id="orig-c1", now=T0, channel_id="c1")
    resp = OriginateResponse(
        "orig-c1", "Failure", 0, "PJSIP/nobody", None, "marcador-outbound", "s", "", "", ""
    )
    assert tr.feed(resp, T0) == []  # its Newchannel/Hangup may still be on the way
    assert tr.tick(T0 + cfg.late_event_grace - timedelta(milliseconds=1)) == []
    (ended,) = tr.tick(T0 + cfg.late_event_grace)
    assert isinstance(ended, CallEnded)
    assert ended.outcome is CallOutcome.FAILED
    assert ended.detail.startswith("no channel created"), ended.detail


def test_late_legs_after_an_early_response_decide_the_outcome() -> None:
    """Response first, then the legs: the cause on the late Hangup decides (here 21)."""
    tr = CallTracker()
    tr.track("c2", action_id="orig-c2", now=T0, channel_id="c2")
    resp = OriginateResponse(
        "orig-c2", "Failure", 0, "Local/x@pstn", None, "marcador-outbound", "s", "", "", ""
    )
    assert tr.feed(resp, T0) == []
    t = T0 + timedelta(milliseconds=3)
    out: list[object] = []
    for uid, name in (("c2", "Local/x@pstn-1;1"), ("c2;2", "Local/x@pstn-1;2")):
        out += tr.feed(_newchannel(uid, name), t)
    for uid, name in (("c2;2", "Local/x@pstn-1;2"), ("c2", "Local/x@pstn-1;1")):
        out += tr.feed(_hangup(uid, name, 21), t)
    (ended,) = out
    assert isinstance(ended, CallEnded)
    assert ended.outcome is CallOutcome.REJECTED


def _newchannel(uid: str, name: str) -> Newchannel:
    return Newchannel(name, uid, "c2", 0, "pstn", "x", "", "")


def _hangup(uid: str, name: str, cause: int) -> Hangup:
    return Hangup(name, uid, "c2", 0, "pstn", "x", cause, "")
