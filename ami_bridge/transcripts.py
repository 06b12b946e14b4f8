"""Loader for the recorded AMI transcripts (``ami-transcripts/README.md``, "File format").

The transcripts are the ground truth for the parser, the tracker and the PBX simulator. Tests,
the simulator-parity suite and the benchmarks *parse* them with this module; nothing is ever
hand-copied out of them.

File format (LF-normalised on disk; CRLF on the wire)::

    # scenario: <title>
    # <description lines>
    # recorded: <UTC time>

    # << +0.001s [A] (banner line, single CRLF-terminated line, not a message)
    Asterisk Call Manager/11.0.0

    # >> +0.001s [A]
    Action: Login
    ...

    # ---- [A] EOF: Asterisk closed the TCP connection (read() returned b'') (+1.005s)

Public API::

    load_transcript(path) -> Transcript          # reads one file
    parse_transcript(text, name="") -> Transcript  # pure, no IO
    transcript_dir() -> Path                    # where the 29 recordings live
    load_all(directory=None) -> list[Transcript]

    Transcript.records                  # tuple[Record, ...] in file order
    Transcript.notes                    # tuple[Note, ...] ("# ----" recorder notes)
    Transcript.connections              # ("A", "B", ...)
    Transcript.received_stream("A")     # exact bytes Asterisk sent on connection A
    Transcript.sent(connection=None)    # records the client sent
    Transcript.eof_connections          # connections the recorder saw closed by Asterisk

    Record(direction, seconds, connection, data, is_banner, line)
      direction: "in" (``# <<``, received from Asterisk) or "out" (``# >>``, sent by the client)
      data: raw bytes with CRLF restored; a message ends with b"\\r\\n\\r\\n", the banner with a
            single b"\\r\\n".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Direction = Literal["in", "out"]

_MARKER = re.compile(r"^# (<<|>>) \+(\d+(?:\.\d+)?)s \[([A-Za-z0-9]+)\](.*)$")
_NOTE = re.compile(r"^# ---- (?:\[([A-Za-z0-9]+)\] )?(.*?)(?: \(\+(\d+(?:\.\d+)?)s\))?$")

#: Environment variable that overrides where the transcripts are looked for.
TRANSCRIPTS_ENV = "MARCADOR_AMI_TRANSCRIPTS"


class TranscriptFormatError(ValueError):
    """The transcript file does not follow the documented format."""


@dataclass(frozen=True, slots=True)
class Record:
    direction: Direction
    seconds: float
    connection: str
    data: bytes
    is_banner: bool = False
    line: int = 0  # 1-based line number of the marker in the file

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def header(self, key: str) -> str | None:
        """First value of ``key`` in this record (for quick test assertions)."""
        prefix = key + ":"
        for line in self.text.split("\r\n"):
            if line.startswith(prefix):
                return line[len(prefix) :].lstrip(" ")
        return None


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    connection: str | None
    seconds: float | None
    line: int = 0

    @property
    def is_eof(self) -> bool:
        return "EOF" in self.text or "socket closed by Asterisk" in self.text


@dataclass(frozen=True, slots=True)
class Transcript:
    name: str
    title: str
    description: tuple[str, ...]
    records: tuple[Record, ...]
    notes: tuple[Note, ...] = field(default=())

    @property
    def connections(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for rec in self.records:
            seen.setdefault(rec.connection, None)
        return tuple(seen)

    def received(self, connection: str | None = None) -> Iterator[Record]:
        for rec in self.records:
            if rec.direction == "in" and (connection is None or rec.connection == connection):
                yield rec

    def sent(self, connection: str | None = None) -> Iterator[Record]:
        for rec in self.records:
            if rec.direction == "out" and (connection is None or rec.connection == connection):
                yield rec

    def received_stream(self, connection: str = "A") -> bytes:
        """The exact byte stream Asterisk sent on ``connection`` (banner included)."""
        return b"".join(rec.data for rec in self.received(connection))

    @property
    def eof_connections(self) -> tuple[str, ...]:
        return tuple(n.connection for n in self.notes if n.is_eof and n.connection is not None)


def parse_transcript(text: str, name: str = "") -> Transcript:
    """Parse the text of one transcript file. Pure: no IO."""
    lines = text.split("\n")
    title = ""
    description: list[str] = []
    records: list[Record] = []
    notes: list[Note] = []
    i = 0
    n = len(lines)
    in_preamble = True
    while i < n:
        line = lines[i]
        marker = _MARKER.match(line)
        if marker is not None:
            in_preamble = False
            direction: Direction = "in" if marker.group(1) == "<<" else "out"
            seconds = float(marker.group(2))
            conn = marker.group(3)
            is_banner = "banner" in marker.group(4)
            start = i + 1
            j = start
            while j < n and lines[j] != "":
                j += 1
            body = lines[start:j]
            if not body:
                raise TranscriptFormatError(f"{name}:{i + 1}: empty record after marker")
            if is_banner:
                if len(body) != 1:
                    raise TranscriptFormatError(f"{name}:{i + 1}: banner must be one line")
                data = (body[0] + "\r\n").encode("utf-8")
            else:
                data = ("\r\n".join(body) + "\r\n\r\n").encode("utf-8")
            records.append(Record(direction, seconds, conn, data, is_banner, i + 1))
            i = j + 1
            continue
        if line.startswith("# ----"):
            in_preamble = False
            note = _NOTE.match(line)
            if note is None:  # pragma: no cover - the regex accepts any "# ---- " line
                raise TranscriptFormatError(f"{name}:{i + 1}: bad note line")
            secs = note.group(3)
            notes.append(Note(note.group(2), note.group(1), float(secs) if secs else None, i + 1))
        elif line.startswith("#"):
            if in_preamble:
                content = line[1:].strip()
                if content.startswith("scenario:"):
                    title = content[len("scenario:") :].strip()
                elif content:
                    description.append(content)
        elif line.strip():
            raise TranscriptFormatError(f"{name}:{i + 1}: text outside a record: {line[:40]!r}")
        i += 1
    return Transcript(name, title, tuple(description), tuple(records), tuple(notes))


def load_transcript(path: str | os.PathLike[str]) -> Transcript:
    p = Path(path)
    return parse_transcript(p.read_text(encoding="utf-8"), p.name)


def transcript_dir() -> Path:
    """Directory holding the recordings.

    ``$MARCADOR_AMI_TRANSCRIPTS`` if set; else ``tests/fixtures/ami-transcripts`` in the
    repository; else ``../shared/ami-transcripts`` next to the repository.
    """
    env = os.environ.get(TRANSCRIPTS_ENV)
    if env:
        return Path(env)
    root = Path(__file__).resolve().parent.parent
    for candidate in (
        root / "tests" / "fixtures" / "ami-transcripts",
        root.parent / "shared" / "ami-transcripts",
    ):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"AMI transcripts not found; set {TRANSCRIPTS_ENV} to their directory")


def transcript_paths(directory: Path | None = None) -> list[Path]:
    d = directory if directory is not None else transcript_dir()
    return sorted(p for p in d.glob("[0-9][0-9]-*.txt"))


def load_all(directory: Path | None = None) -> list[Transcript]:
    return [load_transcript(p) for p in transcript_paths(directory)]
