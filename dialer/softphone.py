"""A headless agent phone on pyVoIP: register, auto-answer, hold, play and record.

``Softphone`` registers one or more extensions, answers every incoming call after
``answer_delay`` seconds and holds it until the far end hangs up or the phone stops (an agent's
nailed-up session call into a ConfBridge). It can play a WAV to the far end and records what it
hears to one WAV per call. ``stop()`` sends BYE for every call still up, then un-registers.

pyVoIP is thread based: its SIP receiver, re-registration timer, per-call callback and RTP
sender/receiver are all threads. This module wraps it: the public API is thread-safe, events are
kept in order and can be awaited (``wait_for`` / ``wait_for_async``) with a timeout.

pyVoIP 1.6.8 limits (see ``../shared/ami-transcripts/README.md``): no OPTIONS (the endpoint's
qualify must be off), RFC 2069 digest, PCMU/PCMA only, and the application hears of a call only
1 s after the INVITE, so the answer delay is at least ~1 s. Workarounds for its defects are
narrow subclasses, each documented where it is made:

* ``_SipClient``: pyVoIP starts reading SIP 1 s after registering; we read at once.
* ``_Phone.request_port``: pyVoIP picks a random RTP port without checking that it is free, so
  two phones (or other processes) sharing a range collide; we pick one that binds.
* ``_Phone.callback``: pyVoIP ignores CANCEL, so a cancelled call would still be answered; we end
  it with 487. We also note the 200 OK to our BYE, so un-registering waits for it: pyVoIP's
  deregistration reads "the next message" as its answer and would take the BYE's 200 OK for it.
* ``_Call.bye`` / ``_Call.hangup``: signal the end of the call (pyVoIP only flips a state).
* ``_RtpClient.start``: idempotent; on a re-INVITE (e.g. a session-timer refresh) pyVoIP starts
  the RTP client again: a new socket on the same port, which fails with EADDRINUSE (the
  re-INVITE is left unanswered) or, when the old socket was already collected, adds a second
  sender and receiver thread (double-rate, garbled audio).
* ``_RtpClient.encode_packet``: pyVoIP encodes PCMA frames with the PCMU encoder.
* ``_RtpClient.parse_pcmu/parse_pcma``: decode to 16-bit for the recorder instead of pyVoIP's
  8-bit buffer, which nothing reads here and which grows for the whole call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import threading
import time
import warnings
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from dialer.logging import mask_digits

with warnings.catch_warnings():
    # audioop is deprecated (removed in 3.13); pyVoIP 1.6.8 itself depends on it.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

    import pyVoIP.VoIP  # noqa: F401 - first: importing pyVoIP.SIP first is circular
    from pyVoIP import RTP, SIP
    from pyVoIP.VoIP import CallState, NoPortsAvailableError, PhoneStatus, VoIPCall, VoIPPhone

log = structlog.get_logger("dialer.softphone")

SAMPLE_RATE = 8000
_FRAME = 160  # samples per 20 ms RTP frame
_MAX_GAP_SAMPLES = 2 * SAMPLE_RATE  # longer RTP gaps are recorded as 2 s of silence
_TS_MOD = 1 << 32

EventKind = Literal[
    "registered",
    "registration_failed",
    "ringing",
    "answered",
    "cancelled",
    "ended",
    "unregistered",
]


class SoftphoneError(Exception):
    """Base class of the softphone's errors."""


class RegistrationError(SoftphoneError):
    """An extension did not register (bad credentials, unreachable server, timeout)."""


class SpecError(SoftphoneError):
    """An invalid extension spec (JSON or ``USER:PASSWORD``)."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class Extension:
    """One SIP account. ``password`` never appears in ``repr`` or in logs."""

    username: str
    password: str = field(repr=False)
    server: str = "127.0.0.1"
    port: int = 5060
    sip_port: int = 0  # local SIP port; 0 picks a free one


@dataclass(frozen=True, slots=True)
class SoftphoneConfig:
    extensions: tuple[Extension, ...]
    answer_delay: float = 1.0  # seconds from INVITE to 200 OK; pyVoIP's floor is ~1 s
    rtp_port_low: int = 10000
    rtp_port_high: int = 20000
    bind_ip: str | None = None  # local address; default: the one that routes to the server
    play: Path | None = None  # WAV played to the far end once the call is answered
    record_dir: Path | None = None  # one WAV per call: <ext>-<n>-<stamp>.wav
    register_timeout: float = 10.0
    bye_timeout: float = 2.0  # how long stop() waits for the 200 OK to each BYE

    def __post_init__(self) -> None:
        if not self.extensions:
            raise SpecError("no extension given")
        if not 0 < self.rtp_port_low <= self.rtp_port_high < 65536:
            raise SpecError("invalid RTP port range")
        if self.answer_delay < 0:
            raise SpecError("answer_delay must be >= 0")
        names = [e.username for e in self.extensions]
        if len(set(names)) != len(names):
            raise SpecError("an extension is listed twice")


def parse_extension(text: str, server: str = "127.0.0.1", port: int = 5060) -> Extension:
    """``USER:PASSWORD`` (password may contain ':') into an :class:`Extension`."""
    user, sep, password = text.partition(":")
    if not user or not sep:
        raise SpecError("an extension is written USER:PASSWORD")
    return Extension(username=user, password=password, server=server, port=port)


def load_spec(text: str) -> dict[str, Any]:
    """A JSON spec (the text itself, or a path to a file holding it).

    ``{"server": "127.0.0.1", "port": 5060, "answer_delay": 1.0, "rtp_ports": "30000-30099",
    "extensions": [{"username": "1001", "password": "...", "server": "...", "port": 5060}]}``
    Every key but ``extensions`` is optional; per-extension server/port override the top level.
    """
    raw = text.strip()
    if not raw.startswith("{"):
        try:
            raw = Path(raw).read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"cannot read the spec file: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SpecError(f"the spec is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("extensions", []), list):
        raise SpecError("the spec must be an object with a list 'extensions'")
    return data


def extensions_from_spec(data: dict[str, Any]) -> list[Extension]:
    server = str(data.get("server", "127.0.0.1"))
    port = int(data.get("port", 5060))
    out: list[Extension] = []
    for item in data.get("extensions", []):
        if not isinstance(item, dict) or "username" not in item or "password" not in item:
            raise SpecError("each extension needs 'username' and 'password'")
        out.append(
            Extension(
                username=str(item["username"]),
                password=str(item["password"]),
                server=str(item.get("server", server)),
                port=int(item.get("port", port)),
                sip_port=int(item.get("sip_port", 0)),
            )
        )
    return out


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        lo, hi = int(low), int(high if sep else low)
    except ValueError:
        raise SpecError("an RTP port range is written LOW-HIGH, e.g. 30000-30099") from None
    if not 0 < lo <= hi < 65536:
        raise SpecError("invalid RTP port range")
    return lo, hi


# --------------------------------------------------------------------------- audio helpers


def load_wav_8k_mono(path: Path) -> bytes:
    """Read a WAV and return 16-bit signed 8 kHz mono PCM (converted/resampled if needed)."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise SoftphoneError(f"{path}: not a readable PCM WAV ({exc})") from None
    if width == 1:  # 8-bit WAV is unsigned
        data = audioop.bias(data, 1, -128)
    if width != 2:
        data = audioop.lin2lin(data, width, 2)
    if channels == 2:
        data = audioop.tomono(data, 2, 0.5, 0.5)
    elif channels != 1:
        raise SoftphoneError(f"{path.name}: {channels} channels are not supported")
    if rate != SAMPLE_RATE:
        data, _ = audioop.ratecv(data, 2, 1, rate, SAMPLE_RATE, None)
    return data


def pcm16_to_pyvoip(pcm: bytes) -> bytes:
    """pyVoIP's transmit buffer takes 8-bit unsigned linear audio."""
    return audioop.bias(audioop.lin2lin(pcm, 2, 1), 1, 128)


def wav_rms(path: Path) -> float:
    """RMS of a 16-bit mono WAV (0 for an empty file): a quick "is anything in it" check."""
    with wave.open(str(path), "rb") as wav:
        width = wav.getsampwidth()
        data = wav.readframes(wav.getnframes())
    return float(audioop.rms(data, width)) if data else 0.0


def write_tone_wav(path: Path, seconds: float, freq: float = 440.0, amplitude: int = 8000) -> None:
    """Write a 16-bit 8 kHz mono sine WAV (test audio, smoke tests)."""
    n = int(seconds * SAMPLE_RATE)
    frames = bytearray()
    for i in range(n):
        sample = int(amplitude * math.sin(2 * math.pi * freq * i / SAMPLE_RATE))
        frames += sample.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(bytes(frames))


class WavRecorder:
    """What the phone hears, as a 16-bit 8 kHz mono WAV, placed by RTP timestamp.

    Gaps in the RTP timestamps (silence suppression, jitter) become silence, capped at 2 s; a
    new SSRC, a jump back or a jump of more than a minute restarts the timeline (a new source).
    Late packets (behind what was already written) are dropped. Thread-safe.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._wav: wave.Wave_write | None = wave.open(str(path), "wb")  # noqa: SIM115
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._ssrc: int | None = None
        self._next_ts = 0
        self.samples = 0
        self._sumsq = 0.0

    def feed(self, ssrc: int, timestamp: int, pcm: bytes) -> None:
        with self._lock:
            if self._wav is None:
                return
            if self._ssrc == ssrc:
                gap = (timestamp - self._next_ts) % _TS_MOD
                if gap >= _TS_MOD // 2:  # behind: a late or duplicate packet
                    return
                if gap > 60 * SAMPLE_RATE:
                    gap = 0  # a new timeline on the same source
                if gap:
                    self._write(bytes(2 * min(gap, _MAX_GAP_SAMPLES)))
            self._ssrc = ssrc
            self._write(pcm)
            self._next_ts = (timestamp + len(pcm) // 2) % _TS_MOD

    def _write(self, pcm: bytes) -> None:
        assert self._wav is not None
        self._wav.writeframes(pcm)
        n = len(pcm) // 2
        if n:
            self._sumsq += float(audioop.rms(pcm, 2)) ** 2 * n
            self.samples += n

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def rms(self) -> float:
        return math.sqrt(self._sumsq / self.samples) if self.samples else 0.0

    def close(self) -> None:
        with self._lock:
            if self._wav is not None:
                self._wav.close()
                self._wav = None


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class SoftphoneEvent:
    kind: EventKind
    extension: str
    at: float  # time.monotonic()
    call_id: str | None = None
    caller: str | None = None  # masked
    answer_delay: float | None = None  # INVITE -> 200 OK, seconds ("answered")
    reason: str | None = None  # "remote_bye" | "local_hangup" | error text
    recording: Path | None = None
    recorded_seconds: float | None = None
    recorded_rms: float | None = None

    def status_line(self) -> str:
        """A short line for people (the CLI prints these)."""
        ext = self.extension
        if self.kind == "registered":
            return f"registered {ext}"
        if self.kind == "registration_failed":
            return f"registration FAILED {ext}: {self.reason}"
        if self.kind == "ringing":
            return f"ringing {ext} from {self.caller}"
        if self.kind == "answered":
            return f"call answered {ext} from {self.caller} after {self.answer_delay:.2f} s"
        if self.kind == "cancelled":
            return f"call cancelled {ext} from {self.caller} (not answered)"
        if self.kind == "ended":
            rec = ""
            if self.recording is not None:
                rec = (
                    f", recorded {self.recorded_seconds:.1f} s rms {self.recorded_rms:.0f}"
                    f" to {self.recording}"
                )
            return f"call ended {ext} ({self.reason}){rec}"
        return f"unregistered {ext}" + (f" ({self.reason})" if self.reason else "")


# --------------------------------------------------------------------------- pyVoIP subclasses


class _RtpClient(RTP.RTPClient):
    """pyVoIP's RTP client with the fixes listed in the module docstring.

    Instances are pyVoIP's own clients whose class is switched right after creation
    (``_Call.create_rtp_clients``), so only methods are overridden here, no new ``__init__``.
    """

    sink: Callable[[int, int, bytes], None] | None = None
    _started = False

    def start(self) -> None:
        if self._started:  # a re-INVITE: keep the one socket and thread pair we have
            return
        self._started = True
        super().start()

    def encode_packet(self, payload: bytes) -> bytes:
        if self.preference == RTP.PayloadType.PCMA:
            return self.encode_pcma(payload)
        return self.encode_pcmu(payload)

    def parse_pcmu(self, packet: RTP.RTPMessage) -> None:
        if self.sink is not None:
            self.sink(packet.SSRC, packet.timestamp, audioop.ulaw2lin(packet.payload, 2))

    def parse_pcma(self, packet: RTP.RTPMessage) -> None:
        if self.sink is not None:
            self.sink(packet.SSRC, packet.timestamp, audioop.alaw2lin(packet.payload, 2))


class _SipClient(SIP.SIPClient):
    """pyVoIP's SIP client whose receive loop runs as soon as the phone is registered.

    pyVoIP starts it 1 s after REGISTER (``Timer(1, recv_loop)``), so an INVITE arriving in the
    first second after registration waited up to 1 s unseen. We start our own receiver right
    after ``start()`` and make pyVoIP's delayed one return at once. Switched in by class
    (``_Phone.__init__``), so no new ``__init__``.
    """

    _receiver: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        self._receiver = threading.Thread(
            target=self.recv_loop, name=f"softphone SIP {self.username}", daemon=True
        )
        self._receiver.start()

    def recv_loop(self) -> None:
        if threading.current_thread() is not self._receiver:
            return  # pyVoIP's delayed receiver: ours already runs
        try:
            super().recv_loop()
        except OSError:
            if self.NSD:  # the socket closed under us while stopping is expected
                raise


class _Call(VoIPCall):
    def __init__(self, phone: _Phone, request: SIP.SIPMessage, session_id: int) -> None:
        self.invited_at = time.monotonic()
        self.ended = threading.Event()
        self.finished = threading.Event()  # our call thread has emitted its last event
        self.renegotiated = threading.Event()  # a re-INVITE was answered
        self.end_reason = ""
        self.recorder: WavRecorder | None = None
        super().__init__(
            phone, CallState.RINGING, request, session_id, phone.myIP, sendmode=phone.recvmode
        )

    def create_rtp_clients(
        self,
        codecs: dict[int, RTP.PayloadType],
        ip: str,
        port: int,
        request: SIP.SIPMessage,
        baseport: int,
    ) -> None:
        before = len(self.RTPClients)
        super().create_rtp_clients(codecs, ip, port, request, baseport)
        for client in self.RTPClients[before:]:
            client.__class__ = _RtpClient
            client.sink = self._on_audio  # type: ignore[attr-defined]

    def renegotiate(self, request: SIP.SIPMessage) -> None:
        super().renegotiate(request)  # answers the re-INVITE (200 OK with our SDP)
        self.renegotiated.set()

    def _on_audio(self, ssrc: int, timestamp: int, pcm: bytes) -> None:
        recorder = self.recorder
        if recorder is not None:
            recorder.feed(ssrc, timestamp, pcm)

    def bye(self) -> None:
        super().bye()
        self._end("remote_bye")

    def hangup(self) -> None:
        super().hangup()
        self._end("local_hangup")

    def _end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()


class _Phone(VoIPPhone):
    def __init__(self, owner: Softphone, ext: Extension, bind_ip: str, sip_port: int) -> None:
        self.owner = owner
        self.extension = ext
        self.bye_acked: set[str] = set()
        self.bye_cond = threading.Condition()
        self.held_rtp: dict[int, socket.socket] = {}
        self._rng = random.Random()
        super().__init__(
            ext.server,
            ext.port,
            ext.username,
            ext.password,
            myIP=bind_ip,
            callCallback=owner._on_call,
            sipPort=sip_port,
            rtpPortLow=owner.config.rtp_port_low,
            rtpPortHigh=owner.config.rtp_port_high,
        )
        self.sip.__class__ = _SipClient
        # pyVoIP tries REGISTER 3 times, each waiting this long for an answer.
        self.sip.register_timeout = max(1, math.ceil(owner.config.register_timeout / 3))

    def _create_Call(self, request: SIP.SIPMessage, sess_id: int) -> None:  # noqa: N802
        self.calls[request.headers["Call-ID"]] = _Call(self, request, sess_id)

    def request_port(self, blocking: bool = True) -> int:
        """A port of the range that binds now, held bound until the call is answered.

        pyVoIP binds the RTP port only at answer (1 s or more later), so a port merely probed
        could be taken meanwhile by another phone; holding the socket makes the choice stick.
        ``release_held_ports`` closes it right before pyVoIP binds it.
        """
        with self.portsLock:
            # Not pyVoIP's assignedPorts: it never forgets an answered call's port.
            in_use = set(self.held_rtp)
            for call in list(self.calls.values()):
                in_use.update(c.inPort for c in call.RTPClients)
            candidates = [
                p for p in range(self.rtpPortLow, self.rtpPortHigh + 1) if p not in in_use
            ]
            self._rng.shuffle(candidates)
            for port in candidates:
                held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    held.bind((self.myIP, port))
                except OSError:
                    held.close()
                    continue
                self.held_rtp[port] = held
                return port
        raise NoPortsAvailableError(
            f"no free RTP port in {self.rtpPortLow}-{self.rtpPortHigh} for {self.username}"
        )

    def release_held_ports(self, call: VoIPCall | None = None) -> None:
        """Close the held sockets of ``call``'s RTP ports (all of them without a call)."""
        with self.portsLock:
            ports = [c.inPort for c in call.RTPClients] if call is not None else list(self.held_rtp)
            for port in ports:
                held = self.held_rtp.pop(port, None)
                if held is not None:
                    held.close()

    def callback(self, request: SIP.SIPMessage) -> None:
        if request.type == SIP.SIPMessageType.MESSAGE and request.method == "CANCEL":
            self._on_cancel(request)
            return
        if (
            request.type == SIP.SIPMessageType.RESPONSE
            and request.headers.get("CSeq", {}).get("method") == "BYE"
        ):
            with self.bye_cond:
                self.bye_acked.add(request.headers["Call-ID"])
                self.bye_cond.notify_all()
            return
        super().callback(request)

    def _on_cancel(self, request: SIP.SIPMessage) -> None:
        # pyVoIP answers the CANCEL itself (200 OK) after this returns; the INVITE still
        # needs its final answer, 487 Request Terminated.
        call = self.calls.get(request.headers["Call-ID"])
        if not isinstance(call, _Call) or call.state != CallState.RINGING:
            return
        call.state = CallState.ENDED
        self.sip.out.sendto(
            _gen_487(self.sip, call.request).encode("utf8"), (self.server, self.port)
        )
        self.calls.pop(call.call_id, None)
        call._end("cancelled")


def _gen_487(sip: SIP.SIPClient, invite: SIP.SIPMessage) -> str:
    """487 Request Terminated for a cancelled INVITE (same To tag as our 180 Ringing)."""
    h = invite.headers
    tag = sip.tagLibrary.get(h["Call-ID"], sip.gen_tag())
    vias = "".join(f"Via: {v}\r\n" for v in _raw_vias(invite))
    return (
        "SIP/2.0 487 Request Terminated\r\n"
        f"{vias}"
        f"From: {h['From']['raw']};tag={h['From']['tag']}\r\n"
        f"To: {h['To']['raw']};tag={tag}\r\n"
        f"Call-ID: {h['Call-ID']}\r\n"
        f"CSeq: {h['CSeq']['check']} INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    )


def _raw_vias(message: SIP.SIPMessage) -> list[str]:
    out: list[str] = []
    for line in message.raw.decode("utf8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in ("via", "v"):
            out.extend(v.strip() for v in value.split(","))
        if not line:
            break
    return out


# --------------------------------------------------------------------------- the softphone


def _free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _local_ip_for(server: str, port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((server, port))  # no packet is sent for UDP
        return str(s.getsockname()[0])


class Softphone:
    """Headless auto-answering phone for one or more extensions (thread-safe).

    ``start()`` registers every extension (raises :class:`RegistrationError` if one fails);
    ``stop()`` hangs up (BYE) every call still up and un-registers. Also a context manager.
    ``on_event`` is called (from pyVoIP's threads) for each :class:`SoftphoneEvent`.
    """

    def __init__(
        self,
        config: SoftphoneConfig,
        on_event: Callable[[SoftphoneEvent], None] | None = None,
    ) -> None:
        self.config = config
        self._on_event = on_event
        self._events: list[SoftphoneEvent] = []
        self._cond = threading.Condition()
        self._phones: dict[str, _Phone] = {}
        self._stopping = threading.Event()
        self._play_data: bytes | None = None
        self._call_seq = 0
        self._lock = threading.Lock()
        self._started = False

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._started:
            raise SoftphoneError("already started")
        self._started = True
        if self.config.play is not None:
            self._play_data = pcm16_to_pyvoip(load_wav_8k_mono(self.config.play))
        if self.config.record_dir is not None:
            self.config.record_dir.mkdir(parents=True, exist_ok=True)
        try:
            for ext in self.config.extensions:
                self._register(ext)
        except BaseException:
            self.stop()
            raise

    def _register(self, ext: Extension) -> None:
        bind_ip = self.config.bind_ip or _local_ip_for(ext.server, ext.port)
        sip_port = ext.sip_port or _free_udp_port(bind_ip)
        phone = _Phone(self, ext, bind_ip, sip_port)
        log.info(
            "softphone.registering",
            extension=ext.username,
            server=f"{ext.server}:{ext.port}",
            local=f"{bind_ip}:{sip_port}",
        )
        self._phones[ext.username] = phone
        phone.start()  # sends REGISTER and waits for the first answer
        deadline = time.monotonic() + self.config.register_timeout
        while phone.get_status() != PhoneStatus.REGISTERED:
            # pyVoIP retries a failed REGISTER at once, up to 3 times, then FAILED.
            if phone.get_status() == PhoneStatus.FAILED or time.monotonic() > deadline:
                reason = (
                    f"not registered at {ext.server}:{ext.port} (status {phone.get_status().value})"
                )
                self._emit(
                    SoftphoneEvent(
                        "registration_failed", ext.username, time.monotonic(), reason=reason
                    )
                )
                raise RegistrationError(f"{ext.username}: {reason}")
            self._stopping.wait(0.02)
        self._emit(SoftphoneEvent("registered", ext.username, time.monotonic()))

    def stop(self) -> None:
        """BYE every call still up, wait (bounded) for their 200 OK, un-register. Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        for phone in self._phones.values():  # wake calls still waiting to be answered
            for call in list(phone.calls.values()):
                if isinstance(call, _Call) and call.state == CallState.RINGING:
                    call._end("stopping")
        for name, phone in list(self._phones.items()):
            self._hangup_phone(phone)
            registered = phone.get_status() == PhoneStatus.REGISTERED
            ok = False
            if phone.sip.registerThread is not None:
                phone.sip.registerThread.cancel()
                phone.sip.registerThread = None  # so pyVoIP's stop() does not deregister again
                # pyVoIP takes the next SIP message it reads as the answer to its un-REGISTER
                # (a late ACK or retransmission fools it): try again, a few times.
                for _ in range(3 if registered else 0):
                    try:
                        ok = bool(phone.sip.deregister())
                    except Exception as exc:  # a dead server: report, keep stopping
                        log.warning("softphone.unregister_failed", extension=name, error=str(exc))
                        break
                    if ok:
                        break
            with contextlib.suppress(Exception):
                phone.stop()
            phone.release_held_ports()
            if registered:
                reason = None if ok else "no 200 OK to the un-REGISTER"
                self._emit(SoftphoneEvent("unregistered", name, time.monotonic(), reason=reason))

    def _hangup_phone(self, phone: _Phone) -> list[str]:
        """BYE the answered calls; wait (bounded) for their 200 OK and their "ended" event."""
        sent: list[_Call] = []
        for call in list(phone.calls.values()):
            if isinstance(call, _Call) and call.state == CallState.ANSWERED:
                with contextlib.suppress(Exception):
                    call.hangup()
                    sent.append(call)
        if sent:
            deadline = time.monotonic() + self.config.bye_timeout
            ids = {c.call_id for c in sent}
            with phone.bye_cond:
                while not ids <= phone.bye_acked:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        log.warning("softphone.bye_unanswered", extension=phone.extension.username)
                        break
                    phone.bye_cond.wait(left)
            for call in sent:
                call.finished.wait(max(0.0, deadline - time.monotonic()))
        return [c.call_id for c in sent]

    def hangup(self, extension: str | None = None) -> int:
        """Hang up (BYE) the answered calls of one extension, or of all; returns how many."""
        phones = [self._phones[extension]] if extension else list(self._phones.values())
        return sum(len(self._hangup_phone(p)) for p in phones)

    def __enter__(self) -> Softphone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- calls (pyVoIP thread)

    def _on_call(self, call: VoIPCall) -> None:
        """pyVoIP calls this in its own thread ~1 s after the INVITE; it lives for the call."""
        assert isinstance(call, _Call)
        try:
            self._run_call(call)
        except Exception as exc:
            log.error("softphone.call_failed", call_id=call.call_id, error=str(exc))
        finally:
            call.finished.set()

    def _run_call(self, call: _Call) -> None:
        phone = call.phone
        assert isinstance(phone, _Phone)
        ext = phone.extension.username
        caller = _caller(call.request)
        call_id = call.call_id
        self._emit(SoftphoneEvent("ringing", ext, time.monotonic(), call_id=call_id, caller=caller))
        wait = self.config.answer_delay - (time.monotonic() - call.invited_at)
        if wait > 0:
            call.ended.wait(wait)  # set early by a CANCEL or by stop()
        phone.release_held_ports(call)  # pyVoIP binds them in answer(), next
        if self._stopping.is_set() or call.state != CallState.RINGING:
            if call.state == CallState.RINGING:  # stopping: refuse (pyVoIP can only say 486)
                with contextlib.suppress(Exception):
                    call.deny()
            self._emit(
                SoftphoneEvent("cancelled", ext, time.monotonic(), call_id=call_id, caller=caller)
            )
            return
        if self.config.record_dir is not None:
            call.recorder = WavRecorder(self._recording_path(ext))
        try:
            call.answer()
        except Exception as exc:
            log.error("softphone.answer_failed", extension=ext, error=str(exc))
            if call.recorder is not None:
                call.recorder.close()
            with contextlib.suppress(Exception):
                call.deny()  # do not leave the PBX waiting for an answer
            return
        delay = time.monotonic() - call.invited_at
        self._emit(
            SoftphoneEvent(
                "answered",
                ext,
                time.monotonic(),
                call_id=call_id,
                caller=caller,
                answer_delay=delay,
            )
        )
        if self._play_data is not None:
            call.write_audio(self._play_data)
        call.ended.wait()
        rec = call.recorder
        if rec is not None:
            rec.close()
        self._emit(
            SoftphoneEvent(
                "ended",
                ext,
                time.monotonic(),
                call_id=call_id,
                caller=caller,
                reason=call.end_reason,
                recording=rec.path if rec else None,
                recorded_seconds=rec.seconds if rec else None,
                recorded_rms=rec.rms if rec else None,
            )
        )

    def _recording_path(self, ext: str) -> Path:
        assert self.config.record_dir is not None
        with self._lock:
            self._call_seq += 1
            seq = self._call_seq
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return self.config.record_dir / f"{ext}-{seq:03d}-{stamp}.wav"

    # ---------------------------------------------------------------- events

    def _emit(self, event: SoftphoneEvent) -> None:
        fields: dict[str, object] = {
            k: v
            for k, v in (
                ("extension", event.extension),
                ("call_id", event.call_id),
                ("caller", event.caller),
                (
                    "answer_delay_s",
                    None if event.answer_delay is None else round(event.answer_delay, 3),
                ),
                ("reason", event.reason),
                ("recording", None if event.recording is None else str(event.recording)),
                (
                    "recorded_s",
                    None if event.recorded_seconds is None else round(event.recorded_seconds, 2),
                ),
                (
                    "recorded_rms",
                    None if event.recorded_rms is None else round(event.recorded_rms, 1),
                ),
            )
            if v is not None
        }
        level = "warning" if event.kind == "registration_failed" else "info"
        getattr(log, level)(f"softphone.{event.kind}", **fields)
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception as exc:
                log.warning("softphone.on_event_failed", error=str(exc))

    @property
    def events(self) -> list[SoftphoneEvent]:
        with self._cond:
            return list(self._events)

    def mark(self) -> int:
        """The number of events so far: pass it as ``since`` to wait for a later one."""
        with self._cond:
            return len(self._events)

    def wait_for(
        self,
        kind: EventKind,
        extension: str | None = None,
        *,
        timeout: float = 10.0,
        since: int = 0,
    ) -> SoftphoneEvent:
        """The first event of ``kind`` (for ``extension``) at index >= ``since``; waits for it.

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self._events):
                    ev = self._events[i]
                    if ev.kind == kind and (extension is None or ev.extension == extension):
                        return ev
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {kind!r} event for {extension or 'any extension'}")
                self._cond.wait(left)

    async def wait_for_async(
        self,
        kind: EventKind,
        extension: str | None = None,
        *,
        within: float = 10.0,
        since: int = 0,
    ) -> SoftphoneEvent:
        """:meth:`wait_for` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for, kind, extension, timeout=within, since=since)

    def active_calls(self, extension: str | None = None) -> list[str]:
        """Call-IDs of the answered calls still up."""
        out: list[str] = []
        for name, phone in self._phones.items():
            if extension is None or name == extension:
                out.extend(
                    cid for cid, c in list(phone.calls.items()) if c.state == CallState.ANSWERED
                )
        return out

    def local_sip_port(self, extension: str) -> int:
        return int(self._phones[extension].sip.myPort)


def _caller(request: SIP.SIPMessage) -> str:
    frm = request.headers.get("From", {})
    number = frm.get("number") or frm.get("caller") or "?"
    return mask_digits(str(number))
