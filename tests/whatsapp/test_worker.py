"""The worker: contact rules on a fake clock, idempotency, killed workers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from dialer.db.models import ContactLog, DncEntry, DncSource, WhatsAppMessage, WhatsAppStatus
from dialer.domain.outcomes import Channel
from dialer.redis_client import Streams
from dialer.whatsapp.client import TemplateMessage
from dialer.whatsapp.store import image_ref
from dialer.whatsapp.worker import WhatsAppWorker

from .conftest import MONDAY_10AM, Harness, count, make_campaign, make_exhausted_lead, publish

MONDAY_7AM = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def _queued(h: Harness, n: int = 1, **kw: object) -> tuple[int, int]:
    camp = await make_campaign(h.sm)
    lead, msg = await make_exhausted_lead(h.sm, camp, n, **kw)  # type: ignore[arg-type]
    await publish(h, msg, lead)
    return lead, msg


async def _pending(h: Harness) -> int:
    info = await h.redis.xpending(h.keys.whatsapp_stream, h.keys.whatsapp_group)
    return int(info["pending"])


async def test_sends_the_template_with_image_and_body(h: Harness) -> None:
    lead, msg = await _queued(h)
    assert await h.worker.poll() == 1
    [sent] = h.fake.messages
    assert sent.template == "promo_mantenimiento" and sent.language == "es_CO"
    assert sent.header == {"type": "image", "image": {"link": "https://cdn.example.test/promo.jpg"}}
    assert sent.body_params == [
        "María Pérez 1",
        "Renault Duster ABC001",
        "Tunja",
        "608 7401234 - 310 5550000",
    ]
    assert sent.opaque == f"marcador:{msg}:1"
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SENT and row.wamid == sent.wamid
    assert row.send_attempts == 1 and row.claimed_by is None
    async with h.sm() as s:
        log = (await s.scalars(sa.select(ContactLog))).one()
    assert log.channel is Channel.WHATSAPP and not log.direct_contact and log.ref == sent.wamid
    assert await _pending(h) == 0
    [event] = await h.events("whatsapp_sent")
    assert event["lead_id"] == lead


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Sunday 10:00 -> Monday 07:00 (Bogotá).
        (datetime(2026, 11, 22, 15, 0, tzinfo=UTC), MONDAY_7AM),
        # Saturday 16:00 (after the 15:00 close) -> Monday 07:00.
        (datetime(2026, 11, 21, 21, 0, tzinfo=UTC), MONDAY_7AM),
        # Monday 19:30 -> Tuesday 07:00.
        (datetime(2026, 11, 24, 0, 30, tzinfo=UTC), datetime(2026, 11, 24, 12, 0, tzinfo=UTC)),
        # Tuesday 8 December 2026 (Inmaculada Concepción, holiday) -> Wednesday 07:00.
        (datetime(2026, 12, 8, 15, 0, tzinfo=UTC), datetime(2026, 12, 9, 12, 0, tzinfo=UTC)),
    ],
)
async def test_contact_hours_schedule_not_drop(
    h: Harness, now: datetime, expected: datetime
) -> None:
    h.clock.set(now)
    _, msg = await _queued(h)
    await h.worker.poll()
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SCHEDULED and row.next_attempt_at == expected
    assert row.error_detail and "horario" in row.error_detail
    assert h.fake.messages == [] and await _pending(h) == 0
    h.clock.set(expected - timedelta(seconds=1))
    assert await h.worker.sweep() == 0
    h.clock.set(expected)
    assert await h.worker.sweep() == 1
    assert (await h.message(msg)).status is WhatsAppStatus.SENT
    assert len(h.fake.messages) == 1


async def test_one_channel_per_week_after_a_direct_call(h: Harness) -> None:
    # Reached by phone on Friday in ANOTHER campaign: no WhatsApp until a week later.
    friday = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    async with h.sm.begin() as s:
        s.add(
            ContactLog(person_key="52000001", channel=Channel.VOICE, at=friday, direct_contact=True)
        )
    _, msg = await _queued(h)
    await h.worker.poll()
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SCHEDULED
    assert row.next_attempt_at == friday + timedelta(days=7)
    h.clock.set(friday + timedelta(days=7))
    await h.worker.sweep()
    assert (await h.message(msg)).status is WhatsAppStatus.SENT


async def test_one_contact_per_day_after_a_direct_contact(h: Harness) -> None:
    async with h.sm.begin() as s:
        s.add(
            ContactLog(
                person_key="52000001",
                channel=Channel.WHATSAPP,
                at=MONDAY_10AM - timedelta(hours=1),
                direct_contact=True,
            )
        )
    _, msg = await _queued(h)
    await h.worker.poll()
    row = await h.message(msg)
    # Next local day, snapped to the window: Tuesday 07:00 Bogotá.
    assert row.status is WhatsAppStatus.SCHEDULED
    assert row.next_attempt_at == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def test_indirect_contacts_do_not_block(h: Harness) -> None:
    async with h.sm.begin() as s:
        s.add(
            ContactLog(
                person_key="52000001",
                channel=Channel.VOICE,
                at=MONDAY_10AM - timedelta(minutes=20),
                direct_contact=False,
            )
        )
    _, msg = await _queued(h)
    await h.worker.poll()
    assert (await h.message(msg)).status is WhatsAppStatus.SENT


async def test_no_consent_or_dnc_is_skipped_with_reason(h: Harness) -> None:
    _, msg = await _queued(h, consent=False)
    async with h.sm.begin() as s:
        s.add(DncEntry(e164="+573000000002", source=DncSource.INTERNAL, added_at=MONDAY_10AM))
    lead2, msg2 = await make_exhausted_lead(h.sm, await make_campaign(h.sm), 2)
    await publish(h, msg2, lead2)
    await h.worker.poll()
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SKIPPED and row.error_detail == "consent"
    row2 = await h.message(msg2)
    assert row2.status is WhatsAppStatus.SKIPPED and "dnc" in (row2.error_detail or "")
    assert h.fake.messages == []


async def test_replayed_entry_and_restart_never_send_twice(h: Harness) -> None:
    lead, msg = await _queued(h)
    await publish(h, msg, lead)  # the dialer re-published the outbox row
    await h.worker.poll()
    assert len(h.fake.messages) == 1
    restarted = h.new_worker("w1-restarted")
    await restarted.setup()
    await publish(h, msg, lead)
    assert await restarted.poll() == 1
    h.clock.advance(3600)
    await restarted.sweep()
    assert len(h.fake.messages) == 1 and await _pending(h) == 0


async def test_two_workers_racing_send_once(h: Harness) -> None:
    _, msg = await _queued(h)
    other = h.new_worker("w2")
    results = await asyncio.gather(h.worker.process_message(msg), other.process_message(msg))
    assert sorted(results) == ["gone", "sent"]
    assert len(h.fake.messages) == 1


async def test_worker_cancelled_mid_send_finishes_it_and_nothing_is_resent(h: Harness) -> None:
    _, msg = await _queued(h)
    h.fake.gate = asyncio.Event()
    task = asyncio.create_task(h.worker.poll())
    await h.fake.request_arrived.wait()  # the request is at "Meta"
    task.cancel()
    h.fake.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SENT and row.wamid == h.fake.messages[0].wamid
    assert await _pending(h) == 1  # killed before the ack
    # Another worker reclaims the entry (XAUTOCLAIM): acknowledged, not sent again.
    w2 = h.new_worker("w2")
    assert await w2.poll() == 1
    assert await _pending(h) == 0
    assert len(h.fake.messages) == 1


async def test_entry_of_dead_worker_is_reclaimed_and_sent(h: Harness) -> None:
    _, msg = await _queued(h)
    streams = Streams(h.redis)
    taken = await streams.read_group(h.keys.whatsapp_stream, h.keys.whatsapp_group, "dead", 10)
    assert len(taken) == 1 and await _pending(h) == 1  # read, then the worker died
    w2 = h.new_worker("w2")
    assert await w2.poll() == 1
    assert (await h.message(msg)).status is WhatsAppStatus.SENT
    assert len(h.fake.messages) == 1 and await _pending(h) == 0


async def test_killed_after_meta_accepted_is_reconciled_by_webhook(h: Harness) -> None:
    _, msg = await _queued(h)
    prepared = await h.worker.store.prepare(msg, "dead", h.clock.now(), h.worker.config.lease)
    assert prepared.job is not None
    job = prepared.job
    # The request reached Meta, then the worker was SIGKILLed before storing the answer.
    result = await h.client.send_template(
        TemplateMessage(
            to=job.phone,
            template=job.template,
            header_image=image_ref(job.image),
            body_params=job.body_params,
            biz_opaque_callback_data=job.opaque,
        )
    )
    assert (await h.message(msg)).status is WhatsAppStatus.SENDING
    h.clock.advance(5)
    assert await h.fake.deliver_statuses([(result.wamid, "sent")]) == 200
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SENT and row.wamid == result.wamid
    h.clock.advance(3600)
    w2 = h.new_worker("w2")
    await w2.tick()
    assert len(h.fake.messages) == 1


async def test_killed_before_meta_got_it_is_resent_once_after_grace(h: Harness) -> None:
    _, msg = await _queued(h)
    await h.worker.store.prepare(msg, "dead", h.clock.now(), h.worker.config.lease)
    w2: WhatsAppWorker = h.new_worker("w2")
    await w2.poll()  # the stream entry: the row is SENDING (someone else's), not touched
    cfg = w2.config
    h.clock.advance((cfg.lease + cfg.reconcile_grace).total_seconds() - 1)
    await w2.sweep()
    assert h.fake.messages == [] and (await h.message(msg)).status is WhatsAppStatus.SENDING
    h.clock.advance(2)
    await w2.sweep()
    row = await h.message(msg)
    assert row.status is WhatsAppStatus.SENT and row.send_attempts == 2
    assert len(h.fake.messages) == 1
    await w2.sweep()
    assert len(h.fake.messages) == 1


async def test_queued_row_whose_entry_was_lost_is_swept(h: Harness) -> None:
    camp = await make_campaign(h.sm)
    _, msg = await make_exhausted_lead(h.sm, camp)  # committed, never published (Redis lost)
    async with h.sm.begin() as s:
        await s.execute(
            sa.update(WhatsAppMessage)
            .where(WhatsAppMessage.id == msg)
            .values(created_at=MONDAY_10AM - timedelta(minutes=1))
        )
    assert await h.worker.sweep() == 0  # younger than queued_grace: its entry may still come
    h.clock.advance(h.worker.config.queued_grace.total_seconds())
    assert await h.worker.sweep() == 1
    assert (await h.message(msg)).status is WhatsAppStatus.SENT
    assert len(h.fake.messages) == 1
    assert await count(h.sm, WhatsAppMessage) == 1
