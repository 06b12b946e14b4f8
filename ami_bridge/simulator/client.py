"""A deliberately small AMI client for tests, chaos scripts and the opt-in real-Asterisk tests.

Not the production bridge (that is ``ami_bridge.connection``): no reconnects, no panoramisk.
It keeps every message it reads so a test can await a condition instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ami_bridge.simulator.wire import format_message


@dataclass(frozen=True, slots=True)
class Message:
    """One message from the server: headers in wire order (repeated keys kept)."""

    headers: tuple[tuple[str, str], ...]
    raw: bytes

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.headers:
            if k == key:
                return v
        return default

    def keys(self) -> list[str]:
        return [k for k, _ in self.headers]

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")


def parse_message(raw: bytes) -> Message:
    headers: list[tuple[str, str]] = []
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        key, _, value = line.partition(":")
        headers.append((key, value[1:] if value.startswith(" ") else value))
    return Message(tuple(headers), raw)


class AmiTestClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.banner = ""
        self.messages: list[Message] = []
        self.eof = False
        self._cond = asyncio.Condition()
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        #: Called with ("in" | "out", raw bytes) for every message read or written (the banner
        #: excepted): :class:`ami_bridge.recorder.TranscriptRecorder` hooks in here.
        self.tap: Callable[[str, bytes], None] | None = None

    @classmethod
    async def connect(cls, host: str, port: int, within: float = 5.0) -> AmiTestClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
        self = cls(reader, writer)
        line = await asyncio.wait_for(reader.readline(), within)
        self.banner = line.decode("utf-8", "replace").rstrip("\r\n")
        self._task = asyncio.ensure_future(self._read_loop())
        return self

    async def _read_loop(self) -> None:
        try:
            while True:
                raw = await self.reader.readuntil(b"\r\n\r\n")
                msg = parse_message(raw)
                if self.tap is not None:
                    self.tap("in", raw)
                async with self._cond:
                    self.messages.append(msg)
                    self._cond.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            async with self._cond:
                self.eof = True
                self._cond.notify_all()

    def send(self, action: str, *headers: tuple[str, str], action_id: str | None = "auto") -> str:
        """Send an action; returns its ActionID (``action_id=None``: send none)."""
        aid = f"t-{next(self._ids)}" if action_id == "auto" else action_id
        out = [("Action", action)]
        if aid is not None:
            out.append(("ActionID", aid))
        out.extend(headers)
        self.send_raw(format_message(out))
        return aid or ""

    def send_raw(self, data: bytes) -> None:
        if self.tap is not None:
            self.tap("out", data)
        self.writer.write(data)

    async def wait_for(
        self, predicate: Callable[[Message], bool], within: float = 5.0, start: int = 0
    ) -> Message:
        """First message (from index ``start``) matching ``predicate``; waits for it."""

        async def _wait() -> Message:
            async with self._cond:
                i = start
                while True:
                    while i < len(self.messages):
                        if predicate(self.messages[i]):
                            return self.messages[i]
                        i += 1
                    if self.eof:
                        raise EOFError("connection closed before the expected message")
                    await self._cond.wait()

        return await asyncio.wait_for(_wait(), within)

    async def wait_eof(self, within: float = 5.0) -> None:
        async def _wait() -> None:
            async with self._cond:
                while not self.eof:
                    await self._cond.wait()

        await asyncio.wait_for(_wait(), within)

    async def response(self, action_id: str, within: float = 5.0) -> Message:
        return await self.wait_for(
            lambda m: m.response is not None and m.get("ActionID") == action_id, within
        )

    async def event(self, name: str, within: float = 5.0, **match: str) -> Message:
        def pred(m: Message) -> bool:
            return m.event == name and all(m.get(k) == v for k, v in match.items())

        return await self.wait_for(pred, within)

    async def action(self, action: str, *headers: tuple[str, str], within: float = 5.0) -> Message:
        return await self.response(self.send(action, *headers), within)

    async def login(self, username: str, secret: str, events: str | None = None) -> Message:
        hdrs: list[tuple[str, str]] = [("Username", username), ("Secret", secret)]
        if events is not None:
            hdrs.append(("Events", events))
        return await self.action("Login", *hdrs)

    def events(self, names: Iterable[str] | None = None) -> list[Message]:
        wanted = set(names) if names is not None else None
        return [
            m
            for m in self.messages
            if m.event is not None and (wanted is None or m.event in wanted)
        ]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
