"""Builders for the API tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import generate_api_key
from dialer.db.models import (
    ApiKey,
    CallAttempt,
    Campaign,
    Consent,
    Lead,
    Phone,
    Role,
    User,
    UserCampaign,
)
from dialer.domain.outcomes import (
    CallOutcome,
    CampaignStatus,
    CampaignType,
    Channel,
    DialMode,
    LeadStatus,
)

# Monday 2026-11-23 10:00 in Bogotá (UTC-5): inside the legal window.
MONDAY_10AM = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
_HASH: dict[str, str] = {}


def cheap_hasher() -> PasswordHasher:
    """argon2 is slow on purpose; tests use cheap parameters (same algorithm)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def password_hash() -> str:
    if "h" not in _HASH:
        _HASH["h"] = cheap_hasher().hash(PASSWORD)
    return _HASH["h"]


class ApiClient(httpx.AsyncClient):
    user_id: int = 0
    csrf: str = ""


async def make_user(
    sm: async_sessionmaker[AsyncSession],
    username: str,
    role: Role,
    *,
    campaigns: tuple[int, ...] = (),
    extension: str | None = None,
) -> int:
    async with sm.begin() as s:
        user = User(
            username=username,
            role=role,
            password_hash=password_hash(),
            full_name=username.title(),
            extension=extension,
        )
        s.add(user)
        await s.flush()
        for cid in campaigns:
            s.add(UserCampaign(user_id=user.id, campaign_id=cid))
        return user.id


async def assign(sm: async_sessionmaker[AsyncSession], user_id: int, *campaign_ids: int) -> None:
    async with sm.begin() as s:
        for cid in campaign_ids:
            s.add(UserCampaign(user_id=user_id, campaign_id=cid))


@asynccontextmanager
async def session_client(app: FastAPI, username: str) -> AsyncIterator[ApiClient]:
    transport = httpx.ASGITransport(app=app)
    async with ApiClient(transport=transport, base_url="http://testserver") as client:
        r = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        client.csrf = r.json()["csrf_token"]
        client.headers["X-CSRF-Token"] = client.csrf
        yield client


@asynccontextmanager
async def key_client(app: FastAPI, key: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {key}"},
    ) as client:
        yield client


async def make_key(sm: async_sessionmaker[AsyncSession], *scopes: str) -> str:
    new = generate_api_key()
    async with sm.begin() as s:
        s.add(
            ApiKey(
                name="test",
                prefix=new.prefix,
                key_hash=new.key_hash,
                scopes={"scopes": list(scopes)},
                created_at=MONDAY_10AM,
            )
        )
    return new.plaintext


async def make_campaign(
    sm: async_sessionmaker[AsyncSession],
    name: str = "Contacto proactivo Tunja",
    type_: CampaignType = CampaignType.CONTACTO_PROACTIVO,
    status: CampaignStatus = CampaignStatus.RUNNING,
) -> int:
    async with sm.begin() as s:
        camp = Campaign(
            name=name,
            type=type_,
            status=status,
            dial_mode=DialMode.PROGRESSIVE,
            script="Buenos días {nombre}, le llamamos de Carrazos por su {vehiculo} ({placa}).",
            whatsapp_template="promo",
        )
        s.add(camp)
        await s.flush()
        return camp.id


async def make_lead(
    sm: async_sessionmaker[AsyncSession], campaign_id: int, n: int, **extra: Any
) -> int:
    async with sm.begin() as s:
        lead = Lead(
            campaign_id=campaign_id,
            dedupe_key=f"id:{1000 + n}",
            national_id=str(1000 + n),
            customer_name=f"Cliente {n}",
            brand="Renault",
            model="Duster",
            plate=f"ABC{n:03d}",
            branch="Tunja",
            **extra,
        )
        lead.phones = [Phone(e164=f"+57300{n:07d}", position=0)]
        s.add(lead)
        s.add(
            Consent(
                person_key=f"id:{1000 + n}",
                channel=Channel.VOICE,
                proof="test",
                granted_at=MONDAY_10AM - timedelta(days=30),
            )
        )
        await s.flush()
        return lead.id


async def make_connected_attempt(
    sm: async_sessionmaker[AsyncSession],
    campaign_id: int,
    lead_id: int,
    agent_id: int | None,
    *,
    number: int = 1,
    outcome: CallOutcome | None = CallOutcome.ANSWERED_CONNECTED,
) -> str:
    """An attempt that was answered and connected to ``agent_id`` (waiting for disposition)."""
    async with sm.begin() as s:
        lead = await s.get_one(Lead, lead_id, options=[sa.orm.selectinload(Lead.phones)])
        lead.status = LeadStatus.IN_PROGRESS
        phone_id = lead.phones[0].id if lead.phones else None
        attempt = CallAttempt(
            lead_id=lead_id,
            campaign_id=campaign_id,
            phone_id=phone_id,
            number=f"+57300{lead_id:07d}",
            attempt_number=number,
            mode=DialMode.PROGRESSIVE,
            created_at=MONDAY_10AM - timedelta(minutes=5),
            answered_at=MONDAY_10AM - timedelta(minutes=4),
            connected_at=MONDAY_10AM - timedelta(minutes=4),
            ended_at=MONDAY_10AM - timedelta(minutes=1) if outcome else None,
            outcome=outcome,
            agent_id=agent_id,
        )
        s.add(attempt)
        await s.flush()
        return attempt.uuid


@dataclass
class FakeResolver:
    """DNS for webhook deliveries without a network: every name is a public address unless
    ``answers`` says otherwise (an empty list: the name does not resolve)."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        found = self.answers.get(host, ["93.184.216.34"])
        if not found:
            raise OSError(f"cannot resolve {host}")
        return found


@dataclass
class Recorder:
    """A webhook receiver for httpx.MockTransport: records requests, answers scripted codes."""

    codes: list[int] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    redirect_to: str | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        code = self.codes.pop(0) if self.codes else 200
        headers = {"Location": self.redirect_to} if self.redirect_to else {}
        return httpx.Response(code, json={"ok": code < 300}, headers=headers)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]
