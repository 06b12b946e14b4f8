"""Send results: Meta accepted the message (sent), or refused it (the retry policy decides:
retry later, hold the campaign/account, or fail, with its side effects)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from dialer.db.models import (
    Consent,
    ContactLog,
    Lead,
    LeadEvent,
    Phone,
    WhatsAppMessage,
    WhatsAppStatus,
)
from dialer.domain.outcomes import Channel
from dialer.store import person_key
from dialer.whatsapp.policy import Action, Decision, ErrorInfo, Outcome, RetryConfig, decide
from dialer.whatsapp.store.common import (
    HELD_PREFIX,
    Applied,
    SendJob,
    add_event,
    status_of,
    transition,
)
from dialer.whatsapp.store.holds import HoldStore


async def log_contact(
    s: AsyncSession,
    lead_id: int | None,
    campaign_id: int | None,
    ref: str,
    at: datetime,
    direct: bool = False,
) -> None:
    if lead_id is None:
        return
    lead = await s.get(Lead, lead_id, options=[selectinload(Lead.phones)])
    if lead is None:
        return
    s.add(
        ContactLog(
            person_key=person_key(lead),
            channel=Channel.WHATSAPP,
            at=at,
            direct_contact=direct,
            campaign_id=campaign_id,
            ref=ref[:64],
        )
    )


class SendResults:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        retry: RetryConfig,
        holds: HoldStore,
    ) -> None:
        self.sm = sessionmaker
        self.retry = retry
        self.hold_store = holds

    async def record_accepted(
        self, job: SendJob, worker: str, wamid: str, wa_id: str, now: datetime
    ) -> Applied:
        async with self.sm() as s, s.begin():
            ok = await transition(
                s,
                job.message_id,
                [WhatsAppStatus.SENDING],
                {
                    "status": WhatsAppStatus.SENT,
                    "wamid": wamid,
                    "claimed_by": None,
                    "claimed_until": None,
                    "error_code": None,
                    "error_detail": None,
                },
                WhatsAppMessage.claimed_by == worker,
                WhatsAppMessage.send_attempts == job.attempt,
            )
            add_event(
                s, job.message_id, "accepted", now, attempt=job.attempt, wamid=wamid, wa_id=wa_id
            )
            if ok:
                await log_contact(s, job.lead_id, job.campaign_id, wamid, now)
            return Applied(
                job.message_id, job.lead_id, job.campaign_id, "sent", changed=ok, wamid=wamid
            )

    async def record_failure(
        self, job: SendJob, worker: str, error: ErrorInfo, now: datetime, jitter: float = 0.0
    ) -> tuple[Decision, Applied]:
        decision = decide(error, attempt=job.attempt, now=now, config=self.retry, jitter=jitter)
        async with self.sm() as s, s.begin():
            msg = await s.get(WhatsAppMessage, job.message_id, with_for_update=True)
            assert msg is not None
            add_event(
                s,
                job.message_id,
                "send_error",
                now,
                attempt=job.attempt,
                kind=error.kind,
                code=error.code,
                http_status=error.http_status,
                action=decision.action.value,
                detail=error.detail,
            )
            if not (
                status_of(msg.status) is WhatsAppStatus.SENDING
                and msg.claimed_by == worker
                and msg.send_attempts == job.attempt
            ):
                return decision, Applied(
                    job.message_id, job.lead_id, job.campaign_id, str(msg.status), changed=False
                )
            applied = await self.apply_decision(s, msg, decision, error, now)
            return decision, applied

    async def apply_decision(
        self,
        s: AsyncSession,
        msg: WhatsAppMessage,
        decision: Decision,
        error: ErrorInfo,
        now: datetime,
    ) -> Applied:
        """Apply the policy to the row (already checked to be the current attempt)."""
        common: dict[str, Any] = {
            "claimed_by": None,
            "claimed_until": None,
            "error_code": error.code,
            "error_detail": f"{decision.reason_es} {error.detail}".strip()[:300],
        }
        alert: dict[str, Any] | None = None
        if decision.outcome is Outcome.FAILED:
            msg.status = WhatsAppStatus.FAILED
            if decision.action is Action.MARK_NOT_ON_WHATSAPP:
                await s.execute(
                    sa.update(Phone)
                    .where(Phone.e164 == msg.phone)
                    .values(whatsapp_capable=False)
                    .execution_options(synchronize_session=False)
                )
            elif decision.action is Action.REVOKE_MARKETING_CONSENT and msg.lead_id is not None:
                lead = await s.get(Lead, msg.lead_id, options=[selectinload(Lead.phones)])
                if lead is not None:
                    await revoke_whatsapp_marketing(s, person_key(lead), "meta_131050", now)
        else:
            msg.status = WhatsAppStatus.SCHEDULED
            msg.next_attempt_at = decision.retry_at
            msg.wamid = None  # a new attempt gets a new wamid; the old one is in the history
            if decision.outcome is Outcome.HELD:
                scope = "account" if decision.action is Action.HALT_ALL else "campaign"
                common["error_detail"] = f"{HELD_PREFIX}{scope} {common['error_detail']}"[:300]
                alert = await self.hold_store.open_hold(
                    s,
                    scope,
                    msg.campaign_id if scope == "campaign" else None,
                    error.code,
                    decision.reason_es,
                    now,
                )
        for key, value in common.items():
            setattr(msg, key, value)
        if msg.lead_id is not None and decision.outcome is Outcome.FAILED:
            s.add(
                LeadEvent(
                    lead_id=msg.lead_id,
                    at=now,
                    kind="whatsapp_failed",
                    reason=decision.action.value,
                    detail={"message_id": msg.id, "code": error.code},
                )
            )
        return Applied(msg.id, msg.lead_id, msg.campaign_id, msg.status.value, alert=alert)


async def revoke_whatsapp_marketing(s: AsyncSession, pkey: str, reason: str, now: datetime) -> None:
    """Revoke the person's WhatsApp marketing consent (creating a revoked row if none)."""
    consent = await s.scalar(
        sa.select(Consent).where(
            Consent.person_key == pkey,
            Consent.channel == Channel.WHATSAPP,
            Consent.purpose == "marketing",
        )
    )
    if consent is None:
        s.add(
            Consent(
                person_key=pkey,
                channel=Channel.WHATSAPP,
                purpose="marketing",
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
