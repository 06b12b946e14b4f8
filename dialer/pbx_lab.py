"""A lab Asterisk 22 for tests, chaos and admins: ``marcador pbx-lab start|stop|status``.

It builds a configuration directory from the production files (``deploy/asterisk``) plus the
lab overlay (``deploy/asterisk/lab``): simulated customers chosen by a number's last digit,
virtual agents, agent seats 1001-1010 and supervisor 2001, ``amd.conf``, ``transmit_silence``
and an RTP range. Secrets (AMI, agent passwords) are generated and ports (AMI, SIP, RTP) are
chosen free at start, so several labs run side by side. Then it starts the prebuilt bundle
(``../shared/asterisk`` or ``MARCADOR_ASTERISK_BUNDLE``) with its ``start-asterisk`` script and
writes ``<run_dir>/lab.json`` (mode 0600) with everything a dialer or a test needs.

Python API (tests use it)::

    lab = LabPbx.start(run_dir)            # or LabPbx.load(run_dir) for a running one
    lab.ami                                 # AmiCredentials of the production-classes user
    lab.admin                               # AmiCredentials of the lab-admin user (all classes)
    lab.servers_json(virtual_agents=True)   # MARCADOR_ASTERISK__SERVERS value
    lab.cli("dialplan show marcador-hold")  # CLI output
    lab.log_problems()                      # WARNING/ERROR lines of the Asterisk log
    lab.active_channels(); lab.hangup_all() # between tests
    lab.stop()

Sounds are generated here as 8 kHz mono WAV with the standard library: no audio is committed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

from dialer.lab_pstn import LAB_TRUNK, PHONE_AGENT_CHANNEL, TALKER_TONE_HZ, VIRTUAL_AGENT_CHANNEL
from dialer.webrtc import seat_password

ROOT: Final = Path(__file__).resolve().parents[1]
DEPLOY: Final = ROOT / "deploy" / "asterisk"
OVERLAY: Final = DEPLOY / "lab"
BUNDLE_ENV: Final = "MARCADOR_ASTERISK_BUNDLE"
STATE_FILE: Final = "lab.json"
AGENT_SEATS: Final = tuple(str(n) for n in range(1001, 1011))
SUPERVISOR_SEATS: Final = ("2001",)
#: Browser-phone (WebRTC) variants of the seats: ``webrtc = yes``, registered over WS.
WEBRTC_AGENT_SEATS: Final = tuple(str(n) for n in range(1101, 1111))
WEBRTC_SUPERVISOR_SEATS: Final = ("2101",)
WEBRTC_SEATS: Final = WEBRTC_AGENT_SEATS + WEBRTC_SUPERVISOR_SEATS
#: ``MARCADOR_WEBRTC__EXTENSIONS`` of a stack on this lab.
WEBRTC_EXTENSIONS: Final = "1101-1110,2101"
AMI_USER: Final = "marcador"
ADMIN_USER: Final = "lab-admin"
RTP_PORTS: Final = 200  # 100 concurrent G.711 calls (RTP + RTCP per leg pair)
SAMPLE_RATE: Final = 8000

Progress = Callable[[str], None]


class LabError(RuntimeError):
    """The lab PBX could not be built, started or stopped."""


class AmiCredentials(NamedTuple):
    host: str
    port: int
    username: str
    secret: str


def bundle_dir() -> Path:
    """The Asterisk bundle: ``$MARCADOR_ASTERISK_BUNDLE``, else ``<repo>/../shared/asterisk``
    (or, for a git worktree one level deeper, ``<repo>/../../shared/asterisk`` if only that
    one exists)."""
    env = os.environ.get(BUNDLE_ENV)
    if env:
        return Path(env).resolve()
    default = (ROOT.parent / "shared" / "asterisk").resolve()
    deeper = (ROOT.parent.parent / "shared" / "asterisk").resolve()
    if not bundle_present(default) and bundle_present(deeper):
        return deeper
    return default


def bundle_present(bundle: Path | None = None) -> bool:
    b = bundle or bundle_dir()
    return (b / "start-asterisk").is_file() and any(b.glob("asterisk-*-x86_64.tar.xz"))


# ------------------------------------------------------------------------------ ports


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True, slots=True)
class LabPorts:
    ami: int
    sip: int
    rtp_start: int
    rtp_end: int
    #: Asterisk's HTTP server on loopback: SIP over WebSocket at ws://127.0.0.1:<http>/ws.
    http: int = 0


def choose_ports(rng: random.Random | None = None) -> LabPorts:
    """Free AMI (TCP), SIP (UDP), an RTP range (UDP) and HTTP (TCP, the WebSocket transport),
    random so parallel labs rarely meet."""
    r = rng or random.SystemRandom()
    for _ in range(200):
        base = r.randrange(20_000, 59_000, 2)
        ami, sip = base, base + 1
        rtp_start = base + 2
        rtp_end = rtp_start + RTP_PORTS - 1
        http = rtp_end + 1
        if not (_tcp_free(ami) and _udp_free(sip) and _tcp_free(http)):
            continue
        probe = range(rtp_start, rtp_end + 1, 10)
        if all(_udp_free(p) for p in probe):
            return LabPorts(ami, sip, rtp_start, rtp_end, http)
    raise LabError("no free port range found for the lab PBX")


# ------------------------------------------------------------------------------ sounds


def _speech_like(seconds: float, seed: int, syllables_per_s: float = 4.0) -> list[int]:
    """Voiced, syllable-modulated tone with a little noise: AMD counts it as one long word
    (the envelope never drops to silence) and a listener hears something voice-like."""
    rng = random.Random(seed)
    n = int(seconds * SAMPLE_RATE)
    out: list[int] = []
    f0 = 120.0 + rng.random() * 60.0
    phase = 0.0
    for i in range(n):
        t = i / SAMPLE_RATE
        pitch = f0 * (1.0 + 0.08 * math.sin(2 * math.pi * 0.7 * t))
        phase += 2 * math.pi * pitch / SAMPLE_RATE
        voiced = sum(math.sin(k * phase) / k for k in (1, 2, 3, 4, 5))
        envelope = 0.65 + 0.35 * math.sin(2 * math.pi * syllables_per_s * t) ** 2
        edge = min(1.0, t / 0.02, (seconds - t) / 0.02)  # 20 ms fades: no clicks
        sample = 7000.0 * envelope * edge * voiced / 2.3 + rng.gauss(0.0, 300.0) * edge
        out.append(max(-32767, min(32767, int(sample))))
    return out


def write_wav(path: Path, samples: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))


#: name (under sounds/<lang>/) -> (seconds, seed)
LAB_SOUNDS: Final = {
    "custom/human": (0.8, 1),
    "custom/machine": (6.0, 2),
    "marcador/safe-harbor": (3.0, 3),
    "marcador/machine-message": (4.0, 4),
}


#: name (under sounds/<lang>/) -> (seconds, frequency): pure tones an agent's phone can tell
#: apart from speech (the talker customers, ``dialer.lab_pstn.TALKER_PREFIX``).
LAB_TONES: Final = {"custom/tone": (2.0, TALKER_TONE_HZ)}


def _tone(seconds: float, freq: float, amplitude: float = 8000.0) -> list[int]:
    n = int(seconds * SAMPLE_RATE)
    return [int(amplitude * math.sin(2 * math.pi * freq * i / SAMPLE_RATE)) for i in range(n)]


def generate_sounds(sounds_dir: Path, languages: tuple[str, ...] = ("es", "en")) -> None:
    for name, (seconds, seed) in LAB_SOUNDS.items():
        samples = _speech_like(seconds, seed)
        for lang in languages:
            write_wav(sounds_dir / lang / f"{name}.wav", samples)
    for name, (seconds, freq) in LAB_TONES.items():
        samples = _tone(seconds, freq)
        for lang in languages:
            write_wav(sounds_dir / lang / f"{name}.wav", samples)


def write_lab_moh(conf_dir: Path) -> None:
    """The shipped ``musiconhold.conf`` with its ``default`` class pointed at a generated file
    (``conf_dir/moh``): the lab's hold control plays real audio, and Asterisk does not warn
    "No music on hold classes configured"."""
    moh = (conf_dir / "moh").resolve()
    write_wav(moh / "marcador-hold.wav", _speech_like(4.0, 5, syllables_per_s=2.0))
    text = _sub_once(
        r"(?m)^directory = moh$",
        f"directory = {moh}",
        (DEPLOY / "musiconhold.conf").read_text(encoding="utf-8"),
        "musiconhold.conf directory",
    )
    (conf_dir / "musiconhold.conf").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------ config


@dataclass(slots=True)
class LabSecrets:
    ami: str
    admin: str
    agents: dict[str, str]
    #: ``MARCADOR_WEBRTC__SECRET``: the browser seats' passwords are derived from it
    #: (:func:`dialer.webrtc.seat_password`), as a production PBX's would be.
    webrtc: str = ""

    @classmethod
    def generate(cls) -> LabSecrets:
        seats = AGENT_SEATS + SUPERVISOR_SEATS
        return cls(
            ami=secrets.token_urlsafe(24),
            admin=secrets.token_urlsafe(24),
            agents={ext: secrets.token_urlsafe(18) for ext in seats},
            webrtc=secrets.token_urlsafe(24),
        )


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise LabError(f"unfilled lab placeholders: {sorted(set(left))}")
    return text


def _sub_once(pattern: str, repl: str, text: str, what: str) -> str:
    out, n = re.subn(pattern, repl, text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise LabError(f"deploy/asterisk changed: cannot find {what}")
    return out


def lab_manager_conf(ports: LabPorts, sec: LabSecrets, *, timestamp_events: bool = False) -> str:
    """Production manager.conf (its [marcador] classes unchanged) on loopback, plus lab-admin.
    ``timestamp_events`` adds ``timestampevents = yes`` (a ``Timestamp`` header on every event,
    the PBX's own clock: scripts/bench_pbx.py measures latencies with it)."""
    text = (DEPLOY / "manager.conf").read_text(encoding="utf-8")
    if timestamp_events:
        text = _sub_once(
            r"^\[general\]\s*$", "[general]\ntimestampevents = yes", text, "manager [general]"
        )
    text = _sub_once(r"^bindaddr\s*=.*$", "bindaddr = 127.0.0.1", text, "manager bindaddr")
    text = _sub_once(r"^port\s*=.*$", f"port = {ports.ami}", text, "manager port")
    text = _sub_once(r"^secret\s*=.*$", f"secret = {sec.ami}", text, "manager secret")
    text = re.sub(r"^permit\s*=.*$", "", text, flags=re.MULTILINE)
    text = _sub_once(
        r"^deny\s*=.*$",
        "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255",
        text,
        "manager deny",
    )
    admin = (OVERLAY / "manager_lab.conf").read_text(encoding="utf-8")
    return text + _fill(admin, {"ADMIN_SECRET": sec.admin})


def lab_pjsip_conf(ports: LabPorts) -> str:
    """Production pjsip.conf on a loopback port, without its example seats; the WebRTC
    template on plain WS (the lab's HTTP server is loopback-only, a secure context for a
    browser on the same host) with a DTLS certificate Asterisk generates at start."""
    text = (DEPLOY / "pjsip.conf").read_text(encoding="utf-8")
    text = _sub_once(r"^bind\s*=.*$", f"bind = 127.0.0.1:{ports.sip}", text, "transport bind")
    text = _sub_once(
        r"^\[transport-wss\]\ntype = transport\nprotocol = wss$",
        "[transport-ws]\ntype = transport\nprotocol = ws",
        text,
        "the transport-wss block",
    )
    text = _sub_once(
        r"^transport = transport-wss$", "transport = transport-ws", text, "webrtc transport"
    )
    text = _sub_once(
        r"^dtls_cert_file = .*\ndtls_private_key = .*$",
        "dtls_auto_generate_cert = yes",
        text,
        "webrtc dtls certificate",
    )
    start = text.index("; ---------------------------------------------------------------- agents")
    end = text.index("; ---------------------------------------------------------------- carrier")
    return text[:start] + "#include pjsip_lab.conf\n\n" + text[end:]


def lab_seats(sec: LabSecrets) -> str:
    blocks = []
    seats = [(ext, password, "agent") for ext, password in sec.agents.items()]
    if sec.webrtc:
        seats += [(ext, seat_password(sec.webrtc, ext), "webrtc") for ext in WEBRTC_SEATS]
    for ext, password, kind in seats:
        who = "Supervisor" if ext in SUPERVISOR_SEATS + WEBRTC_SUPERVISOR_SEATS else "Agente"
        blocks.append(
            f"[{ext}](marcador-{kind}-endpoint)\naors = {ext}\nauth = {ext}\n"
            f'callerid = "{who} {ext}" <{ext}>\n\n[{ext}](marcador-{kind}-aor)\n\n'
            f"[{ext}](marcador-agent-auth)\nusername = {ext}\npassword = {password}\n"
        )
    template = (OVERLAY / "pjsip_lab.conf").read_text(encoding="utf-8")
    return _fill(template, {"SEATS": "\n".join(blocks)})


def split_core_defaults() -> dict[str, str]:
    """``lab/core_defaults.conf`` split at its ``; ==== <file>`` markers."""
    files: dict[str, str] = {}
    current: str | None = None
    for line in (OVERLAY / "core_defaults.conf").read_text(encoding="utf-8").splitlines():
        if line.startswith("; ==== "):
            current = line.removeprefix("; ==== ").strip()
            files[current] = "; Marcador LAB (deploy/asterisk/lab/core_defaults.conf)\n"
        elif current is not None:
            files[current] += line + "\n"
    return files


def build_conf(
    conf_dir: Path, ports: LabPorts, sec: LabSecrets, *, timestamp_events: bool = False
) -> None:
    """Write a complete CONF_DIR for ``start-asterisk``."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOY / "extensions.conf", conf_dir / "extensions_marcador.conf")
    shutil.copyfile(OVERLAY / "extensions_lab.conf", conf_dir / "extensions_lab.conf")
    (conf_dir / "extensions.conf").write_text(
        "; Marcador LAB: the production dialplan plus the lab contexts.\n"
        "#include extensions_marcador.conf\n#include extensions_lab.conf\n",
        encoding="utf-8",
    )
    for name in ("confbridge.conf", "amd.conf"):
        shutil.copyfile(DEPLOY / name, conf_dir / name)
    for name in ("asterisk.conf", "logger.conf", "modules.conf"):
        shutil.copyfile(OVERLAY / name, conf_dir / name)
    for name, text in split_core_defaults().items():
        (conf_dir / name).write_text(text, encoding="utf-8")
    http = (OVERLAY / "http.conf").read_text(encoding="utf-8")
    (conf_dir / "http.conf").write_text(_fill(http, {"HTTP_PORT": str(ports.http)}), "utf-8")
    rtp = (OVERLAY / "rtp.conf").read_text(encoding="utf-8")
    values = {"RTP_START": str(ports.rtp_start), "RTP_END": str(ports.rtp_end)}
    (conf_dir / "rtp.conf").write_text(_fill(rtp, values), encoding="utf-8")
    (conf_dir / "pjsip.conf").write_text(lab_pjsip_conf(ports), encoding="utf-8")
    secret_files = {
        "manager.conf": lab_manager_conf(ports, sec, timestamp_events=timestamp_events),
        "pjsip_lab.conf": lab_seats(sec),
    }
    for name, text in secret_files.items():
        path = conf_dir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
    generate_sounds(conf_dir / "sounds")
    write_lab_moh(conf_dir)


# ------------------------------------------------------------------------------ the lab


@dataclass(slots=True)
class LabPbx:
    run_dir: Path
    ports: LabPorts
    secrets: LabSecrets
    pid: int
    bundle: Path
    host: str = "127.0.0.1"
    name: str = "lab"
    extra: dict[str, Any] = field(default_factory=dict)

    # -- paths
    @property
    def conf_dir(self) -> Path:
        return self.run_dir / "conf"

    @property
    def pbx_dir(self) -> Path:
        return self.run_dir / "pbx"

    @property
    def state_file(self) -> Path:
        return self.run_dir / STATE_FILE

    # -- credentials
    @property
    def ami(self) -> AmiCredentials:
        """The production-classes AMI user (what a dialer logs in with)."""
        return AmiCredentials(self.host, self.ports.ami, AMI_USER, self.secrets.ami)

    @property
    def admin(self) -> AmiCredentials:
        """The lab-admin AMI user: read/write all (restart, CLI commands) - tests only."""
        return AmiCredentials(self.host, self.ports.ami, ADMIN_USER, self.secrets.admin)

    @property
    def ws_url(self) -> str:
        """SIP over WebSocket (RFC 7118) of the browser-phone seats: plain WS on loopback."""
        return f"ws://{self.host}:{self.ports.http}/ws"

    def webrtc_env(self) -> dict[str, str]:
        """The ``MARCADOR_WEBRTC__*`` settings of an API serving browser phones on this lab."""
        return {
            "MARCADOR_WEBRTC__WS_URL": self.ws_url,
            "MARCADOR_WEBRTC__SECRET": self.secrets.webrtc,
            "MARCADOR_WEBRTC__EXTENSIONS": WEBRTC_EXTENSIONS,
        }

    @property
    def agent_passwords(self) -> dict[str, str]:
        return dict(self.secrets.agents)

    def server(self, *, virtual_agents: bool = True, max_channels: int = 60) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "port": self.ports.ami,
            "username": AMI_USER,
            "secret": self.secrets.ami,
            "trunk": LAB_TRUNK,
            "agent_channel": VIRTUAL_AGENT_CHANNEL if virtual_agents else PHONE_AGENT_CHANNEL,
            "max_channels": max_channels,
        }

    def servers_json(self, *, virtual_agents: bool = True, max_channels: int = 60) -> str:
        """The ``MARCADOR_ASTERISK__SERVERS`` value for a dialer on this lab (holds the secret)."""
        return json.dumps([self.server(virtual_agents=virtual_agents, max_channels=max_channels)])

    # -- lifecycle
    @classmethod
    def start(
        cls,
        run_dir: Path,
        *,
        bundle: Path | None = None,
        progress: Progress | None = None,
        timeout: float = 90.0,
        timestamp_events: bool = False,
    ) -> LabPbx:
        """Build the configuration, start Asterisk, wait until fully booted, write lab.json.
        ``timestamp_events``: AMI events carry a ``Timestamp`` header (benchmarks)."""
        say = progress or (lambda _msg: None)
        bundle = (bundle or bundle_dir()).resolve()
        if not bundle_present(bundle):
            raise LabError(f"no Asterisk bundle at {bundle} (set {BUNDLE_ENV})")
        run_dir = run_dir.resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        run_dir.chmod(0o700)
        if (run_dir / STATE_FILE).exists():
            previous: LabPbx | None = None
            with contextlib.suppress(LabError):
                previous = cls.load(run_dir)
            if previous is not None and previous.running():
                raise LabError(f"a lab is already running in {run_dir}: pbx-lab stop first")
        last: Exception | None = None
        for _ in range(3):  # a port may be taken by a parallel lab between choice and bind
            ports = choose_ports()
            sec = LabSecrets.generate()
            conf = run_dir / "conf"
            if conf.exists():
                shutil.rmtree(conf)
            say(f"building the configuration in {conf} (AMI {ports.ami}, SIP {ports.sip})")
            build_conf(conf, ports, sec, timestamp_events=timestamp_events)
            for old in ("messages.log", "full.log"):  # log_problems() reads this start only
                (run_dir / "pbx" / "log" / old).unlink(missing_ok=True)
            say("starting Asterisk (the first start unpacks the bundle, a few seconds)")
            env = {**os.environ, "START_ASTERISK_TIMEOUT": str(int(timeout))}
            done = subprocess.run(
                [str(bundle / "start-asterisk"), str(run_dir / "pbx"), str(conf)],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout + 60,
                check=False,
            )
            if done.returncode == 0:
                pid = int(done.stdout.strip().splitlines()[-1])
                lab = cls(run_dir, ports, sec, pid, bundle)
                lab.save()
                say(f"Asterisk running, pid {pid}")
                return lab
            last = LabError(f"start-asterisk failed: {done.stderr.strip()[-2000:]}")
            if "already taken" not in done.stderr:
                break
        assert last is not None
        raise last

    def save(self) -> None:
        data = {
            "run_dir": str(self.run_dir),
            "ports": asdict(self.ports),
            "secrets": asdict(self.secrets),
            "pid": self.pid,
            "bundle": str(self.bundle),
            "host": self.host,
            "name": self.name,
            "servers": [self.server()],
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, run_dir: Path) -> LabPbx:
        path = run_dir / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LabError(f"no lab state in {path}: {exc}") from None
        return cls(
            Path(data["run_dir"]),
            LabPorts(**data["ports"]),
            LabSecrets(**data["secrets"]),
            int(data["pid"]),
            Path(data["bundle"]),
            data.get("host", "127.0.0.1"),
            data.get("name", "lab"),
        )

    def running(self) -> bool:
        pidfile = self.pbx_dir / "asterisk.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """Run one Asterisk CLI command (``asterisk -rx``) and return its output."""
        done = subprocess.run(
            [str(self.pbx_dir / "cli"), "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return done.stdout

    def active_channels(self) -> int:
        out = self.cli("core show channels count")
        m = re.search(r"(\d+) active channels?", out)
        return int(m.group(1)) if m else -1

    def hangup_all(self, within: float = 15.0) -> None:
        """Hang up every channel (between tests: a stopped dialer leaves its agents' login
        calls up, issue 14 item 6) and wait until none is left."""
        deadline = time.monotonic() + within
        while self.active_channels() != 0:
            if time.monotonic() > deadline:
                raise LabError(f"channels still up after {within:.0f} s")
            self.cli("channel request hangup all")
            time.sleep(0.2)  # polling another process's state; no event to await here

    def log_problems(self) -> list[str]:
        """WARNING and ERROR lines of ``messages.log`` (what a config mistake produces)."""
        path = self.pbx_dir / "log" / "messages.log"
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []
        return [ln for ln in lines if "WARNING[" in ln or "ERROR[" in ln]

    def stop(self) -> None:
        """``stop-asterisk``: core stop now, then SIGTERM/SIGKILL of the recorded pid only."""
        script = self.bundle / "stop-asterisk"
        done = subprocess.run(
            [str(script), str(self.pbx_dir)], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise LabError(f"stop-asterisk failed: {done.stderr.strip()[-500:]}")
