"""Outgoing webhooks: events from the Redis event stream, signed and delivered with retries.

Flow (runs as an asyncio task in the API's lifespan; several API replicas share the work):

1. **Ingest**: read ``Keys.events_stream`` with the consumer group ``Keys.webhook_group``,
   derive webhook events (:func:`derive_events`), and write one ``webhook_deliveries`` row per
   matching active subscription (unique per subscription and event id, so a re-read stream
   entry never delivers twice). The stream entry is acknowledged after the SQL commit.
2. **Deliver**: due rows are leased (``next_attempt_at`` pushed forward) and POSTed. The body
   is the JSON envelope ``{"id", "type", "created_at", "data"}``; the header
   ``X-Marcador-Signature: sha256=<hex>`` is the HMAC-SHA256 of the raw body with the
   subscription's secret. 2xx = done; anything else is retried with exponential backoff
   (10 s, 20 s, 40 s ... capped at 1 h) up to :data:`MAX_ATTEMPTS`, then ``failed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.netguard import GuardedResolver, RefusedTarget, pinned
from dialer.db.models import WebhookDelivery, WebhookSubscription
from dialer.domain.clock import Clock, SystemClock
from dialer.logging import get_logger
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys

log = get_logger(__name__)

WEBHOOK_EVENTS = (
    "call-ended",
    "appointment-booked",
    "complaint-raised",
    "lead-exhausted",
    "whatsapp-status",
)
SIGNATURE_HEADER = "X-Marcador-Signature"
MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=10)
MAX_DELAY = timedelta(hours=1)
IN_FLIGHT_LEASE = timedelta(seconds=60)
#: The worker looks for due deliveries (retries) at most this often, and at once after new
#: events created deliveries (a busy event stream otherwise means a query per stream read).
DELIVER_EVERY_S = 1.0
#: With no active subscription, new events are acknowledged without a database look for this
#: long (a subscription made through this process applies at once; through another API
#: process, within this time).
NO_SUBSCRIPTIONS_S = 1.0

_DIRECT = {
    "appointment_booked": "appointment-booked",
    "complaint_raised": "complaint-raised",
    "whatsapp_status": "whatsapp-status",
    "lead_exhausted": "lead-exhausted",
}


def derive_events(entry: StreamEntry) -> list[tuple[str, dict[str, Any]]]:
    """Webhook events (type, data) carried by one event-stream entry."""
    data = dict(entry.data)
    if entry.type == "call_ended":
        out = [("call-ended", data)]
        if data.get("lead_status") == "exhausted":
            out.append(
                (
                    "lead-exhausted",
                    {
                        "lead_id": data.get("lead_id"),
                        "campaign_id": data.get("campaign_id"),
                        "attempt": data.get("attempt"),
                    },
                )
            )
        return out
    direct = _DIRECT.get(entry.type)
    return [(direct, data)] if direct else []


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (documented in docs/api.md)."""
    return hmac.compare_digest(sign(secret, body), header)


def encode_body(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, default=str).encode()


def backoff(attempts: int) -> timedelta:
    """Delay before retry number ``attempts`` (1-based): 10 s, 20 s, 40 s... at most 1 h."""
    delay: timedelta = BASE_DELAY * (2 ** max(0, attempts - 1))
    return min(delay, MAX_DELAY)


def _subscribed(sub: WebhookSubscription, event_type: str) -> bool:
    events = sub.events.get("events", []) if isinstance(sub.events, dict) else []
    return event_type in events


class WebhookWorker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis,
        keys: Keys,
        http: httpx.AsyncClient,
        clock: Clock | None = None,
        consumer: str | None = None,
        guard: GuardedResolver | None = None,
    ) -> None:
        self.sm = sessionmaker
        self.redis = redis
        self.keys = keys
        self.http = http
        self.clock: Clock = clock or SystemClock()
        self.consumer = consumer or f"api-{socket.gethostname()}-{os.getpid()}"
        self.streams = Streams(redis)
        #: Checks each delivery's target afresh (SSRF / DNS rebinding), see api/netguard.py.
        self.guard = guard or GuardedResolver()
        #: Monotonic time until which "no active subscription" is taken as known (see
        #: :data:`NO_SUBSCRIPTIONS_S`); None: look in the database.
        self._none_until: float | None = None
        self.monotonic: Callable[[], float] = time.monotonic

    def subscriptions_changed(self) -> None:
        """A subscription was created or changed through this process: look again at once."""
        self._none_until = None

    async def ensure_group(self) -> None:
        await self.streams.ensure_group(self.keys.events_stream, self.keys.webhook_group, "$")

    # ------------------------------------------------------------------ ingest
    async def ingest_once(self, block_ms: int | None = None, count: int = 200) -> int:
        """Turn new stream entries into delivery rows; returns the rows created."""
        stream, group = self.keys.events_stream, self.keys.webhook_group
        entries = await self.streams.autoclaim(stream, group, self.consumer, 60_000, count)
        entries += await self.streams.read_group(
            stream, group, self.consumer, count=count, block_ms=block_ms
        )
        if not entries:
            return 0
        created = await self.store_entries(entries)
        await self.streams.ack(stream, group, *(e.id for e in entries))
        return created

    async def store_entries(self, entries: Sequence[StreamEntry]) -> int:
        now = self.clock.now()
        created = 0
        if self._none_until is not None and self.monotonic() < self._none_until:
            return 0
        async with self.sm.begin() as s:
            subs = list(
                await s.scalars(
                    sa.select(WebhookSubscription).where(WebhookSubscription.active.is_(True))
                )
            )
            if not subs:
                self._none_until = self.monotonic() + NO_SUBSCRIPTIONS_S
                return 0
            self._none_until = None
            for entry in entries:
                for event_type, data in derive_events(entry):
                    event_id = f"{entry.id}:{event_type}"
                    envelope = {
                        "id": event_id,
                        "type": event_type,
                        "created_at": now.isoformat(),
                        "data": data,
                    }
                    for sub in subs:
                        if not _subscribed(sub, event_type):
                            continue
                        if await self._exists(s, sub.id, event_id):
                            continue
                        try:
                            async with s.begin_nested():
                                s.add(
                                    WebhookDelivery(
                                        subscription_id=sub.id,
                                        event_id=event_id,
                                        event_type=event_type,
                                        payload=envelope,
                                        status="pending",
                                        next_attempt_at=now,
                                        created_at=now,
                                    )
                                )
                            created += 1
                        except IntegrityError:
                            continue
        return created

    @staticmethod
    async def _exists(s: AsyncSession, sub_id: int, event_id: str) -> bool:
        found = await s.scalar(
            sa.select(WebhookDelivery.id).where(
                WebhookDelivery.subscription_id == sub_id, WebhookDelivery.event_id == event_id
            )
        )
        return found is not None

    # ------------------------------------------------------------------ deliver
    async def deliver_due(self, limit: int = 50) -> int:
        """Send every due delivery once; returns how many were attempted."""
        now = self.clock.now()
        async with self.sm.begin() as s:
            rows = list(
                await s.scalars(
                    sa.select(WebhookDelivery)
                    .where(
                        WebhookDelivery.status == "pending",
                        sa.or_(
                            WebhookDelivery.next_attempt_at.is_(None),
                            WebhookDelivery.next_attempt_at <= now,
                        ),
                    )
                    .order_by(WebhookDelivery.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:  # lease: another replica will not pick them meanwhile
                row.next_attempt_at = now + IN_FLIGHT_LEASE
            leased = [(r.id, r.subscription_id, r.event_id, r.event_type, r.payload) for r in rows]
        for delivery_id, sub_id, event_id, event_type, payload in leased:
            await self._deliver(delivery_id, sub_id, event_id, event_type, payload)
        return len(leased)

    async def _deliver(
        self,
        delivery_id: int,
        sub_id: int,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
    ) -> None:
        async with self.sm() as s:
            sub = await s.get(WebhookSubscription, sub_id)
            url = sub.url if sub else None
            secret = sub.secret if sub else None
            active = bool(sub and sub.active)
        status_code: int | None = None
        error: str | None = None
        if url is None or secret is None or not active:
            error = "subscription disabled or deleted"
            ok = False
            final = True
        else:
            body = encode_body(payload)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Marcador-Webhooks/1",
                "X-Marcador-Event": event_type,
                "X-Marcador-Delivery": event_id,
                SIGNATURE_HEADER: sign(secret, body),
            }
            final = False
            try:
                address = await self.guard.check(url)
                target, host_header, extensions = pinned(url, address)
                response = await self.http.post(
                    target,
                    content=body,
                    headers={**headers, **host_header},
                    extensions=extensions,
                    follow_redirects=False,
                )
                status_code = response.status_code
                ok = 200 <= status_code < 300
                if not ok:
                    error = f"HTTP {status_code}"
                    if 300 <= status_code < 400:
                        error += " (redirects are not followed)"
            except RefusedTarget as exc:
                ok = False
                error = exc.code
                final = exc.code != "webhook_dns_failed"
            except httpx.HTTPError as exc:
                ok = False
                error = f"{type(exc).__name__}"
        now = self.clock.now()
        async with self.sm.begin() as s:
            row = await s.get(WebhookDelivery, delivery_id)
            if row is None:
                return
            row.attempts += 1
            row.last_status_code = status_code
            row.last_error = error[:300] if error else None
            if ok:
                row.status = "done"
                row.next_attempt_at = None
            elif final or row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                row.next_attempt_at = None
            else:
                row.next_attempt_at = now + backoff(row.attempts)
        if not ok:
            log.info(
                "webhook_delivery_failed", delivery=delivery_id, attempt_error=error, final=final
            )

    # ------------------------------------------------------------------ loop
    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await self.ensure_group()
                break
            except Exception as exc:
                log.warning("webhook_group_failed", error=type(exc).__name__)
                await _wait(stop, 5.0)
        delivered_at: float | None = None
        while not stop.is_set():
            try:
                created = await self.ingest_once(block_ms=1000)
                now = self.monotonic()
                if created or delivered_at is None or now - delivered_at >= DELIVER_EVERY_S:
                    delivered_at = now
                    await self.deliver_due()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("webhook_worker_error", error=type(exc).__name__)
                await _wait(stop, min(30.0, 0.5 * 2**failures))


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
