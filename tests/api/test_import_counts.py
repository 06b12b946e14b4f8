"""The API's import (report and background job) counts people apart from rows and gives the
recovery list's eligible people as of the import date (issue 19)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from dialer.domain.outcomes import CampaignType
from tests.api.helpers import ApiClient, make_campaign


def _csv() -> bytes:
    today = datetime.now(UTC).date()  # the API imports "now": dates relative to today
    old, recent = today - timedelta(days=400), today - timedelta(days=30)
    return (
        "nombre;cedula;telefono;fecha ultima visita\n"
        f"Ana Pérez;1049601234;300 123 4567;{old}\n"
        f"Ana Pérez;1049601234;300 123 4567;\n"
        f"Luis Gómez;1049605678;310 765 4321;{recent}\n"
        f"Sin Teléfono;1049609999;;{old}\n"
        f"Sin Teléfono;1049609999;;\n"
    ).encode()


async def test_import_job_reports_people_and_recovery_eligible(
    app: FastAPI, admin: ApiClient
) -> None:
    cid = await make_campaign(
        app.state.sessionmaker, "Recuperación Tunja", CampaignType.RECUPERACION
    )
    app.state.import_sync_max_bytes = 10  # a background job
    files = {"file": ("recuperacion.csv", _csv(), "text/csv")}
    r = await admin.post(f"/api/v1/campaigns/{cid}/imports", files=files)
    assert r.status_code == 202, r.text
    await asyncio.gather(*app.state.background)
    got = (await admin.get(f"/api/v1/imports/{r.json()['job_id']}")).json()
    assert got["status"] == "done"
    summary = got["summary"]
    assert summary["rows"]["total"] == 5 and summary["rows"]["rejected"] == 2
    assert summary["people"] == {
        "total": 3,
        "new": 2,
        "updated": 0,
        "excluded": {},
        "rejected": {"no_phone": 1},
    }
    recovery = summary["recovery"]
    assert (recovery["eligible"], recovery["not_yet"], recovery["no_visit_date"]) == (1, 1, 0)
