"""Read side for the API and reports: a lead's thread with status history, and the funnel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import WhatsAppMessage, WhatsAppStatusEvent


@dataclass(slots=True)
class Funnel:
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    failed: int = 0
    skipped: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "sent": self.sent,
            "delivered": self.delivered,
            "read": self.read,
            "replied": self.replied,
            "failed": self.failed,
            "skipped": self.skipped,
        }


class MessageReports:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sm = sessionmaker

    async def thread(self, lead_id: int) -> list[dict[str, Any]]:
        """Every message of a lead (out and in) with its status history, oldest first."""
        async with self.sm() as s:
            msgs = list(
                await s.scalars(
                    sa.select(WhatsAppMessage)
                    .where(WhatsAppMessage.lead_id == lead_id)
                    .order_by(WhatsAppMessage.created_at, WhatsAppMessage.id)
                )
            )
            ids = [m.id for m in msgs]
            events = (
                list(
                    await s.scalars(
                        sa.select(WhatsAppStatusEvent)
                        .where(WhatsAppStatusEvent.message_id.in_(ids))
                        .order_by(WhatsAppStatusEvent.at, WhatsAppStatusEvent.id)
                    )
                )
                if ids
                else []
            )
        by_msg: dict[int, list[dict[str, Any]]] = {}
        for e in events:
            by_msg.setdefault(e.message_id, []).append({"status": e.status, "at": e.at.isoformat()})
        return [
            {
                "id": m.id,
                "direction": m.direction,
                "status": str(getattr(m.status, "value", m.status)),
                "template": m.template,
                "text": m.text,
                "wamid": m.wamid,
                "error_code": m.error_code,
                "error_detail": m.error_detail,
                "created_at": m.created_at.isoformat(),
                "history": by_msg.get(m.id, []),
            }
            for m in msgs
        ]

    async def funnel(self, campaign_id: int | None = None) -> Funnel:
        """queued, sent, delivered, read, replied, failed (cumulative: read counts as
        delivered and sent) for the reports."""
        async with self.sm() as s:
            q = sa.select(WhatsAppMessage.status, sa.func.count()).where(
                WhatsAppMessage.direction == "out"
            )
            if campaign_id is not None:
                q = q.where(WhatsAppMessage.campaign_id == campaign_id)
            counts = {
                str(getattr(st, "value", st)): int(n)
                for st, n in (await s.execute(q.group_by(WhatsAppMessage.status))).all()
            }
            rq = sa.select(sa.func.count(sa.distinct(WhatsAppMessage.lead_id))).where(
                WhatsAppMessage.direction == "in", WhatsAppMessage.lead_id.is_not(None)
            )
            if campaign_id is not None:
                rq = rq.where(WhatsAppMessage.campaign_id == campaign_id)
            replied = int(await s.scalar(rq) or 0)
        read = counts.get("read", 0)
        delivered = counts.get("delivered", 0) + read
        return Funnel(
            queued=sum(counts.values()),
            sent=counts.get("sent", 0) + delivered,
            delivered=delivered,
            read=read,
            replied=replied,
            failed=counts.get("failed", 0),
            skipped=counts.get("skipped", 0),
        )
