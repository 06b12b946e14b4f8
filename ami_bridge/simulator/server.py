"""The AMI server side of the simulator: sessions, login rules, actions, restart and kill."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ami_bridge.simulator.clock import SimClock
from ami_bridge.simulator.config import AmiUser, SimulatorConfig
from ami_bridge.simulator.pbx import (
    Channel,
    Event,
    OriginateRequest,
    Pbx,
    parse_callerid,
)
from ami_bridge.simulator.wire import BANNER, Action, ActionFramer, Headers, format_message

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


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A snapshot of one live channel, for tests and dashboards."""

    name: str
    uniqueid: str
    linkedid: str
    state: int
    context: str
    exten: str
    application: str
    variables: dict[str, str]
    conference: str | None


@dataclass(eq=False)
class Session:
    server: SimulatorServer
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


class _Protocol(asyncio.Protocol):
    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.framer = ActionFramer()
        self.session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.session = self.server._open_session(transport)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None or session.closed:
            return
        for action in self.framer.feed(data):
            session.queue.put_nowait(action)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.server._close_session(self.session, abort=False)


class SimulatorServer:
    """An asyncio AMI server that behaves like Asterisk 22.10.1 for everything Marcador uses.

    Build it with :func:`serve`. All delays are simulated seconds divided by ``config.speed``.
    """

    def __init__(self, host: str, port: int, config: SimulatorConfig) -> None:
        self.host = host
        self.port = port
        self.config = config
        self.clock = SimClock(config.speed, config.epoch)
        self.pbx = Pbx(config, self.clock, self._broadcast)
        self.sessions: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._booted = asyncio.Event()
        self._boot_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._session_seq = 0
        self._listeners: list[Callable[[Event], None]] = []
        self.event_log: deque[Event] | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def fully_booted(self) -> bool:
        return self._booted.is_set()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Protocol(self), self.host, self.port, reuse_address=True
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def _start(self, booting: bool) -> None:
        self.pbx.reset()
        self.pbx.mark_boot()
        await self._listen()
        if not booting:
            self._booted.set()
            return
        self._booted.clear()
        self._boot_task = asyncio.ensure_future(self._boot())

    async def _boot(self) -> None:
        """Accept logins while booting; registrations come back, then FullyBooted (file 24)."""
        await self.clock.sleep(self.config.boot_seconds * 0.15)
        for agent in self.config.agents:
            if agent.registered:
                self.pbx.emit(
                    "PeerStatus",
                    "system",
                    [
                        ("ChannelType", "PJSIP"),
                        ("Peer", f"PJSIP/{agent.ext}"),
                        ("PeerStatus", "Reachable"),
                    ],
                )
        for agent in self.config.agents:
            if agent.registered:
                self.pbx.emit(
                    "ContactStatus", "system", self.pbx.contact_status_headers(agent.ext, True)
                )
        await self.clock.sleep(self.config.boot_seconds * 0.85)
        self.pbx.emit(
            "FullyBooted",
            "system",
            [("Status", "Fully Booted"), ("Uptime", "0"), ("LastReload", "0")],
        )
        self._booted.set()

    async def wait_fully_booted(self) -> None:
        await self._booted.wait()

    async def start(self) -> None:
        """Start again after :meth:`kill` (or after :meth:`close`): boots like a fresh Asterisk."""
        if self._server is None:
            await self._start(booting=True)

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._boot_task is not None:
            self._boot_task.cancel()
            self._boot_task = None

    async def restart(
        self, refuse_for: float | None = None, *, issuer: Session | None = None
    ) -> None:
        """``core restart now``: hang up every call, ``Shutdown`` event, EOF, refuse
        connections for ``refuse_for`` simulated seconds, then listen again while booting
        (FullyBooted with ``Uptime: 0`` follows later; await :meth:`wait_fully_booted`).

        ``issuer``: the AMI session that sent the ``Command``. As on Asterisk 22.10.1, it gets
        no Response and none of the shutdown's events, only EOF; the other sessions get the
        channels' SoftHangupRequest (Cause 4) / Hangup events, ``Shutdown`` and EOF. A restart
        from outside AMI (the CLI, SIGUSR1 of ``marcador pbx-sim``) has no issuer.
        """
        if issuer is not None:
            self._close_session(issuer, abort=False)
        self.pbx.shutdown_hangup_all()
        await self.clock.sleep(self.config.shutdown_event_delay)
        self.pbx.emit("Shutdown", "system", [("Shutdown", "Cleanly"), ("Restart", "True")])
        self._booted.clear()
        for s in list(self.sessions):
            self._close_session(s, abort=False)
        await self._stop_listening()
        wait = self.config.restart_refuse_seconds if refuse_for is None else refuse_for
        await self.clock.sleep(wait)
        await self._start(booting=True)

    async def kill(self) -> None:
        """``kill -9``: bare EOF on every connection, no events; refused until :meth:`start`."""
        self._booted.clear()
        self.pbx.drop_all()
        await self._stop_listening()
        for s in list(self.sessions):
            self._close_session(s, abort=True)

    async def close(self) -> None:
        """Stop everything (end of a test or of the demo)."""
        self.pbx.drop_all()
        await self._stop_listening()
        for s in list(self.sessions):
            self._close_session(s, abort=True)
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ in-process API
    def channels(self) -> list[ChannelInfo]:
        return [
            ChannelInfo(
                c.name,
                c.uniqueid,
                c.linkedid,
                c.state,
                c.context,
                c.exten,
                c.app,
                dict(c.variables),
                c.conference.name if c.conference is not None else None,
            )
            for c in self.pbx.channels.values()
        ]

    def conferences(self) -> dict[str, list[str]]:
        return {n: [m.name for m in c.members] for n, c in self.pbx.conferences.items()}

    def set_agent(
        self,
        ext: str,
        *,
        registered: bool | None = None,
        busy: bool | None = None,
        answer_delay: float | None = None,
    ) -> None:
        """Register/unregister an agent's softphone, make it answer 486, change its delay."""
        self.pbx.set_agent(ext, registered=registered, busy=busy, answer_delay=answer_delay)

    def hangup_from_far_end(self, channel: str, cause: int = 16) -> bool:
        """The customer (or the agent's phone) on ``channel`` hangs up. False: no such channel."""
        ch = self.pbx.find_channel(channel) or self.pbx.by_uniqueid.get(channel)
        if ch is None:
            return False
        self.pbx.remote_hangup(ch, cause)
        return True

    def agent_hangs_up(self, ext: str) -> bool:
        """Agent ``ext`` drops the nailed-up call from their softphone."""
        chans = self.pbx.agent_channels(ext)
        for ch in chans:
            self.pbx.remote_hangup(ch, 16)
        return bool(chans)

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback`` synchronously for every event (before any client sees it)."""
        self._listeners.append(callback)

    def record_events(self, maxlen: int | None = None) -> deque[Event]:
        """Start keeping emitted events in :attr:`event_log` and return it."""
        self.event_log = deque(maxlen=maxlen)
        return self.event_log

    # ------------------------------------------------------------------ events
    def _broadcast(self, event: Event) -> None:
        if self.event_log is not None:
            self.event_log.append(event)
        for cb in self._listeners:
            cb(event)
        for s in self.sessions:
            if s.wants(event):
                if s.holding is not None:
                    s.holding.append(event.data)
                else:
                    s.write(event.data)

    def _security_event(self, s: Session, name: str, severity: str, extra: Headers) -> None:
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
            ("LocalAddress", f"IPV4/TCP/{self.host}/{self.port}"),
            ("RemoteAddress", f"IPV4/TCP/{s.remote[0]}/{s.remote[1]}"),
            *extra,
            ("SessionTV", tv),
        ]
        if s.perms is not None and s.events_on:
            s.write(format_message(headers))

    def _event_tv(self) -> str:
        wall = self.clock.wall()
        ms = int((wall % 1) * 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{ms:03d}+0000"

    # ------------------------------------------------------------------ sessions
    def _open_session(self, transport: asyncio.Transport) -> Session:
        self._session_seq += 1
        peer = transport.get_extra_info("peername") or ("127.0.0.1", 0)
        s = Session(self, transport, f"0x7fec{self._session_seq:08x}", (str(peer[0]), int(peer[1])))
        self.sessions.add(s)
        transport.write(BANNER)
        s.worker = asyncio.ensure_future(self._serve_session(s))
        return s

    def _close_session(self, s: Session, abort: bool) -> None:
        if s.closed:
            return
        s.closed = True
        self.sessions.discard(s)
        if abort:
            s.transport.abort()
        else:
            s.transport.close()
        if s.worker is not None and s.worker is not asyncio.current_task():
            s.worker.cancel()

    async def _serve_session(self, s: Session) -> None:
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
                self._security_event(
                    s, "RequestNotAllowed", "Error", [("RequestType", f"Action: {a.name}")]
                )
                return
        handler = getattr(self, f"_act_{name}", None)
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
            self._security_event(
                s, "RequestBadFormat", "Error", [("RequestType", f"Action: {a.name}")]
            )
            return
        await handler(s, a)

    # ------------------------------------------------------------------ login & session actions
    async def _act_challenge(self, s: Session, a: Action) -> None:
        s.challenge = str(self.pbx._rng.randrange(100_000_000, 999_999_999))
        s.reply(a, [("Response", "Success"), ("Challenge", s.challenge)])

    async def _act_login(self, s: Session, a: Action) -> None:
        username = a.get("Username") or ""
        user = self.config.users.get(username)
        ok = False
        if user is not None:
            if (a.get("AuthType") or "").lower() == "md5" and s.challenge is not None:
                digest = hashlib.md5((s.challenge + user.secret).encode(), usedforsecurity=False)
                ok = digest.hexdigest() == (a.get("Key") or "")
            else:
                ok = a.get("Secret") == user.secret
        if not ok:
            await self.clock.sleep(self.config.auth_failure_delay)
            s.reply(a, [("Response", "Error"), ("Message", "Authentication failed")])
            self._close_session(s, abort=False)
            return
        s.user, s.perms = username, user
        ev = (a.get("Events") or "on").strip().lower()
        self._set_event_mask(s, ev)
        s.reply(a, [("Response", "Success"), ("Message", "Authentication accepted")])
        if s.events_on and self._booted.is_set():
            uptime = int(self.clock.wall() - self.pbx.boot_wall)
            s.write(
                format_message(
                    [
                        ("Event", "FullyBooted"),
                        ("Privilege", "system,all"),
                        ("Uptime", str(uptime)),
                        ("LastReload", str(uptime)),
                        ("Status", "Fully Booted"),
                    ]
                )
            )
        self._security_event(s, "SuccessfulAuth", "Informational", [("UsingPassword", "0")])

    def _set_event_mask(self, s: Session, value: str) -> None:
        if value in ("off", "no", "false", "0", "none"):
            s.events_on = False
        elif value in ("on", "yes", "true", "1", "all"):
            s.events_on, s.event_mask = True, frozenset({"all"})
        else:
            classes = {c.strip() for c in value.split(",") if c.strip() in EVENT_CLASSES}
            s.events_on, s.event_mask = bool(classes), frozenset(classes)

    async def _act_logoff(self, s: Session, a: Action) -> None:
        s.reply(a, [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")])
        self._close_session(s, abort=False)

    async def _act_ping(self, s: Session, a: Action) -> None:
        s.reply(a, [("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])

    async def _act_events(self, s: Session, a: Action) -> None:
        self._set_event_mask(s, (a.get("EventMask") or "on").strip().lower())
        s.reply(a, [("Response", "Success"), ("Events", "On" if s.events_on else "Off")])

    async def _act_filter(self, s: Session, a: Action) -> None:
        flt = a.get("Filter") or ""
        include = not flt.startswith("!")
        try:
            pattern = re.compile(flt if include else flt[1:])
        except re.error:
            s.reply(a, [("Response", "Error"), ("Message", "Filter Not Added")])
            return
        s.filters.append((include, pattern))
        s.reply(a, [("Response", "Success"), ("Message", "Success")])

    async def _act_corestatus(self, s: Session, a: Action) -> None:
        boot = time.gmtime(self.pbx.boot_wall)
        date, tod = time.strftime("%Y-%m-%d", boot), time.strftime("%H:%M:%S", boot)
        s.reply(
            a,
            [
                ("Response", "Success"),
                ("CoreStartupDate", date),
                ("CoreStartupTime", tod),
                ("CoreReloadDate", date),
                ("CoreReloadTime", tod),
                ("CoreCurrentCalls", str(len({c.linkedid for c in self.pbx.channels.values()}))),
                ("CoreProcessedCalls", str(self.pbx.processed_calls)),
            ],
        )

    async def _act_coresettings(self, s: Session, a: Action) -> None:
        s.reply(
            a,
            [
                ("Response", "Success"),
                ("AMIversion", "11.0.0"),
                ("AsteriskVersion", "22.10.1"),
                ("SystemName", ""),
                ("CoreMaxCalls", "0"),
            ],
        )

    async def _act_command(self, s: Session, a: Action) -> None:
        cmd = (a.get("Command") or "").strip()
        if cmd == "core show version":
            out = "Asterisk 22.10.1 (Marcador PBX simulator)"
        elif cmd in ("core restart now", "core restart gracefully"):
            # Asterisk 22.10.1: the issuing session gets no Response, only EOF.
            self._restart_task = asyncio.ensure_future(self.restart(issuer=s))
            return
        else:
            out = (
                f"No such command '{cmd}' (type 'core show help {cmd}' for other possible commands)"
            )
        s.reply(
            a, [("Response", "Success"), ("Message", "Command output follows"), ("Output", out)]
        )

    # ------------------------------------------------------------------ call actions
    def _originate_request(self, a: Action) -> OriginateRequest | str:
        dial = a.get("Channel")
        if not dial:
            return "Channel not specified"
        req = OriginateRequest(dial=dial, action_id=a.action_id)
        app = a.get("Application")
        if app:
            req.application, req.data = app, a.get("Data") or ""
        else:
            req.context, req.exten = a.get("Context") or "default", a.get("Exten") or "s"
            prio = a.get("Priority") or "1"
            if not prio.isdigit():
                return "Invalid priority"
            req.priority = int(prio)
        timeout = a.get("Timeout")
        if timeout:
            try:
                req.timeout = max(0.0, int(timeout) / 1000.0)
            except ValueError:
                return "Invalid timeout"
        cid = a.get("CallerID")
        if cid:
            req.cid_name, req.cid_num = parse_callerid(cid)
        for raw in a.get_all("Variable"):
            for part in raw.split(","):
                k, eq, v = part.partition("=")
                if eq and k.strip():
                    req.variables.append((k.strip(), v))
        req.channel_id = a.get("ChannelId") or None
        req.other_channel_id = a.get("OtherChannelId") or None
        req.is_async = (a.get("Async") or "").strip().lower() in ("true", "yes", "1", "on")
        return req

    async def _act_originate(self, s: Session, a: Action) -> None:
        req = self._originate_request(a)
        if isinstance(req, str):
            s.reply(a, [("Response", "Error"), ("Message", req)])
            return
        if req.channel_id is not None and (
            req.channel_id in self.pbx.by_uniqueid
            or (req.other_channel_id and req.other_channel_id in self.pbx.by_uniqueid)
        ):
            s.reply(a, [("Response", "Error"), ("Message", "Uniqueid already in use")])
            return
        if req.application is None and not self.pbx.extension_exists(
            req.context or "", req.exten or ""
        ):
            # Asterisk 22 checks the Originate's own Context/Exten before dialing anything.
            s.reply(a, [("Response", "Error"), ("Message", "Extension does not exist.")])
            return
        if req.is_async:
            s.reply(a, [("Response", "Success"), ("Message", "Originate successfully queued")])
            asyncio.get_running_loop().call_soon(self._start_originate, req)
            return
        # Synchronous (file 10): the session is blocked until the call is answered or fails;
        # its events are delivered after the Response.
        s.holding = []
        loop = asyncio.get_running_loop()
        result: asyncio.Future[bool] = loop.create_future()
        call = self.pbx.originate(req)
        if call is None or (call.done and not call.answered):
            result.set_result(False)
        else:
            call.result = result
        ok = await result
        held, s.holding = s.holding, None
        if ok:
            s.reply(a, [("Response", "Success"), ("Message", "Originate successfully queued")])
        else:
            s.reply(a, [("Response", "Error"), ("Message", "Originate failed")])
        for data in held:
            s.write(data)

    def _start_originate(self, req: OriginateRequest) -> None:
        if self._server is None:
            return
        if self.pbx.originate(req) is None:
            self.pbx.fail_without_channel(req)

    def _channel_or_error(self, s: Session, a: Action, missing: str) -> Channel | None:
        name = a.get("Channel")
        if not name:
            s.reply(a, [("Response", "Error"), ("Message", missing)])
            return None
        ch = self.pbx.find_channel(name)
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", "No such channel")])
        return ch

    async def _act_hangup(self, s: Session, a: Action) -> None:
        name = a.get("Channel") or ""
        if not name:
            s.reply(a, [("Response", "Error"), ("Message", "No channel specified")])
            return
        raw_cause = a.get("Cause") or "16"
        cause = int(raw_cause) if raw_cause.isdigit() else 16
        if len(name) > 2 and name.startswith("/") and name.endswith("/"):
            try:
                pattern = re.compile(name[1:-1])
            except re.error:
                s.reply(a, [("Response", "Error"), ("Message", "Invalid regex")])
                return
            matched = [c for c in self.pbx.channels.values() if pattern.search(c.name)]
            s.reply(
                a,
                [
                    ("Response", "Success"),
                    ("EventList", "start"),
                    ("Message", "Channels hung up will follow"),
                ],
            )
            for c in matched:
                self._list_item(s, a, "ChannelHungup", [("Channel", c.name)], aid_last=True)
            self._list_complete(s, a, "ChannelsHungupListComplete", len(matched))
            for c in matched:
                if not c.hungup:
                    self.pbx.hangup_action(c, cause)
            return
        ch = self.pbx.find_channel(name)
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", "No such channel")])
            return
        s.reply(a, [("Response", "Success"), ("Message", "Channel Hungup")])
        self.pbx.hangup_action(ch, cause)

    async def _act_redirect(self, s: Session, a: Action) -> None:
        name = a.get("Channel") or ""
        if not name:
            s.reply(a, [("Response", "Error"), ("Message", "Channel not specified")])
            return
        ch = self.pbx.find_channel(name)
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", f"Channel does not exist: {name}")])
            return
        exten = a.get("Exten")
        if not exten:
            s.reply(a, [("Response", "Error"), ("Message", "Exten not specified")])
            return
        prio = a.get("Priority") or "1"
        s.reply(a, [("Response", "Success"), ("Message", "Redirect successful")])
        self.pbx.redirect(
            ch, a.get("Context") or ch.context, exten, int(prio) if prio.isdigit() else 1
        )

    async def _act_getvar(self, s: Session, a: Action) -> None:
        var = a.get("Variable")
        if not var:
            s.reply(a, [("Response", "Error"), ("Message", "No variable specified")])
            return
        if a.get("Channel"):
            ch = self._channel_or_error(s, a, "No such channel")
            if ch is None:
                return
            value = self._read_var(ch, var)
        else:
            value = self.pbx.global_vars.get(var, "")
        s.reply(a, [("Response", "Success"), ("Variable", var), ("Value", value)])

    @staticmethod
    def _read_var(ch: Channel, var: str) -> str:
        m = re.fullmatch(r"CHANNEL\((\w+)\)", var)
        if m:
            from ami_bridge.simulator.pbx import STATE_DESC

            return {
                "state": STATE_DESC.get(ch.state, "Unknown"),
                "name": ch.name,
                "uniqueid": ch.uniqueid,
                "linkedid": ch.linkedid,
                "context": ch.context,
                "exten": ch.exten,
            }.get(m.group(1).lower(), "")
        return ch.variables.get(var, "")

    async def _act_setvar(self, s: Session, a: Action) -> None:
        var = a.get("Variable")
        if not var:
            s.reply(a, [("Response", "Error"), ("Message", "No variable specified")])
            return
        value = a.get("Value") or ""
        if a.get("Channel"):
            ch = self._channel_or_error(s, a, "No such channel")
            if ch is None:
                return
            s.reply(a, [("Response", "Success"), ("Message", "Variable Set")])
            self.pbx.setvar(ch, var, value)
        else:
            s.reply(a, [("Response", "Success"), ("Message", "Variable Set")])
            self.pbx.set_global(var, value)

    # ------------------------------------------------------------------ list actions
    def _list_item(
        self, s: Session, a: Action, event: str, headers: Headers, aid_last: bool = False
    ) -> None:
        aid = a.action_id
        out: Headers = [("Event", event)]
        if aid is not None and not aid_last:
            out.append(("ActionID", aid))
        out.extend(headers)
        if aid is not None and aid_last:
            out.append(("ActionID", aid))
        s.write(format_message(out))

    def _list_complete(self, s: Session, a: Action, event: str, n: int) -> None:
        self._list_item(s, a, event, [("EventList", "Complete"), ("ListItems", str(n))])

    async def _act_coreshowchannels(self, s: Session, a: Action) -> None:
        s.reply(
            a,
            [("Response", "Success"), ("EventList", "start"), ("Message", "Channels will follow")],
        )
        chans = list(self.pbx.channels.values())
        now = self.clock.now()
        for c in chans:
            secs = int(now - c.created)
            dur = f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
            bridge = c.conference.bridge_id if c.conference is not None else ""
            self._list_item(
                s,
                a,
                "CoreShowChannel",
                [
                    *self.pbx.chan_headers(c),
                    ("Application", c.app),
                    ("ApplicationData", c.appdata),
                    ("Duration", dur),
                    ("BridgeId", bridge),
                ],
            )
        self._list_complete(s, a, "CoreShowChannelsComplete", len(chans))

    async def _act_pjsipshowendpoints(self, s: Session, a: Action) -> None:
        s.reply(
            a,
            [
                ("Response", "Success"),
                ("EventList", "start"),
                ("Message", "A listing of Endpoints follows, presented as EndpointList events"),
            ],
        )
        agents = list(self.pbx.agents.values())
        for ag in agents:
            active = len(self.pbx.agent_channels(ag.ext))
            if not ag.registered:
                state = "Unavailable"
            elif active:
                state = "In use"
            else:
                state = "Not in use"
            contacts = f"{ag.ext}/{self.pbx.contact_uri(ag.ext)}," if ag.registered else ""
            self._list_item(
                s,
                a,
                "EndpointList",
                [
                    ("ObjectType", "endpoint"),
                    ("ObjectName", ag.ext),
                    ("Transport", "transport-udp"),
                    ("Aor", ag.ext),
                    ("Auths", ag.ext),
                    ("OutboundAuths", ""),
                    ("Contacts", contacts),
                    ("DeviceState", state),
                    ("ActiveChannels", str(active)),
                ],
            )
        self._list_complete(s, a, "EndpointListComplete", len(agents))

    async def _act_pjsipshowcontacts(self, s: Session, a: Action) -> None:
        s.reply(
            a,
            [
                ("Response", "Success"),
                ("EventList", "start"),
                ("Message", "A listing of Contacts follows, presented as ContactList events"),
            ],
        )
        regs = [ag for ag in self.pbx.agents.values() if ag.registered]
        for ag in regs:
            uri = self.pbx.contact_uri(ag.ext)
            port = uri.rsplit(":", 1)[1]
            self._list_item(
                s,
                a,
                "ContactList",
                [
                    ("ObjectType", "contact"),
                    ("ObjectName", f"{ag.ext};@{ag.ext}sim"),
                    ("ViaAddr", "127.0.0.1"),
                    ("QualifyTimeout", "3.000000"),
                    ("Qualify2xxOnly", "false"),
                    ("CallId", f"sim-{ag.ext}@127.0.0.1:{port}"),
                    ("RegServer", ""),
                    ("PruneOnBoot", "no"),
                    ("Path", ""),
                    ("Endpoint", ag.ext),
                    ("ViaPort", port),
                    ("AuthenticateQualify", "no"),
                    ("Uri", uri),
                    ("QualifyFrequency", "0"),
                    ("UserAgent", "pyVoIP 1.6.8"),
                    ("ExpirationTime", str(int(self.clock.wall()) + 3600)),
                    ("OutboundProxy", ""),
                    ("Status", "NonQualified"),
                    ("RoundtripUsec", "N/A"),
                ],
            )
        self._list_complete(s, a, "ContactListComplete", len(regs))

    async def _act_confbridgelistrooms(self, s: Session, a: Action) -> None:
        rooms = list(self.pbx.conferences.values())
        if not rooms:
            s.reply(a, [("Response", "Error"), ("Message", "No active conferences.")])
            return
        s.reply(
            a,
            [
                ("Response", "Success"),
                ("EventList", "start"),
                ("Message", "Confbridge conferences will follow"),
            ],
        )
        for c in rooms:
            self._list_item(
                s,
                a,
                "ConfbridgeListRooms",
                [
                    ("Conference", c.name),
                    ("Parties", str(len(c.members))),
                    ("Marked", "0"),
                    ("Locked", "No"),
                    ("Muted", "No"),
                ],
            )
        self._list_complete(s, a, "ConfbridgeListRoomsComplete", len(rooms))

    async def _act_confbridgelist(self, s: Session, a: Action) -> None:
        room = a.get("Conference") or ""
        conf = self.pbx.conferences.get(room)
        if not room:
            s.reply(a, [("Response", "Error"), ("Message", "No Conference name provided.")])
            return
        if conf is None:
            s.reply(a, [("Response", "Error"), ("Message", "No active conferences.")])
            return
        s.reply(
            a,
            [
                ("Response", "Success"),
                ("EventList", "start"),
                ("Message", "Confbridge user list will follow"),
            ],
        )
        for m in conf.members:
            self._list_item(
                s,
                a,
                "ConfbridgeList",
                [
                    ("Conference", room),
                    *self.pbx.chan_headers(m),
                    ("Admin", "No"),
                    ("MarkedUser", "Yes" if m.agent else "No"),
                    ("Muted", "Yes" if m.name in conf.muted else "No"),
                ],
            )
        self._list_complete(s, a, "ConfbridgeListComplete", len(conf.members))

    async def _act_mixmonitor(self, s: Session, a: Action) -> None:
        """File 22: Response first, then VarSet MIXMONITOR_FILENAME and MixMonitorStart."""
        ch = self.pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", "No such channel")])
            return
        s.reply(a, [("Response", "Success")])
        self.pbx.start_mixmonitor(ch, a.get("File") or f"{ch.uniqueid}.wav")

    async def _act_stopmixmonitor(self, s: Session, a: Action) -> None:
        """File 22: Response Success, then MixMonitorStop."""
        ch = self.pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", "No such channel")])
            return
        if ch.mixmonitor is None:
            s.reply(a, [("Response", "Error"), ("Message", "Could not stop MixMonitor")])
            return
        s.reply(a, [("Response", "Success")])
        self.pbx.stop_mixmonitor(ch)

    async def _act_confbridgekick(self, s: Session, a: Action) -> None:
        room, chan = a.get("Conference") or "", a.get("Channel") or ""
        if not room:
            s.reply(a, [("Response", "Error"), ("Message", "No Conference name provided.")])
            return
        if not chan:
            s.reply(a, [("Response", "Error"), ("Message", "No channel name provided.")])
            return
        if room not in self.pbx.conferences:
            s.reply(a, [("Response", "Error"), ("Message", "No Conference by that name found.")])
            return
        msg = "All participants kicked" if chan.lower() == "all" else "User kicked"
        conf = self.pbx.conferences[room]
        if chan.lower() != "all" and not any(m.name == chan for m in conf.members):
            s.reply(
                a,
                [
                    ("Response", "Error"),
                    ("Message", "No Channel by that name found in Conference."),
                ],
            )
            return
        s.reply(a, [("Response", "Success"), ("Message", msg)])
        self.pbx.conf_kick(room, chan)

    async def _mute(self, s: Session, a: Action, mute: bool) -> None:
        room, chan = a.get("Conference") or "", a.get("Channel") or ""
        if not room:
            s.reply(a, [("Response", "Error"), ("Message", "No Conference name provided.")])
            return
        if not chan:
            s.reply(a, [("Response", "Error"), ("Message", "No channel name provided.")])
            return
        err = self.pbx.conf_mute(room, chan, mute)
        if err is not None:
            s.reply(a, [("Response", "Error"), ("Message", err)])
            return
        s.reply(a, [("Response", "Success"), ("Message", "User muted" if mute else "User unmuted")])

    async def _act_playdtmf(self, s: Session, a: Action) -> None:
        """PlayDTMF as Asterisk 22's manager.c: the channel is looked up first, then the digit;
        the digit is sent toward the channel's far end (no event)."""
        name = a.get("Channel") or ""
        ch = self.pbx.find_channel(name) if name else None
        if ch is None or ch.hungup:
            s.reply(a, [("Response", "Error"), ("Message", "Channel not found")])
            return
        digit = a.get("Digit") or ""
        if not digit:
            s.reply(a, [("Response", "Error"), ("Message", "No digit specified")])
            return
        self.pbx.dtmf_sent.append((ch.name, digit[0]))
        s.reply(a, [("Response", "Success"), ("Message", "DTMF successfully queued")])

    async def _act_confbridgemute(self, s: Session, a: Action) -> None:
        await self._mute(s, a, True)

    async def _act_confbridgeunmute(self, s: Session, a: Action) -> None:
        await self._mute(s, a, False)


async def serve(
    host: str = "127.0.0.1", port: int = 0, config: SimulatorConfig | None = None
) -> SimulatorServer:
    """Start a simulator listening on ``host:port`` (port 0: any free port, see ``.port``).

    It starts fully booted; :meth:`SimulatorServer.restart` / :meth:`~SimulatorServer.kill` /
    :meth:`~SimulatorServer.start` model ``core restart now``, ``kill -9`` and a new start.
    """
    server = SimulatorServer(host, port, config or SimulatorConfig())
    await server._start(booting=False)
    return server
