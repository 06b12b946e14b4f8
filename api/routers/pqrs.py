"""PQRS records (complaints raised by agents; 15 business days to answer)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Scope
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.screen import PqrsOut, pqrs_out, pqrs_recordings
from api.types import PathId, QueryId
from dialer.db.models import Lead, Pqrs, PqrsStatus, PqrsType

router = APIRouter(prefix="/pqrs", tags=["pqrs"])


class PqrsPage(BaseModel):
    items: list[PqrsOut]
    total: int
    limit: int
    offset: int


class PqrsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: PqrsStatus | None = None
    type: PqrsType | None = None
    resolution: str | None = Field(default=None, max_length=10_000)


async def _scope(ctx: RequestContext) -> list[Any]:
    scope = await ctx.campaign_scope()
    if scope is None:
        return []
    return [Pqrs.lead_id.in_(sa.select(Lead.id).where(Lead.campaign_id.in_(scope)))]


@router.get("", summary="PQRS records", dependencies=[Scoped(Scope.PQRS_READ)])
async def list_pqrs(
    ctx: Ctx,
    status: PqrsStatus | None = None,
    overdue: Annotated[bool, Query(description="Only open records past their deadline")] = False,
    lead_id: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PqrsPage:
    conds = await _scope(ctx)
    if status is not None:
        conds.append(Pqrs.status == status)
    if lead_id is not None:
        conds.append(Pqrs.lead_id == lead_id)
    if overdue:
        conds.append(Pqrs.status != PqrsStatus.CLOSED)
        conds.append(Pqrs.deadline < ctx.now().date())
    total = await ctx.db.scalar(sa.select(sa.func.count()).select_from(Pqrs).where(*conds))
    rows = await ctx.db.scalars(
        sa.select(Pqrs).where(*conds).order_by(Pqrs.deadline, Pqrs.id).limit(limit).offset(offset)
    )
    items = list(rows)
    recs = await pqrs_recordings(ctx.db, items)
    return PqrsPage(
        items=[pqrs_out(p, recs) for p in items], total=int(total or 0), limit=limit, offset=offset
    )


async def _load(ctx: RequestContext, pqrs_id: int) -> Pqrs:
    row = await ctx.db.scalar(sa.select(Pqrs).where(Pqrs.id == pqrs_id, *await _scope(ctx)))
    if row is None:
        raise not_found("PQRS record", pqrs_id)
    return row


@router.get("/{pqrs_id}", summary="One PQRS record", dependencies=[Scoped(Scope.PQRS_READ)])
async def get_pqrs(pqrs_id: PathId, ctx: Ctx) -> PqrsOut:
    row = await _load(ctx, pqrs_id)
    return pqrs_out(row, await pqrs_recordings(ctx.db, [row]))


@router.patch(
    "/{pqrs_id}",
    summary="Update status / resolution (closing needs a resolution)",
    dependencies=[Scoped(Scope.PQRS_WRITE)],
)
async def update_pqrs(pqrs_id: PathId, body: PqrsUpdate, ctx: Ctx) -> PqrsOut:
    row = await _load(ctx, pqrs_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise ApiError(422, "empty_update", "nothing to change")
    before = row.status
    for key, value in changes.items():
        setattr(row, key, value)
    if row.status is PqrsStatus.CLOSED:
        if not row.resolution.strip():
            raise ApiError(422, "resolution_required", "closing a PQRS record needs a resolution")
        if before is not PqrsStatus.CLOSED:
            row.closed_at = ctx.now()
    else:
        row.closed_at = None
    ctx.audit(
        "pqrs.update",
        "pqrs",
        row.id,
        fields=sorted(changes),
        before=before.value,
        after=row.status.value,
    )
    await ctx.commit()
    await ctx.db.refresh(row)
    return pqrs_out(row)
