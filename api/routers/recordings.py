"""Call recordings (issue 16): metadata, playback with HTTP ranges, the agent's stop control,
retention purge and the data-subject deletion (docs/recording.md).

* Listening and downloading need ``recordings:read``: supervisors (their campaigns) and admins;
  API keys only with that scope; agents never. Every play or download is written to the audit
  log (who, when, which recording, which byte range).
* ``POST /recordings/stop``: the agent's "stop recording" for their current call (the customer
  objects): a command to the dialer, which sends StopMixMonitor.
* ``POST /recordings/purge`` and ``POST /recordings/data-subject-deletion``: admins only.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path as FsPath
from typing import Annotated, Any

import anyio
import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Scope
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.events import send_command
from api.types import QueryId
from dialer.db.models import AuditLog, CallAttempt, Recording, RecordingStatus
from dialer.recordings import erase_person, purge_expired

router = APIRouter(prefix="/recordings", tags=["recordings"])

CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RecordingOut(BaseModel):
    id: int
    attempt_id: int
    attempt: str
    campaign_id: int
    lead_id: int
    agent_id: int | None
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    size_bytes: int | None
    sha256: str | None
    channels: int
    retention_until: datetime
    status: RecordingStatus
    failure_reason: str | None
    stopped_at: datetime | None
    deleted_at: datetime | None
    deleted_reason: str | None
    audio_url: str | None = Field(description="Playback (Range supported); None without audio.")


class RecordingPage(BaseModel):
    items: list[RecordingOut]
    total: int
    limit: int
    offset: int


def audio_url(rec_id: int) -> str:
    return f"/api/v1/recordings/{rec_id}/audio"


def recording_out(rec: Recording, attempt_uuid: str) -> RecordingOut:
    playable = rec.status is RecordingStatus.OK
    return RecordingOut(
        id=rec.id,
        attempt_id=rec.attempt_id,
        attempt=attempt_uuid,
        campaign_id=rec.campaign_id,
        lead_id=rec.lead_id,
        agent_id=rec.agent_id,
        started_at=rec.started_at,
        ended_at=rec.ended_at,
        duration_s=rec.duration_s,
        size_bytes=rec.size_bytes,
        sha256=rec.sha256,
        channels=rec.channels,
        retention_until=rec.retention_until,
        status=rec.status,
        failure_reason=rec.failure_reason,
        stopped_at=rec.stopped_at,
        deleted_at=rec.deleted_at,
        deleted_reason=rec.deleted_reason,
        audio_url=audio_url(rec.id) if playable else None,
    )


async def _visible(ctx: RequestContext) -> Any:
    scope = await ctx.campaign_scope()
    return None if scope is None else Recording.campaign_id.in_(scope)


@router.get("", summary="Recordings with filters", dependencies=[Scoped(Scope.RECORDINGS_READ)])
async def list_recordings(
    ctx: Ctx,
    campaign_id: QueryId = None,
    lead_id: QueryId = None,
    agent_id: QueryId = None,
    attempt: Annotated[str | None, Query(max_length=64)] = None,
    status: RecordingStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> RecordingPage:
    conds: list[Any] = []
    if (visible := await _visible(ctx)) is not None:
        conds.append(visible)
    if campaign_id is not None:
        conds.append(Recording.campaign_id == campaign_id)
    if lead_id is not None:
        conds.append(Recording.lead_id == lead_id)
    if agent_id is not None:
        conds.append(Recording.agent_id == agent_id)
    if attempt is not None:
        conds.append(CallAttempt.uuid == attempt)
    if status is not None:
        conds.append(Recording.status == status)
    base = sa.select(Recording, CallAttempt.uuid).join(
        CallAttempt, CallAttempt.id == Recording.attempt_id
    )
    total = await ctx.db.scalar(
        sa.select(sa.func.count())
        .select_from(Recording)
        .join(CallAttempt, CallAttempt.id == Recording.attempt_id)
        .where(*conds)
    )
    rows = await ctx.db.execute(
        base.where(*conds).order_by(Recording.id.desc()).limit(limit).offset(offset)
    )
    return RecordingPage(
        items=[recording_out(r, u) for r, u in rows.all()],
        total=int(total or 0),
        limit=limit,
        offset=offset,
    )


async def _load(ctx: RequestContext, rec_id: int) -> tuple[Recording, str]:
    row = (
        await ctx.db.execute(
            sa.select(Recording, CallAttempt.uuid)
            .join(CallAttempt, CallAttempt.id == Recording.attempt_id)
            .where(Recording.id == rec_id)
        )
    ).first()
    if row is None or not await ctx.can_see_campaign(row[0].campaign_id):
        raise not_found("recording", rec_id)
    return row[0], row[1]


@router.get(
    "/{rec_id}",
    summary="One recording's metadata",
    dependencies=[Scoped(Scope.RECORDINGS_READ)],
)
async def get_recording(rec_id: Annotated[int, Path(ge=1, le=2**31 - 1)], ctx: Ctx) -> RecordingOut:
    rec, uuid = await _load(ctx, rec_id)
    return recording_out(rec, uuid)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``Range: bytes=a-b`` -> (first, last) inclusive; None: the whole file. Raises 416."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise ApiError(416, "range_not_satisfiable", "only one bytes=a-b range is supported")
    if not m.group(1):  # suffix: the last n bytes
        n = int(m.group(2))
        if n == 0:
            raise ApiError(416, "range_not_satisfiable", "empty suffix range")
        return max(0, size - n), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        raise ApiError(
            416, "range_not_satisfiable", f"range outside the file (size {size})", {"size": size}
        )
    return first, min(last, size - 1)


async def _stream(path: FsPath, first: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as fh:
        await fh.seek(first)
        left = length
        while left > 0:
            chunk = await fh.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


@router.get(
    "/{rec_id}/audio",
    summary="Play or download a recording (audio/wav; HTTP Range for seeking); audited",
    dependencies=[Scoped(Scope.RECORDINGS_READ)],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"audio/wav": {}}},
        206: {"content": {"audio/wav": {}}, "description": "Partial content (Range)"},
        416: {"description": "Range not satisfiable"},
    },
)
async def recording_audio(
    rec_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    ctx: Ctx,
    download: bool = False,
) -> StreamingResponse:
    rec, uuid = await _load(ctx, rec_id)
    if rec.status is not RecordingStatus.OK:
        raise ApiError(
            409, "recording_unavailable", f"the recording is {rec.status.value}", {"id": rec_id}
        )
    path = FsPath(rec.path)
    try:
        size = (await anyio.Path(path).stat()).st_size
    except OSError:
        raise ApiError(
            404, "recording_file_missing", "the recording's file is not on disk", {"id": rec_id}
        ) from None
    span = parse_range(request.headers.get("range"), size)
    first, last = span if span is not None else (0, size - 1)
    length = max(0, last - first + 1)
    ctx.audit(
        "recording.download" if download else "recording.play",
        "recording",
        rec.id,
        attempt=uuid,
        range=f"{first}-{last}" if span is not None else "",
    )
    await ctx.commit()
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(length),
        "Cache-Control": "no-store",
        "Content-Disposition": (
            f'{"attachment" if download else "inline"}; filename="grabacion-{rec.id}.wav"'
        ),
    }
    if span is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        _stream(path, first, length),
        status_code=206 if span is not None else 200,
        media_type="audio/wav",
        headers=headers,
    )


# --------------------------------------------------------------------------- agent control


class StopOut(BaseModel):
    status: str = "accepted"
    command: str
    command_id: str


@router.post(
    "/stop",
    status_code=202,
    summary="Agent: stop recording the current call (the customer objects)",
    dependencies=[Scoped(Scope.AGENT)],
)
async def stop_recording(ctx: Ctx) -> StopOut:
    me = ctx.principal.user_id
    if me is None:
        raise ApiError(403, "forbidden", "only a signed-in agent can stop their call's recording")
    # ctx.audit skips agents; this control is always audited
    ctx.db.add(_audit_row(ctx, "recording.stop_requested", "agent", me))
    await ctx.commit()
    command_id = await send_command(
        ctx.redis, ctx.keys, "recording_stop", {"agent_id": me, "by": me}
    )
    return StopOut(command="recording_stop", command_id=command_id)


def _audit_row(ctx: RequestContext, action: str, target_type: str, target_id: object) -> AuditLog:
    return AuditLog(
        at=ctx.now(),
        actor=ctx.principal.actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail={},
        ip=ctx.ip[:64],
    )


# --------------------------------------------------------------------------- admin


class PurgeOut(BaseModel):
    deleted: int
    errors: int


@router.post(
    "/purge",
    summary="Admin: delete the files of recordings past their retention date now",
    dependencies=[Scoped(Scope.ADMIN)],
)
async def purge(ctx: Ctx) -> PurgeOut:
    result = await purge_expired(ctx.sessionmaker, ctx.now(), actor=ctx.principal.actor)
    return PurgeOut(deleted=result.deleted, errors=result.errors)


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    national_id: str | None = Field(default=None, min_length=3, max_length=32)
    phone: str | None = Field(
        default=None, pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164, e.g. +573001234567"
    )


class ErasureOut(BaseModel):
    leads: int
    attempts: int
    recordings: int


@router.post(
    "/data-subject-deletion",
    summary=(
        "Admin: habeas data - delete a person's recordings and mask their personal data in "
        "leads and attempts (counts stay for the reports); audited"
    ),
    dependencies=[Scoped(Scope.ADMIN)],
)
async def data_subject_deletion(body: ErasureIn, ctx: Ctx) -> ErasureOut:
    if not body.national_id and not body.phone:
        raise ApiError(422, "person_required", "give national_id or phone")
    result = await erase_person(
        ctx.sessionmaker,
        ctx.now(),
        national_id=body.national_id,
        phone=body.phone,
        actor=ctx.principal.actor,
        ip=ctx.ip[:64],
    )
    return ErasureOut(leads=result.leads, attempts=result.attempts, recordings=result.recordings)
