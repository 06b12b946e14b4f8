"""``marcador pbx-lab start|stop|status`` (a lab Asterisk) and ``marcador pbx check``."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
lab_app = typer.Typer(
    help="A lab Asterisk 22 (the prebuilt bundle) with Marcador's dialplan, lab customers, "
    "virtual agents, generated secrets and free ports.",
    no_args_is_help=True,
)
pbx_app = typer.Typer(help="Checks of a real Asterisk for Marcador.", no_args_is_help=True)

RunDir = Annotated[
    Path | None,
    typer.Option("--run-dir", help="Where the lab lives (default: <data_dir>/pbx-lab)."),
]


def _run_dir(ctx: typer.Context, run_dir: Path | None) -> Path:
    from dialer.cli import get_settings

    return run_dir or get_settings(ctx).data_dir / "pbx-lab"


@lab_app.command("start")
def lab_start(
    ctx: typer.Context,
    run_dir: RunDir = None,
    softphones: Annotated[
        bool,
        typer.Option(
            "--softphones", help="Agents log in with registered phones (PJSIP/<ext>), not virtual."
        ),
    ] = False,
) -> None:
    """Build the configuration and start the lab Asterisk; print what a dialer needs."""
    from dialer.pbx_lab import LabError, LabPbx

    where = _run_dir(ctx, run_dir)
    try:
        lab = LabPbx.start(where, progress=lambda msg: console.print(f"[dim]…[/] {msg}"))
    except LabError as exc:
        console.print(f"[bold red]pbx-lab start failed:[/] {exc}")
        raise typer.Exit(1) from None
    p = lab.ports
    console.print(f"[green]Lab Asterisk running[/] (pid {lab.pid}), state: {lab.state_file}")
    console.print(
        f"  AMI 127.0.0.1:{p.ami} · SIP udp 127.0.0.1:{p.sip} · RTP {p.rtp_start}-{p.rtp_end}"
    )
    console.print(f"  CLI: {lab.pbx_dir / 'cli'} -rx 'core show channels'")
    table = Table("seat", "password", title="Agent seats (SIP user = seat)")
    for ext, password in lab.agent_passwords.items():
        table.add_row(ext, password)
    console.print(table)
    console.print("Customers: Local/<number>@marcador-lab-pstn, last digit = behaviour")
    console.print("(docs/asterisk.md, 'Lab PBX'). For a dialer on this lab:")
    servers = lab.servers_json(virtual_agents=not softphones)
    typer.echo(f"export MARCADOR_ASTERISK__SERVERS={shlex.quote(servers)}")


@lab_app.command("stop")
def lab_stop(ctx: typer.Context, run_dir: RunDir = None) -> None:
    """Stop the lab Asterisk (core stop now, then its recorded pid only)."""
    from dialer.pbx_lab import LabError, LabPbx

    try:
        LabPbx.load(_run_dir(ctx, run_dir)).stop()
    except LabError as exc:
        console.print(f"[bold red]pbx-lab stop failed:[/] {exc}")
        raise typer.Exit(1) from None
    console.print("[green]Lab Asterisk stopped[/]")


@lab_app.command("status")
def lab_status(ctx: typer.Context, run_dir: RunDir = None) -> None:
    """Is the lab running; its ports and endpoints."""
    from dialer.pbx_lab import LabError, LabPbx

    try:
        lab = LabPbx.load(_run_dir(ctx, run_dir))
    except LabError as exc:
        console.print(f"no lab: {exc}")
        raise typer.Exit(1) from None
    if not lab.running():
        console.print(f"[yellow]stopped[/] (state in {lab.state_file})")
        raise typer.Exit(1)
    p = lab.ports
    ws = f" · WebSocket {lab.ws_url}" if p.http else ""
    console.print(f"[green]running[/] pid {lab.pid} · AMI {p.ami} · SIP {p.sip}{ws}")
    console.print(lab.cli("pjsip show contacts").strip() or "no registered phones")
    problems = lab.log_problems()
    if problems:
        console.print(f"[yellow]{len(problems)} warning/error lines[/] in the Asterisk log")


@pbx_app.command("webrtc-password")
def pbx_webrtc_password(
    ctx: typer.Context,
    extension: Annotated[str, typer.Argument(help="The browser seat's extension, e.g. 1101.")],
) -> None:
    """Print a browser-phone seat's SIP password for pjsip.conf (derived from
    MARCADOR_WEBRTC__SECRET; the agent page receives the same value)."""
    from dialer.cli import get_settings
    from dialer.webrtc import is_browser_seat, seat_password

    settings = get_settings(ctx)
    if not is_browser_seat(settings.webrtc.extensions, extension):
        console.print(
            f"[yellow]{extension} is not in MARCADOR_WEBRTC__EXTENSIONS[/] "
            f"({settings.webrtc.extensions or 'empty'}): the agent page will not register it."
        )
    typer.echo(seat_password(settings.webrtc.secret.get_secret_value(), extension))


@pbx_app.command("check")
def pbx_check(ctx: typer.Context) -> None:
    """Connect with the configured AMI user(s) and print a readiness checklist."""
    from dialer.cli import get_settings
    from dialer.pbx_check import Status, check_servers

    settings = get_settings(ctx)
    servers = settings.asterisk.servers
    if not servers:
        console.print(
            "[yellow]No Asterisk configured[/] (MARCADOR_ASTERISK__SERVERS is empty: the dialer "
            "uses the built-in simulator). Nothing to check."
        )
        raise typer.Exit(1)
    results = asyncio.run(check_servers(servers))
    marks = {Status.OK: "[green]✔[/]", Status.WARN: "[yellow]![/]", Status.FAIL: "[red]✘[/]"}
    table = Table("", "server", "check", "detail", title="Asterisk readiness for Marcador")
    for r in results:
        table.add_row(marks[r.status], r.server, r.item, r.detail)
    console.print(table)
    failed = [r for r in results if r.status is Status.FAIL]
    warned = [r for r in results if r.status is Status.WARN]
    if failed:
        console.print(f"[bold red]{len(failed)} check(s) failed[/], {len(warned)} warning(s)")
        raise typer.Exit(1)
    console.print(f"[bold green]All checks passed[/] ({len(warned)} warning(s))")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="pbx-lab")
    app.add_typer(pbx_app, name="pbx")
