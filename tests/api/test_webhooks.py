"""Webhook subscriptions, HMAC signatures, and retries with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json

import redis.asyncio as aioredis
import sqlalchemy as sa
from fastapi import FastAPI

from api.webhooks import NO_SUBSCRIPTIONS_S, WebhookWorker, backoff, verify_signature
from dialer.db.models import WebhookDelivery
from dialer.domain.clock import FakeClock
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from tests.api.helpers import ApiClient, Recorder

HOOKS = "/api/v1/webhooks"


async def test_subscription_crud_hides_secret(admin: ApiClient) -> None:
    r = await admin.post(HOOKS, json={"url": "https://dms.example/hooks", "events": ["call-ended"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert len(created["secret"]) >= 32
    sid = created["id"]
    got = (await admin.get(f"{HOOKS}/{sid}")).json()
    assert "secret" not in got
    assert "secret" not in (await admin.get(HOOKS)).json()[0]
    r = await admin.patch(f"{HOOKS}/{sid}", json={"rotate_secret": True})
    assert r.json()["secret"] != created["secret"]
    r = await admin.post(HOOKS, json={"url": "ftp://x", "events": ["call-ended"]})
    assert r.status_code == 422
    r = await admin.post(HOOKS, json={"url": "https://x.example", "events": ["nope"]})
    assert r.status_code == 422
    assert (await admin.delete(f"{HOOKS}/{sid}")).status_code == 204
    assert (await admin.get(f"{HOOKS}/{sid}")).status_code == 404
    audit = (await admin.get("/api/v1/audit")).json()
    assert created["secret"] not in json.dumps(audit)


async def test_delivery_signed_and_retried(
    app: FastAPI,
    admin: ApiClient,
    redis: aioredis.Redis,
    keys: Keys,
    clock: FakeClock,
    receiver: Recorder,
) -> None:
    r = await admin.post(
        HOOKS,
        json={
            "url": "https://dms.example/hooks",
            "events": ["call-ended", "lead-exhausted"],
            "secret": "a-shared-secret-of-enough-length",
        },
    )
    assert r.status_code == 201
    worker: WebhookWorker = app.state.webhook_worker
    await worker.ensure_group()
    streams = Streams(redis)
    await streams.add(
        keys.events_stream,
        "call_ended",
        {
            "attempt": "a1",
            "lead_id": 5,
            "campaign_id": 1,
            "outcome": "no_answer",
            "lead_status": "exhausted",
            "next_attempt_at": None,
        },
    )
    await streams.add(keys.events_stream, "agent_state", {"agent_id": 3, "state": "ready"})
    assert await worker.ingest_once() == 2
    assert await worker.ingest_once() == 0  # acknowledged: never ingested twice

    receiver.codes = [500, 200]
    assert await worker.deliver_due() == 2
    assert len(receiver.requests) == 2
    first = receiver.requests[0]
    body = first.content
    expected = (
        "sha256=" + hmac.new(b"a-shared-secret-of-enough-length", body, hashlib.sha256).hexdigest()
    )
    assert first.headers["X-Marcador-Signature"] == expected
    assert verify_signature("a-shared-secret-of-enough-length", body, expected)
    envelope = json.loads(body)
    assert envelope["type"] == "call-ended"
    assert envelope["data"]["outcome"] == "no_answer"
    assert json.loads(receiver.requests[1].content)["type"] == "lead-exhausted"

    async with app.state.sessionmaker() as s:
        rows = {d.event_type: d for d in await s.scalars(sa.select(WebhookDelivery))}
    failed = rows["call-ended"]
    assert failed.status == "pending" and failed.attempts == 1
    assert failed.last_status_code == 500
    assert failed.next_attempt_at == clock.now() + backoff(1)
    assert rows["lead-exhausted"].status == "done"

    assert await worker.deliver_due() == 0  # not due yet
    clock.advance(backoff(1).total_seconds())
    assert await worker.deliver_due() == 1
    assert receiver.requests[2].content == body  # the same signed body on retry
    async with app.state.sessionmaker() as s:
        row = await s.get_one(WebhookDelivery, failed.id)
    assert row.status == "done" and row.attempts == 2
    listed = (await admin.get(f"{HOOKS}/{r.json()['id']}/deliveries")).json()
    assert {d["status"] for d in listed} == {"done"}


async def test_delivery_gives_up_after_max_attempts(
    app: FastAPI,
    admin: ApiClient,
    redis: aioredis.Redis,
    keys: Keys,
    clock: FakeClock,
    receiver: Recorder,
) -> None:
    await admin.post(HOOKS, json={"url": "https://x.example/h", "events": ["appointment-booked"]})
    worker: WebhookWorker = app.state.webhook_worker
    await worker.ensure_group()
    await Streams(redis).add(keys.events_stream, "appointment_booked", {"appointment_id": 1})
    assert await worker.ingest_once() == 1
    receiver.codes = [503] * 20
    for attempt in range(1, 9):
        assert await worker.deliver_due() == 1
        clock.advance(backoff(attempt).total_seconds())
    assert await worker.deliver_due() == 0
    async with app.state.sessionmaker() as s:
        row = await s.scalar(sa.select(WebhookDelivery))
    assert row is not None and row.status == "failed" and row.attempts == 8


def test_backoff_is_exponential_and_capped() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3)] == [10, 20, 40]
    assert backoff(30).total_seconds() == 3600


async def test_no_subscription_skips_the_database_until_one_is_made(
    app: FastAPI, admin: ApiClient, redis: aioredis.Redis, keys: Keys
) -> None:
    """With no active subscription the worker acknowledges events without a database look for
    NO_SUBSCRIPTIONS_S; a subscription made through the API applies to the next event."""
    worker: WebhookWorker = app.state.webhook_worker
    ticks = [1000.0]
    worker.monotonic = lambda: ticks[0]
    await worker.ensure_group()
    streams = Streams(redis)
    ended = {"attempt": "a1", "lead_id": 5, "campaign_id": 1, "outcome": "no_answer"}
    await streams.add(keys.events_stream, "call_ended", ended)
    assert await worker.ingest_once() == 0  # looked: none active

    async def fail() -> None:
        raise AssertionError("no database session expected")

    sm = worker.sm
    worker.sm = fail  # type: ignore[assignment]
    await streams.add(keys.events_stream, "call_ended", ended)
    assert await worker.ingest_once() == 0  # known: none active, no query
    worker.sm = sm
    ticks[0] += NO_SUBSCRIPTIONS_S
    await streams.add(keys.events_stream, "call_ended", ended)
    assert await worker.ingest_once() == 0  # looked again

    r = await admin.post(HOOKS, json={"url": "https://dms.example/hooks", "events": ["call-ended"]})
    assert r.status_code == 201
    await streams.add(keys.events_stream, "call_ended", {**ended, "attempt": "a2"})
    assert await worker.ingest_once() == 1  # at once, though the clock did not move
