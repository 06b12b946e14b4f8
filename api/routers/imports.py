"""Lead import over HTTP, reusing the engine's importer (``dialer.importing.service``).

``POST /campaigns/{id}/imports`` (multipart ``file``, optional ``mapping`` JSON and
``assume_consent`` text):

- small files (up to ``app.state.import_sync_max_bytes``) are imported in the request; the
  answer (200) is the per-row report;
- larger files answer 202 with a job id; ``GET /imports/{job_id}`` shows the progress (phase,
  done, total) and, once done, the same report. The live progress lives in Redis
  (``Keys.import_job``, 7 days); the import itself is recorded in SQL (``import_batches``,
  with the job id, written in the import's own transaction) like a CLI import. Once the
  batch says ``done`` the job is done, whatever Redis holds or lost: the database decides.
  Redis keeps only the first ``MARCADOR_IMPORTS__REPORT_ROWS_IN_REDIS`` rows of the per-row
  report; the whole report is a JSON-lines file under ``<data_dir>/import-reports/``
  (``GET /imports/{job_id}/rows`` pages through it).

XLSX files are checked for decompression bombs (``dialer.importing.reader.check_xlsx``, limits
``MARCADOR_IMPORTS__*``) before anything is parsed: 413 or 422 naming the limit.

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
from redis.exceptions import RedisError

from api.auth import Scope
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.routers.campaigns import load_campaign
from api.types import PathId, QueryId
from api.uploads import file_kind, save_upload, upload_dir
from dialer.db.models import ImportBatch
from dialer.importing.mapping import ColumnMapping
from dialer.importing.reader import XlsxLimits, check_xlsx
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
    rows_complete: bool = Field(
        default=True,
        description="False: only the first rows are here; GET /imports/{job_id}/rows has all",
    )
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
    limits = XlsxLimits.from_settings(ctx.settings.imports)
    try:
        if file_kind(path) == "xlsx":
            await asyncio.to_thread(check_xlsx, path, limits)  # bombs: refused before parsing
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
                limits=limits,
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
        self.limits = XlsxLimits.from_settings(ctx.settings.imports)
        self.rows_in_redis = ctx.settings.imports.report_rows_in_redis
        self.report_file = report_file(ctx.settings.data_dir, job_id)

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

    async def _save_quietly(self, fields: dict[str, Any]) -> bool:
        """The live copy is best effort: losing it never changes what the import did."""
        try:
            await self.save(fields)
        except (RedisError, OSError) as exc:
            log.warning("import_job_save_failed", job=self.job_id, error=type(exc).__name__)
            return False
        return True

    async def _flush_progress(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._save_quietly({"status": "running", **self.progress})
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
                limits=self.limits,
                job_id=self.job_id,
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
            await self._save_quietly({"status": "failed", "error": error})
            return
        finally:
            _cleanup(path)
        # Committed: from here on nothing may turn the job into a failure.
        stop.set()
        await flusher
        rows = _rows(report)
        try:
            await asyncio.to_thread(_write_rows, self.report_file, rows)
        except OSError as exc:
            log.warning("import_report_file_failed", job=self.job_id, error=type(exc).__name__)
        await self._save_quietly(
            {
                "status": "done",
                "phase": "save",
                "done": report.rows_total,
                "total": report.rows_total,
                "batch_id": report.batch_id,
                "summary": report.summary(),
                "rows": [r.model_dump() for r in rows[: self.rows_in_redis]],
                "rows_complete": len(rows) <= self.rows_in_redis,
            }
        )


def report_file(data_dir: Path, job_id: str) -> Path:
    """The whole per-row report of a background import (JSON lines, one row each)."""
    return data_dir / "import-reports" / f"{job_id}.jsonl"


def _write_rows(path: Path, rows: list[RowOut]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    with partial.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(row.model_dump_json())
            fh.write("\n")
    partial.replace(path)


def _read_rows(path: Path, offset: int, limit: int) -> list[RowOut] | None:
    if not path.exists():
        return None
    out: list[RowOut] = []
    with path.open(encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            if index < offset:
                continue
            if len(out) >= limit:
                break
            out.append(RowOut.model_validate_json(line))
    return out


async def _live(ctx: RequestContext, job_id: str) -> dict[str, Any]:
    """The job's live copy in Redis ({} when lost, expired or Redis fails)."""
    try:
        raw: dict[str, str] = await ctx.redis.hgetall(ctx.keys.import_job(job_id))  # type: ignore[misc]
    except (RedisError, OSError) as exc:
        log.warning("import_job_read_failed", error=type(exc).__name__)
        return {}
    return {k: json.loads(v) for k, v in raw.items()}


async def _batch(ctx: RequestContext, job_id: str) -> ImportBatch | None:
    batch: ImportBatch | None = await ctx.db.scalar(
        sa.select(ImportBatch).where(ImportBatch.job_id == job_id)
    )
    return batch


@router.get(
    "/imports/{job_id}",
    summary="Progress and report of a background import",
    dependencies=[Scoped(Scope.LEADS_READ)],
)
async def get_import(job_id: str, ctx: Ctx) -> ImportResult:
    if len(job_id) > 64:
        raise not_found("import", job_id)
    data = await _live(ctx, job_id)
    batch = await _batch(ctx, job_id)
    if not data and batch is None:
        raise not_found("import", job_id)
    campaign_id = batch.campaign_id if batch is not None else int(data.get("campaign_id", 0))
    if not await ctx.can_see_campaign(campaign_id):
        raise not_found("import", job_id)
    result = ImportResult(
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
        rows_complete=bool(data.get("rows_complete", True)),
        error=data.get("error"),
    )
    db_status = (batch.summary or {}).get("status") if batch is not None else None
    if batch is not None and db_status == "done":  # the database decides, not the live copy
        summary = {k: v for k, v in (batch.summary or {}).items() if k != "status"}
        result.status, result.phase, result.error = "done", "save", None
        result.batch_id = batch.id
        result.filename = result.filename or batch.filename
        result.done = result.total = batch.rows_total
        result.summary = summary
        if not result.rows:
            limit = ctx.settings.imports.report_rows_in_redis
            path = report_file(ctx.settings.data_dir, job_id)
            rows = await asyncio.to_thread(_read_rows, path, 0, limit + 1)
            result.rows = (rows or [])[:limit]
            result.rows_complete = rows is not None and len(rows) <= limit
    elif batch is not None and db_status == "failed" and result.status != "failed":
        result.status = "failed"
        result.error = result.error or {"code": "import_failed", "message": "the import failed"}
    return result


@router.get(
    "/imports/{job_id}/rows",
    summary="The whole per-row report of a background import, page by page",
    dependencies=[Scoped(Scope.LEADS_READ)],
)
async def get_import_rows(
    job_id: str,
    ctx: Ctx,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[RowOut]:
    if len(job_id) > 64 or not re.fullmatch(r"[0-9a-f]+", job_id):
        raise not_found("import", job_id)
    batch = await _batch(ctx, job_id)
    if batch is None or not await ctx.can_see_campaign(batch.campaign_id):
        raise not_found("import", job_id)
    rows = await asyncio.to_thread(
        _read_rows, report_file(ctx.settings.data_dir, job_id), offset, limit
    )
    if rows is None:
        raise not_found("import report", job_id)
    return rows


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
