"""Simulator parity with transcripts recorded on the real lab PBX (issue 14, "Simulator parity").

The transcripts in ``tests/fixtures/pbx-transcripts/`` were recorded by the real-PBX tier
(``tests/pbx/test_record_transcripts.py``, re-record with ``MARCADOR_RECORD_TRANSCRIPTS=<dir>``).
Each scenario here sends the recording's own ``Originate`` to the PBX simulator, records the
simulator's session with the same recorder (simulated seconds) and compares the shape that
matters: the key events in order (OriginateResponse, the AMD verdict before the hold's
``Newexten marcador-hold,s,1``), the legs' hang-up causes, the AMD duration (within
``AMD_TOLERANCE``), the tracker's outcome, and for ``core restart now``: ``Shutdown`` only on
the *other* session, the issuer only EOF, the live channel's causes.
No PBX needed: the real side is the committed text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ami_bridge.recorder import TranscriptRecorder
from ami_bridge.simulator import AmiTestClient, Message, SimulatorConfig, SimulatorServer, serve
from ami_bridge.tracker import CallTracker
from ami_bridge.transcripts import Record, Transcript, load_transcript, parse_transcript
from dialer.domain.outcomes import CallOutcome
from tests.ami.replay import replay

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pbx-transcripts"
SPEED = 10.0
#: simulated seconds: AMD verdict time, simulator vs the real PBX
AMD_TOLERANCE = 0.35


def _load(prefix: str) -> Transcript:
    (path,) = sorted(FIXTURES.glob(f"{prefix}-*.txt"))
    return load_transcript(path)


def _originates(t: Transcript, connection: str = "A") -> list[Record]:
    return [r for r in t.sent(connection) if r.header("Action") == "Originate"]


def _leg(uid: str | None) -> str:
    return ";2" if (uid or "").endswith(";2") else ";1"


def key_events(t: Transcript, connection: str = "A") -> list[tuple[str, ...]]:
    """The order that matters: response, answer, AMD verdict, hold entry, Shutdown."""
    out: list[tuple[str, ...]] = []
    for r in t.received(connection):
        ev = r.header("Event")
        if ev == "OriginateResponse":
            out.append((ev, r.header("Response") or "", r.header("Reason") or ""))
        elif ev == "VarSet" and r.header("Variable") == "AMDSTATUS":
            out.append((ev, "AMDSTATUS", r.header("Value") or ""))
        elif (
            ev == "Newexten"
            and r.header("Context") == "marcador-hold"
            and r.header("Priority") == "1"
            and _leg(r.header("Uniqueid")) == ";1"
        ):
            out.append((ev, "marcador-hold", r.header("Extension") or ""))
        elif ev == "Shutdown":
            out.append((ev,))
    return out


def hangup_causes(t: Transcript, connection: str = "A") -> list[tuple[str, str]]:
    return sorted(
        (_leg(r.header("Uniqueid")), r.header("Cause") or "")
        for r in t.received(connection)
        if r.header("Event") == "Hangup"
    )


def amd_seconds(t: Transcript, connection: str = "A") -> float | None:
    start: float | None = None
    for r in t.received(connection):
        ev = r.header("Event")
        if ev == "Newexten" and r.header("Application") == "AMD":
            start = r.seconds
        elif ev == "VarSet" and r.header("Variable") == "AMDSTATUS" and start is not None:
            return r.seconds - start
    return None


def _rendered(rec: TranscriptRecorder, name: str) -> Transcript:
    return parse_transcript(rec.render(), name)


async def _login(server: SimulatorServer, rec: TranscriptRecorder, tag: str) -> AmiTestClient:
    client = await AmiTestClient.connect("127.0.0.1", server.port)
    rec.attach(client, tag)
    resp = await client.login("dialer", "dialer-secret")
    assert resp.response == "Success"
    return client


def _hangup_of(uid: str) -> Callable[[Message], bool]:
    def pred(m: Message) -> bool:
        return m.event == "Hangup" and m.get("Uniqueid") == uid

    return pred


async def _simulate_call(recorded: Transcript, *, hang_up_at_hold: bool) -> Transcript:
    server = await serve("127.0.0.1", 0, SimulatorConfig(speed=SPEED))
    rec = TranscriptRecorder(f"sim-{recorded.name}", clock=server.clock.now)
    try:
        a = await _login(server, rec, "A")
        (orig,) = _originates(recorded)
        uid = orig.header("ChannelId") or ""
        a.send_raw(orig.data)
        if hang_up_at_hold:
            held = await a.wait_for(
                lambda m: m.event == "Newexten" and m.get("Context") == "marcador-hold", 30
            )
            a.send("Hangup", ("Channel", held.get("Channel") or ""), ("Cause", "16"))
        for leg in (uid, f"{uid};2"):
            await a.wait_for(_hangup_of(leg), 30)
        await a.close()
    finally:
        await server.close()
    return _rendered(rec, f"sim-{recorded.name}")


def _outcome(t: Transcript) -> CallOutcome:
    (ended,) = replay(t, tracker=CallTracker()).ended.values()
    return ended.outcome


@pytest.mark.parametrize(
    ("prefix", "hang_up_at_hold", "outcome"),
    [
        ("01", True, CallOutcome.ABANDONED),  # the dialer dropped it while held
        ("02", False, CallOutcome.MACHINE),
        ("03", False, CallOutcome.EARLY_HANGUP),
    ],
)
async def test_amd_scenarios_match_the_real_pbx(
    prefix: str, hang_up_at_hold: bool, outcome: CallOutcome
) -> None:
    real = _load(prefix)
    sim = await _simulate_call(real, hang_up_at_hold=hang_up_at_hold)
    assert key_events(sim) == key_events(real)
    assert hangup_causes(sim) == hangup_causes(real)
    real_amd, sim_amd = amd_seconds(real), amd_seconds(sim)
    assert real_amd is not None and sim_amd is not None
    assert abs(sim_amd - real_amd) <= AMD_TOLERANCE, (sim_amd, real_amd)
    assert _outcome(real) == _outcome(sim) == outcome


def test_human_verdict_precedes_the_hold() -> None:
    keys = key_events(_load("01"))
    assert keys.index(("VarSet", "AMDSTATUS", "HUMAN")) < keys.index(
        ("Newexten", "marcador-hold", "s")
    )


async def test_unallocated_burst_matches_the_real_pbx() -> None:
    real = _load("04")
    server = await serve("127.0.0.1", 0, SimulatorConfig(speed=SPEED))
    rec = TranscriptRecorder("sim-04", clock=server.clock.now)
    try:
        a = await _login(server, rec, "A")
        origs = _originates(real)
        for o in origs:
            a.send_raw(o.data)
        for o in origs:
            uid = o.header("ChannelId") or ""
            for leg in (uid, f"{uid};2"):
                await a.wait_for(_hangup_of(leg), 30)
            await a.event("OriginateResponse", within=30, ActionID=o.header("ActionID") or "")
        await a.close()
    finally:
        await server.close()
    sim = _rendered(rec, "sim-04")
    assert hangup_causes(sim) == hangup_causes(real)
    for t in (real, sim):
        ended = replay(t).ended
        assert len(ended) == len(origs)
        assert {e.outcome for e in ended.values()} == {CallOutcome.INVALID_NUMBER}
        assert {e.hangup_cause for e in ended.values()} == {1}


async def test_core_restart_matches_the_real_pbx() -> None:
    real = _load("05")
    server = await serve("127.0.0.1", 0, SimulatorConfig(speed=SPEED, restart_refuse_seconds=1))
    rec = TranscriptRecorder("sim-05", clock=server.clock.now)
    try:
        a = await _login(server, rec, "A")
        b = await _login(server, rec, "B")
        (orig,) = _originates(real)
        uid = orig.header("ChannelId") or ""
        a.send_raw(orig.data)
        await b.wait_for(
            lambda m: m.event == "Newexten" and m.get("Context") == "marcador-hold", 30
        )
        a.send("Command", ("Command", "core restart now"))
        await b.event("Shutdown", within=30)
        await a.wait_eof(30)
        await b.wait_eof(30)
        await a.close()
        await b.close()
    finally:
        await server.close()
    sim = _rendered(rec, "sim-05")
    for t in (real, sim):
        assert ("Shutdown",) in key_events(t, "B")
        assert ("Shutdown",) not in key_events(t, "A")
        # the issuer sees nothing of the shutdown: no Response, no hang-up events, only EOF
        command_at = next(r.seconds for r in t.sent("A") if r.header("Action") == "Command")
        after = [r for r in t.received("A") if r.seconds > command_at]
        assert not [r for r in after if r.header("Event") in ("Hangup", "SoftHangupRequest")]
        soft = {
            (_leg(r.header("Uniqueid")), r.header("Cause"))
            for r in t.received("B")
            if r.header("Event") == "SoftHangupRequest"
        }
        assert {(";1", "4"), (";2", "4")} <= soft
        hangups = [
            (_leg(r.header("Uniqueid")), r.header("Cause"))
            for r in t.received("B")
            if r.header("Event") == "Hangup" and (r.header("Uniqueid") or "").startswith(uid)
        ]
        assert sorted(hangups) == [(";1", "0"), (";2", "0")], (t.name, hangups)
        last_hangup = max(r.seconds for r in t.received("B") if r.header("Event") == "Hangup")
        shutdown = next(r.seconds for r in t.received("B") if r.header("Event") == "Shutdown")
        assert abs((shutdown - last_hangup) - 1.1) <= AMD_TOLERANCE, (t.name, shutdown)
