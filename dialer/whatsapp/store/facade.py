"""The WhatsApp store: one object for the worker, the webhooks and the API, delegating to the
part that owns each aggregate (outbox and contact rules, send results, holds, status webhooks,
inbound replies, the read side)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import WhatsAppHold
from dialer.whatsapp.policy import Decision, ErrorInfo, RetryConfig
from dialer.whatsapp.store.common import Applied, InboundResult, Prepared, SendJob
from dialer.whatsapp.store.funnel import Funnel, MessageReports
from dialer.whatsapp.store.holds import HoldStore, active_holds
from dialer.whatsapp.store.inbound import InboundReplies
from dialer.whatsapp.store.outbox import Outbox
from dialer.whatsapp.store.results import SendResults
from dialer.whatsapp.store.rules import ContactRules
from dialer.whatsapp.store.statuses import StatusWebhooks

__all__ = ["WhatsAppStore"]


class WhatsAppStore:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], retry: RetryConfig | None = None
    ) -> None:
        self.sm = sessionmaker
        self.retry = retry or RetryConfig()
        self.hold_store = HoldStore(sessionmaker)
        self.rules = ContactRules(sessionmaker, self.hold_store)
        self.outbox = Outbox(sessionmaker, self.rules)
        self.results = SendResults(sessionmaker, self.retry, self.hold_store)
        self.statuses = StatusWebhooks(sessionmaker, self.results)
        self.inbound = InboundReplies(sessionmaker)
        self.reports = MessageReports(sessionmaker)

    active_holds = staticmethod(active_holds)

    # ------------------------------------------------------------------ outbox
    async def prepare(
        self, message_id: int, worker: str, now: datetime, lease: timedelta
    ) -> Prepared:
        """Check the contact rules and, when the message may go now, claim it (SENDING)."""
        return await self.outbox.prepare(message_id, worker, now, lease)

    async def defer(self, message_id: int, until: datetime, reason: str, now: datetime) -> bool:
        """Push an open message to ``until`` (e.g. the worker is throttled)."""
        return await self.outbox.defer(message_id, until, reason, now)

    async def due_ids(self, now: datetime, queued_grace: timedelta, limit: int = 100) -> list[int]:
        """Scheduled messages that are due, and queued ones whose stream entry may be lost."""
        return await self.outbox.due_ids(now, queued_grace, limit)

    async def requeue_stale(self, now: datetime, grace: timedelta) -> list[int]:
        """SENDING rows of a dead worker that no webhook reconciled: due again now."""
        return await self.outbox.requeue_stale(now, grace)

    # ------------------------------------------------------------------ send results
    async def record_accepted(
        self, job: SendJob, worker: str, wamid: str, wa_id: str, now: datetime
    ) -> Applied:
        return await self.results.record_accepted(job, worker, wamid, wa_id, now)

    async def record_failure(
        self, job: SendJob, worker: str, error: ErrorInfo, now: datetime, jitter: float = 0.0
    ) -> tuple[Decision, Applied]:
        return await self.results.record_failure(job, worker, error, now, jitter)

    # ------------------------------------------------------------------ webhooks
    async def apply_status(self, st: dict[str, Any], now: datetime) -> Applied | None:
        """One entry of ``value.statuses``. Idempotent; never moves a status backwards."""
        return await self.statuses.apply_status(st, now)

    async def store_inbound(
        self, m: dict[str, Any], now: datetime, metadata: dict[str, Any] | None = None
    ) -> InboundResult | None:
        """One entry of ``value.messages``: store it; opt-out or schedule a callback."""
        return await self.inbound.store_inbound(m, now, metadata)

    # ------------------------------------------------------------------ holds (people)
    async def holds(self, include_released: bool = False) -> list[WhatsAppHold]:
        return await self.hold_store.holds(include_released)

    async def release_holds(
        self, by: str, now: datetime, campaign_id: int | None = None, account: bool = False
    ) -> int:
        """Release holds; held messages resume at the next sweep (see :class:`HoldStore`)."""
        return await self.hold_store.release_holds(by, now, campaign_id, account)

    # ------------------------------------------------------------------ API and reports
    async def thread(self, lead_id: int) -> list[dict[str, Any]]:
        """Every message of a lead (out and in) with its status history, oldest first."""
        return await self.reports.thread(lead_id)

    async def funnel(self, campaign_id: int | None = None) -> Funnel:
        """The outbound funnel (cumulative) and the leads who replied."""
        return await self.reports.funnel(campaign_id)
