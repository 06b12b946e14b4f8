"""AMI connection manager: one robust link per Asterisk server, a pool of them, and the bridge
that feeds the call trackers.

Layout (each class in its own module, by concern; everything is importable from here):

* :mod:`ami_bridge.link_config`: :class:`ServerSpec`, :class:`Backoff`, :class:`LinkOptions`,
  :class:`LinkState`, :class:`LinkStatus` (plain data);
* :mod:`ami_bridge.link_dispatch`: the panoramisk glue, the data path, the event queue and its
  workers, action/reply correlation (:class:`~ami_bridge.link_dispatch.LinkDispatch`);
* :mod:`ami_bridge.link_session`: open, Login, reconciliation, the ping watchdog;
* :mod:`ami_bridge.link_supervisor`: start, the reconnect loop with backoff, close;
* this module: :class:`AmiConnection` (the supervised link plus the typed action helpers),
  :class:`AmiPool` and :class:`AmiBridge`.

:mod:`ami_bridge.link_dispatch` is the **only** module of Marcador that imports panoramisk
(1.4). We keep its asyncio protocol (:class:`panoramisk.ami_protocol.AMIProtocol`), its
action/reply correlation (:class:`panoramisk.actions.Action` futures, ``handle_message``) and
its ``Manager`` as the protocol's factory, and work around every pitfall listed in issue 3:

* **Data path**: :class:`~ami_bridge.link_dispatch.BridgeProtocol` overrides
  ``data_received`` and feeds raw bytes to the team's sans-IO
  :class:`~ami_bridge.protocol.AMIParser`. A message is decoded only once it is complete, so
  UTF-8 split across TCP reads survives (panoramisk decodes every read with
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
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
from ami_bridge.errors import ActionFailed, ActionOutcomeUnknown, AMIError, NotConnected
from ami_bridge.events import AMIEvent
from ami_bridge.link_config import (
    Backoff,
    EventHandler,
    LinkOptions,
    LinkState,
    LinkStatus,
    ReconcileHandler,
    ServerSpec,
    StatusHandler,
)
from ami_bridge.link_dispatch import FORGETABLE_ACTIONS, call_handler, log
from ami_bridge.link_supervisor import LinkSupervisor
from ami_bridge.protocol import Message
from ami_bridge.tracker import CallEnded, CallTracker, TrackerConfig, TrackerOutput

__all__ = [
    "FORGETABLE_ACTIONS",
    "AmiBridge",
    "AmiConnection",
    "AmiPool",
    "Backoff",
    "EventHandler",
    "LinkOptions",
    "LinkState",
    "LinkStatus",
    "OutputHandler",
    "ReconcileHandler",
    "ServerSpec",
    "StatusHandler",
]

OutputHandler = Callable[[str, TrackerOutput], Awaitable[None] | None]


# --- one link -----------------------------------------------------------------------------------


class AmiConnection(LinkSupervisor):
    """One supervised AMI link to one Asterisk server. See the module docstring.

    Typed actions raise :class:`NotConnected` (nothing sent), :class:`ActionTimeout` /
    :class:`ConnectionLost` (outcome unknown, subclasses of :class:`ActionOutcomeUnknown`),
    or a subclass of :class:`ActionFailed` for ``Response: Error``.

    Built in layers: :class:`~ami_bridge.link_dispatch.LinkDispatch` (data path, queue,
    correlation), :class:`~ami_bridge.link_session.LinkSession` (Login, reconciliation,
    watchdog), :class:`~ami_bridge.link_supervisor.LinkSupervisor` (reconnects); this class
    adds the typed actions.
    """

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
                await call_handler(self._on_output, server, output)
            except Exception:
                log.exception("ami_output_handler_failed", server=server)

    async def _handle_event(self, server: str, event: AMIEvent) -> None:
        outputs = self.trackers[server].feed(event, self._now())
        if outputs:
            await self._emit(server, outputs)
        if self._on_event is not None:
            await call_handler(self._on_event, server, event)

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
