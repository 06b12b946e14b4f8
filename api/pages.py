"""Web pages served by the API app: sign-in, agent screen, supervisor dashboard, reports.

``include(app)`` (called by :func:`api.app.include_pages`) mounts:

- the page routes below (server-rendered Jinja2 shells in Spanish; their ES-module JavaScript
  calls the JSON API with the same session cookie, sends the ``marcador_csrf`` cookie back as
  ``X-CSRF-Token`` and listens to ``/api/v1/events/stream``);
- ``/static`` (JS and CSS, no build step, no CDN);
- the dashboard aggregates router (:mod:`api.routers.live`) under ``/api/v1``.

Authentication: a page asked for by a browser (``Accept: text/html``) without a valid session
redirects to ``/ingresar`` with the reason (expired session...). Anything else gets the API's
own 401 JSON, like every other route. ``/ingresar`` is public.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.routing import NoMatchFound

from api.auth import Principal, Scope
from api.deps import (
    ClockDep,
    DbDep,
    SettingsDep,
    get_principal,
)
from api.errors import ApiError
from dialer.db.models import CallAttempt, Role, User, UserCampaign
from dialer.domain.windows import resolve_tz
from dialer.reports.filters import previous_month

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
LOGIN_PATH = "/ingresar"

#: The pages' Content-Security-Policy: no inline script, nothing from other origins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


def page_csp(ws_url: str) -> str:
    """:data:`CSP`, plus the browser phone's SIP-over-WebSocket origin in ``connect-src``
    when one is configured (``MARCADOR_WEBRTC__WS_URL``)."""
    parts = urlsplit(ws_url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        return CSP
    return CSP.replace("connect-src 'self'", f"connect-src 'self' {parts.scheme}://{parts.netloc}")


def static_version() -> str:
    """A short digest of the static files, appended to their URLs (cache busting)."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


class PageAuth:
    """The page's viewer: a principal, or why there is none (a 401 error code)."""

    def __init__(self, principal: Principal | None, error: ApiError | None) -> None:
        self.principal = principal
        self.error = error


async def page_auth(
    request: Request,
    clock: ClockDep,
) -> PageAuth:
    try:
        principal = await get_principal(request, clock)
    except ApiError as exc:
        if exc.status != 401:
            raise
        return PageAuth(None, exc)
    return PageAuth(principal, None)


PageAuthDep = Annotated[PageAuth, Depends(page_auth)]


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _require(request: Request, auth: PageAuth) -> Principal:
    """The principal, or a redirect to the sign-in page (browsers) / the API's 401."""
    if auth.principal is not None:
        return auth.principal
    error = auth.error or ApiError(401, "unauthorized", "authentication required")
    if _wants_html(request):
        reason = error.code if error.code != "unauthorized" else ""
        target = f"{LOGIN_PATH}?siguiente={quote(request.url.path)}"
        if reason:
            target += f"&motivo={quote(reason)}"
        raise _Redirect(target)
    raise error


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


def _templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.page_templates
    return templates


def _has_reports(request: Request) -> bool:
    """Whether the reports API is mounted (its routes may sit in lazily included routers, so
    ask the router by name rather than walking ``app.router.routes``)."""
    try:
        request.app.url_path_for("indicators")
    except NoMatchFound:
        return False
    return True


async def _render(
    request: Request,
    template: str,
    principal: Principal | None,
    db: DbDep,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    user = await db.get(User, principal.user_id) if principal and principal.user_id else None
    role = principal.role.value if principal and principal.role else None
    nav = []
    if principal is not None:
        if principal.has(Scope.AGENT) and role == Role.AGENT.value:
            nav.append(("/agente", "Agente"))
        if principal.has(Scope.AGENTS_READ):
            nav.append(("/supervisor", "Supervisor"))
            nav.append(("/reportes", "Reportes"))
    response = _templates(request).TemplateResponse(
        request,
        template,
        {
            "user": user,
            "role": role,
            "nav": nav,
            "path": request.url.path,
            "v": request.app.state.static_version,
            **context,
        },
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Security-Policy"] = page_csp(request.app.state.settings.webrtc.ws_url)
    return response


async def _forbidden(request: Request, principal: Principal, db: DbDep, what: str) -> HTMLResponse:
    return await _render(request, "forbidden.html", principal, db, status_code=403, what=what)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, auth: PageAuthDep) -> Response:
    principal = _require(request, auth)
    target = "/agente" if principal.role is Role.AGENT else "/supervisor"
    return RedirectResponse(target, status_code=303)


@router.get(LOGIN_PATH, response_class=HTMLResponse)
async def login_page(request: Request, db: DbDep) -> HTMLResponse:
    return await _render(request, "login.html", None, db)


@router.get("/agente", response_class=HTMLResponse)
async def agent_page(request: Request, auth: PageAuthDep, db: DbDep) -> HTMLResponse:
    principal = _require(request, auth)
    if principal.role is not Role.AGENT:
        return await _forbidden(request, principal, db, "la pantalla del agente")
    return await _render(request, "agent.html", principal, db)


@router.get("/supervisor", response_class=HTMLResponse)
async def supervisor_page(request: Request, auth: PageAuthDep, db: DbDep) -> HTMLResponse:
    principal = _require(request, auth)
    if not principal.has(Scope.AGENTS_READ) or principal.kind != "session":
        return await _forbidden(request, principal, db, "el tablero del supervisor")
    return await _render(request, "supervisor.html", principal, db)


@router.get("/reportes", response_class=HTMLResponse)
async def reports_page(
    request: Request, auth: PageAuthDep, db: DbDep, clock: ClockDep, settings: SettingsDep
) -> HTMLResponse:
    principal = _require(request, auth)
    if not principal.has(Scope.AGENTS_READ) or principal.kind != "session":
        return await _forbidden(request, principal, db, "los reportes")
    tz = resolve_tz(settings.timezone)
    today = clock.now().astimezone(tz).date()
    return await _render(
        request,
        "reports.html",
        principal,
        db,
        reports_available=_has_reports(request),
        default_month=await latest_month_with_data(db, principal, tz, today),
    )


async def latest_month_with_data(db: DbDep, principal: Principal, tz: ZoneInfo, today: date) -> str:
    """The month the reports page opens on, ``YYYY-MM``: the latest one with a call in the
    campaigns the viewer may see (right after the demo: this month), else the month that
    just ended."""
    q = sa.select(sa.func.max(CallAttempt.created_at))
    if not principal.is_admin and principal.user_id is not None:
        mine = sa.select(UserCampaign.campaign_id).where(UserCampaign.user_id == principal.user_id)
        q = q.where(CallAttempt.campaign_id.in_(mine))
    latest = await db.scalar(q)
    if latest is None:
        return previous_month(today)
    day = min(latest.astimezone(tz).date(), today)
    return f"{day.year:04d}-{day.month:02d}"


def include(app: FastAPI) -> None:
    """Mount the pages and their static files on ``app`` (the dashboard API is one of
    :func:`api.app._routers`)."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.autoescape = True
    app.state.page_templates = templates
    app.state.static_version = static_version()

    async def redirect_handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Redirect)
        return RedirectResponse(exc.location, status_code=303)

    app.add_exception_handler(_Redirect, redirect_handler)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
