"""``marcador import FILE --campaign X``: the lead import from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError, ProgrammingError

from dialer.importing.cleaning import CleaningOptions
from dialer.importing.errors import LeadImportError
from dialer.importing.mapping import ColumnMapping
from dialer.importing.reader import XlsxLimits
from dialer.importing.report import (
    ImportReport,
    default_report_path,
    print_summary,
    rich_progress,
    write_report,
)
from dialer.settings import Settings

__all__ = ["register", "run_import"]

console = Console()


async def run_import(
    settings: Settings,
    file: Path,
    campaign: str,
    mapping: ColumnMapping | None,
    report_path: Path | None,
    options: CleaningOptions,
    assume_consent: str | None,
    out: Console,
) -> ImportReport:
    """Build the engine from settings, import, write the per-row report, print the summary."""
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.importing.service import import_file, resolve_campaign

    engine = make_engine(settings)
    try:
        sessionmaker = make_sessionmaker(engine)
        campaign_id = await resolve_campaign(sessionmaker, campaign)
        with rich_progress(out) as progress:
            report = await import_file(
                sessionmaker,
                campaign_id,
                file,
                mapping,
                progress=progress,
                options=options,
                assume_consent=assume_consent,
                limits=XlsxLimits.from_settings(settings.imports),
            )
    finally:
        await engine.dispose()
    write_report(report, report_path or default_report_path(file))
    print_summary(report, out)
    return report


def register(app: typer.Typer) -> None:
    """Add the ``import`` command to the ``marcador`` CLI."""

    @app.command("import")
    def import_command(
        ctx: typer.Context,
        file: Annotated[
            Path,
            typer.Argument(help="CSV or XLSX lead list.", exists=True, dir_okay=False),
        ],
        campaign: Annotated[str, typer.Option("--campaign", "-c", help="Campaign name or id.")],
        mapping: Annotated[
            Path | None,
            typer.Option(
                "--mapping",
                help='JSON column mapping, e.g. {"Tel Casa": "phone"} (Spanish defaults apply).',
                exists=True,
                dir_okay=False,
            ),
        ] = None,
        report: Annotated[
            Path | None,
            typer.Option(
                "--report",
                help="Per-row report (.csv or .xlsx). Default: FILE.reporte.csv next to FILE.",
            ),
        ] = None,
        landline_prefix: Annotated[
            str,
            typer.Option(
                "--landline-prefix",
                help="60X prefix for bare 7-digit landlines (608: Boyacá, Tunja, Duitama).",
            ),
        ] = "608",
        assume_consent: Annotated[
            str | None,
            typer.Option(
                "--assume-consent",
                help=(
                    "Proof of consent (e.g. 'habeas data firmado en taller') for rows without "
                    "an authorisation value; grants voice and WhatsApp consent."
                ),
            ),
        ] = None,
    ) -> None:
        """Import a lead list (CSV/XLSX) into a campaign: clean, deduplicate, report."""
        settings = ctx.obj
        if not isinstance(settings, Settings):
            raise RuntimeError("settings not loaded")
        try:
            options = CleaningOptions(default_landline_prefix=landline_prefix)
        except ValueError:
            console.print("[bold red]--landline-prefix debe ser 601, 602 o 604 a 608.[/]")
            raise typer.Exit(2) from None
        try:
            column_mapping = ColumnMapping.from_json(mapping) if mapping else None
            asyncio.run(
                run_import(
                    settings,
                    file,
                    campaign,
                    column_mapping,
                    report,
                    options,
                    assume_consent,
                    console,
                )
            )
        except LeadImportError as exc:
            console.print(f"[bold red]Error:[/] {exc.message_es}")
            console.print(f"[dim]{exc.message_en}[/]")
            raise typer.Exit(2) from None
        except (OperationalError, ProgrammingError) as exc:
            if "no such table" in str(exc) or "does not exist" in str(exc):
                console.print(
                    "[bold red]La base de datos no tiene el esquema.[/] "
                    "Ejecute: marcador db upgrade"
                )
                raise typer.Exit(2) from None
            raise
