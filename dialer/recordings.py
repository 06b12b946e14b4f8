"""Call recordings: where the files live, their SQL rows, retention and data-subject deletion.

The recording itself is started by the DIALPLAN (``marcador-record``, ``MixMonitor`` option
``D``) when the dialer's Originate carries ``MARCADOR_RECORD=1``: a slow or dead dialer cannot
miss it. This module is the bookkeeping around it (docs/recording.md):

* :func:`recording_variables` - the channel variables of a recorded campaign's Originate;
* :class:`RecordingKeeper` - registers the row when the call connects, finalises it after the
  hang-up (the ``.raw`` interleaved stereo stream becomes a WAV; size, SHA-256, duration), marks
  failures without ever touching the call, stops a recording (the agent's control);
* :func:`purge_expired` - the daily retention job (files deleted, rows kept as ``deleted``);
* :func:`erase_person` - habeas data (Ley 1581): a person's recordings deleted, their personal
  data masked in leads, phones and attempts; counts stay for the reports.

Nothing runs at import time; every function takes ``now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shlex
import wave
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge import dialplan as dp
from dialer.db.models import (
    AuditLog,
    CallAttempt,
    Campaign,
    Disposition,
    Lead,
    Phone,
    Recording,
    RecordingStatus,
)
from dialer.domain.clock import Clock
from dialer.domain.outcomes import LeadStatus
from dialer.settings import Settings

log = structlog.get_logger(__name__)

SAMPLE_RATE = 8000  # MixMonitor .raw: signed linear 16 bit, 8 kHz
SAMPLE_WIDTH = 2
ERASED = "[eliminado]"

__all__ = [
    "FileFacts",
    "RecordingFailure",
    "RecordingKeeper",
    "RecordingPaths",
    "erase_person",
    "file_facts",
    "purge_expired",
    "raw_to_wav",
    "recording_variables",
]


class RecordingFailure(Exception):
    """A recording file could not be produced (never raised into the call path)."""


@dataclass(frozen=True, slots=True)
class RecordingPaths:
    """Where MixMonitor writes (``pbx_dir``, on the PBX host) and where Marcador reads and keeps
    the files (``local_dir``: the same directory through a shared path, or the target of
    ``fetch_command``)."""

    pbx_dir: str
    local_dir: Path
    fetch_command: str = ""
    settle_seconds: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordingPaths:
        rec = settings.recording
        pbx = rec.pbx_dir or str((settings.data_dir / "recordings").resolve())
        local = Path(rec.local_dir) if rec.local_dir else Path(pbx)
        return cls(pbx, local, rec.fetch_command, rec.settle_seconds)

    def pbx_file(self, attempt_uuid: str) -> str:
        return f"{self.pbx_dir.rstrip('/')}/{_safe(attempt_uuid)}{dp.RECORD_EXTENSION}"

    def local_raw(self, attempt_uuid: str) -> Path:
        return self.local_dir / f"{_safe(attempt_uuid)}{dp.RECORD_EXTENSION}"

    def local_wav(self, attempt_uuid: str) -> Path:
        return self.local_dir / f"{_safe(attempt_uuid)}.wav"


def _safe(name: str) -> str:
    """Attempt ids are hex uuids; anything else is reduced to a safe file name."""
    return "".join(c for c in name if c.isalnum() or c in "-_") or "attempt"


def recording_variables(
    campaign: Campaign, attempt_uuid: str, paths: RecordingPaths | None
) -> dict[str, str]:
    """Originate variables that make the dialplan record this call (empty when it does not)."""
    if paths is None or not campaign.record_calls:
        return {}
    out = {dp.VAR_RECORD: "1", dp.VAR_RECORD_FILE: paths.pbx_file(attempt_uuid)}
    if campaign.recording_consent_prompt:
        out[dp.VAR_CONSENT_PROMPT] = campaign.recording_consent_prompt
    return out


# --------------------------------------------------------------------------- files


@dataclass(frozen=True, slots=True)
class FileFacts:
    size: int
    sha256: str
    duration_s: float
    channels: int


def raw_to_wav(raw: Path, wav: Path) -> None:
    """Wrap MixMonitor's interleaved ``.raw`` (option D) into a stereo 8 kHz 16-bit WAV and
    remove the ``.raw``. Raises OSError (disk full, permissions) and RecordingFailure."""
    data = raw.read_bytes()
    frame = SAMPLE_WIDTH * 2
    usable = len(data) - len(data) % frame
    tmp = wav.with_suffix(".wav.part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(data[:usable])
    os.replace(tmp, wav)
    raw.unlink(missing_ok=True)


def file_facts(path: Path) -> FileFacts:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    try:
        with wave.open(str(path), "rb") as w:
            channels = w.getnchannels()
            duration = w.getnframes() / float(w.getframerate() or SAMPLE_RATE)
    except (wave.Error, EOFError) as exc:
        raise RecordingFailure(f"not a WAV file: {exc}") from exc
    return FileFacts(path.stat().st_size, digest.hexdigest(), round(duration, 3), channels)


def _produce(paths: RecordingPaths, attempt_uuid: str) -> FileFacts:
    """Blocking: the finished WAV for the attempt (converted from the ``.raw`` if needed)."""
    wav = paths.local_wav(attempt_uuid)
    raw = paths.local_raw(attempt_uuid)
    if raw.exists():
        raw_to_wav(raw, wav)
    if not wav.exists():
        raise RecordingFailure("missing: no file after the call")
    return file_facts(wav)


async def _fetch(paths: RecordingPaths, attempt_uuid: str) -> None:
    """Copy the ``.raw`` from the PBX host with the configured command (no shell)."""
    if not paths.fetch_command:
        return
    args = [
        part.format(remote=paths.pbx_file(attempt_uuid), local=str(paths.local_raw(attempt_uuid)))
        for part in shlex.split(paths.fetch_command)
    ]
    paths.local_dir.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RecordingFailure(
            f"fetch failed ({proc.returncode}): {err.decode(errors='replace')[:120]}"
        )


# --------------------------------------------------------------------------- rows

Sleep = Callable[[float], Awaitable[None]]


class RecordingKeeper:
    """The dialer's side of recording: rows in SQL, files finalised after the call."""

    def __init__(
        self,
        sm: async_sessionmaker[AsyncSession],
        paths: RecordingPaths,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.sm = sm
        self.paths = paths
        self.sleep = sleep

    async def started(self, attempt_uuid: str, agent_id: int | None, now: datetime) -> int | None:
        """The call connected on a recording campaign: the row (``recording``). Idempotent."""
        async with self.sm.begin() as s:
            row = (
                await s.execute(
                    sa.select(
                        CallAttempt.id,
                        CallAttempt.lead_id,
                        Campaign.id,
                        Campaign.record_calls,
                        Campaign.recording_retention_days,
                    )
                    .join(Campaign, Campaign.id == CallAttempt.campaign_id)
                    .where(CallAttempt.uuid == attempt_uuid)
                )
            ).first()
            if row is None or not row[3]:
                return None
            existing = await s.scalar(sa.select(Recording.id).where(Recording.attempt_id == row[0]))
            if existing is not None:
                return int(existing)
            rec = Recording(
                attempt_id=row[0],
                lead_id=row[1],
                campaign_id=row[2],
                agent_id=agent_id,
                started_at=now,
                channels=2,
                pbx_path=self.paths.pbx_file(attempt_uuid),
                path=str(self.paths.local_wav(attempt_uuid)),
                retention_until=now + timedelta(days=int(row[4])),
                status=RecordingStatus.RECORDING,
            )
            s.add(rec)
            await s.flush()
            log.info("recording_started", attempt=attempt_uuid, recording=rec.id)
            return int(rec.id)

    async def stopped(self, attempt_uuid: str, by: int | None, now: datetime) -> int | None:
        """The agent stopped the recording (the customer objected)."""
        async with self.sm.begin() as s:
            rec = await _by_attempt(s, attempt_uuid)
            if rec is None:
                return None
            rec.stopped_at = now
            rec.stopped_by = by
            s.add(
                AuditLog(
                    at=now,
                    actor=f"user:{by}" if by is not None else "dialer",
                    action="recording.stop",
                    target_type="recording",
                    target_id=str(rec.id),
                    detail={"attempt": attempt_uuid},
                )
            )
            return int(rec.id)

    async def finished(
        self, attempt_uuid: str, now: datetime, *, attempts: int = 3
    ) -> RecordingStatus | None:
        """After the hang-up: the file becomes a WAV and its facts go on the row; any failure
        marks the row ``failed`` with the reason (the call already ended normally)."""
        async with self.sm() as s:
            rec = await _by_attempt(s, attempt_uuid)
            if rec is None or rec.status is not RecordingStatus.RECORDING:
                return None
        facts: FileFacts | None = None
        reason = ""
        if self.paths.settle_seconds > 0:  # MixMonitor's thread flushes and closes the file
            await self.sleep(min(0.5, self.paths.settle_seconds))
        for attempt in range(max(1, attempts)):
            try:
                await _fetch(self.paths, attempt_uuid)
                facts = await asyncio.to_thread(_produce, self.paths, attempt_uuid)
                break
            except RecordingFailure as exc:
                reason = str(exc)
            except OSError as exc:  # disk full, not writable, ...
                reason = f"{type(exc).__name__}: {exc.strerror or exc}"
            if attempt + 1 < attempts:
                await self.sleep(self.paths.settle_seconds / max(1, attempts - 1))
        async with self.sm.begin() as s:
            rec = await _by_attempt(s, attempt_uuid)
            if rec is None:
                return None
            rec.ended_at = now
            if facts is None:
                rec.status = RecordingStatus.FAILED
                rec.failure_reason = reason[:200] or "missing"
                log.warning("recording_failed", attempt=attempt_uuid, reason=rec.failure_reason)
            else:
                rec.status = RecordingStatus.OK
                rec.size_bytes = facts.size
                rec.sha256 = facts.sha256
                rec.duration_s = facts.duration_s
                rec.channels = facts.channels
                log.info("recording_ok", attempt=attempt_uuid, seconds=facts.duration_s)
            return rec.status

    async def sweep(self, now: datetime, older_than: timedelta = timedelta(minutes=2)) -> int:
        """Finalise recordings whose call ended a while ago but were never finalised (the
        dialer that had the call died after the hang-up). Returns how many were handled."""
        async with self.sm() as s:
            uuids = (
                await s.scalars(
                    sa.select(CallAttempt.uuid)
                    .join(Recording, Recording.attempt_id == CallAttempt.id)
                    .where(
                        Recording.status == RecordingStatus.RECORDING,
                        CallAttempt.ended_at.is_not(None),
                        CallAttempt.ended_at < now - older_than,
                    )
                    .limit(50)
                )
            ).all()
        for uuid in uuids:
            await self.finished(uuid, now, attempts=1)
        return len(uuids)


async def _by_attempt(s: AsyncSession, attempt_uuid: str) -> Recording | None:
    rec: Recording | None = await s.scalar(
        sa.select(Recording)
        .join(CallAttempt, CallAttempt.id == Recording.attempt_id)
        .where(CallAttempt.uuid == attempt_uuid)
    )
    return rec


def _delete_file(path: str) -> str | None:
    """Remove a recording (and a leftover ``.raw``); the error text, or None."""
    try:
        p = Path(path)
        p.unlink(missing_ok=True)
        p.with_suffix(dp.RECORD_EXTENSION).unlink(missing_ok=True)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class PurgeResult:
    deleted: int
    errors: int


async def purge_expired(
    sm: async_sessionmaker[AsyncSession], now: datetime, *, actor: str = "scheduler"
) -> PurgeResult:
    """Delete the files of recordings past their retention date; rows become ``deleted``
    (metadata without the audio stays for the reports). Idempotent."""
    async with sm() as s:
        rows = (
            await s.execute(
                sa.select(Recording.id, Recording.path).where(
                    Recording.retention_until <= now,
                    Recording.status.in_(
                        [RecordingStatus.OK, RecordingStatus.FAILED, RecordingStatus.RECORDING]
                    ),
                )
            )
        ).all()
    deleted = errors = 0
    for rec_id, path in rows:
        error = await asyncio.to_thread(_delete_file, path)
        async with sm.begin() as s:
            if error is not None:
                errors += 1
                log.warning("recording_purge_failed", recording=rec_id, error=error)
                continue
            await s.execute(
                sa.update(Recording)
                .where(Recording.id == rec_id)
                .values(status=RecordingStatus.DELETED, deleted_at=now, deleted_reason="retention")
            )
            deleted += 1
    if rows:
        async with sm.begin() as s:
            s.add(
                AuditLog(
                    at=now,
                    actor=actor,
                    action="recordings.purge",
                    target_type="recording",
                    detail={"deleted": deleted, "errors": errors},
                )
            )
    return PurgeResult(deleted, errors)


# --------------------------------------------------------------------------- habeas data


@dataclass(frozen=True, slots=True)
class ErasureResult:
    leads: int
    attempts: int
    recordings: int


async def erase_person(
    sm: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    national_id: str | None = None,
    phone: str | None = None,
    actor: str,
    ip: str | None = None,
) -> ErasureResult:
    """Data-subject deletion (Ley 1581 de 2012): the person's recordings are deleted, their
    personal data in leads, phones, attempts and disposition notes masked; the rows stay (so
    attempts, outcomes and dispositions still count in the reports) and the lead is excluded
    from dialing. The DNC list is kept (the opt-out must keep working). Audited; the audit
    entry holds no personal data."""
    if not national_id and not phone:
        raise ValueError("national_id or phone is required")
    async with sm.begin() as s:
        conds: list[Any] = []
        if national_id:
            conds.append(Lead.national_id == national_id)
        if phone:
            conds.append(Lead.id.in_(sa.select(Phone.lead_id).where(Phone.e164 == phone)))
        lead_ids: Sequence[int] = (await s.scalars(sa.select(Lead.id).where(sa.or_(*conds)))).all()
        recs = (
            await s.execute(
                sa.select(Recording.id, Recording.path).where(
                    Recording.lead_id.in_(lead_ids), Recording.status != RecordingStatus.DELETED
                )
            )
        ).all()
        for rec_id, path in recs:
            error = await asyncio.to_thread(_delete_file, path)
            await s.execute(
                sa.update(Recording)
                .where(Recording.id == rec_id)
                .values(
                    status=RecordingStatus.DELETED,
                    deleted_at=now,
                    deleted_reason="data_subject"
                    if error is None
                    else f"data_subject ({error})"[:80],
                    sha256=None,
                )
            )
        attempts = 0
        for lead_id in lead_ids:
            await s.execute(
                sa.update(Lead)
                .where(Lead.id == lead_id)
                .values(
                    customer_name=ERASED,
                    national_id=None,
                    email=None,
                    plate=None,
                    external_id=None,
                    extra={},
                    dedupe_key=f"erased:{lead_id}",
                    status=LeadStatus.EXCLUDED,
                    status_reason="data_subject_deletion",
                    next_attempt_at=None,
                    updated_at=now,
                )
            )
            for phone_id in (
                await s.scalars(sa.select(Phone.id).where(Phone.lead_id == lead_id))
            ).all():
                await s.execute(
                    sa.update(Phone)
                    .where(Phone.id == phone_id)
                    .values(e164=f"erased:{phone_id}", valid=False)
                )
            result = await s.execute(
                sa.update(CallAttempt)
                .where(CallAttempt.lead_id == lead_id)
                .values(number=ERASED, channel=None)
            )
            attempts += int(result.rowcount or 0)  # type: ignore[attr-defined]
            await s.execute(
                sa.update(Disposition).where(Disposition.lead_id == lead_id).values(notes="")
            )
        s.add(
            AuditLog(
                at=now,
                actor=actor,
                action="data_subject.erase",
                target_type="person",
                target_id="",
                detail={
                    "leads": list(lead_ids),
                    "attempts": attempts,
                    "recordings": len(recs),
                    "by": "national_id" if national_id else "phone",
                },
                ip=ip,
            )
        )
    log.info("data_subject_erased", leads=len(lead_ids), recordings=len(recs))
    return ErasureResult(len(lead_ids), attempts, len(recs))


async def purge_loop(
    sm: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    stop: asyncio.Event,
    interval: float = 60.0,
) -> None:
    """Run :func:`purge_expired` at each fire of ``recording.purge_schedule`` (daily by
    default), checked every ``interval`` seconds until ``stop``. The purge is idempotent, so
    several API replicas firing together only repeat a no-op."""
    from dialer.reports.cron import parse_cron, previous_fire

    expression = settings.recording.purge_schedule.strip()
    if not expression:
        return
    schedule = parse_cron(expression)
    last: datetime | None = previous_fire(schedule, clock.now(), settings.timezone)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        now = clock.now()
        fire = previous_fire(schedule, now, settings.timezone)
        if fire is None or (last is not None and fire <= last):
            continue
        last = fire
        try:
            result = await purge_expired(sm, now)
            log.info("recordings_purged", deleted=result.deleted, errors=result.errors)
        except Exception as exc:
            log.error("recording_purge_error", error=type(exc).__name__)
