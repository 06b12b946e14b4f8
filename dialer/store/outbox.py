"""The WhatsApp outbox: a fallback row written in the outcome's transaction (exactly once, by
its idempotency key), and the queued rows to (re-)publish."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.db.models import (
    Campaign,
    Lead,
    WhatsAppMessage,
    WhatsAppStatus,
)
from dialer.store.records import SqlStore, fallback_key


async def enqueue_whatsapp(s: AsyncSession, lead: Lead, campaign: Campaign) -> int | None:
    """Outbox row for the WhatsApp fallback; the unique key makes it exactly-once."""
    if not campaign.whatsapp_enabled:
        return None
    key = fallback_key(campaign.id, lead.id)
    existing = await s.scalar(
        sa.select(WhatsAppMessage.id).where(WhatsAppMessage.idempotency_key == key)
    )
    if existing is not None:
        return None
    mobile = next((p for p in lead.phones if p.kind == "mobile" and p.valid), None)
    phone = mobile or (lead.phones[0] if lead.phones else None)
    if phone is None:
        return None
    msg = WhatsAppMessage(
        idempotency_key=key,
        lead_id=lead.id,
        campaign_id=campaign.id,
        phone=phone.e164,
        template=campaign.whatsapp_template,
        payload=whatsapp_payload(lead, campaign),
        status=WhatsAppStatus.QUEUED,
    )
    s.add(msg)
    await s.flush()
    return msg.id


def whatsapp_payload(lead: Lead, campaign: Campaign) -> dict[str, Any]:
    """Everything the WhatsApp worker needs to build the template message."""
    vehicle = " ".join(x for x in (lead.brand, lead.model, lead.plate) if x)
    return {
        "lead_id": lead.id,
        "campaign_id": campaign.id,
        "template": campaign.whatsapp_template,
        "language": campaign.whatsapp_language,
        "image": campaign.whatsapp_image,
        "customer_name": lead.customer_name,
        "vehicle": vehicle,
        "branch": lead.branch or "",
        "dealer_phones": campaign.dealer_phones,
        "script": campaign.script,
    }


class OutboxStore(SqlStore):
    """Queued WhatsApp outbox rows."""

    async def queued_whatsapp(self, limit: int = 100) -> list[WhatsAppMessage]:
        """Outbox rows not yet published (re-published after a Redis loss)."""
        async with self.sm() as s:
            rows = await s.scalars(
                sa.select(WhatsAppMessage)
                .where(WhatsAppMessage.status == WhatsAppStatus.QUEUED)
                .order_by(WhatsAppMessage.id)
                .limit(limit)
            )
            return list(rows)
