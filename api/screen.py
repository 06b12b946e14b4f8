"""Lead views: the full history of a lead and the agent's screen-pop data.

The campaign script (guion) uses ``{placeholders}`` filled with the customer's data
(:mod:`dialer.domain.script`: the names, and why only those are replaced).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from api.access import mask_national_id, mask_phone
from dialer.db.models import (
    Appointment,
    CallAttempt,
    Campaign,
    Disposition,
    Lead,
    LeadEvent,
    Pqrs,
    Recording,
    RecordingStatus,
    WhatsAppMessage,
)


class Named(Protocol):
    """Who fills ``{asesor}``: a ``User`` row or the cached one (api.authcache)."""

    @property
    def full_name(self) -> str: ...

    @property
    def username(self) -> str: ...


def script_values(lead: Lead, campaign: Campaign, agent: Named | None) -> dict[str, str]:
    name = (lead.customer_name or "").strip()
    vehicle = " ".join(x for x in (lead.brand, lead.model) if x)
    return {
        "nombre": name,
        "primer_nombre": name.split(" ")[0] if name else "",
        "cliente": name,
        "placa": lead.plate or "",
        "marca": lead.brand or "",
        "modelo": lead.model or "",
        "vehiculo": vehicle,
        "anio": str(lead.vehicle_year or ""),
        "sede": lead.branch or "",
        "asesor": (agent.full_name or agent.username) if agent else "",
        "campana": campaign.name,
        "telefonos_concesionario": campaign.dealer_phones,
    }


class PhoneOut(BaseModel):
    id: int
    number: str
    kind: str
    position: int
    attempts: int
    valid: bool
    last_outcome: str | None


class LeadOut(BaseModel):
    id: int
    campaign_id: int
    external_id: str | None
    customer_name: str
    national_id: str | None
    id_type: str
    email: str | None
    plate: str | None
    brand: str | None
    model: str | None
    vehicle_year: int | None
    branch: str | None
    last_visit_date: date | None
    event_date: date | None
    timezone: str | None
    status: str
    status_reason: str | None
    priority: int
    next_attempt_at: datetime | None
    attempts: int
    is_callback: bool
    callback_agent_id: int | None
    last_outcome: str | None
    final_disposition: str | None
    extra: dict[str, Any]
    phones: list[PhoneOut]
    created_at: datetime
    updated_at: datetime


class AttemptOut(BaseModel):
    id: int
    uuid: str
    lead_id: int
    campaign_id: int
    attempt_number: int
    number: str
    mode: str
    server: str
    created_at: datetime
    dialed_at: datetime | None
    answered_at: datetime | None
    connected_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    hangup_cause: int | None
    amd_status: str | None
    agent_id: int | None
    counts_against_limit: bool
    recording_id: int | None = None
    recording_url: str | None = None  # playback (recordings:read); never shown to agents


class DispositionRowOut(BaseModel):
    id: int
    attempt_id: int
    agent_id: int | None
    code: str
    reason: str | None
    opportunity_area: str | None
    notes: str
    callback_at: datetime | None
    created_at: datetime


class MessageOut(BaseModel):
    id: int
    direction: str
    template: str
    status: str
    text: str
    error_code: int | None
    created_at: datetime
    updated_at: datetime


class LeadEventOut(BaseModel):
    id: int
    at: datetime
    kind: str
    reason: str
    detail: dict[str, Any]


class AppointmentOut(BaseModel):
    id: int
    lead_id: int
    disposition_id: int | None
    scheduled_for: datetime
    branch: str
    service: str
    status: str
    feedback_at: datetime | None
    external_ref: str | None
    created_at: datetime


class PqrsOut(BaseModel):
    id: int
    lead_id: int | None
    disposition_id: int | None
    type: str
    description: str
    deadline: date
    status: str
    closed_at: datetime | None
    resolution: str
    created_at: datetime
    updated_at: datetime
    recording_id: int | None = None  # the call the PQRS was created from
    recording_url: str | None = None


class HistoryOut(BaseModel):
    attempts: list[AttemptOut]
    dispositions: list[DispositionRowOut]
    whatsapp_messages: list[MessageOut]
    events: list[LeadEventOut]
    appointments: list[AppointmentOut]
    pqrs: list[PqrsOut]


def _v(value: Any) -> Any:
    return getattr(value, "value", value)


def lead_out(lead: Lead, *, masked: bool) -> LeadOut:
    return LeadOut(
        id=lead.id,
        campaign_id=lead.campaign_id,
        external_id=lead.external_id,
        customer_name=lead.customer_name,
        national_id=mask_national_id(lead.national_id) if masked else lead.national_id,
        id_type=lead.id_type,
        email=lead.email,
        plate=lead.plate,
        brand=lead.brand,
        model=lead.model,
        vehicle_year=lead.vehicle_year,
        branch=lead.branch,
        last_visit_date=lead.last_visit_date,
        event_date=lead.event_date,
        timezone=lead.timezone,
        status=_v(lead.status),
        status_reason=lead.status_reason,
        priority=lead.priority,
        next_attempt_at=lead.next_attempt_at,
        attempts=lead.attempts,
        is_callback=lead.is_callback,
        callback_agent_id=lead.callback_agent_id,
        last_outcome=_v(lead.last_outcome),
        final_disposition=lead.final_disposition,
        extra=dict(lead.extra or {}),
        phones=[
            PhoneOut(
                id=p.id,
                number=mask_phone(p.e164) if masked else p.e164,
                kind=p.kind,
                position=p.position,
                attempts=p.attempts,
                valid=p.valid,
                last_outcome=_v(p.last_outcome),
            )
            for p in lead.phones
        ],
        created_at=lead.created_at,
        updated_at=lead.updated_at,
    )


def recording_link(rec_id: int | None) -> str | None:
    return None if rec_id is None else f"/api/v1/recordings/{rec_id}/audio"


async def playable_recordings(s: AsyncSession, attempt_ids: list[int]) -> dict[int, int]:
    """attempt id -> id of its playable recording (issue 16), for links in call lists."""
    if not attempt_ids:
        return {}
    rows = await s.execute(
        sa.select(Recording.attempt_id, Recording.id).where(
            Recording.attempt_id.in_(attempt_ids), Recording.status == RecordingStatus.OK
        )
    )
    return {int(a): int(r) for a, r in rows.all()}


async def pqrs_recordings(s: AsyncSession, pqrs: list[Pqrs]) -> dict[int, int]:
    """PQRS id -> playable recording of the call it was created from."""
    by_disposition = {p.disposition_id: p.id for p in pqrs if p.disposition_id is not None}
    if not by_disposition:
        return {}
    rows = await s.execute(
        sa.select(Disposition.id, Recording.id)
        .join(Recording, Recording.attempt_id == Disposition.attempt_id)
        .where(Disposition.id.in_(list(by_disposition)), Recording.status == RecordingStatus.OK)
    )
    return {by_disposition[d]: int(r) for d, r in rows.all()}


def attempt_out(
    a: CallAttempt, *, masked: bool, recordings: dict[int, int] | None = None
) -> AttemptOut:
    rec_id = None if masked or recordings is None else recordings.get(a.id)
    return AttemptOut(
        id=a.id,
        uuid=a.uuid,
        lead_id=a.lead_id,
        campaign_id=a.campaign_id,
        attempt_number=a.attempt_number,
        number=mask_phone(a.number) if masked else a.number,
        mode=_v(a.mode),
        server=a.server,
        created_at=a.created_at,
        dialed_at=a.dialed_at,
        answered_at=a.answered_at,
        connected_at=a.connected_at,
        ended_at=a.ended_at,
        outcome=_v(a.outcome),
        hangup_cause=a.hangup_cause,
        amd_status=a.amd_status,
        agent_id=a.agent_id,
        counts_against_limit=a.counts_against_limit,
        recording_id=rec_id,
        recording_url=recording_link(rec_id),
    )


def appointment_out(a: Appointment) -> AppointmentOut:
    return AppointmentOut(
        id=a.id,
        lead_id=a.lead_id,
        disposition_id=a.disposition_id,
        scheduled_for=a.scheduled_for,
        branch=a.branch,
        service=a.service,
        status=_v(a.status),
        feedback_at=a.feedback_at,
        external_ref=a.external_ref,
        created_at=a.created_at,
    )


def pqrs_out(p: Pqrs, recordings: dict[int, int] | None = None) -> PqrsOut:
    rec_id = None if recordings is None else recordings.get(p.id)
    return PqrsOut(
        recording_id=rec_id,
        recording_url=recording_link(rec_id),
        id=p.id,
        lead_id=p.lead_id,
        disposition_id=p.disposition_id,
        type=_v(p.type),
        description=p.description,
        deadline=p.deadline,
        status=_v(p.status),
        closed_at=p.closed_at,
        resolution=p.resolution,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


async def lead_history(s: AsyncSession, lead_id: int, *, masked: bool) -> HistoryOut:
    attempts = list(
        await s.scalars(
            sa.select(CallAttempt).where(CallAttempt.lead_id == lead_id).order_by(CallAttempt.id)
        )
    )
    dispositions = await s.scalars(
        sa.select(Disposition).where(Disposition.lead_id == lead_id).order_by(Disposition.id)
    )
    messages = await s.scalars(
        sa.select(WhatsAppMessage)
        .where(WhatsAppMessage.lead_id == lead_id)
        .order_by(WhatsAppMessage.id)
    )
    events = await s.scalars(
        sa.select(LeadEvent).where(LeadEvent.lead_id == lead_id).order_by(LeadEvent.id)
    )
    appointments = await s.scalars(
        sa.select(Appointment).where(Appointment.lead_id == lead_id).order_by(Appointment.id)
    )
    pqrs = list(await s.scalars(sa.select(Pqrs).where(Pqrs.lead_id == lead_id).order_by(Pqrs.id)))
    recs = {} if masked else await playable_recordings(s, [a.id for a in attempts])
    pqrs_recs = {} if masked else await pqrs_recordings(s, pqrs)
    return HistoryOut(
        attempts=[attempt_out(a, masked=masked, recordings=recs) for a in attempts],
        dispositions=[
            DispositionRowOut(
                id=d.id,
                attempt_id=d.attempt_id,
                agent_id=d.agent_id,
                code=d.code,
                reason=d.reason,
                opportunity_area=d.opportunity_area,
                notes=d.notes,
                callback_at=d.callback_at,
                created_at=d.created_at,
            )
            for d in dispositions
        ],
        whatsapp_messages=[
            MessageOut(
                id=m.id,
                direction=m.direction,
                template=m.template,
                status=_v(m.status),
                text=m.text,
                error_code=m.error_code,
                created_at=m.created_at,
                updated_at=m.updated_at,
            )
            for m in messages
        ],
        events=[
            LeadEventOut(id=e.id, at=e.at, kind=e.kind, reason=e.reason, detail=dict(e.detail))
            for e in events
        ],
        appointments=[appointment_out(a) for a in appointments],
        pqrs=[pqrs_out(p, pqrs_recs) for p in pqrs],
    )
