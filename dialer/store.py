"""SQL side of the engine: claims, attempts, outcomes, retries and the WhatsApp outbox.

This is the IO shell around the pure rules in :mod:`dialer.domain`. Every write that matters
happens here, inside one transaction per step, in this order:

1. ``claim``: a ``lead_claims`` row (primary key ``lead_id``) — one active claim per lead.
2. ``create_attempt``: the attempt row is committed **before** the Originate is sent, with a
   unique ``(lead_id, attempt_number)`` and a unique uuid used as the AMI ChannelId.
3. ``finish_attempt``: the tracker's outcome, the retry decision, the lead's new state, the
   claim released — and, when the lead is exhausted, a ``whatsapp_messages`` outbox row whose
   idempotency key makes the fallback happen exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import (
    Appointment,
    AuditLog,
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
    Phone,
    Pqrs,
    PqrsStatus,
    PqrsType,
    WhatsAppMessage,
    WhatsAppStatus,
)
from dialer.domain.dispositions import CallbackScope, DispositionEffect, DispositionRecord
from dialer.domain.eligibility import (
    CampaignRules,
    ConsentSnapshot,
    LeadSnapshot,
    PhoneSnapshot,
    Readiness,
    evaluate_readiness,
)
from dialer.domain.errors import AttemptLimitReached
from dialer.domain.frequency import ContactEvent
from dialer.domain.outcomes import CallOutcome, CampaignStatus, Channel, DialMode, LeadStatus
from dialer.domain.pqrs import pqrs_deadline
from dialer.domain.retry import (
    AttemptRecord,
    LeadPhone,
    RetryDecision,
    RetryPolicy,
    decide_retry,
    pick_first_phone,
)
from dialer.domain.windows import CallWindow, HolidayCalendar

ACTIVE_STATUSES = (LeadStatus.NEW, LeadStatus.PENDING)


def person_key(lead: Lead) -> str:
    """Who a person is across campaigns and channels: the national id, else the first phone.

    E.164 numbers start with '+', so the two kinds never collide. The importer uses the same
    convention for consents (dialer/importing/cleaning.py).
    """
    if lead.national_id:
        return lead.national_id
    return lead.phones[0].e164 if lead.phones else f"lead:{lead.id}"


def fallback_key(campaign_id: int, lead_id: int) -> str:
    return f"fallback:{campaign_id}:{lead_id}"


def campaign_window(campaign: Campaign) -> CallWindow:
    return CallWindow.from_dict(campaign.call_window) if campaign.call_window else CallWindow()


def campaign_rules(campaign: Campaign) -> CampaignRules:
    rules: dict[str, Any] = dict(campaign.rules or {})
    return CampaignRules(
        campaign_type=campaign.type,
        window=campaign_window(campaign),
        default_tz=campaign.timezone,
        ring_time=timedelta(seconds=campaign.ring_timeout),
        **rules,
    )


def retry_policy(campaign: Campaign) -> RetryPolicy:
    base = RetryPolicy.for_campaign_type(campaign.type)
    overrides: dict[str, Any] = dict(campaign.retry_rules or {})
    overrides.setdefault("max_attempts", campaign.max_attempts)
    overrides.setdefault("max_attempts_per_phone", campaign.max_attempts_per_phone)
    # model_validate (not model_copy): stored overrides are JSON (ISO durations) to parse.
    return RetryPolicy.model_validate({**base.model_dump(), **overrides})


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """What the engine needs to originate: everything is committed already."""

    attempt_id: int
    uuid: str
    lead_id: int
    campaign_id: int
    attempt_number: int
    number: str
    phone_id: int
    customer_name: str


@dataclass(frozen=True, slots=True)
class CallResult:
    """The tracker's verdict on one attempt, as stored."""

    outcome: CallOutcome
    answered_at: datetime | None = None
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: int | None = None
    hangup_cause_txt: str | None = None
    originate_reason: int | None = None
    amd_status: str | None = None
    amd_cause: str | None = None
    channel: str | None = None
    other_channel_id: str | None = None
    detail: str | None = None
    agent_id: int | None = None
    trunk_failure: bool = False
    #: Force counting against the limits (e.g. a call lost with its dialer may have rung).
    counts: bool | None = None


@dataclass(frozen=True, slots=True)
class Orphan:
    """An unresolved attempt that no live dialer follows, with the database's evidence."""

    uuid: str
    server: str
    lead_id: int
    campaign_id: int
    attempt_number: int
    number: str
    mode: DialMode
    created_at: datetime
    answered_at: datetime | None
    connected_at: datetime | None
    agent_id: int | None
    claim_owner: str | None


@dataclass(frozen=True, slots=True)
class CallStatus:
    uuid: str
    outcome: CallOutcome | None
    agent_id: int | None
    lead_id: int
    disposed: bool


@dataclass(frozen=True, slots=True)
class FinishResult:
    attempt_uuid: str
    lead_id: int
    campaign_id: int
    decision: RetryDecision | None  # None: waiting for the agent's disposition
    whatsapp_message_id: int | None = None
    already_finished: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)


class EngineStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sm = sessionmaker

    # ------------------------------------------------------------------ campaigns
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

    # ------------------------------------------------------------------ candidates
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

    # ------------------------------------------------------------------ eligibility
    async def _snapshot(
        self, s: AsyncSession, lead: Lead, campaign: Campaign, now: datetime
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
        shared_calls = await self._others_last_calls(s, lead.id, numbers, now)
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

    @staticmethod
    async def _others_last_calls(
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

    async def readiness(self, lead_id: int, now: datetime) -> Readiness:
        """Why this lead is (not) being dialed right now (``marcador lead explain``)."""
        async with self.sm() as s:
            lead = await self._load_lead(s, lead_id)
            campaign = await s.get_one(Campaign, lead.campaign_id)
            snap = await self._snapshot(s, lead, campaign, now)
            return evaluate_readiness(snap, campaign_rules(campaign), now)

    @staticmethod
    async def _load_lead(s: AsyncSession, lead_id: int) -> Lead:
        lead = await s.get(Lead, lead_id, options=[sa.orm.selectinload(Lead.phones)])
        if lead is None:
            raise LookupError(f"lead {lead_id} does not exist")
        return lead

    # ------------------------------------------------------------------ claims
    async def claim(
        self, lead_id: int, campaign: Campaign, owner: str, now: datetime, ttl: timedelta
    ) -> tuple[bool, Readiness | None]:
        """Atomically claim a lead if every rule passes *now* (checked at claim time).

        Returns (claimed, readiness). A lead that is not ready gets its ``next_attempt_at``
        moved to when it could next pass (or is excluded), with a LeadEvent saying why.
        """
        async with self.sm() as s, s.begin():
            lead = await self._load_lead(s, lead_id)
            if lead.status not in ACTIVE_STATUSES:
                return False, None
            readiness = evaluate_readiness(
                await self._snapshot(s, lead, campaign, now), campaign_rules(campaign), now
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
            lead = await self._load_lead(s, lead_id)
            if lead.status.is_final:
                return None
            lead.status = status
            lead.status_reason = reason
            lead.next_attempt_at = None
            s.add(LeadEvent(lead_id=lead_id, at=now, kind=status.value, reason=reason))
            if status is not LeadStatus.EXHAUSTED:
                return None
            campaign = await s.get_one(Campaign, lead.campaign_id)
            return await self._enqueue_whatsapp(s, lead, campaign)

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

    # ------------------------------------------------------------------ attempts
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
            lead = await self._load_lead(s, lead_id)
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
        return [_record(a) for a in rows]

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
            lead = await self._load_lead(s, attempt.lead_id)
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
            lead = await self._load_lead(s, attempt.lead_id)
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
            _record(a)
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
        snap = await self._snapshot(s, lead, campaign, now)
        phones = [
            LeadPhone(p.phone_id, dialable=not (p.dnc or p.rne or p.invalid)) for p in snap.phones
        ]
        rules = campaign_rules(campaign)
        decision = decide_retry(
            _record(attempt),
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
            message_id = await self._enqueue_whatsapp(s, lead, campaign)
        return FinishResult(attempt.uuid, lead.id, campaign.id, decision, message_id)

    async def _enqueue_whatsapp(
        self, s: AsyncSession, lead: Lead, campaign: Campaign
    ) -> int | None:
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


class DispositionConflict(Exception):
    """A disposition that cannot be recorded now (typed: the API maps it to 409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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


def _record(a: CallAttempt) -> AttemptRecord:
    outcome = a.outcome or CallOutcome.FAILED
    return AttemptRecord(
        phone_id=str(a.phone_id),
        started_at=a.created_at,
        outcome=outcome,
        trunk_failure=not a.counts_against_limit
        and not a.is_callback
        and outcome is not CallOutcome.CANCELLED,
        callback=a.is_callback,
        counted=a.counts_against_limit,
    )


def today_local(now: datetime, tz: str) -> date:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(tz)).date()


async def campaign_abandon_stats(
    s: AsyncSession, campaign_id: int, now: datetime, tz: str
) -> tuple[int, int, int, int]:
    """(abandoned today, live answers today, abandoned 30 d, live answers 30 d)."""
    from zoneinfo import ZoneInfo

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
