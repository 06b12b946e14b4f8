"""``marcador softphone`` against a real Asterisk 22 (the prebuilt bundle).

Needs the bundle (``MARCADOR_ASTERISK_BUNDLE``, default ``../shared/asterisk`` from the repo
root); skipped with the reason otherwise. The module starts its OWN minimal Asterisk in a temp
dir on free ports (AMI, SIP, RTP): two PJSIP endpoints with qualify off and ulaw/alaw, and a
dialplan that plays a generated 440 Hz tone to the phone while MixMonitor records what the phone
sends. The phone plays a 1000 Hz tone, so each recording is checked for the OTHER side's tone.

Fixtures are named ``sp_pbx``/``sp_ami`` so they do not shadow the shared lab fixtures of
``tests/pbx/conftest.py``. Nothing sleeps to wait: every step awaits an AMI event or a
softphone event with a timeout (MixMonitor's file close, which has no event, is polled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ami_bridge.simulator import AmiTestClient, Message
from dialer.pbx_lab import bundle_dir, bundle_present
from dialer.softphone import (
    Extension,
    RegistrationError,
    Softphone,
    SoftphoneConfig,
    wav_rms,
    write_tone_wav,
)

BUNDLE = bundle_dir()  # the same lookup as the lab (MARCADOR_ASTERISK_BUNDLE, ../shared/...)
_HAVE_BUNDLE = bundle_present(BUNDLE)

pytestmark = [
    pytest.mark.pbx,
    pytest.mark.skipif(
        not _HAVE_BUNDLE,
        reason=f"no Asterisk bundle at {BUNDLE} (set MARCADOR_ASTERISK_BUNDLE)",
    ),
]

EXTS = {"7101": "sp-secret-7101", "7102": "sp-secret-7102"}
AMI_USER, AMI_SECRET = "sptest", "sptest-secret"
PBX_TONE_HZ, PHONE_TONE_HZ = 440.0, 1000.0
MIN_RMS = 500.0


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_block(size: int) -> tuple[int, int]:
    """``size`` consecutive UDP ports that bind now (random base: other helpers run too)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - size, 2)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base, base + size - 1
    raise RuntimeError("no free UDP port block")


def goertzel(path: Path, freq: float) -> float:
    """Relative power of ``freq`` in a 16-bit mono WAV (normalised by the signal energy)."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    samples = [int.from_bytes(raw[i : i + 2], "little", signed=True) for i in range(0, len(raw), 2)]
    if not samples:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    energy = sum(x * x for x in samples) or 1
    return power / (energy * len(samples))


@dataclass
class Pbx:
    run_dir: Path
    conf_dir: Path
    rec_dir: Path
    ami_port: int
    sip_port: int

    def cli(self, command: str) -> str:
        return subprocess.run(
            [str(self.run_dir / "cli"), "-rx", command],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout


def _write_conf(
    conf: Path, rec_dir: Path, ami_port: int, sip_port: int, rtp: tuple[int, int]
) -> None:
    (conf / "modules.conf").write_text(
        "[modules]\nautoload = yes\nnoload = chan_iax2.so\n", encoding="utf-8"
    )
    (conf / "logger.conf").write_text(
        "[general]\ndateformat = %F %T.%3q\n[logfiles]\n"
        "messages.log => notice,warning,error\nfull.log => notice,warning,error,verbose(3)\n",
        encoding="utf-8",
    )
    (conf / "asterisk.conf").write_text(
        "[options]\ndocumentation_language = en_US\ndefaultlanguage = en\n", encoding="utf-8"
    )
    (conf / "manager.conf").write_text(
        f"[general]\nenabled = yes\nbindaddr = 127.0.0.1\nport = {ami_port}\n\n"
        f"[{AMI_USER}]\nsecret = {AMI_SECRET}\ndeny = 0.0.0.0/0.0.0.0\n"
        "permit = 127.0.0.1/255.255.255.255\nread = all\nwrite = all\n",
        encoding="utf-8",
    )
    (conf / "rtp.conf").write_text(
        f"[general]\nrtpstart = {rtp[0]}\nrtpend = {rtp[1]}\n", encoding="utf-8"
    )
    pjsip = [
        "[transport-udp]",
        "type = transport",
        "protocol = udp",
        f"bind = 127.0.0.1:{sip_port}",
        "",
    ]
    for ext, secret in EXTS.items():
        pjsip += [
            f"[{ext}]",
            "type = endpoint",
            "transport = transport-udp",
            "context = sp-test",
            "disallow = all",
            "allow = ulaw,alaw",
            "direct_media = no",
            f"aors = {ext}",
            f"auth = {ext}",
            f"[{ext}]",
            "type = aor",
            "max_contacts = 1",
            "qualify_frequency = 0",
            "remove_existing = yes",
            f"[{ext}]",
            "type = auth",
            "auth_type = userpass",
            f"username = {ext}",
            f"password = {secret}",
            "",
        ]
    (conf / "pjsip.conf").write_text("\n".join(pjsip), encoding="utf-8")
    (conf / "extensions.conf").write_text(
        f"""[globals]
RECDIR = {rec_dir}

[sp-test]
; The originated phone leg runs this after the phone answers: record what the phone sends,
; play the tone to it, tell the test, then hold until the phone hangs up.
exten => talk,1,MixMonitor(${{RECDIR}}/mix-${{UNIQUEID}}.wav,r(${{RECDIR}}/rx-${{UNIQUEID}}.wav))
 same => n,Playback(sptest/tone)
 same => n,UserEvent(SpPlayed,Uniqueid: ${{UNIQUEID}})
 same => n,Wait(120)
 same => n,Hangup()
; A re-INVITE mid-call (as a session-timer refresh sends): the phone must answer it and keep
; one RTP stream.
exten => reinvite,1,Playback(sptest/tone)
 same => n,Set(PJSIP_MEDIA_OFFER(audio)=ulaw)
 same => n,Set(PJSIP_SEND_SESSION_REFRESH()=invite)
 same => n,UserEvent(SpRefreshed,Uniqueid: ${{UNIQUEID}})
 same => n,Wait(120)
 same => n,Hangup()
; The PBX hangs up first (the phone gets a BYE).
exten => short,1,Playback(sptest/tone)
 same => n,Hangup()
""",
        encoding="utf-8",
    )
    sounds = conf / "sounds" / "en" / "sptest"
    sounds.mkdir(parents=True)
    write_tone_wav(sounds / "tone.wav", 2.0, PBX_TONE_HZ)


@pytest.fixture(scope="module")
def sp_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    base = tmp_path_factory.mktemp("sp-pbx")
    conf, run, rec = base / "conf", base / "run", base / "rec"
    conf.mkdir()
    rec.mkdir()
    ami_port, sip_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    _write_conf(conf, rec, ami_port, sip_port, _free_udp_block(40))
    started = subprocess.run(
        [str(BUNDLE / "start-asterisk"), str(run), str(conf)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if started.returncode != 0:
        pytest.fail(f"start-asterisk failed: {started.stderr[-2000:]}")
    try:
        yield Pbx(run, conf, rec, ami_port, sip_port)
    finally:
        subprocess.run(
            [str(BUNDLE / "stop-asterisk"), str(run)], capture_output=True, timeout=60, check=False
        )
        shutil.rmtree(run / "asterisk-22.10.1", ignore_errors=True)


@pytest.fixture
async def sp_ami(sp_pbx: Pbx) -> AsyncIterator[AmiTestClient]:
    client = await AmiTestClient.connect("127.0.0.1", sp_pbx.ami_port)
    resp = await client.login(AMI_USER, AMI_SECRET)
    assert resp.response == "Success", resp
    yield client
    await client.close()


@pytest.fixture
def phone_rtp() -> tuple[int, int]:
    return _free_udp_block(20)


def _config(sp_pbx: Pbx, exts: list[str], rtp: tuple[int, int], **kw: object) -> SoftphoneConfig:
    return SoftphoneConfig(
        extensions=tuple(
            Extension(e, EXTS[e], server="127.0.0.1", port=sp_pbx.sip_port) for e in exts
        ),
        rtp_port_low=rtp[0],
        rtp_port_high=rtp[1],
        bind_ip="127.0.0.1",
        **kw,  # type: ignore[arg-type]
    )


async def _contacts(sp_ami: AmiTestClient, aor: str) -> list[Message]:
    start = len(sp_ami.messages)
    aid = sp_ami.send("PJSIPShowContacts")
    first = await sp_ami.response(aid, within=10)
    if first.response != "Success":  # "No Contacts found" when there is none at all
        return []
    await sp_ami.wait_for(
        lambda m: m.event == "ContactListComplete" and m.get("ActionID") == aid, 10, start
    )
    return [
        m
        for m in sp_ami.messages[start:]
        if m.event == "ContactList" and m.get("ActionID") == aid and m.get("Endpoint") == aor
    ]


async def _contact_status(sp_ami: AmiTestClient, aor: str, *statuses: str) -> Message:
    """A ContactStatus event for ``aor`` (registration: Created/NonQualified; un-: Removed)."""
    return await sp_ami.wait_for(
        lambda m: (
            m.event == "ContactStatus"
            and m.get("AOR") == aor
            and m.get("ContactStatus") in statuses
        ),
        10,
    )


async def _closed_wav(path: Path, within: float = 10.0) -> None:
    """Wait until MixMonitor has closed ``path`` (its header then counts the frames).

    MixMonitor raises no AMI event when it closes on hangup, so this polls the file, bounded.
    """
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError, EOFError, wave.Error), wave.open(str(path), "rb") as w:
            if w.getnframes() > 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} was not closed by MixMonitor")
        await asyncio.sleep(0.05)


async def _originate(sp_ami: AmiTestClient, ext: str, exten: str, timeout_ms: int = 15000) -> str:
    return sp_ami.send(
        "Originate",
        ("Channel", f"PJSIP/{ext}"),
        ("Context", "sp-test"),
        ("Exten", exten),
        ("Priority", "1"),
        ("Timeout", str(timeout_ms)),
        ("Async", "true"),
    )


async def test_register_answer_audio_both_ways_bye_and_unregister(
    sp_pbx: Pbx, sp_ami: AmiTestClient, phone_rtp: tuple[int, int], tmp_path: Path
) -> None:
    play = tmp_path / "agent.wav"
    write_tone_wav(play, 6.0, PHONE_TONE_HZ)
    delay = 1.5
    phone = Softphone(
        _config(
            sp_pbx, ["7101"], phone_rtp, answer_delay=delay, play=play, record_dir=tmp_path / "rec"
        )
    )
    phone.start()
    try:
        # Registered: the PBX holds a contact for the phone's SIP port.
        created = await _contact_status(sp_ami, "7101", "Created", "NonQualified")
        assert f":{phone.local_sip_port('7101')}" in (created.get("URI") or "")
        assert len(await _contacts(sp_ami, "7101")) == 1

        # Auto-answer after the delay.
        # Auto-answer after the delay, measured by the phone (INVITE -> 200 OK) and by the PBX
        # side (Originate sent -> OriginateResponse; includes the INVITE's trip).
        mark = phone.mark()
        sent = time.monotonic()
        aid = await _originate(sp_ami, "7101", "talk")
        resp = await sp_ami.event("OriginateResponse", within=15, ActionID=aid)
        pbx_delay = time.monotonic() - sent
        assert resp.get("Response") == "Success", resp
        answered = await phone.wait_for_async("answered", "7101", within=10, since=mark)
        assert answered.answer_delay is not None
        # Upper bounds leave room for a loaded CI machine (typically +0.01-0.02 s).
        assert delay <= answered.answer_delay < delay + 1.0, answered.answer_delay
        assert delay <= pbx_delay < delay + 1.0, pbx_delay
        print(f"answer delay: phone {answered.answer_delay:.3f} s, PBX {pbx_delay:.3f} s")
        channel = resp.get("Channel") or ""
        uniqueid = resp.get("Uniqueid") or ""
        assert channel.startswith("PJSIP/7101-")

        # The tone was played to the phone; meanwhile the phone played its WAV to the PBX.
        await sp_ami.event("UserEvent", within=20, UserEvent="SpPlayed", Uniqueid=uniqueid)
        assert phone.active_calls("7101")
    finally:
        phone.stop()

    # Clean exit: BYE first (the PBX hangs the channel up; Asterisk reports cause 0 for a BYE
    # without a Reason header on an unbridged channel), then the un-REGISTER.
    hangup = await sp_ami.event("Hangup", within=10, Channel=channel)
    removed = await _contact_status(sp_ami, "7101", "Removed")
    assert sp_ami.messages.index(hangup) < sp_ami.messages.index(removed)
    assert await _contacts(sp_ami, "7101") == []
    kinds = [e.kind for e in phone.events]
    assert kinds[-2:] == ["ended", "unregistered"], kinds
    unreg = phone.events[-1]
    assert unreg.reason is None

    # What the phone heard: non-silent, and the PBX's 440 Hz tone rather than its own 1000 Hz.
    ended = phone.wait_for("ended", "7101", timeout=1)
    assert ended.reason == "local_hangup"
    assert ended.recording is not None and ended.recording.is_file()
    assert wav_rms(ended.recording) > MIN_RMS
    assert goertzel(ended.recording, PBX_TONE_HZ) > 5 * goertzel(ended.recording, PHONE_TONE_HZ)

    # What the PBX heard from the phone (MixMonitor's receive feed): non-silent, 1000 Hz.
    rx = sp_pbx.rec_dir / f"rx-{uniqueid}.wav"
    await _closed_wav(rx)
    assert wav_rms(rx) > MIN_RMS
    assert goertzel(rx, PHONE_TONE_HZ) > 5 * goertzel(rx, PBX_TONE_HZ)


async def test_two_extensions_remote_bye_and_cancel(
    sp_pbx: Pbx, sp_ami: AmiTestClient, phone_rtp: tuple[int, int]
) -> None:
    phone = Softphone(_config(sp_pbx, ["7101", "7102"], phone_rtp, answer_delay=1.0))
    with phone:
        for ext in ("7101", "7102"):
            phone.wait_for("registered", ext, timeout=1)
            # The contact may predate this AMI session's events: ask the PBX.
            assert len(await _contacts(sp_ami, ext)) == 1

        # Both answer; the PBX hangs up first and the phone sees the BYE.
        mark = phone.mark()
        a1, a2 = (
            await _originate(sp_ami, "7101", "short"),
            await _originate(sp_ami, "7102", "short"),
        )
        for aid in (a1, a2):
            resp = await sp_ami.event("OriginateResponse", within=15, ActionID=aid)
            assert resp.get("Response") == "Success", resp
        for ext in ("7101", "7102"):
            answered = await phone.wait_for_async("answered", ext, within=15, since=mark)
            assert answered.answer_delay is not None
            assert 1.0 <= answered.answer_delay < 2.0, answered.answer_delay
            print(f"answer delay {ext} (answer_delay=1.0): {answered.answer_delay:.3f} s")
            ended = await phone.wait_for_async("ended", ext, within=15, since=mark)
            assert ended.reason == "remote_bye"
        assert phone.active_calls() == []

    # A call cancelled while ringing (PBX timeout shorter than the answer delay) is not answered.
    slow = Softphone(_config(sp_pbx, ["7102"], phone_rtp, answer_delay=4.0))
    with slow:
        aid = await _originate(sp_ami, "7102", "talk", timeout_ms=1500)
        resp = await sp_ami.event("OriginateResponse", within=15, ActionID=aid)
        assert resp.get("Response") == "Failure", resp
        await slow.wait_for_async("cancelled", "7102", within=10)
        assert [e.kind for e in slow.events].count("answered") == 0


async def test_bad_password_is_a_registration_error(
    sp_pbx: Pbx, phone_rtp: tuple[int, int]
) -> None:
    cfg = SoftphoneConfig(
        extensions=(Extension("7101", "wrong", server="127.0.0.1", port=sp_pbx.sip_port),),
        rtp_port_low=phone_rtp[0],
        rtp_port_high=phone_rtp[1],
        bind_ip="127.0.0.1",
        register_timeout=6.0,
    )
    phone = Softphone(cfg)
    with pytest.raises(RegistrationError, match="7101"):
        phone.start()
    assert [e.kind for e in phone.events] == ["registration_failed"]


async def test_cli_registers_answers_and_exits_on_sigterm(
    sp_pbx: Pbx, sp_ami: AmiTestClient, phone_rtp: tuple[int, int], tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "server": "127.0.0.1",
                "port": sp_pbx.sip_port,
                "extensions": [{"username": "7102", "password": EXTS["7102"]}],
            }
        ),
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "marcador"),
        "softphone",
        "--rtp-ports",
        f"{phone_rtp[0]}-{phone_rtp[1]}",
        "--bind-ip",
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "MARCADOR_SOFTPHONE_SPEC": str(spec)},
    )
    try:
        await _contact_status(sp_ami, "7102", "Created", "NonQualified")
        aid = await _originate(sp_ami, "7102", "talk")
        resp = await sp_ami.event("OriginateResponse", within=15, ActionID=aid)
        assert resp.get("Response") == "Success", resp
        channel = resp.get("Channel") or ""
        await sp_ami.event("UserEvent", within=20, UserEvent="SpPlayed")
        proc.send_signal(signal.SIGTERM)
        await sp_ami.event("Hangup", within=10, Channel=channel)
        await _contact_status(sp_ami, "7102", "Removed")
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    out, err = out_b.decode(), err_b.decode()
    lines = out.splitlines()
    assert proc.returncode == 0, (out, err)
    assert any(line.startswith("registered 7102") for line in lines), lines
    assert any(line.startswith("call answered 7102") for line in lines), lines
    assert any(line.startswith("call ended 7102 (local_hangup)") for line in lines), lines
    assert any(line.startswith("unregistered 7102") for line in lines), lines
    assert EXTS["7102"] not in out + err


async def test_reinvite_keeps_one_rtp_stream(
    sp_pbx: Pbx, sp_ami: AmiTestClient, phone_rtp: tuple[int, int]
) -> None:
    def senders() -> int:
        return sum(t.name == "RTP Transmitter" for t in threading.enumerate())

    before = senders()
    with Softphone(_config(sp_pbx, ["7101"], phone_rtp)) as phone:
        aid = await _originate(sp_ami, "7101", "reinvite")
        resp = await sp_ami.event("OriginateResponse", within=15, ActionID=aid)
        assert resp.get("Response") == "Success", resp
        await sp_ami.event("UserEvent", within=20, UserEvent="SpRefreshed")
        (call,) = phone._phones["7101"].calls.values()
        # pyVoIP answers the re-INVITE only if restarting the RTP client does not fail.
        assert await asyncio.to_thread(call.renegotiated.wait, 10)  # type: ignore[attr-defined]
        status = await sp_ami.action("Status", ("Channel", resp.get("Channel") or ""), within=10)
        assert status.response == "Success", status
        assert phone.active_calls("7101")
        assert senders() - before == 1  # one RTP stream, not two
