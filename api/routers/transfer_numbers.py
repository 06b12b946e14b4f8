"""External numbers agents may transfer calls to: the admin's allow list (issue 15).

Numbers are normalised to E.164 with the project's phone rules; a transfer to any number not
on this list is refused (``number_not_allowed``). Agents see the list (labels) on their screen
through ``GET /agent/transfer-destinations``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Scope
from api.deps import Ctx, Scoped
from api.errors import ApiError, not_found
from api.routers.dnc import to_e164
from api.types import PathId
from dialer.db.models import TransferNumber

router = APIRouter(prefix="/transfer-numbers", tags=["transfers"])


class TransferNumberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=3, max_length=40, description="Any Colombian format")
    label: str = Field(min_length=1, max_length=80, description="Shown to agents")


class TransferNumberOut(BaseModel):
    id: int
    number: str = Field(description="E.164")
    label: str
    added_at: datetime
    added_by: int | None


def number_out(row: TransferNumber) -> TransferNumberOut:
    return TransferNumberOut(
        id=row.id,
        number=row.e164,
        label=row.label,
        added_at=row.added_at,
        added_by=row.added_by,
    )


@router.get(
    "",
    summary="External numbers agents may transfer calls to",
    dependencies=[Scoped(Scope.AGENTS_READ)],
)
async def list_transfer_numbers(ctx: Ctx) -> list[TransferNumberOut]:
    rows = await ctx.db.scalars(sa.select(TransferNumber).order_by(TransferNumber.label))
    return [number_out(r) for r in rows]


@router.post(
    "",
    status_code=201,
    summary="Allow transfers to one external number (admins)",
    dependencies=[Scoped(Scope.ADMIN)],
)
async def add_transfer_number(body: TransferNumberIn, ctx: Ctx) -> TransferNumberOut:
    e164 = to_e164(body.number)
    if e164 is None:
        raise ApiError(
            422, "invalid_phone", "not a valid Colombian phone number", {"field": "number"}
        )
    existing = await ctx.db.scalar(sa.select(TransferNumber).where(TransferNumber.e164 == e164))
    if existing is not None:
        raise ApiError(409, "already_listed", "the number is already allowed", {"id": existing.id})
    row = TransferNumber(
        e164=e164,
        label=body.label.strip(),
        added_at=ctx.now(),
        added_by=ctx.principal.user_id,
    )
    ctx.db.add(row)
    await ctx.db.flush()
    ctx.audit("transfer_number.add", "transfer_number", row.id, label=row.label)
    await ctx.commit()
    return number_out(row)


@router.delete(
    "/{number_id}",
    status_code=204,
    summary="Stop allowing transfers to one external number (admins)",
    dependencies=[Scoped(Scope.ADMIN)],
)
async def remove_transfer_number(number_id: PathId, ctx: Ctx) -> None:
    row = await ctx.db.get(TransferNumber, number_id)
    if row is None:
        raise not_found("transfer number", number_id)
    ctx.audit("transfer_number.remove", "transfer_number", row.id, label=row.label)
    await ctx.db.delete(row)
    await ctx.commit()
