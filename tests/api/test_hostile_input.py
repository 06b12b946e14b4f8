"""Smaller hostile-input findings of issue 17: NUL bytes, blank names, X-Forwarded-For, and
the documented status codes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from dialer.settings import load_settings
from tests.api.helpers import ApiClient, make_campaign

ROOT = Path(__file__).resolve().parents[2]


async def test_nul_characters_refused_on_every_backend(app: FastAPI, admin: ApiClient) -> None:
    body = {"name": "Cam\x00paña", "type": "recuperacion_clientes"}
    r = await admin.post("/api/v1/campaigns", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_value", r.text
    r = await admin.get("/api/v1/leads", params={"q": "ab\x00c"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_value", r.text
    cid = await make_campaign(app.state.sessionmaker)
    r = await admin.patch(f"/api/v1/campaigns/{cid}", json={"name": "x\x00"})
    assert r.status_code == 422
    r = await admin.get("/api/v1/leads", params={"q": "Cliente"})
    assert r.status_code == 200  # ordinary requests pass through
    r = await admin.post("/api/v1/campaigns", json={**body, "name": "Campaña"})
    assert r.status_code == 201, r.text


async def test_blank_campaign_name_refused(app: FastAPI, admin: ApiClient) -> None:
    for name in ("   ", "\t\n", ""):
        r = await admin.post(
            "/api/v1/campaigns", json={"name": name, "type": "recuperacion_clientes"}
        )
        assert r.status_code == 422, (name, r.text)
    cid = await make_campaign(app.state.sessionmaker)
    r = await admin.patch(f"/api/v1/campaigns/{cid}", json={"name": "  "})
    assert r.status_code == 422, r.text
    r = await admin.patch(f"/api/v1/campaigns/{cid}", json={"name": "  Nueva  "})
    assert r.status_code == 200 and r.json()["name"] == "Nueva"
    body = {"name": "  Otra  ", "type": "recuperacion_clientes"}
    r = await admin.post("/api/v1/campaigns", json=body)
    assert r.status_code == 201 and r.json()["name"] == "Otra", r.text


async def _client_seen(options: dict[str, Any], peer: str, forwarded: str) -> str:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = uvicorn.Config(app, **options)
    config.load()
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "scheme": "http",
        "client": (peer, 40000),
        "headers": [(b"x-forwarded-for", forwarded.encode())],
    }

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    await config.loaded_app(scope, receive, send)
    return seen[0]


async def test_x_forwarded_for_believed_only_from_trusted_proxies() -> None:
    from api.cli import proxy_options

    default = proxy_options(load_settings())
    assert await _client_seen(default, "127.0.0.1", "203.0.113.7") == "127.0.0.1"
    trusted = proxy_options(load_settings(api={"trusted_proxies": ["10.0.0.0/24"]}))
    assert await _client_seen(trusted, "10.0.0.5", "203.0.113.7") == "203.0.113.7"
    assert await _client_seen(trusted, "127.0.0.1", "203.0.113.7") == "127.0.0.1"


def test_documented_status_codes_match_the_code() -> None:
    """Every (status, code) the WhatsApp webhook answers is in docs/api.md's error table, and
    docs/security.md gives the same status for a bad signature."""
    source = (ROOT / "dialer" / "whatsapp" / "webhooks.py").read_text(encoding="utf-8")
    pairs = set(re.findall(r'_error\(\s*(\d{3}),\s*"(\w+)"', source))
    assert pairs
    table = {
        line.split("`")[0].strip("| ").strip(): line
        for line in (ROOT / "docs" / "api.md").read_text(encoding="utf-8").splitlines()
        if re.match(r"\| \d{3} `", line)
    }
    for status, code in pairs:
        assert f"`{code}`" in table.get(status, ""), (status, code)
    security = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    signature = dict((code, status) for status, code in pairs)["invalid_signature"]
    assert f"posts get {signature} `invalid_signature`" in security
