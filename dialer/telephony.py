"""Adapter from the AMI bridge (:class:`ami_bridge.connection.AmiBridge`) to the engine's
:class:`dialer.engine.Telephony` port.

Bridge callbacks only put items into a bounded queue; the engine consumes it. Link status
changes are written to Redis (``Keys.ami_link``) for /readyz and the dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from ami_bridge.actions import ChannelInfo, OriginateRequest
from ami_bridge.connection import AmiBridge, LinkStatus, ServerSpec
from ami_bridge.events import AMIEvent, ConfbridgeJoin, Hangup
from ami_bridge.tracker import TrackerOutput
from dialer.engine import TelephonyItem
from dialer.logging import get_logger
from dialer.redis_keys import Keys
from dialer.settings import Settings

log = get_logger("marcador.telephony")

#: Lifetime of a ``Keys.ami_link`` hash (what the dashboard shows of a gone dialer's link).
LINK_STATUS_TTL_S = 30
#: Every running dialer re-publishes its links this often, with ``heartbeat_at`` (UNIX time):
#: ``/readyz`` counts a link whose heartbeat is older than ``api.metrics.LINK_STALE_S`` (5 s)
#: as down, so a killed dialer's "connected" is believed for a few seconds at most.
LINK_HEARTBEAT_S = 1.0
#: How long close() waits for link-status writes already in flight.
PUBLISH_DRAIN_S = 2.0

#: Raw events the engine needs besides tracker outputs (agent rooms and agent channels).
_ENGINE_EVENTS = (ConfbridgeJoin, Hangup)


class BridgeTelephony:
    def __init__(
        self,
        settings: Settings,
        redis: aioredis.Redis | None,
        keys: Keys,
        *,
        simulator: ServerSpec | None = None,
        now: Callable[[], datetime],
        queue_size: int = 50_000,
    ) -> None:
        self.queue: asyncio.Queue[TelephonyItem] = asyncio.Queue(maxsize=queue_size)
        self.redis = redis
        self.keys = keys
        self.bridge = AmiBridge.from_settings(
            settings.asterisk,
            simulator=simulator,
            on_output=self._on_output,
            on_event=self._on_event,
            on_status=self._on_status,
            now=now,
        )
        self.trunks: dict[str, str] = {s.name: s.trunk for s in settings.asterisk.servers}
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._closed = False
        self._publishing = 0  # publishes in flight (close() waits for them)
        self._published = asyncio.Condition()

    # -- bridge callbacks ------------------------------------------------------------------------
    async def _on_output(self, server: str, output: TrackerOutput) -> None:
        await self.queue.put(TelephonyItem(server, output))

    async def _on_event(self, server: str, event: AMIEvent) -> None:
        if isinstance(event, _ENGINE_EVENTS):
            await self.queue.put(TelephonyItem(server, event))

    async def _on_status(self, status: LinkStatus) -> None:
        await self._publish_status(status)

    async def _publish_status(self, status: LinkStatus, *, final: bool = False) -> None:
        """Write the link's hash with a TTL: a dead dialer's "connected" expires (``/readyz``)."""
        if self.redis is None or self._closed:
            return  # a late callback after close() (Redis may be closed already): dropped
        key = self.keys.ami_link(status.server)
        self._publishing += 1
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={**status.as_mapping(), "heartbeat_at": f"{time.time()}"})
                pipe.expire(key, LINK_STATUS_TTL_S)
                await pipe.execute()
        except Exception as exc:
            if final:  # shutting down: Redis may already be gone; the hash's TTL expires it
                log.debug("link_status_final_publish_skipped", error=type(exc).__name__)
            else:
                log.warning(
                    "link_status_publish_failed", error=type(exc).__name__, detail=str(exc)[:200]
                )
        finally:
            self._publishing -= 1
            if self._publishing == 0:
                async with self._published:
                    self._published.notify_all()

    async def _heartbeat(self) -> None:
        """Re-publish every link's status before its hash expires."""
        while True:
            await asyncio.sleep(LINK_HEARTBEAT_S)
            for status in list(self.bridge.statuses().values()):
                await self._publish_status(status)

    # -- Telephony port --------------------------------------------------------------------------
    def server_names(self) -> Sequence[str]:
        return list(self.bridge.statuses())

    def link_up(self, server: str) -> bool:
        status = self.bridge.statuses().get(server)
        return status is not None and status.connected

    async def originate(
        self, server: str, req: OriginateRequest, *, call_id: str, ring_timeout: timedelta
    ) -> str:
        queued = await self.bridge.originate(server, req, call_id=call_id)
        return queued.action_id

    async def redirect(self, server: str, channel: str, context: str, exten: str) -> None:
        await self.bridge.link(server).redirect(channel, context, exten)

    async def hangup(self, server: str, channel: str) -> None:
        await self.bridge.link(server).hangup(channel)

    async def confbridge_mute(
        self, server: str, conference: str, channel: str, *, mute: bool
    ) -> None:
        await self.bridge.link(server).confbridge_mute(conference, channel, mute=mute)

    async def play_dtmf(self, server: str, channel: str, digits: str) -> None:
        await self.bridge.link(server).play_dtmf(channel, digits)

    async def stop_recording(self, server: str, channel: str) -> None:
        await self.bridge.link(server).stop_mixmonitor(channel)

    async def cancel(self, server: str, call_id: str) -> None:
        await self.bridge.hangup_call(server, call_id)

    async def live_channel_ids(self, server: str) -> set[str]:
        return {c.uniqueid for c in await self.bridge.link(server).core_show_channels()}

    async def live_channels(self, server: str) -> list[ChannelInfo]:
        return await self.bridge.link(server).core_show_channels()

    def adopt(
        self,
        server: str,
        call_id: str,
        *,
        uniqueid: str,
        channel: str,
        answered_at: datetime | None,
        conference: str | None,
        connected_at: datetime | None,
    ) -> None:
        self.bridge.adopt(
            server,
            call_id,
            uniqueid=uniqueid,
            channel=channel,
            answered_at=answered_at,
            conference=conference,
            connected_at=connected_at,
        )

    async def next_item(self) -> TelephonyItem:
        return await self.queue.get()

    async def start(self, ready_timeout: float = 10.0) -> None:
        await self.bridge.start()
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="ami-link-heartbeat")
        await self.bridge.wait_ready(ready_timeout)

    async def close(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        await self.bridge.close()
        # publish the links' final (down) state while Redis is still open, then ignore the
        # status callbacks the closing connections may still fire
        for status in list(self.bridge.statuses().values()):
            await self._publish_status(status, final=True)
        self._closed = True
        # a callback that started before the line above may still be writing: let it finish
        # before the caller closes Redis under it ("Connection closed" at every shutdown)
        async with self._published:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._published.wait_for(lambda: self._publishing == 0), PUBLISH_DRAIN_S
                )
