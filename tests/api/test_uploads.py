"""Lead import and DNC/RNE uploads: reports, background jobs, size and type errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from fastapi import FastAPI

from dialer.db.models import DncEntry, Lead, Role
from tests.api.helpers import ApiClient, make_campaign

CSV = (
    "nombre;cedula;telefono;placa\n"
    "Ana Pérez;1049601234;300 123 4567;ABC123\n"
    "Luis Gómez;1049605678;310 765 4321;XYZ987\n"
    "Sin Teléfono;1049609999;;QQQ111\n"
).encode()


def _files(content: bytes, name: str = "leads.csv") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, content, "text/csv")}


async def test_small_import_returns_report(app: FastAPI, admin: ApiClient) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    r = await admin.post(
        f"/api/v1/campaigns/{cid}/imports",
        files=_files(CSV),
        data={"assume_consent": "habeas data firmado en taller"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "done"
    assert body["summary"]["imported"] == 2
    assert [row["status"] for row in body["rows"]] == ["imported", "imported", "rejected"]
    assert "3001234567" not in r.text  # the report carries no phone numbers
    async with app.state.sessionmaker() as s:
        assert await s.scalar(sa.select(sa.func.count()).select_from(Lead)) == 2
    batches = (await admin.get("/api/v1/imports", params={"campaign_id": cid})).json()
    assert batches[0]["rows_imported"] == 2


async def test_large_import_is_a_job(app: FastAPI, admin: ApiClient) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    app.state.import_sync_max_bytes = 10
    r = await admin.post(f"/api/v1/campaigns/{cid}/imports", files=_files(CSV))
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    assert r.headers["Location"] == f"/api/v1/imports/{job}"
    await asyncio.gather(*app.state.background)
    got = (await admin.get(f"/api/v1/imports/{job}")).json()
    assert got["status"] == "done"
    assert got["summary"]["rows_total"] == 3
    assert len(got["rows"]) == 3
    assert (await admin.get("/api/v1/imports/unknown")).status_code == 404


async def test_import_errors(
    app: FastAPI, admin: ApiClient, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    url = f"/api/v1/campaigns/{cid}/imports"
    r = await admin.post(url, files=_files(b"%PDF-1.4 binary", "leads.pdf"))
    assert r.status_code == 415
    assert "CSV or XLSX" in r.json()["error"]["message"]
    r = await admin.post(url, files=_files(b"\x00\x01\x02\x03garbage", "leads.csv"))
    assert r.status_code == 415
    r = await admin.post(url, files=_files(b"", "leads.csv"))
    assert r.status_code == 422
    r = await admin.post(url, files=_files(CSV), data={"mapping": "{not json"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_mapping"
    r = await admin.post("/api/v1/campaigns/999/imports", files=_files(CSV))
    assert r.status_code == 404
    r = await admin.post(url)
    assert r.status_code == 422  # no file
    big = b"nombre;telefono\n" + b"x;3001234567\n" * (2 * 1024 * 1024 // 13)
    limit_mb = app.state.settings.api.max_upload_mb
    app.state.settings.api.max_upload_mb = 1
    try:
        r = await admin.post(url, files=_files(big))
    finally:
        app.state.settings.api.max_upload_mb = limit_mb
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    other = await make_campaign(app.state.sessionmaker, "Ajena")
    sup = await clients("sup", Role.SUPERVISOR, campaigns=(cid,))
    assert (
        await sup.post(f"/api/v1/campaigns/{other}/imports", files=_files(CSV))
    ).status_code == 404


async def test_body_limit_middleware(admin: ApiClient) -> None:
    r = await admin.post(
        "/api/v1/campaigns",
        content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413


async def test_dnc_single_and_upload(app: FastAPI, admin: ApiClient) -> None:
    r = await admin.post("/api/v1/dnc", json={"number": "300 123 4567", "reason": "pidió"})
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["number"] == "+573001234567"
    assert entry["source"] == "internal"
    r = await admin.post("/api/v1/dnc", json={"number": "+57 300 123 4567"})
    assert r.status_code == 409
    r = await admin.post("/api/v1/dnc", json={"number": "12ab"})
    assert r.status_code == 422
    found = (await admin.get("/api/v1/dnc", params={"number": "3001234567"})).json()
    assert found["total"] == 1

    rne = b"numero\n3101112233\n(8) 740 1234\nbasura\n3101112233\n"
    r = await admin.post(
        "/api/v1/dnc/upload", files={"file": ("rne.csv", rne, "text/csv")}, data={"source": "rne"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "source": "rne",
        "rows": 4,
        "added": 2,
        "already_listed": 0,
        "removed": 0,
        "invalid_rows": [4],
    }
    r = await admin.post(
        "/api/v1/dnc/upload",
        files={"file": ("rne.csv", b"3101112233\n", "text/csv")},
        data={"source": "rne", "replace": "true"},
    )
    assert r.json()["removed"] == 1 and r.json()["already_listed"] == 1
    assert (await admin.delete(f"/api/v1/dnc/{entry['id']}")).status_code == 204
    assert (await admin.delete(f"/api/v1/dnc/{entry['id']}")).status_code == 404
    async with app.state.sessionmaker() as s:
        numbers = sorted(await s.scalars(sa.select(DncEntry.e164)))
    assert numbers == ["+573101112233"]
