"""The error-code policy (pure), and its effect on the rows for every code in the table."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from dialer.db.models import (
    AuditLog,
    Consent,
    Phone,
    WhatsAppHold,
    WhatsAppMessage,
    WhatsAppStatus,
    WhatsAppStatusEvent,
)
from dialer.domain.outcomes import Channel
from dialer.whatsapp.policy import (
    MARKETING_LIMIT_DELAY,
    Action,
    ErrorInfo,
    Outcome,
    RetryConfig,
    backoff_delay,
    decide,
)

from .conftest import MONDAY_10AM, Harness, count, make_campaign, make_exhausted_lead, publish

NOW = MONDAY_10AM


@pytest.mark.parametrize(
    ("code", "action", "outcome"),
    [
        (131026, Action.MARK_NOT_ON_WHATSAPP, Outcome.FAILED),
        (131049, Action.RETRY_LATER, Outcome.SCHEDULED),
        (131056, Action.BACKOFF, Outcome.SCHEDULED),
        (130429, Action.BACKOFF, Outcome.SCHEDULED),
        (131050, Action.REVOKE_MARKETING_CONSENT, Outcome.FAILED),
        (132001, Action.PAUSE_CAMPAIGN, Outcome.HELD),
        (132015, Action.PAUSE_CAMPAIGN, Outcome.HELD),
        (132016, Action.PAUSE_CAMPAIGN, Outcome.HELD),
        (368, Action.HALT_ALL, Outcome.HELD),
        (131031, Action.HALT_ALL, Outcome.HELD),
        (100, Action.FAIL, Outcome.FAILED),
    ],
)
def test_table(code: int, action: Action, outcome: Outcome) -> None:
    d = decide(ErrorInfo("api", code, 400), attempt=1, now=NOW)
    assert (d.action, d.outcome, d.code) == (action, outcome, code)
    assert d.alert is (action in (Action.PAUSE_CAMPAIGN, Action.HALT_ALL))
    assert d.reason_es


def test_marketing_limit_retries_after_24_hours() -> None:
    d = decide(ErrorInfo("api", 131049, 400), attempt=1, now=NOW)
    assert d.retry_at == NOW + MARKETING_LIMIT_DELAY == NOW + timedelta(hours=24)


def test_backoff_is_exponential_capped_and_gives_up() -> None:
    cfg = RetryConfig(jitter_fraction=0.0)
    delays = [backoff_delay(n, cfg) for n in range(1, 10)]
    assert delays[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(delays) == cfg.max_delay
    assert backoff_delay(1, RetryConfig(), jitter=0.5) == timedelta(seconds=33)
    throughput = decide(ErrorInfo("api", 130429, 400), attempt=2, now=NOW, config=cfg)
    assert throughput.retry_at == NOW + timedelta(seconds=60) == throughput.throttle_until
    pair = decide(ErrorInfo("api", 131056, 400), attempt=2, now=NOW, config=cfg)
    assert pair.throttle_until is None
    last = decide(ErrorInfo("api", 131056, 400), attempt=cfg.max_attempts, now=NOW, config=cfg)
    assert last.outcome is Outcome.FAILED and last.action is Action.FAIL


@pytest.mark.parametrize(
    "error",
    [
        ErrorInfo("transport"),
        ErrorInfo("protocol", None, 502),
        ErrorInfo("api", 131000, 500),
        ErrorInfo("api", 999999, 503),
    ],
)
def test_network_errors_and_5xx_back_off(error: ErrorInfo) -> None:
    d = decide(error, attempt=1, now=NOW, config=RetryConfig(jitter_fraction=0.0))
    assert d.action is Action.BACKOFF and d.retry_at == NOW + timedelta(seconds=30)


# ----------------------------------------------------------------------- against the rows


async def _send_failing(h: Harness, code: int) -> tuple[int, int, int]:
    camp = await make_campaign(h.sm)
    lead, msg = await make_exhausted_lead(h.sm, camp)
    h.fake.fail("+573000000001", code)
    await publish(h, msg, lead)
    assert await h.worker.poll() == 1
    return camp, lead, msg


async def test_131026_marks_phone_not_on_whatsapp_and_stops_the_channel(h: Harness) -> None:
    _camp, _, msg = await _send_failing(h, 131026)
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.FAILED and row.error_code == 131026
    async with h.sm() as s:
        phone = (await s.scalars(sa.select(Phone))).one()
    assert phone.whatsapp_capable is False
    # Another campaign's fallback to the same number is not even attempted.
    camp2 = await make_campaign(h.sm, name="Recuperación")
    lead2, msg2 = await make_exhausted_lead(h.sm, camp2, 2, phone="+573000000001")
    h.fake.clear_failures()
    await publish(h, msg2, lead2)
    await h.worker.poll()
    assert (await h.message(msg2)).status is WhatsAppStatus.SKIPPED
    assert len(h.fake.messages) == 0
    assert (await h.events("whatsapp_failed"))[0]["code"] == 131026


async def test_131049_retries_after_24h(h: Harness) -> None:
    _, _, msg = await _send_failing(h, 131049)
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SCHEDULED and row.wamid is None
    assert row.next_attempt_at == NOW + timedelta(hours=24)
    h.fake.clear_failures()
    h.clock.advance(23 * 3600)
    assert await h.worker.sweep() == 0
    h.clock.advance(3600)
    assert await h.worker.sweep() == 1
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SENT and row.send_attempts == 2
    assert len(h.fake.messages) == 1


@pytest.mark.parametrize("code", [131056, 130429])
async def test_rate_limits_back_off(h: Harness, code: int) -> None:
    _, _, msg = await _send_failing(h, code)
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SCHEDULED
    assert row.next_attempt_at == NOW + timedelta(seconds=30)
    assert (h.worker._throttle_until is not None) is (code == 130429)
    async with h.sm() as s:
        attempts = list(
            await s.scalars(
                sa.select(WhatsAppStatusEvent.status).where(WhatsAppStatusEvent.message_id == msg)
            )
        )
    assert attempts.count("sending") == 1 and attempts.count("send_error") == 1


async def test_131050_revokes_whatsapp_marketing_consent(h: Harness) -> None:
    _, _, msg = await _send_failing(h, 131050)
    assert (await h.message(msg)).status is WhatsAppStatus.FAILED
    async with h.sm() as s:
        consent = (
            await s.scalars(sa.select(Consent).where(Consent.channel == Channel.WHATSAPP))
        ).one()
    assert consent.revoked_at == NOW and consent.revoked_reason == "meta_131050"


@pytest.mark.parametrize("code", [132001, 132015, 132016])
async def test_template_errors_pause_the_campaign_and_alert(h: Harness, code: int) -> None:
    camp, _, msg = await _send_failing(h, code)
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SCHEDULED and row.error_code == code
    async with h.sm() as s:
        hold = (await s.scalars(sa.select(WhatsAppHold))).one()
    assert (hold.scope, hold.campaign_id, hold.code) == ("campaign", camp, code)
    assert await count(h.sm, AuditLog, AuditLog.action == "whatsapp.hold.campaign") == 1
    [alert] = await h.events("whatsapp_alert")
    assert alert["campaign_id"] == camp and alert["code"] == code
    # Another lead of the paused campaign waits; another campaign still sends.
    lead2, msg2 = await make_exhausted_lead(h.sm, camp, 2)
    other = await make_campaign(h.sm, name="Otra")
    lead3, msg3 = await make_exhausted_lead(h.sm, other, 3)
    h.fake.clear_failures()
    await publish(h, msg2, lead2)
    await publish(h, msg3, lead3)
    await h.worker.poll()
    assert (await h.message(msg2)).status is WhatsAppStatus.SCHEDULED
    assert (await h.message(msg3)).status is WhatsAppStatus.SENT
    # A person fixes the template and resumes: the held messages go at the next sweep.
    assert await h.worker.store.release_holds("user:1", h.clock.now(), campaign_id=camp) == 1
    h.clock.advance(1)
    await h.worker.sweep()
    assert (await h.message(msg)).status is WhatsAppStatus.SENT
    assert (await h.message(msg2)).status is WhatsAppStatus.SENT


@pytest.mark.parametrize("code", [368, 131031])
async def test_blocked_account_stops_all_sending_and_alerts(h: Harness, code: int) -> None:
    _, _, msg = await _send_failing(h, code)
    async with h.sm() as s:
        hold = (await s.scalars(sa.select(WhatsAppHold))).one()
    assert hold.scope == "account" and hold.code == code
    assert len(await h.events("whatsapp_alert")) == 1
    other = await make_campaign(h.sm, name="Otra")
    lead2, msg2 = await make_exhausted_lead(h.sm, other, 2)
    h.fake.clear_failures()
    await publish(h, msg2, lead2)
    await h.worker.poll()
    assert (await h.message(msg2)).status is WhatsAppStatus.SCHEDULED
    assert h.fake.messages == []
    assert await h.worker.store.release_holds("user:1", h.clock.now(), account=True) == 1
    h.clock.advance(1)
    await h.worker.sweep()
    assert {(await h.message(m)).status for m in (msg, msg2)} == {WhatsAppStatus.SENT}


async def test_5xx_retried_with_backoff_and_each_attempt_recorded(h: Harness) -> None:
    camp = await make_campaign(h.sm)
    lead, msg = await make_exhausted_lead(h.sm, camp)
    h.fake.fail("+573000000001", 131000, times=2)  # HTTP 500 twice, then fine
    await publish(h, msg, lead)
    await h.worker.poll()
    for expected in (30, 60):
        row = await h.message(msg)
        assert row.status is WhatsAppStatus.SCHEDULED
        assert row.next_attempt_at == h.clock.now() + timedelta(seconds=expected)
        h.clock.advance(expected)
        await h.worker.sweep()
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SENT and row.send_attempts == 3
    async with h.sm() as s:
        history = list(
            await s.scalars(
                sa.select(WhatsAppStatusEvent.status)
                .where(WhatsAppStatusEvent.message_id == msg)
                .order_by(WhatsAppStatusEvent.id)
            )
        )
    assert history == ["sending", "send_error"] * 2 + ["sending", "accepted"]
    assert len(h.fake.messages) == 1


async def test_malformed_request_fails_without_retry(h: Harness) -> None:
    camp = await make_campaign(h.sm)
    lead, msg = await make_exhausted_lead(h.sm, camp)
    h.fake.fail("+573000000001", 100)
    await publish(h, msg, lead)
    await h.worker.poll()
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.FAILED and row.error_code == 100
    assert await count(h.sm, WhatsAppMessage, WhatsAppMessage.status == "failed") == 1
