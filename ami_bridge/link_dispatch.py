"""The panoramisk glue and the link's dispatch: bytes in -> typed events to the handlers,
actions out -> their replies.

This is the **only** module of Marcador that imports panoramisk (see
:mod:`ami_bridge.connection` for why and how). :class:`LinkDispatch` is the base of
:class:`~ami_bridge.connection.AmiConnection`: it owns the link's state and status, the data
path (:class:`BridgeProtocol` feeds the team's sans-IO parser), the bounded event queue and its
workers, and the action/reply correlation with timeouts. Connecting, logging in and
reconnecting are the subclasses' business (:mod:`ami_bridge.link_session`,
:mod:`ami_bridge.link_supervisor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from panoramisk.actions import Action as _PkAction
from panoramisk.ami_protocol import AMIProtocol as _PkProtocol
from panoramisk.manager import Manager as _PkManager
from panoramisk.message import Message as _PkMessage

from ami_bridge import actions as act
from ami_bridge.actions import ActionRequest
from ami_bridge.errors import (
    ActionTimeout,
    AMIProtocolError,
    ConnectionLost,
    DuplicateActionID,
    NotConnected,
)
from ami_bridge.events import AMIEvent, to_event
from ami_bridge.link_config import (
    EventHandler,
    LinkOptions,
    LinkState,
    LinkStatus,
    ReconcileHandler,
    ServerSpec,
    StatusHandler,
)
from ami_bridge.logs import get_logger, mask_digits
from ami_bridge.protocol import AMIParser, Banner, Message, serialize_action

__all__ = ["FORGETABLE_ACTIONS", "BridgeProtocol", "LinkDispatch", "call_handler"]

log = get_logger("marcador.ami")

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


class BridgeProtocol(_PkProtocol):  # type: ignore[misc]
    """panoramisk's AMIProtocol with the team's sans-IO parser on the data path."""

    def __init__(self, link: LinkDispatch, session: int) -> None:
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


async def call_handler(handler: Callable[..., Any], *args: Any) -> None:
    """Call a sync or async callback and await it if needed."""
    result = handler(*args)
    if inspect.isawaitable(result):
        await result


class LinkDispatch:
    """The state of one AMI link, its data path and its action/reply correlation.

    Nothing here connects: :meth:`_attach` is called by :class:`BridgeProtocol` when a TCP
    connection made by a subclass is up.
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
        self._protocol: BridgeProtocol | None = None
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

    def _attach(self, protocol: BridgeProtocol) -> None:
        # What Manager.connection_made would wire (without its Login/pinger side effects).
        protocol.factory = self._manager
        protocol.config = self._manager.config
        self._manager.protocol = protocol
        self._manager.responses = protocol.responses
        self._protocol = protocol

    # -- incoming ----------------------------------------------------------------------------

    def _protocol_error(self, protocol: BridgeProtocol, detail: str) -> None:
        self._status = replace(self._status, protocol_errors=self._status.protocol_errors + 1)
        log.warning("ami_protocol_error", server=self.name, error=mask_digits(detail))

    def _on_item(self, protocol: BridgeProtocol, item: Message | Banner | AMIProtocolError) -> None:
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

    def _on_message(self, protocol: BridgeProtocol, message: Message) -> None:
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

    def _on_connection_lost(self, protocol: BridgeProtocol, exc: Exception | None) -> None:
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
        self, protocol: BridgeProtocol, request: ActionRequest, *, timeout_s: float | None = None
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
