"""Do-not-call lists: internal DNC and the CRC's RNE. Numbers are normalised to E.164.

Removing a number from the list does not restore consents revoked by a "do not call"
disposition: those stay revoked until the customer grants them again.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Scope
from api.deps import Ctx, Scoped
from api.errors import ApiError, not_found
from api.types import PathId
from api.uploads import file_kind, save_upload, upload_dir
from dialer.db.models import DncEntry, DncSource
from dialer.importing.cleaning import CleanPhone, normalize_phone
from dialer.importing.errors import ImportFileError
from dialer.importing.reader import open_table

router = APIRouter(prefix="/dnc", tags=["dnc"])

_NUMBER_HEADERS = ("numero", "número", "telefono", "teléfono", "celular", "phone", "number", "e164")


class DncOut(BaseModel):
    id: int
    number: str
    source: DncSource
    reason: str
    added_at: datetime
    added_by: int | None
    expires_at: datetime | None


class DncPage(BaseModel):
    items: list[DncOut]
    total: int
    limit: int
    offset: int


class DncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=3, max_length=40)
    source: DncSource = DncSource.INTERNAL
    reason: str = Field(default="", max_length=120)
    expires_at: datetime | None = None


class DncUploadOut(BaseModel):
    source: DncSource
    rows: int
    added: int
    already_listed: int
    removed: int
    invalid_rows: list[int] = Field(description="Row numbers that hold no valid number")


def dnc_out(e: DncEntry) -> DncOut:
    return DncOut(
        id=e.id,
        number=e.e164,
        source=e.source,
        reason=e.reason,
        added_at=e.added_at,
        added_by=e.added_by,
        expires_at=e.expires_at,
    )


def to_e164(raw: str) -> str | None:
    parsed = normalize_phone(raw)
    return parsed.e164 if isinstance(parsed, CleanPhone) else None


@router.get("", summary="DNC / RNE entries", dependencies=[Scoped(Scope.DNC_READ)])
async def list_dnc(
    ctx: Ctx,
    source: DncSource | None = None,
    number: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> DncPage:
    conds: list[Any] = []
    if source is not None:
        conds.append(DncEntry.source == source)
    if number:
        e164 = to_e164(number)
        if e164 is None:
            raise ApiError(422, "invalid_phone", "not a valid Colombian phone number")
        conds.append(DncEntry.e164 == e164)
    total = await ctx.db.scalar(sa.select(sa.func.count()).select_from(DncEntry).where(*conds))
    rows = await ctx.db.scalars(
        sa.select(DncEntry).where(*conds).order_by(DncEntry.id).limit(limit).offset(offset)
    )
    return DncPage(
        items=[dnc_out(e) for e in rows], total=int(total or 0), limit=limit, offset=offset
    )


@router.post("", status_code=201, summary="Add one number", dependencies=[Scoped(Scope.DNC_WRITE)])
async def add_dnc(body: DncIn, ctx: Ctx) -> DncOut:
    e164 = to_e164(body.number)
    if e164 is None:
        raise ApiError(
            422, "invalid_phone", "not a valid Colombian phone number", {"field": "number"}
        )
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise ApiError(422, "naive_datetime", "expires_at must include a time zone offset")
    existing = await ctx.db.scalar(
        sa.select(DncEntry).where(DncEntry.e164 == e164, DncEntry.source == body.source)
    )
    if existing is not None:
        raise ApiError(
            409, "already_listed", "the number is already on this list", {"id": existing.id}
        )
    entry = DncEntry(
        e164=e164,
        source=body.source,
        reason=body.reason,
        added_at=ctx.now(),
        added_by=ctx.principal.user_id,
        expires_at=body.expires_at,
    )
    ctx.db.add(entry)
    await ctx.db.flush()
    ctx.audit("dnc.add", "dnc", entry.id, source=body.source.value)
    await ctx.commit()
    return dnc_out(entry)


@router.delete(
    "/{entry_id}",
    status_code=204,
    summary="Remove one entry",
    dependencies=[Scoped(Scope.DNC_WRITE)],
)
async def remove_dnc(entry_id: PathId, ctx: Ctx) -> None:
    entry = await ctx.db.get(DncEntry, entry_id)
    if entry is None:
        raise not_found("DNC entry", entry_id)
    ctx.audit("dnc.remove", "dnc", entry.id, source=entry.source.value)
    await ctx.db.delete(entry)
    await ctx.commit()


def _numbers_from_file(path: Path, kind: str) -> tuple[list[tuple[int, str | None]], int]:
    """(row number, E.164 or None) per data row, and the number of rows."""
    out: list[tuple[int, str | None]] = []
    try:
        with open_table(path) as table:
            headers = [h.strip().lower() for h in table.headers]
            column = next(
                (i for i, h in enumerate(headers) if any(k in h for k in _NUMBER_HEADERS)), 0
            )
            for raw in table:
                cell = raw.cells[column] if column < len(raw.cells) else ""
                out.append((raw.number, to_e164(cell)))
    except ImportFileError:
        if kind != "csv":
            raise
        out = []
        # A bare list of numbers has no header row: read it as single-column CSV text.
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
        for i, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if row and row[0].strip():
                out.append((i, to_e164(row[0])))
    return out, len(out)


@router.post(
    "/upload",
    summary="Upload a CSV/XLSX of numbers (RNE export or internal list)",
    dependencies=[Scoped(Scope.DNC_WRITE)],
)
async def upload_dnc(
    ctx: Ctx,
    file: Annotated[UploadFile, File(description="CSV or XLSX; one number per row")],
    source: Annotated[DncSource, Form()] = DncSource.RNE,
    reason: Annotated[str, Form(max_length=120)] = "",
    replace: Annotated[
        bool, Form(description="Remove entries of this source missing from the file")
    ] = False,
) -> DncUploadOut:
    max_bytes = ctx.settings.api.max_upload_mb * 1024 * 1024
    path = await save_upload(file, upload_dir(ctx.settings.data_dir), max_bytes)
    try:
        kind = file_kind(path)
        parsed, rows = await asyncio.to_thread(_numbers_from_file, path, kind)
    finally:
        path.unlink(missing_ok=True)
    invalid = [n for n, e in parsed if e is None]
    numbers = list(dict.fromkeys(e for _, e in parsed if e is not None))
    existing: set[str] = set()
    for start in range(0, len(numbers), 500):
        chunk = numbers[start : start + 500]
        existing.update(
            await ctx.db.scalars(
                sa.select(DncEntry.e164).where(DncEntry.source == source, DncEntry.e164.in_(chunk))
            )
        )
    now = ctx.now()
    new = [n for n in numbers if n not in existing]
    for e164 in new:
        ctx.db.add(
            DncEntry(
                e164=e164,
                source=source,
                reason=reason or f"upload:{source.value}",
                added_at=now,
                added_by=ctx.principal.user_id,
            )
        )
    removed = 0
    if replace:
        keep = set(numbers)
        stale = [
            i
            for i, e in (
                await ctx.db.execute(
                    sa.select(DncEntry.id, DncEntry.e164).where(DncEntry.source == source)
                )
            ).all()
            if e not in keep
        ]
        for start in range(0, len(stale), 500):
            await ctx.db.execute(
                sa.delete(DncEntry).where(DncEntry.id.in_(stale[start : start + 500]))
            )
        removed = len(stale)
    ctx.audit(
        "dnc.upload",
        "dnc",
        source.value,
        rows=rows,
        added=len(new),
        removed=removed,
        invalid=len(invalid),
    )
    await ctx.commit()
    return DncUploadOut(
        source=source,
        rows=rows,
        added=len(new),
        already_listed=len(numbers) - len(new),
        removed=removed,
        invalid_rows=invalid[:1000],
    )
