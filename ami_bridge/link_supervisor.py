"""Supervision of one AMI link: start, the reconnect loop with backoff, and close.

* **Reconnect**: exponential backoff with jitter (:class:`~ami_bridge.link_config.Backoff`)
  after a failed connect, Login or reconciliation, and after a lost session.
* **Wrong secret**: :attr:`LinkState.AUTH_FAILED`, an ``alert=True`` error log, and the slower
  backoff schedule, never a tight loop.
* :meth:`LinkSupervisor.close` logs off (best effort) and cancels the supervisor task, so no
  reconnect can fire after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

from ami_bridge.actions import ActionRequest
from ami_bridge.errors import AMIError, AuthenticationFailed
from ami_bridge.link_config import LinkState
from ami_bridge.link_dispatch import BridgeProtocol, log
from ami_bridge.link_session import LinkSession

__all__ = ["LinkSupervisor"]


class LinkSupervisor(LinkSession):
    """Keeps one link logged in until :meth:`close`; see the module docstring."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the workers and the supervisor (connect, login, reconcile, reconnect...).
        Returns at once; use :meth:`wait_connected` to wait for the first login."""
        if self._supervisor is not None:
            return
        self._closing = False
        self._tasks = [
            asyncio.ensure_future(self._worker(i)) for i in range(max(1, self.options.workers))
        ]
        self._supervisor = asyncio.ensure_future(self._supervise())

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until logged in and reconciled. Raises :class:`TimeoutError`."""
        await asyncio.wait_for(self._connected_event.wait(), timeout_s)

    async def close(self) -> None:
        """Log off (best effort), close the socket, stop reconnecting. Idempotent."""
        self._closing = True
        protocol = self._protocol
        if protocol is not None and self.connected:
            with contextlib.suppress(AMIError, OSError):
                await self._send(protocol, ActionRequest("Logoff"), timeout_s=0.5)
        tasks = [t for t in (self._supervisor, *self._tasks) if t is not None]
        self._supervisor = None
        self._tasks = []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        protocol = self._protocol
        if protocol is not None:
            protocol.abort()
            self._protocol = None
        for task in list(self._side_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._update(state=LinkState.STOPPED, connected_since=None, next_attempt_in=None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- supervisor --------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        auth_failures = 0
        backoff = self.options.backoff
        while not self._closing:
            # After a refused Login the alert state stays up until a Login succeeds.
            self._update(
                state=LinkState.AUTH_FAILED if auth_failures else LinkState.CONNECTING,
                attempts=self._status.attempts + 1,
                next_attempt_in=None,
            )
            protocol: BridgeProtocol | None = None
            try:
                protocol = await self._open()
                await self._login(protocol)
                await self._reconcile(protocol)
            except AuthenticationFailed as exc:
                if protocol is not None:
                    protocol.abort()
                auth_failures += 1
                delay = backoff.delay(auth_failures, self._rng, auth=True)
                log.error(
                    "ami_login_refused",
                    server=self.name,
                    username=self.server.username,
                    failures=auth_failures,
                    retry_in=round(delay, 2),
                    alert=True,
                )
                self._update(
                    state=LinkState.AUTH_FAILED,
                    last_error=str(exc),
                    auth_failures=auth_failures,
                    next_attempt_in=delay,
                )
                await asyncio.sleep(delay)
                continue
            except (OSError, TimeoutError, AMIError) as exc:
                if protocol is not None:
                    protocol.abort()
                failures += 1
                delay = backoff.delay(failures, self._rng)
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "ami_connect_failed",
                    server=self.name,
                    error=error,
                    failures=failures,
                    retry_in=round(delay, 2),
                )
                self._update(state=LinkState.BACKOFF, last_error=error, next_attempt_in=delay)
                await asyncio.sleep(delay)
                continue
            # Logged in and reconciled.
            failures = 0
            auth_failures = 0
            self._update(
                state=LinkState.CONNECTED,
                connected_since=self._wall(),
                auth_failures=0,
                sessions=self._status.sessions + 1,
            )
            log.info("ami_connected", server=self.name, session=protocol.session)
            watchdog = asyncio.ensure_future(self._watchdog(protocol))
            try:
                exc_lost = await asyncio.shield(protocol.lost)
            finally:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watchdog
            if self._closing:
                break
            failures = 1
            delay = backoff.delay(failures, self._rng)
            error = f"connection lost: {exc_lost!r}" if exc_lost else "connection lost (EOF)"
            log.warning("ami_disconnected", server=self.name, error=error, retry_in=round(delay, 2))
            self._update(
                state=LinkState.BACKOFF,
                last_error=error,
                connected_since=None,
                next_attempt_in=delay,
            )
            await asyncio.sleep(delay)
