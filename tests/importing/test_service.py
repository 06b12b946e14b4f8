"""End-to-end import into the database: a messy dealer export, upserts, XLSX, the CLI."""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from dialer.db.models import (
    Campaign,
    Consent,
    DncEntry,
    DncSource,
    ImportBatch,
    Lead,
    LeadEvent,
    Phone,
)
from dialer.domain.outcomes import CampaignType, Channel, LeadStatus
from dialer.importing import (
    CampaignNotFound,
    ColumnMapping,
    ImportFileError,
    ImportReport,
    MappingError,
    RowStatus,
    import_file,
    resolve_campaign,
    service,
)
from dialer.importing import report as report_module
from dialer.importing.cli import register
from dialer.importing.report import write_report
from dialer.settings import Settings

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)

HEADER = [
    "Cédula", "Nombre", "Teléfono", "Celular", "Placa", "Marca", "Modelo", "Sede",
    "Fecha última visita", "Autoriza WhatsApp", "Habeas data", "Observación",
]  # fmt: skip

# row number (header = 1) -> cells; expected outcome in EXPECTED below.
MESSY_ROWS: list[list[str]] = [
    ["0012345678", "JOSÉ  PEÑA", "(8) 7401234", "300 123 4567", "abc-123", "Chevrolet", "Spark",
     "Tunja", "15/01/2024", "SI", "SI", "cliente fiel"],
    ["52345678", "maría gómez", "", "3101234567", "", "Renault", "Logan", "Duitama",
     "2023-03-01", "", "Sí", ""],
    ["900.123.456-7", "TRANSPORTES BOYACÁ S.A.S.", "7423456", "", "", "", "", "", "", "", "", ""],
    ["0012345678", "Jose Pena", "", "3001234567.0", "", "", "", "", "", "", "", "dup por cédula"],
    ["79555111", "Pedro Ruiz", "", "320 555 1212", "", "", "", "", "", "", "", ""],
    ["1049000111", "Ana Ruiz", "", "320-555-1212", "", "", "", "", "", "", "", ""],
    ["", "Luis Torres", "3157778899", "", "", "", "", "", "", "", "", ""],
    ["", "Luis Torres", "", "+57 315 777 8899", "", "", "", "", "", "", "", ""],
    ["1030111222", "Carlos Dnc", "", "3009990001", "", "", "", "", "", "", "", ""],
    ["1030111333", "Rosa Salas", "", "3009990002 / 3112223344", "", "", "", "", "", "", "", ""],
    ["1030111444", "Sin Teléfono", "", "", "", "", "", "", "", "", "", ""],
    ["1030111555", "Mal Número", "123", "0000000", "", "", "", "", "", "", "", ""],
    ["1030111666", "No Autoriza", "", "3124445566", "", "", "", "", "", "", "NO", ""],
    ["1030111777", "Revocó Antes", "", "3134445566", "", "", "", "", "", "", "", ""],
    ["1030111888", "Sara Sa", "", "3145556677", "", "", "", "", "", "", "", ""],
    ["1030111999", "Inversiones El Roble Ltda.", "", "3150001122", "", "", "", "", "", "", "", ""],
    ["1031000001", "Formato Viejo", "098 7405555", "", "", "", "", "", "", "", "", ""],
    ["1031000002", "Desde Celular", "03 8 7406666", "", "", "", "", "", "", "", "", "",
     "celda extra"],
]  # fmt: skip

EXPECTED: dict[int, tuple[RowStatus, str]] = {
    2: (RowStatus.IMPORTED, ""),
    3: (RowStatus.IMPORTED, ""),
    4: (RowStatus.EXCLUDED, "corporate"),
    5: (RowStatus.MERGED, "duplicate"),
    6: (RowStatus.IMPORTED, ""),
    7: (RowStatus.IMPORTED, ""),  # its only phone is also row 6's (other id): shared
    8: (RowStatus.IMPORTED, ""),
    9: (RowStatus.MERGED, "duplicate"),
    10: (RowStatus.EXCLUDED, "dnc"),
    11: (RowStatus.IMPORTED, ""),
    12: (RowStatus.REJECTED, "no_phone"),
    13: (RowStatus.REJECTED, "invalid_phone"),
    14: (RowStatus.EXCLUDED, "no_consent"),
    15: (RowStatus.EXCLUDED, "no_consent"),
    16: (RowStatus.IMPORTED, ""),
    17: (RowStatus.EXCLUDED, "corporate"),
    18: (RowStatus.IMPORTED, ""),
    19: (RowStatus.IMPORTED, ""),
}


def write_messy_csv(path: Path) -> Path:
    """Semicolon-delimited, Latin-1 (cp1252) encoded, quoted fields: a typical Excel export."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(HEADER)
    writer.writerows(MESSY_ROWS)
    path.write_bytes(buf.getvalue().encode("cp1252"))
    return path


async def make_campaign(sm: async_sessionmaker[AsyncSession], name: str = "Recuperación") -> int:
    async with sm.begin() as s:
        campaign = Campaign(name=name, type=CampaignType.RECUPERACION)
        s.add(campaign)
        await s.flush()
        return campaign.id


async def seed_lists(sm: async_sessionmaker[AsyncSession]) -> None:
    async with sm.begin() as s:
        s.add(DncEntry(e164="+573009990001", source=DncSource.RNE, added_at=NOW))
        s.add(DncEntry(e164="+573009990002", source=DncSource.INTERNAL, added_at=NOW))
        s.add(
            Consent(
                person_key="1030111777",
                channel=Channel.VOICE,
                proof="llamada 2025-11-02",
                granted_at=datetime(2025, 1, 1, tzinfo=UTC),
                revoked_at=datetime(2025, 11, 2, tzinfo=UTC),
                revoked_reason="pidió no ser llamado",
            )
        )


async def _leads(sm: async_sessionmaker[AsyncSession], campaign_id: int) -> dict[int, Lead]:
    async with sm() as s:
        rows = await s.scalars(sa.select(Lead).where(Lead.campaign_id == campaign_id))
        return {lead.id: lead for lead in rows}


async def _phones(sm: async_sessionmaker[AsyncSession], lead_id: int) -> list[tuple[str, str]]:
    async with sm() as s:
        rows = await s.execute(
            sa.select(Phone.e164, Phone.kind)
            .where(Phone.lead_id == lead_id)
            .order_by(Phone.position)
        )
        return [(e, k) for e, k in rows]


def _by_row(report: ImportReport) -> dict[int, tuple[RowStatus, str]]:
    return {r.row: (r.status, r.reason) for r in report.rows}


async def test_messy_csv_import(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    campaign_id = await make_campaign(sessionmaker)
    await seed_lists(sessionmaker)
    path = write_messy_csv(tmp_path / "clientes.csv")

    report = await import_file(sessionmaker, campaign_id, path, now=NOW, batch_size=4)

    assert report.encoding == "cp1252" and report.delimiter == ";"
    assert _by_row(report) == EXPECTED
    rows = {r.row: r for r in report.rows}
    assert rows[5].into_row == 2 and rows[5].via == "id"
    assert rows[9].into_row == 8 and rows[9].via == "phone"
    assert "shared_with_other_person" in rows[7].notes
    assert "dnc" in rows[11].notes
    assert rows[4].detail == "NIT" and rows[17].detail == "INVERSIONES"
    assert "extra_cells" in rows[19].notes
    assert all(r.message for r in report.rows)
    assert "fila 2" in rows[5].message

    leads = await _leads(sessionmaker, campaign_id)
    assert len(leads) == report.leads_created == 14
    jose = leads[rows[2].lead_id or 0]
    assert jose.customer_name == "José Peña"
    assert jose.national_id == "0012345678"  # leading zeros survive
    assert jose.dedupe_key == "id:0012345678"
    assert jose.plate == "ABC123" and jose.branch == "Tunja"
    assert jose.last_visit_date == date(2024, 1, 15)
    assert jose.extra == {"Observación": "cliente fiel"}
    assert jose.import_batch_id == report.batch_id
    assert await _phones(sessionmaker, jose.id) == [
        ("+573001234567", "mobile"),
        ("+576087401234", "landline"),  # old Tunja landline -> 608
    ]
    assert await _phones(sessionmaker, rows[18].lead_id or 0) == [("+576087405555", "landline")]
    assert await _phones(sessionmaker, rows[19].lead_id or 0) == [("+576087406666", "landline")]
    assert await _phones(sessionmaker, rows[11].lead_id or 0) == [("+573112223344", "mobile")]
    # a phone shared by two people (rows 6 and 7, two ids): both leads, the phone on both
    assert rows[6].lead_id != rows[7].lead_id
    for row in (6, 7):
        assert await _phones(sessionmaker, rows[row].lead_id or 0) == [("+573205551212", "mobile")]
    assert "ambas" in rows[7].message
    luis = leads[rows[8].lead_id or 0]
    assert luis.dedupe_key == "tel:+573157778899" and luis.national_id is None

    excluded = {lead.status_reason for lead in leads.values() if lead.status is LeadStatus.EXCLUDED}
    assert excluded == {"corporate", "dnc", "no_consent"}
    assert leads[rows[10].lead_id or 0].status is LeadStatus.EXCLUDED
    assert await _phones(sessionmaker, rows[10].lead_id or 0) == []  # DNC phone dropped

    async with sessionmaker() as s:
        events = (await s.execute(sa.select(LeadEvent.kind, LeadEvent.reason))).all()
        consents = {(c.person_key, c.channel): c for c in await s.scalars(sa.select(Consent))}
        batch = await s.get(ImportBatch, report.batch_id)
    kinds = sorted((k, r) for k, r in events)
    assert kinds.count(("excluded", "corporate")) == 2
    assert ("excluded", "dnc") in kinds and kinds.count(("excluded", "no_consent")) == 2
    assert kinds.count(("merged", "duplicate")) == 2
    assert ("phone_dropped", "dnc") in kinds
    # Consents from the authorisation columns, with proof pointing at the file and row.
    assert consents[("0012345678", Channel.VOICE)].proof == "import:clientes.csv:2"
    assert consents[("0012345678", Channel.WHATSAPP)].granted
    assert consents[("52345678", Channel.VOICE)].granted
    assert ("52345678", Channel.WHATSAPP) in consents  # habeas data covers WhatsApp
    refused = consents[("1030111666", Channel.VOICE)]
    assert not refused.granted and refused.revoked_at is not None
    assert consents[("1030111777", Channel.VOICE)].revoked_at is not None  # kept revoked
    assert batch is not None and batch.rows_total == 18
    assert batch.rows_imported == 9 and batch.rows_merged == 2 and batch.rows_rejected == 7
    assert batch.summary["status"] == "done"
    assert batch.summary["rejected"] == {"invalid_phone": 1, "no_phone": 1}


async def test_concurrent_lead_writer_moves_the_new_ids(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite: batches are built with predicted lead ids while the previous one is written;
    a lead inserted by someone else in between must not collide, and the report follows."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the predicted-id path is SQLite only")
    campaign_id = await make_campaign(sessionmaker)
    other_id = await make_campaign(sessionmaker, "Otra")
    await seed_lists(sessionmaker)
    path = write_messy_csv(tmp_path / "clientes.csv")
    database = engine.url.database
    assert database
    build = service._Writer.build
    calls: list[int] = []

    def build_after_intruder(self: service._Writer, items: Any, first_id: int) -> service._Batch:
        if not calls:  # the first batch's predicted ids are taken before it is written
            with sqlite3.connect(database, timeout=30) as conn:
                conn.execute(
                    "INSERT INTO leads (campaign_id, dedupe_key, customer_name, id_type, status,"
                    " priority, attempts, is_callback, extra, created_at, updated_at) VALUES"
                    " (?, 'id:intruso', 'Intruso', 'CC', 'new', 0, 0, 0, '{}', ?, ?)",
                    (other_id, "2026-03-02 14:00:00.000000", "2026-03-02 14:00:00.000000"),
                )
        calls.append(first_id)
        return build(self, items, first_id)

    monkeypatch.setattr(service._Writer, "build", build_after_intruder)
    report = await import_file(sessionmaker, campaign_id, path, now=NOW, batch_size=4)

    assert len(calls) == 4  # 16 groups, 4 per batch
    assert _by_row(report) == EXPECTED
    leads = await _leads(sessionmaker, campaign_id)
    assert len(leads) == report.leads_created == 14
    assert {r.lead_id for r in report.rows if r.lead_id is not None} == set(leads)
    rows = {r.row: r for r in report.rows}
    assert leads[rows[2].lead_id or 0].customer_name == "José Peña"
    assert leads[rows[19].lead_id or 0].national_id == "1031000002"
    assert await _phones(sessionmaker, rows[18].lead_id or 0) == [("+576087405555", "landline")]
    intruder = await _leads(sessionmaker, other_id)
    assert [lead.customer_name for lead in intruder.values()] == ["Intruso"]
    assert min(leads) > min(intruder)


async def test_async_writer_path_matches(
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The in-session writer (PostgreSQL, or SQLite without a file a second connection can
    open) gives the same report and leads as the SQLite writer thread."""
    monkeypatch.setattr(service, "_sqlite_file", lambda url: None)
    campaign_id = await make_campaign(sessionmaker)
    await seed_lists(sessionmaker)
    path = write_messy_csv(tmp_path / "clientes.csv")
    report = await import_file(sessionmaker, campaign_id, path, now=NOW, batch_size=4)
    assert _by_row(report) == EXPECTED
    leads = await _leads(sessionmaker, campaign_id)
    assert len(leads) == report.leads_created == 14
    assert {r.lead_id for r in report.rows if r.lead_id is not None} == set(leads)
    rows = {r.row: r for r in report.rows}
    assert await _phones(sessionmaker, rows[2].lead_id or 0) == [
        ("+573001234567", "mobile"),
        ("+576087401234", "landline"),
    ]
    async with sessionmaker() as s:
        refused = (
            await s.scalars(
                sa.select(Consent).where(
                    Consent.person_key == "1030111666", Consent.channel == Channel.VOICE
                )
            )
        ).one()
    assert not refused.granted and refused.revoked_at is not None


def test_renumber_gives_new_leads_the_sequence_ids() -> None:
    """PostgreSQL's sequence may hand out non-contiguous ids: rows built with ``first + n``
    move to the ids given, rows of existing leads stay."""
    batch = service._Batch(
        groups=3,
        first_id=100,
        new_leads=2,
        leads=[(100, "a"), (101, "b")],
        phones=[(100, "+573001"), (7, "+573002"), (101, "+573003")],
        events=[(101, "merged"), (7, "reimported")],
        consents=[],
        revocations=[],
        new_results=[
            report_module.RowResult(2, RowStatus.IMPORTED, lead_id=100),
            report_module.RowResult(3, RowStatus.MERGED, lead_id=101),
        ],
    )
    out = service._Writer._renumber(batch, [100, 205])
    assert out.leads == [(100, "a"), (205, "b")]
    assert out.phones == [(100, "+573001"), (7, "+573002"), (205, "+573003")]
    assert out.events == [(205, "merged"), (7, "reimported")]
    assert [r.lead_id for r in out.new_results] == [100, 205]


async def test_failed_batch_marks_the_import_failed(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch that fails rolls back alone: earlier batches stay, the ImportBatch says how many
    groups were written, and re-importing completes the file."""
    campaign_id = await make_campaign(sessionmaker)
    await seed_lists(sessionmaker)
    path = write_messy_csv(tmp_path / "clientes.csv")
    build = service._Writer.build
    calls: list[int] = []

    def failing_build(self: service._Writer, items: Any, first_id: int) -> service._Batch:
        calls.append(first_id)
        batch = build(self, items, first_id)
        if len(calls) == 3:
            batch.phones.append((batch.phones[0][0], None, "mobile", 99))  # NOT NULL e164
        return batch

    monkeypatch.setattr(service._Writer, "build", failing_build)
    errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError, sa.exc.DBAPIError)
    if engine.dialect.name == "postgresql":  # COPY runs on the raw asyncpg connection
        import asyncpg  # type: ignore[import-untyped]

        errors = (*errors, asyncpg.PostgresError)
    with pytest.raises(errors):
        await import_file(sessionmaker, campaign_id, path, now=NOW, batch_size=4)
    async with sessionmaker() as s:
        batch = (await s.scalars(sa.select(ImportBatch))).one()
        written = await s.scalar(
            sa.select(sa.func.count()).select_from(Lead).where(Lead.campaign_id == campaign_id)
        )
    assert batch.summary == {"status": "failed", "groups_written": 8}
    assert written is not None and 0 < written < 14

    monkeypatch.setattr(service._Writer, "build", build)
    again = await import_file(sessionmaker, campaign_id, path, now=NOW, batch_size=4)
    assert len(await _leads(sessionmaker, campaign_id)) == 14
    assert again.leads_created == 14 - written


async def test_reimport_is_idempotent(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    campaign_id = await make_campaign(sessionmaker)
    await seed_lists(sessionmaker)
    path = write_messy_csv(tmp_path / "clientes.csv")
    first = await import_file(sessionmaker, campaign_id, path, now=NOW)

    async def snapshot() -> tuple[int, int, int]:
        async with sessionmaker() as s:
            return (
                await s.scalar(sa.select(sa.func.count()).select_from(Lead)) or 0,
                await s.scalar(sa.select(sa.func.count()).select_from(Phone)) or 0,
                await s.scalar(sa.select(sa.func.count()).select_from(Consent)) or 0,
            )

    before = await snapshot()
    second = await import_file(sessionmaker, campaign_id, path, now=NOW)
    assert await snapshot() == before
    assert second.leads_created == 0 and second.phones_added == 0
    assert second.imported == 0 and second.already_imported == first.imported + first.excluded_total
    assert second.merged == first.merged and second.rejected == first.rejected
    firsts = {r.row: r.lead_id for r in first.rows}
    assert all(r.lead_id == firsts[r.row] for r in second.rows)


async def test_second_file_upserts_and_appends_phones(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """Tab-delimited UTF-8 with BOM, other headers, rows matching leads already imported."""
    campaign_id = await make_campaign(sessionmaker)
    first = await import_file(
        sessionmaker, campaign_id, write_messy_csv(tmp_path / "a.csv"), now=NOW
    )
    maria = next(r.lead_id for r in first.rows if r.row == 3)
    text = (
        "CEDULA\tNOMBRES\tAPELLIDOS\tTEL\tMOVIL\tFECHA DE COMPRA\n"
        "52.345.678\tMaría\tGómez\t\t3201110000\t05/02/2026\n"  # known id: new phone appended
        "\tLuis\tTorres\t315 777 8899\t\t\n"  # known phone, no id
        "1099888777\tNueva\tPersona\t\t3209998877\t2026-02-01\n"
    )
    path = tmp_path / "b.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    report = await import_file(sessionmaker, campaign_id, path, now=NOW)
    assert report.delimiter == "\t" and report.encoding == "utf-8-sig"
    assert _by_row(report) == {
        2: (RowStatus.ALREADY_IMPORTED, "already_imported"),
        3: (RowStatus.ALREADY_IMPORTED, "already_imported"),
        4: (RowStatus.IMPORTED, ""),
    }
    assert report.rows[0].lead_id == maria
    assert [e for e, _ in await _phones(sessionmaker, maria or 0)] == [
        "+573101234567",
        "+573201110000",
    ]
    leads = await _leads(sessionmaker, campaign_id)
    new = leads[report.rows[2].lead_id or 0]
    assert new.customer_name == "Nueva Persona" and new.event_date == date(2026, 2, 1)


async def test_xlsx_import_keeps_text(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    campaign_id = await make_campaign(sessionmaker)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Documento", "Cliente", "Celular", "Teléfono 2", "Fecha de servicio", "Año"])
    sheet.append(
        [12345678, "ANA MARÍA DE LA TORRE", 3001112233, 7401299, datetime(2026, 2, 27), 2019]
    )
    sheet.append(["0098765", "Pedro Páramo", 3001112244.0, None, 46000, "2015"])
    sheet.append([4567, "Inmobiliaria S. A.", "3001112255", "", "", ""])
    sheet["A4"].number_format = "0000000"  # stored as number, shown with leading zeros
    path = tmp_path / "export.xlsx"
    workbook.save(path)

    report = await import_file(sessionmaker, campaign_id, path, now=NOW)
    assert report.file_format == "xlsx"
    assert _by_row(report) == {
        2: (RowStatus.IMPORTED, ""),
        3: (RowStatus.IMPORTED, ""),
        4: (RowStatus.EXCLUDED, "corporate"),
    }
    leads = await _leads(sessionmaker, campaign_id)
    ana = leads[report.rows[0].lead_id or 0]
    assert ana.customer_name == "Ana María de la Torre"
    assert ana.national_id == "12345678" and ana.vehicle_year == 2019
    assert ana.event_date == date(2026, 2, 27)
    assert await _phones(sessionmaker, ana.id) == [
        ("+573001112233", "mobile"),
        ("+576087401299", "landline"),
    ]
    pedro = leads[report.rows[1].lead_id or 0]
    assert pedro.national_id == "0098765" and pedro.event_date == date(2025, 12, 9)
    assert leads[report.rows[2].lead_id or 0].national_id == "0004567"

    out = write_report(report, tmp_path / "reporte.xlsx")
    rows = list(openpyxl.load_workbook(out, read_only=True).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("fila", "estado", "motivo") and len(rows) == 4


async def test_errors_are_typed(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    campaign_id = await make_campaign(sessionmaker)
    empty = tmp_path / "vacio.csv"
    empty.write_bytes(b"")
    with pytest.raises(ImportFileError) as info:
        await import_file(sessionmaker, campaign_id, empty, now=NOW)
    assert "vacío" in info.value.message_es and "empty" in info.value.message_en
    no_phone = tmp_path / "sin_tel.csv"
    no_phone.write_text("nombre,placa\nAna,ABC123\n", encoding="utf-8")
    with pytest.raises(MappingError):
        await import_file(sessionmaker, campaign_id, no_phone, now=NOW)
    with pytest.raises(CampaignNotFound):
        await resolve_campaign(sessionmaker, "no existe")
    assert await resolve_campaign(sessionmaker, "recuperación") == campaign_id
    assert await resolve_campaign(sessionmaker, str(campaign_id)) == campaign_id
    async with sessionmaker() as s:
        assert await s.scalar(sa.select(sa.func.count()).select_from(ImportBatch)) == 0


async def test_import_restores_the_garbage_collector(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """The cyclic GC is paused during an import and left as it was, also after an error."""
    campaign_id = await make_campaign(sessionmaker)
    path = write_messy_csv(tmp_path / "clientes.csv")
    empty = tmp_path / "vacio.csv"
    empty.write_bytes(b"")
    assert gc.isenabled()
    await import_file(sessionmaker, campaign_id, path, now=NOW)
    assert gc.isenabled()
    with pytest.raises(ImportFileError):
        await import_file(sessionmaker, campaign_id, empty, now=NOW)
    assert gc.isenabled()
    gc.disable()
    try:
        await import_file(sessionmaker, campaign_id, path, now=NOW)
        assert not gc.isenabled()  # an application that runs without it keeps it off
    finally:
        gc.enable()


async def test_custom_mapping_and_assumed_consent(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    campaign_id = await make_campaign(sessionmaker)
    path = tmp_path / "raro.csv"
    path.write_text("Doc|Nom|Numero casa|Notas\n1040999888|ana|7401234|x\n", encoding="utf-8")
    mapping = ColumnMapping.from_dict(
        {
            "columns": {
                "Doc": "national_id",
                "Nom": "name",
                "Numero casa": "phone",
                "Notas": "ignore",
            }
        }
    )
    report = await import_file(
        sessionmaker, campaign_id, path, mapping, now=NOW, assume_consent="habeas data en taller"
    )
    assert _by_row(report) == {2: (RowStatus.IMPORTED, "")}
    assert report.mapping == {
        "Doc": "national_id", "Nom": "name", "Numero casa": "phone", "Notas": "ignore"
    }  # fmt: skip
    async with sessionmaker() as s:
        consents = list(await s.scalars(sa.select(Consent)))
        lead = await s.get(Lead, report.rows[0].lead_id)
    assert {c.channel for c in consents} == {Channel.VOICE, Channel.WHATSAPP}
    assert all(c.granted and "habeas data en taller" in c.proof for c in consents)
    assert lead is not None and lead.extra == {}


async def test_cli_import(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(sessionmaker, "Satisfacción")
    path = write_messy_csv(tmp_path / "clientes.csv")
    db_settings = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": _url(sessionmaker)})}
    )
    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = db_settings

    register(app)
    runner = CliRunner()
    # The CLI runs its own event loop; run it in a worker thread from this async test.
    result = await asyncio.to_thread(
        runner.invoke, app, ["import", str(path), "--campaign", "satisfacción"]
    )
    assert result.exit_code == 0, result.output
    assert "importados" in result.output
    report_file = tmp_path / "clientes.reporte.csv"
    lines = report_file.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("fila;estado;motivo") and len(lines) == 19
    assert "0012345678" not in report_file.read_text(encoding="utf-8-sig")  # no personal data
    async with sessionmaker() as s:
        count = await s.scalar(
            sa.select(sa.func.count()).select_from(Lead).where(Lead.campaign_id == campaign_id)
        )
    assert count == 14

    missing = await asyncio.to_thread(
        runner.invoke, app, ["import", str(path), "--campaign", "Nada"]
    )
    assert missing.exit_code == 2 and "no existe" in missing.output


def _url(sm: async_sessionmaker[AsyncSession]) -> str:
    bind: AsyncEngine = sm.kw["bind"]
    return bind.url.render_as_string(hide_password=False)


PEOPLE_ROWS: list[list[str]] = [
    # Cédula, Nombre, Teléfono, Celular, Fecha última visita
    ["1030200001", "Ana Uno", "", "3101234501", "2024-01-01"],  # 2: new, eligible
    ["1030200001", "Ana Uno", "", "3101234501", ""],  # 3: merged into 2
    ["1030200002", "Beto Dos", "", "3101234502", "2025-12-01"],  # 4: new, visited 91 days ago
    ["1030200003", "Caro Tres", "", "3101234503", ""],  # 5: new, no visit date
    ["1030200004", "Transportes Cuatro S.A.S.", "", "3101234504", "2020-01-01"],  # 6: corporate
    ["1030200004", "Transportes Cuatro S.A.S.", "", "3101234504", ""],  # 7: merged into 6
    ["1030200005", "Eva Cinco", "123", "", "2020-01-01"],  # 8: rejected, invalid phone
    ["1030200005", "Eva Cinco", "", "999", ""],  # 9: the same person, rejected again
    ["1030200006", "Fabio Seis", "", "3101234502", "2025-01-01"],  # 10: Beto's phone: shared, new
    ["1030200007", "Gina Siete", "", "3101234507", "2025-03-02"],  # 11: exactly 365 days: not yet
    ["1030200008", "Hugo Ocho", "", "3101234508", "2025-03-01"],  # 12: 366 days: eligible
]


def _people_csv(path: Path) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerow(["Cédula", "Nombre", "Teléfono", "Celular", "Fecha última visita"])
    writer.writerows(PEOPLE_ROWS)
    path.write_bytes(buf.getvalue().encode("cp1252"))
    return path


async def test_rows_and_people_are_counted_apart_with_the_recovery_denominator(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    campaign_id = await make_campaign(sessionmaker)
    path = _people_csv(tmp_path / "recuperacion.csv")

    report = await import_file(sessionmaker, campaign_id, path, now=NOW)
    summary = report.summary()
    assert summary["rows"] == {
        "total": 11,
        "imported": 6,
        "already_imported": 0,
        "merged": 2,
        "excluded": 1,
        "rejected": 2,
    }
    # the duplicate rows of the corporate and the rejected person count once, under the reason
    assert summary["people"] == {
        "total": 8,
        "new": 6,
        "updated": 0,
        "excluded": {"corporate": 1},
        "rejected": {"invalid_phone": 1},
    }
    assert summary["recovery"] == {
        "as_of": "2026-03-02",
        "min_days_since_visit": 365,
        "eligible": 3,  # rows 2, 10, 12
        "not_yet": 2,  # rows 4, 11
        "no_visit_date": 1,  # row 5
    }
    async with sessionmaker() as s:
        batch = await s.get(ImportBatch, report.batch_id)
    assert batch is not None and batch.summary["recovery"]["eligible"] == 3
    assert batch.summary["people"]["new"] == 6

    again = (await import_file(sessionmaker, campaign_id, path, now=NOW)).summary()
    assert again["people"] == {
        "total": 8,
        "new": 0,
        "updated": 6,
        "excluded": {"corporate": 1},
        "rejected": {"invalid_phone": 1},
    }
    assert again["recovery"]["eligible"] == 3


async def test_no_recovery_count_outside_recovery_campaigns(
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with sessionmaker.begin() as s:
        campaign = Campaign(name="Satisfacción", type=CampaignType.SATISFACCION)
        s.add(campaign)
        await s.flush()
        campaign_id = campaign.id
    report = await import_file(sessionmaker, campaign_id, _people_csv(tmp_path / "s.csv"), now=NOW)
    assert report.summary()["recovery"] is None


def test_summary_prints_people_apart_from_rows(tmp_path: Path) -> None:
    from rich.console import Console

    report = ImportReport(1, 1, "f.csv", "", "csv", None, None, {})
    report.people_new, report.people_excluded["corporate"] = 3, 2
    report.recovery = report_module.RecoveryCount(date(2026, 3, 2), 365, eligible=2)
    console = Console(record=True, width=200)
    report_module.print_summary(report, console)
    text = console.export_text()
    assert "Personas" in text and "nuevas" in text and "Cliente corporativo" in text
    assert "2 personas elegibles" in text and "GSC-PRO-04" in text


def test_duration_line_never_shows_a_rate_for_zero_seconds() -> None:
    """Issue 18: "0.0 s (219 filas/s)" is gone; es-CO separators."""
    from dialer.importing.report import duration_es

    assert duration_es(0.04, 219) == "menos de 0,1 s"
    assert duration_es(2.4, 100_000) == "2,4 s (41.667 filas/s)"
