"""Fuzz pass over the XLSX reader with hostile archives (issue 17).

Seeded (derandomized) hypothesis runs mutate a valid workbook: members dropped or replaced
with garbage, wrong content types, broken or truncated XML, huge or nonsense dimensions,
bombs (against small limits, so each example stays cheap), truncated archives. The reader
must either read rows or raise :class:`ImportFileError` (or one of its subclasses): never
another exception, never a hang.
"""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.importing.errors import ImportFileError, ImportLimitExceeded, ImportTooLarge
from dialer.importing.reader import XlsxLimits, open_table
from tests.importing.hostile_xlsx import SHEET, base_members, pack

LIMITS = XlsxLimits(
    max_unpacked=4 * 1024 * 1024,
    max_member=3 * 1024 * 1024,
    max_ratio=200,
    max_rows=500,
    max_columns=30,
    max_cell_chars=2_000,
)
BASE = base_members(rows=5)
PARTS = sorted(BASE)
CONTENT_TYPES = [
    b"",
    b"<Types/>",
    b"not xml at all",
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Override PartName="/xl/workbook.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Override PartName="/xl/workbook.xml" ContentType="image/png"/></Types>',
]
DIMENSIONS = ["A1", "A1:XFD1048576", "A1:B999999999", "ZZZZ1:A1", "A0:B0", "A1:AE2", "", "1:1"]


def _with_dimension(sheet: bytes, ref: str) -> bytes:
    start = sheet.index(b"<dimension ref=")
    end = sheet.index(b"/>", start) + 2
    return sheet[:start] + f'<dimension ref="{ref}" />'.encode() + sheet[end:]


@st.composite
def hostile_archives(draw: st.DrawFn) -> bytes:
    members = dict(BASE)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["drop", "garbage", "content_types", "dimension", "truncate_xml", "bomb",
                 "long_cell", "many_rows", "wide_row", "extra_member"]
            )
        )  # fmt: skip
        part = draw(st.sampled_from(PARTS))
        if kind == "drop":
            members.pop(part, None)
        elif kind == "garbage":
            members[part] = draw(st.binary(max_size=300))
        elif kind == "content_types":
            members["[Content_Types].xml"] = draw(st.sampled_from(CONTENT_TYPES))
        elif kind == "dimension" and b"<dimension ref=" in members.get(SHEET, b""):
            members[SHEET] = _with_dimension(members[SHEET], draw(st.sampled_from(DIMENSIONS)))
        elif kind == "truncate_xml" and part in members:
            data = members[part]
            members[part] = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
        elif kind == "bomb":
            members[part] = b" " * draw(st.sampled_from([2, 5, 8])) * 1024 * 1024
        elif kind == "long_cell" and SHEET in members:
            members[SHEET] = members[SHEET].replace(b"Cliente 0", b"z" * 5000)
        elif kind == "many_rows" and SHEET in members:
            rows = b"".join(
                b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>x</t></is></c></row>' % (i, i)
                for i in range(10, 10 + draw(st.sampled_from([10, 600])))
            )
            members[SHEET] = members[SHEET].replace(b"</sheetData>", rows + b"</sheetData>")
        elif kind == "wide_row" and SHEET in members:
            cells = b"".join(
                b'<c r="%s1" t="inlineStr"><is><t>h%d</t></is></c>' % (_col(i), i)
                for i in range(1, draw(st.sampled_from([5, 40])))
            )
            members[SHEET] = (
                members[SHEET]
                .replace(b'<row r="1">', b'<row r="1">' + cells, 1)
                .replace(b'<c r="A1" t="inlineStr"><is><t>nombre</t></is></c>', b"", 1)
            )
        elif kind == "extra_member":
            members[draw(st.sampled_from(["xl/sharedStrings.xml", "xl/x/../../evil.xml"]))] = draw(
                st.binary(max_size=200)
            )
    data = pack(members)
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(4, len(data)))]  # a truncated archive
    return data


def _col(n: int) -> bytes:
    out = b""
    while n:
        n, rem = divmod(n - 1, 26)
        out = bytes([65 + rem]) + out
    return out


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=hostile_archives())
def test_hostile_archives_are_read_or_refused_cleanly(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "hostile.xlsx"
    path.write_bytes(data)
    started = time.perf_counter()
    try:
        with open_table(path, LIMITS) as table:
            rows = list(table)
        assert table.headers
        assert len(rows) <= LIMITS.max_rows
        assert all(len(r.cells) <= LIMITS.max_columns for r in rows)
        assert all(len(c) <= LIMITS.max_cell_chars for r in rows for c in r.cells)
    except ImportFileError:
        pass
    assert time.perf_counter() - started < 5.0


def test_each_limit_is_hit_by_some_hostile_archive(tmp_path: Path) -> None:
    """The generator reaches every refusal, so the fuzz pass exercises each check."""
    members = dict(BASE)
    members[SHEET] = members[SHEET].replace(b"<sheetData>", b"<sheetData>" + b" " * 8 * 2**20)

    def sheet(ref: str) -> bytes:
        return pack({**BASE, SHEET: _with_dimension(BASE[SHEET], ref)})

    no_workbook = {k: v for k, v in BASE.items() if k != "xl/workbook.xml"}
    cases = {
        "ratio": (pack(members), ImportTooLarge),
        "rows": (sheet("A1:B999999999"), ImportLimitExceeded),
        "columns": (sheet("A1:XFD1048576"), ImportLimitExceeded),
        "missing workbook": (pack(no_workbook), ImportFileError),
        "garbage sheet": (pack({**BASE, SHEET: b"\x00\x01<<<"}), ImportFileError),
        "wrong content type": (
            pack({**BASE, "[Content_Types].xml": CONTENT_TYPES[3]}),
            ImportFileError,
        ),
    }
    for name, (data, error) in cases.items():
        path = tmp_path / f"{name}.xlsx"
        path.write_bytes(data)
        try:
            with open_table(path, LIMITS) as table:
                list(table)
        except error:
            continue
        raise AssertionError(f"{name}: not refused with {error.__name__}")
