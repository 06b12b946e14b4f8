"""Serve an ASGI app with uvicorn inside the running event loop, on loopback.

Used by ``marcador demo`` (the API and the fake Graph API next to the engine) and by the
browser tests' live stack. Nothing runs at import time.

* :func:`bind_loopback` binds the wanted port, or any free port when it is taken (or 0).
* :func:`serve_asgi` runs uvicorn on that socket as a task of the current loop and stops it
  gracefully on exit. Signals stay with the caller: uvicorn does not install its own handlers
  (the demo stops everything on Ctrl-C; a stack on a background thread has none anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"


def bind_loopback(port: int = 0, *, fallback: bool = True, host: str = LOOPBACK) -> socket.socket:
    """A TCP socket bound to ``host:port``; with ``fallback``, any free port if that one is busy."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        if not fallback or port == 0 or exc.errno != errno.EADDRINUSE:
            sock.close()
            raise
        sock.bind((host, 0))
    return sock


@dataclass(frozen=True, slots=True)
class Served:
    """A running server: its base URL (``http://127.0.0.1:<port>``), port and uvicorn handle."""

    url: str
    port: int
    server: Any  # uvicorn.Server


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any,
    sock: socket.socket,
    *,
    name: str = "uvicorn",
    log_level: str = "warning",
    start_timeout: float = 20.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[Served]:
    """Run ``app`` on ``sock`` (which it then owns and closes) until the block exits."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the caller owns the signals
            yield

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    host, port = sock.getsockname()[:2]
    task = asyncio.create_task(server.serve(sockets=[sock]), name=name)
    try:
        async with asyncio.timeout(start_timeout):
            while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has a flag
                await asyncio.sleep(0.05)
        if task.done():  # failed to start (lifespan error...): raise its error
            task.result()
            raise RuntimeError(f"{name} stopped while starting")
        yield Served(f"http://{host}:{port}", int(port), server)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, stop_timeout)
        sock.close()
