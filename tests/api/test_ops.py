"""/healthz, /readyz (database, Redis, AMI links) and /metrics."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.metrics import LINK_STALE_S
from dialer.redis_keys import Keys
from dialer.settings import AsteriskServer, Settings
from tests.api.helpers import key_client, make_campaign, make_key


async def test_readyz_ok_and_ami_down(
    anon: httpx.AsyncClient, redis: aioredis.Redis, keys: Keys
) -> None:
    r = await anon.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    await redis.hset(keys.ami_link("pbx1"), mapping={"server": "pbx1", "state": "connected"})  # type: ignore[misc]
    assert (await anon.get("/readyz")).status_code == 200
    await redis.hset(keys.ami_link("pbx2"), mapping={"server": "pbx2", "state": "backoff"})  # type: ignore[misc]
    r = await anon.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["down"] == ["ami:pbx2"]
    assert body["checks"]["ami:pbx1"]["ok"] is True


async def test_readyz_a_killed_dialers_link_is_down_within_seconds(
    anon: httpx.AsyncClient, redis: aioredis.Redis, keys: Keys
) -> None:
    """Issue 14 defect 13: the hash lives 30 s, but its heartbeat (1 s) is checked."""
    fresh = {"server": "pbx1", "state": "connected", "heartbeat_at": f"{time.time()}"}
    await redis.hset(keys.ami_link("pbx1"), mapping=fresh)  # type: ignore[misc]
    assert (await anon.get("/readyz")).status_code == 200
    old = f"{time.time() - (LINK_STALE_S + 1)}"
    await redis.hset(keys.ami_link("pbx1"), "heartbeat_at", old)  # type: ignore[misc]
    r = await anon.get("/readyz")
    assert r.status_code == 503
    assert r.json()["down"] == ["ami:pbx1"]
    assert r.json()["checks"]["ami:pbx1"]["detail"].startswith("stale")


async def test_readyz_configured_server_never_reported(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    cfg = settings.model_copy(
        update={
            "asterisk": settings.asterisk.model_copy(
                update={
                    "servers": [
                        AsteriskServer(name="pbx9", host="127.0.0.1", secret=SecretStr("s3cret-x"))
                    ]
                }
            )
        }
    )
    app = create_app(cfg, sessionmaker=sessionmaker, redis=redis, keys=keys, start_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["down"] == ["ami:pbx9"]
    assert r.json()["checks"]["ami:pbx9"]["detail"] == "missing"


async def test_readyz_reports_redis_down(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    dead = aioredis.Redis(unix_socket_path=str(tmp_path / "no-such.sock"), decode_responses=True)
    app = create_app(settings, sessionmaker=sessionmaker, redis=dead, start_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/healthz")).status_code == 200
            r = await c.get("/readyz")
    await dead.aclose()
    assert r.status_code == 503
    assert r.json()["down"] == ["redis"]
    assert r.json()["checks"]["database"]["ok"] is True


async def test_metrics(app: FastAPI, redis: aioredis.Redis, keys: Keys) -> None:
    await make_campaign(app.state.sessionmaker)
    await redis.sadd(keys.agents_online, "7")  # type: ignore[misc]
    await redis.hset(keys.agent_state(7), mapping={"state": "ready"})  # type: ignore[misc]
    await redis.hset(keys.ami_link("pbx1"), mapping={"state": "connected"})  # type: ignore[misc]
    key = await make_key(app.state.sessionmaker, "metrics:read")
    async with key_client(app, key) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'marcador_agents{state="ready"} 1.0' in text
    assert 'marcador_ami_link_up{server="pbx1"} 1.0' in text
    assert "marcador_abandon_rate{" in text  # the running campaign
    assert 'window="30d"' in text
    assert 'marcador_stream_length{stream="commands"} 0.0' in text


async def test_request_timing_header_and_histogram(app: FastAPI) -> None:
    """Every response carries Server-Timing; /metrics has the per-route histogram, labelled by
    the route template (never the raw path)."""
    key = await make_key(app.state.sessionmaker, "metrics:read", "campaigns:read")
    async with key_client(app, key) as c:
        health = await c.get("/healthz")
        missing = await c.get("/api/v1/campaigns/999999")
        await c.get("/no/such/path")
        text = (await c.get("/metrics")).text
    assert health.headers["server-timing"].startswith("app;dur=")
    assert float(health.headers["server-timing"].split("=", 1)[1]) >= 0.0
    assert missing.status_code == 404
    assert "server-timing" in missing.headers
    assert 'marcador_http_request_duration_seconds_count{method="GET",route="/healthz"} 1.0' in text
    assert 'route="/api/v1/campaigns/{campaign_id}"} 1.0' in text
    assert 'route="unmatched"} 1.0' in text
    assert "/999999" not in text
    assert "marcador_event_loop_lag_seconds_bucket" in text
