"""One AMI session of a link: open the TCP connection, log in, reconcile, and the ping
watchdog while it lasts.

:class:`LinkSession` sits between the dispatch (:mod:`ami_bridge.link_dispatch`) and the
supervisor (:mod:`ami_bridge.link_supervisor`), which calls these steps in order and
reconnects when one fails or the session ends.

* **Connected only after Login** (and after the reconciliation that follows it), never at TCP
  connect: the TCP connection is ours, ``Manager.connect()`` is never used.
* **Wrong secret**: a refused Login raises :class:`~ami_bridge.errors.AuthenticationFailed`.
* **Ping watchdog**: every ``ping_interval`` a Ping must be answered within ``ping_timeout``,
  else the transport is aborted (half-open socket) and the supervisor reconnects. It also runs
  the reconciliation a queue overflow asked for.
"""

from __future__ import annotations

import asyncio

from ami_bridge import actions as act
from ami_bridge.actions import ActionRequest
from ami_bridge.errors import (
    ActionFailed,
    ActionTimeout,
    AMIError,
    AuthenticationFailed,
    ConnectionLost,
    NotConnected,
)
from ami_bridge.link_dispatch import BridgeProtocol, LinkDispatch, call_handler, log

__all__ = ["LinkSession"]


class LinkSession(LinkDispatch):
    """The steps of one session; see the module docstring."""

    async def _open(self) -> BridgeProtocol:
        loop = asyncio.get_running_loop()
        session = next(self._sessions)
        _transport, protocol = await asyncio.wait_for(
            loop.create_connection(
                lambda: BridgeProtocol(self, session), self.server.host, self.server.port
            ),
            self.options.connect_timeout,
        )
        assert isinstance(protocol, BridgeProtocol)
        return protocol

    async def _login(self, protocol: BridgeProtocol) -> None:
        request = ActionRequest(
            "Login",
            (
                ("Username", self.server.username),
                ("Secret", self.server.secret.get_secret_value()),
                ("Events", self.options.events),
            ),
        )
        try:
            await self._send(protocol, request, timeout_s=self.options.effective_login_timeout)
        except ActionFailed as exc:
            raise AuthenticationFailed(f"Login refused: {exc.reason}") from None

    async def _reconcile(self, protocol: BridgeProtocol) -> None:
        """CoreShowChannels, then hand the live channels to ``on_reconcile``."""
        asked_at = self._now()
        items = await self._send(protocol, act.core_show_channels())
        assert isinstance(items, list)
        channels = act.parse_channels(items)
        log.info("ami_reconcile", server=self.name, live_channels=len(channels))
        if self._on_reconcile is not None:
            try:
                await call_handler(self._on_reconcile, self.name, channels, asked_at)
            except Exception:
                log.exception("ami_reconcile_handler_failed", server=self.name)

    async def _watchdog(self, protocol: BridgeProtocol) -> None:
        interval = self.options.ping_interval
        timeout = self.options.effective_ping_timeout
        while not protocol.closed:
            await asyncio.sleep(interval)
            try:
                await self._send(protocol, act.ping(), timeout_s=timeout)
            except ActionTimeout:
                log.warning("ami_ping_timeout", server=self.name, timeout=timeout)
                self._update(last_error=f"ping timeout after {timeout}s")
                protocol.abort()
                return
            except (ConnectionLost, NotConnected):
                return
            except ActionFailed as exc:
                log.warning("ami_ping_refused", server=self.name, error=str(exc))
            if self._needs_reconcile and self._queue.qsize() < self._queue.maxsize // 2:
                self._needs_reconcile = False
                try:
                    await self._reconcile(protocol)
                except AMIError as exc:
                    log.warning("ami_reconcile_failed", server=self.name, error=str(exc))
                    self._needs_reconcile = True
