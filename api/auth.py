"""Authentication and authorisation primitives (no FastAPI here: see api/deps.py).

- **Passwords**: argon2id (argon2-cffi), re-hashed on login when the parameters change.
- **Web sessions**: a random session id in an HttpOnly, SameSite=Lax cookie, signed with
  ``settings.api.session_secret``. The session itself lives in Redis (``Keys.web_session``,
  keyed by the SHA-256 of the id) with an idle timeout and an absolute lifetime, both checked
  against the injected clock. Each session has its own CSRF token, which cookie-authenticated
  unsafe requests must echo in ``X-CSRF-Token``.
- **API keys**: ``mk_<prefix>_<secret>``; the prefix is stored in clear (to find the row), the
  secret only as SHA-256 (it is 256 random bits, so a fast hash is enough and keeps each
  request cheap). Scopes are stored on the key.
- **Login rate limit**: failed logins counted per username and per client IP in Redis
  (``Keys.login_attempts``); over the limit -> 429 with ``Retry-After``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dialer.db.models import Role
from dialer.redis_keys import Keys

SESSION_COOKIE = "marcador_session"
CSRF_COOKIE = "marcador_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_IDLE = timedelta(hours=8)
SESSION_ABSOLUTE = timedelta(hours=12)
#: Sliding refresh of ``last_seen`` at most this often (one Redis write per interval).
SESSION_TOUCH = timedelta(minutes=1)

LOGIN_WINDOW_S = 15 * 60
LOGIN_MAX_PER_USER = 5
LOGIN_MAX_PER_IP = 20

API_KEY_PREFIX = "mk"
MIN_PASSWORD_LENGTH = 10


class Scope(StrEnum):
    ADMIN = "admin"  # everything
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    LEADS_READ = "leads:read"
    LEADS_WRITE = "leads:write"
    CALLS_READ = "calls:read"
    APPOINTMENTS_READ = "appointments:read"
    APPOINTMENTS_WRITE = "appointments:write"
    PQRS_READ = "pqrs:read"
    PQRS_WRITE = "pqrs:write"
    DNC_READ = "dnc:read"
    DNC_WRITE = "dnc:write"
    AGENTS_READ = "agents:read"
    AGENTS_WRITE = "agents:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    EVENTS_READ = "events:read"
    METRICS_READ = "metrics:read"
    AUDIT_READ = "audit:read"
    REPORTS_READ = "reports:read"
    RECORDINGS_READ = "recordings:read"  # play/download call recordings (never agents)
    AGENT = "agent"  # the agent-screen actions (users with the agent role only)


_SUPERVISOR = frozenset(
    {
        Scope.CAMPAIGNS_READ,
        Scope.CAMPAIGNS_WRITE,
        Scope.LEADS_READ,
        Scope.LEADS_WRITE,
        Scope.CALLS_READ,
        Scope.APPOINTMENTS_READ,
        Scope.APPOINTMENTS_WRITE,
        Scope.PQRS_READ,
        Scope.PQRS_WRITE,
        Scope.DNC_READ,
        Scope.DNC_WRITE,
        Scope.AGENTS_READ,
        Scope.AGENTS_WRITE,
        Scope.EVENTS_READ,
        Scope.REPORTS_READ,
        Scope.RECORDINGS_READ,
    }
)

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset({Scope.ADMIN}),
    Role.SUPERVISOR: frozenset(s.value for s in _SUPERVISOR),
    Role.AGENT: frozenset(
        {Scope.AGENT, Scope.CAMPAIGNS_READ, Scope.LEADS_READ, Scope.CALLS_READ, Scope.EVENTS_READ}
    ),
}

#: Scopes an API key may carry (the agent actions need a person with an extension).
API_KEY_SCOPES = frozenset(s.value for s in Scope if s is not Scope.AGENT)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a signed-in user (cookie session) or an API key."""

    kind: Literal["session", "api_key"]
    actor: str  # "user:3" / "apikey:ab12cd34" (audit log)
    scopes: frozenset[str]
    user_id: int | None = None
    username: str | None = None
    role: Role | None = None
    session_hash: str | None = None
    csrf_token: str | None = None
    api_key_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def has(self, scope: str) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    @property
    def is_agent(self) -> bool:
        return self.role is Role.AGENT

    @property
    def is_supervisor(self) -> bool:
        return self.role is Role.SUPERVISOR


# --------------------------------------------------------------------------- passwords


def password_hasher() -> PasswordHasher:
    return PasswordHasher()


#: One dummy hash per parameter set, so unknown users cost as much as known ones.
_DUMMY_HASH: dict[tuple[int, int, int], str] = {}


def hash_password(hasher: PasswordHasher, password: str) -> str:
    return hasher.hash(password)


def verify_password(hasher: PasswordHasher, stored: str | None, password: str) -> bool:
    """Constant-ish time: unknown users are checked against a dummy hash."""
    if stored is None:
        params = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
        dummy = _DUMMY_HASH.get(params)
        if dummy is None:
            dummy = _DUMMY_HASH[params] = hasher.hash(secrets.token_hex(16))
        stored = dummy
        password = password + "\x00never"
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def check_password_strength(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 256:
        return "the password must have at most 256 characters"
    return None


# --------------------------------------------------------------------------- API keys


@dataclass(frozen=True, slots=True)
class NewApiKey:
    prefix: str
    key_hash: str
    plaintext: str  # shown once


def _sha256(text: str) -> str:
    return "sha256$" + hashlib.sha256(text.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return NewApiKey(prefix, _sha256(secret), f"{API_KEY_PREFIX}_{prefix}_{secret}")


def parse_api_key(raw: str) -> tuple[str, str] | None:
    """``mk_<prefix>_<secret>`` -> (prefix, secret); None when malformed."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    if len(parts[1]) > 16 or len(parts[2]) > 200:
        return None
    return parts[1], parts[2]


def api_key_matches(stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, _sha256(secret))


def normalize_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - API_KEY_SCOPES)
    if unknown:
        raise ValueError(
            f"unknown scope(s): {', '.join(unknown)}; allowed: {', '.join(sorted(API_KEY_SCOPES))}"
        )
    return sorted(set(scopes))


# --------------------------------------------------------------------------- sessions


def _sign(secret: str, value: str) -> str:
    mac = hmac.new(secret.encode(), value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def sign_session_cookie(secret: str, session_id: str) -> str:
    return f"{session_id}.{_sign(secret, session_id)}"


def unsign_session_cookie(secret: str, cookie: str) -> str | None:
    session_id, _, sig = cookie.rpartition(".")
    if not session_id or not sig or len(cookie) > 200:
        return None
    if not hmac.compare_digest(sig, _sign(secret, session_id)):
        return None
    return session_id


@dataclass(frozen=True, slots=True)
class SessionData:
    user_id: int
    csrf: str
    created_at: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    session_id: str
    session_hash: str
    csrf: str


class SessionStore:
    """Server-side web sessions in Redis."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.r = redis
        self.keys = keys

    async def create(self, user_id: int, now: datetime) -> NewSession:
        session_id = secrets.token_urlsafe(32)
        shash = session_hash(session_id)
        csrf = secrets.token_urlsafe(32)
        key = self.keys.web_session(shash)
        await self.r.hset(  # type: ignore[misc]
            key,
            mapping={
                "user_id": str(user_id),
                "csrf": csrf,
                "created_at": now.isoformat(),
                "last_seen": now.isoformat(),
            },
        )
        await self.r.expire(key, int(SESSION_ABSOLUTE.total_seconds()) + 60)
        await self.r.sadd(self.keys.user_sessions(user_id), shash)  # type: ignore[misc]
        await self.r.expire(
            self.keys.user_sessions(user_id), int(SESSION_ABSOLUTE.total_seconds()) + 60
        )
        return NewSession(session_id, shash, csrf)

    async def load(self, shash: str, now: datetime) -> SessionData | Literal["expired"] | None:
        """The live session, ``"expired"`` (and deleted) when past a timeout, None if unknown."""
        raw: dict[str, str] = await self.r.hgetall(self.keys.web_session(shash))  # type: ignore[misc]
        return await self.check(shash, raw, now)

    async def check(
        self, shash: str, raw: dict[str, str], now: datetime
    ) -> SessionData | Literal["expired"] | None:
        """:meth:`load` for a hash already read (e.g. in a pipeline with other keys)."""
        if not raw or "user_id" not in raw:
            return None
        try:
            data = SessionData(
                user_id=int(raw["user_id"]),
                csrf=raw["csrf"],
                created_at=datetime.fromisoformat(raw["created_at"]),
                last_seen=datetime.fromisoformat(raw["last_seen"]),
            )
        except (KeyError, ValueError):
            await self.delete(shash)
            return None
        if now - data.last_seen > SESSION_IDLE or now - data.created_at > SESSION_ABSOLUTE:
            await self.delete(shash, data.user_id)
            return "expired"
        if now - data.last_seen > SESSION_TOUCH:
            await self.r.hset(  # type: ignore[misc]
                self.keys.web_session(shash), "last_seen", now.isoformat()
            )
        return data

    async def delete(self, shash: str, user_id: int | None = None) -> None:
        await self.r.delete(self.keys.web_session(shash))
        if user_id is not None:
            await self.r.srem(self.keys.user_sessions(user_id), shash)  # type: ignore[misc]

    async def delete_all(self, user_id: int) -> int:
        """Sign a user out everywhere (password change, deactivation, role change)."""
        hashes: set[str] = await self.r.smembers(self.keys.user_sessions(user_id))  # type: ignore[misc]
        for shash in hashes:
            await self.r.delete(self.keys.web_session(shash))
        await self.r.delete(self.keys.user_sessions(user_id))
        return len(hashes)


# --------------------------------------------------------------------------- rate limit


def _who(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:24]
    return f"{kind}:{digest}"


class LoginRateLimiter:
    """Counts failed logins per username and per IP over a fixed window."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        max_per_user: int = LOGIN_MAX_PER_USER,
        max_per_ip: int = LOGIN_MAX_PER_IP,
        window_s: int = LOGIN_WINDOW_S,
    ) -> None:
        self.r = redis
        self.keys = keys
        self.max_per_user = max_per_user
        self.max_per_ip = max_per_ip
        self.window_s = window_s

    def _keys(self, username: str, ip: str) -> tuple[str, str]:
        return (
            self.keys.login_attempts(_who("user", username)),
            self.keys.login_attempts(_who("ip", ip)),
        )

    async def retry_after(self, username: str, ip: str) -> int | None:
        """Seconds to wait when a limit is reached, else None."""
        user_key, ip_key = self._keys(username, ip)
        waits: list[int] = []
        for key, limit in ((user_key, self.max_per_user), (ip_key, self.max_per_ip)):
            count = await self.r.get(key)
            if count is not None and int(count) >= limit:
                ttl = int(await self.r.ttl(key))
                waits.append(ttl if ttl > 0 else self.window_s)
        return max(waits) if waits else None

    async def failed(self, username: str, ip: str) -> None:
        for key in self._keys(username, ip):
            count = int(await self.r.incr(key))
            if count == 1:
                await self.r.expire(key, self.window_s)

    async def succeeded(self, username: str, ip: str) -> None:
        await self.r.delete(self._keys(username, ip)[0])
