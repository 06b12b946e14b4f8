"""The outbox: claiming an open message for one send (after the contact rules), deferring it,
and the sweep (due messages, and the ``sending`` rows of a dead worker)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import Campaign, WhatsAppMessage, WhatsAppStatus
from dialer.whatsapp.client import ImageRef, clean_param
from dialer.whatsapp.store.common import OPEN, Prepared, SendJob, add_event, status_of, transition
from dialer.whatsapp.store.rules import ContactRules


def body_params(payload: dict[str, Any], campaign: Campaign) -> tuple[str, ...]:
    """Positional body parameters {{1}}..{{4}}: name, vehicle, branch, dealer phones."""
    return (
        clean_param(str(payload.get("customer_name") or ""), "cliente"),
        clean_param(str(payload.get("vehicle") or ""), "su vehículo"),
        clean_param(str(payload.get("branch") or ""), "nuestra sede"),
        clean_param(
            campaign.dealer_phones or str(payload.get("dealer_phones") or ""),
            "nuestra línea de atención",
        ),
    )


def image_ref(value: str) -> ImageRef | None:
    """A campaign image setting as a header: http(s) link, numeric media id; else None."""
    v = value.strip()
    if not v:
        return None
    if v.startswith(("https://", "http://")):
        return ImageRef(link=v)
    if v.isdigit():
        return ImageRef(media_id=v)
    return None


class Outbox:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], rules: ContactRules) -> None:
        self.sm = sessionmaker
        self.rules = rules

    async def prepare(
        self, message_id: int, worker: str, now: datetime, lease: timedelta
    ) -> Prepared:
        """Check the contact rules and, when the message may go now, claim it (SENDING)."""
        async with self.sm() as s, s.begin():
            msg = await s.get(WhatsAppMessage, message_id)
            if (
                msg is None
                or msg.direction != "out"
                or status_of(msg.status) not in OPEN
                or msg.wamid is not None
                or (msg.next_attempt_at is not None and msg.next_attempt_at > now)
            ):
                return Prepared("gone", message_id)
            status_now = [status_of(msg.status)]
            verdict = await self.rules.check(s, msg, status_now, now)
            if isinstance(verdict, Prepared):
                return verdict
            lead, campaign = verdict
            attempt = msg.send_attempts + 1
            ok = await transition(
                s,
                message_id,
                status_now,
                {
                    "status": WhatsAppStatus.SENDING,
                    "claimed_by": worker,
                    "claimed_until": now + lease,
                    "send_attempts": attempt,
                    "next_attempt_at": None,
                },
                WhatsAppMessage.wamid.is_(None),
                WhatsAppMessage.send_attempts == msg.send_attempts,
            )
            if not ok:
                return Prepared("gone", message_id)
            add_event(s, message_id, "sending", now, attempt=attempt, worker=worker)
            payload = dict(msg.payload or {})
            job = SendJob(
                message_id=message_id,
                attempt=attempt,
                lead_id=lead.id,
                campaign_id=campaign.id,
                phone=msg.phone,
                template=campaign.whatsapp_template,
                language=campaign.whatsapp_language or "es_CO",
                image=campaign.whatsapp_image or str(payload.get("image") or ""),
                body_params=body_params(payload, campaign),
            )
            return Prepared("claimed", message_id, job=job)

    async def defer(self, message_id: int, until: datetime, reason: str, now: datetime) -> bool:
        """Push an open message to ``until`` (e.g. the worker is throttled)."""
        async with self.sm() as s, s.begin():
            ok = await transition(
                s,
                message_id,
                OPEN,
                {"status": WhatsAppStatus.SCHEDULED, "next_attempt_at": until},
                WhatsAppMessage.direction == "out",
            )
            if ok:
                add_event(s, message_id, "scheduled", now, reason=reason)
            return ok

    async def due_ids(self, now: datetime, queued_grace: timedelta, limit: int = 100) -> list[int]:
        """Scheduled messages that are due, and queued ones whose stream entry may be lost."""
        async with self.sm() as s:
            rows = await s.scalars(
                sa.select(WhatsAppMessage.id)
                .where(
                    WhatsAppMessage.direction == "out",
                    sa.or_(
                        sa.and_(
                            WhatsAppMessage.status == WhatsAppStatus.SCHEDULED,
                            WhatsAppMessage.next_attempt_at <= now,
                        ),
                        sa.and_(
                            WhatsAppMessage.status == WhatsAppStatus.QUEUED,
                            WhatsAppMessage.created_at <= now - queued_grace,
                        ),
                    ),
                )
                .order_by(WhatsAppMessage.next_attempt_at, WhatsAppMessage.id)
                .limit(limit)
            )
            return list(rows)

    async def requeue_stale(self, now: datetime, grace: timedelta) -> list[int]:
        """SENDING rows of a dead worker: no webhook reconciled them within ``grace`` after
        their lease, so Meta never accepted them. Back to SCHEDULED (due now)."""
        async with self.sm() as s, s.begin():
            stale = list(
                await s.scalars(
                    sa.select(WhatsAppMessage.id).where(
                        WhatsAppMessage.status == WhatsAppStatus.SENDING,
                        WhatsAppMessage.claimed_until < now - grace,
                    )
                )
            )
            done = []
            for mid in stale:
                ok = await transition(
                    s,
                    mid,
                    [WhatsAppStatus.SENDING],
                    {
                        "status": WhatsAppStatus.SCHEDULED,
                        "next_attempt_at": now,
                        "claimed_by": None,
                        "claimed_until": None,
                    },
                    WhatsAppMessage.claimed_until < now - grace,
                    WhatsAppMessage.wamid.is_(None),
                )
                if ok:
                    add_event(s, mid, "requeued", now, reason="worker_lost_no_webhook")
                    done.append(mid)
            return done
