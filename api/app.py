"""The API application factory: ``create_app(settings) -> FastAPI``.

Nothing happens at import time. The lifespan builds the async SQL engine and sessionmaker
(:mod:`dialer.db.engine`), the Redis client (:func:`dialer.redis_client.connect_redis`) and the
key builder, and stores them on ``app.state`` as ``settings``, ``sessionmaker``, ``redis`` and
``keys`` (the WhatsApp webhook router reads exactly those). It also runs the webhook delivery
worker as an asyncio task, and holds the process's SSE :class:`~api.events.Broadcaster`
(``app.state.broadcaster``, one event-stream reader for every SSE client) and the short-lived
principal cache (``app.state.auth_cache``, :mod:`api.authcache`).

Tests (and ``marcador demo``) may pass ready-made ``sessionmaker``/``redis``/``keys``; the
factory then neither creates nor closes them.

Pages (agent screen, supervisor dashboard) plug in through :func:`include_pages`: a router of
server-rendered pages plus static files, served by this same app, using the same session
cookie and the SSE stream at ``/api/v1/events/stream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import cache as live_cache
from api.authcache import AuthCache
from api.errors import error_response, install_error_handlers
from api.events import Broadcaster
from api.metrics import MetricsCollector
from api.netguard import GuardedResolver, Resolver, networks
from api.nul import RefuseNul
from api.timing import RequestTiming, TimingMetrics, freeze_gc_after, watch_loop_lag
from api.webhooks import WebhookWorker
from dialer.db.engine import make_engine, make_sessionmaker
from dialer.logging import get_logger
from dialer.redis_client import RedisHandle, connect_redis
from dialer.redis_keys import Keys
from dialer.settings import Settings

log = get_logger(__name__)

API_PREFIX = "/api/v1"
#: Where the API serves Swagger UI's own JavaScript and CSS (no CDN).
DOCS_STATIC_URL = "/docs-static"
#: Request bodies other than uploads are small; uploads get ``settings.api.max_upload_mb``.
JSON_BODY_LIMIT = 2 * 1024 * 1024
#: Multipart framing on top of the file itself.
UPLOAD_SLACK = 64 * 1024
UPLOAD_PATH_MARKERS = ("/imports", "/dnc/upload")


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuses bodies over the limit with 413, from Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, upload_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit

    def _limit(self, path: str) -> int:
        if any(marker in path for marker in UPLOAD_PATH_MARKERS):
            return self.upload_limit + UPLOAD_SLACK
        return JSON_BODY_LIMIT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)  # no body to limit (and no wrapper per send)
            return
        limit = self._limit(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send, limit)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        mb = limit / (1024 * 1024)
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than the limit of {mb:.1f} MB",
            {"limit_bytes": limit},
        )
        await response(scope, receive, send)


def _routers() -> list[Any]:
    """The API routers, in matching order: FastAPI tries the included routers one by one, so
    the ones every open screen polls (dashboard, agent screen, live events) come first (no
    path of one router matches a route of another, so the order changes nothing else)."""
    from api.routers import (
        agent,
        agents,
        apikeys,
        appointments,
        audit,
        auth,
        calls,
        campaigns,
        clock,
        dnc,
        events,
        imports,
        leads,
        live,
        pqrs,
        recordings,
        reports,
        transfer_numbers,
        users,
        webhooks,
    )

    return [
        live.router,
        agent.router,
        events.router,
        campaigns.router,
        auth.router,
        imports.router,
        leads.router,
        calls.router,
        appointments.router,
        pqrs.router,
        recordings.router,
        reports.router,
        dnc.router,
        transfer_numbers.router,
        users.router,
        apikeys.router,
        agents.router,
        webhooks.router,
        audit.router,
        clock.router,
    ]


def include_pages(app: FastAPI) -> None:
    """Hook for the agent screen and supervisor dashboard (``api.pages``, when present)."""
    try:
        pages = importlib.import_module("api.pages")
    except ModuleNotFoundError as exc:
        if exc.name != "api.pages":
            raise
        return
    pages.include(app)


def include_whatsapp(app: FastAPI) -> None:
    """The WhatsApp Cloud API webhook (own signature auth), when that package is present."""
    try:
        module = importlib.import_module("dialer.whatsapp.webhooks")
    except ModuleNotFoundError as exc:
        if exc.name not in ("dialer.whatsapp", "dialer.whatsapp.webhooks"):
            raise
        return
    app.include_router(module.router)


def create_app(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    redis: aioredis.Redis | None = None,
    keys: Keys | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    webhook_resolver: Resolver | None = None,
    start_workers: bool = True,
    password_hasher: PasswordHasher | None = None,
    gc_freeze_after_s: float | None = None,
) -> FastAPI:
    """Build the API app. Resources are created in the lifespan, not here.

    ``password_hasher``: argon2 parameters (default: argon2-cffi's RFC 9106 low-memory
    profile); tests pass cheaper ones. ``gc_freeze_after_s``: see
    :func:`api.timing.freeze_gc_after` (``marcador api`` only: it is process-wide).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine: AsyncEngine | None = None
        handle: RedisHandle | None = None
        sm = sessionmaker
        if sm is None:
            engine = make_engine(settings)
            sm = make_sessionmaker(engine)
        client = redis
        if client is None:
            handle = connect_redis(settings)
            client = handle.client
        app.state.settings = settings
        app.state.sessionmaker = sm
        app.state.redis = client
        app.state.keys = keys or Keys(prefix=settings.redis.key_prefix)
        app.state.background = set()
        app.state.broadcaster = Broadcaster(client, app.state.keys)
        from api.routers.agent import apply_disposition_drafts, prefetch_screen_pops

        app.state.broadcaster.listeners.append(prefetch_screen_pops(app.state))
        app.state.broadcaster.listeners.append(apply_disposition_drafts(app.state))
        http = httpx.AsyncClient(transport=webhook_transport, timeout=10.0, follow_redirects=False)
        guard = GuardedResolver(networks(settings.webhooks.allowed_networks), webhook_resolver)
        app.state.webhook_guard = guard
        worker = WebhookWorker(sm, client, app.state.keys, http, guard=guard)
        app.state.webhook_worker = worker
        stop = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(watch_loop_lag(app.state.timing, stop), name="loop-lag")
        ]
        if gc_freeze_after_s is not None:
            tasks.append(
                asyncio.create_task(freeze_gc_after(gc_freeze_after_s, stop), name="gc-freeze")
            )
        if start_workers:
            from dialer.domain.clock import SystemClock
            from dialer.reports.runs import scheduler_loop

            tasks.append(asyncio.create_task(worker.run(stop), name="webhook-worker"))
            # Monthly reports (MARCADOR_REPORTS__SCHEDULE); each fire runs once across replicas.
            tasks.append(
                asyncio.create_task(
                    scheduler_loop(sm, settings, SystemClock(), stop), name="report-scheduler"
                )
            )
            from dialer.recordings import purge_loop

            # Daily purge of expired recordings (MARCADOR_RECORDING__PURGE_SCHEDULE).
            tasks.append(
                asyncio.create_task(
                    purge_loop(sm, settings, SystemClock(), stop), name="recording-purge"
                )
            )
        try:
            yield
        finally:
            stop.set()
            await app.state.broadcaster.close()
            await live_cache.close(app.state)
            await app.state.auth_cache.close()
            for task in [*tasks, *app.state.background]:
                task.cancel()
            for task in [*tasks, *app.state.background]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await http.aclose()
            if handle is not None:
                await handle.close()
            if engine is not None:
                await engine.dispose()

    # Swagger UI from files the API serves itself (fastapi-offline ships them): contact-center
    # networks often block CDNs, and /docs was blank there.
    app = FastAPIOffline(
        static_url=DOCS_STATIC_URL,
        title="Marcador API",
        version="1",
        description=(
            "Outbound dialer: campaigns, leads, agents, appointments, PQRS, DNC, webhooks. "
            "Authenticate with a session cookie (web pages; unsafe methods need X-CSRF-Token) "
            "or an API key (`Authorization: Bearer mk_...`). Errors: "
            '`{"error": {"code", "message", "details"}}`.'
        ),
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.metrics = MetricsCollector()
    app.state.auth_cache = AuthCache()
    app.state.password_hasher = password_hasher or PasswordHasher()
    app.state.import_sync_max_bytes = 512 * 1024
    install_error_handlers(app)
    app.add_middleware(RefuseNul)  # inside BodySizeLimit: the body it buffers is bounded
    app.add_middleware(BodySizeLimit, upload_limit=settings.api.max_upload_mb * 1024 * 1024)
    # Added last, so outermost of the two: the Server-Timing header covers the body limit too.
    app.state.timing = TimingMetrics(app.state.metrics.registry)
    app.add_middleware(RequestTiming, metrics=app.state.timing)

    from api.routers import ops

    app.include_router(ops.router)
    for router in _routers():
        app.include_router(router, prefix=API_PREFIX)
    include_whatsapp(app)
    include_pages(app)
    return app
