"""The audit log (admin): who did what, when, from where. It never holds secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import Scope
from api.deps import Ctx, Scoped
from api.types import QueryId
from dialer.db.models import AuditLog

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    ip: str | None


@router.get("", summary="Audit log, newest first", dependencies=[Scoped(Scope.AUDIT_READ)])
async def list_audit(
    ctx: Ctx,
    actor: Annotated[str | None, Query(max_length=80)] = None,
    action: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: QueryId = None,
) -> list[AuditOut]:
    q = sa.select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if actor:
        q = q.where(AuditLog.actor == actor)
    if action:
        q = q.where(AuditLog.action == action)
    if before_id is not None:
        q = q.where(AuditLog.id < before_id)
    return [
        AuditOut(
            id=a.id,
            at=a.at,
            actor=a.actor,
            action=a.action,
            target_type=a.target_type,
            target_id=a.target_id,
            detail=dict(a.detail or {}),
            ip=a.ip,
        )
        for a in await ctx.db.scalars(q)
    ]
