"""Record the simulator-parity transcripts on the real lab PBX (issue 14, "Simulator parity").

Each test drives one scenario over AMI, checks what the parity suite relies on, and renders the
session with :class:`ami_bridge.recorder.TranscriptRecorder` (filtered with
``recorder.default_keep``, secrets and the lab's paths redacted). The rendering goes to a
temporary directory, so the committed fixtures (``tests/fixtures/pbx-transcripts/``) are never
rewritten by default; set ``MARCADOR_RECORD_TRANSCRIPTS=<dir>`` to write them there instead (then
review and copy what should be committed).

Scenarios (lab numbers by last digit, ``dialer/lab_pstn.py``): a human with AMD on reaching
``marcador-hold``; an answering machine; a customer hanging up during AMD; a burst of
unallocated numbers (cause 1, the tracker race of issue 14's chaos run); ``core restart now``
seen from a second AMI session with a live channel.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ami_bridge.recorder import TranscriptRecorder
from ami_bridge.simulator import AmiTestClient, Message
from dialer.lab_pstn import PSTN_CONTEXT, lab_number
from dialer.pbx_lab import LabPbx

RECORD_ENV = "MARCADOR_RECORD_TRANSCRIPTS"


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    target = os.environ.get(RECORD_ENV)
    d = Path(target) if target else tmp_path
    d.mkdir(parents=True, exist_ok=True)
    return d


async def _session(lab: LabPbx, rec: TranscriptRecorder, tag: str) -> AmiTestClient:
    admin = lab.admin
    client = await AmiTestClient.connect(admin.host, admin.port)
    rec.attach(client, tag)
    assert (await client.login(admin.username, admin.secret)).response == "Success"
    return client


def _originate(client: AmiTestClient, number: str, attempt: str, *, amd: str = "hangup") -> str:
    return client.send(
        "Originate",
        ("Channel", f"Local/{number}@{PSTN_CONTEXT}"),
        ("Context", "marcador-outbound"),
        ("Exten", "s"),
        ("Priority", "1"),
        ("Timeout", "20000"),
        ("CallerID", '"Marcador" <6015550100>'),
        ("ChannelId", f"{attempt}"),
        ("OtherChannelId", f"{attempt};2"),
        ("Variable", f"MARCADOR_ATTEMPT={attempt}"),
        ("Variable", f"MARCADOR_AMD={amd}"),
        ("Variable", "MARCADOR_CONNECT_TIMEOUT=1"),
        ("Async", "true"),
        action_id=f"orig-{attempt}",
    )


def _write(rec: TranscriptRecorder, lab: LabPbx, path: Path) -> str:
    text = rec.render(redact=(str(lab.run_dir), lab.secrets.ami, lab.secrets.admin))
    path.write_text(text, encoding="utf-8")
    return text


def _event(name: str, **match: str) -> Callable[[Message], bool]:
    def pred(m: Message) -> bool:
        return m.event == name and all(m.get(k) == v for k, v in match.items())

    return pred


def _index(msgs: list[Message], pred: Callable[[Message], bool]) -> int:
    for i, m in enumerate(msgs):
        if pred(m):
            return i
    raise AssertionError("no such message")


async def test_record_amd_human_reaches_hold(lab_pbx: LabPbx, out_dir: Path) -> None:
    rec = TranscriptRecorder(
        "AMD on, a human answers (lab digit 6): AMDSTATUS=HUMAN, then marcador-hold s 1",
        [
            "Originate Local/<number ending 6>@marcador-lab-pstn -> marcador-outbound,s,1,",
            "MARCADOR_AMD=hangup; the client hangs the ;1 leg up once it reached the hold.",
        ],
        clock=time.monotonic,
    )
    a = await _session(lab_pbx, rec, "A")
    try:
        _originate(a, lab_number("6", 1), "rec-human")
        held = await a.wait_for(
            lambda m: m.event == "Newexten" and m.get("Context") == "marcador-hold", within=20
        )
        a.send("Hangup", ("Channel", held.get("Channel") or ""), ("Cause", "16"))
        await a.wait_for(
            lambda m: m.event == "Hangup" and m.get("Uniqueid") == "rec-human", within=10
        )
        await a.action("Logoff")
    finally:
        await a.close()
    _write(rec, lab_pbx, out_dir / "01-amd-human-reaches-hold.txt")
    msgs = a.messages
    amd = _index(msgs, lambda m: m.event == "VarSet" and m.get("Variable") == "AMDSTATUS")
    assert msgs[amd].get("Value") == "HUMAN"
    hold = _index(msgs, lambda m: m.event == "Newexten" and m.get("Context") == "marcador-hold")
    assert amd < hold


async def test_record_amd_machine(lab_pbx: LabPbx, out_dir: Path) -> None:
    rec = TranscriptRecorder(
        "AMD on, an answering machine answers (lab digit 7): AMDSTATUS=MACHINE, Hangup(16)",
        ["Originate Local/<number ending 7>@marcador-lab-pstn -> marcador-outbound,s,1."],
        clock=time.monotonic,
    )
    a = await _session(lab_pbx, rec, "A")
    try:
        _originate(a, lab_number("7", 2), "rec-machine")
        await a.wait_for(
            lambda m: m.event == "Hangup" and m.get("Uniqueid") == "rec-machine", within=25
        )
        await a.action("Logoff")
    finally:
        await a.close()
    _write(rec, lab_pbx, out_dir / "02-amd-machine.txt")
    statuses = [m.get("Value") for m in a.events(["VarSet"]) if m.get("Variable") == "AMDSTATUS"]
    assert statuses and statuses[-1] == "MACHINE"
    assert not [m for m in a.events(["Newexten"]) if m.get("Context") == "marcador-hold"]


async def test_record_hangup_during_amd(lab_pbx: LabPbx, out_dir: Path) -> None:
    rec = TranscriptRecorder(
        "AMD on, the customer hangs up during AMD (lab digit 5): AMDSTATUS=HANGUP, no hold",
        ["Originate Local/<number ending 5>@marcador-lab-pstn -> marcador-outbound,s,1."],
        clock=time.monotonic,
    )
    a = await _session(lab_pbx, rec, "A")
    try:
        _originate(a, lab_number("5", 3), "rec-quick")
        await a.wait_for(
            lambda m: m.event == "Hangup" and m.get("Uniqueid") == "rec-quick", within=15
        )
        await a.action("Logoff")
    finally:
        await a.close()
    _write(rec, lab_pbx, out_dir / "03-hangup-during-amd.txt")
    assert not [m for m in a.events(["Newexten"]) if m.get("Context") == "marcador-hold"]


def _response_first(msgs: list[Message]) -> list[str]:
    """Calls whose OriginateResponse came before their first Newchannel."""
    seen_chan: set[str] = set()
    early: list[str] = []
    for m in msgs:
        uid = (m.get("Uniqueid") or "").removesuffix(";2")
        if m.event == "Newchannel":
            seen_chan.add(uid)
        elif m.event == "OriginateResponse":
            call = (m.get("ActionID") or "").removeprefix("orig-")
            if call not in seen_chan:
                early.append(call)
    return early


async def test_record_unallocated_burst(lab_pbx: LabPbx, out_dir: Path) -> None:
    """A burst of digit-9 originates; re-run (at most 6 rounds) until some OriginateResponse
    came before its call's Newchannel (the order that made the chaos run record ``failed``)."""
    n = 12
    for round_ in range(6):
        rec = TranscriptRecorder(
            f"{n} concurrent originates to unallocated numbers (lab digit 9: Hangup(1) "
            "before answer)",
            [
                "OriginateResponse Failure (Reason 0, Uniqueid <unknown>) is not ordered against",
                "the calls' Newchannel and Hangup (Cause 1) events; look for a response that",
                "precedes its call's Newchannel: the tracker must still record invalid_number.",
            ],
            clock=time.monotonic,
        )
        a = await _session(lab_pbx, rec, "A")
        try:
            ids = [f"unalloc-{round_}-{i}" for i in range(n)]
            for i, attempt in enumerate(ids):
                _originate(a, lab_number("9", 100 + i), attempt)
            for attempt in ids:
                await a.wait_for(_event("OriginateResponse", ActionID=f"orig-{attempt}"), 15)
                for leg in (attempt, f"{attempt};2"):
                    await a.wait_for(_event("Hangup", Uniqueid=leg), 15)
            await a.action("Logoff")
        finally:
            await a.close()
        causes = {m.get("Cause") for m in a.events(["Hangup"])}
        assert causes == {"1"}, causes
        if _response_first(a.messages):
            break
    _write(rec, lab_pbx, out_dir / "04-unallocated-burst.txt")


@pytest.fixture(scope="module")
def restart_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPbx]:
    """A lab of this module's own: restarting the session's lab would cut other tests."""
    from dialer.pbx_lab import bundle_dir, bundle_present

    if not bundle_present():
        pytest.skip(f"no Asterisk bundle at {bundle_dir()}")
    lab = LabPbx.start(tmp_path_factory.mktemp("pbx-record-restart-lab"))
    try:
        yield lab
    finally:
        lab.stop()


async def test_record_core_restart_with_live_channel(restart_lab: LabPbx, out_dir: Path) -> None:
    lab = restart_lab
    rec = TranscriptRecorder(
        "core restart now with a live customer channel, issued on [A], seen from [B]",
        [
            "[A] originates a talking customer (lab digit 0, AMD off) parked in marcador-hold,",
            "then sends Command 'core restart now'. Shutdown goes to [B] only; [A] gets EOF.",
        ],
        clock=time.monotonic,
    )
    a = await _session(lab, rec, "A")
    b = await _session(lab, rec, "B")
    try:
        _originate(a, lab_number("0", 4), "rec-live", amd="off")
        await b.wait_for(
            lambda m: m.event == "Newexten" and m.get("Context") == "marcador-hold", within=10
        )
        a.send("Command", ("Command", "core restart now"))
        await b.wait_for(lambda m: m.event == "Shutdown", within=10)
        await b.wait_for(
            lambda m: m.event == "Hangup" and m.get("Uniqueid") == "rec-live", within=10
        )
        await asyncio.gather(a.wait_eof(10), b.wait_eof(10))
        rec.note("A", "EOF: Asterisk closed the TCP connection")
        rec.note("B", "EOF: Asterisk closed the TCP connection")
    finally:
        await a.close()
        await b.close()
    _write(rec, lab, out_dir / "05-core-restart-live-channel.txt")
    assert not a.events(["Shutdown"])
    assert b.events(["Shutdown"])
