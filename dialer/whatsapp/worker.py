"""The WhatsApp fallback worker (``marcador whatsapp``): small, flat, arq-style.

Loop:

1. ``XAUTOCLAIM`` entries a dead worker left pending, then ``XREADGROUP`` new ones from
   ``Keys.whatsapp_stream`` (group ``Keys.whatsapp_group``). Each entry names a message row.
2. For each row: the store checks the contact rules (consent, Ley 2300 hours and frequency
   per person across every campaign and channel, DNC/RNE, holds) and either schedules it,
   skips it with its reason, or claims it (conditional UPDATE to ``sending``).
3. A claimed row is sent through the Cloud API client; the answer (wamid, or the error policy's
   decision) is stored; then the stream entry is acknowledged. The row is the truth, so a
   replayed or reclaimed entry is harmless.
4. Every ``sweep_interval``: due scheduled rows, queued rows whose entry may be lost, and
   ``sending`` rows of a dead worker (after the webhook reconcile grace) are processed.

Cancellation (shutdown) never abandons an in-flight send: the HTTP call and the storing of
its answer are shielded and finish first (bounded by the HTTP timeout). A SIGKILL mid-send is
reconciled through the status webhooks, which carry the message id and attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import random
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.domain.clock import Clock, SystemClock
from dialer.logging import get_logger
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys
from dialer.whatsapp.client import CloudApiClient, ImageRef, TemplateMessage
from dialer.whatsapp.errors import WhatsAppError
from dialer.whatsapp.policy import ErrorInfo, RetryConfig
from dialer.whatsapp.store import Applied, Prepared, SendJob, WhatsAppStore, image_ref

log = get_logger(__name__)


class WorkerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    consumer: str = Field(
        default_factory=lambda: f"wa-{socket.gethostname()}-{random.getrandbits(24):06x}"
    )
    #: How long a claimed (sending) row belongs to this worker; > the HTTP timeout.
    lease: timedelta = timedelta(seconds=60)
    #: After a dead worker's lease, how long to wait for a status webhook before resending.
    reconcile_grace: timedelta = timedelta(minutes=10)
    #: A queued row older than this is swept even without its stream entry.
    queued_grace: timedelta = timedelta(minutes=2)
    sweep_interval: timedelta = timedelta(seconds=15)
    autoclaim_idle_ms: int = Field(default=60_000, ge=0)
    block_ms: int = Field(default=1000, ge=1)
    batch: int = Field(default=20, ge=1)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    #: Uploaded media ids are valid for 30 days at Meta; re-upload before.
    media_ttl: timedelta = timedelta(days=25)
    media_dir: Path = Path(".")


@dataclass(slots=True)
class WorkerStats:
    processed: int = 0
    sent: int = 0
    failed: int = 0
    scheduled: int = 0
    skipped: int = 0
    held: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class WhatsAppWorker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis,
        keys: Keys,
        client: CloudApiClient,
        *,
        clock: Clock | None = None,
        config: WorkerConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or WorkerConfig()
        self.store = WhatsAppStore(sessionmaker, self.config.retry)
        self.redis = redis
        self.streams = Streams(redis)
        self.keys = keys
        self.client = client
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.stats = WorkerStats()
        self._throttle_until: datetime | None = None
        self._media: dict[str, tuple[str, datetime]] = {}
        self._last_sweep: datetime | None = None

    @property
    def consumer(self) -> str:
        return self.config.consumer

    # ------------------------------------------------------------------ stream
    async def setup(self) -> None:
        await self.streams.ensure_group(self.keys.whatsapp_stream, self.keys.whatsapp_group)

    async def poll(self, block_ms: int | None = None) -> int:
        """Reclaim stuck entries, read new ones, process and ack them. Entries handled."""
        stream, group = self.keys.whatsapp_stream, self.keys.whatsapp_group
        entries = await self.streams.autoclaim(
            stream, group, self.consumer, self.config.autoclaim_idle_ms, count=self.config.batch
        )
        if not entries:
            entries = await self.streams.read_group(
                stream, group, self.consumer, count=self.config.batch, block_ms=block_ms
            )
        for entry in entries:
            await self.handle_entry(entry)
        return len(entries)

    async def handle_entry(self, entry: StreamEntry) -> str:
        stream, group = self.keys.whatsapp_stream, self.keys.whatsapp_group
        raw = entry.data.get("message_id")
        try:
            message_id = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            message_id = None
        if message_id is None:
            log.warning("whatsapp.bad_entry", entry=entry.id, type=entry.type)
            await self.streams.ack(stream, group, entry.id)
            return "bad_entry"
        outcome = await self.process_message(message_id)
        await self.streams.ack(stream, group, entry.id)
        return outcome

    # ------------------------------------------------------------------ one message
    async def process_message(self, message_id: int) -> str:
        """Check, claim, send and record one message. Returns what happened."""
        now = self.clock.now()
        self.stats.processed += 1
        if self._throttle_until is not None and now < self._throttle_until:
            await self.store.defer(message_id, self._throttle_until, "throttled", now)
            return self._count("throttled")
        prepared = await self.store.prepare(message_id, self.consumer, now, self.config.lease)
        await self._after_prepare(prepared)
        if prepared.kind != "claimed" or prepared.job is None:
            return self._count(prepared.kind)
        task = asyncio.ensure_future(self._send_and_record(prepared.job))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Shutdown while the request is in flight: finish it and store the answer, so
            # a restart finds the row sent (or scheduled) and never sends it twice.
            with contextlib.suppress(Exception):
                await task
            raise

    async def _after_prepare(self, prepared: Prepared) -> None:
        if prepared.alert is not None:
            await self._alert(prepared.alert)
        if prepared.kind == "skipped":
            log.info("whatsapp.skipped", message_id=prepared.message_id, reason=prepared.reason)
        elif prepared.kind in ("deferred", "held"):
            log.info(
                "whatsapp.scheduled",
                message_id=prepared.message_id,
                until=str(prepared.until),
                reason=prepared.reason,
            )

    async def _send_and_record(self, job: SendJob) -> str:
        try:
            header = await self._header(job.image)
            result = await self.client.send_template(
                TemplateMessage(
                    to=job.phone,
                    template=job.template,
                    language=job.language,
                    header_image=header,
                    body_params=job.body_params,
                    biz_opaque_callback_data=job.opaque,
                )
            )
        except WhatsAppError as exc:
            return await self._failed(job, ErrorInfo.from_exception(exc))
        except OSError as exc:  # the campaign's image file cannot be read
            return await self._failed(
                job, ErrorInfo("config", detail=f"image file: {type(exc).__name__}")
            )
        applied = await self.store.record_accepted(
            job, self.consumer, result.wamid, result.wa_id, self.clock.now()
        )
        await self._publish("whatsapp_sent", applied)
        return self._count("sent")

    async def _failed(self, job: SendJob, error: ErrorInfo) -> str:
        now = self.clock.now()
        decision, applied = await self.store.record_failure(
            job, self.consumer, error, now, jitter=self.rng.random()
        )
        if decision.throttle_until is not None:
            self._throttle_until = max(self._throttle_until or now, decision.throttle_until)
        log.warning(
            "whatsapp.send_failed",
            message_id=job.message_id,
            attempt=job.attempt,
            kind=error.kind,
            code=error.code,
            action=decision.action.value,
            retry_at=str(decision.retry_at),
        )
        if applied.alert is not None:
            await self._alert(applied.alert)
        if applied.status == "failed":
            await self._publish("whatsapp_failed", applied, code=error.code)
            return self._count("failed")
        return self._count("held" if decision.alert else "retry")

    async def _header(self, image: str) -> ImageRef | None:
        ref = image_ref(image)
        if ref is not None or not image.strip():
            return ref
        # A local file: upload it once (media ids live 30 days at Meta) and reuse its id.
        now = self.clock.now()
        cached = self._media.get(image)
        if cached is not None and now - cached[1] < self.config.media_ttl:
            return ImageRef(media_id=cached[0])
        path = Path(image)
        if not path.is_absolute():
            path = self.config.media_dir / path
        content = await asyncio.to_thread(path.read_bytes)
        mime = mimetypes.guess_type(path.name)[0] or "image/jpeg"
        media_id = await self.client.upload_media(content, mime, path.name)
        self._media[image] = (media_id, now)
        return ImageRef(media_id=media_id)

    # ------------------------------------------------------------------ sweep
    async def sweep(self) -> int:
        """Requeue dead workers' sends, then process due scheduled/queued rows."""
        now = self.clock.now()
        self._last_sweep = now
        requeued = await self.store.requeue_stale(now, self.config.reconcile_grace)
        if requeued:
            log.warning("whatsapp.requeued_after_worker_loss", count=len(requeued))
        ids = await self.store.due_ids(now, self.config.queued_grace, limit=self.config.batch * 5)
        for mid in ids:
            await self.process_message(mid)
        return len(ids)

    async def tick(self, block_ms: int | None = None) -> int:
        """One loop step: poll the stream, and sweep when it is time."""
        handled = await self.poll(block_ms)
        now = self.clock.now()
        if self._last_sweep is None or now - self._last_sweep >= self.config.sweep_interval:
            handled += await self.sweep()
        return handled

    async def run(self, stop: asyncio.Event) -> None:
        await self.setup()
        log.info("whatsapp.worker_started", consumer=self.consumer)
        while not stop.is_set():
            try:
                await self.tick(self.config.block_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the worker alive; the rows stay the truth
                log.error("whatsapp.tick_failed", error=type(exc).__name__, detail=str(exc)[:200])
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=2.0)
        log.info("whatsapp.worker_stopped", consumer=self.consumer)

    # ------------------------------------------------------------------ events
    def _count(self, outcome: str) -> str:
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
        match outcome:
            case "sent":
                self.stats.sent += 1
            case "failed":
                self.stats.failed += 1
            case "deferred" | "retry" | "throttled":
                self.stats.scheduled += 1
            case "skipped":
                self.stats.skipped += 1
            case "held":
                self.stats.held += 1
        return outcome

    async def _publish(self, type_: str, applied: Applied, **extra: Any) -> None:
        data: dict[str, Any] = {
            "message_id": applied.message_id,
            "lead_id": applied.lead_id,
            "campaign_id": applied.campaign_id,
            "status": applied.status,
            **extra,
        }
        try:
            await self.streams.add(self.keys.events_stream, type_, data)
        except Exception as exc:  # the SQL row is the truth; the event is the live view
            log.warning("whatsapp.event_publish_failed", error=type(exc).__name__)

    async def _alert(self, alert: dict[str, Any]) -> None:
        log.error(
            "whatsapp.alert",
            scope=alert.get("scope"),
            campaign_id=alert.get("campaign_id"),
            code=alert.get("code"),
            reason=alert.get("reason"),
        )
        if not alert.get("new", True):
            return
        try:
            await self.streams.add(self.keys.events_stream, "whatsapp_alert", alert)
        except Exception as exc:
            log.warning("whatsapp.event_publish_failed", error=type(exc).__name__)
