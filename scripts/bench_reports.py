"""Benchmark: the monthly indicator report on ~100k call attempts (goal: <= 10 s).

Generates a seeded month (October 2026) into a fresh SQLite database (and into PostgreSQL when
``MARCADOR_DATABASE__URL`` is set; that database must be empty, or pass ``--reset`` to empty
it), then times the full report: SQL aggregation + XLSX + HTML. The baseline, measured in the
same run, is the floor of any report: one ``COUNT(*)`` scan of the month's attempts.

    .venv/bin/python scripts/bench_reports.py [--attempts 100000] [--repeat 3] [--reset]
    .venv/bin/python scripts/bench_reports.py --json   # tables on stderr, JSON on stdout

``--json``: the last line of stdout is ONE JSON object: ``attempts``, ``seconds`` (the
report's total, median) and ``backend`` of the last backend run (PostgreSQL when it ran), and
``runs``: one object per backend with every timing (``baseline``, ``queries``, ``xlsx``,
``html``, ``total``, ``generate_s``) and the generated counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dialer.db.engine import make_engine, make_sessionmaker  # noqa: E402
from dialer.db.migrate import upgrade  # noqa: E402
from dialer.db.models import (  # noqa: E402
    AgentStateLog,
    Appointment,
    Base,
    CallAttempt,
    Campaign,
    Disposition,
    Lead,
    LeadEvent,
    Pqrs,
    User,
    WhatsAppMessage,
)
from dialer.domain.dispositions import NOT_INTERESTED_REASONS, OPPORTUNITY_AREAS  # noqa: E402
from dialer.domain.outcomes import CampaignType  # noqa: E402
from dialer.domain.windows import default_calendar  # noqa: E402
from dialer.logging import configure_logging  # noqa: E402
from dialer.reports.filters import ReportFilter  # noqa: E402
from dialer.reports.html import render_html  # noqa: E402
from dialer.reports.queries import build_report  # noqa: E402
from dialer.reports.xlsx import workbook_bytes  # noqa: E402
from dialer.settings import load_settings  # noqa: E402

console = Console()
MONTH = "2026-10"
NOW = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
OFFSET = timedelta(hours=5)  # Bogotá
OUTCOMES = [
    ("answered_connected", 30),
    ("no_answer", 35),
    ("busy", 9),
    ("machine", 9),
    ("abandoned", 1),
    ("invalid_number", 3),
    ("rejected", 3),
    ("congestion", 2),
    ("failed", 4),
    ("cancelled", 4),
]
SALES_CODES = [
    ("cita_agendada", 25),
    ("no_interesado", 30),
    ("volver_a_llamar", 20),
    ("servicio_en_otro_taller", 10),
    ("numero_equivocado", 10),
    ("queja_reclamo", 3),
    ("no_volver_a_llamar", 2),
]
SAT_CODES = [
    ("satisfecho", 60),
    ("expectativas_no_cumplidas", 25),
    ("volver_a_llamar", 8),
    ("queja_reclamo", 4),
    ("numero_equivocado", 3),
]
BATCH = 5000


def _pick(rng: random.Random, table: list[tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _call_time(rng: random.Random, day0: date) -> datetime:
    """A local time in October, Mon-Sat inside the legal window (rarely outside)."""
    while True:
        day = day0 + timedelta(days=rng.randrange(31))
        closed = day.weekday() == 6 or default_calendar().is_holiday(day)
        if closed and rng.random() > 0.001:
            continue
        close = 15 if day.weekday() == 5 else 19
        start = 8 * 3600
        secs = rng.randrange(start, close * 3600 - 60)
        local = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=secs)
        return local + OFFSET


async def _insert(engine: AsyncEngine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        for i in range(0, len(rows), BATCH):
            await conn.execute(table.insert(), rows[i : i + BATCH])


def _t(model: Any) -> sa.Table:
    table: sa.Table = model.__table__
    return table


async def generate(engine: AsyncEngine, attempts: int, seed: int = 42) -> dict[str, int]:
    rng = random.Random(seed)
    day0 = date(2026, 10, 1)
    created = datetime(2026, 9, 20, 13, tzinfo=UTC)
    users = [
        {"id": i, "username": f"agente{i}", "full_name": f"Agente {i}", "role": "agent",
         "password_hash": "x", "active": True, "created_at": created, "updated_at": created}
        for i in range(1, 21)
    ]  # fmt: skip
    await _insert(engine, _t(User), users)
    types = [
        CampaignType.CONTACTO_PROACTIVO,
        CampaignType.RECUPERACION,
        CampaignType.SATISFACCION,
        CampaignType.AGENDAMIENTO,
    ]
    campaigns: list[dict[str, Any]] = [
        {"id": i + 1, "name": f"Campaña {t.value}", "type": t.value, "status": "running",
         "dial_mode": "predictive", "dial_ratio": 1.0, "max_attempts": 5,
         "max_attempts_per_phone": 3, "retry_rules": {}, "call_window": {}, "rules": {},
         "timezone": "America/Bogota", "caller_id": "", "script": "", "amd_enabled": False,
         "abandon_target": 0.03, "connect_timeout": 2.0, "ring_timeout": 25,
         "wrap_up_seconds": 30, "whatsapp_enabled": True, "whatsapp_template": "",
         "whatsapp_language": "es_CO", "whatsapp_image": "", "dealer_phones": "",
         "servers": {}, "trunk": "", "created_at": created, "updated_at": created}
        for i, t in enumerate(types)
    ]  # fmt: skip
    await _insert(engine, _t(Campaign), campaigns)
    leads: list[dict[str, Any]] = []
    att_rows: list[dict[str, Any]] = []
    disp_rows: list[dict[str, Any]] = []
    appts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    pqrs: list[dict[str, Any]] = []
    wa: list[dict[str, Any]] = []
    lead_id = 0
    brands, branches = ("Renault", "Chevrolet", "Kia", "Mazda"), ("Tunja", "Duitama")
    while len(att_rows) < attempts:
        lead_id += 1
        camp = rng.randrange(4)
        sat = types[camp] is CampaignType.SATISFACCION
        leads.append(
            {"id": lead_id, "campaign_id": camp + 1, "dedupe_key": f"cc:{lead_id}",
             "customer_name": f"Cliente {lead_id}", "id_type": "CC", "brand": rng.choice(brands),
             "branch": rng.choice(branches), "status": "pending", "priority": 0, "attempts": 0,
             "is_callback": False, "extra": {},
             "event_date": day0 + timedelta(days=rng.randrange(28)) if sat else None,
             "created_at": created, "updated_at": created}
        )  # fmt: skip
        n_att = rng.randint(1, 5)
        for n in range(1, n_att + 1):
            at = _call_time(rng, day0)
            outcome = _pick(rng, OUTCOMES)
            connected = outcome == "answered_connected"
            agent = rng.randint(1, 20) if connected else None
            aid = len(att_rows) + 1
            talk = rng.randint(30, 600)
            att_rows.append(
                {"id": aid, "uuid": f"a{aid:08d}", "lead_id": lead_id, "campaign_id": camp + 1,
                 "number": "+573000000000", "attempt_number": n,
                 "counts_against_limit": outcome not in ("failed", "cancelled"),
                 "mode": "predictive", "dialer_id": "bench", "server": "pbx1", "created_at": at,
                 "answered_at": at + timedelta(seconds=9) if connected else None,
                 "connected_at": at + timedelta(seconds=10) if connected else None,
                 "ended_at": at + timedelta(seconds=10 + talk if connected else 30),
                 "outcome": outcome, "agent_id": agent}
            )  # fmt: skip
            if connected:
                code = _pick(rng, SAT_CODES if sat else SALES_CODES)
                reason = (
                    rng.choice(NOT_INTERESTED_REASONS).code if code == "no_interesado" else None
                )
                areas = (
                    ",".join(o.code for o in rng.sample(OPPORTUNITY_AREAS, rng.randint(1, 3)))
                    if code == "expectativas_no_cumplidas"
                    else None
                )
                did = len(disp_rows) + 1
                disp_rows.append(
                    {"id": did, "attempt_id": aid, "lead_id": lead_id, "agent_id": agent,
                     "code": code, "reason": reason, "opportunity_area": areas, "notes": "",
                     "callback_own_agent": False, "created_at": at + timedelta(seconds=talk + 30)}
                )  # fmt: skip
                if code == "cita_agendada":
                    appts.append(
                        {"lead_id": lead_id, "disposition_id": did,
                         "scheduled_for": at + timedelta(days=5), "branch": rng.choice(branches),
                         "service": "Mantenimiento",
                         "status": rng.choice(["booked", "kept", "kept", "no_show", "cancelled"]),
                         "created_at": at, "updated_at": at}
                    )  # fmt: skip
                if code == "queja_reclamo":
                    pqrs.append(
                        {"lead_id": lead_id, "person_key": f"id:{lead_id}", "disposition_id": did,
                         "type": rng.choice(["queja", "reclamo", "peticion", "sugerencia"]),
                         "description": "", "deadline": at.date() + timedelta(days=21),
                         "status": "open", "resolution": "", "created_at": at, "updated_at": at}
                    )  # fmt: skip
                break
        else:
            wa.append(
                {"idempotency_key": f"fallback:{camp + 1}:{lead_id}", "direction": "out",
                 "lead_id": lead_id, "campaign_id": camp + 1, "phone": "+573000000000",
                 "template": "", "payload": {}, "text": "",
                 "status": rng.choice(["sent", "delivered", "read", "failed", "queued"]),
                 "send_attempts": 1, "created_at": at, "updated_at": at}
            )  # fmt: skip
        if rng.random() < 0.02:
            events.append(
                {"lead_id": lead_id, "at": _call_time(rng, day0), "kind": "excluded",
                 "reason": rng.choice(["dnc", "rne", "call_window"]), "detail": {}}
            )  # fmt: skip
    states = []
    for agent in range(1, 21):
        for day in range(31):
            d = day0 + timedelta(days=day)
            if d.weekday() == 6:
                continue
            start = datetime(d.year, d.month, d.day, 8, tzinfo=UTC) + OFFSET
            states += [
                {"user_id": agent, "campaign_id": 1, "state": "ready", "started_at": start,
                 "ended_at": start + timedelta(hours=4)},
                {"user_id": agent, "campaign_id": 1, "state": "paused", "pause_code": "almuerzo",
                 "started_at": start + timedelta(hours=4), "ended_at": start + timedelta(hours=5)},
                {"user_id": agent, "campaign_id": 1, "state": "ready",
                 "started_at": start + timedelta(hours=5), "ended_at": start + timedelta(hours=9)},
            ]  # fmt: skip
    await _insert(engine, _t(Lead), leads)
    await _insert(engine, _t(CallAttempt), att_rows[:attempts])
    kept = {r["id"] for r in att_rows[:attempts]}
    disp_rows = [r for r in disp_rows if r["attempt_id"] in kept]
    ids = {r["id"] for r in disp_rows}
    await _insert(engine, _t(Disposition), disp_rows)
    await _insert(engine, _t(Appointment), [a for a in appts if a["disposition_id"] in ids])
    await _insert(engine, _t(Pqrs), [p for p in pqrs if p["disposition_id"] in ids])
    await _insert(engine, _t(LeadEvent), events)
    await _insert(engine, _t(WhatsAppMessage), wa)
    await _insert(engine, _t(AgentStateLog), states)
    return {
        "leads": len(leads),
        "attempts": min(attempts, len(att_rows)),
        "dispositions": len(disp_rows),
        "whatsapp": len(wa),
        "agent_states": len(states),
    }


async def _time_report(sm: async_sessionmaker[AsyncSession], repeat: int) -> dict[str, float]:
    flt = ReportFilter.for_month(MONTH)
    samples: dict[str, list[float]] = {"baseline": [], "queries": [], "xlsx": [], "html": []}
    total: list[float] = []
    for _ in range(repeat):
        async with sm() as s:
            t0 = time.perf_counter()
            await s.scalar(
                sa.select(sa.func.count())
                .select_from(CallAttempt)
                .where(
                    CallAttempt.created_at >= flt.start_utc, CallAttempt.created_at < flt.end_utc
                )
            )
            samples["baseline"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        async with sm() as s:
            report = await build_report(s, flt, now=NOW)
        t1 = time.perf_counter()
        workbook_bytes(report)
        t2 = time.perf_counter()
        render_html(report)
        t3 = time.perf_counter()
        samples["queries"].append(t1 - t0)
        samples["xlsx"].append(t2 - t1)
        samples["html"].append(t3 - t2)
        total.append(t3 - t0)
    out = {k: statistics.median(v) for k, v in samples.items()}
    out["total"] = statistics.median(total)
    out["checksum_calls"] = float(report.effectiveness.total.total_calls)
    return out


async def _run_backend(
    name: str, url: str, attempts: int, repeat: int, reset: bool
) -> dict[str, Any]:
    settings = load_settings(database={"url": url}, data_dir=Path(tempfile.gettempdir()))
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(settings, url)
    try:
        async with engine.begin() as conn:
            existing = await conn.scalar(sa.select(sa.func.count()).select_from(Campaign))
            if existing:
                if not reset:
                    raise SystemExit(f"{name}: the database is not empty; use --reset to empty it")
                for table in reversed(Base.metadata.sorted_tables):
                    await conn.execute(table.delete())
        t0 = time.perf_counter()
        counts = await generate(engine, attempts)
        gen = time.perf_counter() - t0
        if name == "postgresql":
            # Planner statistics, as autovacuum would gather shortly after a bulk load.
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(sa.text("ANALYZE"))
        timings = await _time_report(make_sessionmaker(engine), repeat)
    finally:
        await engine.dispose()
    return {"backend": name, "generate_s": gen, **counts, **timings}


def main(argv: list[str] | None = None) -> None:
    global console
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reset", action="store_true", help="empty a non-empty PostgreSQL DB")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout's last line")
    args = parser.parse_args(argv)
    if args.json:
        console = Console(stderr=True)
    configure_logging()  # structured logs on stderr
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        results.append(asyncio.run(_run_backend("sqlite", url, args.attempts, args.repeat, True)))
    pg = os.environ.get("MARCADOR_DATABASE__URL")
    if pg:
        results.append(
            asyncio.run(_run_backend("postgresql", pg, args.attempts, args.repeat, args.reset))
        )
    table = Table(title=f"Monthly report on {args.attempts:,} attempts (median of {args.repeat})")
    for col in (
        "backend",
        "baseline COUNT(*) s",
        "queries s",
        "xlsx s",
        "html s",
        "total s",
        "total / baseline",
        "goal <= 10 s",
    ):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r["backend"],
            f"{r['baseline']:.3f}",
            f"{r['queries']:.2f}",
            f"{r['xlsx']:.2f}",
            f"{r['html']:.3f}",
            f"{r['total']:.2f}",
            f"{r['total'] / r['baseline']:.0f}x",
            "ok" if r["total"] <= 10 else "MISSED",
        )
    console.print(table)
    for r in results:
        console.print(
            f"{r['backend']}: {r['leads']:,} leads, {r['attempts']:,} attempts, "
            f"{r['dispositions']:,} dispositions, {r['whatsapp']:,} WhatsApp, "
            f"{r['agent_states']:,} agent intervals; generated in {r['generate_s']:.1f} s; "
            f"report counted {int(r['checksum_calls']):,} calls"
        )
    if args.json:
        runs = [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in results
        ]
        last = runs[-1]
        out = {
            "attempts": last["attempts"],
            "seconds": last["total"],
            "backend": last["backend"],
            "runs": runs,
            "load_avg": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(out, separators=(",", ":"), default=str), flush=True)


if __name__ == "__main__":
    main()
