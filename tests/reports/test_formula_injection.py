"""No generated workbook or CSV holds a formula made of user-supplied text (issue 17)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import openpyxl
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.cells import FORMULA_TRIGGERS, csv_field
from dialer.db.models import Campaign, Lead, User
from dialer.importing.report import ImportReport, RowResult, RowStatus, write_report
from dialer.reports.filters import ReportFilter
from dialer.reports.queries import build_report
from dialer.reports.xlsx import workbook_bytes
from tests.reports.fixture import NOW, load_fixture

EVIL = '=HYPERLINK("http://evil.example/x","ver")'
HOSTILE = [EVIL, "+57 cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1+1", "\r=1+1"]
_FORMULA_XML = re.compile(rb"<(?:\w+:)?f[ >/]")


def formula_cells(data: bytes) -> list[str]:
    """Every formula in an XLSX: from the raw sheet XML and as openpyxl reads it."""
    found: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                found += [f"{name}:{m.start()}" for m in _FORMULA_XML.finditer(zf.read(name))]
    wb = openpyxl.load_workbook(io.BytesIO(data))
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            found += [f"{ws.title}!{c.coordinate}" for c in row if c.data_type == "f"]
    return found


def cells_with(data: bytes, text: str) -> int:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return sum(1 for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value == text)


async def test_report_workbook_writes_hostile_names_as_text(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await load_fixture(sessionmaker)
    async with sessionmaker.begin() as s:
        for i, camp in enumerate(await s.scalars(sa.select(Campaign))):
            camp.name = EVIL + " " * i if i == 0 else f"{EVIL}{i}"
        await s.execute(sa.update(User).values(full_name=EVIL))
        await s.execute(sa.update(Lead).values(brand=EVIL, branch=EVIL))
    async with sessionmaker() as s:
        report = await build_report(s, ReportFilter.for_month("2026-10"), now=NOW)
    data = workbook_bytes(report)
    assert formula_cells(data) == []
    assert cells_with(data, EVIL) >= 10  # the hostile text is there, as text


def test_import_reports_write_hostile_text_as_text(tmp_path: Path) -> None:
    report = ImportReport(
        campaign_id=1,
        batch_id=1,
        filename="x.csv",
        sha256="0" * 64,
        file_format="csv",
        encoding="utf-8",
        delimiter=",",
        mapping={},
    )
    report.rows = [
        RowResult(row=i + 2, status=RowStatus.REJECTED, reason=text, notes=[text])
        for i, text in enumerate(HOSTILE)
    ]
    xlsx = write_report(report, tmp_path / "r.xlsx")
    data = xlsx.read_bytes()
    assert formula_cells(data) == []
    assert cells_with(data, EVIL) >= 1
    out = write_report(report, tmp_path / "r.csv")
    with out.open(encoding="utf-8-sig", newline="") as fh:
        fields = [f for row in csv.reader(fh, delimiter=";") for f in row]
    assert "'" + EVIL in fields
    assert not [f for f in fields if f.startswith(FORMULA_TRIGGERS)]


def test_csv_field_prefixes_every_trigger() -> None:
    for text in HOSTILE:
        assert csv_field(text) == "'" + text
    assert csv_field("Ana") == "Ana" and csv_field(-3) == -3
