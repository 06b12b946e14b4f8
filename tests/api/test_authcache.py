"""The short-lived principal cache (api/authcache.py): what it saves, and that it never keeps a
signed-out session, a revoked key or a disabled user working longer than it should."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from api import authcache
from api.auth import SESSION_COOKIE
from api.authcache import AUTH_CACHE_S, EPOCH_CHECK_S, REFRESH_AHEAD, AuthCache, epoch_key
from dialer.db.models import ApiKey, Role, User, UserCampaign
from dialer.redis_keys import Keys
from tests.api.helpers import MONDAY_10AM, ApiClient, key_client, make_campaign, make_key


class Ticker:
    """A fake monotonic clock for the cache's TTL."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _fake_ttl(app: FastAPI) -> Ticker:
    ticker = Ticker()
    app.state.auth_cache = AuthCache(monotonic=ticker)
    return ticker


async def test_principal_is_cached_per_user(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    _fake_ttl(app)
    cid = await make_campaign(app.state.sessionmaker)
    sup = await clients("sup1", Role.SUPERVISOR, campaigns=(cid,))
    assert (await sup.get(f"/api/v1/campaigns/{cid}")).status_code == 200
    cache: AuthCache = app.state.auth_cache
    cached = cache.users.get(sup.user_id, "0")
    assert cached is not None and cached.campaigns == frozenset({cid})
    assert cached.role is Role.SUPERVISOR


async def test_logout_ends_the_session_at_once(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    _fake_ttl(app)  # the clock never moves: only invalidation can end it
    sup = await clients("sup2", Role.SUPERVISOR)
    assert (await sup.get("/api/v1/auth/me")).status_code == 200
    cookie = sup.cookies[SESSION_COOKIE]
    assert (await sup.post("/api/v1/auth/logout")).status_code == 204
    # Replay the old cookie (the browser dropped it): the server-side session is gone.
    sup.cookies.clear()
    r = await sup.get("/api/v1/auth/me", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "no_session"


async def test_changes_through_the_api_apply_at_once(
    app: FastAPI, admin: ApiClient, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    _fake_ttl(app)
    cid = await make_campaign(app.state.sessionmaker)
    sup = await clients("sup3", Role.SUPERVISOR)
    assert (await sup.get(f"/api/v1/campaigns/{cid}")).status_code == 404  # scope cached
    r = await admin.put(f"/api/v1/users/{sup.user_id}/campaigns", json={"campaign_ids": [cid]})
    assert r.status_code == 200, r.text
    assert (await sup.get(f"/api/v1/campaigns/{cid}")).status_code == 200
    r = await admin.put(f"/api/v1/users/{sup.user_id}/campaigns", json={"campaign_ids": []})
    assert (await sup.get(f"/api/v1/campaigns/{cid}")).status_code == 404

    r = await admin.post("/api/v1/api-keys", json={"name": "dms", "scopes": ["leads:read"]})
    created = r.json()
    async with key_client(app, created["key"]) as c:
        assert (await c.get("/api/v1/leads")).status_code == 200  # cached now
        assert (await admin.delete(f"/api/v1/api-keys/{created['id']}")).status_code == 204
        assert (await c.get("/api/v1/leads")).status_code == 401

    agent = await clients("ag3", Role.AGENT)
    assert (await agent.get("/api/v1/agent/me")).status_code == 200
    assert (await admin.delete(f"/api/v1/users/{agent.user_id}")).status_code == 204
    assert (await agent.get("/api/v1/agent/me")).status_code == 401


async def test_changes_behind_the_api_apply_within_the_ttl(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    """Rows changed by hand (not through this API): cached for at most AUTH_CACHE_S."""
    ticker = _fake_ttl(app)
    sm = app.state.sessionmaker
    key = await make_key(sm, "leads:read")
    agent = await clients("ag4", Role.AGENT)
    async with key_client(app, key) as c:
        assert (await c.get("/api/v1/leads")).status_code == 200
        assert (await agent.get("/api/v1/agent/me")).status_code == 200
        async with sm.begin() as s:
            await s.execute(sa.update(ApiKey).values(revoked_at=MONDAY_10AM))
            await s.execute(sa.update(User).where(User.id == agent.user_id).values(active=False))
        assert (await c.get("/api/v1/leads")).status_code == 200  # still cached
        assert (await agent.get("/api/v1/agent/me")).status_code == 200
        ticker.t += AUTH_CACHE_S
        assert (await c.get("/api/v1/leads")).status_code == 401
        r = await agent.get("/api/v1/agent/me")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "account_disabled"


async def test_epoch_bump_from_another_process_drops_entries(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
) -> None:
    """Another API replica changing a user bumps the shared epoch: this one reloads within
    EPOCH_CHECK_S (its own changes apply at once, see above)."""
    ticker = _fake_ttl(app)
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    sup = await clients("sup5", Role.SUPERVISOR)
    assert (await sup.get(f"/api/v1/campaigns/{cid}")).status_code == 404
    async with sm.begin() as s:
        s.add(UserCampaign(user_id=sup.user_id, campaign_id=cid))
    assert (await sup.get(f"/api/v1/campaigns/{cid}")).status_code == 404  # cached scope
    await redis.incr(epoch_key(keys))  # what the other replica's change does
    ticker.t += EPOCH_CHECK_S
    assert (await sup.get(f"/api/v1/campaigns/{cid}")).status_code == 200


async def test_users_in_use_are_reloaded_ahead_of_the_ttl(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]], engine: AsyncEngine
) -> None:
    """Past REFRESH_AHEAD of the TTL a request is answered from the (still valid) entry while
    the user is reloaded in the background, batched with the other users ageing: agents
    polling the API never wait for a reload, and a change made by hand still applies within
    the TTL."""
    ticker = _fake_ttl(app)
    sm = app.state.sessionmaker
    cache: AuthCache = app.state.auth_cache
    gate = asyncio.Event()

    async def gated(_: float) -> None:
        await gate.wait()

    cache.sleep = gated  # the batch waits for the test instead of REFRESH_BATCH_S
    ana = await clients("ag6", Role.AGENT)
    beto = await clients("ag7", Role.AGENT)
    for agent in (ana, beto):
        assert (await agent.get("/api/v1/agent/me")).status_code == 200
    async with sm.begin() as s:
        await s.execute(sa.update(User).values(full_name="Nuevo"))
    ticker.t += AUTH_CACHE_S * REFRESH_AHEAD - 0.01
    r = await ana.get("/api/v1/agent/me")
    assert r.json()["user"]["full_name"] != "Nuevo"  # not ageing yet: no reload
    assert cache._batch is None
    ticker.t += 0.02
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for agent in (ana, beto):
            r = await agent.get("/api/v1/agent/me")
            assert r.status_code == 200
            assert r.json()["user"]["full_name"] != "Nuevo"  # answered from the entry
        batch = cache._batch
        assert batch is not None
        gate.set()
        await batch  # the background reload of both
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len([q for q in statements if "FROM users" in q]) == 1  # one query for both
    for agent in (ana, beto):
        cached = cache.users.get(agent.user_id, "0")
        assert cached is not None and cached.full_name == "Nuevo"
    ticker.t += AUTH_CACHE_S * REFRESH_AHEAD  # the reloaded entries are fresh again
    assert (await ana.get("/api/v1/agent/me")).json()["user"]["full_name"] == "Nuevo"
    assert cache._batch is None

    async with sm.begin() as s:
        await s.execute(sa.update(User).where(User.id == ana.user_id).values(active=False))
    gate.clear()  # hold the next batch until it is seen (else it may finish before the reply)
    ticker.t += 0.02  # ageing again
    assert (await ana.get("/api/v1/agent/me")).status_code == 200  # starts the reload
    batch = cache._batch
    assert batch is not None
    gate.set()
    await batch
    assert cache.users.get(ana.user_id, "0") is None  # disabled: dropped at once
    r = await ana.get("/api/v1/agent/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "account_disabled"


async def test_epoch_is_read_once_for_concurrent_requests(
    redis: aioredis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests arriving while the epoch is being re-read do not each send a GET: the first
    ones wait for that read, later ones use the last value (at most EPOCH_CHECK_S old)."""
    ticker = Ticker()
    cache = AuthCache(monotonic=ticker)
    reads: list[int] = []
    gate = asyncio.Event()

    async def counted(r: aioredis.Redis, k: Keys) -> str:
        reads.append(1)
        await gate.wait()
        return str(len(reads))

    monkeypatch.setattr(authcache, "read_epoch", counted)
    first = [asyncio.ensure_future(cache.epoch(redis, keys)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.clear()
    gate.set()
    assert await asyncio.gather(*first) == ["1"] * 5
    assert len(reads) == 1
    ticker.t += EPOCH_CHECK_S
    gate.clear()
    again = asyncio.ensure_future(cache.epoch(redis, keys))
    await asyncio.sleep(0)
    assert cache._epoch_read is not None  # re-reading now
    assert await cache.epoch(redis, keys) == "1"  # meanwhile: the last value, no second GET
    gate.set()
    assert await again == "2"
    assert len(reads) == 2
