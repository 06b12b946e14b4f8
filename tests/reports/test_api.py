"""The reports API against the same hand-computed month, plus access rules and stored runs."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import openpyxl
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.deps import get_clock
from dialer.db.models import Role
from dialer.domain.clock import FakeClock
from dialer.redis_keys import Keys
from dialer.reports.definitions import Report
from dialer.settings import Settings
from tests.api.helpers import cheap_hasher, key_client, make_key, make_user, session_client
from tests.reports.fixture import NOW, FixtureIds, load_fixture
from tests.reports.test_indicators import EFFECTIVENESS, PARETO, check_report


@pytest.fixture
async def app(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings,
        sessionmaker=sessionmaker,
        redis=redis,
        keys=keys,
        start_workers=False,
        password_hasher=cheap_hasher(),
    )
    application.dependency_overrides[get_clock] = lambda: FakeClock(NOW)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def fx(sessionmaker: async_sessionmaker[AsyncSession]) -> FixtureIds:
    return await load_fixture(sessionmaker)


async def test_indicators_endpoint_returns_the_hand_computed_values(
    app: FastAPI, fx: FixtureIds
) -> None:
    await make_user(app.state.sessionmaker, "admin1", Role.ADMIN)
    async with session_client(app, "admin1") as client:
        r = await client.get("/api/v1/reports/indicators", params={"month": "2026-10"})
        assert r.status_code == 200, r.text
        check_report(Report.model_validate(r.json()), fx)
        # Filters travel as repeated query parameters.
        r = await client.get(
            "/api/v1/reports/indicators",
            params={"month": "2026-10", "campaign_id": [fx.campaigns["C2"]]},
        )
        total = r.json()["effectiveness"]["total"]
        assert (total["total_calls"], total["effective_calls"], total["effectiveness_pct"]) == (
            EFFECTIVENESS["C2"]
        )
        r = await client.get("/api/v1/reports/indicators", params={"month": "2026-13"})
        assert r.status_code == 422
        r = await client.get("/api/v1/reports/indicators")
        assert r.json()["error"]["code"] == "invalid_report_filter"
        r = await client.get("/api/v1/reports/options")
        assert r.json()["branches"] == ["Duitama", "Tunja"]


async def test_reports_are_for_supervisors_and_admins(app: FastAPI, fx: FixtureIds) -> None:
    sm = app.state.sessionmaker
    await make_user(sm, "ana2", Role.AGENT)
    async with session_client(app, "ana2") as agent:
        r = await agent.get("/api/v1/reports/indicators", params={"month": "2026-10"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"
    # A supervisor assigned to C2 only: filters are narrowed to C2; asking for C1 is refused.
    await make_user(sm, "sup2", Role.SUPERVISOR, campaigns=(fx.campaigns["C2"],))
    async with session_client(app, "sup2") as sup:
        r = await sup.get("/api/v1/reports/indicators", params={"month": "2026-10"})
        assert r.status_code == 200
        total = r.json()["effectiveness"]["total"]
        assert (total["total_calls"], total["effective_calls"]) == EFFECTIVENESS["C2"][:2]
        r = await sup.get(
            "/api/v1/reports/indicators",
            params={"month": "2026-10", "campaign_id": [fx.campaigns["C1"]]},
        )
        assert r.status_code == 403
    key = await make_key(sm, "campaigns:read")
    async with key_client(app, key) as c:
        r = await c.get("/api/v1/reports/indicators", params={"month": "2026-10"})
        assert r.status_code == 403


async def test_stored_run_is_downloadable_as_xlsx_and_html(app: FastAPI, fx: FixtureIds) -> None:
    sm = app.state.sessionmaker
    await make_user(sm, "admin1", Role.ADMIN)
    await make_user(sm, "sup2", Role.SUPERVISOR, campaigns=(fx.campaigns["C2"],))
    async with session_client(app, "admin1") as admin:
        r = await admin.post("/api/v1/reports/runs", json={"month": "2026-10"})
        assert r.status_code == 201, r.text
        run = r.json()
        assert run["status"] == "done"
        assert run["summary"]["effectiveness_pct"] == EFFECTIVENESS["total"][2]
        assert run["summary"]["vital_few"] == [p[0] for p in PARETO if p[4]]
        xlsx = await admin.get(run["xlsx_url"])
        assert xlsx.status_code == 200
        assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
        wb = openpyxl.load_workbook(io.BytesIO(xlsx.content))
        assert "Efectividad" in wb.sheetnames
        html = await admin.get(run["html_url"])
        assert html.status_code == 200
        assert "<svg" in html.text
        listing = (await admin.get("/api/v1/reports/runs")).json()
        assert [x["id"] for x in listing["items"]] == [run["id"]]
        missing = await admin.get("/api/v1/reports/runs/999999/xlsx")
        assert missing.status_code == 404
    # The all-campaign run is not visible to a supervisor scoped to C2.
    async with session_client(app, "sup2") as sup:
        assert (await sup.get("/api/v1/reports/runs")).json()["total"] == 0
        r = await sup.get(f"/api/v1/reports/runs/{run['id']}/xlsx")
        assert r.status_code == 404
        mine = await sup.post("/api/v1/reports/runs", json={"month": "2026-10"})
        assert mine.status_code == 201
        assert mine.json()["filters"]["campaign_ids"] == [fx.campaigns["C2"]]
        assert (await sup.get("/api/v1/reports/runs")).json()["total"] == 1


async def test_unauthenticated_requests_are_refused(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.get("/api/v1/reports/runs")
        assert r.status_code == 401
