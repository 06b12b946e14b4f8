"""CLI commands of the API: ``marcador api``, ``marcador user create``, ``marcador apikey create``.

Registered by :func:`register` from ``dialer/cli.py``. Heavy imports happen inside the
commands, so ``marcador --help`` stays fast. Secrets are printed once, never logged.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from dialer.db.models import Role

if TYPE_CHECKING:
    from dialer.settings import Settings

console = Console()


def _settings(ctx: typer.Context) -> object:
    obj = ctx.find_root().obj
    if obj is None:
        raise typer.Exit(2)
    return obj


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling: believed only from ``MARCADOR_API__TRUSTED_PROXIES``.

    uvicorn's own default trusts 127.0.0.1, which would let anything on the host pick its
    client address (and dodge the per-IP login limit); with no trusted proxy the header is
    ignored altogether.
    """
    trusted = list(settings.api.trusted_proxies)
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def register(app: typer.Typer) -> None:
    user_app = typer.Typer(help="Users of the web screens and the API.", no_args_is_help=True)
    key_app = typer.Typer(help="API keys for other systems.", no_args_is_help=True)
    app.add_typer(user_app, name="user")
    app.add_typer(key_app, name="apikey")

    @app.command("api")
    def api_command(
        ctx: typer.Context,
        host: Annotated[str | None, typer.Option(help="Default: MARCADOR_API__HOST.")] = None,
        port: Annotated[int | None, typer.Option(help="Default: MARCADOR_API__PORT.")] = None,
    ) -> None:
        """Serve the REST API (OpenAPI at /docs), the web screens and webhooks."""
        import gc

        import uvicorn

        from api.app import create_app
        from dialer.settings import Settings

        settings = _settings(ctx)
        assert isinstance(settings, Settings)
        bind_host = host or settings.api.host
        bind_port = port or settings.api.port
        console.print(f"Marcador API on http://{bind_host}:{bind_port} (docs: /docs)")
        app = create_app(settings, gc_freeze_after_s=settings.api.gc_freeze_after_s or None)
        # Everything imported so far lives as long as the process: keep it out of the cyclic
        # GC's generations, so full collections stay short under load (and once more after
        # the first requests, see ApiSettings.gc_freeze_after_s).
        gc.collect()
        gc.freeze()
        uvicorn.run(
            app,
            host=bind_host,
            port=bind_port,
            log_level=settings.log_level,
            timeout_keep_alive=settings.api.keep_alive_s,
            **proxy_options(settings),
        )

    @user_app.command("create")
    def user_create(
        ctx: typer.Context,
        username: Annotated[str, typer.Option(help="Login name.")],
        role: Annotated[Role, typer.Option(help="admin, supervisor or agent.")],
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="Read the password from stdin.")
        ] = False,
        generate: Annotated[
            bool, typer.Option("--generate", help="Generate a password and print it once.")
        ] = False,
        full_name: Annotated[str, typer.Option(help="Full name.")] = "",
        extension: Annotated[str | None, typer.Option(help="Softphone extension.")] = None,
    ) -> None:
        """Create a user (the first admin is created this way)."""
        from api.auth import check_password_strength, generate_password
        from dialer.settings import Settings

        settings = _settings(ctx)
        assert isinstance(settings, Settings)
        if password_stdin == generate:
            console.print("[red]Choose exactly one of --password-stdin or --generate.[/]")
            raise typer.Exit(2)
        password = generate_password() if generate else sys.stdin.readline().rstrip("\r\n")
        problem = check_password_strength(password)
        if problem:
            console.print(f"[red]{problem}[/]")
            raise typer.Exit(2)
        try:
            user_id = asyncio.run(
                _create_user(settings, username, role, password, full_name, extension)
            )
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        console.print(f"[green]User {username!r} ({role.value}) created, id {user_id}.[/]")
        if generate:
            console.print(f"Password (shown once): [bold]{password}[/]")

    @key_app.command("create")
    def apikey_create(
        ctx: typer.Context,
        name: Annotated[str, typer.Option(help="What the key is for, e.g. 'dealer DMS'.")],
        scopes: Annotated[
            str, typer.Option(help="Comma-separated scopes, e.g. 'appointments:write,leads:read'.")
        ],
    ) -> None:
        """Create an API key; the key is printed once."""
        from api.auth import normalize_scopes
        from dialer.settings import Settings

        settings = _settings(ctx)
        assert isinstance(settings, Settings)
        try:
            scope_list = normalize_scopes([s.strip() for s in scopes.split(",") if s.strip()])
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        if not scope_list:
            console.print("[red]Give at least one scope.[/]")
            raise typer.Exit(2)
        key = asyncio.run(_create_key(settings, name, scope_list))
        console.print(f"[green]API key {name!r} created with scopes {', '.join(scope_list)}.[/]")
        console.print(f"Key (shown once): [bold]{key}[/]")


async def _create_user(
    settings: object,
    username: str,
    role: Role,
    password: str,
    full_name: str,
    extension: str | None,
) -> int:
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from api.auth import hash_password, password_hasher
    from api.routers.users import EXTENSION, USERNAME
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.db.models import AuditLog, User
    from dialer.settings import Settings

    assert isinstance(settings, Settings)
    if not USERNAME.fullmatch(username):
        raise ValueError("username: 3-64 letters, digits, '_', '.', '@', '-'")
    if extension is not None and not EXTENSION.fullmatch(extension):
        raise ValueError("extension: 1-32 letters, digits, '_', '.', '-'")
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as s:
            if await s.scalar(sa.select(User.id).where(User.username == username)):
                raise ValueError(f"username {username!r} is taken")
            user = User(
                username=username,
                role=role,
                full_name=full_name,
                extension=extension,
                password_hash=hash_password(password_hasher(), password),
            )
            s.add(user)
            await s.flush()
            s.add(
                AuditLog(
                    at=datetime.now(UTC),
                    actor="cli",
                    action="user.create",
                    target_type="user",
                    target_id=str(user.id),
                    detail={"username": username, "role": role.value},
                )
            )
            return user.id
    finally:
        await engine.dispose()


async def _create_key(settings: object, name: str, scopes: list[str]) -> str:
    from datetime import UTC, datetime

    from api.auth import generate_api_key
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.db.models import ApiKey, AuditLog
    from dialer.settings import Settings

    assert isinstance(settings, Settings)
    new = generate_api_key()
    now = datetime.now(UTC)
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as s:
            row = ApiKey(
                name=name,
                prefix=new.prefix,
                key_hash=new.key_hash,
                scopes={"scopes": scopes},
                created_at=now,
            )
            s.add(row)
            await s.flush()
            s.add(
                AuditLog(
                    at=now,
                    actor="cli",
                    action="apikey.create",
                    target_type="apikey",
                    target_id=str(row.id),
                    detail={"name": name, "prefix": new.prefix, "scopes": scopes},
                )
            )
    finally:
        await engine.dispose()
    return new.plaintext
