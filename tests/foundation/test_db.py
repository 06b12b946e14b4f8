from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.db.models import Base, CallAttempt, Campaign, Lead, LeadClaim
from dialer.domain.outcomes import CampaignType, DialMode

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    def _diff(conn: sa.Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))

    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


async def _lead(sm: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sm.begin() as s:
        camp = Campaign(name="Proactivo", type=CampaignType.CONTACTO_PROACTIVO)
        s.add(camp)
        await s.flush()
        lead = Lead(campaign_id=camp.id, dedupe_key="cc:1049612345", customer_name="José Peña")
        s.add(lead)
        await s.flush()
        return camp.id, lead.id


def _attempt(campaign_id: int, lead_id: int, n: int) -> CallAttempt:
    return CallAttempt(
        campaign_id=campaign_id,
        lead_id=lead_id,
        number="+573001234567",
        attempt_number=n,
        mode=DialMode.PROGRESSIVE,
        created_at=NOW,
    )


async def test_double_attempt_rejected_by_database(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    camp_id, lead_id = await _lead(sessionmaker)
    async with sessionmaker.begin() as s:
        s.add(_attempt(camp_id, lead_id, 1))
    with pytest.raises(IntegrityError):
        async with sessionmaker.begin() as s:
            s.add(_attempt(camp_id, lead_id, 1))
    async with sessionmaker() as s:
        count = await s.scalar(sa.select(sa.func.count()).select_from(CallAttempt))
    assert count == 1


async def test_second_claim_on_lead_rejected_by_database(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    camp_id, lead_id = await _lead(sessionmaker)

    def claim(owner: str) -> LeadClaim:
        return LeadClaim(
            lead_id=lead_id, campaign_id=camp_id, owner=owner, claimed_at=NOW, expires_at=NOW
        )

    async with sessionmaker.begin() as s:
        s.add(claim("dialer-a"))
    with pytest.raises(IntegrityError):
        async with sessionmaker.begin() as s:
            s.add(claim("dialer-b"))


async def test_campaign_limits_enforced_by_database(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(IntegrityError):
        async with sessionmaker.begin() as s:
            s.add(Campaign(name="x", type=CampaignType.CUSTOM, abandon_target=0.05))
    with pytest.raises(IntegrityError):
        async with sessionmaker.begin() as s:
            s.add(Campaign(name="y", type=CampaignType.CUSTOM, ring_timeout=10))


async def test_times_round_trip_as_aware_utc(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    camp_id, lead_id = await _lead(sessionmaker)
    async with sessionmaker.begin() as s:
        s.add(_attempt(camp_id, lead_id, 1))
    async with sessionmaker() as s:
        attempt = (await s.scalars(sa.select(CallAttempt))).one()
    assert attempt.created_at == NOW
    assert attempt.created_at.tzinfo is not None


async def test_naive_datetime_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    camp_id, lead_id = await _lead(sessionmaker)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        async with sessionmaker.begin() as s:
            bad = _attempt(camp_id, lead_id, 1)
            bad.created_at = datetime(2026, 1, 1)
            s.add(bad)
