"""The lab PBX configuration builder (no Asterisk needed): every placeholder filled, secrets
generated, the production AMI classes kept, generated sounds 8 kHz mono; the lab number table."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import phonenumbers
import pytest

from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import BEHAVIOURS, behaviour_of, expected_outcome, lab_number
from dialer.pbx_lab import (
    DEPLOY,
    LAB_SOUNDS,
    LabPorts,
    LabSecrets,
    build_conf,
    choose_ports,
)


def _build(tmp_path: Path) -> tuple[Path, LabPorts, LabSecrets]:
    ports = LabPorts(ami=40000, sip=40001, rtp_start=40002, rtp_end=40201)
    sec = LabSecrets.generate()
    build_conf(tmp_path / "conf", ports, sec)
    return tmp_path / "conf", ports, sec


def test_conf_dir_is_complete_and_filled(tmp_path: Path) -> None:
    conf, ports, sec = _build(tmp_path)
    for path in conf.glob("*.conf"):
        text = path.read_text(encoding="utf-8")
        assert "@@" not in text, path.name
        assert "CHANGE-ME" not in text, path.name
    manager = (conf / "manager.conf").read_text(encoding="utf-8")
    assert f"port = {ports.ami}" in manager and "bindaddr = 127.0.0.1" in manager
    assert f"secret = {sec.ami}" in manager and f"secret = {sec.admin}" in manager
    production = (DEPLOY / "manager.conf").read_text(encoding="utf-8")
    for line in ("read = call,dialplan,system", "write = originate,call,reporting,system"):
        assert line in production and line in manager  # the lab tests the production classes
    pjsip = (conf / "pjsip.conf").read_text(encoding="utf-8")
    assert f"bind = 127.0.0.1:{ports.sip}" in pjsip and "#include pjsip_lab.conf" in pjsip
    seats = (conf / "pjsip_lab.conf").read_text(encoding="utf-8")
    for ext, password in sec.agents.items():
        assert f"[{ext}](marcador-agent-endpoint)" in seats and f"password = {password}" in seats
    assert (conf / "manager.conf").stat().st_mode & 0o077 == 0
    rtp = (conf / "rtp.conf").read_text(encoding="utf-8")
    assert f"rtpstart = {ports.rtp_start}" in rtp and f"rtpend = {ports.rtp_end}" in rtp
    assert {"amd.conf", "confbridge.conf", "indications.conf", "cdr.conf"} <= {
        p.name for p in conf.iterdir()
    }


def test_timestamp_events_only_when_asked(tmp_path: Path) -> None:
    """bench_pbx measures with the PBX's own clock (``Timestamp`` on every AMI event); the
    default lab keeps the production manager.conf's [general] as it is."""
    ports = LabPorts(ami=40000, sip=40001, rtp_start=40002, rtp_end=40201)
    sec = LabSecrets.generate()
    build_conf(tmp_path / "plain", ports, sec)
    build_conf(tmp_path / "ts", ports, sec, timestamp_events=True)
    plain = (tmp_path / "plain" / "manager.conf").read_text(encoding="utf-8")
    stamped = (tmp_path / "ts" / "manager.conf").read_text(encoding="utf-8")
    assert "timestampevents" not in plain
    general = stamped.split("[general]", 1)[1].split("[", 1)[0]
    assert re.search(r"^timestampevents = yes$", general, re.MULTILINE)


def test_secrets_are_generated_per_lab() -> None:
    a, b = LabSecrets.generate(), LabSecrets.generate()
    assert a.ami != b.ami and a.agents["1001"] != b.agents["1001"]
    assert len(a.ami) >= 24


def test_generated_sounds_are_8khz_mono_of_the_right_length(tmp_path: Path) -> None:
    conf, _, _ = _build(tmp_path)
    for name, (seconds, _) in LAB_SOUNDS.items():
        for lang in ("es", "en"):
            with wave.open(str(conf / "sounds" / lang / f"{name}.wav")) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
                assert w.getnframes() == int(seconds * 8000)


def test_free_ports_are_distinct() -> None:
    ports = choose_ports()
    assert len({ports.ami, ports.sip, ports.rtp_start}) == 3
    assert ports.rtp_end - ports.rtp_start + 1 == 200


def test_production_files_hold_no_known_pitfall() -> None:
    manager = (DEPLOY / "manager.conf").read_text(encoding="utf-8")
    general = manager.split("[marcador]", 1)[0]
    assert not re.search(r"^writetimeout", general, re.MULTILINE)  # a per-user option
    assert re.search(r"^writetimeout = \d+", manager.split("[marcador]", 1)[1], re.MULTILINE)
    confbridge = (DEPLOY / "confbridge.conf").read_text(encoding="utf-8")
    assert not re.search(r"^sound_\w+\s*=", confbridge, re.MULTILINE)
    pjsip = (DEPLOY / "pjsip.conf").read_text(encoding="utf-8")
    assert "sip.carrier.example" not in pjsip  # the trunk lives in pjsip_trunk.conf.example
    assert (DEPLOY / "pjsip_trunk.conf.example").exists()
    assert "total_analysis_time" in (DEPLOY / "amd.conf").read_text(encoding="utf-8")


def test_lab_numbers_and_expected_outcomes() -> None:
    assert len(BEHAVIOURS) == 10
    for digit in BEHAVIOURS:
        number = lab_number(digit, 42)
        assert phonenumbers.is_valid_number(phonenumbers.parse(number)), number
        assert behaviour_of(number).digit == digit
    assert expected_outcome(lab_number("7", 1)) is CallOutcome.ANSWERED_CONNECTED
    assert expected_outcome(lab_number("7", 1), amd=True) is CallOutcome.MACHINE
    assert expected_outcome("+573001234562") is CallOutcome.BUSY
    with pytest.raises(ValueError, match="ends in a digit"):
        behaviour_of("+57300123456x")
