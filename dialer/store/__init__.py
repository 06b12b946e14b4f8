"""SQL side of the engine: claims, attempts, outcomes, retries and the WhatsApp outbox.

This is the IO shell around the pure rules in :mod:`dialer.domain`, one store per aggregate:
campaigns and their due leads (:mod:`~dialer.store.campaigns`), claims
(:mod:`~dialer.store.claims`), attempts (:mod:`~dialer.store.attempts`), outcomes and
dispositions (:mod:`~dialer.store.outcomes`), the WhatsApp outbox (:mod:`~dialer.store.outbox`).
:class:`EngineStore` is all of them over one sessionmaker. Every write that matters happens
inside one transaction per step, in this order:

1. ``claim``: a ``lead_claims`` row (primary key ``lead_id``) — one active claim per lead.
2. ``create_attempt``: the attempt row is committed **before** the Originate is sent, with a
   unique ``(lead_id, attempt_number)`` and a unique uuid used as the AMI ChannelId.
3. ``finish_attempt``: the tracker's outcome, the retry decision, the lead's new state, the
   claim released — and, when the lead is exhausted, a ``whatsapp_messages`` outbox row whose
   idempotency key makes the fallback happen exactly once.
"""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.db.models import Campaign, Lead
from dialer.domain.eligibility import LeadSnapshot
from dialer.store.attempts import AttemptStore
from dialer.store.campaigns import CampaignStore, campaign_abandon_stats, reschedule_deferred
from dialer.store.claims import ClaimStore
from dialer.store.leads import lead_snapshot
from dialer.store.outbox import OutboxStore, whatsapp_payload
from dialer.store.outcomes import OutcomeStore, add_dnc, revoke_consents
from dialer.store.records import (
    ACTIVE_STATUSES,
    AttemptInfo,
    CallResult,
    CallStatus,
    DispositionConflict,
    FinishResult,
    Orphan,
    campaign_rules,
    campaign_window,
    fallback_key,
    person_key,
    retry_policy,
    today_local,
)


class EngineStore(CampaignStore, ClaimStore, AttemptStore, OutcomeStore, OutboxStore):
    """Every store of the engine over one sessionmaker (``self.sm``)."""

    async def _snapshot(
        self, s: AsyncSession, lead: Lead, campaign: Campaign, now: datetime
    ) -> LeadSnapshot:
        """The lead's eligibility snapshot (:func:`dialer.store.leads.lead_snapshot`); kept
        for ``dialer/whatsapp/store.py``, which calls it under this name."""
        return await lead_snapshot(s, lead, campaign, now)


__all__ = [
    "ACTIVE_STATUSES",
    "AttemptInfo",
    "AttemptStore",
    "CallResult",
    "CallStatus",
    "CampaignStore",
    "ClaimStore",
    "DispositionConflict",
    "EngineStore",
    "FinishResult",
    "Orphan",
    "OutboxStore",
    "OutcomeStore",
    "add_dnc",
    "campaign_abandon_stats",
    "campaign_rules",
    "campaign_window",
    "fallback_key",
    "lead_snapshot",
    "person_key",
    "reschedule_deferred",
    "retry_policy",
    "revoke_consents",
    "today_local",
    "whatsapp_payload",
]
