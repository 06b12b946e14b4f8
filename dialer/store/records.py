"""What the engine's store reads and returns: result records, typed errors, and the
campaign's rules as the pure domain wants them."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import (
    CallAttempt,
    Campaign,
    Lead,
)
from dialer.domain.eligibility import (
    CampaignRules,
)
from dialer.domain.outcomes import CallOutcome, DialMode, LeadStatus
from dialer.domain.retry import (
    AttemptRecord,
    RetryDecision,
    RetryPolicy,
)
from dialer.domain.windows import CallWindow

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


class DispositionConflict(Exception):
    """A disposition that cannot be recorded now (typed: the API maps it to 409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def attempt_record(a: CallAttempt) -> AttemptRecord:
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

    return now.astimezone(ZoneInfo(tz)).date()


class SqlStore:
    """A store over one async sessionmaker (each aggregate's store derives from it)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sm = sessionmaker
