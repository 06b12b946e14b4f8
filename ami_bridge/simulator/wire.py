"""Minimal AMI wire helpers for the simulator: frame incoming actions, format outgoing messages.

Deliberately independent of :mod:`ami_bridge.protocol` so the simulator stays a separate,
independent implementation of the server side (a parser bug cannot hide itself in both ends).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Headers = list[tuple[str, str]]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_BUFFER = 1 << 20  # an action larger than 1 MiB is dropped


@dataclass(frozen=True, slots=True)
class Action:
    """One action received from a client: headers in order, repeated keys kept."""

    headers: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return self.get("Action") or ""

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of ``key`` (AMI header names are case-insensitive)."""
        low = key.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        low = key.lower()
        return [v for k, v in self.headers if k.lower() == low]

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


def format_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """``Key: Value`` lines joined by CRLF, ending with an empty line."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("utf-8") + b"\r\n"


class ActionFramer:
    """Incremental splitter of the client byte stream into :class:`Action` objects."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[Action]:
        self._buf += data
        while True:
            end, sep = _find_end(self._buf)
            if end < 0:
                if len(self._buf) > MAX_BUFFER:
                    self._buf.clear()
                return
            raw = bytes(self._buf[:end])
            del self._buf[: end + sep]
            action = parse_action(raw)
            if action is not None:
                yield action


def _find_end(buf: bytearray) -> tuple[int, int]:
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf, 4
    if lf >= 0:
        return lf, 2
    return -1, 0


def parse_action(raw: bytes) -> Action | None:
    text = raw.decode("utf-8", "replace")
    headers: Headers = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            continue
        headers.append((key.strip(), value.lstrip(" ").rstrip("\r")))
    if not headers:
        return None
    return Action(tuple(headers))
