"""Indicator reports (issue 8): JSON indicators, filter options, stored runs and downloads.

Supervisors and admins only (API keys need the ``reports:read`` scope, or ``admin``).
Supervisors see the campaigns they are assigned to: filters are narrowed to that scope, and a
stored run is visible to them only if it was made for campaigns inside it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import Principal
from api.deps import Ctx, PrincipalDep, RequestContext
from api.errors import ApiError, not_found
from api.types import MAX_ID, PathId
from dialer.db.models import Campaign, Lead, Role, User
from dialer.domain.outcomes import CampaignType
from dialer.domain.windows import default_calendar
from dialer.reports import runs as report_runs
from dialer.reports.definitions import Report
from dialer.reports.filters import InvalidReportFilter, ReportFilter
from dialer.reports.queries import build_report

#: Scope an API key needs for these endpoints (sessions: the supervisor or admin role).
REPORTS_SCOPE = "reports:read"

#: Campaign id that never exists: a supervisor without assigned campaigns sees nothing.
_NO_CAMPAIGN = 0


async def require_reports(principal: PrincipalDep) -> Principal:
    """Supervisors and admins (or an API key with ``reports:read`` / ``admin``)."""
    if principal.has(REPORTS_SCOPE) or principal.role in (Role.SUPERVISOR, Role.ADMIN):
        return principal
    raise ApiError(
        403,
        "forbidden",
        "reports are for supervisors and admins (API keys: the 'reports:read' scope)",
        {"scope": REPORTS_SCOPE},
    )


router = APIRouter(prefix="/reports", tags=["reports"], dependencies=[Depends(require_reports)])

IdList = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None, Query()]
TextList = Annotated[list[Annotated[str, Field(min_length=1, max_length=80)]] | None, Query()]


class FilterIn(BaseModel):
    """Period (a month, or first and last day) and optional restrictions."""

    model_config = ConfigDict(extra="forbid")

    month: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}$", examples=["2026-10"])
    date_from: date | None = None
    date_to: date | None = None
    campaign_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=200
    )
    campaign_types: list[CampaignType] = Field(default_factory=list, max_length=10)
    brands: list[Annotated[str, Field(max_length=80)]] = Field(default_factory=list, max_length=50)
    branches: list[Annotated[str, Field(max_length=80)]] = Field(
        default_factory=list, max_length=50
    )
    agent_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=200
    )


async def _filter(ctx: RequestContext, data: FilterIn) -> ReportFilter:
    scope = await ctx.campaign_scope()
    campaign_ids = tuple(data.campaign_ids)
    if scope is not None:
        outside = sorted(set(campaign_ids) - scope)
        if outside:
            raise ApiError(
                403,
                "forbidden",
                "you are not assigned to some of these campaigns",
                {"campaign_ids": outside},
            )
        campaign_ids = campaign_ids or tuple(sorted(scope)) or (_NO_CAMPAIGN,)
    common: dict[str, Any] = {
        "timezone": ctx.settings.timezone,
        "campaign_ids": campaign_ids,
        "campaign_types": tuple(data.campaign_types),
        "brands": tuple(data.brands),
        "branches": tuple(data.branches),
        "agent_ids": tuple(data.agent_ids),
    }
    try:
        if data.month and not (data.date_from or data.date_to):
            return ReportFilter.for_month(data.month, **common)
        if data.date_from and data.date_to and not data.month:
            return ReportFilter.for_dates(data.date_from, data.date_to, **common)
    except (InvalidReportFilter, ValidationError) as exc:
        message = (
            "; ".join(str(e["msg"]) for e in exc.errors(include_url=False))
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        raise ApiError(422, "invalid_report_filter", message) from None
    raise ApiError(
        422,
        "invalid_report_filter",
        "give either month=YYYY-MM or both date_from and date_to",
    )


async def _filter_query(
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", examples=["2026-10"])] = None,
    date_from: date | None = None,
    date_to: date | None = None,
    campaign_id: IdList = None,
    campaign_type: Annotated[list[CampaignType] | None, Query()] = None,
    brand: TextList = None,
    branch: TextList = None,
    agent_id: IdList = None,
) -> FilterIn:
    return FilterIn(
        month=month,
        date_from=date_from,
        date_to=date_to,
        campaign_ids=campaign_id or [],
        campaign_types=campaign_type or [],
        brands=brand or [],
        branches=branch or [],
        agent_ids=agent_id or [],
    )


FilterQuery = Annotated[FilterIn, Depends(_filter_query)]


@router.get("/indicators", summary="Every indicator group for a period (JSON)")
async def indicators(ctx: Ctx, params: FilterQuery) -> Report:
    flt = await _filter(ctx, params)
    return await build_report(
        ctx.db,
        flt,
        now=ctx.now(),
        calendar=default_calendar(),
        satisfaction_window_days=ctx.settings.reports.satisfaction_window_days,
    )


class Option(BaseModel):
    id: int | str
    label: str


class FilterOptions(BaseModel):
    campaigns: list[Option]
    campaign_types: list[Option]
    brands: list[str]
    branches: list[str]
    agents: list[Option]


@router.get("/options", summary="Values for the report filters (Reportes page)")
async def options(ctx: Ctx) -> FilterOptions:
    from dialer.reports.definitions import CAMPAIGN_TYPE_LABELS

    scope = await ctx.campaign_scope()
    camp_conds = [] if scope is None else [Campaign.id.in_(sorted(scope) or [_NO_CAMPAIGN])]
    lead_conds = [] if scope is None else [Lead.campaign_id.in_(sorted(scope) or [_NO_CAMPAIGN])]
    campaigns = await ctx.db.execute(
        sa.select(Campaign.id, Campaign.name).where(*camp_conds).order_by(Campaign.name)
    )
    brands = await ctx.db.scalars(
        sa.select(Lead.brand).where(Lead.brand.is_not(None), *lead_conds).distinct()
    )
    branches = await ctx.db.scalars(
        sa.select(Lead.branch).where(Lead.branch.is_not(None), *lead_conds).distinct()
    )
    agents = await ctx.db.execute(
        sa.select(User.id, User.username, User.full_name)
        .where(User.role == Role.AGENT)
        .order_by(User.username)
    )
    return FilterOptions(
        campaigns=[Option(id=i, label=n) for i, n in campaigns],
        campaign_types=[
            Option(id=t.value, label=CAMPAIGN_TYPE_LABELS[t.value]) for t in CampaignType
        ],
        brands=sorted({b for b in brands if b}),
        branches=sorted({b for b in branches if b}),
        agents=[Option(id=i, label=f or u) for i, u, f in agents],
    )


class RunOut(BaseModel):
    id: int
    label: str
    period_start: date
    period_end: date
    timezone: str
    filters: dict[str, Any]
    trigger: str
    requested_by: str
    status: str
    created_at: str
    finished_at: str | None
    error: str | None
    summary: dict[str, Any]
    xlsx_url: str | None
    html_url: str | None


class RunPage(BaseModel):
    items: list[RunOut]
    total: int
    limit: int
    offset: int


def _run_out(run: report_runs.RunInfo) -> RunOut:
    data = run.to_dict()
    done = run.status == "done"
    base = f"/api/v1/reports/runs/{run.id}"
    return RunOut(
        id=run.id,
        label=run.label,
        period_start=run.period_start,
        period_end=run.period_end,
        timezone=run.timezone,
        filters=run.filters,
        trigger=run.trigger,
        requested_by=run.requested_by,
        status=run.status,
        created_at=data["created_at"],
        finished_at=data["finished_at"],
        error=run.error,
        summary=run.summary,
        xlsx_url=f"{base}/xlsx" if done else None,
        html_url=f"{base}/html" if done else None,
    )


async def _visible(ctx: RequestContext, run: report_runs.RunInfo) -> bool:
    scope = await ctx.campaign_scope()
    if scope is None:
        return True
    ids = set(run.filters.get("campaign_ids") or [])
    return bool(ids) and ids <= scope


@router.get("/runs", summary="Stored report runs, newest first")
async def list_runs(
    ctx: Ctx,
    label: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RunPage:
    scope = await ctx.campaign_scope()
    if scope is None:
        items, total = await report_runs.list_runs(
            ctx.sessionmaker, limit=limit, offset=offset, label=label
        )
        return RunPage(items=[_run_out(r) for r in items], total=total, limit=limit, offset=offset)
    everything, _ = await report_runs.list_runs(ctx.sessionmaker, limit=10_000, label=label)
    visible = [r for r in everything if await _visible(ctx, r)]
    page = visible[offset : offset + limit]
    return RunPage(
        items=[_run_out(r) for r in page], total=len(visible), limit=limit, offset=offset
    )


@router.post("/runs", status_code=201, summary="Generate a report now and store it")
async def create_run(ctx: Ctx, body: FilterIn) -> RunOut:
    flt = await _filter(ctx, body)
    run = await report_runs.create_run(
        ctx.sessionmaker,
        ctx.settings,
        flt,
        now=ctx.now(),
        trigger="api",
        requested_by=ctx.principal.actor,
        calendar=default_calendar(),
    )
    ctx.audit("report.create", "report_run", run.id, label=run.label, status=run.status)
    await ctx.commit()
    return _run_out(run)


async def _get(ctx: RequestContext, run_id: int) -> report_runs.RunInfo:
    run = await report_runs.get_run(ctx.sessionmaker, run_id)
    if run is None or not await _visible(ctx, run):
        raise not_found("report run", run_id)
    return run


@router.get("/runs/{run_id}", summary="One stored report run")
async def get_run(ctx: Ctx, run_id: PathId) -> RunOut:
    return _run_out(await _get(ctx, run_id))


_MEDIA = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
}


@router.get(
    "/runs/{run_id}/{kind}",
    summary="Download a stored report (XLSX or printable HTML)",
    response_class=Response,
    responses={200: {"content": {_MEDIA["xlsx"]: {}, "text/html": {}}}},
)
async def download_run(ctx: Ctx, run_id: PathId, kind: Literal["xlsx", "html"]) -> Response:
    run = await _get(ctx, run_id)
    content = await report_runs.run_file(ctx.sessionmaker, run.id, kind)
    if content is None:
        raise ApiError(
            409, "report_not_ready", f"report run {run.id} is {run.status}", {"status": run.status}
        )
    filename = f"indicadores-{run.label}-{run.id}.{kind}"
    disposition = "attachment" if kind == "xlsx" else "inline"
    return Response(
        content=content,
        media_type=_MEDIA[kind],
        headers={"Content-Disposition": f'{disposition}; filename="{filename}"'},
    )
