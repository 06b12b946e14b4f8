"""The connect decision waits for the dialplan's verdict (issue 14, defects 1, 2 and 8a).

The tracker reports ``CallAnswered`` on the bare answer and ``CallHeld`` only when the answered
leg reaches ``marcador-hold,s,1`` (its ``Newexten``): AMD passed or was off. Timings follow the
real Asterisk 22.10.1 recording 11 (AMD() on 3007 "human-like": ``Newstate Up`` at +4.021 s,
``AMDSTATUS=HUMAN`` / ``AMDCAUSE=HUMAN-800-800`` at +6.121 s, the next dialplan line at once).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ami_bridge import dialplan as dp
from ami_bridge.events import AMIEvent, Hangup, Newexten, Newstate, OriginateResponse, VarSet
from ami_bridge.tracker import (
    CallAbandoning,
    CallAnswered,
    CallEnded,
    CallHeld,
    CallTracker,
    TrackerConfig,
    TrackerOutput,
)
from ami_bridge.transcripts import Transcript
from dialer.domain.outcomes import CallOutcome
from tests.ami.replay import T0, replay

UID = "att-1"
CHAN = "PJSIP/trunk-00000001"


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def _chan(ctx: str = "", exten: str = "", state: int = 6) -> tuple[str, str, str, int, str, str]:
    return (CHAN, UID, UID, state, ctx, exten)


def newstate_up() -> Newstate:
    return Newstate(*_chan(), "Up")


def newexten(ctx: str, exten: str, prio: int, app: str, data: str = "") -> Newexten:
    return Newexten(*_chan(ctx, exten), exten, prio, app, data)


def varset(name: str, value: str, ctx: str = dp.CTX_OUTBOUND) -> VarSet:
    return VarSet(*_chan(ctx, dp.EXTEN_START), name, value)


def hangup(cause: int = 16, ctx: str = dp.CTX_OUTBOUND) -> Hangup:
    return Hangup(*_chan(ctx, dp.EXTEN_START), cause, "Normal Clearing")


def answered_response() -> OriginateResponse:
    return OriginateResponse("act-1", "Success", 4, CHAN, UID, dp.CTX_OUTBOUND, "s", "", "", "")


def _tracker() -> CallTracker:
    t = CallTracker()
    t.track("a1", action_id="act-1", channel_id=UID, now=T0)
    return t


def _feed(t: CallTracker, script: list[tuple[float, AMIEvent]]) -> list[TrackerOutput]:
    out: list[TrackerOutput] = []
    for s, ev in script:
        out += t.feed(ev, _at(s))
    return out


def _outbound_amd_start(t0: float) -> list[tuple[float, AMIEvent]]:
    return [
        (t0, newstate_up()),
        (t0, answered_response()),
        (t0, newexten(dp.CTX_OUTBOUND, "s", 1, "NoOp", "MARCADOR answered attempt=att-1")),
        (t0, newexten(dp.CTX_OUTBOUND, "s", 2, "GotoIf", "0?marcador-hold,s,1")),
        (t0, newexten(dp.CTX_OUTBOUND, "s", 3, "AMD")),
    ]


def test_human_is_held_only_after_the_amd_verdict() -> None:
    t = _tracker()
    out = _feed(t, _outbound_amd_start(4.021))
    assert [type(o) for o in out] == [CallAnswered]  # the bare answer: AMD is listening
    assert isinstance(out[0], CallAnswered) and out[0].at == _at(4.021)
    out = _feed(
        t,
        [
            (6.121, varset("AMDSTATUS", "HUMAN")),
            (6.121, varset("AMDCAUSE", "HUMAN-800-800")),
            (6.121, newexten(dp.CTX_OUTBOUND, "s", 4, "GotoIf", "1?marcador-hold,s,1")),
        ],
    )
    assert out == []
    out = _feed(t, [(6.122, newexten(dp.CTX_HOLD, "s", 1, "NoOp", "MARCADOR hold"))])
    assert out == [CallHeld("a1", _at(6.122), CHAN, UID)]
    # the Wait line and a second pass through hold do not repeat it
    assert _feed(t, [(6.122, newexten(dp.CTX_HOLD, "s", 2, "Wait", "2"))]) == []
    ended = _feed(t, [(20.0, hangup(16, dp.CTX_HOLD))])
    assert isinstance(ended[-1], CallEnded)
    assert ended[-1].held_at == _at(6.122)
    assert ended[-1].outcome is CallOutcome.ABANDONED  # held, never connected


def test_machine_is_never_held() -> None:
    t = _tracker()
    _feed(t, _outbound_amd_start(7.238))
    out = _feed(
        t,
        [
            (9.219, varset("AMDSTATUS", "MACHINE")),
            (9.219, varset("AMDCAUSE", "LONGGREETING-1500-1500")),
            (9.219, newexten(dp.CTX_OUTBOUND, "s", 4, "GotoIf", "0?marcador-hold,s,1")),
            (9.219, newexten(dp.CTX_OUTBOUND, "s", 5, "GotoIf", "0?leave-message,1")),
            (9.220, newexten(dp.CTX_OUTBOUND, "s", 6, "Hangup", "16")),
            (9.220, hangup(16)),
        ],
    )
    assert not any(isinstance(o, CallHeld) for o in out)
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert ended.outcome is CallOutcome.MACHINE and ended.held_at is None


def test_hangup_during_amd_is_early_hangup_not_abandoned() -> None:
    t = _tracker()
    _feed(t, _outbound_amd_start(0.0))
    out = _feed(
        t,
        [
            (1.2, varset("AMDSTATUS", "HANGUP")),
            (1.2, varset("AMDCAUSE", "HANGUP-1200")),
            (1.2, hangup(16)),
        ],
    )
    [ended] = [o for o in out if isinstance(o, CallEnded)]
    assert ended.outcome is CallOutcome.EARLY_HANGUP
    assert "during AMD (HANGUP)" in ended.detail
    assert not ended.outcome.is_live_answer  # not in the abandon-rate denominator
    assert ended.answered_at == _at(0.0) and ended.held_at is None


def test_hangup_during_amd_without_verdict_is_early_hangup() -> None:
    t = _tracker()
    _feed(t, _outbound_amd_start(0.0))
    [ended] = [o for o in _feed(t, [(0.5, hangup(16))]) if isinstance(o, CallEnded)]
    assert ended.outcome is CallOutcome.EARLY_HANGUP


def test_amd_off_is_held_at_once() -> None:
    t = _tracker()
    out = _feed(
        t,
        [
            (1.0, newstate_up()),
            (1.0, newexten(dp.CTX_OUTBOUND, "s", 1, "NoOp")),
            (1.0, newexten(dp.CTX_OUTBOUND, "s", 2, "GotoIf", "1?marcador-hold,s,1")),
            (1.001, newexten(dp.CTX_HOLD, "s", 1, "NoOp")),
        ],
    )
    assert [type(o) for o in out] == [CallAnswered, CallHeld]


def test_hold_before_the_answer_facts_still_answers_first() -> None:
    """OriginateResponse is not ordered against dialplan events (README): hold may come first."""
    t = _tracker()
    out = _feed(t, [(1.0, newexten(dp.CTX_HOLD, "s", 1, "NoOp"))])
    assert [type(o) for o in out] == [CallAnswered, CallHeld]
    assert _feed(t, [(1.0, answered_response()), (1.0, newstate_up())]) == []


def test_safe_harbor_signals_abandoning_once() -> None:
    t = _tracker()
    _feed(
        t,
        [
            (0.0, newstate_up()),
            (0.0, newexten(dp.CTX_OUTBOUND, "s", 1, "NoOp")),
            (0.0, newexten(dp.CTX_HOLD, "s", 1, "NoOp")),
        ],
    )
    out = _feed(
        t,
        [
            (2.0, newexten(dp.CTX_HOLD, "safe-harbor", 1, "Set", "MARCADOR_ABANDONED=1")),
            (2.0, varset(dp.VAR_ABANDONED, "1", dp.CTX_HOLD)),
        ],
    )
    assert out == [CallAbandoning("a1", _at(2.0))]
    # a Redirect that lost the race: agent-room sends it back to safe-harbor, Set runs again
    out = _feed(
        t,
        [
            (2.1, newexten(dp.CTX_AGENT_ROOM, "1001", 1, "NoOp")),
            (
                2.1,
                newexten(dp.CTX_AGENT_ROOM, "1001", 2, "GotoIf", "1?marcador-hold,safe-harbor,1"),
            ),
            (2.1, varset(dp.VAR_ABANDONED, "1", dp.CTX_HOLD)),
            (5.0, hangup(16, dp.CTX_HOLD)),
        ],
    )
    assert [type(o) for o in out] == [CallEnded]
    assert isinstance(out[0], CallEnded) and out[0].outcome is CallOutcome.ABANDONED


def test_preview_calls_are_never_held() -> None:
    t = CallTracker()
    t.track("p1", action_id="act-p", channel_id=UID, now=T0, preview=True)
    assert _feed(t, [(1.0, newexten(dp.CTX_HOLD, "s", 1, "NoOp"))]) == []


def test_recorded_hold_newexten_is_the_held_signal(transcripts: dict[str, Transcript]) -> None:
    """Recording 20 sends the answered 3012 leg to the lab context's ``hold`` line: with that
    location configured as the hold, the recorded Newexten yields CallHeld at its own time,
    after the bare answer."""
    cfg = TrackerConfig(hold_context="dialer", hold_exten="hold")
    result = replay(transcripts["20"], tracker=CallTracker(cfg))
    mine = [o for o in result.outputs if getattr(o, "call_id", None) == "orig-hold-1"]
    kinds = [type(o).__name__ for o in mine]
    assert kinds.index("CallAnswered") < kinds.index("CallHeld") < kinds.index("CallEnded")
    held = next(o for o in mine if isinstance(o, CallHeld))
    answered = next(o for o in mine if isinstance(o, CallAnswered))
    assert held.at >= answered.at and held.channel and held.channel.endswith(";1")
