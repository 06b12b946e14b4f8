"""Campaigns and their leads: the campaigns a dialer owns, the due leads in dialing order,
counts, readiness, abandon statistics, and rescheduling after a rules change."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.db.models import (
    CallAttempt,
    Campaign,
    Lead,
    LeadClaim,
    LeadEvent,
)
from dialer.domain.eligibility import (
    Readiness,
    evaluate_readiness,
)
from dialer.domain.outcomes import CallOutcome, CampaignStatus, LeadStatus
from dialer.store.leads import lead_snapshot, load_lead
from dialer.store.records import ACTIVE_STATUSES, SqlStore, campaign_rules


class CampaignStore(SqlStore):
    """Campaigns and the leads due in them."""

    async def active_campaigns(self) -> list[Campaign]:
        """Running and paused campaigns: a dialer owns both, so agents can log in before start."""
        async with self.sm() as s:
            rows = await s.scalars(
                sa.select(Campaign).where(
                    Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.PAUSED))
                )
            )
            return list(rows)

    async def campaign(self, campaign_id: int) -> Campaign | None:
        async with self.sm() as s:
            return await s.get(Campaign, campaign_id)

    async def candidate_ids(self, campaign_id: int, now: datetime, limit: int) -> list[int]:
        """Unclaimed active leads that are due, in dialing order.

        Order: priority (high first), callbacks due, then the oldest ``next_attempt_at``
        (never-dialed leads, with no time, first).
        """
        q = (
            sa.select(Lead.id)
            .outerjoin(LeadClaim, LeadClaim.lead_id == Lead.id)
            .where(
                Lead.campaign_id == campaign_id,
                Lead.status.in_(ACTIVE_STATUSES),
                LeadClaim.lead_id.is_(None),
                sa.or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= now),
            )
            .order_by(
                Lead.priority.desc(),
                Lead.is_callback.desc(),
                Lead.next_attempt_at.is_not(None),
                Lead.next_attempt_at.asc(),
                Lead.id.asc(),
            )
            .limit(limit)
        )
        async with self.sm() as s:
            return list(await s.scalars(q))

    async def counts(self, campaign_id: int, now: datetime) -> dict[str, int]:
        """Leads by status, plus how many are due now (dashboard and demo)."""
        async with self.sm() as s:
            rows = await s.execute(
                sa.select(Lead.status, sa.func.count())
                .where(Lead.campaign_id == campaign_id)
                .group_by(Lead.status)
            )
            out = {str(st.value if hasattr(st, "value") else st): int(n) for st, n in rows}
            due = await s.scalar(
                sa.select(sa.func.count())
                .select_from(Lead)
                .where(
                    Lead.campaign_id == campaign_id,
                    Lead.status.in_(ACTIVE_STATUSES),
                    sa.or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= now),
                )
            )
            out["due"] = int(due or 0)
            return out

    async def readiness(self, lead_id: int, now: datetime) -> Readiness:
        """Why this lead is (not) being dialed right now (``marcador lead explain``)."""
        async with self.sm() as s:
            lead = await load_lead(s, lead_id)
            campaign = await s.get_one(Campaign, lead.campaign_id)
            snap = await lead_snapshot(s, lead, campaign, now)
            return evaluate_readiness(snap, campaign_rules(campaign), now)


async def campaign_abandon_stats(
    s: AsyncSession, campaign_id: int, now: datetime, tz: str
) -> tuple[int, int, int, int]:
    """(abandoned today, live answers today, abandoned 30 d, live answers 30 d)."""

    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    month_start = now - timedelta(days=30)
    live = (CallOutcome.ANSWERED_CONNECTED, CallOutcome.ABANDONED)

    async def _count(since: datetime, outcomes: Sequence[CallOutcome]) -> int:
        n = await s.scalar(
            sa.select(sa.func.count())
            .select_from(CallAttempt)
            .where(
                CallAttempt.campaign_id == campaign_id,
                CallAttempt.created_at >= since,
                CallAttempt.outcome.in_(outcomes),
            )
        )
        return int(n or 0)

    return (
        await _count(day_start, [CallOutcome.ABANDONED]),
        await _count(day_start, live),
        await _count(month_start, [CallOutcome.ABANDONED]),
        await _count(month_start, live),
    )


async def reschedule_deferred(s: AsyncSession, campaign_id: int, now: datetime, reason: str) -> int:
    """Make leads deferred by the campaign's rules due now, after the rules changed.

    A deferral (``LeadEvent`` kind ``deferred``) moved ``next_attempt_at`` to when every rule
    would pass, computed in the campaign's time zone and window. When the zone or the window
    changes, those times are wrong: such leads (the deferral is still what set their
    ``next_attempt_at``) become due now, and the next claim evaluates them under the new
    settings (and defers them again if needed). Times set by the retry policy are kept.
    Returns the number of leads rescheduled.
    """
    leads = {
        lead.id: lead
        for lead in await s.scalars(
            sa.select(Lead).where(
                Lead.campaign_id == campaign_id,
                Lead.status.in_((LeadStatus.NEW, LeadStatus.PENDING)),
                Lead.next_attempt_at > now,
            )
        )
    }
    if not leads:
        return 0
    latest: dict[int, LeadEvent] = {}
    for event in await s.scalars(
        sa.select(LeadEvent)
        .where(LeadEvent.lead_id.in_(list(leads)), LeadEvent.kind == "deferred")
        .order_by(LeadEvent.at, LeadEvent.id)
    ):
        latest[event.lead_id] = event
    count = 0
    for lead_id, event in latest.items():
        lead = leads[lead_id]
        try:
            until = datetime.fromisoformat(str((event.detail or {}).get("until")))
        except ValueError:
            continue
        if until.tzinfo is None or lead.next_attempt_at != until:
            continue  # something else scheduled it since (a retry, a callback)
        lead.next_attempt_at = now
        s.add(LeadEvent(lead_id=lead_id, at=now, kind="rescheduled", reason=reason))
        count += 1
    return count
