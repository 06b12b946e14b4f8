"""Call attempts (agents see only their own calls)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.access import attempt_filter
from api.auth import Scope
from api.deps import Ctx, Scoped
from api.errors import ApiError, not_found
from api.screen import AttemptOut, attempt_out, playable_recordings
from api.types import QueryId
from dialer.db.models import CallAttempt
from dialer.domain.outcomes import CallOutcome

router = APIRouter(prefix="/calls", tags=["calls"])


class CallPage(BaseModel):
    items: list[AttemptOut]
    total: int
    limit: int
    offset: int


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ApiError(422, "naive_datetime", f"{name} must include a time zone offset")
    return value


@router.get("", summary="Call attempts with filters", dependencies=[Scoped(Scope.CALLS_READ)])
async def list_calls(
    ctx: Ctx,
    campaign_id: QueryId = None,
    lead_id: QueryId = None,
    agent_id: QueryId = None,
    outcome: CallOutcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CallPage:
    conds: list[Any] = []
    visible = await attempt_filter(ctx)
    if visible is not None:
        conds.append(visible)
    if campaign_id is not None:
        conds.append(CallAttempt.campaign_id == campaign_id)
    if lead_id is not None:
        conds.append(CallAttempt.lead_id == lead_id)
    if agent_id is not None:
        conds.append(CallAttempt.agent_id == agent_id)
    if outcome is not None:
        conds.append(CallAttempt.outcome == outcome)
    if (start := _aware(since, "since")) is not None:
        conds.append(CallAttempt.created_at >= start)
    if (end := _aware(until, "until")) is not None:
        conds.append(CallAttempt.created_at < end)
    total = await ctx.db.scalar(sa.select(sa.func.count()).select_from(CallAttempt).where(*conds))
    rows = await ctx.db.scalars(
        sa.select(CallAttempt)
        .where(*conds)
        .order_by(CallAttempt.id.desc())
        .limit(limit)
        .offset(offset)
    )
    masked = ctx.principal.is_agent
    attempts = list(rows)
    recs = {} if masked else await playable_recordings(ctx.db, [a.id for a in attempts])
    return CallPage(
        items=[attempt_out(a, masked=masked, recordings=recs) for a in attempts],
        total=int(total or 0),
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{attempt}",
    summary="One call attempt, by uuid (the AMI ChannelId) or numeric id",
    dependencies=[Scoped(Scope.CALLS_READ)],
)
async def get_call(attempt: Annotated[str, Path(max_length=64)], ctx: Ctx) -> AttemptOut:
    conds: list[Any] = []
    visible = await attempt_filter(ctx)
    if visible is not None:
        conds.append(visible)
    if attempt.isdigit() and len(attempt) < 12:
        conds.append(sa.or_(CallAttempt.id == int(attempt), CallAttempt.uuid == attempt))
    else:
        conds.append(CallAttempt.uuid == attempt)
    row = await ctx.db.scalar(sa.select(CallAttempt).where(*conds))
    if row is None:
        raise not_found("call", attempt)
    masked = ctx.principal.is_agent
    recs = {} if masked else await playable_recordings(ctx.db, [row.id])
    return attempt_out(row, masked=masked, recordings=recs)
