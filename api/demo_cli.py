"""``marcador demo``: the command of :mod:`api.demo` (registered lazily from ``dialer/cli.py``).

In the top layer with the demo itself: it starts the API next to the engine. Passwords are
printed to this terminal once, never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dialer.settings import Settings

console = Console()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    if not isinstance(settings, Settings):
        raise RuntimeError("settings not loaded")
    return settings


def demo_command(
    ctx: typer.Context,
    agents: Annotated[int, typer.Option(min=1, max=50, help="Simulated agents.")] = 5,
    leads: Annotated[int, typer.Option(min=1, max=100_000, help="Leads to generate.")] = 200,
    speed: Annotated[float, typer.Option(min=0.1, max=100, help="Time speed-up.")] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many simulated seconds.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2026,
    live: Annotated[bool, typer.Option(help="Live table in the terminal.")] = True,
    serve: Annotated[
        bool,
        typer.Option(
            help="Serve the API and web screens on 127.0.0.1 and run the WhatsApp fallback "
            "against the local fake Graph API."
        ),
    ] = True,
) -> None:
    """Run a whole simulated campaign on the embedded default, with the web screens and the
    WhatsApp fallback (Ctrl-C to stop)."""
    from api.demo import DemoAccess, DemoOptions, run_demo

    settings = _settings(ctx)
    opts = DemoOptions(
        agents=agents,
        leads=leads,
        speed=speed,
        duration=duration,
        seed=seed,
        live=live,
        serve=serve,
    )

    async def show_access(access: DemoAccess) -> None:
        # Passwords go to this terminal once, never to the logs.
        table = Table("pantalla", "URL", title="Marcador demo (solo en este equipo)")
        for name, url in access.urls.items():
            table.add_row(name, url)
        console.print(table)
        logins = Table(
            "rol",
            "usuario",
            "contraseña",
            "extensión",
            title=f"Ingreso en {access.api_url}/ingresar (contraseñas nuevas en cada arranque)",
        )
        for login in access.logins:
            logins.add_row(login.role, login.username, login.password, login.extension or "")
        console.print(logins)
        console.print(
            f"WhatsApp: API de Graph simulada en {access.graph_url} (no sale ningún mensaje "
            "real). Ctrl-C detiene todo."
        )

    interrupted = False

    async def main() -> dict[str, int]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def first_signal() -> None:
            nonlocal interrupted
            interrupted = True
            stop.set()
            for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C: default behaviour
                loop.remove_signal_handler(sig)

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, first_signal)
        return await run_demo(settings, opts, stop=stop, on_ready=show_access)

    try:
        stats = asyncio.run(main())
    except KeyboardInterrupt:
        console.print("[yellow]Demo detenida[/]")
        return
    from api.demo import summary_text

    if interrupted:
        console.print(f"[yellow]Demo detenida[/]: {summary_text(stats)}")
    else:
        console.print(f"[green]Demo terminada[/]: {summary_text(stats)}")
