"""``marcador whatsapp``: run the fallback worker; ``status`` and ``resume`` for people.

* ``marcador whatsapp`` runs the worker against the configured settings. On the embedded
  default (no database/Redis URL), when ``graph_base_url`` points to 127.0.0.1/localhost and
  nothing listens there, it also starts the local fake Graph API on that port (statuses and
  some replies are then sent back to ``<api.public_url>/webhooks/whatsapp``).
* ``marcador whatsapp status``: active holds (paused campaigns, stopped account) and the
  funnel (queued, sent, delivered, read, replied, failed).
* ``marcador whatsapp resume [--campaign N | --account]``: release holds after fixing the
  template or the account; held messages go at the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from dialer.settings import Settings, load_settings

console = Console()

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _settings(ctx: typer.Context) -> Settings:
    obj = ctx.obj
    return obj if isinstance(obj, Settings) else load_settings()


def local_fake_target(settings: Settings) -> tuple[str, int] | None:
    """(host, port) of graph_base_url when the fake may be started there, else None."""
    url = urlsplit(settings.whatsapp.graph_base_url)
    if url.scheme != "http" or url.hostname not in LOCAL_HOSTS:
        return None
    return url.hostname or "127.0.0.1", url.port or 80


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


@contextlib.asynccontextmanager
async def serve_fake_graph(settings: Settings, host: str, port: int) -> AsyncIterator[Any]:
    """Run the fake Graph API on ``host:port`` inside this event loop."""
    import uvicorn

    from dialer.whatsapp.fake_graph import build_from_settings

    fake = build_from_settings(
        settings,
        auto_statuses=("sent", "delivered", "read"),
        auto_reply="Sí, quiero agendar",
        auto_reply_ratio=0.3,
    )

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the worker owns the signals
            yield

    server = _Server(uvicorn.Config(fake.app, host=host, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(100):  # bounded: up to ~5 s
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if task.done():
        task.result()
    try:
        yield fake
    finally:
        server.should_exit = True
        await task


async def run_worker(settings: Settings, fake: bool | None) -> None:
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.redis_client import connect_redis
    from dialer.redis_keys import Keys
    from dialer.whatsapp.client import CloudApiClient
    from dialer.whatsapp.worker import WhatsAppWorker, WorkerConfig

    engine = make_engine(settings)
    handle = connect_redis(settings)
    client = CloudApiClient.create(settings.whatsapp)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            target = local_fake_target(settings)
            start_fake = settings.is_embedded if fake is None else fake
            if start_fake and target is not None and not port_in_use(*target):
                await stack.enter_async_context(serve_fake_graph(settings, *target))
                console.print(f"[cyan]Fake WhatsApp Cloud API on http://{target[0]}:{target[1]}[/]")
            worker = WhatsAppWorker(
                make_sessionmaker(engine),
                handle.client,
                Keys(settings.redis.key_prefix),
                client,
                config=WorkerConfig(media_dir=settings.data_dir),
            )
            console.print(f"[green]WhatsApp worker {worker.consumer} running[/] (Ctrl-C stops)")
            await worker.run(stop)
    finally:
        await client.aclose()
        await handle.close()
        await engine.dispose()


async def _status(settings: Settings) -> None:
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.whatsapp.store import WhatsAppStore

    engine = make_engine(settings)
    try:
        store = WhatsAppStore(make_sessionmaker(engine))
        holds = await store.holds()
        funnel = await store.funnel()
    finally:
        await engine.dispose()
    table = Table("hold", "scope", "campaign", "code", "since", "reason", title="Holds")
    for h in holds:
        table.add_row(
            str(h.id), h.scope, str(h.campaign_id or "-"), str(h.code or "-"),
            h.created_at.isoformat(timespec="seconds"), h.reason,
        )  # fmt: skip
    console.print(table if holds else "[green]No active holds: sending is on.[/]")
    ft = Table("stage", "messages", title="WhatsApp funnel")
    for stage, n in funnel.to_dict().items():
        ft.add_row(stage, str(n))
    console.print(ft)


async def _resume(settings: Settings, campaign: int | None, account: bool) -> int:
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.whatsapp.store import WhatsAppStore

    engine = make_engine(settings)
    try:
        store = WhatsAppStore(make_sessionmaker(engine))
        return await store.release_holds(
            "cli", datetime.now(UTC), campaign_id=campaign, account=account
        )
    finally:
        await engine.dispose()


def register(app: typer.Typer) -> None:
    """Add ``marcador whatsapp`` (and its ``status``/``resume`` sub-commands) to ``app``."""
    wa = typer.Typer(
        help="WhatsApp fallback: run the worker (default), show holds, resume sending.",
        invoke_without_command=True,
    )

    @wa.callback()
    def whatsapp(
        ctx: typer.Context,
        fake: Annotated[
            bool | None,
            typer.Option(
                "--fake/--no-fake",
                help="Start the local fake Graph API (default: only on the embedded default).",
            ),
        ] = None,
    ) -> None:
        """Run the WhatsApp worker (consumes the fallback stream, sends templates)."""
        if ctx.invoked_subcommand is not None:
            return
        settings = _settings(ctx)
        if settings.is_embedded:
            from dialer.db.migrate import upgrade

            settings.data_dir.mkdir(parents=True, exist_ok=True)
            upgrade(settings.database_url)
        asyncio.run(run_worker(settings, fake))

    @wa.command("status")
    def status(ctx: typer.Context) -> None:
        """Active holds and the message funnel."""
        asyncio.run(_status(_settings(ctx)))

    @wa.command("resume")
    def resume(
        ctx: typer.Context,
        campaign: Annotated[
            int | None, typer.Option(help="Release this campaign's hold only.")
        ] = None,
        account: Annotated[bool, typer.Option(help="Release the account-wide hold.")] = False,
    ) -> None:
        """Release holds once the template or the account is fixed."""
        n = asyncio.run(_resume(_settings(ctx), campaign, account))
        console.print(f"[green]{n} hold(s) released.[/]")

    app.add_typer(wa, name="whatsapp")
