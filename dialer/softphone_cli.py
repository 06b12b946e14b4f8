"""``marcador softphone``: a headless auto-answering agent phone (pyVoIP) for smoke tests.

pyVoIP is imported only when the command runs, so other commands do not pay for it.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

SPEC_ENV = "MARCADOR_SOFTPHONE_SPEC"


def register(app: typer.Typer) -> None:
    app.command("softphone")(softphone_command)


def softphone_command(
    extension: Annotated[
        list[str] | None,
        typer.Option(
            "--extension",
            "-e",
            help="USER:PASSWORD to register (repeatable). Visible in `ps`: prefer --spec.",
        ),
    ] = None,
    spec: Annotated[
        str | None,
        typer.Option(
            "--spec",
            envvar=SPEC_ENV,
            help='JSON spec, or a file holding it: {"server": ..., "port": ..., '
            '"extensions": [{"username": ..., "password": ...}]}.',
        ),
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="SIP server host (default: spec, else 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="SIP server port (default: spec, else 5060).")
    ] = None,
    answer_delay: Annotated[
        float | None,
        typer.Option(help="Seconds from INVITE to answer (pyVoIP's floor is ~1 s; default 1)."),
    ] = None,
    rtp_ports: Annotated[
        str | None,
        typer.Option(help="Local RTP port range LOW-HIGH (default: spec, else 10000-20000)."),
    ] = None,
    bind_ip: Annotated[
        str | None,
        typer.Option(help="Local IP for SIP/RTP (default: the address that routes to the server)."),
    ] = None,
    play: Annotated[
        Path | None, typer.Option(help="WAV played to the far end on answer (any PCM WAV).")
    ] = None,
    record_dir: Annotated[
        Path | None, typer.Option(help="Record what each call hears to a WAV in this directory.")
    ] = None,
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: until SIGINT/SIGTERM).")
    ] = 0.0,
    register_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each registration.")
    ] = 10.0,
) -> None:
    """Register extensions, auto-answer and hold calls; BYE and un-register on SIGINT/SIGTERM."""
    from dialer.softphone import (
        RegistrationError,
        Softphone,
        SoftphoneConfig,
        SoftphoneError,
        SoftphoneEvent,
        extensions_from_spec,
        load_spec,
        parse_extension,
        parse_port_range,
    )

    try:
        data: dict[str, Any] = load_spec(spec) if spec else {}
        host = server or str(data.get("server", "127.0.0.1"))
        sip_port = port or int(data.get("port", 5060))
        exts = extensions_from_spec({**data, "server": host, "port": sip_port})
        exts += [parse_extension(e, host, sip_port) for e in extension or []]
        low, high = parse_port_range(rtp_ports or str(data.get("rtp_ports", "10000-20000")))
        config = SoftphoneConfig(
            extensions=tuple(exts),
            answer_delay=answer_delay
            if answer_delay is not None
            else float(data.get("answer_delay", 1.0)),
            rtp_port_low=low,
            rtp_port_high=high,
            bind_ip=bind_ip or data.get("bind_ip"),
            play=play,
            record_dir=record_dir,
            register_timeout=register_timeout,
        )
    except (SoftphoneError, ValueError, TypeError) as exc:
        typer.echo(f"softphone: {exc}", err=True)
        raise typer.Exit(2) from None

    def on_event(event: SoftphoneEvent) -> None:
        typer.echo(event.status_line())

    done = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    phone = Softphone(config, on_event=on_event)
    try:
        try:
            phone.start()
        except RegistrationError:
            raise typer.Exit(1) from None
        except SoftphoneError as exc:
            typer.echo(f"softphone: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"ready: {len(exts)} extension(s); SIGINT/SIGTERM to stop")
        done.wait(duration if duration > 0 else None)
    finally:
        phone.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
