"""Hostile uploads (issue 17): decompression bombs refused fast, and the job's state comes
from the database, never turned into a failure by Redis losing or failing the live copy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi import FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError

from api.routers.imports import ImportJob
from tests.api.helpers import ApiClient, make_campaign
from tests.api.test_uploads import CSV
from tests.importing import hostile_xlsx

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _xlsx(content: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("leads.xlsx", content, XLSX_TYPE)}


@pytest.mark.parametrize(
    ("content", "status", "limit"),
    [
        (hostile_xlsx.bomb(60), 413, "MARCADOR_IMPORTS__XLSX_MAX_RATIO"),
        (hostile_xlsx.with_dimension("A1:B3000000"), 422, "MARCADOR_IMPORTS__XLSX_MAX_ROWS"),
        (hostile_xlsx.with_dimension("A1:XFD1048576"), 422, "MARCADOR_IMPORTS__XLSX_MAX_COLUMNS"),
        (hostile_xlsx.long_shared_string(40_000), 422, "MARCADOR_IMPORTS__MAX_CELL_CHARS"),
    ],
    ids=["ratio-bomb", "huge-dimension", "wide-dimension", "long-shared-string"],
)
async def test_xlsx_limits_refused_fast_naming_the_limit(
    app: FastAPI, admin: ApiClient, content: bytes, status: int, limit: str
) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    app.state.import_sync_max_bytes = 10  # a background job: still refused in the request
    started = time.perf_counter()
    r = await admin.post(f"/api/v1/campaigns/{cid}/imports", files=_xlsx(content))
    elapsed = time.perf_counter() - started
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["details"]["limit"] == limit
    assert limit in error["message"]
    assert elapsed < 1.0
    assert not app.state.background


async def test_long_cell_refused_while_streaming(app: FastAPI, admin: ApiClient) -> None:
    """An inline cell is only seen while rows stream: 422 in the request, a failed job (that
    names the limit) in the background."""
    cid = await make_campaign(app.state.sessionmaker)
    content = hostile_xlsx.long_inline_cell(40_000)
    r = await admin.post(f"/api/v1/campaigns/{cid}/imports", files=_xlsx(content))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["limit"] == "MARCADOR_IMPORTS__MAX_CELL_CHARS"
    app.state.import_sync_max_bytes = 10
    r = await admin.post(f"/api/v1/campaigns/{cid}/imports", files=_xlsx(content))
    assert r.status_code == 202
    await asyncio.gather(*app.state.background)
    got = (await admin.get(f"/api/v1/imports/{r.json()['job_id']}")).json()
    assert got["status"] == "failed"
    assert got["error"]["details"]["limit"] == "MARCADOR_IMPORTS__MAX_CELL_CHARS"


async def test_unpacked_size_limits_come_from_settings(app: FastAPI, admin: ApiClient) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    limits = app.state.settings.imports
    limits.xlsx_max_ratio = 100_000
    limits.xlsx_max_member_mb = 5
    r = await admin.post(f"/api/v1/campaigns/{cid}/imports", files=_xlsx(hostile_xlsx.bomb(8)))
    assert r.status_code == 413
    assert r.json()["error"]["details"]["limit"] == "MARCADOR_IMPORTS__XLSX_MAX_MEMBER_MB"
    limits.xlsx_max_member_mb = 300
    limits.xlsx_max_unpacked_mb = 5
    r = await admin.post(f"/api/v1/campaigns/{cid}/imports", files=_xlsx(hostile_xlsx.bomb(8)))
    assert r.status_code == 413
    assert r.json()["error"]["details"]["limit"] == "MARCADOR_IMPORTS__XLSX_MAX_UNPACKED_MB"
    limits.xlsx_max_unpacked_mb = 500
    r = await admin.post(f"/api/v1/campaigns/{cid}/imports", files=_xlsx(hostile_xlsx.bomb(2)))
    assert r.status_code == 200, r.text  # within every limit: imported


async def _job(app: FastAPI, admin: ApiClient) -> str:
    cid = await make_campaign(app.state.sessionmaker)
    app.state.import_sync_max_bytes = 10
    r = await admin.post(
        f"/api/v1/campaigns/{cid}/imports", files={"file": ("l.csv", CSV, "text/csv")}
    )
    assert r.status_code == 202, r.text
    await asyncio.gather(*app.state.background)
    return str(r.json()["job_id"])


async def test_committed_import_is_done_although_saving_the_live_copy_fails(
    app: FastAPI, admin: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ImportJob.save

    async def flaky(self: ImportJob, fields: dict[str, Any]) -> None:
        if fields.get("status") == "done":
            raise RedisConnectionError("Connection closed by server.")
        await real(self, fields)

    monkeypatch.setattr(ImportJob, "save", flaky)
    job = await _job(app, admin)
    got = (await admin.get(f"/api/v1/imports/{job}")).json()
    assert got["status"] == "done", got
    assert got["error"] is None and got["batch_id"] is not None
    assert got["summary"]["rows_total"] == 3
    assert len(got["rows"]) == 3  # from the whole report on disk


async def test_lost_live_copy_still_answers_from_the_database(
    app: FastAPI, admin: ApiClient
) -> None:
    job = await _job(app, admin)
    await app.state.redis.delete(app.state.keys.import_job(job))
    got = (await admin.get(f"/api/v1/imports/{job}")).json()
    assert got["status"] == "done" and got["summary"]["imported"] == 2
    assert [r["status"] for r in got["rows"]] == ["imported", "imported", "rejected"]


async def test_report_bounded_in_redis_whole_on_disk(app: FastAPI, admin: ApiClient) -> None:
    app.state.settings.imports.report_rows_in_redis = 1
    job = await _job(app, admin)
    raw = await app.state.redis.hget(app.state.keys.import_job(job), "rows")
    assert raw is not None and raw.count('"row"') == 1
    got = (await admin.get(f"/api/v1/imports/{job}")).json()
    assert got["status"] == "done" and len(got["rows"]) == 1 and got["rows_complete"] is False
    rows = (await admin.get(f"/api/v1/imports/{job}/rows")).json()
    assert [r["row"] for r in rows] == [2, 3, 4]
    page = (await admin.get(f"/api/v1/imports/{job}/rows", params={"offset": 2})).json()
    assert [r["row"] for r in page] == [4]
    assert (await admin.get("/api/v1/imports/ffff/rows")).status_code == 404
