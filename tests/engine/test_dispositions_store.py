from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import Appointment, Consent, DncEntry, Lead, Pqrs
from dialer.domain.dispositions import validate_disposition
from dialer.domain.errors import AttemptLimitReached
from dialer.domain.outcomes import CallOutcome, CampaignType, DialMode, LeadStatus
from dialer.store import CallResult, DispositionConflict, EngineStore

from .factories import MONDAY_10AM, make_campaign, make_lead

TTL = timedelta(seconds=30)


async def _connected_call(sm: async_sessionmaker[AsyncSession]) -> tuple[EngineStore, str, int]:
    store = EngineStore(sm)
    camp = await make_campaign(sm)
    lead = await make_lead(sm, camp.id, 1, phones=("+573000000001", "+576087401234"))
    ok, _ = await store.claim(lead.id, camp, "d1", MONDAY_10AM, TTL)
    assert ok
    info = await store.create_attempt(lead.id, camp, "d1", "sim", DialMode.PROGRESSIVE, MONDAY_10AM)
    res = await store.finish_attempt(
        info.uuid,
        CallResult(
            CallOutcome.ANSWERED_CONNECTED,
            answered_at=MONDAY_10AM,
            connected_at=MONDAY_10AM,
            ended_at=MONDAY_10AM + timedelta(minutes=3),
        ),
        MONDAY_10AM + timedelta(minutes=3),
    )
    assert res.decision is None  # waits for the agent
    return store, info.uuid, lead.id


NOW = MONDAY_10AM + timedelta(minutes=4)


async def test_appointment_disposition(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    store, uuid, lead_id = await _connected_call(sessionmaker)
    rec = validate_disposition(
        CampaignType.CONTACTO_PROACTIVO,
        "cita_agendada",
        {
            "appointment_at": MONDAY_10AM + timedelta(days=2),
            "branch": "Duitama",
            "service": "Mantenimiento 20.000 km",
        },
        NOW,
    )
    res = await store.record_disposition(uuid, rec, NOW, agent_id=None)
    assert res.decision is not None and res.decision.lead_status is LeadStatus.CONTACTED
    async with sessionmaker() as s:
        appt = (await s.scalars(sa.select(Appointment))).one()
        lead = await s.get_one(Lead, lead_id)
    assert appt.branch == "Duitama" and appt.scheduled_for == MONDAY_10AM + timedelta(days=2)
    assert lead.final_disposition == "cita_agendada"
    with pytest.raises(DispositionConflict) as info:
        await store.record_disposition(uuid, rec, NOW)
    assert info.value.code == "already_recorded"


async def test_complaint_creates_pqrs_with_business_day_deadline(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store, uuid, _ = await _connected_call(sessionmaker)
    rec = validate_disposition(
        CampaignType.CONTACTO_PROACTIVO,
        "queja_reclamo",
        {"description": "El carro salió del taller con ruido en la suspensión"},
        NOW,
    )
    await store.record_disposition(uuid, rec, NOW)
    async with sessionmaker() as s:
        pqrs = (await s.scalars(sa.select(Pqrs))).one()
    assert pqrs.deadline == date(2026, 12, 15)
    assert "suspensión" in pqrs.description


async def test_do_not_call_adds_dnc_and_revokes_every_channel(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store, uuid, _ = await _connected_call(sessionmaker)
    rec = validate_disposition(CampaignType.CONTACTO_PROACTIVO, "no_volver_a_llamar", {}, NOW)
    res = await store.record_disposition(uuid, rec, NOW)
    assert res.decision is not None and res.decision.lead_status is LeadStatus.EXCLUDED
    async with sessionmaker() as s:
        dnc = sorted(e.e164 for e in await s.scalars(sa.select(DncEntry)))
        consents = list(await s.scalars(sa.select(Consent)))
    assert dnc == ["+573000000001", "+576087401234"]
    assert consents and all(c.revoked_at == NOW for c in consents)


async def test_disposition_on_unconnected_call_rejected(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker)
    lead = await make_lead(sessionmaker, camp.id, 1)
    await store.claim(lead.id, camp, "d1", MONDAY_10AM, TTL)
    info = await store.create_attempt(lead.id, camp, "d1", "sim", DialMode.PROGRESSIVE, MONDAY_10AM)
    rec = validate_disposition(CampaignType.CONTACTO_PROACTIVO, "no_volver_a_llamar", {}, NOW)
    with pytest.raises(DispositionConflict, match="not ended"):
        await store.record_disposition(info.uuid, rec, NOW)
    await store.finish_attempt(info.uuid, CallResult(CallOutcome.BUSY), NOW)
    with pytest.raises(DispositionConflict, match="busy"):
        await store.record_disposition(info.uuid, rec, NOW)


async def test_disposition_after_the_claim_expired_still_decides(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The dialer died during the agent's wrap-up: its claim expired and the lead went back to
    pending. The agent's final disposition must still close the lead (it used to be ignored,
    and the lead was dialed again)."""
    store, uuid, lead_id = await _connected_call(sessionmaker)
    released = await store.release_expired_claims(MONDAY_10AM + timedelta(hours=1))
    assert released == [lead_id]
    rec = validate_disposition(CampaignType.CONTACTO_PROACTIVO, "no_volver_a_llamar", {}, NOW)
    res = await store.record_disposition(uuid, rec, MONDAY_10AM + timedelta(hours=1))
    assert res.decision is not None and not res.already_finished
    async with sessionmaker() as s:
        lead = await s.get_one(Lead, lead_id)
    assert lead.status is LeadStatus.EXCLUDED


async def test_no_dial_beyond_the_limit_whatever_the_path(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The last gate before a dial counts the stored attempts itself."""
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker, max_attempts=1)
    lead = await make_lead(sessionmaker, camp.id, 1)
    ok, _ = await store.claim(lead.id, camp, "d1", MONDAY_10AM, TTL)
    assert ok
    info = await store.create_attempt(lead.id, camp, "d1", "sim", DialMode.PROGRESSIVE, MONDAY_10AM)
    await store.finish_attempt(info.uuid, CallResult(CallOutcome.NO_ANSWER, ended_at=NOW), NOW)
    async with sessionmaker.begin() as s:  # some path lost the decision: the lead is pending
        row = await s.get_one(Lead, lead.id)
        row.status, row.attempts, row.next_attempt_at = LeadStatus.PENDING, 0, NOW
    ok, _ = await store.claim(lead.id, camp, "d2", NOW + timedelta(hours=1), TTL)
    assert ok
    with pytest.raises(AttemptLimitReached):
        await store.create_attempt(
            lead.id, camp, "d2", "sim", DialMode.PROGRESSIVE, NOW + timedelta(hours=1)
        )
    await store.close_claimed(
        lead.id, LeadStatus.EXHAUSTED, "attempt_limit", NOW + timedelta(hours=1)
    )
    async with sessionmaker() as s:
        row = await s.get_one(Lead, lead.id)
    assert row.status is LeadStatus.EXHAUSTED and row.status_reason == "attempt_limit"
