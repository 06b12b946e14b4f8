"""``marcador report``: the monthly indicator report as XLSX + printable HTML.

Registered from ``dialer/cli.py`` through :func:`register`. Heavy imports happen inside the
command so ``marcador --help`` stays fast.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from dialer.reports.definitions import Report

console = Console()


def _settings(ctx: typer.Context) -> Any:
    obj = ctx.find_root().obj
    if obj is None:
        raise typer.Exit(2)
    return obj


async def _resolve(sm: Any, campaigns: list[str], agents: list[str]) -> tuple[list[int], list[int]]:
    import sqlalchemy as sa

    from dialer.db.models import Campaign, User

    campaign_ids: list[int] = []
    agent_ids: list[int] = []
    async with sm() as s:
        for ref in campaigns:
            text = ref.strip()
            cond = (
                Campaign.id == int(text)
                if text.isdigit()
                else sa.func.lower(Campaign.name) == text.lower()
            )
            found = await s.scalar(sa.select(Campaign.id).where(cond))
            if found is None:
                raise typer.BadParameter(f"no campaign {ref!r} (id or exact name)")
            campaign_ids.append(int(found))
        for ref in agents:
            text = ref.strip()
            cond = User.id == int(text) if text.isdigit() else User.username == text
            found = await s.scalar(sa.select(User.id).where(cond))
            if found is None:
                raise typer.BadParameter(f"no agent {ref!r} (id or username)")
            agent_ids.append(int(found))
    return campaign_ids, agent_ids


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        ctx: typer.Context,
        month: Annotated[
            str | None, typer.Option(help="Month YYYY-MM (default: the previous month).")
        ] = None,
        date_from: Annotated[
            str | None, typer.Option("--from", help="First day YYYY-MM-DD (instead of --month).")
        ] = None,
        date_to: Annotated[
            str | None, typer.Option("--to", help="Last day YYYY-MM-DD (inclusive).")
        ] = None,
        campaign: Annotated[
            list[str] | None, typer.Option(help="Campaign id or name (repeatable).")
        ] = None,
        campaign_type: Annotated[
            list[str] | None,
            typer.Option(help="Campaign type, e.g. recuperacion_clientes (repeatable)."),
        ] = None,
        brand: Annotated[list[str] | None, typer.Option(help="Brand (repeatable).")] = None,
        branch: Annotated[list[str] | None, typer.Option(help="Branch/sede (repeatable).")] = None,
        agent: Annotated[
            list[str] | None, typer.Option(help="Agent id or username (repeatable).")
        ] = None,
        out: Annotated[Path, typer.Option(help="Output directory.")] = Path("reports"),
        store: Annotated[
            bool, typer.Option(help="Also store the run in the database (downloadable).")
        ] = False,
        scheduled: Annotated[
            bool,
            typer.Option(
                help="Only run the schedule (MARCADOR_REPORTS__SCHEDULE) if due, then exit."
            ),
        ] = False,
    ) -> None:
        """Indicators of a month: XLSX (one sheet per group, Excel charts) and printable HTML."""
        from dialer.domain.outcomes import CampaignType
        from dialer.reports.filters import previous_month
        from dialer.settings import Settings

        settings = _settings(ctx)
        assert isinstance(settings, Settings)
        now = datetime.now(UTC)
        if scheduled:
            asyncio.run(_scheduled(settings, now))
            return
        try:
            types = tuple(CampaignType(t) for t in campaign_type or ())
        except ValueError as exc:
            raise typer.BadParameter(
                f"{exc}; valid: {', '.join(t.value for t in CampaignType)}"
            ) from None
        common: dict[str, Any] = {
            "timezone": settings.timezone,
            "campaign_types": types,
            "brands": tuple(brand or ()),
            "branches": tuple(branch or ()),
        }
        first: date | None = None
        last: date | None = None
        if date_from or date_to:
            if not (date_from and date_to) or month:
                raise typer.BadParameter("use --from and --to together, without --month")
            first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
        else:
            month = month or previous_month(now.date())
        asyncio.run(
            _run(
                settings,
                now,
                month,
                first,
                last,
                common,
                list(campaign or ()),
                list(agent or ()),
                out,
                store,
            )
        )


def pct(value: float | None) -> str:
    """A percentage for people: ``–`` when there is no data (no calls), ``12,5 %`` otherwise."""
    if value is None:
        return "–"
    return f"{value:.1f} %".replace(".", ",")


def summary_line(report: Report) -> str:
    """The one-line summary printed after a report (Spanish, es-CO number format)."""
    e = report.effectiveness.total
    if not e.total_calls:
        return (
            "Sin llamadas en el periodo: efectividad –, contactabilidad –, "
            f"fuera de horario {report.compliance.total.outside_window}"
        )
    return (
        f"Efectividad {pct(e.effectiveness_pct)} ({e.effective_calls}/{e.total_calls}), "
        f"contactabilidad {pct(report.contactability.total.contactability_pct)}, "
        f"fuera de horario {report.compliance.total.outside_window}"
    )


async def _scheduled(settings: Any, now: datetime) -> None:
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.reports.runs import run_due

    engine = make_engine(settings)
    try:
        run = await run_due(make_sessionmaker(engine), settings, now)
    finally:
        await engine.dispose()
    if run is None:
        console.print("Nothing due.")
    else:
        console.print(f"Scheduled report {run.label}: run {run.id}, {run.status}")
        if run.status != "done":
            raise typer.Exit(1)


async def _run(
    settings: Any,
    now: datetime,
    month: str | None,
    first: date | None,
    last: date | None,
    common: dict[str, Any],
    campaigns: list[str],
    agents: list[str],
    out: Path,
    store: bool,
) -> None:
    from pydantic import ValidationError

    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.reports.filters import InvalidReportFilter, ReportFilter
    from dialer.reports.html import render_html
    from dialer.reports.queries import STEPS
    from dialer.reports.runs import create_run, generate
    from dialer.reports.xlsx import write_xlsx

    engine = make_engine(settings)
    sm = make_sessionmaker(engine)
    try:
        campaign_ids, agent_ids = await _resolve(sm, campaigns, agents)
        try:
            kwargs = {**common, "campaign_ids": tuple(campaign_ids), "agent_ids": tuple(agent_ids)}
            if month is not None:
                flt = ReportFilter.for_month(month, **kwargs)
            else:
                assert first is not None and last is not None
                flt = ReportFilter.for_dates(first, last, **kwargs)
        except (InvalidReportFilter, ValidationError) as exc:
            raise typer.BadParameter(str(exc)) from None
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"Informe {flt.label}", total=len(STEPS) + 2)

            def step(name: str) -> None:
                progress.update(task, advance=1, description=f"Informe {flt.label}: {name}")

            report = await generate(sm, settings, flt, now=now, progress=step)
            suffix = "" if not (flt.has_lead_filters or flt.agent_ids) else "-filtrado"
            xlsx_path = write_xlsx(report, out / f"indicadores-{flt.label}{suffix}.xlsx")
            step("XLSX")
            html_path = out / f"indicadores-{flt.label}{suffix}.html"
            html_path.write_text(render_html(report), encoding="utf-8")
            step("HTML")
        console.print(f"[green]XLSX[/]: {xlsx_path}\n[green]HTML[/]: {html_path}")
        console.print(summary_line(report))
        if store:
            run = await create_run(sm, settings, flt, now=now, trigger="cli", requested_by="cli")
            console.print(f"Stored as report run {run.id} ({run.status}).")
    finally:
        await engine.dispose()
