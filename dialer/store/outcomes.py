"""Outcomes and dispositions: the tracker's outcome, the agent's disposition and its effects
(appointment, PQRS, DNC), the retry decision and the lead's new state, in one transaction; an
exhausted lead's WhatsApp outbox row is written in that same transaction."""

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.db.models import (
    Appointment,
    CallAttempt,
    Campaign,
    Consent,
    ContactLog,
    Disposition,
    DncEntry,
    DncSource,
    Lead,
    LeadClaim,
    LeadEvent,
    Pqrs,
    PqrsType,
)
from dialer.domain.dispositions import CallbackScope, DispositionEffect, DispositionRecord
from dialer.domain.outcomes import CallOutcome, Channel, LeadStatus
from dialer.domain.pqrs import pqrs_deadline
from dialer.domain.retry import (
    LeadPhone,
    decide_retry,
)
from dialer.domain.windows import HolidayCalendar
from dialer.store.leads import lead_snapshot, load_lead
from dialer.store.outbox import enqueue_whatsapp
from dialer.store.records import (
    CallResult,
    DispositionConflict,
    FinishResult,
    SqlStore,
    attempt_record,
    campaign_rules,
    person_key,
    retry_policy,
)


class OutcomeStore(SqlStore):
    """Outcomes, dispositions and the retry decisions they lead to."""

    async def finish_attempt(
        self,
        uuid: str,
        result: CallResult,
        now: datetime,
        disposition: DispositionRecord | None = None,
    ) -> FinishResult:
        """Store the outcome and apply the retry policy, in one transaction. Idempotent.

        A connected call (ANSWERED_CONNECTED) keeps its lead claimed until the agent's
        disposition arrives (:meth:`apply_disposition`).
        """
        async with self.sm() as s, s.begin():
            attempt = await s.scalar(
                sa.select(CallAttempt).where(CallAttempt.uuid == uuid).with_for_update()
            )
            if attempt is None:
                raise LookupError(f"unknown attempt {uuid}")
            if attempt.outcome is not None:
                return FinishResult(
                    uuid, attempt.lead_id, attempt.campaign_id, None, already_finished=True
                )
            attempt.outcome = result.outcome
            attempt.answered_at = result.answered_at
            attempt.connected_at = result.connected_at
            attempt.ended_at = result.ended_at or now
            attempt.hangup_cause = result.hangup_cause
            attempt.hangup_cause_txt = result.hangup_cause_txt
            attempt.originate_reason = result.originate_reason
            attempt.amd_status = result.amd_status
            attempt.amd_cause = result.amd_cause
            attempt.channel = result.channel or attempt.channel
            attempt.other_channel_id = result.other_channel_id
            attempt.detail = (result.detail or "")[:200] or None
            attempt.agent_id = result.agent_id or attempt.agent_id
            attempt.counts_against_limit = not attempt.is_callback and (
                result.counts
                if result.counts is not None
                else not result.trunk_failure
                and result.outcome not in (CallOutcome.FAILED, CallOutcome.CANCELLED)
            )
            lead = await load_lead(s, attempt.lead_id)
            campaign = await s.get_one(Campaign, attempt.campaign_id)
            lead.last_outcome = result.outcome
            if result.outcome is CallOutcome.ABANDONED:
                lead.last_abandoned_at = result.ended_at or now
            phone = next((p for p in lead.phones if p.id == attempt.phone_id), None)
            if phone is not None:
                phone.last_outcome = result.outcome
                if attempt.counts_against_limit:
                    phone.attempts += 1
            if result.outcome.is_live_answer:
                s.add(
                    ContactLog(
                        person_key=person_key(lead),
                        channel=Channel.VOICE,
                        at=result.answered_at or now,
                        direct_contact=result.outcome is CallOutcome.ANSWERED_CONNECTED,
                        campaign_id=campaign.id,
                        ref=attempt.uuid,
                    )
                )
            if result.outcome is CallOutcome.ANSWERED_CONNECTED and disposition is None:
                return FinishResult(uuid, lead.id, campaign.id, None)
            return await self._decide(s, attempt, lead, campaign, now, disposition)

    async def record_disposition(
        self,
        uuid: str,
        disposition: DispositionRecord,
        now: datetime,
        agent_id: int | None = None,
        calendar: HolidayCalendar | None = None,
    ) -> FinishResult:
        """Store the agent's disposition and its effects, and close the lead decision.

        One transaction: the Disposition row; an Appointment, a PQRS record (15 business
        days), or DNC entries with every consent of the person revoked; then the retry policy
        with the disposition. Raises :class:`DispositionConflict` when the call is not in a
        state that takes a disposition.
        """
        async with self.sm() as s, s.begin():
            attempt = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == uuid))
            if attempt is None:
                raise DispositionConflict("unknown_attempt", f"unknown attempt {uuid}")
            if attempt.outcome is None:
                raise DispositionConflict("call_in_progress", "the call has not ended yet")
            if attempt.outcome is not CallOutcome.ANSWERED_CONNECTED:
                raise DispositionConflict(
                    "not_connected", f"the call ended as {attempt.outcome.value}"
                )
            exists = await s.scalar(
                sa.select(Disposition.id).where(Disposition.attempt_id == attempt.id)
            )
            if exists is not None:
                raise DispositionConflict("already_recorded", "this call already has a disposition")
            lead = await load_lead(s, attempt.lead_id)
            campaign = await s.get_one(Campaign, attempt.campaign_id)
            details = disposition.details
            row = Disposition(
                attempt_id=attempt.id,
                lead_id=lead.id,
                agent_id=agent_id or attempt.agent_id,
                code=disposition.code.value,
                reason=details.reason,
                opportunity_area=",".join(details.opportunity_areas) or None,
                notes=details.notes or "",
                callback_at=details.callback_at,
                callback_own_agent=details.callback_scope is CallbackScope.OWN_AGENT,
                created_at=now,
            )
            s.add(row)
            await s.flush()
            await self._disposition_effects(s, row, disposition, lead, now, calendar)
            if details.callback_scope is CallbackScope.OWN_AGENT:
                lead.callback_agent_id = row.agent_id
            if lead.status is not LeadStatus.IN_PROGRESS:
                # The lead was released meanwhile (its dialer's claim expired during the
                # wrap-up). The disposition still decides, unless the lead is final or was
                # dialed again since.
                latest = await s.scalar(
                    sa.select(sa.func.max(CallAttempt.attempt_number)).where(
                        CallAttempt.lead_id == lead.id
                    )
                )
                if lead.status.is_final or int(latest or 0) > attempt.attempt_number:
                    return FinishResult(uuid, lead.id, campaign.id, None, already_finished=True)
            return await self._decide(s, attempt, lead, campaign, now, disposition)

    async def _disposition_effects(
        self,
        s: AsyncSession,
        row: Disposition,
        disposition: DispositionRecord,
        lead: Lead,
        now: datetime,
        calendar: HolidayCalendar | None,
    ) -> None:
        details = disposition.details
        effect = disposition.effect
        if effect is DispositionEffect.APPOINTMENT and details.appointment_at is not None:
            s.add(
                Appointment(
                    lead_id=lead.id,
                    disposition_id=row.id,
                    scheduled_for=details.appointment_at,
                    branch=details.branch or lead.branch or "",
                    service=details.service or "",
                )
            )
        elif effect is DispositionEffect.PQRS:
            tz = ZoneInfo(lead.timezone or "America/Bogota")
            s.add(
                Pqrs(
                    lead_id=lead.id,
                    person_key=person_key(lead),
                    disposition_id=row.id,
                    type=PqrsType.QUEJA,
                    description=details.description or details.notes or "",
                    deadline=pqrs_deadline(
                        now.astimezone(tz).date(), calendar or HolidayCalendar()
                    ),
                )
            )
        elif effect is DispositionEffect.DNC:
            await add_dnc(s, [p.e164 for p in lead.phones], "no_volver_a_llamar", now)
            await revoke_consents(s, person_key(lead), "no_volver_a_llamar", now)

    async def _decide(
        self,
        s: AsyncSession,
        attempt: CallAttempt,
        lead: Lead,
        campaign: Campaign,
        now: datetime,
        disposition: DispositionRecord | None,
    ) -> FinishResult:
        history = [
            attempt_record(a)
            for a in await s.scalars(
                sa.select(CallAttempt)
                .where(
                    CallAttempt.lead_id == lead.id,
                    CallAttempt.outcome.is_not(None),
                    CallAttempt.id != attempt.id,
                )
                .order_by(CallAttempt.attempt_number)
            )
        ]
        snap = await lead_snapshot(s, lead, campaign, now)
        phones = [
            LeadPhone(p.phone_id, dialable=not (p.dnc or p.rne or p.invalid)) for p in snap.phones
        ]
        rules = campaign_rules(campaign)
        decision = decide_retry(
            attempt_record(attempt),
            history=history,
            phones=phones,
            policy=retry_policy(campaign),
            window=rules.window,
            now=now,
            tz=lead.timezone or campaign.timezone,
            disposition=disposition,
            ring_time=rules.ring_time,
        )
        lead.attempts = decision.attempts_used
        lead.status = decision.lead_status
        lead.status_reason = decision.reason.value
        lead.next_attempt_at = decision.next_attempt_at
        lead.next_phone_id = int(decision.phone_id) if decision.phone_id else None
        lead.is_callback = decision.callback_scope is not None
        if disposition is not None:
            lead.final_disposition = disposition.code.value
        if decision.invalid_phone_id is not None:
            for p in lead.phones:
                if str(p.id) == decision.invalid_phone_id:
                    p.valid = False
        await s.execute(sa.delete(LeadClaim).where(LeadClaim.lead_id == lead.id))
        s.add(
            LeadEvent(
                lead_id=lead.id,
                at=now,
                kind=decision.action.value,
                reason=decision.reason.value,
                detail={
                    "attempt": attempt.uuid,
                    "next": str(decision.next_attempt_at),
                    # the phone marked bad by this decision, and why (e.g. trunk_failures)
                    **(
                        {
                            "bad_phone": decision.invalid_phone_id,
                            "why": decision.invalid_phone_reason,
                        }
                        if decision.invalid_phone_id is not None
                        else {}
                    ),
                },
            )
        )
        message_id = None
        if decision.whatsapp_fallback:
            message_id = await enqueue_whatsapp(s, lead, campaign)
        return FinishResult(attempt.uuid, lead.id, campaign.id, decision, message_id)


async def add_dnc(s: AsyncSession, numbers: Sequence[str], reason: str, now: datetime) -> int:
    """Add numbers to the internal DNC list (idempotent)."""
    added = 0
    for e164 in dict.fromkeys(numbers):
        exists = await s.scalar(
            sa.select(DncEntry.id).where(
                DncEntry.e164 == e164, DncEntry.source == DncSource.INTERNAL
            )
        )
        if exists is None:
            s.add(DncEntry(e164=e164, source=DncSource.INTERNAL, reason=reason, added_at=now))
            added += 1
    return added


async def revoke_consents(s: AsyncSession, pkey: str, reason: str, now: datetime) -> None:
    """Opt-out applies at once across all channels (Ley 1581)."""
    for channel in Channel:
        consent = await s.scalar(
            sa.select(Consent).where(Consent.person_key == pkey, Consent.channel == channel)
        )
        if consent is None:
            s.add(
                Consent(
                    person_key=pkey,
                    channel=channel,
                    granted=False,
                    proof=f"revoked:{reason}",
                    granted_at=now,
                    revoked_at=now,
                    revoked_reason=reason,
                )
            )
        elif consent.revoked_at is None:
            consent.revoked_at = now
            consent.revoked_reason = reason
