"""Stored report runs (``report_runs``): generate, store, list, download, and the monthly
schedule.

The schedule (``MARCADOR_REPORTS__SCHEDULE``, cron, local time) is checked by
:func:`run_due`, which any long-running process may call periodically (the API lifespan via
:func:`scheduler_loop`, or ``marcador report --scheduled`` from a systemd timer or cron). Each
fire time has a unique ``schedule_key``, so N processes produce one run; a run left
``running`` by a dead process is retried after :data:`STALE_AFTER`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import ReportRun
from dialer.domain.clock import Clock
from dialer.domain.windows import HolidayCalendar, resolve_tz
from dialer.logging import get_logger, mask_digits
from dialer.reports.cron import parse_cron, previous_fire
from dialer.reports.definitions import Report
from dialer.reports.filters import ReportFilter, previous_month
from dialer.reports.html import render_html
from dialer.reports.queries import Progress, build_report
from dialer.reports.xlsx import workbook_bytes
from dialer.settings import Settings

__all__ = [
    "STALE_AFTER",
    "RunInfo",
    "create_run",
    "generate",
    "get_run",
    "list_runs",
    "run_due",
    "scheduled_action",
    "scheduler_loop",
]

log = get_logger(__name__)

#: A run still "running" after this long belongs to a dead process and may be retried.
STALE_AFTER = timedelta(minutes=15)

RunStatus = Literal["running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: int
    label: str
    period_start: date
    period_end: date
    timezone: str
    filters: dict[str, Any]
    trigger: str
    requested_by: str
    schedule_key: str | None
    status: str
    created_at: datetime
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "timezone": self.timezone,
            "filters": self.filters,
            "trigger": self.trigger,
            "requested_by": self.requested_by,
            "schedule_key": self.schedule_key,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "error": self.error,
            "summary": self.summary,
        }


_COLUMNS = (
    ReportRun.id,
    ReportRun.label,
    ReportRun.period_start,
    ReportRun.period_end,
    ReportRun.timezone,
    ReportRun.filters,
    ReportRun.trigger,
    ReportRun.requested_by,
    ReportRun.schedule_key,
    ReportRun.status,
    ReportRun.created_at,
    ReportRun.started_at,
    ReportRun.finished_at,
    ReportRun.error,
    ReportRun.summary,
)


def _info(row: Any) -> RunInfo:
    return RunInfo(*row)


async def generate(
    sm: async_sessionmaker[AsyncSession],
    settings: Settings,
    flt: ReportFilter,
    *,
    now: datetime,
    calendar: HolidayCalendar | None = None,
    progress: Progress | None = None,
) -> Report:
    async with sm() as s:
        return await build_report(
            s,
            flt,
            now=now,
            calendar=calendar,
            satisfaction_window_days=settings.reports.satisfaction_window_days,
            progress=progress,
        )


async def _fill(
    sm: async_sessionmaker[AsyncSession],
    settings: Settings,
    run_id: int,
    flt: ReportFilter,
    now: datetime,
    calendar: HolidayCalendar | None,
) -> None:
    try:
        report = await generate(sm, settings, flt, now=now, calendar=calendar)
        xlsx = await asyncio.to_thread(workbook_bytes, report)
        html = await asyncio.to_thread(render_html, report)
    except Exception as exc:
        message = mask_digits(f"{type(exc).__name__}: {exc}")[:300]
        log.error("report_run_failed", run_id=run_id, error=message)
        async with sm.begin() as s:
            await s.execute(
                sa.update(ReportRun)
                .where(ReportRun.id == run_id)
                .values(status="failed", error=message, finished_at=datetime.now(UTC))
            )
        raise
    async with sm.begin() as s:
        await s.execute(
            sa.update(ReportRun)
            .where(ReportRun.id == run_id)
            .values(
                status="done",
                xlsx=xlsx,
                html=html,
                summary=_jsonable(report.headline()),
                finished_at=datetime.now(UTC),
                error=None,
            )
        )
    log.info("report_run_done", run_id=run_id, label=flt.label)


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}


async def create_run(
    sm: async_sessionmaker[AsyncSession],
    settings: Settings,
    flt: ReportFilter,
    *,
    now: datetime,
    trigger: str,
    requested_by: str = "",
    calendar: HolidayCalendar | None = None,
) -> RunInfo:
    """Generate a report now and store it (XLSX + HTML + headline numbers)."""
    async with sm.begin() as s:
        row = ReportRun(
            label=flt.label,
            period_start=flt.start,
            period_end=flt.end,
            timezone=flt.timezone,
            filters=flt.describe(),
            trigger=trigger,
            requested_by=requested_by[:80],
            status="running",
            created_at=now,
            started_at=now,
        )
        s.add(row)
        await s.flush()
        run_id = row.id
    with contextlib.suppress(Exception):
        await _fill(sm, settings, run_id, flt, now, calendar)
    info = await get_run(sm, run_id)
    assert info is not None
    return info


def schedule_key(fire: datetime) -> str:
    return f"cron:{fire.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def scheduled_action(
    status: str | None, started_at: datetime | None, now: datetime
) -> Literal["create", "retry", "skip"]:
    """What to do with the run of the latest fire time, given its stored state (pure)."""
    if status is None:
        return "create"
    if status == "done":
        return "skip"
    if status == "running" and started_at is not None and now - started_at < STALE_AFTER:
        return "skip"
    return "retry"


async def run_due(
    sm: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: datetime,
    *,
    calendar: HolidayCalendar | None = None,
) -> RunInfo | None:
    """Generate the scheduled report if its latest fire time has no finished run yet.

    The report covers the calendar month before the fire time (local), for every campaign.
    Returns the run, or None when nothing was due (or another process took it).
    """
    expression = settings.reports.schedule.strip()
    if not expression:
        return None
    fire = previous_fire(parse_cron(expression), now, settings.timezone)
    if fire is None:
        return None
    key = schedule_key(fire)
    async with sm() as s:
        existing = (
            await s.execute(
                sa.select(ReportRun.id, ReportRun.status, ReportRun.started_at).where(
                    ReportRun.schedule_key == key
                )
            )
        ).first()
    action = scheduled_action(
        existing[1] if existing else None, existing[2] if existing else None, now
    )
    if action == "skip":
        return None
    local_fire = fire.astimezone(resolve_tz(settings.timezone))
    flt = ReportFilter.for_month(previous_month(local_fire.date()), timezone=settings.timezone)
    if existing is None:
        try:
            async with sm.begin() as s:
                row = ReportRun(
                    label=flt.label,
                    period_start=flt.start,
                    period_end=flt.end,
                    timezone=flt.timezone,
                    filters=flt.describe(),
                    trigger="schedule",
                    requested_by="scheduler",
                    schedule_key=key,
                    status="running",
                    created_at=now,
                    started_at=now,
                )
                s.add(row)
                await s.flush()
                run_id = row.id
        except IntegrityError:
            return None  # another process created it first
    else:
        run_id = existing[0]
        async with sm.begin() as s:
            claimed = await s.execute(
                sa.update(ReportRun)
                .where(
                    ReportRun.id == run_id,
                    ReportRun.status == existing[1],
                    ReportRun.started_at == existing[2],
                )
                .values(status="running", started_at=now, error=None)
            )
            if int(claimed.rowcount or 0) != 1:  # type: ignore[attr-defined]
                return None
    with contextlib.suppress(Exception):
        await _fill(sm, settings, run_id, flt, now, calendar)
    return await get_run(sm, run_id)


async def scheduler_loop(
    sm: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    stop: asyncio.Event,
    interval: float = 60.0,
) -> None:
    """Check the schedule every ``interval`` seconds until ``stop`` is set (for a lifespan)."""
    while not stop.is_set():
        try:
            await run_due(sm, settings, clock.now())
        except Exception as exc:
            log.error("report_scheduler_error", error=mask_digits(type(exc).__name__))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def list_runs(
    sm: async_sessionmaker[AsyncSession],
    *,
    limit: int = 50,
    offset: int = 0,
    label: str | None = None,
) -> tuple[list[RunInfo], int]:
    conds = [] if label is None else [ReportRun.label == label]
    async with sm() as s:
        total = await s.scalar(sa.select(sa.func.count()).select_from(ReportRun).where(*conds))
        rows = await s.execute(
            sa.select(*_COLUMNS)
            .where(*conds)
            .order_by(ReportRun.created_at.desc(), ReportRun.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [_info(r) for r in rows], int(total or 0)


async def get_run(sm: async_sessionmaker[AsyncSession], run_id: int) -> RunInfo | None:
    async with sm() as s:
        row = (await s.execute(sa.select(*_COLUMNS).where(ReportRun.id == run_id))).first()
        return _info(row) if row is not None else None


async def run_file(
    sm: async_sessionmaker[AsyncSession], run_id: int, kind: Literal["xlsx", "html"]
) -> bytes | None:
    column = ReportRun.xlsx if kind == "xlsx" else ReportRun.html
    async with sm() as s:
        value = await s.scalar(sa.select(column).where(ReportRun.id == run_id))
    if value is None:
        return None
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)
