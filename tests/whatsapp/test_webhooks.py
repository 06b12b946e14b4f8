"""The webhook router: handshake, signatures, batched statuses, replies, opt-out."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from dialer.db.models import (
    Consent,
    ContactLog,
    Lead,
    LeadEvent,
    WhatsAppMessage,
    WhatsAppStatus,
    WhatsAppStatusEvent,
)
from dialer.domain.outcomes import Channel, LeadStatus
from dialer.whatsapp.store import is_opt_out
from dialer.whatsapp.webhooks import SIGNATURE_HEADER, sign

from .conftest import Harness, count, make_campaign, make_exhausted_lead, publish


async def _sent(h: Harness, n: int = 1) -> tuple[int, int, str]:
    camp = await make_campaign(h.sm)
    lead, msg = await make_exhausted_lead(h.sm, camp, n)
    await publish(h, msg, lead)
    await h.worker.poll()
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SENT and row.wamid
    return lead, msg, row.wamid


async def test_verify_handshake(h: Harness) -> None:
    token = h.settings.whatsapp.verify_token.get_secret_value()
    ok = await h.api_get(
        {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = await h.api_get(
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "x"}
    )
    assert bad.status_code == 403
    wrong_mode = await h.api_get(
        {"hub.mode": "unsubscribe", "hub.verify_token": token, "hub.challenge": "x"}
    )
    assert wrong_mode.status_code == 403


async def test_bad_or_missing_signature_is_403_and_changes_nothing(h: Harness) -> None:
    _, msg, wamid = await _sent(h)
    body = json.dumps(h.fake.status_payload([(wamid, "read")])).encode()
    for headers in (
        {},
        {SIGNATURE_HEADER: "sha256=" + "0" * 64},
        {SIGNATURE_HEADER: sign(body, "another-secret")},
        {SIGNATURE_HEADER: sign(body + b" ", h.fake.app_secret)},
    ):
        resp = await h.api_post(body, {"Content-Type": "application/json", **headers})
        assert resp.status_code == 403
    assert (await h.message(msg)).status is WhatsAppStatus.SENT
    assert await h.fake.deliver_statuses([(wamid, "read")]) == 200
    assert (await h.message(msg)).status is WhatsAppStatus.READ


async def test_batched_statuses_out_of_order_never_move_backwards(h: Harness) -> None:
    _, msg1, w1 = await _sent(h, 1)
    _, msg2, w2 = await _sent(h, 2)
    _, msg3, w3 = await _sent(h, 3)
    # One batch, every status of three messages, shuffled: read before sent and delivered.
    status = await h.fake.deliver_statuses(
        [
            (w1, "read"),
            (w2, "delivered"),
            (w1, "sent"),
            (w3, "failed"),
            (w1, "delivered"),
            (w2, "sent"),
            (w3, "sent"),
        ],
        errors={w3: 131026},
    )
    assert status == 200
    assert (await h.message(msg1)).status is WhatsAppStatus.READ
    assert (await h.message(msg2)).status is WhatsAppStatus.DELIVERED
    row3 = await h.message(msg3)
    assert row3.status is WhatsAppStatus.FAILED and row3.error_code == 131026
    async with h.sm() as s:
        history = list(
            await s.scalars(
                sa.select(WhatsAppStatusEvent.status).where(WhatsAppStatusEvent.message_id == msg1)
            )
        )
    assert {"sent", "delivered", "read"} <= set(history)  # full history kept
    # Meta retries a delivery: nothing is duplicated, nothing moves.
    before = await count(h.sm, WhatsAppStatusEvent)
    payload = h.fake.deliveries[-1][0]
    assert await h.fake.deliver(payload) == 200
    assert await count(h.sm, WhatsAppStatusEvent) == before
    assert (await h.message(msg1)).status is WhatsAppStatus.READ
    # The funnel for the reports.
    funnel = (await h.worker.store.funnel()).to_dict()
    assert funnel["queued"] == 3 and funnel["sent"] == 2 and funnel["delivered"] == 2
    assert funnel["read"] == 1 and funnel["failed"] == 1


async def test_failed_status_applies_the_error_policy(h: Harness) -> None:
    _lead, msg, wamid = await _sent(h)
    assert await h.fake.deliver_statuses([(wamid, "failed")], errors={wamid: 131049}) == 200
    row = await h.message(msg)
    # Marketing limit: retried after 24 h as a new attempt (new wamid), history kept.
    assert row.status is WhatsAppStatus.SCHEDULED and row.wamid is None
    assert row.next_attempt_at == h.clock.now() + timedelta(hours=24)
    h.clock.advance(24 * 3600)
    await h.worker.sweep()
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SENT and row.wamid not in (None, wamid)
    # A late status of the first attempt is recorded but does not touch the new one.
    await h.fake.deliver_statuses([(wamid, "delivered")])
    assert (await h.message(msg)).status is WhatsAppStatus.SENT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", True),
        ("stop", True),
        ("No más", True),
        ("no mas!!", True),
        ("Baja", True),
        ("baja por favor", True),
        ("CANCELAR", True),
        ("Por favor no me escriban más", True),
        ("Sí, quiero agendar", False),
        ("¿Cuánto cuesta el mantenimiento?", False),
        ("No más de las 3 pm puedo, ¿me llaman mañana temprano para agendar?", False),
        ("", False),
    ],
)
def test_opt_out_words(text: str, expected: bool) -> None:
    assert is_opt_out(text) is expected


async def test_stop_revokes_whatsapp_marketing_consent(h: Harness) -> None:
    lead, _msg, wamid = await _sent(h)
    assert await h.fake.deliver_inbound("+573000000001", "STOP", wamid) == 200
    async with h.sm() as s:
        consent = (
            await s.scalars(sa.select(Consent).where(Consent.channel == Channel.WHATSAPP))
        ).one()
        lead_row = await s.get_one(Lead, lead)
        inbound = (
            await s.scalars(sa.select(WhatsAppMessage).where(WhatsAppMessage.direction == "in"))
        ).one()
    assert consent.revoked_at is not None and consent.revoked_reason == "whatsapp_stop"
    assert lead_row.status is LeadStatus.EXHAUSTED and not lead_row.is_callback
    assert inbound.status is WhatsAppStatus.RECEIVED and inbound.text == "STOP"
    [event] = await h.events("whatsapp_opt_out")
    assert event["lead_id"] == lead and event["opt_out"] is True
    assert await h.events("whatsapp_reply") == []
    # No later message may go: the consent rule skips it.
    camp2 = await make_campaign(h.sm, name="Recuperación")
    async with h.sm.begin() as s:
        row = WhatsAppMessage(
            idempotency_key="fallback:x",
            lead_id=lead,
            campaign_id=camp2,
            phone="+573000000001",
            payload={},
        )
        s.add(row)
        await s.flush()
        second = row.id
    await h.worker.process_message(second)
    assert (await h.message(second)).status is WhatsAppStatus.SKIPPED
    assert len(h.fake.messages) == 1


async def test_reply_schedules_a_callback_and_emits_the_thread_event(h: Harness) -> None:
    lead, msg, wamid = await _sent(h)
    h.clock.advance(600)
    assert await h.fake.deliver_inbound("+573000000001", "Sí, quiero agendar", wamid) == 200
    async with h.sm() as s:
        row = await s.get_one(Lead, lead)
        events = list(await s.scalars(sa.select(LeadEvent).where(LeadEvent.lead_id == lead)))
        contacts = list(await s.scalars(sa.select(ContactLog)))
    assert row.status is LeadStatus.PENDING and row.is_callback
    assert row.next_attempt_at == h.clock.now() and row.priority == 10
    assert any(e.kind == "callback" and e.reason == "whatsapp_reply" for e in events)
    assert any(c.direct_contact and c.channel is Channel.WHATSAPP for c in contacts)
    [event] = await h.events("whatsapp_reply")
    assert event["lead_id"] == lead and event["reply_to"] == msg and event["callback"]
    assert event["text"] == "Sí, quiero agendar"
    thread = await h.worker.store.thread(lead)
    assert [m["direction"] for m in thread] == ["out", "in"]
    assert thread[1]["text"] == "Sí, quiero agendar"
    # Meta retries the same delivery: stored once, one event.
    payload = h.fake.deliveries[-1][0]
    await h.fake.deliver(payload)
    assert await count(h.sm, WhatsAppMessage, WhatsAppMessage.direction == "in") == 1
    assert len(await h.events("whatsapp_reply")) == 1


async def test_reply_without_context_matches_by_phone(h: Harness) -> None:
    lead, _, _ = await _sent(h)
    assert await h.fake.deliver_inbound("+573000000001", "¿Qué horarios tienen?") == 200
    async with h.sm() as s:
        row = await s.get_one(Lead, lead)
    assert row.is_callback and row.status is LeadStatus.PENDING


async def test_unknown_wamid_and_garbage_items_are_ignored(h: Harness) -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"changes": [{"value": {"statuses": [{"id": "wamid.nope", "status": "read"}, 7]}}]},
            "junk",
        ],
    }
    body = json.dumps(payload).encode()
    resp = await h.api_post(body, {SIGNATURE_HEADER: sign(body, h.fake.app_secret)})
    assert resp.status_code == 200 and resp.json()["ignored"] == 2
    not_json = b"{"
    resp = await h.api_post(not_json, {SIGNATURE_HEADER: sign(not_json, h.fake.app_secret)})
    assert resp.status_code == 400


async def test_the_api_app_serves_the_webhook(h: Harness) -> None:
    app_module = pytest.importorskip("api.app")
    app = app_module.create_app(
        h.settings, sessionmaker=h.sm, redis=h.redis, keys=h.keys, start_workers=False
    )
    token = h.settings.whatsapp.verify_token.get_secret_value()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            ok = await http.get(
                "/webhooks/whatsapp",
                params={"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "42"},
            )
            body = b'{"object":"whatsapp_business_account","entry":[]}'
            unsigned = await http.post("/webhooks/whatsapp", content=body)
            signed = await http.post(
                "/webhooks/whatsapp",
                content=body,
                headers={SIGNATURE_HEADER: sign(body, h.fake.app_secret)},
            )
    assert ok.status_code == 200 and ok.text == "42"
    assert unsigned.status_code == 403
    assert unsigned.json()["error"]["code"] == "invalid_signature"
    assert signed.status_code == 200
