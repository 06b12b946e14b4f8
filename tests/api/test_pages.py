"""Web pages (sign-in, agent screen, dashboard, reports) and the dashboard aggregates API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import redis.asyncio as aioredis
import sqlalchemy as sa
from fastapi import FastAPI

from api.pages import CSP, STATIC_DIR
from api.routers.live import abandon_level
from dialer.db.models import CallAttempt, Role
from dialer.domain.outcomes import CallOutcome, CampaignStatus, DialMode
from dialer.redis_keys import Keys
from tests.api.helpers import (
    MONDAY_10AM,
    ApiClient,
    make_campaign,
    make_connected_attempt,
    make_lead,
)

HTML = {"Accept": "text/html,application/xhtml+xml"}


async def test_login_page_is_public_spanish_and_locked_down(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/ingresar", headers=HTML)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'lang="es-CO"' in r.text
    assert "Contraseña" in r.text
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-frame-options"] == "DENY"
    assert "<script>" not in r.text  # no inline script (CSP forbids it)


async def test_pages_redirect_browsers_to_sign_in(anon: httpx.AsyncClient) -> None:
    for path in ("/", "/agente", "/supervisor", "/reportes"):
        r = await anon.get(path, headers=HTML)
        assert r.status_code == 303, path
        assert r.headers["location"] == f"/ingresar?siguiente={path}"
    # Non-browser clients get the API's own 401, like every other route.
    r = await anon.get("/agente")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_bad_cookie_redirect_carries_the_reason(anon: httpx.AsyncClient) -> None:
    anon.cookies.set("marcador_session", "nope.nope")
    r = await anon.get("/supervisor", headers=HTML)
    assert r.status_code == 303
    assert r.headers["location"].endswith("&motivo=invalid_session")


async def test_pages_by_role(app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    sup = await clients("sofia", Role.SUPERVISOR, campaigns=(cid,))
    r = await agent.get("/agente", headers=HTML)
    assert r.status_code == 200
    assert "Conectarse a una campaña" in r.text
    assert "/static/agent.js?v=" in r.text
    assert 'data-role="agent"' in r.text
    r = await agent.get("/supervisor", headers=HTML)
    assert r.status_code == 403
    assert "Sin permiso" in r.text
    r = await sup.get("/supervisor", headers=HTML)
    assert r.status_code == 200
    assert "Tablero en vivo" in r.text
    assert 'href="/reportes"' in r.text
    r = await sup.get("/agente", headers=HTML)
    assert r.status_code == 403
    r = await sup.get("/", headers=HTML)
    assert r.headers["location"] == "/supervisor"
    r = await agent.get("/", headers=HTML)
    assert r.headers["location"] == "/agente"
    r = await sup.get("/reportes", headers=HTML)
    assert r.status_code == 200
    assert "Reportes" in r.text


async def test_static_files_are_served(anon: httpx.AsyncClient) -> None:
    names = sorted(p.name for p in STATIC_DIR.iterdir())
    assert {"agent.js", "supervisor.js", "common.js", "charts.js", "style.css"} <= set(names)
    r = await anon.get("/static/agent.js")
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    assert "X-CSRF-Token" in (await anon.get("/static/common.js")).text
    assert (await anon.get("/static/nope.js")).status_code == 404


def test_abandon_levels() -> None:
    assert abandon_level(0.0, 0.03) == "ok"
    assert abandon_level(0.02, 0.03) == "warning"
    assert abandon_level(0.027, 0.03) == "danger"
    assert abandon_level(0.05, 0.0) == "ok"


async def test_live_and_today(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    app.state.live_cache_s = 0.0
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    other = await make_campaign(sm, "Otra")
    agent = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    sup = await clients("sofia", Role.SUPERVISOR, campaigns=(cid,))
    lead1 = await make_lead(sm, cid, 1)
    lead2 = await make_lead(sm, cid, 2)
    await make_lead(sm, cid, 3)
    # lead 1: connected to ana, in progress (no outcome yet); lead 2: abandoned earlier.
    attempt = await make_connected_attempt(sm, cid, lead1, agent.user_id, outcome=None)
    await make_connected_attempt(sm, cid, lead2, None, outcome=CallOutcome.ABANDONED)
    async with sm.begin() as s:
        row = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == attempt))
        assert row is not None
        row.dialed_at = MONDAY_10AM - timedelta(minutes=5)
    await redis.hset(  # type: ignore[misc]
        keys.agent_state(agent.user_id),
        mapping={
            "state": "in_call",
            "since": (MONDAY_10AM - timedelta(seconds=30)).isoformat(),
            "extension": "1001",
            "campaign_id": str(cid),
            "pause_code": "",
            "attempt": attempt,
        },
    )
    await redis.sadd(keys.agents_online, str(agent.user_id))  # type: ignore[misc]

    r = await sup.get(f"/api/v1/campaigns/{cid}/live")
    assert r.status_code == 200, r.text
    live = r.json()
    assert live["campaign"]["status"] == "running"
    assert live["agents_by_state"]["in_call"] == 1
    [row_out] = live["agents"]
    assert row_out["customer"] == "Cliente 1"
    assert row_out["talk_seconds"] == 30.0
    assert live["calls"] == {
        "dialing": 0,
        "ringing": 0,
        "answered": 0,
        "connected": 1,
        "source": "derived",
    }
    assert live["abandon"]["today"] == 1
    assert live["abandon"]["rate_today"] == 1.0
    assert live["abandon"]["level"] == "danger"
    assert live["rates"]["attempts_today"] == 2
    assert live["rates"]["finished_today"] == 1
    assert live["leads"]["total"] == 3
    assert live["leads"]["ready"] == 1  # leads 1 and 2 are in progress in the helpers
    assert live["window"]["open"] is True
    assert live["pacing"]["mode"] == DialMode.PROGRESSIVE.value
    assert live["pacing"]["dial_level"] == 1.0  # progressive: one call per ready agent

    # The dialer's own live counters win when it publishes them.
    await redis.hset(  # type: ignore[misc]
        keys.campaign_live(cid),
        mapping={
            "dialing": "1",
            "ringing": "4",
            "answered": "0",
            "connected": "1",
            "dial_level": "2.5",
            "mode": "predictive",
        },
    )
    live = (await sup.get(f"/api/v1/campaigns/{cid}/live")).json()
    assert live["calls"]["source"] == "dialer"
    assert live["calls"]["ringing"] == 4
    assert live["pacing"]["dial_level"] == 2.5
    assert live["pacing"]["mode"] == "predictive"

    r = await sup.get(f"/api/v1/campaigns/{cid}/today")
    assert r.status_code == 200
    today = r.json()
    assert sum(b["attempts"] for b in today["buckets"]) == 2
    assert sum(b["abandoned"] for b in today["buckets"]) == 1
    assert today["bucket_minutes"] == 15

    # Isolation: other campaigns are 404; agents may not see the grid.
    assert (await sup.get(f"/api/v1/campaigns/{other}/live")).status_code == 404
    assert (await agent.get(f"/api/v1/campaigns/{cid}/live")).status_code == 403


async def test_live_answer_is_cached_briefly(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    app.state.live_cache_s = 60.0
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    sup = await clients("sofia", Role.SUPERVISOR, campaigns=(cid,))
    first = (await sup.get(f"/api/v1/campaigns/{cid}/live")).json()
    await make_lead(sm, cid, 9)
    again = (await sup.get(f"/api/v1/campaigns/{cid}/live")).json()
    assert again["leads"]["total"] == first["leads"]["total"] == 0
    app.state.live_cache_s = 0.0
    fresh = (await sup.get(f"/api/v1/campaigns/{cid}/live")).json()
    assert fresh["leads"]["total"] == 1


async def test_paused_campaign_shows_in_live(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    app.state.live_cache_s = 0.0
    cid = await make_campaign(app.state.sessionmaker, status=CampaignStatus.PAUSED)
    sup = await clients("sofia", Role.SUPERVISOR, campaigns=(cid,))
    live = (await sup.get(f"/api/v1/campaigns/{cid}/live")).json()
    assert live["campaign"]["status"] == "paused"
    assert live["agents"] == []
