"""``marcador demo`` end to end: the simulated campaign, the API and web screens it serves, and
the WhatsApp fallback through the local fake Graph API, all in one event loop.

The simulated customers never answer, so every lead is exhausted after its three attempts
(15 simulated minutes apart) and gets exactly one fallback message. The demo stops by itself
once every lead is final and every fallback has been dealt with; ``asyncio.timeout`` only
guards against a hang.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import structlog

from ami_bridge.simulator import Population
from api.demo import DemoAccess, DemoOptions, run_demo
from dialer.db.engine import make_engine, make_sessionmaker
from dialer.db.models import Role, User, UserCampaign, WhatsAppMessage
from dialer.local_server import bind_loopback
from dialer.logging import configure_logging
from dialer.settings import Settings, load_settings

# Monday 2026-11-23 10:00 in Bogotá: inside the call window and the WhatsApp contact hours.
MONDAY_10AM = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
NOBODY_ANSWERS = Population(
    answer=0.0, busy=0.0, congestion=0.0, invalid=0.0, rejected=0.0, ring_mean=3.0, ring_sd=0.5
)
LEADS = 4


class _Lines(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def logs() -> Iterator[tuple[io.StringIO, list[str]]]:
    """Every structlog line and stdlib log record while the demo runs."""
    buf, records = io.StringIO(), list[str]()
    configure_logging("debug", json_logs=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buf))
    handler = _Lines(records)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield buf, records
    finally:
        root.removeHandler(handler)
        structlog.reset_defaults()


@pytest.fixture
def demo_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The embedded default in a temp dir, with the API's and the fake's own ports taken."""
    monkeypatch.delenv("MARCADOR_DATABASE__URL", raising=False)
    monkeypatch.delenv("MARCADOR_REDIS__URL", raising=False)
    busy_api, busy_graph = bind_loopback(0), bind_loopback(0)
    busy_api.listen()
    busy_graph.listen()
    try:
        yield load_settings(
            data_dir=tmp_path / "data",
            api={"port": busy_api.getsockname()[1]},
            whatsapp={"graph_base_url": f"http://127.0.0.1:{busy_graph.getsockname()[1]}"},
        )
    finally:
        busy_api.close()
        busy_graph.close()


async def test_demo_serves_the_screens_and_sends_the_whatsapp_fallback(
    demo_settings: Settings, logs: tuple[io.StringIO, list[str]]
) -> None:
    seen: dict[str, object] = {}

    async def on_ready(access: DemoAccess) -> None:
        # The busy ports were avoided: both servers moved to free ones, on loopback.
        assert access.api_url.startswith("http://127.0.0.1:")
        assert not access.api_url.endswith(f":{demo_settings.api.port}")
        taken = urlsplit(demo_settings.whatsapp.graph_base_url).port
        assert urlsplit(access.graph_url).port not in (None, taken)
        assert set(access.urls) == {"agente", "supervisor", "docs"}
        async with httpx.AsyncClient(base_url=access.api_url, timeout=30.0) as http:
            health = await http.get("/healthz")
            assert health.status_code == 200, health.text
            assert (await http.get("/docs")).status_code == 200
            pages = {"supervisor": "/supervisor", "agente": "/agente"}
            for login in access.logins:
                http.cookies.clear()
                signed = await http.post(
                    "/api/v1/auth/login",
                    json={"username": login.username, "password": login.password},
                )
                assert signed.status_code == 200, signed.text
                assert signed.json()["user"]["role"] == login.role.replace("agente", "agent")
                page = await http.get(pages[login.role])
                assert page.status_code == 200, page.text[:300]
            wrong = await http.post(
                "/api/v1/auth/login",
                json={"username": access.logins[0].username, "password": "no-es-la-clave"},
            )
            assert wrong.status_code == 401
        seen["access"] = access

    opts = DemoOptions(
        agents=1,
        leads=LEADS,
        speed=120.0,
        seed=5,
        live=False,
        start=MONDAY_10AM,
        population=NOBODY_ANSWERS,
        whatsapp_reply_ratio=0.0,
    )
    async with asyncio.timeout(240):  # a hang guard, not a timing assertion
        stats = await run_demo(demo_settings, opts, on_ready=on_ready)

    access = seen["access"]
    assert isinstance(access, DemoAccess)
    assert {k: v for k, v in stats.items() if v} == {"exhausted": LEADS}
    sent = access.fake_graph.messages
    assert sent, "no WhatsApp fallback reached the fake Graph API"
    assert len({m.to for m in sent}) == len(sent) == LEADS  # one per exhausted lead
    assert all(m.template == "promo_mantenimiento" and m.language == "es_CO" for m in sent)

    db = make_engine(demo_settings)
    try:
        async with make_sessionmaker(db)() as s:
            wamids = set(await s.scalars(sa.select(WhatsAppMessage.wamid)))
            people = {
                u.username: u
                for u in await s.scalars(
                    sa.select(User).where(User.role.in_([Role.SUPERVISOR, Role.AGENT]))
                )
            }
            assigned = set(await s.scalars(sa.select(UserCampaign.user_id)))
    finally:
        await db.dispose()
    assert {m.wamid for m in sent} <= wamids
    human = people["agente.demo"]
    assert human.extension == "2001" and human.password_hash.startswith("$argon2")
    assert people["supervisor.demo"].password_hash.startswith("$argon2")
    assert {human.id, people["supervisor.demo"].id} <= assigned

    # The passwords went to the terminal only (the CLI prints them), never to the logs.
    buf, records = logs
    lines = buf.getvalue().splitlines() + records
    assert any("whatsapp.worker_started" in ln for ln in lines)  # the capture works
    for login in access.logins:
        assert not [ln for ln in lines if login.password in ln]


async def test_demo_without_serving_runs_the_campaign_only(demo_settings: Settings) -> None:
    called: list[DemoAccess] = []

    async def on_ready(access: DemoAccess) -> None:
        called.append(access)

    opts = DemoOptions(
        agents=1,
        leads=2,
        speed=120.0,
        seed=5,
        live=False,
        serve=False,
        start=MONDAY_10AM,
        population=NOBODY_ANSWERS,
    )
    async with asyncio.timeout(240):
        stats = await run_demo(demo_settings, opts, on_ready=on_ready)
    assert {k: v for k, v in stats.items() if v} == {"exhausted": 2}
    assert called == []
    db = make_engine(demo_settings)
    try:
        async with make_sessionmaker(db)() as s:
            users = set(await s.scalars(sa.select(User.username)))
    finally:
        await db.dispose()
    assert "agente.demo" not in users and "supervisor.demo" not in users


def test_live_table_fits_a_terminal_and_speaks_spanish() -> None:
    """80x24: the whole table is visible, in Spanish, agents by name, however many there are."""
    from collections import Counter
    from types import SimpleNamespace
    from typing import cast

    from rich.console import Console

    from api.demo import LEAD_STATUS_ES, render, summary_text
    from dialer.domain.agents import AgentSession
    from dialer.domain.outcomes import AgentState, CallOutcome, DialMode
    from dialer.engine import Engine
    from dialer.pacing.types import DecisionReason

    states = list(AgentState)
    agents = {  # in their state for 11 minutes: "11:00" must not be cut to "11:…"
        i: AgentSession(i, states[i % len(states)], MONDAY_10AM, str(1000 + i), 1)
        for i in range(1, 21)
    }
    now = MONDAY_10AM + timedelta(minutes=11)
    calls = {
        str(i): SimpleNamespace(campaign_id=1, answered_at=None if i % 2 else MONDAY_10AM)
        for i in range(6)
    }
    for reason in DecisionReason:
        decision = SimpleNamespace(mode=DialMode.PROGRESSIVE, reason=reason, dial_level=1.0)
        engine = SimpleNamespace(
            campaigns={1: SimpleNamespace(last_decision=decision)}, calls=calls, agents=agents
        )
        access = SimpleNamespace(api_url="http://127.0.0.1:8000")
        stats = {status: 10 for status in LEAD_STATUS_ES}
        outcomes = Counter({o.value: 3 for o in CallOutcome})
        whatsapp = {"queued": 1, "sent": 2, "delivered": 3, "read": 4, "replied": 5, "failed": 1}
        console = Console(width=80, record=True, color_system=None)
        console.print(
            render(
                cast(Engine, engine),
                1,
                stats,
                outcomes,
                now,
                whatsapp,
                cast("DemoAccess", access),
                {i: f"Asesor {i}" for i in agents},
                speed=40,
            )
        )
        text = console.export_text()
        assert len(text.rstrip("\n").split("\n")) <= 24, text
        for english in ("answered_connected", "progressive", "no_answer", "ready", "exhausted"):
            assert english not in text, (english, text)
        assert "Asesor 1 " in text and "y 12 más" in text and reason.value not in text
        assert "11:00" in text and "11:…" not in text
    summary = summary_text({"exhausted": 2, "contacted": 3, "new": 0})
    assert summary == "5 leads: agotados 2 · contactados 3" and "{" not in summary
