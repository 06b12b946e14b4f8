from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import CallAttempt, DncEntry, DncSource, Lead, LeadEvent, WhatsAppMessage
from dialer.domain.outcomes import CallOutcome, DialMode, LeadStatus
from dialer.store import CallResult, EngineStore

from .factories import MONDAY_10AM, make_campaign, make_lead

TTL = timedelta(seconds=30)


async def _dial(
    store: EngineStore, camp_id: int, lead_id: int, now: datetime, owner: str = "d1"
) -> str:
    camp = await store.campaign(camp_id)
    assert camp is not None
    ok, _ = await store.claim(lead_id, camp, owner, now, TTL)
    assert ok
    info = await store.create_attempt(lead_id, camp, owner, "sim", DialMode.PROGRESSIVE, now)
    return info.uuid


async def test_claim_is_exclusive_between_dialers(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker)
    lead = await make_lead(sessionmaker, camp.id, 1)
    ok_a, _ = await store.claim(lead.id, camp, "dialer-a", MONDAY_10AM, TTL)
    ok_b, _ = await store.claim(lead.id, camp, "dialer-b", MONDAY_10AM, TTL)
    assert (ok_a, ok_b) == (True, False)
    assert await store.candidate_ids(camp.id, MONDAY_10AM, 10) == []


async def test_attempt_row_written_before_dial_and_numbered(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker)
    lead = await make_lead(sessionmaker, camp.id, 1)
    uuid = await _dial(store, camp.id, lead.id, MONDAY_10AM)
    attempt = await store.attempt(uuid)
    assert attempt is not None
    assert attempt.attempt_number == 1 and attempt.outcome is None
    assert attempt.number == "+573000000001"


async def test_busy_retries_in_20_minutes_then_exhausts_to_whatsapp_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker, max_attempts=3)
    lead = await make_lead(sessionmaker, camp.id, 1)
    now = MONDAY_10AM
    for n in range(3):
        uuid = await _dial(store, camp.id, lead.id, now)
        res = await store.finish_attempt(uuid, CallResult(CallOutcome.BUSY, ended_at=now), now)
        assert res.decision is not None
        if n < 2:
            assert res.decision.lead_status is LeadStatus.PENDING
            assert res.decision.next_attempt_at == now + timedelta(minutes=20)
            now = res.decision.next_attempt_at
        else:
            assert res.decision.lead_status is LeadStatus.EXHAUSTED
            assert res.whatsapp_message_id is not None
        again = await store.finish_attempt(uuid, CallResult(CallOutcome.BUSY), now)
        assert again.already_finished
    async with sessionmaker() as s:
        msgs = list(await s.scalars(sa.select(WhatsAppMessage)))
        attempts = await s.scalar(sa.select(sa.func.count()).select_from(CallAttempt))
        final = await s.get_one(Lead, lead.id)
    assert len(msgs) == 1 and msgs[0].payload["customer_name"] == "Cliente 1"
    assert attempts == 3 and final.status is LeadStatus.EXHAUSTED
    camp_row = await store.campaign(camp.id)
    assert camp_row is not None
    ok, _ = await store.claim(lead.id, camp_row, "d1", now, TTL)
    assert not ok


async def test_dnc_checked_at_claim_time(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker)
    lead = await make_lead(sessionmaker, camp.id, 1)
    async with sessionmaker.begin() as s:
        s.add(DncEntry(e164="+573000000001", source=DncSource.RNE, added_at=MONDAY_10AM))
    ok, readiness = await store.claim(lead.id, camp, "d1", MONDAY_10AM, TTL)
    assert not ok and readiness is not None and not readiness.ready
    async with sessionmaker() as s:
        row = await s.get_one(Lead, lead.id)
        events = list(await s.scalars(sa.select(LeadEvent)))
    assert row.status is LeadStatus.EXCLUDED
    assert events and events[0].kind == "excluded"


async def test_window_closed_defers_lead(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker)
    lead = await make_lead(sessionmaker, camp.id, 1)
    sunday = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
    ok, readiness = await store.claim(lead.id, camp, "d1", sunday, TTL)
    assert not ok and readiness is not None
    async with sessionmaker() as s:
        row = await s.get_one(Lead, lead.id)
    assert row.status is LeadStatus.NEW
    assert row.next_attempt_at == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # Monday 07:00


async def test_expired_claim_returns_only_after_attempt_resolved(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker)
    lead = await make_lead(sessionmaker, camp.id, 1)
    uuid = await _dial(store, camp.id, lead.id, MONDAY_10AM, owner="dead")
    later = MONDAY_10AM + timedelta(minutes=5)
    assert await store.release_expired_claims(later) == []  # attempt still unresolved
    assert await store.orphan_attempts(later) == [(uuid, "sim")]
    await store.finish_attempt(
        uuid, CallResult(CallOutcome.FAILED, detail="lost: dialer died"), later
    )
    ok, _ = await store.claim(lead.id, camp, "alive", later + timedelta(minutes=15), TTL)
    assert ok


async def test_unknown_attempt_is_a_clear_error(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(LookupError, match="unknown attempt"):
        await EngineStore(sessionmaker).finish_attempt(
            "nope", CallResult(CallOutcome.BUSY), datetime.now(UTC)
        )


async def test_callback_attempt_is_outside_the_limits_and_quotas(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A lead exhausted on its only phone asks for a callback (a WhatsApp reply): the callback
    attempt uses that phone anyway, is marked, and counts against no limit."""
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker, max_attempts=1, max_attempts_per_phone=1)
    lead = await make_lead(sessionmaker, camp.id, 1)
    now = MONDAY_10AM
    ok, _ = await store.claim(lead.id, camp, "d1", now, timedelta(seconds=30))
    assert ok
    first = await store.create_attempt(lead.id, camp, "d1", "sim", DialMode.PROGRESSIVE, now)
    res = await store.finish_attempt(
        first.uuid, CallResult(CallOutcome.NO_ANSWER, ended_at=now), now
    )
    assert res.decision is not None and res.decision.lead_status is LeadStatus.EXHAUSTED
    async with sessionmaker.begin() as s:  # what the WhatsApp reply does
        row = await s.get_one(Lead, lead.id)
        row.status, row.is_callback, row.next_attempt_at = LeadStatus.PENDING, True, now
    later = now + timedelta(hours=1)
    ok, readiness = await store.claim(lead.id, camp, "d1", later, timedelta(seconds=30))
    assert ok, readiness
    again = await store.create_attempt(lead.id, camp, "d1", "sim", DialMode.PROGRESSIVE, later)
    assert again.phone_id == first.phone_id
    await store.finish_attempt(again.uuid, CallResult(CallOutcome.NO_ANSWER, ended_at=later), later)
    async with sessionmaker() as s:
        attempt = (
            await s.scalars(sa.select(CallAttempt).where(CallAttempt.uuid == again.uuid))
        ).one()
    assert attempt.is_callback and not attempt.counts_against_limit


async def test_congestion_every_time_marks_the_phone_bad_with_its_reason(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Issue 14 defect 8: congestion is never counted, so a number that always gives it was
    dialed forever. After 3 in a row the phone is marked bad and the lead event says why."""
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker)
    lead = await make_lead(sessionmaker, camp.id, 1)  # a single phone
    now = MONDAY_10AM
    for _ in range(3):
        uuid = await _dial(store, camp.id, lead.id, now)
        congestion = CallResult(
            CallOutcome.CONGESTION, ended_at=now, hangup_cause=34, trunk_failure=True
        )
        res = await store.finish_attempt(uuid, congestion, now)
        assert res.decision is not None and not res.decision.counted
        now = res.decision.next_attempt_at or now
    assert res.decision is not None
    assert res.decision.invalid_phone_reason == "trunk_failures"
    async with sessionmaker() as s:
        row = await s.get_one(Lead, lead.id)
        await s.refresh(row, ["phones"])
        assert [p.valid for p in row.phones] == [False]
        assert row.status is LeadStatus.EXCLUDED  # no dialable phone left
        event = (
            await s.scalars(
                sa.select(LeadEvent).where(LeadEvent.lead_id == lead.id).order_by(LeadEvent.id)
            )
        ).all()[-1]
    assert event.reason == "no_valid_phone"  # the lead's fate; the phone's is in the detail
    assert event.detail["why"] == "trunk_failures"
    assert event.detail["bad_phone"] == str(row.phones[0].id)
