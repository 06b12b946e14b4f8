"""FastAPI dependencies (Annotated, full-stack-fastapi-template style).

``app.state`` holds ``settings``, ``sessionmaker``, ``redis`` and ``keys`` (built by the
lifespan in api/app.py). Tests override :func:`get_clock` with a ``FakeClock``.

Transactions: one ``AsyncSession`` per request (:data:`DbDep`); handlers that change data call
``await ctx.commit()`` once at the end, so a failing request writes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import redis.asyncio as aioredis
import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import (
    CSRF_HEADER,
    ROLE_SCOPES,
    SESSION_COOKIE,
    Principal,
    SessionStore,
    api_key_matches,
    parse_api_key,
    session_hash,
    unsign_session_cookie,
)
from api.authcache import (
    AuthCache,
    CachedUser,
    api_key_digest,
    invalidate,
)
from api.errors import ApiError
from dialer.db.models import ApiKey, AuditLog, Role, User, UserCampaign
from dialer.domain.clock import Clock, SystemClock
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from dialer.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_KEY_TOUCH = timedelta(minutes=1)


# --------------------------------------------------------------------------- app state


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sm: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sm


async def get_redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis
    return client


async def get_keys(request: Request) -> Keys:
    keys: Keys = request.app.state.keys
    return keys


async def get_password_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.password_hasher
    return hasher


_SYSTEM_CLOCK = SystemClock()


async def get_clock() -> Clock:
    """The time source; override in tests: ``app.dependency_overrides[get_clock]``."""
    return _SYSTEM_CLOCK


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    sm: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sm() as session:
        yield session


# Dependencies are ``async def`` even when they only read ``app.state``: FastAPI runs plain
# ``def`` dependencies in a worker thread, one thread hop each per request.

SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
KeysDep = Annotated[Keys, Depends(get_keys)]
ClockDep = Annotated[Clock, Depends(get_clock)]
DbDep = Annotated[AsyncSession, Depends(get_db)]
HasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --------------------------------------------------------------------------- authentication


def _unauthorized(message: str, code: str = "unauthorized") -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


def _api_key_from(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("unsupported Authorization header: use 'Bearer mk_...'")
        return value.strip()
    return request.headers.get("x-api-key")


async def get_auth_cache(request: Request) -> AuthCache:
    cache: AuthCache | None = getattr(request.app.state, "auth_cache", None)
    if cache is None:
        cache = request.app.state.auth_cache = AuthCache()
    return cache


AuthCacheDep = Annotated[AuthCache, Depends(get_auth_cache)]


async def _api_key_principal(
    raw: str,
    sm: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
    cache: AuthCache,
    now: datetime,
) -> Principal:
    parsed = parse_api_key(raw)
    if parsed is None:
        raise _unauthorized("malformed API key", "invalid_api_key")
    digest = api_key_digest(raw)
    epoch = await cache.epoch(redis, keys)
    cached = cache.api_keys.get(digest, epoch)
    if cached is not None:
        return cached
    prefix, secret = parsed
    async with sm() as db:  # own short session: no pooled connection held for the request
        key = await db.scalar(sa.select(ApiKey).where(ApiKey.prefix == prefix))
        if key is None or key.revoked_at is not None or not api_key_matches(key.key_hash, secret):
            raise _unauthorized("invalid or revoked API key", "invalid_api_key")
        key_id, key_prefix, scopes_raw, last_used = key.id, key.prefix, key.scopes, key.last_used_at
    if last_used is None or now - last_used > API_KEY_TOUCH:
        async with sm.begin() as s:  # own short transaction: reads stay read-only
            await s.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    scopes = scopes_raw.get("scopes", []) if isinstance(scopes_raw, dict) else []
    principal = Principal(
        kind="api_key",
        actor=f"apikey:{key_prefix}",
        scopes=frozenset(str(s) for s in scopes),
        api_key_id=key_id,
    )
    cache.api_keys.put(digest, principal, epoch)
    return principal


async def _load_users(
    sm: async_sessionmaker[AsyncSession], user_ids: list[int]
) -> dict[int, CachedUser]:
    """The active users among ``user_ids`` with their campaign scopes (two queries)."""
    async with sm() as db:
        users = list(
            await db.scalars(sa.select(User).where(User.id.in_(user_ids), User.active.is_(True)))
        )
        scoped = [u.id for u in users if u.role is not Role.ADMIN]
        campaigns: dict[int, set[int]] = {uid: set() for uid in scoped}
        if scoped:
            rows = await db.execute(
                sa.select(UserCampaign.user_id, UserCampaign.campaign_id).where(
                    UserCampaign.user_id.in_(scoped)
                )
            )
            for uid, cid in rows:
                campaigns[uid].add(cid)
        return {
            u.id: CachedUser(
                u.id,
                u.username,
                u.full_name,
                u.extension,
                u.role,
                None if u.role is Role.ADMIN else frozenset(campaigns[u.id]),
            )
            for u in users
        }


async def _load_user(sm: async_sessionmaker[AsyncSession], user_id: int) -> CachedUser | None:
    """The active user and their campaign scope, or None (unknown or disabled)."""
    return (await _load_users(sm, [user_id])).get(user_id)


async def get_principal(request: Request, clock: ClockDep) -> Principal:
    """Authenticate the request (API key header, else the session cookie) and check CSRF.

    The session is read from Redis on every request; the user row and campaign scope come
    from :class:`api.authcache.AuthCache` (a few seconds, invalidated by the auth epoch).
    Resources come straight from ``app.state`` (each sub-dependency costs time per request).
    """
    state = request.app.state
    sm: async_sessionmaker[AsyncSession] = state.sessionmaker
    redis: aioredis.Redis = state.redis
    keys: Keys = state.keys
    settings: Settings = state.settings
    cache = await get_auth_cache(request)
    now = clock.now()
    raw_key = _api_key_from(request)
    if raw_key is not None:
        return await _api_key_principal(raw_key, sm, redis, keys, cache, now)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise _unauthorized("authentication required: sign in or send an API key")
    session_id = unsign_session_cookie(settings.api.session_secret.get_secret_value(), cookie)
    if session_id is None:
        raise _unauthorized("invalid session cookie", "invalid_session")
    shash = session_hash(session_id)
    store = SessionStore(redis, keys)
    raw: dict[str, str] = await redis.hgetall(keys.web_session(shash))  # type: ignore[misc]
    data = await store.check(shash, raw, now)
    if data == "expired":
        raise _unauthorized("the session has expired: sign in again", "session_expired")
    if data is None:
        raise _unauthorized("the session is not valid (signed out?): sign in again", "no_session")
    epoch = await cache.epoch(redis, keys)
    user = cache.users.get(data.user_id, epoch)
    if user is not None:
        cache.refresh_ahead(data.user_id, epoch, lambda ids: _load_users(sm, ids))
    else:
        user = await cache.load_user(data.user_id, epoch, lambda: _load_user(sm, data.user_id))
        if user is None:
            await store.delete(shash, data.user_id)
            raise _unauthorized("the account is disabled", "account_disabled")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, data.csrf):
            raise ApiError(
                403,
                "csrf_failed",
                f"missing or invalid {CSRF_HEADER} header for a cookie session",
            )
    request.state.campaign_scope = user.campaigns
    request.state.auth_user = user
    return Principal(
        kind="session",
        actor=f"user:{user.user_id}",
        scopes=ROLE_SCOPES[user.role],
        user_id=user.user_id,
        username=user.username,
        role=user.role,
        session_hash=shash,
        csrf_token=data.csrf,
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must hold ``scope`` (admins hold every scope)."""

    async def _check(principal: PrincipalDep) -> Principal:
        if not principal.has(scope):
            raise ApiError(
                403, "forbidden", f"this action needs the '{scope}' permission", {"scope": scope}
            )
        return principal

    _check.__name__ = f"require_{scope.replace(':', '_')}"
    return _check


def Scoped(scope: str) -> Any:  # noqa: N802 - reads like a type in signatures
    return Depends(require(scope))


# --------------------------------------------------------------------------- request context


@dataclass(slots=True)
class RequestContext:
    """Everything a handler needs, in one parameter."""

    request: Request
    db: AsyncSession
    principal: Principal
    clock: Clock
    redis: aioredis.Redis
    keys: Keys
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    _campaigns: frozenset[int] | None = None
    _campaigns_loaded: bool = False

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def ip(self) -> str:
        return client_ip(self.request)

    @property
    def streams(self) -> Streams:
        return Streams(self.redis)

    async def commit(self) -> None:
        await self.db.commit()

    async def auth_changed(self) -> None:
        """After committing a change to users, their campaigns or API keys: drop cached
        principals in every API process (see :mod:`api.authcache`)."""
        await invalidate(self.redis, self.keys, getattr(self.request.app.state, "auth_cache", None))

    async def campaign_scope(self) -> frozenset[int] | None:
        """Campaign ids this caller may see; None means every campaign.

        Admins and API keys see every campaign; supervisors and agents the campaigns they are
        assigned to (``user_campaigns``).
        """
        if self._campaigns_loaded:
            return self._campaigns
        p = self.principal
        known = getattr(self.request.state, "campaign_scope", False)
        if p.is_admin or p.kind == "api_key" or p.user_id is None:
            self._campaigns = None
        elif known is None or isinstance(known, frozenset):
            self._campaigns = known  # loaded with the principal (api.authcache)
        else:
            rows = await self.db.scalars(
                sa.select(UserCampaign.campaign_id).where(UserCampaign.user_id == p.user_id)
            )
            self._campaigns = frozenset(rows)
        self._campaigns_loaded = True
        return self._campaigns

    def cached_user(self) -> CachedUser | None:
        """The signed-in user's row as authentication cached it (None for API keys)."""
        user = getattr(self.request.state, "auth_user", None)
        if isinstance(user, CachedUser) and user.user_id == self.principal.user_id:
            return user
        return None

    async def can_see_campaign(self, campaign_id: int) -> bool:
        scope = await self.campaign_scope()
        return scope is None or campaign_id in scope

    def audit(
        self,
        action: str,
        target_type: str = "",
        target_id: object = "",
        **detail: Any,
    ) -> None:
        """Add an audit row to the request's transaction (admins, supervisors, API keys).

        Never pass secrets or personal data in ``detail``.
        """
        if self.principal.role is Role.AGENT:
            return
        self.db.add(
            AuditLog(
                at=self.now(),
                actor=self.principal.actor,
                action=action,
                target_type=target_type,
                target_id=str(target_id)[:64],
                detail=detail,
                ip=self.ip[:64],
            )
        )


async def get_context(
    request: Request, db: DbDep, principal: PrincipalDep, clock: ClockDep
) -> RequestContext:
    state = request.app.state
    return RequestContext(
        request, db, principal, clock, state.redis, state.keys, state.settings, state.sessionmaker
    )


Ctx = Annotated[RequestContext, Depends(get_context)]
