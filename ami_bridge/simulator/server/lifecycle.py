"""Boot, restart and kill: listening, the boot's registrations and FullyBooted (file 24),
``core restart now`` and ``kill -9`` as a client sees them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ami_bridge.simulator.server.session import AmiProtocol, Session

if TYPE_CHECKING:
    from ami_bridge.simulator.server import SimulatorServer


class Lifecycle:
    """The listening socket and the boot state (``booted``: FullyBooted was sent)."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.pbx = server.pbx
        self.clock = server.clock
        self.config = server.config
        self.listener: asyncio.Server | None = None
        self.booted = asyncio.Event()
        self._boot_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None

    async def _listen(self) -> None:
        server = self.server
        loop = asyncio.get_running_loop()
        self.listener = await loop.create_server(
            lambda: AmiProtocol(server.sessions), server.host, server.port, reuse_address=True
        )
        sock = self.listener.sockets[0]
        server.port = int(sock.getsockname()[1])

    async def start(self, booting: bool) -> None:
        self.pbx.reset()
        self.pbx.mark_boot()
        await self._listen()
        if not booting:
            self.booted.set()
            return
        self.booted.clear()
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
                    "ContactStatus",
                    "system",
                    self.pbx.phones.contact_status_headers(agent.ext, True),
                )
        await self.clock.sleep(self.config.boot_seconds * 0.85)
        self.pbx.emit(
            "FullyBooted",
            "system",
            [("Status", "Fully Booted"), ("Uptime", "0"), ("LastReload", "0")],
        )
        self.booted.set()

    async def _stop_listening(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        if self._boot_task is not None:
            self._boot_task.cancel()
            self._boot_task = None

    async def restart(self, refuse_for: float | None, issuer: Session | None) -> None:
        """See :meth:`SimulatorServer.restart`."""
        sessions = self.server.sessions
        if issuer is not None:
            sessions.close(issuer, abort=False)
        self.pbx.shutdown_hangup_all()
        await self.clock.sleep(self.config.shutdown_event_delay)
        self.pbx.emit("Shutdown", "system", [("Shutdown", "Cleanly"), ("Restart", "True")])
        self.booted.clear()
        sessions.close_all(abort=False)
        await self._stop_listening()
        wait = self.config.restart_refuse_seconds if refuse_for is None else refuse_for
        await self.clock.sleep(wait)
        await self.start(booting=True)

    def restart_in_background(self, issuer: Session) -> None:
        """``Command: core restart now`` from ``issuer`` (it gets no Response, only EOF)."""
        self._restart_task = asyncio.ensure_future(self.server.restart(issuer=issuer))

    async def kill(self) -> None:
        self.booted.clear()
        self.pbx.drop_all()
        await self._stop_listening()
        self.server.sessions.close_all(abort=True)

    async def close(self) -> None:
        self.pbx.drop_all()
        await self._stop_listening()
        self.server.sessions.close_all(abort=True)
        await asyncio.sleep(0)
