"""``dialer.softphone`` without a PBX: specs, audio conversion, recorder and the pyVoIP fixes."""

from __future__ import annotations

import socket
import threading
import warnings
import wave
from pathlib import Path

import pytest

with warnings.catch_warnings():  # after dialer.softphone: audioop is deprecated in 3.11+
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

    from pyVoIP import RTP

from dialer.softphone import (
    Extension,
    SoftphoneConfig,
    SoftphoneEvent,
    SpecError,
    WavRecorder,
    _Phone,
    _RtpClient,
    extensions_from_spec,
    load_spec,
    load_wav_8k_mono,
    parse_extension,
    parse_port_range,
    pcm16_to_pyvoip,
    wav_rms,
    write_tone_wav,
)


def _write_wav(path: Path, rate: int, channels: int, width: int, frames: bytes) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)


# --------------------------------------------------------------------------- config


def test_extension_repr_never_shows_the_password() -> None:
    ext = parse_extension("1001:s3cr:et", server="pbx", port=5070)
    assert ext == Extension("1001", "s3cr:et", "pbx", 5070)
    assert "s3cr" not in repr(ext)
    assert "s3cr" not in repr(SoftphoneConfig(extensions=(ext,)))


@pytest.mark.parametrize("text", ["1001", ":pw", ""])
def test_parse_extension_rejects_malformed(text: str) -> None:
    with pytest.raises(SpecError):
        parse_extension(text)


def test_spec_from_text_and_file(tmp_path: Path) -> None:
    text = (
        '{"server": "10.0.0.5", "port": 5070, "extensions": ['
        '{"username": "1001", "password": "a"},'
        '{"username": "1002", "password": "b", "server": "10.0.0.6", "port": 5080}]}'
    )
    f = tmp_path / "spec.json"
    f.write_text(text, encoding="utf-8")
    for source in (text, str(f)):
        exts = extensions_from_spec(load_spec(source))
        assert exts == [
            Extension("1001", "a", "10.0.0.5", 5070),
            Extension("1002", "b", "10.0.0.6", 5080),
        ]


@pytest.mark.parametrize(
    "text", ['{"extensions": [{"username": "1"}]}', "[1]", "{bad json", "/no/such/spec.json"]
)
def test_bad_specs_are_spec_errors(text: str) -> None:
    with pytest.raises(SpecError):
        extensions_from_spec(load_spec(text))


def test_port_range_and_config_validation() -> None:
    assert parse_port_range("30000-30099") == (30000, 30099)
    assert parse_port_range("30000") == (30000, 30000)
    for bad in ("x-y", "200-100", "0-10"):
        with pytest.raises(SpecError):
            parse_port_range(bad)
    with pytest.raises(SpecError):
        SoftphoneConfig(extensions=())
    ext = Extension("1001", "pw")
    with pytest.raises(SpecError):
        SoftphoneConfig(extensions=(ext, ext))


def test_status_lines() -> None:
    ev = SoftphoneEvent("answered", "1001", 0.0, caller="anonymous", answer_delay=1.004)
    assert ev.status_line() == "call answered 1001 from anonymous after 1.00 s"
    ended = SoftphoneEvent(
        "ended",
        "1001",
        0.0,
        reason="remote_bye",
        recording=Path("r.wav"),
        recorded_seconds=2.0,
        recorded_rms=5650.0,
    )
    assert ended.status_line() == "call ended 1001 (remote_bye), recorded 2.0 s rms 5650 to r.wav"


# --------------------------------------------------------------------------- audio


def test_wav_is_converted_to_8k_mono_16bit(tmp_path: Path) -> None:
    # 0.5 s of a 16 kHz stereo 16-bit tone -> 4000 samples at 8 kHz.
    src = tmp_path / "tone8k.wav"
    write_tone_wav(src, 0.5, 400.0)
    pcm8k = load_wav_8k_mono(src)
    up, _ = audioop.ratecv(pcm8k, 2, 1, 8000, 16000, None)
    stereo = audioop.tostereo(up, 2, 1, 1)
    wide = tmp_path / "wide.wav"
    _write_wav(wide, 16000, 2, 2, stereo)
    out = load_wav_8k_mono(wide)
    assert abs(len(out) // 2 - 4000) <= 2
    assert audioop.rms(out, 2) == pytest.approx(audioop.rms(pcm8k, 2), rel=0.05)


def test_8bit_wav_is_unsigned(tmp_path: Path) -> None:
    silent = tmp_path / "u8.wav"
    _write_wav(silent, 8000, 1, 1, b"\x80" * 800)  # 8-bit silence is 0x80
    assert audioop.rms(load_wav_8k_mono(silent), 2) == 0


def test_pyvoip_buffer_format_is_unsigned_8bit() -> None:
    assert pcm16_to_pyvoip(b"\x00\x00" * 4) == b"\x80" * 4


def test_recorder_places_audio_by_timestamp(tmp_path: Path) -> None:
    rec = WavRecorder(tmp_path / "r.wav")
    frame = b"\x10\x00" * 160
    rec.feed(1, 1000, frame)
    rec.feed(1, 1160, frame)
    rec.feed(1, 1000, frame)  # late duplicate: dropped
    rec.feed(1, 1480, frame)  # 160 samples lost: silence
    rec.feed(1, 1480 + 160 + 10 * 8000, frame)  # a 10 s gap: capped at 2 s
    rec.feed(2, 5, frame)  # a new source: a new timeline, no gap
    rec.close()
    with wave.open(str(tmp_path / "r.wav"), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == 160 * 5 + 160 + 2 * 8000
    assert rec.seconds == pytest.approx((160 * 6 + 16000) / 8000)
    assert wav_rms(tmp_path / "r.wav") > 0


# --------------------------------------------------------------------------- pyVoIP fixes


def _rtp_client(port: int, codec: RTP.PayloadType) -> _RtpClient:
    pt = 8 if codec == RTP.PayloadType.PCMA else 0
    client = RTP.RTPClient(
        {pt: codec}, "127.0.0.1", port, "127.0.0.1", 9, RTP.TransmitType.SENDRECV
    )
    client.__class__ = _RtpClient
    return client  # type: ignore[return-value]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rtp_start_twice_keeps_one_sender() -> None:
    """pyVoIP's start() on a re-INVITE adds a second sender and receiver thread (double-rate,
    garbled audio); ours starts once."""

    def senders() -> int:
        return sum(t.name == "RTP Transmitter" for t in threading.enumerate())

    before = senders()
    client = _rtp_client(_free_udp_port(), RTP.PayloadType.PCMU)
    client.start()
    try:
        client.start()
        assert senders() - before == 1
    finally:
        client.stop()


def test_pcma_frames_are_alaw_encoded() -> None:
    client = _rtp_client(_free_udp_port(), RTP.PayloadType.PCMA)
    pcm8 = pcm16_to_pyvoip(b"\x00\x10" * 160)
    expected = audioop.lin2alaw(audioop.bias(pcm8, 1, -128), 1)
    assert client.encode_packet(pcm8) == expected
    assert expected != audioop.lin2ulaw(audioop.bias(pcm8, 1, -128), 1)


def test_received_audio_goes_to_the_sink_as_16bit() -> None:
    client = _rtp_client(_free_udp_port(), RTP.PayloadType.PCMU)
    got: list[tuple[int, int, bytes]] = []
    client.sink = lambda ssrc, ts, pcm: got.append((ssrc, ts, pcm))
    payload = audioop.lin2ulaw(b"\x00\x10" * 160, 2)
    header = bytes([0x80, 0]) + (7).to_bytes(2, "big") + (480).to_bytes(4, "big")
    client.parse_packet(header + (99).to_bytes(4, "big") + payload)
    assert [(s, t, len(p)) for s, t, p in got] == [(99, 480, 320)]


class _FakeOwner:
    def __init__(self, low: int, high: int) -> None:
        self.config = SoftphoneConfig(
            extensions=(Extension("1001", "pw"),), rtp_port_low=low, rtp_port_high=high
        )

    def _on_call(self, call: object) -> None:
        raise AssertionError("no call expected")


def test_rtp_port_choice_skips_busy_ports_and_holds_its_choice() -> None:
    """pyVoIP picks any port of the range, bound or not; ours binds and holds it."""
    base = _free_udp_port()
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        busy.bind(("127.0.0.1", base))
    except OSError:
        pytest.skip("port raced away")
    owner = _FakeOwner(base, base + 1)
    phone = _Phone(owner, owner.config.extensions[0], "127.0.0.1", _free_udp_port())  # type: ignore[arg-type]
    try:
        with busy:
            try:
                port = phone.request_port()
            except Exception:
                pytest.skip("neighbour port taken by another process")
            assert port == base + 1
            assert port in phone.held_rtp
            other = _Phone(owner, owner.config.extensions[0], "127.0.0.1", _free_udp_port())  # type: ignore[arg-type]
            with pytest.raises(Exception, match="no free RTP port"):
                other.request_port()
    finally:
        phone.release_held_ports()
    assert phone.held_rtp == {}
