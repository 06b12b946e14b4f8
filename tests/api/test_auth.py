"""Authentication and authorisation across every route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from api.auth import CSRF_HEADER
from dialer.db.models import AuditLog, Role, User
from dialer.domain.clock import FakeClock
from tests.api.helpers import PASSWORD, ApiClient, key_client, make_key, session_client

#: Routes anyone may call: liveness/readiness probes, sign-in, the API docs, and the
#: WhatsApp Cloud API webhook (it checks Meta's X-Hub-Signature-256 itself).
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/ingresar"),  # the sign-in page (api/pages.py)
}
PUBLIC_MODULES = ("dialer.whatsapp",)


def all_routes(app: FastAPI) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for rc in iter_route_contexts(app.routes):
        module = str(getattr(rc.endpoint, "__module__", "")) if rc.endpoint else ""
        for method in sorted(rc.methods or ()):
            if method != "HEAD" and rc.path is not None:
                out.append((method, rc.path, module))
    return out


def _fill(path: str) -> str:
    parts = []
    for part in path.split("/"):
        parts.append("1" if part.startswith("{") else part)
    return "/".join(parts)


async def test_every_route_requires_auth(app: FastAPI, anon: httpx.AsyncClient) -> None:
    routes = all_routes(app)
    assert len(routes) > 50
    checked = 0
    for method, path, module in routes:
        if (method, path) in PUBLIC or module.startswith(PUBLIC_MODULES):
            continue
        r = await anon.request(method, _fill(path))
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
        bad = await anon.request(
            method, _fill(path), headers={"Authorization": "Bearer mk_nope_nope"}
        )
        assert bad.status_code == 401, (method, path, bad.status_code)
        checked += 1
    assert checked == len(routes) - sum(
        1 for m, p, mod in routes if (m, p) in PUBLIC or mod.startswith(PUBLIC_MODULES)
    )


async def test_public_routes_answer_without_auth(anon: httpx.AsyncClient) -> None:
    assert (await anon.get("/healthz")).json() == {"status": "ok"}
    assert (await anon.get("/openapi.json")).status_code == 200
    assert (await anon.get("/docs")).status_code == 200


async def test_docs_work_offline(anon: httpx.AsyncClient) -> None:
    """/docs loads Swagger UI from the API itself: nothing from a CDN (often blocked)."""
    page = (await anon.get("/docs")).text
    assert "cdn." not in page and "https://" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs-static/{asset}" in page
        r = await anon.get(f"/docs-static/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000, asset


async def test_login_me_logout(app: FastAPI, admin: ApiClient) -> None:
    me = (await admin.get("/api/v1/auth/me")).json()
    assert me["user"]["username"] == "admin1"
    assert me["user"]["role"] == "admin"
    assert me["kind"] == "session"
    r = await admin.post("/api/v1/auth/logout")
    assert r.status_code == 204
    r = await admin.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] in ("unauthorized", "no_session")


async def test_login_cookie_flags(
    clients: Callable[..., Awaitable[ApiClient]], anon: httpx.AsyncClient
) -> None:
    await clients("sup1", Role.SUPERVISOR)
    r = await anon.post("/api/v1/auth/login", json={"username": "sup1", "password": PASSWORD})
    assert r.status_code == 200
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("marcador_session="))
    assert "HttpOnly" in session
    assert "samesite=lax" in session.lower()
    csrf = next(c for c in cookies if c.startswith("marcador_csrf="))
    assert "HttpOnly" not in csrf


async def test_wrong_password_and_unknown_user(
    clients: Callable[..., Awaitable[ApiClient]], anon: httpx.AsyncClient
) -> None:
    await clients("ana", Role.AGENT)
    for username in ("ana", "nobody"):
        r = await anon.post("/api/v1/auth/login", json={"username": username, "password": "x"})
        assert r.status_code == 401
        assert r.json()["error"] == {
            "code": "invalid_credentials",
            "message": "wrong username or password",
            "details": {},
        }


async def test_passwords_are_argon2_hashed(app: FastAPI, admin: ApiClient) -> None:
    r = await admin.post(
        "/api/v1/users",
        json={"username": "new.agent", "password": "a long enough secret", "role": "agent"},
    )
    assert r.status_code == 201, r.text
    async with app.state.sessionmaker() as s:
        user = await s.scalar(sa.select(User).where(User.username == "new.agent"))
        assert user is not None
        assert user.password_hash.startswith("$argon2")
        assert "a long enough secret" not in user.password_hash
        audit = list(await s.scalars(sa.select(AuditLog).where(AuditLog.action == "user.create")))
    assert audit and audit[0].actor == f"user:{admin.user_id}"
    assert "a long enough secret" not in str(audit[0].detail)


async def test_weak_password_refused(admin: ApiClient) -> None:
    r = await admin.post(
        "/api/v1/users", json={"username": "weak", "password": "short", "role": "agent"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "weak_password"


async def test_csrf_required_for_cookie_sessions(app: FastAPI, admin: ApiClient) -> None:
    body = {"name": "CSRF test", "type": "custom"}
    r = await admin.post("/api/v1/campaigns", json=body, headers={CSRF_HEADER: ""})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "csrf_failed"
    r = await admin.post("/api/v1/campaigns", json=body, headers={CSRF_HEADER: "forged"})
    assert r.status_code == 403
    # Replayed token: a token of an earlier session does not work with a new session.
    old = admin.csrf
    relogin = await admin.post(
        "/api/v1/auth/login", json={"username": "admin1", "password": PASSWORD}
    )
    assert relogin.status_code == 200
    r = await admin.post("/api/v1/campaigns", json=body, headers={CSRF_HEADER: old})
    assert r.status_code == 403
    r = await admin.post(
        "/api/v1/campaigns", json=body, headers={CSRF_HEADER: relogin.json()["csrf_token"]}
    )
    assert r.status_code == 201, r.text
    # Safe methods need no token.
    assert (await admin.get("/api/v1/campaigns", headers={CSRF_HEADER: ""})).status_code == 200


async def test_session_expires(admin: ApiClient, clock: FakeClock) -> None:
    assert (await admin.get("/api/v1/auth/me")).status_code == 200
    clock.advance(9 * 3600)  # idle timeout: 8 h
    r = await admin.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "session_expired"
    assert "expired" in r.json()["error"]["message"]


async def test_tampered_cookie(app: FastAPI, admin: ApiClient) -> None:
    value = admin.cookies["marcador_session"]
    admin.cookies.set("marcador_session", value[:-2] + "xx")
    r = await admin.get("/api/v1/auth/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_session"


async def test_login_rate_limit(
    clients: Callable[..., Awaitable[ApiClient]], anon: httpx.AsyncClient
) -> None:
    await clients("bob", Role.SUPERVISOR)
    for _ in range(5):
        r = await anon.post("/api/v1/auth/login", json={"username": "bob", "password": "bad"})
        assert r.status_code == 401
    r = await anon.post("/api/v1/auth/login", json={"username": "bob", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "too_many_attempts"


async def test_login_rate_limit_per_ip(anon: httpx.AsyncClient) -> None:
    for i in range(20):
        r = await anon.post("/api/v1/auth/login", json={"username": f"user{i}", "password": "bad"})
        assert r.status_code == 401
    r = await anon.post("/api/v1/auth/login", json={"username": "someone", "password": "bad"})
    assert r.status_code == 429


async def test_api_key_scopes(app: FastAPI) -> None:
    key = await make_key(app.state.sessionmaker, "campaigns:read")
    async with key_client(app, key) as c:
        assert (await c.get("/api/v1/campaigns")).status_code == 200
        r = await c.post("/api/v1/campaigns", json={"name": "x", "type": "custom"})
        assert r.status_code == 403
        assert "campaigns:write" in r.json()["error"]["message"]
        assert (await c.get("/api/v1/users")).status_code == 403
        assert (await c.get("/metrics")).status_code == 403
    async with key_client(app, key) as c:  # X-API-Key header works too, no CSRF needed
        c.headers.pop("Authorization")
        c.headers["X-API-Key"] = key
        assert (await c.get("/api/v1/auth/me")).json()["scopes"] == ["campaigns:read"]


async def test_revoked_api_key(app: FastAPI, admin: ApiClient) -> None:
    r = await admin.post("/api/v1/api-keys", json={"name": "dms", "scopes": ["leads:read"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["key"].startswith(f"mk_{created['prefix']}_")
    listed = (await admin.get("/api/v1/api-keys")).json()
    assert "key" not in listed[0] and "key_hash" not in listed[0]
    async with key_client(app, created["key"]) as c:
        assert (await c.get("/api/v1/leads")).status_code == 200
        assert (await admin.delete(f"/api/v1/api-keys/{created['id']}")).status_code == 204
        r = await c.get("/api/v1/leads")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"


async def test_unknown_scope_refused(admin: ApiClient) -> None:
    r = await admin.post("/api/v1/api-keys", json={"name": "x", "scopes": ["root"]})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_scopes"


@pytest.mark.parametrize(
    ("role", "path", "expected"),
    [
        (Role.AGENT, "/api/v1/users", 403),
        (Role.AGENT, "/api/v1/api-keys", 403),
        (Role.AGENT, "/api/v1/audit", 403),
        (Role.AGENT, "/api/v1/dnc", 403),
        (Role.AGENT, "/api/v1/agents", 403),
        (Role.AGENT, "/api/v1/agent/me", 200),
        (Role.SUPERVISOR, "/api/v1/users", 403),
        (Role.SUPERVISOR, "/api/v1/api-keys", 403),
        (Role.SUPERVISOR, "/api/v1/webhooks", 403),
        (Role.SUPERVISOR, "/api/v1/agent/me", 403),
        (Role.SUPERVISOR, "/api/v1/dnc", 200),
        (Role.SUPERVISOR, "/api/v1/agents", 200),
        (Role.ADMIN, "/api/v1/users", 200),
        (Role.ADMIN, "/api/v1/audit", 200),
    ],
)
async def test_role_checks(
    clients: Callable[..., Awaitable[ApiClient]], role: Role, path: str, expected: int
) -> None:
    client = await clients(f"u-{role.value}", role)
    r = await client.get(path)
    assert r.status_code == expected, r.text


async def test_supervisor_cannot_mint_admin_via_key(app: FastAPI) -> None:
    key = await make_key(app.state.sessionmaker, "users:write")
    async with key_client(app, key) as c:
        r = await c.post(
            "/api/v1/users",
            json={"username": "evil", "password": "a long enough secret", "role": "admin"},
        )
        assert r.status_code == 403


async def test_deactivated_user_is_signed_out(
    app: FastAPI, admin: ApiClient, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    agent = await clients("carla", Role.AGENT)
    assert (await agent.get("/api/v1/agent/me")).status_code == 200
    assert (await admin.delete(f"/api/v1/users/{agent.user_id}")).status_code == 204
    assert (await agent.get("/api/v1/agent/me")).status_code == 401
    async with session_client(app, "admin1") as again:
        assert (await again.get("/api/v1/auth/me")).status_code == 200
