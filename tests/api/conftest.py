"""Fixtures for the API tests: the app (with the shared test DB/Redis), clients, users."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.deps import get_clock
from dialer.db.models import Role
from dialer.domain.clock import FakeClock
from dialer.redis_keys import Keys
from dialer.settings import Settings
from tests.api.helpers import (
    MONDAY_10AM,
    ApiClient,
    FakeResolver,
    Recorder,
    cheap_hasher,
    make_user,
    session_client,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_10AM)


@pytest.fixture
def receiver() -> Recorder:
    return Recorder()


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


@pytest.fixture
async def app(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
    clock: FakeClock,
    receiver: Recorder,
    resolver: FakeResolver,
) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings,
        sessionmaker=sessionmaker,
        redis=redis,
        keys=keys,
        webhook_transport=httpx.MockTransport(receiver.handle),
        webhook_resolver=resolver.resolve,
        start_workers=False,
        password_hasher=cheap_hasher(),
    )
    application.dependency_overrides[get_clock] = lambda: clock
    async with application.router.lifespan_context(application):
        application.state.webhook_worker.clock = clock
        yield application


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def clients(app: FastAPI) -> AsyncIterator[Callable[..., Awaitable[ApiClient]]]:
    """Factory: ``await clients("ana", Role.AGENT)`` -> a signed-in client with CSRF header."""
    async with AsyncExitStack() as stack:

        async def factory(
            username: str,
            role: Role,
            *,
            campaigns: tuple[int, ...] = (),
            extension: str | None = None,
        ) -> ApiClient:
            user_id = await make_user(
                app.state.sessionmaker, username, role, campaigns=campaigns, extension=extension
            )
            client = await stack.enter_async_context(session_client(app, username))
            client.user_id = user_id
            return client

        yield factory


@pytest.fixture
async def admin(clients: Callable[..., Awaitable[ApiClient]]) -> ApiClient:
    return await clients("admin1", Role.ADMIN)
