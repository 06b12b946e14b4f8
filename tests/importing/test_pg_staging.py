"""PostgreSQL's staging path (COPY into temporary tables + set-based statements) against the
direct path (COPY straight into the tables): the same realistic file must leave the same
database, row for row and id for id, and the same per-row report.

Runs when the tests run on PostgreSQL (``MARCADOR_DATABASE__URL``); skipped on SQLite, whose
import has no staging path.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.db.models import Base, Consent, DncEntry, DncSource, Lead, Phone
from dialer.domain.outcomes import Channel
from dialer.importing import ImportReport, RowStatus, import_file, service

from .test_phone_forms import FORMS
from .test_service import HEADER as MESSY_HEADER
from .test_service import MESSY_ROWS, NOW, make_campaign, seed_lists

ROOT = Path(__file__).resolve().parents[2]
GENERATED_ROWS = 2500  # the benchmark's generator: duplicates, corporate, DNC, consents
BATCH = 400  # several batches, so batches are built while the previous one is applied
HEADER = [
    "Código", "Cédula", "Nombre", "Teléfono", "Celular", "Placa", "Marca", "Modelo", "Año",
    "Sede", "Fecha última visita", "Autoriza WhatsApp", "Habeas data", "Observación",
]  # fmt: skip
PREVIOUS = "1055000001"  # imported earlier with one phone; the file adds a second one
REVOKES = "1055000002"  # an active consent that the file's NO revokes
KEEPS = "1055000003"  # an active consent that the file's SÍ keeps (no second row)


@pytest.fixture
def pg(engine: AsyncEngine) -> AsyncEngine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the staging path is PostgreSQL's (set MARCADOR_DATABASE__URL)")
    return engine


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_import_for_tests", ROOT / "scripts" / "bench_import.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def realistic_file(tmp: Path) -> tuple[Path, Path, list[str]]:
    """(earlier file, file, DNC numbers): the benchmark's seeded dealer export, the messy rows
    of test_service, one row per accepted phone form, and rows that meet earlier state."""
    bench = _bench_module()
    generated = tmp / "generated.csv"
    dnc: list[str] = bench.generate(generated, GENERATED_ROWS, seed=19)
    with generated.open(encoding="cp1252", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    table: list[dict[str, str]] = []
    for n, row in enumerate(rows):
        row["Autoriza WhatsApp"] = ("SI", "NO", "", "")[n % 4]
        table.append(row)
    for cells in MESSY_ROWS:
        row = dict(zip(MESSY_HEADER, cells[: len(MESSY_HEADER)], strict=True))
        if len(cells) > len(MESSY_HEADER):  # a cell beyond the header
            row["Observación"] = f"{row['Observación']} {cells[-1]}".strip()
        table.append(row)
    for n, (form, cell, _expected) in enumerate(FORMS):
        # the same numbers recur across forms: duplicates by phone, shared phones
        national_id = "" if n % 3 == 0 else str(1_070_000_000 + n)
        table.append(
            {"Cédula": national_id, "Nombre": f"Forma {form}", "Celular": cell, "Sede": "Tunja"}
        )
    table += [
        {"Cédula": PREVIOUS, "Nombre": "Persona Previa", "Celular": "3001112233 / 3204445566"},
        {"Cédula": REVOKES, "Nombre": "Revoca Ahora", "Celular": "3015550001", "Habeas data": "NO"},
        {"Cédula": KEEPS, "Nombre": "Ya Autorizó", "Celular": "3015550002", "Habeas data": "SI"},
        # revoked in seed_lists; SÍ in the file does not override it
        {"Cédula": "1030111777", "Nombre": "Revocó", "Celular": "3134445566", "Habeas data": "SI"},
    ]
    earlier = tmp / "anterior.csv"
    _write(earlier, [{"Cédula": PREVIOUS, "Nombre": "Persona Previa", "Celular": "3001112233"}])
    path = tmp / "clientes_concesionario.csv"
    _write(path, table)
    return earlier, path, dnc


def _write(path: Path, table: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerow(HEADER)
    writer.writerows([row.get(h, "") for h in HEADER] for row in table)
    path.write_bytes(buf.getvalue().encode("cp1252"))


async def _seed(sm: async_sessionmaker[AsyncSession], dnc: list[str]) -> None:
    await seed_lists(sm)
    async with sm.begin() as s:
        s.add_all(DncEntry(e164=e, source=DncSource.RNE, added_at=NOW) for e in dnc)
        for key in (REVOKES, KEEPS):
            s.add(
                Consent(
                    person_key=key,
                    channel=Channel.VOICE,
                    proof="firmado en taller",
                    granted_at=datetime(2025, 6, 1, tzinfo=UTC),
                )
            )


async def _reset(engine: AsyncEngine) -> None:
    """Empty every table and restart every id sequence: both paths start from the same ids."""
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


async def _snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.c)
            rows = await conn.execute(sa.select(table).order_by(*order))
            out[table.name] = [tuple(r) for r in rows]
    return out


def _report(report: ImportReport) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    del data["seconds"], data["timings"]
    return data


async def _staging_tables(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            sa.text("SELECT count(*) FROM pg_class WHERE relname LIKE 'import_stage_%'")
        )
    return int(found or 0)


async def _run(
    engine: AsyncEngine,
    sm: async_sessionmaker[AsyncSession],
    files: tuple[Path, Path, list[str]],
    *,
    staging: bool,
) -> tuple[ImportReport, dict[str, list[tuple[Any, ...]]]]:
    earlier, file, dnc = files
    await _reset(engine)
    campaign_id = await make_campaign(sm)
    await _seed(sm, dnc)
    await import_file(sm, campaign_id, earlier, now=NOW, postgres_staging=staging)
    report = await import_file(
        sm, campaign_id, file, now=NOW, batch_size=BATCH, postgres_staging=staging
    )
    return report, await _snapshot(engine)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the batches written through the staging tables."""
    cls = service._PgStaging
    calls: list[int] = []
    write = cls.write

    async def counting(self: Any, sm: Any, batch: service._Batch, *args: Any) -> None:
        calls.append(batch.groups)
        await write(self, sm, batch, *args)

    monkeypatch.setattr(cls, "write", counting)
    return calls


async def test_staging_and_direct_paths_write_the_same(
    pg: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = realistic_file(tmp_path)
    batches = _spy(monkeypatch)

    direct, direct_db = await _run(pg, sessionmaker, files, staging=False)
    assert batches == []
    staged, staged_db = await _run(pg, sessionmaker, files, staging=True)
    assert len(batches) > 3  # the earlier file's batch, then several of the file's

    assert _report(staged) == _report(direct)
    assert staged_db.keys() == direct_db.keys()
    for table in staged_db.keys() - {"campaigns"}:  # the test's campaign: wall-clock stamps
        assert staged_db[table] == direct_db[table], table
    assert {"leads", "phones", "lead_events", "consents", "import_batches"} <= staged_db.keys()
    assert await _staging_tables(pg) == 0  # dropped with each batch's transaction

    # The file exercised what it is meant to: every outcome, re-imports, consents both ways.
    statuses = {r.status for r in staged.rows}
    assert statuses == set(RowStatus)
    assert staged.rows_total > GENERATED_ROWS
    assert staged.phones_dropped_dnc > 0 and staged.leads_updated > 0
    assert staged.consents_granted > 0 and staged.consents_revoked > 0
    notes = {note for r in staged.rows for note in r.notes}
    assert {"shared_with_other_person", "dnc", "consent_revoked_kept"} <= notes
    assert any(r.via == "phone" for r in staged.rows) and any(r.via == "id" for r in staged.rows)
    assert len(staged_db["phones"]) > staged.leads_created
    consents = {(c[1], c[2]): c for c in staged_db["consents"]}
    assert consents[(REVOKES, "voice")][7] is not None  # revoked_at: the file's NO
    assert consents[(KEEPS, "voice")][7] is None
    events = {(e[3], e[4]) for e in staged_db["lead_events"]}
    assert {("reimported", "already_imported"), ("merged", "duplicate")} <= events
    assert {("phone_dropped", "dnc"), ("phone_shared", "shared_with_other_person")} <= events


async def _with_stale_lookup(
    monkeypatch: pytest.MonkeyPatch, step: Callable[[], Awaitable[ImportReport]]
) -> ImportReport:
    """Run ``step`` with the consent lookup blind to the database, as if every consent had
    been written by someone else after the import looked."""

    async def nothing(session: Any, keys: Any) -> dict[Any, Any]:
        return {}

    with monkeypatch.context() as patch:
        patch.setattr(service, "_load_consents", nothing)
        return await step()


async def test_staging_keeps_refusals_that_appeared_meanwhile(
    pg: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A consent written by someone else between the lookup and the write: a grant in the
    file never overrides it, a refusal in the file revokes it (ON CONFLICT). The direct path
    fails that batch instead."""
    campaign_id = await make_campaign(sessionmaker)
    async with sessionmaker.begin() as s:
        s.add(
            Consent(
                person_key="1066000001",
                channel=Channel.VOICE,
                proof="llamada",
                granted_at=datetime(2025, 1, 1, tzinfo=UTC),
                revoked_at=datetime(2025, 2, 1, tzinfo=UTC),
                revoked_reason="pidió no ser llamado",
            )
        )
        s.add(
            Consent(
                person_key="1066000002",
                channel=Channel.VOICE,
                proof="firmado en taller",
                granted_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
    file = tmp_path / "tarde.csv"
    rows = [
        ("1066000001", "Ya Revocó", "3017770001", "SI"),
        ("1066000002", "Dice No", "3017770002", "NO"),
    ]
    _write(
        file,
        [dict(zip(("Cédula", "Nombre", "Celular", "Habeas data"), r, strict=True)) for r in rows],
    )

    # The direct path fails the batch on the consent it did not expect (and writes nothing).
    with pytest.raises(asyncpg.UniqueViolationError):
        await _with_stale_lookup(
            monkeypatch,
            lambda: import_file(sessionmaker, campaign_id, file, now=NOW, postgres_staging=False),
        )
    report = await _with_stale_lookup(
        monkeypatch,
        lambda: import_file(sessionmaker, campaign_id, file, now=NOW),
    )
    assert report.leads_created == 2
    async with sessionmaker() as s:
        consents = {
            (c.person_key, c.channel): c
            for c in await s.scalars(sa.select(Consent).where(Consent.person_key.like("1066%")))
        }
        phones = await s.scalar(sa.select(sa.func.count()).select_from(Phone))
    kept = consents[("1066000001", Channel.VOICE)]
    assert kept.revoked_reason == "pidió no ser llamado"  # the file's SÍ did not override it
    assert consents[("1066000001", Channel.WHATSAPP)].granted
    refused = consents[("1066000002", Channel.VOICE)]
    assert refused.revoked_at is not None and refused.proof == "firmado en taller"
    assert refused.revoked_reason == service._REFUSED_IN_FILE
    assert consents[("1066000002", Channel.WHATSAPP)].revoked_at is not None
    assert phones == 2
    assert await _staging_tables(pg) == 0


async def test_failed_staged_batch_rolls_back_alone_and_a_rerun_finishes_it(
    pg: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch that fails on the server rolls back with its staging tables; the batches
    committed before it are counted, the one in flight is not."""
    _earlier, file, dnc = realistic_file(tmp_path)
    campaign_id = await make_campaign(sessionmaker)
    await _seed(sessionmaker, dnc)
    build = service._Writer.build
    calls: list[int] = []

    def failing_build(self: service._Writer, items: Any, first_id: int) -> service._Batch:
        calls.append(first_id)
        batch = build(self, items, first_id)
        if len(calls) == 3:
            lead_id, at = batch.events[0][:2]
            batch.events.append((lead_id, at, "x", None, "{}"))  # reason is NOT NULL
        return batch

    monkeypatch.setattr(service._Writer, "build", failing_build)
    with pytest.raises(asyncpg.PostgresError):
        await import_file(sessionmaker, campaign_id, file, now=NOW, batch_size=BATCH)
    assert await _staging_tables(pg) == 0
    async with sessionmaker() as s:
        summary = await s.scalar(sa.text("SELECT summary FROM import_batches"))
    assert summary == {"status": "failed", "groups_written": 2 * BATCH}
    async with sessionmaker() as s:
        committed = await s.scalar(sa.select(sa.func.count()).select_from(Lead))

    monkeypatch.setattr(service._Writer, "build", build)
    again = await import_file(sessionmaker, campaign_id, file, now=NOW, batch_size=BATCH)
    async with sessionmaker() as s:
        leads = await s.scalar(sa.select(sa.func.count()).select_from(Lead))
    assert committed and again.leads_updated >= committed  # the committed leads, matched
    assert leads == committed + again.leads_created  # the rest written: nothing lost
