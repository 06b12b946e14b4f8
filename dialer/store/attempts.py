"""Call attempts: the row committed before the Originate (a unique ``(lead_id,
attempt_number)`` and a uuid used as the AMI ChannelId), what happens during the call, and what
a restarted dialer reads back (unresolved attempts, call status)."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.db.models import (
    AuditLog,
    CallAttempt,
    Campaign,
    Disposition,
    Lead,
    LeadClaim,
    LeadEvent,
    Phone,
)
from dialer.domain.errors import AttemptLimitReached
from dialer.domain.outcomes import CallOutcome, DialMode
from dialer.domain.retry import (
    AttemptRecord,
    LeadPhone,
    pick_first_phone,
)
from dialer.store.leads import load_lead
from dialer.store.records import (
    AttemptInfo,
    CallStatus,
    Orphan,
    SqlStore,
    attempt_record,
    retry_policy,
)


class AttemptStore(SqlStore):
    """Attempt rows, from before the dial to the connect."""

    async def create_attempt(
        self,
        lead_id: int,
        campaign: Campaign,
        owner: str,
        server: str,
        mode: DialMode,
        now: datetime,
    ) -> AttemptInfo:
        """Write the attempt row (committed) before anything is dialed."""
        async with self.sm() as s, s.begin():
            lead = await load_lead(s, lead_id)
            claim = await s.get(LeadClaim, lead_id)
            if claim is None or claim.owner != owner:
                raise LookupError(f"lead {lead_id} is not claimed by {owner}")
            if not lead.is_callback:
                # The last gate before a dial: whatever path led here (a lost disposition, an
                # expired claim, a race), a lead never gets more counted attempts than allowed.
                used = await s.scalar(
                    sa.select(sa.func.count())
                    .select_from(CallAttempt)
                    .where(
                        CallAttempt.lead_id == lead_id,
                        CallAttempt.outcome.is_not(None),
                        CallAttempt.counts_against_limit,
                        ~CallAttempt.is_callback,
                    )
                )
                if int(used or 0) >= campaign.max_attempts:
                    raise AttemptLimitReached(
                        f"lead {lead_id} used {used} of {campaign.max_attempts} attempts"
                    )
            phone = await self._next_phone(s, lead, campaign)
            last = await s.scalar(
                sa.select(sa.func.max(CallAttempt.attempt_number)).where(
                    CallAttempt.lead_id == lead_id
                )
            )
            attempt = CallAttempt(
                lead_id=lead_id,
                campaign_id=campaign.id,
                phone_id=phone.id,
                number=phone.e164,
                attempt_number=int(last or 0) + 1,
                is_callback=lead.is_callback,
                mode=mode,
                dialer_id=owner,
                server=server,
                created_at=now,
            )
            s.add(attempt)
            await s.flush()
            claim.attempt_id = attempt.id
            return AttemptInfo(
                attempt_id=attempt.id,
                uuid=attempt.uuid,
                lead_id=lead_id,
                campaign_id=campaign.id,
                attempt_number=attempt.attempt_number,
                number=phone.e164,
                phone_id=phone.id,
                customer_name=lead.customer_name,
            )

    async def _next_phone(self, s: AsyncSession, lead: Lead, campaign: Campaign) -> Phone:
        phones = {p.id: p for p in lead.phones}
        if lead.next_phone_id in phones and phones[lead.next_phone_id].valid:
            return phones[lead.next_phone_id]
        if lead.is_callback:  # the customer asked for it: per-phone quotas do not apply
            for p in sorted(lead.phones, key=lambda p: p.position):
                if p.valid:
                    return p
        history = await self._history(s, lead.id)
        chosen = pick_first_phone(
            [LeadPhone(str(p.id), dialable=p.valid) for p in lead.phones],
            retry_policy(campaign),
            history,
        )
        return phones[int(chosen)]

    async def _history(self, s: AsyncSession, lead_id: int) -> list[AttemptRecord]:
        rows = await s.scalars(
            sa.select(CallAttempt)
            .where(CallAttempt.lead_id == lead_id, CallAttempt.outcome.is_not(None))
            .order_by(CallAttempt.attempt_number)
        )
        return [attempt_record(a) for a in rows]

    async def mark_dialed(self, uuid: str, action_id: str, now: datetime) -> None:
        async with self.sm() as s, s.begin():
            await s.execute(
                sa.update(CallAttempt)
                .where(CallAttempt.uuid == uuid)
                .values(action_id=action_id, dialed_at=now)
            )

    async def attempt(self, uuid: str) -> CallAttempt | None:
        async with self.sm() as s:
            found: CallAttempt | None = await s.scalar(
                sa.select(CallAttempt).where(CallAttempt.uuid == uuid)
            )
            return found

    async def mark_connected(
        self, uuid: str, agent_id: int | None, answered_at: datetime | None, connected_at: datetime
    ) -> None:
        """Durable evidence that the call reached an agent (a dialer killed later can't lose it)."""
        async with self.sm() as s, s.begin():
            await s.execute(
                sa.update(CallAttempt)
                .where(CallAttempt.uuid == uuid, CallAttempt.outcome.is_(None))
                .values(agent_id=agent_id, answered_at=answered_at, connected_at=connected_at)
            )

    async def record_call_control(
        self,
        *,
        attempt_uuid: str,
        lead_id: int,
        agent_id: int,
        action: str,
        now: datetime,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """An agent's call control (hang up, hold, mute, DTMF ...) in the lead's history
        (``LeadEvent`` kind ``call_control``) and the audit log, in one transaction."""
        body = {"attempt": attempt_uuid, **(detail or {})}
        async with self.sm() as s, s.begin():
            s.add(
                LeadEvent(lead_id=lead_id, at=now, kind="call_control", reason=action, detail=body)
            )
            s.add(
                AuditLog(
                    at=now,
                    actor=f"user:{agent_id}",
                    action=f"call.{action}",
                    target_type="call",
                    target_id=attempt_uuid[:64],
                    detail={"lead_id": lead_id, **body},
                )
            )

    async def transfer_attempt(self, uuid: str, agent_id: int) -> None:
        """A connected call was transferred: the attempt (and so its disposition) now belongs
        to ``agent_id``."""
        async with self.sm() as s, s.begin():
            await s.execute(
                sa.update(CallAttempt)
                .where(CallAttempt.uuid == uuid, CallAttempt.outcome.is_(None))
                .values(agent_id=agent_id)
            )

    async def call_status(self, uuid: str) -> CallStatus | None:
        """Outcome, agent, lead and disposition of an attempt; None if unknown."""
        async with self.sm() as s:
            row = (
                await s.execute(
                    sa.select(
                        CallAttempt.id,
                        CallAttempt.outcome,
                        CallAttempt.agent_id,
                        CallAttempt.lead_id,
                    ).where(CallAttempt.uuid == uuid)
                )
            ).first()
            if row is None:
                return None
            disposed = await s.scalar(
                sa.select(Disposition.id).where(Disposition.attempt_id == row[0])
            )
            return CallStatus(uuid, row[1], row[2], row[3], disposed is not None)

    async def awaiting_disposition(self, agent_id: int, since: datetime) -> str | None:
        """The agent's latest connected call without a disposition (since ``since``), if any."""
        async with self.sm() as s:
            found: str | None = await s.scalar(
                sa.select(CallAttempt.uuid)
                .where(
                    CallAttempt.agent_id == agent_id,
                    CallAttempt.outcome == CallOutcome.ANSWERED_CONNECTED,
                    CallAttempt.created_at >= since,
                    ~sa.exists().where(Disposition.attempt_id == CallAttempt.id),
                )
                .order_by(CallAttempt.created_at.desc())
                .limit(1)
            )
            return found

    async def orphan_attempts(self, now: datetime) -> list[tuple[str, str]]:
        """(uuid, server) of unresolved attempts whose claim expired (their dialer died)."""
        async with self.sm() as s:
            rows = await s.execute(
                sa.select(CallAttempt.uuid, CallAttempt.server)
                .join(LeadClaim, LeadClaim.lead_id == CallAttempt.lead_id, isouter=True)
                .where(
                    CallAttempt.outcome.is_(None),
                    sa.or_(LeadClaim.lead_id.is_(None), LeadClaim.expires_at < now),
                )
            )
            return [(u, srv) for u, srv in rows]

    async def unresolved_attempts(self, now: datetime, predecessor: str = "") -> list[Orphan]:
        """Unresolved attempts no live dialer follows: the claim expired (its dialer died), or
        the claim is held by a previous run of this dialer (``predecessor``: an owner prefix,
        ``"<name>."``; the caller excludes its own run). Each with the evidence the database
        holds (connect time and agent written at connect, see :meth:`mark_connected`).
        """
        dead = sa.or_(LeadClaim.lead_id.is_(None), LeadClaim.expires_at < now)
        if predecessor:
            dead = sa.or_(dead, LeadClaim.owner.startswith(predecessor, autoescape=True))
        async with self.sm() as s:
            rows = await s.execute(
                sa.select(CallAttempt, LeadClaim.owner)
                .join(LeadClaim, LeadClaim.lead_id == CallAttempt.lead_id, isouter=True)
                .where(CallAttempt.outcome.is_(None), dead)
            )
            return [
                Orphan(
                    uuid=a.uuid,
                    server=a.server,
                    lead_id=a.lead_id,
                    campaign_id=a.campaign_id,
                    attempt_number=a.attempt_number,
                    number=a.number,
                    mode=a.mode,
                    created_at=a.created_at,
                    answered_at=a.answered_at,
                    connected_at=a.connected_at,
                    agent_id=a.agent_id,
                    claim_owner=owner,
                )
                for a, owner in rows
            ]
