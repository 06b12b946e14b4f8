"""Webhook subscriptions, HMAC signatures, and retries with backoff."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from fastapi import FastAPI

from api.netguard import RefusedTarget, check_url, networks, numeric_host, refused_reason
from api.webhooks import NO_SUBSCRIPTIONS_S, WebhookWorker, backoff, verify_signature
from dialer.db.models import WebhookDelivery, WebhookSubscription
from dialer.domain.clock import FakeClock
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from tests.api.helpers import ApiClient, FakeResolver, Recorder

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


# ---------------------------------------------------------------- server-side request forgery

REFUSED_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:6379/",
    "http://[::1]:5432/",
    "http://10.0.0.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://localhost/",
    "http://api.localhost/",
    "http://192.168.1.20/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://[fd00::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::]/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
]


async def test_internal_targets_refused_at_create_and_update(admin: ApiClient) -> None:
    for url in REFUSED_URLS:
        r = await admin.post(HOOKS, json={"url": url, "events": ["call-ended"]})
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["code"] == "webhook_target_refused", (url, r.text)
    r = await admin.post(
        HOOKS, json={"url": "https://user:pass@dms.example/h", "events": ["call-ended"]}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "webhook_url_credentials"
    r = await admin.post(HOOKS, json={"url": "https://dms.example/h", "events": ["call-ended"]})
    assert r.status_code == 201
    sid = r.json()["id"]
    for url in REFUSED_URLS[:4]:
        r = await admin.patch(f"{HOOKS}/{sid}", json={"url": url})
        assert r.status_code == 422, (url, r.text)
    assert (await admin.get(f"{HOOKS}/{sid}")).json()["url"] == "https://dms.example/h"


async def test_get_never_echoes_credentials_of_a_stored_url(app: FastAPI, admin: ApiClient) -> None:
    async with app.state.sessionmaker.begin() as s:
        s.add(
            WebhookSubscription(
                url="https://crm:s3cr3t-pw@dms.example/h",
                events={"events": ["call-ended"]},
                secret="x" * 32,
                active=True,
            )
        )
    listed = (await admin.get(HOOKS)).text
    assert "s3cr3t-pw" not in listed and "crm:" not in listed
    assert "***@dms.example" in listed


async def _one_delivery(
    app: FastAPI, admin: ApiClient, redis: aioredis.Redis, keys: Keys, url: str
) -> WebhookWorker:
    r = await admin.post(HOOKS, json={"url": url, "events": ["appointment-booked"]})
    assert r.status_code == 201, r.text
    worker: WebhookWorker = app.state.webhook_worker
    await worker.ensure_group()
    await Streams(redis).add(keys.events_stream, "appointment_booked", {"appointment_id": 1})
    assert await worker.ingest_once() == 1
    return worker


async def test_delivery_resolves_again_and_refuses_rebinding(
    app: FastAPI,
    admin: ApiClient,
    redis: aioredis.Redis,
    keys: Keys,
    receiver: Recorder,
    resolver: FakeResolver,
) -> None:
    """The name was public at creation; at delivery it resolves to loopback: nothing is sent."""
    worker = await _one_delivery(app, admin, redis, keys, "https://rebind.example/h")
    resolver.answers["rebind.example"] = ["93.184.216.34", "127.0.0.1"]
    assert await worker.deliver_due() == 1
    assert receiver.requests == []
    assert "rebind.example" in resolver.asked
    async with app.state.sessionmaker() as s:
        row = await s.scalar(sa.select(WebhookDelivery))
    assert row is not None and row.status == "failed"
    assert row.last_error == "webhook_target_refused"


async def test_delivery_connects_to_the_checked_address(
    app: FastAPI,
    admin: ApiClient,
    redis: aioredis.Redis,
    keys: Keys,
    receiver: Recorder,
    resolver: FakeResolver,
) -> None:
    resolver.answers["dms.example"] = ["203.0.113.99"]  # documentation range: refused
    worker = await _one_delivery(app, admin, redis, keys, "https://dms.example:8443/h")
    assert await worker.deliver_due() == 1
    assert receiver.requests == []
    resolver.answers["dms.example"] = ["93.184.216.34"]
    async with app.state.sessionmaker.begin() as s:
        row = await s.scalar(sa.select(WebhookDelivery))
        assert row is not None
        row.status, row.next_attempt_at = "pending", None
    assert await worker.deliver_due() == 1
    sent = receiver.requests[0]
    assert sent.url.host == "93.184.216.34" and sent.url.port == 8443
    assert sent.headers["host"] == "dms.example:8443"
    assert sent.extensions["sni_hostname"] == "dms.example"


async def test_redirects_are_not_followed(
    app: FastAPI,
    admin: ApiClient,
    redis: aioredis.Redis,
    keys: Keys,
    receiver: Recorder,
) -> None:
    worker = await _one_delivery(app, admin, redis, keys, "https://dms.example/h")
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    receiver.codes = [302]
    assert await worker.deliver_due() == 1
    assert len(receiver.requests) == 1  # the redirect target was never asked
    async with app.state.sessionmaker() as s:
        row = await s.scalar(sa.select(WebhookDelivery))
    assert row is not None and row.status == "pending" and row.last_status_code == 302


def test_allowed_networks_opt_in_and_numeric_forms() -> None:
    internal = networks(["10.20.0.0/16", "127.0.0.1/32"])
    check_url("http://10.20.3.4:8080/crm", internal)
    check_url("http://localhost/", internal)
    for url in ("http://10.21.0.1/", "http://169.254.169.254/"):
        with pytest.raises(RefusedTarget):
            check_url(url, internal)
    assert numeric_host("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert numeric_host("0x7f.1") == ipaddress.ip_address("127.0.0.1")
    assert numeric_host("dms.example") is None
    assert refused_reason(ipaddress.ip_address("2002:7f00:1::")) == "loopback"  # 6to4
    assert refused_reason(ipaddress.ip_address("64:ff9b::a00:1")) == "private"  # NAT64
    assert refused_reason(ipaddress.ip_address("93.184.216.34")) is None
