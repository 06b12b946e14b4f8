"""One AMI session on the wire: the connection's protocol, what the session may read (event
classes, filters), and how replies and list items are written."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Protocol

from ami_bridge.simulator.config import AmiUser
from ami_bridge.simulator.pbx import Event
from ami_bridge.simulator.wire import Action, ActionFramer, Headers, format_message

EVENT_CLASSES = (
    "system",
    "call",
    "log",
    "verbose",
    "command",
    "agent",
    "user",
    "config",
    "dtmf",
    "reporting",
    "cdr",
    "dialplan",
    "originate",
    "agi",
    "cc",
    "aoc",
    "test",
    "security",
    "message",
)


@dataclass(eq=False)
class Session:
    transport: asyncio.Transport
    session_id: str
    remote: tuple[str, int]
    user: str | None = None
    perms: AmiUser | None = None
    events_on: bool = True
    event_mask: frozenset[str] = frozenset({"all"})
    filters: list[tuple[bool, re.Pattern[str]]] = field(default_factory=list)
    challenge: str | None = None
    holding: list[bytes] | None = None
    closed: bool = False
    queue: asyncio.Queue[Action] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None

    def write(self, data: bytes) -> None:
        if self.closed or self.transport.is_closing():
            return
        self.transport.write(data)

    def reply(self, action: Action, headers: Headers) -> None:
        out: Headers = []
        first, rest = headers[0], headers[1:]
        out.append(first)
        aid = action.action_id
        if aid is not None:
            out.append(("ActionID", aid))
        out.extend(rest)
        self.write(format_message(out))

    def list_start(self, a: Action, message: str) -> None:
        """The Response that opens a list action's answer (its items follow as events)."""
        self.reply(a, [("Response", "Success"), ("EventList", "start"), ("Message", message)])

    def list_item(self, a: Action, event: str, headers: Headers, aid_last: bool = False) -> None:
        """One event of a list action's answer (``ActionID`` first, or last as some lists)."""
        aid = a.action_id
        out: Headers = [("Event", event)]
        if aid is not None and not aid_last:
            out.append(("ActionID", aid))
        out.extend(headers)
        if aid is not None and aid_last:
            out.append(("ActionID", aid))
        self.write(format_message(out))

    def list_complete(self, a: Action, event: str, n: int) -> None:
        self.list_item(a, event, [("EventList", "Complete"), ("ListItems", str(n))])

    def set_event_mask(self, value: str) -> None:
        """``Events:`` of Login, ``EventMask:`` of the Events action."""
        if value in ("off", "no", "false", "0", "none"):
            self.events_on = False
        elif value in ("on", "yes", "true", "1", "all"):
            self.events_on, self.event_mask = True, frozenset({"all"})
        else:
            classes = {c.strip() for c in value.split(",") if c.strip() in EVENT_CLASSES}
            self.events_on, self.event_mask = bool(classes), frozenset(classes)

    def wants(self, event: Event) -> bool:
        if self.perms is None or not self.events_on:
            return False
        read = self.perms.read
        if "all" not in read and event.category not in read:
            return False
        if "all" not in self.event_mask and event.category not in self.event_mask:
            return False
        if self.filters:
            text = event.data.decode("utf-8", "replace")
            includes = [p for inc, p in self.filters if inc]
            if includes and not any(p.search(text) for p in includes):
                return False
            if any(p.search(text) for inc, p in self.filters if not inc):
                return False
        return True


class SessionHost(Protocol):
    """What a connection needs from the server's session table (``Sessions``)."""

    def open(self, transport: asyncio.Transport) -> Session: ...

    def close(self, s: Session, abort: bool) -> None: ...


class AmiProtocol(asyncio.Protocol):
    """One TCP connection: frames actions into its session's queue."""

    def __init__(self, sessions: SessionHost) -> None:
        self.sessions = sessions
        self.framer = ActionFramer()
        self.session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.session = self.sessions.open(transport)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or session.closed:
            return
        for action in self.framer.feed(data):
            session.queue.put_nowait(action)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.sessions.close(self.session, abort=False)
