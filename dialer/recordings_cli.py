"""``marcador recordings``: retention purge and data-subject deletion (docs/recording.md).

Registered lazily from ``dialer/cli.py``; heavy imports happen inside the commands.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

recordings_app = typer.Typer(
    help="Call recordings: retention purge, data-subject (habeas data) deletion.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(recordings_app, name="recordings")


def _settings(ctx: typer.Context) -> Any:
    obj = ctx.find_root().obj
    if obj is None:
        raise typer.Exit(2)
    return obj


async def _with_db(settings: Any, work: Any) -> Any:
    from dialer.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings)
    try:
        return await work(make_sessionmaker(engine))
    finally:
        await engine.dispose()


@recordings_app.command("purge")
def purge(ctx: typer.Context) -> None:
    """Delete the files of recordings past their retention date; rows are kept as deleted.

    The API runs it daily (MARCADOR_RECORDING__PURGE_SCHEDULE); this runs it now (cron/timer).
    """
    from datetime import UTC, datetime

    from dialer.recordings import purge_expired

    settings = _settings(ctx)
    result = asyncio.run(
        _with_db(settings, lambda sm: purge_expired(sm, datetime.now(UTC), actor="cli"))
    )
    typer.echo(f"deleted={result.deleted} errors={result.errors}")
    if result.errors:
        raise typer.Exit(1)


@recordings_app.command("erase-person")
def erase(
    ctx: typer.Context,
    national_id: Annotated[
        str | None, typer.Option("--national-id", help="Cédula / NIT of the person.")
    ] = None,
    phone: Annotated[
        str | None, typer.Option("--phone", help="E.164 number, e.g. +573001234567.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Habeas data: delete a person's recordings and mask their personal data in leads and
    attempts (the anonymous counts stay for the reports). Audited; cannot be undone."""
    from datetime import UTC, datetime

    from dialer.recordings import erase_person

    if not national_id and not phone:
        raise typer.BadParameter("give --national-id or --phone")
    if not yes:
        typer.confirm("This deletes recordings and personal data for good. Continue?", abort=True)
    settings = _settings(ctx)
    result = asyncio.run(
        _with_db(
            settings,
            lambda sm: erase_person(
                sm, datetime.now(UTC), national_id=national_id, phone=phone, actor="cli"
            ),
        )
    )
    typer.echo(f"leads={result.leads} attempts={result.attempts} recordings={result.recordings}")
