"""Small builders for engine tests (rows written straight through the ORM)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import Campaign, Consent, Lead, Phone, Role, User
from dialer.domain.outcomes import CampaignStatus, CampaignType, Channel, DialMode

# Monday 2026-11-23 10:00 in Bogotá (UTC-5): inside the legal window.
MONDAY_10AM = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


async def make_campaign(
    sm: async_sessionmaker[AsyncSession],
    name: str = "Contacto proactivo Tunja",
    type_: CampaignType = CampaignType.CONTACTO_PROACTIVO,
    max_attempts: int = 3,
    mode: DialMode = DialMode.PROGRESSIVE,
    **extra: object,
) -> Campaign:
    async with sm.begin() as s:
        camp = Campaign(
            name=name,
            type=type_,
            status=CampaignStatus.RUNNING,
            dial_mode=mode,
            max_attempts=max_attempts,
            whatsapp_template="promo_mantenimiento",
            dealer_phones="608 7401234",
            script="Buenos días {nombre}, le llamamos de Carrazos...",
            **extra,
        )
        s.add(camp)
    return camp


async def make_lead(
    sm: async_sessionmaker[AsyncSession],
    campaign_id: int,
    n: int,
    phones: tuple[str, ...] = (),
    consent: bool = True,
    **extra: object,
) -> Lead:
    numbers = phones or (f"+57300{n:07d}",)
    async with sm.begin() as s:
        lead = Lead(
            campaign_id=campaign_id,
            dedupe_key=f"cc:{1000 + n}",
            national_id=str(1000 + n),
            customer_name=f"Cliente {n}",
            brand="Renault",
            model="Duster",
            plate=f"ABC{n:03d}",
            branch="Tunja",
            **extra,
        )
        lead.phones = [Phone(e164=num, position=i) for i, num in enumerate(numbers)]
        s.add(lead)
        if consent:
            s.add(
                Consent(
                    person_key=str(1000 + n),
                    channel=Channel.VOICE,
                    proof="test",
                    granted_at=MONDAY_10AM - timedelta(days=30),
                )
            )
            s.add(
                Consent(
                    person_key=str(1000 + n),
                    channel=Channel.WHATSAPP,
                    proof="test",
                    granted_at=MONDAY_10AM - timedelta(days=30),
                )
            )
    return lead


async def make_agent(sm: async_sessionmaker[AsyncSession], user_id: int, ext: str) -> User:
    async with sm.begin() as s:
        user = User(
            id=user_id,
            username=f"agente{user_id}",
            full_name=f"Agente {user_id}",
            role=Role.AGENT,
            password_hash="x",
            extension=ext,
        )
        s.add(user)
    return user
