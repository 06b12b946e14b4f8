"""Operations: liveness, readiness and Prometheus metrics (unversioned paths).

- ``/healthz``: the process answers (no IO).
- ``/readyz``: the database, Redis and every AMI link (``Keys.ami_link(server)`` hashes
  written by the dialer) are up; 503 with the list of what is down otherwise. Open, like
  ``/healthz``: it reveals no data, and load balancers call it without credentials. Each
  running dialer re-publishes those hashes every second with a ``heartbeat_at`` time; a
  "connected" link whose heartbeat is older than 5 s (``api.metrics.LINK_STALE_S``) counts as
  down ("stale"), so the links of a dialer that died show as down within about 5 s.
- ``/metrics``: Prometheus text format; needs an API key with the ``metrics:read`` scope
  (Prometheus: ``authorization: {credentials: mk_...}``), because the numbers are business data.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.auth import Scope
from api.deps import ClockDep, KeysDep, RedisDep, Scoped, SessionmakerDep, SettingsDep
from api.metrics import CONTENT_TYPE, MetricsCollector, ami_statuses
from dialer.settings import mask_url

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT = 3.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database, Redis and AMI links",
    responses={503: {"description": "Something is down (listed in `down`)"}},
)
async def readyz(
    sm: SessionmakerDep, redis: RedisDep, keys: KeysDep, settings: SettingsDep
) -> JSONResponse:
    checks: dict[str, dict[str, Any]] = {}
    try:
        async with sm() as s:
            await asyncio.wait_for(s.execute(sa.text("SELECT 1")), CHECK_TIMEOUT)
        checks["database"] = {"ok": True, "detail": mask_url(settings.database_url)}
    except Exception as exc:
        checks["database"] = {"ok": False, "detail": type(exc).__name__}
    redis_ok = False
    try:
        await asyncio.wait_for(redis.ping(), CHECK_TIMEOUT)
        checks["redis"] = {"ok": True, "detail": "ping"}
        redis_ok = True
    except Exception as exc:
        checks["redis"] = {"ok": False, "detail": type(exc).__name__}
    if redis_ok:
        try:
            links = await asyncio.wait_for(ami_statuses(redis, keys, settings), CHECK_TIMEOUT)
        except Exception as exc:
            links = {}
            checks["ami"] = {"ok": False, "detail": type(exc).__name__}
        for server, state in links.items():
            checks[f"ami:{server}"] = {"ok": state == "connected", "detail": state}
    else:
        for configured in settings.asterisk.servers:
            checks[f"ami:{configured.name}"] = {"ok": False, "detail": "unknown (Redis down)"}
    down = sorted(name for name, c in checks.items() if not c["ok"])
    body = {"status": "ready" if not down else "not_ready", "down": down, "checks": checks}
    return JSONResponse(body, status_code=200 if not down else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (API key with metrics:read)",
    response_class=Response,
    dependencies=[Scoped(Scope.METRICS_READ)],
)
async def metrics(
    request: Request,
    sm: SessionmakerDep,
    redis: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    collector: MetricsCollector = request.app.state.metrics
    body = await collector.render(sm, redis, keys, settings, clock.now())
    return Response(content=body, media_type=CONTENT_TYPE)
