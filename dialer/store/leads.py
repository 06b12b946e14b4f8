"""A lead as the rules see it: loaded with its phones, and its eligibility snapshot (DNC, shared
phones, consents, contact history, open complaints)."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.db.models import (
    CallAttempt,
    Campaign,
    Consent,
    ContactLog,
    DncEntry,
    Lead,
    Phone,
    Pqrs,
    PqrsStatus,
)
from dialer.domain.eligibility import (
    ConsentSnapshot,
    LeadSnapshot,
    PhoneSnapshot,
)
from dialer.domain.frequency import ContactEvent
from dialer.store.records import person_key


async def load_lead(s: AsyncSession, lead_id: int) -> Lead:
    lead = await s.get(Lead, lead_id, options=[sa.orm.selectinload(Lead.phones)])
    if lead is None:
        raise LookupError(f"lead {lead_id} does not exist")
    return lead


async def lead_snapshot(
    s: AsyncSession, lead: Lead, campaign: Campaign, now: datetime
) -> LeadSnapshot:
    phones = list(lead.phones)
    numbers = [p.e164 for p in phones]
    dnc_rows: Sequence[Any] = (
        (
            await s.execute(
                sa.select(DncEntry.e164, DncEntry.source).where(
                    DncEntry.e164.in_(numbers),
                    sa.or_(DncEntry.expires_at.is_(None), DncEntry.expires_at > now),
                )
            )
        ).all()
        if numbers
        else []
    )
    dnc: dict[str, set[str]] = {}
    for e164, source in dnc_rows:
        dnc.setdefault(e164, set()).add(str(getattr(source, "value", source)))
    shared_calls = await others_last_calls(s, lead.id, numbers, now)
    pkey = person_key(lead)
    consents = await s.scalars(sa.select(Consent).where(Consent.person_key == pkey))
    history = await s.scalars(
        sa.select(ContactLog).where(
            ContactLog.person_key == pkey, ContactLog.at >= now - timedelta(days=8)
        )
    )
    open_complaint = await s.scalar(
        sa.select(sa.func.count())
        .select_from(Pqrs)
        .where(Pqrs.person_key == pkey, Pqrs.status != PqrsStatus.CLOSED)
    )
    return LeadSnapshot(
        lead_id=str(lead.id),
        status=lead.status,
        phones=tuple(
            PhoneSnapshot(
                phone_id=str(p.id),
                dnc="internal" in dnc.get(p.e164, set()),
                rne="rne" in dnc.get(p.e164, set()),
                invalid=not p.valid,
                others_last_call_at=shared_calls.get(p.e164),
            )
            for p in phones
        ),
        consents=tuple(
            ConsentSnapshot(
                channel=c.channel,
                granted_at=c.granted_at if c.granted else None,
                revoked_at=c.revoked_at,
            )
            for c in consents
        ),
        next_attempt_at=lead.next_attempt_at,
        contact_history=tuple(
            ContactEvent(at=h.at, channel=h.channel, direct=h.direct_contact) for h in history
        ),
        has_open_complaint=bool(open_complaint),
        last_abandoned_at=lead.last_abandoned_at,
        timezone=lead.timezone,
        callback_requested=lead.is_callback,
        event_date=lead.event_date,
        last_visit_date=lead.last_visit_date,
    )


async def others_last_calls(
    s: AsyncSession, lead_id: int, numbers: Sequence[str], now: datetime
) -> dict[str, datetime]:
    """E.164 -> the last call (last 2 days) to that number made for ANOTHER lead: phones
    shared by two people are dialed at most once a day (rule ``phone_daily``). Goes
    phones.e164 (indexed) -> call_attempts.lead_id (indexed)."""
    if not numbers:
        return {}
    other = sa.orm.aliased(Phone)
    rows = await s.execute(
        sa.select(other.e164, sa.func.max(CallAttempt.created_at))
        .join(
            CallAttempt,
            sa.and_(CallAttempt.lead_id == other.lead_id, CallAttempt.phone_id == other.id),
        )
        .where(
            other.e164.in_(numbers),
            other.lead_id != lead_id,
            CallAttempt.created_at >= now - timedelta(days=2),
        )
        .group_by(other.e164)
    )
    out: dict[str, datetime] = {}
    for e164, at in rows:
        if at is not None:
            out[e164] = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return out
