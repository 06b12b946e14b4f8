"""The server's sessions: opening and closing them, running each one's actions in order
(permission checks and security events included), and broadcasting the PBX's events."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from ami_bridge.simulator.pbx import Event
from ami_bridge.simulator.server.session import Session
from ami_bridge.simulator.wire import BANNER, Action, Headers, format_message

if TYPE_CHECKING:
    from ami_bridge.simulator.server import SimulatorServer

ActionHandler = Callable[[Session, Action], Awaitable[None]]

# Write permission each action needs (any one of them), as in Asterisk 22's manager modules.
ACTION_PERMS: dict[str, frozenset[str]] = {
    "originate": frozenset({"originate"}),
    "redirect": frozenset({"call"}),
    "hangup": frozenset({"system", "call"}),
    "setvar": frozenset({"call"}),
    "getvar": frozenset({"call", "reporting"}),
    "coreshowchannels": frozenset({"system", "reporting"}),
    "corestatus": frozenset({"system", "reporting"}),
    "coresettings": frozenset({"system", "reporting"}),
    "pjsipshowendpoints": frozenset({"system"}),
    "pjsipshowcontacts": frozenset({"system"}),
    "confbridgekick": frozenset({"call"}),
    "confbridgemute": frozenset({"call"}),
    "confbridgeunmute": frozenset({"call"}),
    "confbridgelist": frozenset({"reporting"}),
    "playdtmf": frozenset({"call"}),
    "confbridgelistrooms": frozenset({"reporting"}),
    "command": frozenset({"command"}),
    "filter": frozenset({"system"}),
}
NO_AUTH_ACTIONS = frozenset({"login", "challenge", "logoff"})


class Sessions:
    """Every open session (iterable, sized); ``handlers`` (lower-case action name -> handler)
    is filled in by the server from its action groups."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.all: set[Session] = set()
        self.handlers: dict[str, ActionHandler] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.event_log: deque[Event] | None = None
        self._seq = 0

    def __iter__(self) -> Iterator[Session]:
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    # ------------------------------------------------------------------ open / close / run
    def open(self, transport: asyncio.Transport) -> Session:
        self._seq += 1
        peer = transport.get_extra_info("peername") or ("127.0.0.1", 0)
        s = Session(transport, f"0x7fec{self._seq:08x}", (str(peer[0]), int(peer[1])))
        self.all.add(s)
        transport.write(BANNER)
        s.worker = asyncio.ensure_future(self._serve(s))
        return s

    def close(self, s: Session, abort: bool) -> None:
        if s.closed:
            return
        s.closed = True
        self.all.discard(s)
        if abort:
            s.transport.abort()
        else:
            s.transport.close()
        if s.worker is not None and s.worker is not asyncio.current_task():
            s.worker.cancel()

    def close_all(self, abort: bool) -> None:
        for s in list(self.all):
            self.close(s, abort=abort)

    async def _serve(self, s: Session) -> None:
        try:
            while not s.closed:
                action = await s.queue.get()
                await self._dispatch(s, action)
        except asyncio.CancelledError:
            pass

    async def _dispatch(self, s: Session, a: Action) -> None:
        name = a.name.lower()
        if s.perms is None and name not in NO_AUTH_ACTIONS:
            s.reply(a, [("Response", "Error"), ("Message", "Permission denied")])
            return
        needed = ACTION_PERMS.get(name)
        if needed is not None and s.perms is not None:
            write = s.perms.write
            if "all" not in write and not (write & needed):
                s.reply(a, [("Response", "Error"), ("Message", "Permission denied")])
                self.security_event(
                    s, "RequestNotAllowed", "Error", [("RequestType", f"Action: {a.name}")]
                )
                return
        handler = self.handlers.get(name)
        if handler is None:
            s.reply(
                a,
                [
                    ("Response", "Error"),
                    (
                        "Message",
                        f"Invalid/unknown command: {a.name}. "
                        "Use Action: ListCommands to show available commands.",
                    ),
                ],
            )
            self.security_event(
                s, "RequestBadFormat", "Error", [("RequestType", f"Action: {a.name}")]
            )
            return
        await handler(s, a)

    # ------------------------------------------------------------------ events
    def broadcast(self, event: Event) -> None:
        """Every PBX event: the event log and listeners first, then the sessions that read
        it (held back while a synchronous Originate blocks the session)."""
        if self.event_log is not None:
            self.event_log.append(event)
        for cb in self.listeners:
            cb(event)
        for s in self.all:
            if s.wants(event):
                if s.holding is not None:
                    s.holding.append(event.data)
                else:
                    s.write(event.data)

    def security_event(self, s: Session, name: str, severity: str, extra: Headers) -> None:
        server = self.server
        tv = self._event_tv()
        headers: Headers = [
            ("Event", name),
            ("Privilege", "security,all"),
            ("EventTV", tv),
            ("Severity", severity),
            ("Service", "AMI"),
            ("EventVersion", "1"),
            ("AccountID", s.user or ""),
            ("SessionID", s.session_id),
            ("LocalAddress", f"IPV4/TCP/{server.host}/{server.port}"),
            ("RemoteAddress", f"IPV4/TCP/{s.remote[0]}/{s.remote[1]}"),
            *extra,
            ("SessionTV", tv),
        ]
        if s.perms is not None and s.events_on:
            s.write(format_message(headers))

    def _event_tv(self) -> str:
        wall = self.server.clock.wall()
        ms = int((wall % 1) * 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{ms:03d}+0000"
