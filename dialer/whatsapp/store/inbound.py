"""Inbound messages (``value.messages``): stored on the lead's thread; an opt-out revokes consent
across channels at once, any other reply puts the lead back as a callback for an agent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from dialer.db.models import ContactLog, Lead, LeadEvent, Phone, WhatsAppMessage, WhatsAppStatus
from dialer.domain.outcomes import Channel, LeadStatus
from dialer.store import person_key, revoke_consents
from dialer.whatsapp.store.common import OPEN, InboundResult, add_event, event_time
from dialer.whatsapp.store.optout import is_opt_out

CALLBACK_PRIORITY_BUMP = 10


class InboundReplies:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sm = sessionmaker

    async def store_inbound(
        self, m: dict[str, Any], now: datetime, metadata: dict[str, Any] | None = None
    ) -> InboundResult | None:
        """One entry of ``value.messages``: store it; opt-out or schedule a callback."""
        wamid = m.get("id")
        sender = m.get("from")
        if not isinstance(wamid, str) or not isinstance(sender, str):
            return None
        text = _inbound_text(m)
        at = event_time(m.get("timestamp"), now)
        phone = "+" + sender.lstrip("+")
        key = f"in:{wamid}"[:120]
        ctx = m.get("context")
        reply_wamid = ctx.get("id") if isinstance(ctx, dict) else None
        async with self.sm() as s, s.begin():
            if await s.scalar(
                sa.select(WhatsAppMessage.id).where(WhatsAppMessage.idempotency_key == key)
            ):
                return InboundResult(None, None, None, None, False, False, duplicate=True)
            out: WhatsAppMessage | None = None
            if isinstance(reply_wamid, str):
                out = await s.scalar(
                    sa.select(WhatsAppMessage).where(WhatsAppMessage.wamid == reply_wamid)
                )
            if out is None:
                out = await s.scalar(
                    sa.select(WhatsAppMessage)
                    .where(WhatsAppMessage.direction == "out", WhatsAppMessage.phone == phone)
                    .order_by(WhatsAppMessage.id.desc())
                    .limit(1)
                )
            lead: Lead | None = None
            if out is not None and out.lead_id is not None:
                lead = await s.get(Lead, out.lead_id, options=[selectinload(Lead.phones)])
            if lead is None:
                lead = await s.scalar(
                    sa.select(Lead)
                    .join(Phone, Phone.lead_id == Lead.id)
                    .where(Phone.e164 == phone)
                    .order_by(Lead.id.desc())
                    .limit(1)
                    .options(selectinload(Lead.phones))
                )
            campaign_id = (
                out.campaign_id if out is not None else (lead.campaign_id if lead else None)
            )
            row = WhatsAppMessage(
                idempotency_key=key,
                direction="in",
                lead_id=lead.id if lead else None,
                campaign_id=campaign_id,
                phone=phone,
                text=text[:4000],
                wamid=wamid,
                status=WhatsAppStatus.RECEIVED,
                payload={"type": m.get("type"), "reply_to": reply_wamid},
            )
            s.add(row)
            await s.flush()
            add_event(s, row.id, "received", at, type=str(m.get("type", "")))
            opt_out = is_opt_out(text)
            callback = False
            if lead is not None and opt_out:
                # Opt-out applies at once across all channels (design.md §6, Ley 1581).
                await revoke_consents(s, person_key(lead), "whatsapp_stop", now)
                await s.execute(
                    sa.update(WhatsAppMessage)
                    .where(
                        WhatsAppMessage.phone == phone,
                        WhatsAppMessage.direction == "out",
                        WhatsAppMessage.status.in_(OPEN),
                    )
                    .values(status=WhatsAppStatus.SKIPPED, error_detail="opt_out")
                    .execution_options(synchronize_session=False)
                )
                s.add(
                    LeadEvent(
                        lead_id=lead.id,
                        at=now,
                        kind="opt_out",
                        reason="whatsapp_stop",
                        detail={"message_id": row.id, "channel": "whatsapp"},
                    )
                )
            elif lead is not None:
                s.add(
                    ContactLog(
                        person_key=person_key(lead),
                        channel=Channel.WHATSAPP,
                        at=at,
                        direct_contact=True,
                        campaign_id=campaign_id,
                        ref=wamid[:64],
                    )
                )
                callback = _schedule_callback(s, lead, row.id, now)
            return InboundResult(
                message_id=row.id,
                reply_to=out.id if out is not None else None,
                lead_id=lead.id if lead else None,
                campaign_id=campaign_id,
                opt_out=opt_out,
                callback=callback,
                text=text,
                at=at,
            )


def _schedule_callback(s: AsyncSession, lead: Lead, inbound_id: int, now: datetime) -> bool:
    """The lead goes back to its campaign as a callback for an agent, due now."""
    if lead.status in (LeadStatus.IN_PROGRESS, LeadStatus.EXCLUDED):
        return False  # already in a call, or excluded for a reason a reply does not lift
    lead.status = LeadStatus.PENDING
    lead.is_callback = True
    lead.next_attempt_at = now
    lead.priority = (lead.priority or 0) + CALLBACK_PRIORITY_BUMP
    lead.status_reason = "whatsapp_reply"
    s.add(
        LeadEvent(
            lead_id=lead.id,
            at=now,
            kind="callback",
            reason="whatsapp_reply",
            detail={"message_id": inbound_id},
        )
    )
    return True


def _inbound_text(m: dict[str, Any]) -> str:
    kind = m.get("type")
    body: object = None
    if kind == "text":
        body = (m.get("text") or {}).get("body")
    elif kind == "button":
        btn = m.get("button") or {}
        body = btn.get("text") or btn.get("payload")
    elif kind == "interactive":
        inter = m.get("interactive") or {}
        reply = inter.get("button_reply") or inter.get("list_reply") or {}
        body = reply.get("title")
    return body if isinstance(body, str) else f"[{kind}]"
