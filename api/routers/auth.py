"""Sign in and out (cookie sessions for the web pages) and "who am I"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import (
    CSRF_COOKIE,
    SESSION_ABSOLUTE,
    SESSION_COOKIE,
    LoginRateLimiter,
    SessionStore,
    hash_password,
    session_hash,
    sign_session_cookie,
    unsign_session_cookie,
    verify_password,
)
from api.deps import (
    ClockDep,
    Ctx,
    DbDep,
    HasherDep,
    KeysDep,
    PrincipalDep,
    RedisDep,
    SettingsDep,
    client_ip,
)
from api.errors import ApiError
from dialer.db.models import AuditLog, Role, User
from dialer.settings import Settings

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    id: int
    username: str
    full_name: str
    role: Role
    extension: str | None
    active: bool


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send it back in X-CSRF-Token on unsafe requests.")
    expires_at: datetime


class MeOut(BaseModel):
    kind: str
    actor: str
    scopes: list[str]
    user: UserOut | None = None
    csrf_token: str | None = None


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        full_name=user.full_name,
        role=user.role,
        extension=user.extension,
        active=user.active,
    )


def _secure(settings: Settings) -> bool:
    return settings.api.public_url.startswith("https://")


async def limiter_for(redis: RedisDep, keys: KeysDep) -> LoginRateLimiter:
    return LoginRateLimiter(redis, keys)


@router.post(
    "/login",
    summary="Sign in with username and password (sets the session cookie)",
    responses={401: {"description": "Wrong credentials"}, 429: {"description": "Rate limited"}},
)
async def login(
    body: LoginIn,
    request: Request,
    response: Response,
    db: DbDep,
    redis: RedisDep,
    keys: KeysDep,
    settings: SettingsDep,
    clock: ClockDep,
    limiter: Annotated[LoginRateLimiter, Depends(limiter_for)],
    hasher: HasherDep,
) -> LoginOut:
    ip = client_ip(request)
    username = body.username.strip()
    wait = await limiter.retry_after(username, ip)
    if wait is not None:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed sign-in attempts: try again in {wait} s",
            {"retry_after": wait},
            headers={"Retry-After": str(wait)},
        )
    user = await db.scalar(sa.select(User).where(User.username == username))
    ok = verify_password(hasher, user.password_hash if user else None, body.password)
    if user is None or not ok or not user.active:
        await limiter.failed(username, ip)
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    await limiter.succeeded(username, ip)
    now = clock.now()
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(hasher, body.password)
    store = SessionStore(redis, keys)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        old_id = unsign_session_cookie(settings.api.session_secret.get_secret_value(), old)
        if old_id is not None:
            await store.delete(session_hash(old_id))
    session = await store.create(user.id, now)
    if user.role is not Role.AGENT:
        db.add(AuditLog(at=now, actor=f"user:{user.id}", action="auth.login", ip=ip[:64]))
    await db.commit()
    secure = _secure(settings)
    max_age = int(SESSION_ABSOLUTE.total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        sign_session_cookie(settings.api.session_secret.get_secret_value(), session.session_id),
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE,
        session.csrf,
        max_age=max_age,
        httponly=False,
        samesite="lax",
        secure=secure,
        path="/",
    )
    return LoginOut(user=user_out(user), csrf_token=session.csrf, expires_at=now + SESSION_ABSOLUTE)


@router.post("/logout", summary="Sign out (ends the session)", status_code=204)
async def logout(ctx: Ctx, response: Response) -> Response:
    p = ctx.principal
    if p.session_hash is not None:
        await SessionStore(ctx.redis, ctx.keys).delete(p.session_hash, p.user_id)
    ctx.audit("auth.logout")
    await ctx.commit()
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", summary="The caller: user and role, or API key scopes")
async def me(principal: PrincipalDep, db: DbDep) -> MeOut:
    user = await db.get(User, principal.user_id) if principal.user_id is not None else None
    return MeOut(
        kind=principal.kind,
        actor=principal.actor,
        scopes=sorted(principal.scopes),
        user=user_out(user) if user is not None else None,
        csrf_token=principal.csrf_token,
    )
