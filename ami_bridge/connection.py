"""AMI connection manager: one robust link per Asterisk server, a pool of them, and the bridge
that feeds the call trackers.

This is the **only** module of Marcador that imports panoramisk (1.4). We keep its asyncio
protocol (:class:`panoramisk.ami_protocol.AMIProtocol`), its action/reply correlation
(:class:`panoramisk.actions.Action` futures, ``handle_message``) and its ``Manager`` as the
protocol's factory, and work around every pitfall listed in issue 3:

* **Data path**: :class:`_BridgeProtocol` overrides ``data_received`` and feeds raw bytes to the
  team's sans-IO :class:`~ami_bridge.protocol.AMIParser`. A message is decoded only once it is
  complete, so UTF-8 split across TCP reads survives (panoramisk decodes every read with
  ``errors='ignore'`` and drops such characters). Garbage, a 1 MB header, non-UTF-8 bytes and
  truncated messages come back from the parser as typed errors: logged, counted, and the
  parser resynchronises at the next message boundary.
* **Events never go through panoramisk's dispatch** (no callback can drop the connection):
  each event is decoded to a typed event (:func:`ami_bridge.events.to_event`) and put into a
  bounded :class:`asyncio.Queue`; a fixed set of worker tasks calls the handler. A handler
  exception is logged and the workers carry on. Queue overflow is counted, logged, and
  triggers a reconciliation at the next watchdog tick (lost events cannot leave calls stuck).
* **Originate** is always ``Async: true`` and registered with ``as_list=False``: its future
  resolves on the immediate ``Response``, and the later ``OriginateResponse`` event (same
  ActionID) takes the event path to the tracker. Only list actions consume events.
* **No re-send after a reconnect**: every action name is in ``forgetable_actions`` and
  ``awaiting_actions`` is cleared on every disconnect. Pending futures are failed with
  :class:`~ami_bridge.errors.ConnectionLost` at once (panoramisk would leave them pending
  forever). An Originate whose fate is unknown is **never** retried: the tracker resolves it
  (``OriginateResponse``/``Hangup`` events, then ``CoreShowChannels`` reconciliation).
* **Every action** is wrapped in :func:`asyncio.wait_for` with ``action_timeout``.
* **Ping watchdog**: every ``ping_interval`` a Ping must be answered within ``ping_timeout``,
  else the transport is aborted (half-open socket) and the link reconnects.
* **Connected only after Login** (and after the reconciliation that follows it), never at TCP
  connect. We drive the TCP connection ourselves instead of ``Manager.connect()``, so its
  silent fixed-delay reconnect loop is never armed.
* **Wrong secret**: :class:`LinkState.AUTH_FAILED`, an ``alert=True`` error log, exponential
  backoff with jitter (a separate, slower schedule), never a tight loop.
* **Reconnect**: exponential backoff with jitter. :meth:`AmiConnection.close` cancels the
  supervisor task, so no reconnect can fire after it.
* **Event-loop thread only**: nothing here is thread-safe, and nothing needs to be.
* ``panoramisk.testing`` is never imported.

Public API for the engine (see also :class:`AmiBridge`)::

    bridge = AmiBridge.from_settings(settings.asterisk, simulator=spec_or_None,
                                     on_output=handle_call_output,   # (server, TrackerOutput)
                                     on_event=handle_ami_event,      # (server, AMIEvent)
                                     on_status=publish_link_status)  # (LinkStatus)
    await bridge.start(); await bridge.wait_ready(10)
    queued = await bridge.originate("pbx1", OriginateRequest(...))
    await bridge.link("pbx1").redirect(channel, dp.CTX_AGENT_ROOM, agent_ext)
    bridge.statuses()   # {server: LinkStatus} for /readyz and the dashboard
    await bridge.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

from panoramisk.actions import Action as _PkAction
from panoramisk.ami_protocol import AMIProtocol as _PkProtocol
from panoramisk.manager import Manager as _PkManager
from panoramisk.message import Message as _PkMessage
from pydantic import SecretStr

from ami_bridge import actions as act
from ami_bridge.actions import (
    ActionRequest,
    ChannelInfo,
    ContactInfo,
    EndpointInfo,
    GetvarResult,
    OriginateQueued,
    OriginateRequest,
)
from ami_bridge.errors import (
    ActionFailed,
    ActionOutcomeUnknown,
    ActionTimeout,
    AMIError,
    AMIProtocolError,
    AuthenticationFailed,
    ConnectionLost,
    DuplicateActionID,
    NotConnected,
)
from ami_bridge.events import AMIEvent, to_event
from ami_bridge.logs import get_logger, mask_digits
from ami_bridge.protocol import (
    DEFAULT_MAX_MESSAGE_SIZE,
    AMIParser,
    Banner,
    Message,
    serialize_action,
)
from ami_bridge.tracker import CallEnded, CallTracker, TrackerConfig, TrackerOutput

__all__ = [
    "AmiBridge",
    "AmiConnection",
    "AmiPool",
    "Backoff",
    "LinkOptions",
    "LinkState",
    "LinkStatus",
    "ServerSpec",
]

log = get_logger("marcador.ami")

T = TypeVar("T")

#: Every action this module sends. panoramisk re-sends unanswered actions that are *not* in
#: ``forgetable_actions`` after a reconnect; we own retries, so all of them are forgetable.
FORGETABLE_ACTIONS: Final = (
    "login",
    "logoff",
    "ping",
    "originate",
    "redirect",
    "hangup",
    "getvar",
    "setvar",
    "confbridgekick",
    "confbridgemute",
    "confbridgeunmute",
    "coreshowchannels",
    "pjsipshowendpoints",
    "pjsipshowcontacts",
)


# --- configuration and status -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """Where and how to log in. The secret is a :class:`SecretStr`: it never reaches a log."""

    name: str
    host: str
    port: int
    username: str
    secret: SecretStr

    @classmethod
    def from_settings(cls, server: Any) -> ServerSpec:
        """From a :class:`dialer.settings.AsteriskServer`."""
        return cls(server.name, server.host, server.port, server.username, server.secret)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff; each delay is drawn in ``[nominal * (1 - jitter), nominal]``."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.25
    #: Slower schedule after a refused Login (an admin has to fix the secret).
    auth_initial: float = 5.0
    auth_maximum: float = 300.0

    def delay(self, failures: int, rng: random.Random, *, auth: bool = False) -> float:
        """Delay before attempt number ``failures + 1`` (``failures`` >= 1)."""
        start, cap = (
            (self.auth_initial, self.auth_maximum) if auth else (self.initial, self.maximum)
        )
        nominal = min(cap, start * self.factor ** max(0, failures - 1))
        # Jitter downwards only, so the cap holds and delays at the cap still spread out.
        return max(0.0, nominal * (1.0 - self.jitter * rng.random()))


@dataclass(frozen=True, slots=True)
class LinkOptions:
    action_timeout: float = 5.0
    ping_interval: float = 10.0
    #: Default: ``min(action_timeout, ping_interval)``.
    ping_timeout: float | None = None
    connect_timeout: float = 5.0
    #: A refused Login is answered after ~1 s (transcript 02): allow for that.
    login_timeout: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    queue_size: int = 10_000
    #: Worker tasks per link. With 1 (the default) events are handled strictly in order.
    workers: int = 1
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    events: str = "on"

    @property
    def effective_ping_timeout(self) -> float:
        return self.ping_timeout or min(self.action_timeout, self.ping_interval)

    @property
    def effective_login_timeout(self) -> float:
        return self.login_timeout or self.action_timeout + 2.0

    @classmethod
    def from_settings(cls, asterisk: Any, **overrides: Any) -> LinkOptions:
        """From :class:`dialer.settings.AsteriskSettings` (action_timeout, ping_interval)."""
        base = cls(action_timeout=asterisk.action_timeout, ping_interval=asterisk.ping_interval)
        return replace(base, **overrides)


class LinkState(StrEnum):
    STOPPED = "stopped"  # not started, or closed
    CONNECTING = "connecting"  # TCP connect, Login and reconciliation in progress
    CONNECTED = "connected"  # logged in and reconciled: actions accepted
    BACKOFF = "backoff"  # waiting before the next attempt
    AUTH_FAILED = "auth_failed"  # Login refused; backing off (alert raised)


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """Snapshot of one link, for /readyz, the dashboard and Redis (``Keys.ami_link``)."""

    server: str
    state: LinkState
    last_error: str | None = None
    connected_since: float | None = None  # UNIX time of the current session's login
    next_attempt_in: float | None = None  # seconds, in BACKOFF/AUTH_FAILED
    attempts: int = 0  # TCP connection attempts since start
    sessions: int = 0  # successful logins since start (reconnects = sessions - 1)
    auth_failures: int = 0  # consecutive refused logins
    events_dropped: int = 0  # queue overflows
    protocol_errors: int = 0  # garbage, oversized or undecodable input
    banner: str | None = None

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    @property
    def alert(self) -> bool:
        return self.state is LinkState.AUTH_FAILED

    def as_mapping(self) -> dict[str, str]:
        """Flat string mapping for a Redis hash."""
        return {
            "server": self.server,
            "state": self.state.value,
            "last_error": self.last_error or "",
            "connected_since": "" if self.connected_since is None else f"{self.connected_since}",
            "next_attempt_in": "" if self.next_attempt_in is None else f"{self.next_attempt_in}",
            "attempts": str(self.attempts),
            "sessions": str(self.sessions),
            "auth_failures": str(self.auth_failures),
            "events_dropped": str(self.events_dropped),
            "protocol_errors": str(self.protocol_errors),
            "banner": self.banner or "",
            "alert": "1" if self.alert else "0",
        }


EventHandler = Callable[[str, AMIEvent], Awaitable[None] | None]
ReconcileHandler = Callable[[str, list[ChannelInfo], datetime], Awaitable[None] | None]
StatusHandler = Callable[[LinkStatus], Awaitable[None] | None]
OutputHandler = Callable[[str, TrackerOutput], Awaitable[None] | None]


# --- panoramisk glue ---------------------------------------------------------------------------


class _Manager(_PkManager):  # type: ignore[misc]
    """panoramisk's Manager, used only as the protocol's factory: it holds
    ``forgetable_actions``/``awaiting_actions``. Its own connect/reconnect/ping are disabled."""

    def connection_lost(self, exc: Any) -> None:  # never schedule panoramisk's reconnect
        return None

    def ping(self) -> None:  # our watchdog pings
        return None

    def dispatch(self, event: Any) -> list[str]:  # events never go through panoramisk
        return []


def _to_pk(message: Message) -> _PkMessage:
    """Our Message -> panoramisk Message, for its action/reply correlation. The original is
    kept as ``.raw`` (results are returned as the team's :class:`Message`)."""
    headers: dict[str, Any] = {}
    for key, value in message.headers:
        if key in headers and key not in ("Response", "Event", "Message", "ActionID", "EventList"):
            old = headers[key]
            headers[key] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            headers.setdefault(key, value)
    pk = _PkMessage(headers)
    pk.raw = message
    return pk


class _BridgeProtocol(_PkProtocol):  # type: ignore[misc]
    """panoramisk's AMIProtocol with the team's sans-IO parser on the data path."""

    def __init__(self, link: AmiConnection, session: int) -> None:
        self.link = link
        self.session = session
        self.parser = AMIParser(max_message_size=link.options.max_message_size)
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.encoding = "utf-8"
        self.log = log
        self.link._attach(self)  # before any data_received: the banner comes at once

    def data_received(self, data: bytes) -> None:
        try:
            items = self.parser.feed(data)
        except Exception as exc:  # defensive: the parser is not supposed to raise
            self.link._protocol_error(self, f"parser crashed: {exc!r}")
            self.parser = AMIParser(
                max_message_size=self.link.options.max_message_size, expect_banner=False
            )
            return
        for item in items:
            try:
                self.link._on_item(self, item)
            except Exception:
                log.exception("ami_item_handling_failed", server=self.link.name)

    def eof_received(self) -> bool | None:
        for item in self.parser.feed_eof():
            with contextlib.suppress(Exception):
                self.link._on_item(self, item)
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.link._on_connection_lost(self, exc)
        if not self.lost.done():
            self.lost.set_result(exc)

    def abort(self) -> None:
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.abort()


# --- one link -----------------------------------------------------------------------------------


_ID_PREFIX: Final = uuid.uuid4().hex[:8]
_YIELD_EVERY: Final = 8


async def _call(handler: Callable[..., Any], *args: Any) -> None:
    result = handler(*args)
    if inspect.isawaitable(result):
        await result


class AmiConnection:
    """One supervised AMI link to one Asterisk server. See the module docstring.

    Typed actions raise :class:`NotConnected` (nothing sent), :class:`ActionTimeout` /
    :class:`ConnectionLost` (outcome unknown, subclasses of :class:`ActionOutcomeUnknown`),
    or a subclass of :class:`ActionFailed` for ``Response: Error``.
    """

    def __init__(
        self,
        server: ServerSpec,
        *,
        options: LinkOptions | None = None,
        on_event: EventHandler | None = None,
        on_reconcile: ReconcileHandler | None = None,
        on_status: StatusHandler | None = None,
        rng: random.Random | None = None,
        wall: Callable[[], float] = time.time,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.server = server
        self.name = server.name
        self.options = options or LinkOptions()
        self._on_event = on_event
        self._on_reconcile = on_reconcile
        self._on_status = on_status
        self._rng = rng or random.Random()
        self._wall = wall
        self._now = now
        self._status = LinkStatus(server.name, LinkState.STOPPED)
        self._queue: asyncio.Queue[AMIEvent] = asyncio.Queue(maxsize=self.options.queue_size)
        self._protocol: _BridgeProtocol | None = None
        self._manager = _Manager(
            host=server.host,
            port=server.port,
            events=self.options.events,
            forgetable_actions=FORGETABLE_ACTIONS,
            log=log,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._sessions = itertools.count(1)
        self._connected_event = asyncio.Event()
        self._needs_reconcile = False
        self._closing = False
        self._drop_logged_at = 0.0

    # -- status ------------------------------------------------------------------------------

    @property
    def status(self) -> LinkStatus:
        return self._status

    @property
    def connected(self) -> bool:
        return self._status.state is LinkState.CONNECTED

    def _update(self, **changes: Any) -> None:
        old = self._status
        new = replace(old, **changes)
        self._status = new
        if new.state is LinkState.CONNECTED:
            self._connected_event.set()
        else:
            self._connected_event.clear()
        if self._on_status is not None and new != old:
            self._spawn(self._on_status, new)

    def _spawn(self, handler: Callable[..., Any], *args: Any) -> None:
        try:
            result = handler(*args)
        except Exception:
            log.exception("ami_callback_failed", server=self.name)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._guard(result))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _guard(self, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("ami_callback_failed", server=self.name)

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

    async def __aenter__(self) -> AmiConnection:
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
            protocol: _BridgeProtocol | None = None
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

    async def _open(self) -> _BridgeProtocol:
        loop = asyncio.get_running_loop()
        session = next(self._sessions)
        _transport, protocol = await asyncio.wait_for(
            loop.create_connection(
                lambda: _BridgeProtocol(self, session), self.server.host, self.server.port
            ),
            self.options.connect_timeout,
        )
        assert isinstance(protocol, _BridgeProtocol)
        return protocol

    def _attach(self, protocol: _BridgeProtocol) -> None:
        # What Manager.connection_made would wire (without its Login/pinger side effects).
        protocol.factory = self._manager
        protocol.config = self._manager.config
        self._manager.protocol = protocol
        self._manager.responses = protocol.responses
        self._protocol = protocol

    async def _login(self, protocol: _BridgeProtocol) -> None:
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

    async def _reconcile(self, protocol: _BridgeProtocol) -> None:
        """CoreShowChannels, then hand the live channels to ``on_reconcile``."""
        asked_at = self._now()
        items = await self._send(protocol, act.core_show_channels())
        assert isinstance(items, list)
        channels = act.parse_channels(items)
        log.info("ami_reconcile", server=self.name, live_channels=len(channels))
        if self._on_reconcile is not None:
            try:
                await _call(self._on_reconcile, self.name, channels, asked_at)
            except Exception:
                log.exception("ami_reconcile_handler_failed", server=self.name)

    async def _watchdog(self, protocol: _BridgeProtocol) -> None:
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

    # -- incoming ----------------------------------------------------------------------------

    def _protocol_error(self, protocol: _BridgeProtocol, detail: str) -> None:
        self._status = replace(self._status, protocol_errors=self._status.protocol_errors + 1)
        log.warning("ami_protocol_error", server=self.name, error=mask_digits(detail))

    def _on_item(
        self, protocol: _BridgeProtocol, item: Message | Banner | AMIProtocolError
    ) -> None:
        if protocol is not self._protocol:
            return  # a late read from a previous session
        if isinstance(item, Message):
            self._on_message(protocol, item)
        elif isinstance(item, Banner):
            protocol.version = item.version
            self._status = replace(self._status, banner=item.line)
        else:
            sample = mask_digits(repr(item.sample[:40]))
            self._status = replace(self._status, protocol_errors=self._status.protocol_errors + 1)
            log.warning(
                "ami_protocol_error",
                server=self.name,
                kind=type(item).__name__,
                error=str(item),
                sample=sample,
            )

    def _on_message(self, protocol: _BridgeProtocol, message: Message) -> None:
        index = message.index
        action_id = index.get("ActionID")
        pending: _PkAction | None = (
            protocol.responses.get(action_id) if action_id is not None else None
        )
        if "Event" not in index:
            if "Response" not in index:
                log.warning("ami_unknown_message", server=self.name, keys=len(index))
                return
            if pending is None:
                # A reply to an action we never sent, or a second reply (duplicate ActionID).
                log.warning(
                    "ami_unsolicited_response",
                    server=self.name,
                    action_id=mask_digits(action_id or ""),
                    response=index.get("Response"),
                )
                return
            if pending.as_list and (index.get("Response") or "").lower() != "success":
                # panoramisk would wait forever for the list that never comes.
                protocol.responses.pop(action_id, None)
                if not pending.future.done():
                    pending.future.set_result([_to_pk(message)])
                return
            protocol.handle_message(_to_pk(message))
            return
        if pending is not None and pending.as_list:
            protocol.handle_message(_to_pk(message))  # a list item or its Complete event
            return
        if index.get("Event") == "Shutdown":
            log.warning("ami_pbx_shutdown", server=self.name, restart=index.get("Restart"))
        self._enqueue(to_event(message))

    def _enqueue(self, event: AMIEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            dropped = self._status.events_dropped + 1
            self._status = replace(self._status, events_dropped=dropped)
            self._needs_reconcile = True
            now = time.monotonic()
            if now - self._drop_logged_at >= 1.0:  # at most one log line per second
                self._drop_logged_at = now
                log.error(
                    "ami_event_queue_full",
                    server=self.name,
                    dropped_total=dropped,
                    queue_size=self._queue.maxsize,
                )

    async def _worker(self, index: int) -> None:
        queue = self._queue
        handled = 0
        while True:
            handled += 1
            if handled % _YIELD_EVERY == 0:
                # queue.get() does not yield while items are queued: let tasks the handlers
                # scheduled (e.g. the Redirect of a call just answered) run during a burst.
                await asyncio.sleep(0)
            event = await queue.get()
            try:
                if self._on_event is not None:
                    result = self._on_event(self.name, event)
                    if result is not None:
                        await result
            except Exception:
                log.exception("ami_event_handler_failed", server=self.name, worker=index)
            finally:
                queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued event has been handled (tests, benchmarks)."""
        await self._queue.join()

    def _on_connection_lost(self, protocol: _BridgeProtocol, exc: Exception | None) -> None:
        pending = {id(a): a for a in protocol.responses.values()}
        protocol.responses.clear()
        for action in pending.values():
            if not action.future.done():
                name = action.get("Action", "?")
                action.future.set_exception(
                    ConnectionLost(f"connection to {self.name} lost before the {name} reply")
                )
        self._manager.awaiting_actions.clear()  # never re-send anything
        if self._protocol is protocol:
            self._protocol = None

    # -- outgoing ----------------------------------------------------------------------------

    def next_action_id(self, name: str) -> str:
        return f"mc-{_ID_PREFIX}-{self.name}-{name.lower()}-{next(self._ids)}"

    async def send(
        self, request: ActionRequest, *, timeout_s: float | None = None
    ) -> Message | list[Message]:
        """Send any action. A list action returns its items (plus the Complete event)."""
        protocol = self._protocol
        if not self.connected or protocol is None:
            raise NotConnected(f"AMI link {self.name} is {self._status.state.value}")
        return await self._send(protocol, request, timeout_s=timeout_s)

    async def _send(
        self, protocol: _BridgeProtocol, request: ActionRequest, *, timeout_s: float | None = None
    ) -> Message | list[Message]:
        if protocol.closed:
            raise NotConnected(f"AMI link {self.name} is not connected")
        action_id = request.action_id or self.next_action_id(request.name)
        if action_id in protocol.responses:
            raise DuplicateActionID(f"ActionID {action_id!r} is still waiting for its reply")
        # serialize first: InvalidAction (CR/LF injection, bad name) means nothing is sent
        data = serialize_action(request.name, request.headers, action_id=action_id)
        pk_headers: dict[str, str] = {"Action": request.name, "ActionID": action_id}
        if request.is_originate:
            pk_headers["Async"] = "true"
        pk_action = _PkAction(pk_headers, as_list=request.is_list)
        protocol.responses[action_id] = pk_action
        protocol.transport.write(data)
        limit = self.options.action_timeout if timeout_s is None else timeout_s
        try:
            result = await asyncio.wait_for(pk_action.future, limit)
        except TimeoutError:
            raise ActionTimeout(
                f"no reply to {request.name} from {self.name} within {limit}s"
            ) from None
        finally:
            if protocol.responses.get(action_id) is pk_action:
                del protocol.responses[action_id]
        if isinstance(result, list):
            messages = [m.raw for m in result]
            first = messages[0]
            act.raise_for_error(request.name, first)
            return messages[1:]
        return act.raise_for_error(request.name, result.raw)

    async def _single(self, request: ActionRequest) -> Message:
        result = await self.send(request)
        assert isinstance(result, Message)
        return result

    async def _list(self, request: ActionRequest) -> list[Message]:
        result = await self.send(request)
        assert isinstance(result, list)
        return result

    # -- typed actions -----------------------------------------------------------------------

    async def originate(
        self, request: OriginateRequest, *, action_id: str | None = None
    ) -> OriginateQueued:
        """Async Originate. Returns once Asterisk queued it; the outcome arrives as events.

        Never retry after :class:`ActionOutcomeUnknown`: the call may be ringing.
        """
        built = act.originate(request)
        aid = action_id or self.next_action_id("originate")
        await self._single(built.with_action_id(aid))
        return OriginateQueued(self.name, aid, request.channel_id)

    async def redirect(
        self,
        channel: str,
        context: str,
        exten: str,
        priority: int = 1,
        *,
        extra_channel: str | None = None,
    ) -> None:
        await self._single(
            act.redirect(channel, context, exten, priority, extra_channel=extra_channel)
        )

    async def hangup(self, channel: str, cause: int | None = None) -> None:
        await self._single(act.hangup(channel, cause))

    async def stop_mixmonitor(self, channel: str) -> None:
        await self._single(act.stop_mixmonitor(channel))

    async def getvar(self, variable: str, channel: str | None = None) -> GetvarResult:
        return act.parse_getvar(await self._single(act.getvar(variable, channel)))

    async def setvar(self, variable: str, value: str, channel: str | None = None) -> None:
        await self._single(act.setvar(variable, value, channel))

    async def confbridge_kick(self, conference: str, channel: str) -> None:
        await self._single(act.confbridge_kick(conference, channel))

    async def confbridge_mute(self, conference: str, channel: str, *, mute: bool = True) -> None:
        build = act.confbridge_mute if mute else act.confbridge_unmute
        await self._single(build(conference, channel))

    async def play_dtmf(self, channel: str, digits: str, duration_ms: int | None = None) -> None:
        """PlayDTMF, one action per digit, in order."""
        for digit in digits:
            await self._single(act.play_dtmf(channel, digit, duration_ms))

    async def spy(
        self,
        supervisor_channel: str,
        agent_ext: str,
        mode: str,
        *,
        channel_id: str | None = None,
        caller_id: str | None = None,
    ) -> OriginateQueued:
        """Ring the supervisor and ChanSpy on agent ``agent_ext`` (listen/whisper/barge)."""
        cid = channel_id or f"spy-{uuid.uuid4().hex}"
        built = act.spy_originate(
            supervisor_channel, agent_ext, mode, channel_id=cid, caller_id=caller_id
        )
        aid = self.next_action_id("originate")
        await self._single(built.with_action_id(aid))
        return OriginateQueued(self.name, aid, cid)

    async def ping(self) -> None:
        await self._single(act.ping())

    async def core_show_channels(self) -> list[ChannelInfo]:
        return act.parse_channels(await self._list(act.core_show_channels()))

    async def pjsip_show_endpoints(self) -> list[EndpointInfo]:
        return act.parse_endpoints(await self._list(act.pjsip_show_endpoints()))

    async def pjsip_show_contacts(self) -> list[ContactInfo]:
        return act.parse_contacts(await self._list(act.pjsip_show_contacts()))


# --- several servers ----------------------------------------------------------------------------


class AmiPool:
    """One :class:`AmiConnection` per Asterisk server."""

    def __init__(
        self,
        servers: Sequence[ServerSpec],
        *,
        options: LinkOptions | None = None,
        on_event: EventHandler | None = None,
        on_reconcile: ReconcileHandler | None = None,
        on_status: StatusHandler | None = None,
        seed: int | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not servers:
            raise ValueError("AmiPool needs at least one server")
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError("Asterisk server names must be unique")
        rng = random.Random(seed)
        self.links: dict[str, AmiConnection] = {
            spec.name: AmiConnection(
                spec,
                options=options,
                on_event=on_event,
                on_reconcile=on_reconcile,
                on_status=on_status,
                rng=random.Random(rng.random()),
                now=now,
            )
            for spec in servers
        }

    @staticmethod
    def specs_from_settings(asterisk: Any, simulator: ServerSpec | None = None) -> list[ServerSpec]:
        """The configured servers, or the simulator when ``asterisk.servers`` is empty."""
        if asterisk.servers:
            return [ServerSpec.from_settings(s) for s in asterisk.servers]
        if simulator is None:
            raise ValueError("no Asterisk server configured and no simulator given")
        return [simulator]

    def link(self, server: str) -> AmiConnection:
        try:
            return self.links[server]
        except KeyError:
            raise NotConnected(f"unknown Asterisk server {server!r}") from None

    @property
    def names(self) -> list[str]:
        return list(self.links)

    def statuses(self) -> dict[str, LinkStatus]:
        return {name: link.status for name, link in self.links.items()}

    def connected(self) -> list[str]:
        return [name for name, link in self.links.items() if link.connected]

    @property
    def ready(self) -> bool:
        """At least one server is logged in (for /readyz)."""
        return any(link.connected for link in self.links.values())

    async def start(self) -> None:
        for link in self.links.values():
            await link.start()

    async def wait_ready(self, timeout_s: float, *, all_servers: bool = False) -> None:
        waits = [link.wait_connected(timeout_s) for link in self.links.values()]
        if all_servers:
            await asyncio.gather(*waits)
            return
        tasks = [asyncio.ensure_future(w) for w in waits]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links.values()))

    async def __aenter__(self) -> AmiPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --- pool + trackers ----------------------------------------------------------------------------


class AmiBridge:
    """The pool plus one :class:`CallTracker` per server: what the engine uses.

    * every event goes to the server's tracker; its outputs (``CallRinging``,
      ``CallAnswered``, ``CallConnected``, ``CallEnded``) go to ``on_output(server, output)``;
      every event also goes to ``on_event(server, event)`` (agent rooms, contacts...);
    * after every (re)connect the tracker is reconciled with ``CoreShowChannels``;
    * a ticker calls ``tracker.tick(now)`` every ``tick_interval`` s (stuck calls);
    * each tracked call yields exactly one ``CallEnded`` through ``on_output``: record outcomes
      from there only, never from an exception of :meth:`originate`.
    """

    def __init__(
        self,
        servers: Sequence[ServerSpec],
        *,
        options: LinkOptions | None = None,
        tracker_config: TrackerConfig | None = None,
        on_output: OutputHandler | None = None,
        on_event: EventHandler | None = None,
        on_status: StatusHandler | None = None,
        tick_interval: float = 1.0,
        seed: int | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._now = now
        self._on_output = on_output
        self._on_event = on_event
        self.trackers: dict[str, CallTracker] = {
            spec.name: CallTracker(tracker_config) for spec in servers
        }
        self.pool = AmiPool(
            servers,
            options=options,
            on_event=self._handle_event,
            on_reconcile=self._handle_reconcile,
            on_status=on_status,
            seed=seed,
            now=now,
        )
        self._tick_interval = tick_interval
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, asterisk: Any, *, simulator: ServerSpec | None = None, **kwargs: Any
    ) -> AmiBridge:
        """From :class:`dialer.settings.AsteriskSettings` (the simulator if no server is set)."""
        kwargs.setdefault("options", LinkOptions.from_settings(asterisk))
        return cls(AmiPool.specs_from_settings(asterisk, simulator), **kwargs)

    # -- plumbing ----------------------------------------------------------------------------

    async def _emit(self, server: str, outputs: list[TrackerOutput]) -> None:
        if self._on_output is None:
            return
        for output in outputs:
            try:
                await _call(self._on_output, server, output)
            except Exception:
                log.exception("ami_output_handler_failed", server=server)

    async def _handle_event(self, server: str, event: AMIEvent) -> None:
        outputs = self.trackers[server].feed(event, self._now())
        if outputs:
            await self._emit(server, outputs)
        if self._on_event is not None:
            await _call(self._on_event, server, event)

    async def _handle_reconcile(
        self, server: str, channels: list[ChannelInfo], asked_at: datetime
    ) -> None:
        live = {c.uniqueid for c in channels}
        outputs = self.trackers[server].reconcile(live, self._now(), tracked_before=asked_at)
        for output in outputs:
            if isinstance(output, CallEnded):
                log.info(
                    "ami_call_resolved_by_reconcile",
                    server=server,
                    call_id=output.call_id,
                    outcome=output.outcome.value,
                    detail=output.detail,
                )
        await self._emit(server, outputs)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            now = self._now()
            for server, tracker in self.trackers.items():
                try:
                    outputs = tracker.tick(now)
                except Exception:
                    log.exception("ami_tracker_tick_failed", server=server)
                    continue
                await self._emit(server, outputs)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.pool.start()
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())

    async def wait_ready(self, timeout_s: float, *, all_servers: bool = False) -> None:
        await self.pool.wait_ready(timeout_s, all_servers=all_servers)

    async def close(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await self.pool.close()

    async def __aenter__(self) -> AmiBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- API ---------------------------------------------------------------------------------

    def link(self, server: str) -> AmiConnection:
        return self.pool.link(server)

    def statuses(self) -> dict[str, LinkStatus]:
        return self.pool.statuses()

    @property
    def ready(self) -> bool:
        return self.pool.ready

    async def originate(
        self,
        server: str,
        request: OriginateRequest,
        *,
        call_id: str | None = None,
        preview: bool = False,
        match_variable: tuple[str, str] | None = None,
    ) -> OriginateQueued:
        """Track, then send an async Originate on ``server``.

        * returns :class:`OriginateQueued`: the outcome follows through ``on_output``;
        * :class:`NotConnected` / :class:`OriginateRejected` (or any ``ActionFailed``): no call
          was placed; the tracker ends it FAILED (delivered through ``on_output``);
        * :class:`ActionOutcomeUnknown`: the call may exist. It stays tracked and is resolved
          by events, by reconciliation after a reconnect, or by the tracker's timeouts.
          **Do not retry it.**
        """
        link = self.pool.link(server)
        tracker = self.trackers[server]
        cid = call_id or request.channel_id
        action_id = link.next_action_id("originate")
        tracker.track(
            cid,
            action_id=action_id,
            now=self._now(),
            channel_id=request.channel_id,
            other_channel_id=request.other_channel_id,
            match_variable=match_variable,
            ring_timeout=timedelta(milliseconds=request.timeout_ms),
            preview=preview,
        )
        try:
            return await link.originate(request, action_id=action_id)
        except ActionOutcomeUnknown as exc:
            log.warning("ami_originate_outcome_unknown", server=server, call_id=cid, error=str(exc))
            raise
        except (NotConnected, ActionFailed, AMIError) as exc:
            outputs = tracker.originate_failed(cid, self._now(), f"originate not placed: {exc}")
            await self._emit(server, outputs)
            raise

    def adopt(self, server: str, call_id: str, **kw: Any) -> None:
        """Follow a live call another process originated (see ``CallTracker.adopt``).

        The milestones already reached are not emitted: the caller knows them."""
        self.trackers[server].adopt(call_id, now=self._now(), **kw)

    async def hangup_call(self, server: str, call_id: str, cause: int | None = None) -> None:
        """Drop a tracked call (campaign paused, window closed): CANCELLED if unanswered."""
        tracker = self.trackers[server]
        channel, _uid = tracker.channel_of(call_id)
        tracker.cancel(call_id, self._now())
        if channel is None:
            return  # not created yet: the tracker resolves it when it shows up or times out
        await self.pool.link(server).hangup(channel, cause)
