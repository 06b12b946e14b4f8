"""Appointments booked by agents; the dealer system reports them kept or no-show."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Scope
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.screen import AppointmentOut, appointment_out
from api.types import PathId, QueryId
from dialer.db.models import Appointment, AppointmentStatus, Lead

router = APIRouter(prefix="/appointments", tags=["appointments"])


class AppointmentPage(BaseModel):
    items: list[AppointmentOut]
    total: int
    limit: int
    offset: int


class AppointmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AppointmentStatus | None = Field(
        default=None, description="kept / no_show (dealer feedback), cancelled, booked"
    )
    scheduled_for: datetime | None = None
    external_ref: str | None = Field(default=None, max_length=64)


async def _scope(ctx: RequestContext) -> list[Any]:
    scope = await ctx.campaign_scope()
    if scope is None:
        return []
    return [Appointment.lead_id.in_(sa.select(Lead.id).where(Lead.campaign_id.in_(scope)))]


@router.get("", summary="Appointments", dependencies=[Scoped(Scope.APPOINTMENTS_READ)])
async def list_appointments(
    ctx: Ctx,
    campaign_id: QueryId = None,
    status: AppointmentStatus | None = None,
    branch: Annotated[str | None, Query(max_length=80)] = None,
    scheduled_from: datetime | None = None,
    scheduled_to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AppointmentPage:
    conds = await _scope(ctx)
    if campaign_id is not None:
        conds.append(
            Appointment.lead_id.in_(sa.select(Lead.id).where(Lead.campaign_id == campaign_id))
        )
    if status is not None:
        conds.append(Appointment.status == status)
    if branch:
        conds.append(Appointment.branch == branch)
    for value, op in ((scheduled_from, ">="), (scheduled_to, "<")):
        if value is None:
            continue
        if value.tzinfo is None:
            raise ApiError(422, "naive_datetime", "dates must include a time zone offset")
        conds.append(
            Appointment.scheduled_for >= value if op == ">=" else Appointment.scheduled_for < value
        )
    total = await ctx.db.scalar(sa.select(sa.func.count()).select_from(Appointment).where(*conds))
    rows = await ctx.db.scalars(
        sa.select(Appointment)
        .where(*conds)
        .order_by(Appointment.scheduled_for, Appointment.id)
        .limit(limit)
        .offset(offset)
    )
    return AppointmentPage(
        items=[appointment_out(a) for a in rows], total=int(total or 0), limit=limit, offset=offset
    )


async def _load(ctx: RequestContext, appointment_id: int) -> Appointment:
    conds = await _scope(ctx)
    row = await ctx.db.scalar(
        sa.select(Appointment).where(Appointment.id == appointment_id, *conds)
    )
    if row is None:
        raise not_found("appointment", appointment_id)
    return row


@router.get(
    "/{appointment_id}", summary="One appointment", dependencies=[Scoped(Scope.APPOINTMENTS_READ)]
)
async def get_appointment(appointment_id: PathId, ctx: Ctx) -> AppointmentOut:
    return appointment_out(await _load(ctx, appointment_id))


@router.patch(
    "/{appointment_id}",
    summary="Record kept / no-show (dealer feedback), reschedule or cancel",
    dependencies=[Scoped(Scope.APPOINTMENTS_WRITE)],
)
async def update_appointment(
    appointment_id: PathId, body: AppointmentUpdate, ctx: Ctx
) -> AppointmentOut:
    row = await _load(ctx, appointment_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise ApiError(422, "empty_update", "nothing to change")
    if "scheduled_for" in changes and changes["scheduled_for"].tzinfo is None:
        raise ApiError(422, "naive_datetime", "scheduled_for must include a time zone offset")
    before = row.status
    for key, value in changes.items():
        setattr(row, key, value)
    if "status" in changes and changes["status"] in (
        AppointmentStatus.KEPT,
        AppointmentStatus.NO_SHOW,
    ):
        row.feedback_at = ctx.now()
    ctx.audit(
        "appointment.update",
        "appointment",
        row.id,
        fields=sorted(changes),
        before=before.value,
        after=row.status.value,
    )
    await ctx.commit()
    await ctx.db.refresh(row)
    return appointment_out(row)
