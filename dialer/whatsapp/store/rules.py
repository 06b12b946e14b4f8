"""Contact rules of an outbound message: holds, the campaign's WhatsApp settings, the phone, and
the engine's readiness rules (consent, DNC/RNE, contact history, window) for the WhatsApp
channel. A message that may not go now is held, deferred or skipped here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from dialer.db.models import Campaign, Lead, LeadEvent, Phone, WhatsAppMessage, WhatsAppStatus
from dialer.domain.eligibility import Readiness, evaluate_readiness
from dialer.domain.outcomes import Channel
from dialer.store import EngineStore, campaign_rules
from dialer.whatsapp.store.common import HELD_PREFIX, Prepared, add_event, transition
from dialer.whatsapp.store.holds import HoldStore, active_holds


class ContactRules:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], holds: HoldStore) -> None:
        self.sm = sessionmaker
        self.hold_store = holds

    async def check(
        self,
        s: AsyncSession,
        msg: WhatsAppMessage,
        status_now: Sequence[WhatsAppStatus],
        now: datetime,
    ) -> Prepared | tuple[Lead, Campaign]:
        """The verdict when the open message ``msg`` may not go now (held, deferred, skipped,
        gone); else its lead and campaign, for the claim."""
        message_id = msg.id
        holds = await active_holds(s, msg.campaign_id)
        if holds:
            until = now + timedelta(minutes=15)
            await transition(
                s,
                message_id,
                status_now,
                {
                    "status": WhatsAppStatus.SCHEDULED,
                    "next_attempt_at": until,
                    "error_detail": f"{HELD_PREFIX}{holds[0].scope} {holds[0].reason}"[:300],
                },
            )
            if not (msg.error_detail or "").startswith(HELD_PREFIX):  # once, not every recheck
                add_event(s, message_id, "held", now, hold=holds[0].scope, code=holds[0].code)
            return Prepared("held", message_id, until=until, reason=holds[0].reason)
        lead = (
            await s.get(Lead, msg.lead_id, options=[selectinload(Lead.phones)])
            if msg.lead_id is not None
            else None
        )
        campaign = await s.get(Campaign, msg.campaign_id) if msg.campaign_id else None
        if lead is None or campaign is None:
            return await self._skip(s, msg, status_now, "lead_or_campaign_missing", now)
        if not campaign.whatsapp_enabled:
            return await self._skip(s, msg, status_now, "campaign_whatsapp_disabled", now)
        if not campaign.whatsapp_template:
            alert = await self.hold_store.open_hold(
                s, "campaign", campaign.id, None, "La campaña no tiene plantilla", now
            )
            until = now + timedelta(minutes=15)
            await transition(
                s,
                message_id,
                status_now,
                {
                    "status": WhatsAppStatus.SCHEDULED,
                    "next_attempt_at": until,
                    "error_detail": f"{HELD_PREFIX}campaign no_template",
                },
            )
            add_event(s, message_id, "held", now, reason="no_template")
            return Prepared("held", message_id, until=until, reason="no_template", alert=alert)
        not_on_wa = await s.scalar(
            sa.select(sa.func.count())
            .select_from(Phone)
            .where(Phone.e164 == msg.phone, Phone.whatsapp_capable.is_(False))
        )
        if not_on_wa:
            return await self._skip(s, msg, status_now, "not_on_whatsapp", now)
        readiness = await self._readiness(s, lead, campaign, now)
        phone_row = next((p for p in lead.phones if p.e164 == msg.phone), None)
        if readiness.ready and (
            phone_row is not None and str(phone_row.id) not in readiness.dialable_phone_ids
        ):
            return await self._skip(s, msg, status_now, "phone_excluded", now)
        if not readiness.ready:
            failed = [r.code.value for r in readiness.failed]
            if readiness.ready_at is None:
                return await self._skip(s, msg, status_now, ",".join(failed), now)
            until = readiness.ready_at
            ok = await transition(
                s,
                message_id,
                status_now,
                {
                    "status": WhatsAppStatus.SCHEDULED,
                    "next_attempt_at": until,
                    "error_detail": readiness.summary_es()[:300],
                },
            )
            if not ok:
                return Prepared("gone", message_id)
            add_event(s, message_id, "scheduled", now, rules=failed, until=until.isoformat())
            return Prepared("deferred", message_id, until=until, reason=",".join(failed))
        return lead, campaign

    async def _readiness(
        self, s: AsyncSession, lead: Lead, campaign: Campaign, now: datetime
    ) -> Readiness:
        # The engine's snapshot: consents, DNC/RNE, the person's contact history across every
        # campaign and channel, complaints. Messages do not ring: no ring time before close.
        snap = await EngineStore(self.sm)._snapshot(s, lead, campaign, now)
        rules = campaign_rules(campaign).model_copy(update={"ring_time": timedelta(0)})
        return evaluate_readiness(snap, rules, now, channel=Channel.WHATSAPP)

    async def _skip(
        self,
        s: AsyncSession,
        msg: WhatsAppMessage,
        status_now: Sequence[WhatsAppStatus],
        reason: str,
        now: datetime,
    ) -> Prepared:
        ok = await transition(
            s,
            msg.id,
            status_now,
            {"status": WhatsAppStatus.SKIPPED, "error_detail": reason[:300]},
        )
        if not ok:
            return Prepared("gone", msg.id)
        add_event(s, msg.id, "skipped", now, reason=reason)
        if msg.lead_id is not None:
            s.add(
                LeadEvent(
                    lead_id=msg.lead_id,
                    at=now,
                    kind="whatsapp_skipped",
                    reason=reason[:80],
                    detail={"message_id": msg.id},
                )
            )
        return Prepared("skipped", msg.id, reason=reason)
