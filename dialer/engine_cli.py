"""Engine commands: ``marcador dialer``, ``campaign``, ``agent`` and ``lead explain``.

``marcador demo`` wires the API in as well, so it lives in the top layer: :mod:`api.demo_cli`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from dialer.domain.clock import SystemClock
from dialer.domain.eligibility import Readiness
from dialer.domain.outcomes import CampaignStatus, CampaignType, DialMode
from dialer.settings import Settings

console = Console()

campaign_app = typer.Typer(help="Campaigns: list, create from a preset, start, pause, finish.")
agent_app = typer.Typer(help="Agent commands sent to the dialer (what the agent screen does).")
lead_app = typer.Typer(help="Leads.")

PRESETS: dict[CampaignType, dict[str, object]] = {
    CampaignType.CONTACTO_PROACTIVO: {"max_attempts": 3, "whatsapp_enabled": True},
    CampaignType.RECUPERACION: {
        "max_attempts": 3,
        "whatsapp_enabled": True,
        "rules": {"recovery_min_days_since_visit": 365},
    },
    CampaignType.SATISFACCION: {
        "max_attempts": 5,
        "max_attempts_per_phone": 5,
        "whatsapp_enabled": False,
        "rules": {"satisfaction_first_call_day": 2, "skip_open_complaints": True},
    },
    CampaignType.AGENDAMIENTO: {"max_attempts": 3, "whatsapp_enabled": False},
    CampaignType.CUSTOM: {"max_attempts": 3},
}


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise RuntimeError("settings not loaded")
    return settings


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
    app.add_typer(agent_app, name="agent")
    app.add_typer(lead_app, name="lead")
    app.command("dialer")(dialer_command)


# --------------------------------------------------------------------------- dialer


def dialer_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Dialer instance id (default host-pid).")] = None,
) -> None:
    """Run the dialer engine against the configured Asterisk servers (or the simulator)."""
    from dialer.runtime import dialer_runtime

    settings = _settings(ctx)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with dialer_runtime(settings, SystemClock(), dialer_name=name) as rt:
            console.print(
                f"[green]dialer {rt.engine.config.dialer_id} running[/] "
                f"on {', '.join(rt.telephony.server_names())}"
            )
            await rt.engine.republish_outbox()
            await rt.engine.run(stop)

    asyncio.run(main())


# --------------------------------------------------------------------------- campaigns


@campaign_app.command("list")
def campaign_list(ctx: typer.Context) -> None:
    """List campaigns with their state and lead counts."""
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.db.models import Campaign, Lead

    settings = _settings(ctx)

    async def main() -> list[tuple[Campaign, int]]:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as s:
                rows = await s.execute(
                    sa.select(Campaign, sa.func.count(Lead.id))
                    .outerjoin(Lead, Lead.campaign_id == Campaign.id)
                    .group_by(Campaign.id)
                    .order_by(Campaign.id)
                )
                return [(c, int(n)) for c, n in rows]
        finally:
            await engine.dispose()

    table = Table("id", "nombre", "tipo", "estado", "modo", "intentos", "leads")
    for camp, n in asyncio.run(main()):
        table.add_row(
            str(camp.id),
            camp.name,
            camp.type.value,
            camp.status.value,
            camp.dial_mode.value,
            str(camp.max_attempts),
            str(n),
        )
    console.print(table)


@campaign_app.command("create")
def campaign_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Campaign name.")],
    type_: Annotated[CampaignType, typer.Option("--type", help="Preset.")] = (
        CampaignType.CONTACTO_PROACTIVO
    ),
    mode: Annotated[DialMode, typer.Option(help="Dial mode.")] = DialMode.PROGRESSIVE,
) -> None:
    """Create a campaign from its type's preset (editable later)."""
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.db.models import Campaign

    settings = _settings(ctx)
    preset = dict(PRESETS[type_])

    async def main() -> int:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine).begin() as s:
                if await s.scalar(sa.select(Campaign.id).where(Campaign.name == name)):
                    raise typer.BadParameter(f"a campaign named {name!r} already exists")
                camp = Campaign(name=name, type=type_, dial_mode=mode, **preset)
                s.add(camp)
                await s.flush()
                return camp.id
        finally:
            await engine.dispose()

    console.print(f"[green]campaign {asyncio.run(main())} created[/] ({type_.value}, draft)")


def _set_status(ctx: typer.Context, campaign_id: int, status: CampaignStatus) -> None:
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.db.models import Campaign

    settings = _settings(ctx)
    allowed = {
        CampaignStatus.RUNNING: {CampaignStatus.DRAFT, CampaignStatus.PAUSED},
        CampaignStatus.PAUSED: {CampaignStatus.RUNNING},
        CampaignStatus.FINISHED: {
            CampaignStatus.DRAFT,
            CampaignStatus.RUNNING,
            CampaignStatus.PAUSED,
        },
    }

    async def main() -> CampaignStatus:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine).begin() as s:
                camp = await s.get(Campaign, campaign_id)
                if camp is None:
                    raise typer.BadParameter(f"campaign {campaign_id} does not exist")
                if camp.status not in allowed[status]:
                    raise typer.BadParameter(
                        f"campaign {campaign_id} is {camp.status.value}: cannot become "
                        f"{status.value}"
                    )
                old = camp.status
                camp.status = status
                return old
        finally:
            await engine.dispose()

    old = asyncio.run(main())
    console.print(f"campaign {campaign_id}: {old.value} -> [bold]{status.value}[/]")


@campaign_app.command("start")
def campaign_start(ctx: typer.Context, campaign_id: int) -> None:
    """Start (or resume) dialing."""
    _set_status(ctx, campaign_id, CampaignStatus.RUNNING)


@campaign_app.command("pause")
def campaign_pause(ctx: typer.Context, campaign_id: int) -> None:
    """Stop new originates at once; live calls end normally."""
    _set_status(ctx, campaign_id, CampaignStatus.PAUSED)


@campaign_app.command("finish")
def campaign_finish(ctx: typer.Context, campaign_id: int) -> None:
    """Finish the campaign for good."""
    _set_status(ctx, campaign_id, CampaignStatus.FINISHED)


# --------------------------------------------------------------------------- agents


def _send(ctx: typer.Context, type_: str, data: dict[str, object]) -> None:
    from dialer.redis_client import Streams, connect_redis
    from dialer.redis_keys import Keys

    settings = _settings(ctx)

    async def main() -> str:
        handle = connect_redis(settings)
        try:
            keys = Keys(settings.redis.key_prefix)
            return await Streams(handle.client).add(keys.commands_stream, type_, data)
        finally:
            await handle.close()

    console.print(f"sent {type_} ({asyncio.run(main())})")


@agent_app.command("login")
def agent_login(ctx: typer.Context, agent_id: int, extension: str, campaign_id: int) -> None:
    """Log an agent in: the dialer calls their softphone into the nailed-up room."""
    _send(
        ctx,
        "agent_login",
        {"agent_id": agent_id, "extension": extension, "campaign_id": campaign_id},
    )


@agent_app.command("ready")
def agent_ready(ctx: typer.Context, agent_id: int) -> None:
    """Mark an agent ready for calls."""
    _send(ctx, "agent_ready", {"agent_id": agent_id})


@agent_app.command("pause")
def agent_pause(ctx: typer.Context, agent_id: int, code: str = "break") -> None:
    """Pause an agent with a pause code (break, lunch, training, manual_call, meeting)."""
    _send(ctx, "agent_pause", {"agent_id": agent_id, "code": code})


@agent_app.command("logout")
def agent_logout(ctx: typer.Context, agent_id: int) -> None:
    """Log an agent out."""
    _send(ctx, "agent_logout", {"agent_id": agent_id})


# --------------------------------------------------------------------------- leads


@lead_app.command("explain")
def lead_explain(ctx: typer.Context, lead_id: int) -> None:
    """Why this lead is, or is not, being dialed right now: every rule and its state."""
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.store import EngineStore

    settings = _settings(ctx)

    async def main() -> Readiness:
        engine = make_engine(settings)
        try:
            return await EngineStore(make_sessionmaker(engine)).readiness(
                lead_id, datetime.now(UTC)
            )
        finally:
            await engine.dispose()

    try:
        readiness = asyncio.run(main())
    except LookupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    verdict = "[green]LISTO para marcar[/]" if readiness.ready else "[red]NO se marca ahora[/]"
    console.print(f"Lead {lead_id}: {verdict}")
    if readiness.ready_at is not None and not readiness.ready:
        console.print(f"Podría marcarse desde: {readiness.ready_at.isoformat()}")
    table = Table("regla", "estado", "explicación")
    for rule in readiness.rules:
        table.add_row(
            rule.code.value, "[green]ok[/]" if rule.passed else "[red]falla[/]", rule.message_es
        )
    console.print(table)
