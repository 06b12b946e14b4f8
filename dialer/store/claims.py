"""Lead claims: one active claim per lead (``lead_claims``, primary key ``lead_id``), taken
only when every rule passes at claim time, renewed by its dialer, released or taken over."""

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
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
from dialer.domain.outcomes import LeadStatus
from dialer.store.leads import lead_snapshot, load_lead
from dialer.store.outbox import enqueue_whatsapp
from dialer.store.records import ACTIVE_STATUSES, SqlStore, campaign_rules


class ClaimStore(SqlStore):
    """Claims on leads: who dials a lead, until when."""

    async def claim(
        self, lead_id: int, campaign: Campaign, owner: str, now: datetime, ttl: timedelta
    ) -> tuple[bool, Readiness | None]:
        """Atomically claim a lead if every rule passes *now* (checked at claim time).

        Returns (claimed, readiness). A lead that is not ready gets its ``next_attempt_at``
        moved to when it could next pass (or is excluded), with a LeadEvent saying why.
        """
        async with self.sm() as s, s.begin():
            lead = await load_lead(s, lead_id)
            if lead.status not in ACTIVE_STATUSES:
                return False, None
            readiness = evaluate_readiness(
                await lead_snapshot(s, lead, campaign, now), campaign_rules(campaign), now
            )
            if not readiness.ready:
                await self._not_ready(s, lead, readiness, now)
                return False, readiness
            # Take over an expired claim only when its attempt is resolved.
            await s.execute(
                sa.delete(LeadClaim).where(
                    LeadClaim.lead_id == lead_id,
                    LeadClaim.expires_at < now,
                    ~sa.exists().where(
                        CallAttempt.lead_id == lead_id, CallAttempt.outcome.is_(None)
                    ),
                )
            )
            try:
                async with s.begin_nested():
                    s.add(
                        LeadClaim(
                            lead_id=lead_id,
                            campaign_id=campaign.id,
                            owner=owner,
                            claimed_at=now,
                            expires_at=now + ttl,
                        )
                    )
            except IntegrityError:
                return False, readiness
            lead.status = LeadStatus.IN_PROGRESS
            return True, readiness

    async def _not_ready(
        self, s: AsyncSession, lead: Lead, readiness: Readiness, now: datetime
    ) -> None:
        failed = [r for r in readiness.rules if not r.passed]
        reason = failed[0].code.value if failed else "not_ready"
        if readiness.ready_at is None:
            lead.status = LeadStatus.EXCLUDED
            lead.status_reason = reason
            kind = "excluded"
        else:
            lead.next_attempt_at = readiness.ready_at
            kind = "deferred"
        s.add(
            LeadEvent(
                lead_id=lead.id,
                at=now,
                kind=kind,
                reason=reason,
                detail={"rules": [r.code.value for r in failed], "until": str(readiness.ready_at)},
            )
        )

    async def renew_claims(self, owner: str, now: datetime, ttl: timedelta) -> int:
        async with self.sm() as s, s.begin():
            res = await s.execute(
                sa.update(LeadClaim).where(LeadClaim.owner == owner).values(expires_at=now + ttl)
            )
            return int(res.rowcount or 0)  # type: ignore[attr-defined]

    async def release_claim(self, lead_id: int) -> None:
        async with self.sm() as s, s.begin():
            await s.execute(sa.delete(LeadClaim).where(LeadClaim.lead_id == lead_id))
            lead = await s.get(Lead, lead_id)
            if lead is not None and lead.status is LeadStatus.IN_PROGRESS:
                lead.status = LeadStatus.PENDING if lead.attempts else LeadStatus.NEW

    async def skip_lead(self, lead_id: int, now: datetime, until: datetime) -> None:
        """An agent skipped a previewed lead: release it, due again at ``until``."""
        async with self.sm() as s, s.begin():
            await s.execute(sa.delete(LeadClaim).where(LeadClaim.lead_id == lead_id))
            lead = await s.get(Lead, lead_id)
            if lead is None:
                return
            if lead.status is LeadStatus.IN_PROGRESS:
                lead.status = LeadStatus.PENDING if lead.attempts else LeadStatus.NEW
            lead.next_attempt_at = until
            s.add(LeadEvent(lead_id=lead_id, at=now, kind="skipped", reason="preview_skip"))

    async def close_claimed(
        self, lead_id: int, status: LeadStatus, reason: str, now: datetime
    ) -> int | None:
        """A claimed lead turned out not to be dialable (every attempt used, or no phone left):
        release the claim and close it as ``status`` so it is not claimed again. An exhausted
        lead gets its WhatsApp fallback (exactly once); returns that outbox row's id."""
        async with self.sm() as s, s.begin():
            await s.execute(sa.delete(LeadClaim).where(LeadClaim.lead_id == lead_id))
            lead = await load_lead(s, lead_id)
            if lead.status.is_final:
                return None
            lead.status = status
            lead.status_reason = reason
            lead.next_attempt_at = None
            s.add(LeadEvent(lead_id=lead_id, at=now, kind=status.value, reason=reason))
            if status is not LeadStatus.EXHAUSTED:
                return None
            campaign = await s.get_one(Campaign, lead.campaign_id)
            return await enqueue_whatsapp(s, lead, campaign)

    async def take_claim(self, lead_id: int, owner: str, now: datetime, ttl: timedelta) -> None:
        """Take over a dead dialer's claim on a lead whose call this dialer now follows."""
        async with self.sm() as s, s.begin():
            res = await s.execute(
                sa.update(LeadClaim)
                .where(LeadClaim.lead_id == lead_id)
                .values(owner=owner, expires_at=now + ttl)
            )
            if not res.rowcount:  # type: ignore[attr-defined]
                lead = await s.get(Lead, lead_id)
                if lead is None or lead.status is not LeadStatus.IN_PROGRESS:
                    return
                s.add(
                    LeadClaim(
                        lead_id=lead_id,
                        campaign_id=lead.campaign_id,
                        owner=owner,
                        claimed_at=now,
                        expires_at=now + ttl,
                    )
                )

    async def settled_claims(self, owner: str) -> list[tuple[int, str | None]]:
        """Leads ``owner`` holds whose every attempt has an outcome, with their latest attempt's
        uuid (None: never dialed). A claim on such a lead is only right while an agent is still
        busy with that attempt (wrap-up, a call); the caller checks that."""
        async with self.sm() as s:
            rows = await s.execute(
                sa.select(LeadClaim.lead_id).where(
                    LeadClaim.owner == owner,
                    ~sa.exists().where(
                        CallAttempt.lead_id == LeadClaim.lead_id,
                        CallAttempt.outcome.is_(None),
                    ),
                )
            )
            out: list[tuple[int, str | None]] = []
            for (lead_id,) in rows:
                uuid = await s.scalar(
                    sa.select(CallAttempt.uuid)
                    .where(CallAttempt.lead_id == lead_id)
                    .order_by(CallAttempt.created_at.desc(), CallAttempt.id.desc())
                    .limit(1)
                )
                out.append((lead_id, uuid))
            return out

    async def release_expired_claims(self, now: datetime) -> list[int]:
        """Return leads of dead dialers to the pool (only when no attempt is unresolved).

        Returns the released lead ids (their Redis leases can be dropped too).
        """
        async with self.sm() as s, s.begin():
            expired = list(
                await s.scalars(
                    sa.select(LeadClaim.lead_id).where(
                        LeadClaim.expires_at < now,
                        ~sa.exists().where(
                            CallAttempt.lead_id == LeadClaim.lead_id,
                            CallAttempt.outcome.is_(None),
                        ),
                    )
                )
            )
            if not expired:
                return []
            await s.execute(sa.delete(LeadClaim).where(LeadClaim.lead_id.in_(expired)))
            await s.execute(
                sa.update(Lead)
                .where(Lead.id.in_(expired), Lead.status == LeadStatus.IN_PROGRESS)
                .values(status=LeadStatus.PENDING)
            )
            return expired
