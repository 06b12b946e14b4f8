"""Fixtures for the WhatsApp tests: fake Graph API <-> client, webhook router, worker.

Everything runs in-process through ``httpx.ASGITransport`` (no sockets) on a fake clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import Campaign, Consent, Lead, Phone, WhatsAppMessage, WhatsAppStatus
from dialer.domain.clock import FakeClock
from dialer.domain.outcomes import CampaignStatus, CampaignType, Channel, LeadStatus
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from dialer.settings import Settings
from dialer.store import fallback_key, whatsapp_payload
from dialer.whatsapp.client import CloudApiClient
from dialer.whatsapp.fake_graph import FakeGraph
from dialer.whatsapp.policy import RetryConfig
from dialer.whatsapp.webhooks import router
from dialer.whatsapp.worker import WhatsAppWorker, WorkerConfig

# Monday 2026-11-23 10:00 in Bogotá (UTC-5): inside the legal contact hours.
MONDAY_10AM = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
WEBHOOK_URL = "http://api.test/webhooks/whatsapp"


@dataclass
class Harness:
    sm: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    keys: Keys
    settings: Settings
    clock: FakeClock
    fake: FakeGraph
    api: FastAPI
    client: CloudApiClient
    worker: WhatsAppWorker

    def new_worker(self, consumer: str, **config: Any) -> WhatsAppWorker:
        cfg = self.worker.config.model_copy(update={"consumer": consumer, **config})
        return WhatsAppWorker(
            self.sm, self.redis, self.keys, self.client, clock=self.clock, config=cfg
        )

    async def api_post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.api), base_url="http://api.test"
        ) as http:
            return await http.post("/webhooks/whatsapp", content=body, headers=headers)

    async def api_get(self, params: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.api), base_url="http://api.test"
        ) as http:
            return await http.get("/webhooks/whatsapp", params=params)

    async def message(self, message_id: int) -> WhatsAppMessage:
        async with self.sm() as s:
            return await s.get_one(WhatsAppMessage, message_id)

    async def events(self, type_: str) -> list[dict[str, Any]]:
        entries = await Streams(self.redis).read(self.keys.events_stream, "0", count=1000)
        return [e.data for e in entries if e.type == type_]


@pytest.fixture(autouse=True)
def _fresh_logging() -> None:
    """Another test may have bound structlog to its (now closed) capsys stream."""
    structlog.reset_defaults()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_10AM)


@pytest.fixture
async def harness(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    clock: FakeClock,
) -> AsyncIterator[Harness]:
    api = FastAPI()
    api.include_router(router)
    api.state.sessionmaker = sessionmaker
    api.state.settings = settings
    api.state.redis = redis
    api.state.keys = keys
    api.state.clock = clock
    fake = FakeGraph(
        app_secret=settings.whatsapp.app_secret.get_secret_value(),
        access_token=settings.whatsapp.access_token.get_secret_value(),
        phone_number_id=settings.whatsapp.phone_number_id,
        webhook_url=WEBHOOK_URL,
        webhook_transport=httpx.ASGITransport(app=api),
        clock=clock,
    )
    client = CloudApiClient.create(settings.whatsapp, transport=httpx.ASGITransport(app=fake.app))
    config = WorkerConfig(
        consumer="w1",
        autoclaim_idle_ms=0,
        retry=RetryConfig(jitter_fraction=0.0),
        reconcile_grace=timedelta(minutes=10),
    )
    worker = WhatsAppWorker(sessionmaker, redis, keys, client, clock=clock, config=config)
    await worker.setup()
    try:
        yield Harness(sessionmaker, redis, keys, settings, clock, fake, api, client, worker)
    finally:
        await client.aclose()


async def make_campaign(
    sm: async_sessionmaker[AsyncSession], name: str = "Contacto proactivo Tunja", **extra: Any
) -> int:
    values: dict[str, Any] = {
        "name": name,
        "type": CampaignType.CONTACTO_PROACTIVO,
        "status": CampaignStatus.RUNNING,
        "whatsapp_template": "promo_mantenimiento",
        "whatsapp_image": "https://cdn.example.test/promo.jpg",
        "dealer_phones": "608 7401234 - 310 5550000",
        **extra,
    }
    async with sm.begin() as s:
        existing = await s.scalar(sa.select(Campaign.id).where(Campaign.name == name))
        if existing is not None:  # get-or-create by name
            return int(existing)
        camp = Campaign(**values)
        s.add(camp)
        await s.flush()
        return camp.id


async def make_exhausted_lead(
    sm: async_sessionmaker[AsyncSession],
    campaign_id: int,
    n: int = 1,
    *,
    consent: bool = True,
    phone: str | None = None,
    national_id: str | None = None,
) -> tuple[int, int]:
    """An exhausted lead with its outbox row, as dialer/store.py writes it: (lead, message)."""
    number = phone or f"+57300{n:07d}"
    nid = national_id or str(52000000 + n)
    async with sm.begin() as s:
        camp = await s.get_one(Campaign, campaign_id)
        lead = Lead(
            campaign_id=campaign_id,
            dedupe_key=f"cc:{nid}",
            national_id=nid,
            customer_name=f"María Pérez {n}",
            brand="Renault",
            model="Duster",
            plate=f"ABC{n:03d}",
            branch="Tunja",
            status=LeadStatus.EXHAUSTED,
            attempts=3,
        )
        lead.phones = [Phone(e164=number, position=0)]
        s.add(lead)
        if consent:
            s.add(
                Consent(
                    person_key=nid,
                    channel=Channel.WHATSAPP,
                    proof="formulario taller",
                    granted_at=MONDAY_10AM - timedelta(days=30),
                )
            )
        await s.flush()
        msg = WhatsAppMessage(
            idempotency_key=fallback_key(campaign_id, lead.id),
            lead_id=lead.id,
            campaign_id=campaign_id,
            phone=number,
            template=camp.whatsapp_template,
            payload=whatsapp_payload(lead, camp),
            status=WhatsAppStatus.QUEUED,
        )
        s.add(msg)
        await s.flush()
        return lead.id, msg.id


async def publish(h: Harness, message_id: int, lead_id: int) -> str:
    """What the engine does after the commit (Engine.publish_whatsapp)."""
    return await Streams(h.redis).add(
        h.keys.whatsapp_stream, "lead_exhausted", {"message_id": message_id, "lead_id": lead_id}
    )


async def count(sm: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    async with sm() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
def h(harness: Harness) -> Harness:
    """Short alias of :func:`harness`."""
    return harness
