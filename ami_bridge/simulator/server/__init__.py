"""The AMI server side of the simulator: sessions, login rules, actions, restart and kill.

:class:`SimulatorServer` wires the parts: :mod:`~ami_bridge.simulator.server.session` (one
connection on the wire), :mod:`~ami_bridge.simulator.server.sessions` (every session, action
dispatch, event broadcast), :mod:`~ami_bridge.simulator.server.lifecycle` (boot, restart,
kill) and the action groups (:mod:`~ami_bridge.simulator.server.login`,
:mod:`~ami_bridge.simulator.server.system_actions`,
:mod:`~ami_bridge.simulator.server.call_actions`,
:mod:`~ami_bridge.simulator.server.confbridge_actions`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ami_bridge.simulator.clock import SimClock
from ami_bridge.simulator.config import SimulatorConfig
from ami_bridge.simulator.pbx import Event, Pbx
from ami_bridge.simulator.server.call_actions import CallActions
from ami_bridge.simulator.server.confbridge_actions import ConfBridgeActions
from ami_bridge.simulator.server.lifecycle import Lifecycle
from ami_bridge.simulator.server.login import LoginActions
from ami_bridge.simulator.server.session import EVENT_CLASSES, AmiProtocol, Session
from ami_bridge.simulator.server.sessions import ACTION_PERMS, NO_AUTH_ACTIONS, Sessions
from ami_bridge.simulator.server.system_actions import SystemActions

__all__ = [
    "ACTION_PERMS",
    "EVENT_CLASSES",
    "NO_AUTH_ACTIONS",
    "AmiProtocol",
    "ChannelInfo",
    "Session",
    "SimulatorServer",
    "serve",
]


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


class SimulatorServer:
    """An asyncio AMI server that behaves like Asterisk 22.10.1 for everything Marcador uses.

    Build it with :func:`serve`. All delays are simulated seconds divided by ``config.speed``.
    """

    def __init__(self, host: str, port: int, config: SimulatorConfig) -> None:
        self.host = host
        self.port = port
        self.config = config
        self.clock = SimClock(config.speed, config.epoch)
        self.sessions = Sessions(self)
        self.pbx = Pbx(config, self.clock, self.sessions.broadcast)
        self.lifecycle = Lifecycle(self)
        for group in (
            LoginActions(self),
            SystemActions(self),
            CallActions(self),
            ConfBridgeActions(self),
        ):
            self.sessions.handlers.update(group.handlers())

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self.lifecycle.listener is not None

    @property
    def fully_booted(self) -> bool:
        return self.lifecycle.booted.is_set()

    async def wait_fully_booted(self) -> None:
        await self.lifecycle.booted.wait()

    async def start(self) -> None:
        """Start again after :meth:`kill` (or after :meth:`close`): boots like a fresh Asterisk."""
        if self.lifecycle.listener is None:
            await self.lifecycle.start(booting=True)

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
        await self.lifecycle.restart(refuse_for, issuer)

    async def kill(self) -> None:
        """``kill -9``: bare EOF on every connection, no events; refused until :meth:`start`."""
        await self.lifecycle.kill()

    async def close(self) -> None:
        """Stop everything (end of a test or of the demo)."""
        await self.lifecycle.close()

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
        self.pbx.phones.set_agent(ext, registered=registered, busy=busy, answer_delay=answer_delay)

    def hangup_from_far_end(self, channel: str, cause: int = 16) -> bool:
        """The customer (or the agent's phone) on ``channel`` hangs up. False: no such channel."""
        ch = self.pbx.find_channel(channel) or self.pbx.by_uniqueid.get(channel)
        if ch is None:
            return False
        self.pbx.hangups.remote_hangup(ch, cause)
        return True

    def agent_hangs_up(self, ext: str) -> bool:
        """Agent ``ext`` drops the nailed-up call from their softphone."""
        chans = self.pbx.phones.channels(ext)
        for ch in chans:
            self.pbx.hangups.remote_hangup(ch, 16)
        return bool(chans)

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback`` synchronously for every event (before any client sees it)."""
        self.sessions.listeners.append(callback)

    @property
    def event_log(self) -> deque[Event] | None:
        """The events kept since :meth:`record_events` (``None`` before)."""
        return self.sessions.event_log

    def record_events(self, maxlen: int | None = None) -> deque[Event]:
        """Start keeping emitted events in :attr:`event_log` and return it."""
        log: deque[Event] = deque(maxlen=maxlen)
        self.sessions.event_log = log
        return log


async def serve(
    host: str = "127.0.0.1", port: int = 0, config: SimulatorConfig | None = None
) -> SimulatorServer:
    """Start a simulator listening on ``host:port`` (port 0: any free port, see ``.port``).

    It starts fully booted; :meth:`SimulatorServer.restart` / :meth:`~SimulatorServer.kill` /
    :meth:`~SimulatorServer.start` model ``core restart now``, ``kill -9`` and a new start.
    """
    server = SimulatorServer(host, port, config or SimulatorConfig())
    await server.lifecycle.start(booting=False)
    return server
