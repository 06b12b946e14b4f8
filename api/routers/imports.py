"""Lead import over HTTP, reusing the engine's importer (``dialer.importing.service``).

``POST /campaigns/{id}/imports`` (multipart ``file``, optional ``mapping`` JSON and
``assume_consent`` text):

- small files (up to ``app.state.import_sync_max_bytes``) are imported in the request; the
  answer (200) is the per-row report;
- larger files answer 202 with a job id; ``GET /imports/{job_id}`` shows the progress (phase,
  done, total) and, once done, the same report. Jobs live in Redis (``Keys.import_job``) for
  7 days; the import itself is recorded in SQL (``import_batches``) like a CLI import.

The report carries row numbers and reasons, never phone numbers or national ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import Scope
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.routers.campaigns import load_campaign
from api.types import PathId, QueryId
from api.uploads import file_kind, save_upload, upload_dir
from dialer.db.models import ImportBatch
from dialer.importing.mapping import ColumnMapping
from dialer.importing.report import ImportReport
from dialer.importing.service import import_file
from dialer.logging import get_logger

router = APIRouter(tags=["imports"])
log = get_logger(__name__)

JOB_TTL_S = 7 * 24 * 3600
PROGRESS_FLUSH_S = 0.5


class RowOut(BaseModel):
    row: int
    status: str
    reason: str
    message: str
    lead_id: int | None
    into_row: int | None
    notes: list[str]


class ImportResult(BaseModel):
    job_id: str | None = None
    status: str = Field(description="queued, running, done or failed")
    campaign_id: int
    filename: str
    phase: str | None = None
    done: int = 0
    total: int | None = None
    batch_id: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    rows: list[RowOut] = Field(default_factory=list)
    error: dict[str, Any] | None = None


class BatchOut(BaseModel):
    id: int
    campaign_id: int
    filename: str
    rows_total: int
    rows_imported: int
    rows_merged: int
    rows_rejected: int
    summary: dict[str, Any]
    created_at: datetime
    created_by: int | None


def _rows(report: ImportReport) -> list[RowOut]:
    return [
        RowOut(
            row=r.row,
            status=r.status.value,
            reason=r.reason,
            message=r.message,
            lead_id=r.lead_id,
            into_row=r.into_row,
            notes=list(r.notes),
        )
        for r in report.rows
    ]


def _mapping(raw: str | None) -> ColumnMapping | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(422, "invalid_mapping", "mapping must be a JSON object") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_mapping", "mapping must be a JSON object")
    return ColumnMapping.from_dict(data)


@router.post(
    "/campaigns/{campaign_id}/imports",
    summary="Upload a CSV/XLSX lead list (small: report now; large: a job)",
    response_model=ImportResult,
    responses={
        202: {"model": ImportResult, "description": "Large file: follow /imports/{job_id}"},
        413: {"description": "File too large"},
        415: {"description": "Not a CSV or XLSX file"},
    },
    dependencies=[Scoped(Scope.LEADS_WRITE)],
)
async def upload_leads(
    campaign_id: PathId,
    ctx: Ctx,
    file: Annotated[UploadFile, File(description="CSV or XLSX lead list")],
    mapping: Annotated[str | None, Form(max_length=20_000, description="JSON mapping")] = None,
    assume_consent: Annotated[
        str | None, Form(max_length=300, description="Proof text for rows without consent")
    ] = None,
) -> ImportResult | JSONResponse:
    await load_campaign(ctx, campaign_id)
    column_mapping = _mapping(mapping)
    max_bytes = ctx.settings.api.max_upload_mb * 1024 * 1024
    path = await save_upload(file, upload_dir(ctx.settings.data_dir), max_bytes)
    filename = Path(file.filename or "upload").name[:200]
    try:
        file_kind(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    ctx.audit("leads.import", "campaign", campaign_id, filename=filename)
    await ctx.commit()
    created_by = ctx.principal.user_id
    if path.stat().st_size <= ctx.request.app.state.import_sync_max_bytes:
        named = _named(path, filename)
        try:
            report = await import_file(
                ctx.sessionmaker,
                campaign_id,
                named,
                column_mapping,
                now=ctx.now(),
                assume_consent=assume_consent,
                created_by=created_by,
            )
        finally:
            _cleanup(named)
        return ImportResult(
            status="done",
            campaign_id=campaign_id,
            filename=filename,
            phase="save",
            done=report.rows_total,
            total=report.rows_total,
            batch_id=report.batch_id,
            summary=report.summary(),
            rows=_rows(report),
        )
    job_id = uuid.uuid4().hex
    job = ImportJob(ctx, job_id, campaign_id, filename, path, column_mapping, assume_consent)
    await job.save({"status": "queued"})
    task = asyncio.create_task(job.run(), name=f"import-{job_id}")
    background: set[asyncio.Task[None]] = ctx.request.app.state.background
    background.add(task)
    task.add_done_callback(background.discard)
    result = ImportResult(
        job_id=job_id, status="queued", campaign_id=campaign_id, filename=filename
    )
    return JSONResponse(
        result.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/api/v1/imports/{job_id}"},
    )


def _safe_name(filename: str) -> str:
    name = re.sub(r"[^\w.\- ]", "_", Path(filename).name).strip() or "upload"
    return name[:120]


def _named(path: Path, filename: str) -> Path:
    """The importer reports the file's own name: move the upload to its original name."""
    folder = path.parent / f"job-{uuid.uuid4().hex}"
    folder.mkdir()
    target = folder / _safe_name(filename)
    path.rename(target)
    return target


def _cleanup(path: Path) -> None:
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


class ImportJob:
    """A background import with its progress in Redis."""

    def __init__(
        self,
        ctx: RequestContext,
        job_id: str,
        campaign_id: PathId,
        filename: str,
        path: Path,
        mapping: ColumnMapping | None,
        assume_consent: str | None,
    ) -> None:
        self.redis = ctx.redis
        self.key = ctx.keys.import_job(job_id)
        self.sm = ctx.sessionmaker
        self.now = ctx.now()
        self.job_id = job_id
        self.campaign_id = campaign_id
        self.filename = filename
        self.path = path
        self.mapping = mapping
        self.assume_consent = assume_consent
        self.created_by = ctx.principal.user_id
        self.progress: dict[str, Any] = {"phase": "read", "done": 0, "total": None}

    async def save(self, fields: dict[str, Any]) -> None:
        base = {
            "campaign_id": self.campaign_id,
            "filename": self.filename,
            "created_by": self.created_by or "",
        }
        mapping = {k: json.dumps(v, default=str) for k, v in {**base, **fields}.items()}
        await self.redis.hset(self.key, mapping=mapping)  # type: ignore[misc]
        await self.redis.expire(self.key, JOB_TTL_S)

    def _on_progress(self, phase: str, done: int, total: int | None) -> None:
        self.progress = {"phase": phase, "done": done, "total": total}

    async def _flush_progress(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.save({"status": "running", **self.progress})
            try:
                await asyncio.wait_for(stop.wait(), PROGRESS_FLUSH_S)
            except TimeoutError:
                continue

    async def run(self) -> None:
        stop = asyncio.Event()
        flusher = asyncio.create_task(self._flush_progress(stop))
        path = _named(self.path, self.filename)
        try:
            report = await import_file(
                self.sm,
                self.campaign_id,
                path,
                self.mapping,
                now=self.now,
                progress=self._on_progress,
                assume_consent=self.assume_consent,
                created_by=self.created_by,
            )
            stop.set()
            await flusher
            await self.save(
                {
                    "status": "done",
                    "phase": "save",
                    "done": report.rows_total,
                    "total": report.rows_total,
                    "batch_id": report.batch_id,
                    "summary": report.summary(),
                    "rows": [r.model_dump() for r in _rows(report)],
                }
            )
        except Exception as exc:
            stop.set()
            await flusher
            error = (
                exc.to_dict()
                if hasattr(exc, "to_dict")
                else {"code": "internal_error", "message": "the import failed"}
            )
            if hasattr(exc, "message_en"):
                error["message"] = exc.message_en
            log.warning("import_job_failed", job=self.job_id, error=type(exc).__name__)
            await self.save({"status": "failed", "error": error})
        finally:
            _cleanup(path)


@router.get(
    "/imports/{job_id}",
    summary="Progress and report of a background import",
    dependencies=[Scoped(Scope.LEADS_READ)],
)
async def get_import(job_id: str, ctx: Ctx) -> ImportResult:
    if len(job_id) > 64:
        raise not_found("import", job_id)
    raw: dict[str, str] = await ctx.redis.hgetall(ctx.keys.import_job(job_id))  # type: ignore[misc]
    if not raw:
        raise not_found("import", job_id)
    data: dict[str, Any] = {k: json.loads(v) for k, v in raw.items()}
    campaign_id = int(data.get("campaign_id", 0))
    if not await ctx.can_see_campaign(campaign_id):
        raise not_found("import", job_id)
    return ImportResult(
        job_id=job_id,
        status=str(data.get("status", "queued")),
        campaign_id=campaign_id,
        filename=str(data.get("filename", "")),
        phase=data.get("phase"),
        done=int(data.get("done") or 0),
        total=data.get("total"),
        batch_id=data.get("batch_id"),
        summary=data.get("summary") or {},
        rows=[RowOut.model_validate(r) for r in data.get("rows") or []],
        error=data.get("error"),
    )


@router.get(
    "/imports",
    summary="Import batches recorded in SQL (CLI and API)",
    dependencies=[Scoped(Scope.LEADS_READ)],
)
async def list_imports(
    ctx: Ctx,
    campaign_id: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[BatchOut]:
    q = sa.select(ImportBatch).order_by(ImportBatch.id.desc()).limit(limit)
    scope = await ctx.campaign_scope()
    if scope is not None:
        q = q.where(ImportBatch.campaign_id.in_(scope))
    if campaign_id is not None:
        q = q.where(ImportBatch.campaign_id == campaign_id)
    return [
        BatchOut(
            id=b.id,
            campaign_id=b.campaign_id,
            filename=b.filename,
            rows_total=b.rows_total,
            rows_imported=b.rows_imported,
            rows_merged=b.rows_merged,
            rows_rejected=b.rows_rejected,
            summary=dict(b.summary or {}),
            created_at=b.created_at,
            created_by=b.created_by,
        )
        for b in await ctx.db.scalars(q)
    ]
