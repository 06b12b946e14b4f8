"""SQL system of record (design.md §2). Typed SQLAlchemy 2 models.

Conventions:
- Every timestamp is stored as UTC (:class:`UTCDateTime`) and read back timezone-aware.
- Enums are stored as short strings (no native PostgreSQL enum types), so migrations stay
  identical on SQLite and PostgreSQL.
- Double-dial protection lives in the database itself:
  * ``uq_attempt_lead_number``: one attempt row per (lead, attempt number);
  * ``lead_claims.lead_id`` is the primary key: one active claim per lead;
  * ``uq_attempt_channel_id``: the AMI ChannelId (= attempt uuid) is unique.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from dialer.domain.outcomes import (
    AgentState,
    CallOutcome,
    CampaignStatus,
    CampaignType,
    Channel,
    DialMode,
    LeadStatus,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC; returns aware UTC datetimes."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _enum(enum_cls: type[StrEnum], length: int = 32) -> sa.Enum:
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


def new_uuid() -> str:
    return uuid.uuid4().hex


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}  # noqa: RUF012


class Role(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    KEPT = "kept"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class PqrsType(StrEnum):
    PETICION = "peticion"
    QUEJA = "queja"
    RECLAMO = "reclamo"
    SUGERENCIA = "sugerencia"


class PqrsStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class RecordingStatus(StrEnum):
    RECORDING = "recording"  # the call is connected, MixMonitor runs on the PBX
    OK = "ok"  # file found after the call: size, checksum and duration known
    FAILED = "failed"  # no usable file (failure_reason says why); the call went on
    DELETED = "deleted"  # file removed (retention or data-subject deletion); row kept


class DncSource(StrEnum):
    INTERNAL = "internal"  # customer asked not to be called / manual entry
    RNE = "rne"  # CRC Registro de Números Excluidos


class WhatsAppStatus(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"  # not allowed yet (hours / frequency); will be sent later
    SENDING = "sending"  # claimed by one worker (claimed_by/claimed_until) for the API call
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    SKIPPED = "skipped"  # no consent, not on WhatsApp, campaign WhatsApp paused...
    RECEIVED = "received"  # inbound message from the customer


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    updated_at: Mapped[datetime] = mapped_column(
        default=lambda: datetime.now(UTC), onupdate=lambda: datetime.now(UTC)
    )


# --------------------------------------------------------------------------- campaigns


class Campaign(TimestampMixin, Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    type: Mapped[CampaignType] = mapped_column(_enum(CampaignType))
    status: Mapped[CampaignStatus] = mapped_column(
        _enum(CampaignStatus), default=CampaignStatus.DRAFT
    )
    dial_mode: Mapped[DialMode] = mapped_column(_enum(DialMode), default=DialMode.PROGRESSIVE)
    dial_ratio: Mapped[float] = mapped_column(default=1.0)  # fixed-ratio mode only
    max_attempts: Mapped[int] = mapped_column(default=3)
    max_attempts_per_phone: Mapped[int] = mapped_column(default=3)
    # Retry rules per outcome: {"busy": {"delay_s": 1200, "counts": true}, ...}
    retry_rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Weekly call window: {"mon": [["07:00","19:00"]], ..., "sun": []}; tightened only.
    call_window: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Eligibility rules of the campaign type, e.g. {"min_days_since_last_visit": 365}.
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="America/Bogota")
    caller_id: Mapped[str] = mapped_column(sa.String(64), default="")
    script: Mapped[str] = mapped_column(sa.Text, default="")  # guion, with {placeholders}
    amd_enabled: Mapped[bool] = mapped_column(default=False)
    abandon_target: Mapped[float] = mapped_column(default=0.03)
    connect_timeout: Mapped[float] = mapped_column(default=2.0)
    ring_timeout: Mapped[int] = mapped_column(default=25)  # seconds; >= 15 by rule
    wrap_up_seconds: Mapped[int] = mapped_column(default=30)
    whatsapp_enabled: Mapped[bool] = mapped_column(default=True)
    whatsapp_template: Mapped[str] = mapped_column(sa.String(120), default="")
    whatsapp_language: Mapped[str] = mapped_column(sa.String(16), default="es_CO")
    whatsapp_image: Mapped[str] = mapped_column(sa.String(500), default="")  # link or media id
    dealer_phones: Mapped[str] = mapped_column(sa.String(200), default="")
    servers: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"names": [...]}
    trunk: Mapped[str] = mapped_column(sa.String(200), default="")  # override server trunk
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    #: call recording (docs/recording.md): MixMonitor from the dialplan on connect
    record_calls: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    recording_retention_days: Mapped[int] = mapped_column(default=180, server_default="180")
    #: sound file played to the customer on connect ("Esta llamada puede ser grabada...")
    recording_consent_prompt: Mapped[str] = mapped_column(
        sa.String(200), default="", server_default=""
    )

    leads: Mapped[list[Lead]] = relationship(back_populates="campaign")

    __table_args__ = (
        sa.CheckConstraint("max_attempts >= 1 AND max_attempts <= 20", name="max_attempts"),
        sa.CheckConstraint("ring_timeout >= 15", name="ring_timeout_min"),
        sa.CheckConstraint("abandon_target > 0 AND abandon_target <= 0.03", name="abandon_cap"),
        sa.CheckConstraint("connect_timeout > 0 AND connect_timeout <= 2", name="connect_2s"),
    )


class ImportBatch(Base):
    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(sa.String(300))
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    rows_total: Mapped[int] = mapped_column(default=0)
    rows_imported: Mapped[int] = mapped_column(default=0)
    rows_merged: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # reason -> count
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    created_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    #: The API's background import job (``GET /imports/{job_id}`` reads its state here).
    job_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True, default=None)


# --------------------------------------------------------------------------- leads


class Lead(TimestampMixin, Base):
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: uq_lead_campaign_dedupe and ix_leads_ready both lead with it.
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id", ondelete="CASCADE"))
    # Idempotent re-import: national id when present, else the first phone.
    dedupe_key: Mapped[str] = mapped_column(sa.String(64))
    external_id: Mapped[str | None] = mapped_column(sa.String(64), default=None)  # dealer system
    customer_name: Mapped[str] = mapped_column(sa.String(200), default="")
    national_id: Mapped[str | None] = mapped_column(sa.String(32), default=None, index=True)
    id_type: Mapped[str] = mapped_column(sa.String(8), default="CC")  # CC, CE, NIT, PP
    email: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    plate: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    brand: Mapped[str | None] = mapped_column(sa.String(60), default=None)
    model: Mapped[str | None] = mapped_column(sa.String(100), default=None)
    vehicle_year: Mapped[int | None] = mapped_column(default=None)
    branch: Mapped[str | None] = mapped_column(sa.String(80), default=None)  # sede
    last_visit_date: Mapped[date | None] = mapped_column(default=None)
    event_date: Mapped[date | None] = mapped_column(default=None)  # purchase or service date
    timezone: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    status: Mapped[LeadStatus] = mapped_column(_enum(LeadStatus), default=LeadStatus.NEW)
    status_reason: Mapped[str | None] = mapped_column(sa.String(120), default=None)
    priority: Mapped[int] = mapped_column(default=0)  # higher first
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)  # attempts counted against the limit
    next_phone_id: Mapped[int | None] = mapped_column(default=None)  # chosen by the retry policy
    is_callback: Mapped[bool] = mapped_column(default=False)
    callback_agent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    last_outcome: Mapped[CallOutcome | None] = mapped_column(_enum(CallOutcome), default=None)
    last_abandoned_at: Mapped[datetime | None] = mapped_column(default=None)
    final_disposition: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    import_batch_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("import_batches.id", ondelete="SET NULL"), default=None
    )
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)  # unmapped import columns

    campaign: Mapped[Campaign] = relationship(back_populates="leads")
    phones: Mapped[list[Phone]] = relationship(
        back_populates="lead", order_by="Phone.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "dedupe_key", name="uq_lead_campaign_dedupe"),
        sa.Index("ix_leads_ready", "campaign_id", "status", "next_attempt_at"),
        sa.CheckConstraint("attempts >= 0", name="attempts_nonneg"),
    )


class Phone(Base):
    __tablename__ = "phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: uq_phone_lead_e164 leads with it.
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    e164: Mapped[str] = mapped_column(sa.String(20), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default="mobile")  # mobile, landline
    position: Mapped[int] = mapped_column(default=0)  # dialing order
    attempts: Mapped[int] = mapped_column(default=0)
    last_outcome: Mapped[CallOutcome | None] = mapped_column(_enum(CallOutcome), default=None)
    valid: Mapped[bool] = mapped_column(default=True)
    whatsapp_capable: Mapped[bool | None] = mapped_column(default=None)  # None: unknown

    lead: Mapped[Lead] = relationship(back_populates="phones")

    __table_args__ = (sa.UniqueConstraint("lead_id", "e164", name="uq_phone_lead_e164"),)


class LeadClaim(Base):
    """One active claim per lead (primary key). A dead dialer's claims expire."""

    __tablename__ = "lead_claims"

    lead_id: Mapped[int] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    owner: Mapped[str] = mapped_column(sa.String(80))  # dialer instance id
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    attempt_id: Mapped[int | None] = mapped_column(default=None)


class LeadEvent(Base):
    """Every decision about a lead (excluded, skipped, rescheduled...) with its reason."""

    __tablename__ = "lead_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(sa.String(40))  # excluded, skipped, scheduled, ...
    reason: Mapped[str] = mapped_column(sa.String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --------------------------------------------------------------------------- calls


class CallAttempt(Base):
    __tablename__ = "call_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(sa.String(64), default=new_uuid)  # = AMI ChannelId
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    phone_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("phones.id", ondelete="SET NULL"), default=None
    )
    number: Mapped[str] = mapped_column(sa.String(20))  # E.164 dialed
    attempt_number: Mapped[int]
    counts_against_limit: Mapped[bool] = mapped_column(default=True)
    # The attempt honours a customer-requested callback (an agent's or a WhatsApp reply's): it
    # is outside max_attempts and the per-phone quota (``max_callbacks`` bounds it instead).
    is_callback: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    mode: Mapped[DialMode] = mapped_column(_enum(DialMode))
    dialer_id: Mapped[str] = mapped_column(sa.String(80), default="")
    server: Mapped[str] = mapped_column(sa.String(64), default="")
    # AMI identifiers
    action_id: Mapped[str | None] = mapped_column(sa.String(80), default=None)
    channel: Mapped[str | None] = mapped_column(sa.String(120), default=None)
    other_channel_id: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    linkedid: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    bridge_id: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    # Times
    created_at: Mapped[datetime]  # the row is written before the Originate is sent
    dialed_at: Mapped[datetime | None] = mapped_column(default=None)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    connected_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # Result
    outcome: Mapped[CallOutcome | None] = mapped_column(_enum(CallOutcome), default=None)
    originate_reason: Mapped[int | None] = mapped_column(default=None)
    hangup_cause: Mapped[int | None] = mapped_column(default=None)
    hangup_cause_txt: Mapped[str | None] = mapped_column(sa.String(80), default=None)
    amd_status: Mapped[str | None] = mapped_column(sa.String(20), default=None)
    amd_cause: Mapped[str | None] = mapped_column(sa.String(80), default=None)
    detail: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    agent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )

    __table_args__ = (
        sa.UniqueConstraint("lead_id", "attempt_number", name="uq_attempt_lead_number"),
        sa.UniqueConstraint("uuid", name="uq_attempt_channel_id"),
        sa.Index("ix_attempts_campaign_created", "campaign_id", "created_at"),
        sa.CheckConstraint("attempt_number >= 1", name="attempt_number_pos"),
    )


class Recording(Base):
    """One call recording: a stereo WAV per connected attempt (docs/recording.md)."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(
        sa.ForeignKey("call_attempts.id", ondelete="CASCADE"), unique=True
    )
    campaign_id: Mapped[int] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_s: Mapped[float | None] = mapped_column(default=None)
    size_bytes: Mapped[int | None] = mapped_column(default=None)
    sha256: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    channels: Mapped[int] = mapped_column(default=2)
    pbx_path: Mapped[str] = mapped_column(sa.String(500))  # as the PBX writes it (.raw)
    path: Mapped[str] = mapped_column(sa.String(500))  # where Marcador keeps the WAV
    retention_until: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[RecordingStatus] = mapped_column(
        _enum(RecordingStatus), default=RecordingStatus.RECORDING, index=True
    )
    failure_reason: Mapped[str | None] = mapped_column(sa.String(200), default=None)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)  # the customer objected
    stopped_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_reason: Mapped[str | None] = mapped_column(sa.String(80), default=None)


class Disposition(Base):
    __tablename__ = "dispositions"

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(
        sa.ForeignKey("call_attempts.id", ondelete="CASCADE"), unique=True
    )
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    code: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.String(120), default=None)
    opportunity_area: Mapped[str | None] = mapped_column(sa.String(80), default=None)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    callback_at: Mapped[datetime | None] = mapped_column(default=None)
    callback_own_agent: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class Appointment(TimestampMixin, Base):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    disposition_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("dispositions.id", ondelete="SET NULL"), default=None
    )
    scheduled_for: Mapped[datetime]
    branch: Mapped[str] = mapped_column(sa.String(80))
    service: Mapped[str] = mapped_column(sa.String(120))
    status: Mapped[AppointmentStatus] = mapped_column(
        _enum(AppointmentStatus), default=AppointmentStatus.BOOKED
    )
    feedback_at: Mapped[datetime | None] = mapped_column(default=None)
    external_ref: Mapped[str | None] = mapped_column(sa.String(64), default=None)


class Pqrs(TimestampMixin, Base):
    __tablename__ = "pqrs"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="SET NULL"), default=None, index=True
    )
    person_key: Mapped[str] = mapped_column(sa.String(64), index=True)
    disposition_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("dispositions.id", ondelete="SET NULL"), default=None
    )
    type: Mapped[PqrsType] = mapped_column(_enum(PqrsType))
    description: Mapped[str] = mapped_column(sa.Text)
    deadline: Mapped[date]  # 15 business days
    status: Mapped[PqrsStatus] = mapped_column(_enum(PqrsStatus), default=PqrsStatus.OPEN)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution: Mapped[str] = mapped_column(sa.Text, default="")


# --------------------------------------------------------------------------- contact rules


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    # National id or E.164. No index of its own: uq_consent_person_channel leads with it.
    person_key: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    purpose: Mapped[str] = mapped_column(sa.String(32), default="marketing")
    granted: Mapped[bool] = mapped_column(default=True)
    proof: Mapped[str] = mapped_column(sa.String(300))  # where/how consent was obtained
    granted_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(120), default=None)

    __table_args__ = (
        sa.UniqueConstraint("person_key", "channel", "purpose", name="uq_consent_person_channel"),
    )


class DncEntry(Base):
    __tablename__ = "dnc_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    e164: Mapped[str] = mapped_column(sa.String(20))
    source: Mapped[DncSource] = mapped_column(_enum(DncSource))
    reason: Mapped[str] = mapped_column(sa.String(120), default="")
    added_at: Mapped[datetime]
    added_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (sa.UniqueConstraint("e164", "source", name="uq_dnc_e164_source"),)


class ContactLog(Base):
    """Every contact with a person on any channel (Ley 2300 frequency caps)."""

    __tablename__ = "contact_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_key: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    at: Mapped[datetime]
    direct_contact: Mapped[bool] = mapped_column(default=False)
    campaign_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="SET NULL"), default=None
    )
    ref: Mapped[str] = mapped_column(sa.String(64), default="")  # attempt uuid / wamid

    __table_args__ = (sa.Index("ix_contact_person_at", "person_key", "at"),)


# --------------------------------------------------------------------------- WhatsApp


class WhatsAppMessage(TimestampMixin, Base):
    __tablename__ = "whatsapp_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Exactly once per lead and campaign for fallbacks: "fallback:<campaign>:<lead>".
    idempotency_key: Mapped[str] = mapped_column(sa.String(120), unique=True)
    direction: Mapped[str] = mapped_column(sa.String(8), default="out")  # out / in
    lead_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("leads.id", ondelete="SET NULL"), default=None, index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="SET NULL"), default=None
    )
    phone: Mapped[str] = mapped_column(sa.String(20))
    template: Mapped[str] = mapped_column(sa.String(120), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    text: Mapped[str] = mapped_column(sa.Text, default="")  # inbound text
    wamid: Mapped[str | None] = mapped_column(sa.String(160), default=None, unique=True)
    status: Mapped[WhatsAppStatus] = mapped_column(
        _enum(WhatsAppStatus), default=WhatsAppStatus.QUEUED
    )
    send_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    error_code: Mapped[int | None] = mapped_column(default=None)
    error_detail: Mapped[str | None] = mapped_column(sa.String(300), default=None)
    # The worker that holds the row in SENDING, and until when (a dead worker's row is
    # reconciled through webhooks, then requeued: dialer/whatsapp/worker.py).
    claimed_by: Mapped[str | None] = mapped_column(sa.String(80), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (sa.Index("ix_whatsapp_due", "status", "next_attempt_at"),)


class WhatsAppHold(Base):
    """A stop on WhatsApp sending: the whole account (blocked) or one campaign (template).

    Active while ``released_at`` is null. Set by the worker's error policy, released by a
    person (``marcador whatsapp resume``); messages wait (scheduled), nothing is dropped.
    """

    __tablename__ = "whatsapp_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(16))  # account / campaign
    campaign_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="CASCADE"), default=None
    )
    code: Mapped[int | None] = mapped_column(default=None)  # Cloud API error code
    reason: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime]
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    released_by: Mapped[str | None] = mapped_column(sa.String(80), default=None)


class WhatsAppStatusEvent(Base):
    __tablename__ = "whatsapp_status_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("whatsapp_messages.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String(20))
    at: Mapped[datetime]
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --------------------------------------------------------------------------- people & access


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(120), default="")
    role: Mapped[Role] = mapped_column(_enum(Role))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    extension: Mapped[str | None] = mapped_column(sa.String(32), default=None)  # PJSIP endpoint
    active: Mapped[bool] = mapped_column(default=True)


class UserCampaign(Base):
    """Which campaigns a supervisor (or agent) works on."""

    __tablename__ = "user_campaigns"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    campaign_id: Mapped[int] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)  # shown, not secret
    key_hash: Mapped[str] = mapped_column(sa.String(200))
    scopes: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"scopes": [...]}
    created_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AgentStateLog(Base):
    """Agent state intervals, for occupancy, pause-by-code and productivity reports."""

    __tablename__ = "agent_state_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("campaigns.id", ondelete="SET NULL"), default=None
    )
    state: Mapped[AgentState] = mapped_column(_enum(AgentState))
    pause_code: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (sa.Index("ix_agent_state_user_start", "user_id", "started_at"),)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(sa.String(80))  # "user:3", "apikey:ab12", "cli"
    action: Mapped[str] = mapped_column(sa.String(80))
    target_type: Mapped[str] = mapped_column(sa.String(40), default="")
    target_id: Mapped[str] = mapped_column(sa.String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(sa.String(64), default=None)


class TransferNumber(Base):
    """An external number agents may transfer calls to (the admin's allow list, issue 15)."""

    __tablename__ = "transfer_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    e164: Mapped[str] = mapped_column(sa.String(20), unique=True)
    label: Mapped[str] = mapped_column(sa.String(80))
    added_at: Mapped[datetime]
    added_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


# --------------------------------------------------------------------------- webhooks


class WebhookSubscription(TimestampMixin, Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(500))
    events: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"events": [...]}
    secret: Mapped[str] = mapped_column(sa.String(120))  # HMAC-SHA256 signing key
    active: Mapped[bool] = mapped_column(default=True)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(sa.String(64))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending/done/failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(sa.String(300), default=None)
    created_at: Mapped[datetime]

    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_delivery_sub_event"),
        sa.Index("ix_delivery_pending", "status", "next_attempt_at"),
    )


# --------------------------------------------------------------------------- reports


class ReportRun(Base):
    """A generated indicator report (scheduled monthly, or on request), downloadable later.

    ``schedule_key`` ("cron:<fire time>") is unique, so several processes running the
    scheduler generate each scheduled report once.
    """

    __tablename__ = "report_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(40))  # "2026-10"
    period_start: Mapped[date]
    period_end: Mapped[date]  # exclusive
    timezone: Mapped[str] = mapped_column(sa.String(64))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    trigger: Mapped[str] = mapped_column(sa.String(16))  # schedule / api / cli
    requested_by: Mapped[str] = mapped_column(sa.String(80), default="")
    schedule_key: Mapped[str | None] = mapped_column(sa.String(80), default=None, unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default="running")  # running/done/failed
    created_at: Mapped[datetime]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(sa.String(300), default=None)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    xlsx: Mapped[bytes | None] = mapped_column(sa.LargeBinary, default=None, deferred=True)
    html: Mapped[str | None] = mapped_column(sa.Text, default=None, deferred=True)

    __table_args__ = (sa.Index("ix_report_runs_created", "created_at"),)
