"""Reading CSV/XLSX lead lists as text rows."""

from __future__ import annotations

import csv
import io
import string
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.importing.errors import ImportFileError
from dialer.importing.reader import cell_text, open_table

ROWS = [
    ["Cédula", "Nombre", "Teléfono", "Observación"],
    ["0012345678", "José Peña", "(8) 7401234", 'dijo "llamar"; tarde, por favor'],
    ["52345678", "Ñoño Suárez", "300 123 4567", "línea 1\nlínea 2"],
]


def _write(path: Path, delimiter: str, encoding: str, bom: bool = False) -> Path:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(ROWS)
    data = buf.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize(
    ("encoding", "bom", "detected"),
    [
        ("utf-8", False, "utf-8"),
        ("utf-8", True, "utf-8-sig"),
        ("cp1252", False, "cp1252"),
        ("utf-16", False, "utf-16"),
    ],
)
def test_csv_delimiters_and_encodings(
    tmp_path: Path, delimiter: str, encoding: str, bom: bool, detected: str
) -> None:
    path = _write(tmp_path / "f.csv", delimiter, encoding, bom)
    with open_table(path) as table:
        rows = list(table)
        assert table.format == "csv"
        assert table.delimiter == delimiter and table.encoding == detected
        assert table.headers == ROWS[0]
    assert [r.cells for r in rows] == ROWS[1:]
    assert [r.number for r in rows] == [2, 3]


def test_latin1_bytes_outside_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes("nombre;teléfono\nJosé;3001234567\n".encode("latin-1") + b"x\x81;1\n")
    with open_table(path) as table:
        rows = list(table)
        assert table.encoding == "latin-1"
    assert rows[0].cells == ["José", "3001234567"]


def test_blank_lines_and_short_rows(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("\n\nnombre,telefono,placa\n\nAna,3001234567\n,,\nLuis,3109876543,ABC123\n")
    with open_table(path) as table:
        assert table.header_row == 3
        rows = list(table)
    assert [(r.number, r.cells) for r in rows] == [
        (5, ["Ana", "3001234567"]),
        (7, ["Luis", "3109876543", "ABC123"]),
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"  \r\n\r\n", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (b"3001234567,1049612345\n3109876543,52345678\n", "no_header"),
        (b",,,\n", "no_header"),
        (b"\x00\x01\x02binary\x00", "not_tabular"),
        (b"%PDF-1.4 whatever", "not_tabular"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "xls"),
        (b"PK\x03\x04 not really a zip", "bad_xlsx"),
    ],
)
def test_bad_files_raise_typed_errors(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError) as info:
        open_table(path)
    assert info.value.details["reason"] == reason
    assert info.value.message_es and info.value.message_en
    assert " / " in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError):
        open_table(tmp_path / "nope.csv")


def test_xlsx_cells_as_text(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Cédula", "Celular", "Fecha compra", "Valor", "Fijo", "Activo"])
    sheet.append([1049612345, 3001234567.0, datetime(2026, 2, 27), 1234.5, 7401234, True])
    sheet.append(["0012345", 3.5e15, date(2025, 1, 2), 1e-7, None, False])
    sheet.append([12345, None, datetime(2026, 2, 27, 10, 30), None, None, None])
    sheet["A4"].number_format = "0000000000"
    sheet.append([])
    path = tmp_path / "f.xlsx"
    workbook.save(path)
    with open_table(path) as table:
        assert table.format == "xlsx" and table.headers[0] == "Cédula"
        rows = [(r.number, r.cells) for r in table]
    assert rows == [
        (2, ["1049612345", "3001234567", "2026-02-27", "1234.5", "7401234", "SI"]),
        (3, ["0012345", "3500000000000000", "2025-01-02", "0.0000001", "", "NO"]),
        (4, ["0000012345", "", "2026-02-27 10:30:00"]),
    ]


def test_empty_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "f.xlsx"
    openpyxl.Workbook().save(path)
    with pytest.raises(ImportFileError) as info:
        open_table(path)
    assert info.value.details["reason"] == "empty"


def test_cell_text() -> None:
    assert cell_text(None) == ""
    assert cell_text(3001234567.0) == "3001234567"
    assert cell_text(1.5e20) == "150000000000000000000"
    assert cell_text(float("nan")) == ""
    assert cell_text(42, "000000") == "000042"
    assert cell_text("  texto ") == "texto"


_CELL = st.text(alphabet=string.printable + "áéíóúñÑ;|\t\"'", max_size=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(_CELL, min_size=0, max_size=6), min_size=0, max_size=8),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]),
    junk=st.binary(max_size=8),
)
def test_reader_fuzz_never_crashes(
    tmp_path: Path, rows: list[list[str]], delimiter: str, encoding: str, junk: bytes
) -> None:
    """Random and malformed files either read as rows or raise ImportFileError."""
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(rows)
    data = buf.getvalue().encode(encoding, errors="replace") + junk
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        with open_table(path) as table:
            numbers = [r.number for r in table]
            assert all(h for h in table.headers)
    except ImportFileError as exc:
        assert exc.message_es and exc.message_en
    else:
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        assert all(n > table.header_row for n in numbers)
