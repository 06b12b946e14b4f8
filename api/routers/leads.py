"""Leads: filtered queries, one lead with its full history, and "why is it (not) dialed"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.access import lead_filter, load_lead
from api.auth import Scope
from api.deps import Ctx, Scoped
from api.errors import ApiError
from api.screen import HistoryOut, LeadOut, lead_history, lead_out
from api.types import PathId, QueryId
from dialer.db.models import Lead, Phone
from dialer.domain.outcomes import LeadStatus
from dialer.importing.cleaning import CleanPhone, normalize_phone
from dialer.store import EngineStore

router = APIRouter(prefix="/leads", tags=["leads"])


class LeadPage(BaseModel):
    items: list[LeadOut]
    total: int
    limit: int
    offset: int


class LeadDetail(BaseModel):
    lead: LeadOut
    history: HistoryOut


class ExplainOut(BaseModel):
    lead_id: int
    ready: bool
    ready_at: datetime | None
    summary_en: str
    summary_es: str
    rules: list[dict[str, Any]]


def e164_or_422(raw: str) -> str:
    parsed = normalize_phone(raw)
    if not isinstance(parsed, CleanPhone):
        raise ApiError(
            422, "invalid_phone", "not a valid Colombian phone number", {"field": "phone"}
        )
    return parsed.e164


@router.get("", summary="Leads with filters", dependencies=[Scoped(Scope.LEADS_READ)])
async def list_leads(
    ctx: Ctx,
    campaign_id: QueryId = None,
    status: LeadStatus | None = None,
    q: Annotated[
        str | None, Query(max_length=100, description="Name, plate, national id or external id")
    ] = None,
    phone: Annotated[str | None, Query(max_length=40)] = None,
    updated_since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> LeadPage:
    conds: list[Any] = []
    visible = await lead_filter(ctx)
    if visible is not None:
        conds.append(visible)
    if campaign_id is not None:
        conds.append(Lead.campaign_id == campaign_id)
    if status is not None:
        conds.append(Lead.status == status)
    if q:
        text = q.strip()
        like = f"%{text.lower()}%"
        conds.append(
            sa.or_(
                sa.func.lower(Lead.customer_name).like(like),
                Lead.plate == text.upper(),
                Lead.national_id == text,
                Lead.external_id == text,
            )
        )
    if phone:
        number = e164_or_422(phone)
        conds.append(Lead.id.in_(sa.select(Phone.lead_id).where(Phone.e164 == number)))
    if updated_since is not None:
        if updated_since.tzinfo is None:
            raise ApiError(422, "naive_datetime", "updated_since must include a time zone offset")
        conds.append(Lead.updated_at >= updated_since)
    total = await ctx.db.scalar(sa.select(sa.func.count()).select_from(Lead).where(*conds))
    rows = await ctx.db.scalars(
        sa.select(Lead)
        .where(*conds)
        .order_by(Lead.id)
        .limit(limit)
        .offset(offset)
        .options(sa.orm.selectinload(Lead.phones))
    )
    masked = ctx.principal.is_agent
    return LeadPage(
        items=[lead_out(lead, masked=masked) for lead in rows],
        total=int(total or 0),
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{lead_id}",
    summary="One lead with its attempts, dispositions, WhatsApp messages and events",
    dependencies=[Scoped(Scope.LEADS_READ)],
)
async def get_lead(lead_id: PathId, ctx: Ctx) -> LeadDetail:
    lead = await load_lead(ctx, lead_id)
    masked = ctx.principal.is_agent
    return LeadDetail(
        lead=lead_out(lead, masked=masked),
        history=await lead_history(ctx.db, lead_id, masked=masked),
    )


@router.get(
    "/{lead_id}/explain",
    summary="Why this lead is (not) being dialed right now",
    dependencies=[Scoped(Scope.LEADS_READ)],
)
async def explain_lead(lead_id: PathId, ctx: Ctx) -> ExplainOut:
    await load_lead(ctx, lead_id)
    readiness = await EngineStore(ctx.sessionmaker).readiness(lead_id, ctx.now())
    return ExplainOut(
        lead_id=lead_id,
        ready=readiness.ready,
        ready_at=readiness.ready_at,
        summary_en=readiness.summary_en(),
        summary_es=readiness.summary_es(),
        rules=[r.to_dict() for r in readiness.rules],
    )
