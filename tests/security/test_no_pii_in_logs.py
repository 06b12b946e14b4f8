"""No phone number, national id or secret in the logs (issue 9, "Security").

One test drives the three places where personal data flows: a short simulated campaign
(``run_demo``: engine, AMI bridge, PBX simulator), a lead import of a generated file, and a
WhatsApp send through the fake Graph API with its signed status webhooks. Every structlog line
(and every stdlib ``logging`` record) is captured and scanned:

* E.164 numbers, Colombian mobiles (3xx xxx xxxx) and landlines (60x xxx xxxx) by regex;
* every phone and national id that is in the database, literally;
* every secret in the settings, plus the AMI secrets the simulator accepts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge.simulator import SimulatorConfig
from api.demo import DEMO_CAMPAIGN, DemoOptions, run_demo
from dialer.db.engine import make_engine, make_sessionmaker
from dialer.db.models import Campaign, Lead, Phone, WhatsAppMessage, WhatsAppStatus
from dialer.importing import import_file
from dialer.logging import configure_logging
from dialer.settings import Settings, load_settings
from tests.whatsapp.conftest import Harness, make_campaign, make_exhausted_lead, publish

PHONE_PATTERNS = {
    "e164": re.compile(r"\+\d{10,15}(?!\d)"),
    "co_mobile": re.compile(r"(?<![\dA-Za-z*])3\d{2}[ -]?\d{3}[ -]?\d{4}(?![\dA-Za-z])"),
    "co_landline": re.compile(r"(?<![\dA-Za-z*])60\d[ -]?\d{3}[ -]?\d{4}(?![\dA-Za-z])"),
}
# Random identifiers (attempt and message UUIDs, hex or dashed) can hold a run of ten digits
# that reads like a phone number or a cédula; they are blanked out before the scan.
HEX_IDS = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"(?![0-9A-Za-z])"
)


class LogCapture:
    """Every log line, as the configured renderer wrote it (JSON)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.records: list[str] = []

    def lines(self) -> list[str]:
        return [ln for ln in self.buffer.getvalue().splitlines() if ln.strip()] + self.records


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def captured_logs() -> Iterator[LogCapture]:
    cap = LogCapture()
    configure_logging("debug", json_logs=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=cap.buffer))
    handler = _ListHandler(cap.records)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield cap
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        structlog.reset_defaults()


def scan(lines: list[str], literals: dict[str, set[str]]) -> list[str]:
    """Every (kind, line) where personal data or a secret shows; empty when clean."""
    hits: list[str] = []
    for raw in lines:
        line = HEX_IDS.sub("<id>", raw)
        for kind, pattern in PHONE_PATTERNS.items():
            if m := pattern.search(line):
                hits.append(f"{kind} {m.group(0)!r} in: {line[:300]}")
        for kind, values in literals.items():
            for value in values:
                if value and value in line:
                    hits.append(f"{kind} {value[:4]}… in: {line[:300]}")
    return hits


def write_leads_csv(path: Path, n: int, seed: int) -> tuple[set[str], set[str]]:
    """A dealer-style export with cédulas, mobiles and landlines. Returns (ids, numbers)."""
    rng = random.Random(seed)
    ids: set[str] = set()
    numbers: set[str] = set()
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerow(["Cédula", "Nombre", "Teléfono", "Celular", "Placa", "Sede", "Habeas data"])
    for i in range(n):
        nid = str(1_000_000_000 + rng.randrange(99_000_000))
        mobile = f"3{rng.randrange(10, 24)}{rng.randrange(10**7):07d}"
        landline = f"7{rng.randrange(10**6):06d}"
        ids.add(nid)
        numbers.update({mobile, f"+57{mobile}", f"+57608{landline}", f"608{landline}"})
        if i % 7 == 0:  # some rows come with bad phones only: rejected with a reason
            landline, mobile = "123", "0000000"
        writer.writerow([nid, f"Cliente {i}", landline, mobile, f"ABC{i:03d}", "Tunja", "SI"])
    path.write_bytes(buf.getvalue().encode("cp1252"))
    return ids, numbers


async def _pii_in_db(sm: async_sessionmaker[AsyncSession]) -> tuple[set[str], set[str]]:
    async with sm() as s:
        phones = set(await s.scalars(sa.select(Phone.e164)))
        ids = {i for i in await s.scalars(sa.select(Lead.national_id)) if i}
    national = {p.removeprefix("+57") for p in phones if p.startswith("+57")}
    return ids, phones | national


def _secrets(settings: Settings) -> set[str]:
    values = {s.get_secret_value() for _, s in settings.secrets()}
    values |= {u.secret for u in SimulatorConfig().users.values()}
    return {v for v in values if len(v) >= 6}


@pytest.fixture
def demo_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The embedded default in a temp dir, whatever the CI run's backends are."""
    monkeypatch.delenv("MARCADOR_DATABASE__URL", raising=False)
    monkeypatch.delenv("MARCADOR_REDIS__URL", raising=False)
    return load_settings(
        data_dir=tmp_path / "data",
        whatsapp={"access_token": "tok-Xy9Q-demo-secret", "app_secret": "app-sec-7781-zz"},
        api={"session_secret": "sess-sec-5512-qq"},
    )


async def test_demo_import_and_whatsapp_log_no_pii_or_secret(
    demo_settings: Settings, h: Harness, captured_logs: LogCapture, tmp_path: Path
) -> None:
    # 1. a short simulated campaign: engine + AMI bridge + PBX simulator, real logs
    stats = await run_demo(
        demo_settings,
        DemoOptions(agents=3, leads=25, speed=60.0, duration=900.0, seed=11, live=False),
    )
    # Leads by status (every lead once); "due" counts some of them again (due right now).
    assert sum(n for status, n in stats.items() if status != "due") == 25

    # 2. an import of a generated file into the demo campaign
    db = make_engine(demo_settings)
    sm = make_sessionmaker(db)
    try:
        async with sm() as s:
            camp_id = await s.scalar(sa.select(Campaign.id).where(Campaign.name == DEMO_CAMPAIGN))
        assert camp_id is not None
        csv_ids, csv_numbers = write_leads_csv(tmp_path / "clientes.csv", 40, seed=3)
        report = await import_file(sm, camp_id, tmp_path / "clientes.csv")
        assert report.rows and any(r.reason for r in report.rows)
        ids, numbers = await _pii_in_db(sm)
    finally:
        await db.dispose()

    # 3. a WhatsApp send through the fake Graph API, statuses back through the webhook
    wa_camp = await make_campaign(h.sm)
    lead_id, message_id = await make_exhausted_lead(
        h.sm, wa_camp, 1, phone="+573157654321", national_id="1049876543"
    )
    await publish(h, message_id, lead_id)
    assert await h.worker.poll(block_ms=None) == 1
    async with h.sm() as s:
        msg = await s.get_one(WhatsAppMessage, message_id)
        assert msg.status is not WhatsAppStatus.QUEUED
    wa_ids, wa_numbers = await _pii_in_db(h.sm)

    lines = captured_logs.lines()
    # the capture works: the bridge's structlog lines and the worker's HTTP calls are there
    assert any("ami_connected" in ln for ln in lines), lines
    assert any("/messages" in ln for ln in lines), lines
    for line in lines[:50]:  # structlog lines are JSON (the production renderer)
        if line.startswith("{"):
            json.loads(line)
    literals = {
        "national_id": ids | csv_ids | wa_ids,
        "phone": numbers | csv_numbers | wa_numbers,
        "secret": _secrets(demo_settings) | _secrets(h.settings),
    }
    assert len(literals["phone"]) > 40 and len(literals["national_id"]) > 40
    hits = scan(lines, literals)
    assert not hits, "personal data or secrets in the logs:\n" + "\n".join(hits[:20])


def test_the_scanner_catches_what_it_must() -> None:
    literals = {"national_id": {"1049876543"}, "phone": set(), "secret": {"s3cr3t-value"}}
    assert scan(['{"event": "x", "lead": "1049876543"}'], literals)
    assert scan(['{"to": "+573157654321"}'], literals)
    assert scan(["dialing 315 765 4321"], literals)
    assert scan(["landline 6087401234"], literals)
    assert scan(["login secret=s3cr3t-value"], literals)
    assert not scan(['{"to": "+*********21", "attempt": "5f0c2a9e"}'], literals)
    # a random attempt id whose hex holds ten digits that read like a landline or a cédula
    literals["national_id"].add("6006207913")
    assert not scan(['{"attempt": "f6006207913e4959a934a61c14333983"}'], literals)
    assert not scan(['{"message": "f6006207-9134-4959-a934-a61c14333983"}'], literals)
    assert scan(['{"attempt": "f6006207913e4959a934a61c14333983", "to": "6006207913"}'], literals)
