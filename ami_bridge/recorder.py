"""Record live AMI sessions as transcript files (the format of ``ami_bridge/transcripts.py``).

Used by the real-PBX tier (``tests/pbx/test_record_transcripts.py``) to (re-)record the
curated transcripts in ``tests/fixtures/pbx-transcripts/``, which the simulator-parity suite
replays without a PBX::

    rec = TranscriptRecorder("AMD human reaches hold", clock=time.monotonic)
    a = await AmiTestClient.connect(host, port)
    rec.attach(a, "A")            # every message read/written on ``a`` is recorded as [A]
    ...
    rec.note("A", "EOF: Asterisk closed the TCP connection")
    path.write_text(rec.render(keep=keep_event, redact=("/tmp/run-dir",)))

Filter (``keep``): a predicate on each *received event*; responses and sent actions are always
kept. :func:`default_keep` drops the noise the parity checks never read (RTCP reports,
VarSets other than AMD's and Marcador's own, device/extension state, Newexten outside the
Marcador contexts, ...), so the committed files stay small.

``drop_headers`` (default :data:`NOISE_HEADERS`): headers removed from received events.

Redaction: every ``Secret:`` value becomes ``<redacted>``; each string of ``redact`` (e.g. the
lab's run directory, a generated password) is replaced by ``<redacted>`` everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

__all__ = [
    "KEPT_EVENTS",
    "KEPT_VARIABLES",
    "NOISE_HEADERS",
    "TranscriptRecorder",
    "default_keep",
    "header",
]

#: Events kept by :func:`default_keep` (with the restrictions below).
KEPT_EVENTS = frozenset(
    {
        "BridgeEnter",
        "BridgeLeave",
        "ConfbridgeJoin",
        "ConfbridgeLeave",
        "DialBegin",
        "DialEnd",
        "FullyBooted",
        "Hangup",
        "HangupRequest",
        "Newchannel",
        "Newexten",
        "Newstate",
        "OriginateResponse",
        "Shutdown",
        "SoftHangupRequest",
        "VarSet",
    }
)
#: VarSet variables kept (AMD's verdict and the dialplan's own signals).
KEPT_VARIABLES = ("AMDSTATUS", "AMDCAUSE", "MARCADOR_")
#: Newexten kept only in these contexts (the lab's behaviour contexts are noise here).
KEPT_CONTEXT_PREFIX = "marcador-"
_LAB_CONTEXT_PREFIX = "marcador-lab-"
#: Headers dropped from received events by default: identical on every event of a channel and
#: never read by the parser, the tracker or the parity checks.
NOISE_HEADERS = (
    "Privilege",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
)


class _Tappable(Protocol):
    tap: Callable[[str, bytes], None] | None
    banner: str


def header(raw: bytes, key: str) -> str | None:
    prefix = key + ":"
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        if line.startswith(prefix):
            return line[len(prefix) :].lstrip(" ")
    return None


def default_keep(raw: bytes) -> bool:
    """Keep a received event? (responses are always kept; see the module docstring)."""
    event = header(raw, "Event")
    if event is None:
        return True
    if event not in KEPT_EVENTS:
        return False
    if event == "VarSet":
        var = header(raw, "Variable") or ""
        return var.startswith(KEPT_VARIABLES)
    if event == "Newexten":
        ctx = header(raw, "Context") or ""
        return ctx.startswith(KEPT_CONTEXT_PREFIX) and not ctx.startswith(_LAB_CONTEXT_PREFIX)
    return True


class TranscriptRecorder:
    """Collects (time, direction, connection, bytes) from attached clients; renders a file."""

    def __init__(
        self,
        title: str,
        description: Iterable[str] = (),
        *,
        clock: Callable[[], float],
    ) -> None:
        self.title = title
        self.description = list(description)
        self._clock = clock
        self._t0 = clock()
        self._started = datetime.now(UTC)
        # (seconds, direction or "note"/"banner", connection, payload)
        self.entries: list[tuple[float, str, str, bytes]] = []

    def _now(self) -> float:
        return self._clock() - self._t0

    def attach(self, client: _Tappable, connection: str) -> None:
        """Record ``client`` as connection ``connection`` (its banner first, if read)."""
        if client.banner:
            self.entries.append((self._now(), "banner", connection, client.banner.encode()))

        def tap(direction: str, raw: bytes) -> None:
            self.entries.append((self._now(), direction, connection, raw))

        client.tap = tap

    def note(self, connection: str | None, text: str) -> None:
        self.entries.append((self._now(), "note", connection or "", text.encode()))

    def render(
        self,
        *,
        keep: Callable[[bytes], bool] = default_keep,
        redact: Iterable[str] = (),
        drop_headers: Iterable[str] = NOISE_HEADERS,
    ) -> str:
        secrets = [s for s in redact if s]
        dropped = tuple(h + ":" for h in drop_headers)
        out = [f"# scenario: {self.title}"]
        out += [f"# {line}" for line in self.description]
        out.append(f"# recorded: {self._started.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        out.append("")
        for secs, kind, conn, raw in self.entries:
            stamp = f"+{secs:.3f}s"
            if kind == "note":
                tag = f"[{conn}] " if conn else ""
                out.append(f"# ---- {tag}{raw.decode()} ({stamp})")
                out.append("")
                continue
            if kind == "banner":
                out.append(
                    f"# << {stamp} [{conn}] (banner line, single CRLF-terminated line, "
                    "not a message)"
                )
                out.append(raw.decode("utf-8", "replace"))
                out.append("")
                continue
            if kind == "in" and not keep(raw):
                continue
            arrow = "<<" if kind == "in" else ">>"
            lines = [ln for ln in raw.decode("utf-8", "replace").split("\r\n") if ln]
            lines = ["Secret: <redacted>" if ln.startswith("Secret:") else ln for ln in lines]
            if kind == "in" and header(raw, "Event") is not None:
                lines = [ln for ln in lines if not ln.startswith(dropped)]
            text = "\n".join(lines)
            for s in secrets:
                text = text.replace(s, "<redacted>")
            out.append(f"# {arrow} {stamp} [{conn}]")
            out.append(text)
            out.append("")
        return "\n".join(out)
