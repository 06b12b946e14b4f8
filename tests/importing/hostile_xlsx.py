"""Hostile XLSX archives for the reader's limits and the fuzz pass (built in memory, small)."""

from __future__ import annotations

import io
import zipfile

import openpyxl

SHEET = "xl/worksheets/sheet1.xml"


def base_members(rows: int = 2) -> dict[str, bytes]:
    """A valid workbook's members (name -> bytes): header plus ``rows - 1`` leads."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["nombre", "telefono"])
    for i in range(rows - 1):
        ws.append([f"Cliente {i}", f"300{1000000 + i}"])
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(buf) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def pack(members: dict[str, bytes], level: int = 9) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def bomb(unpacked_mb: int = 60) -> bytes:
    """A sheet padded with whitespace: a few hundred KB that unpack to ``unpacked_mb`` MB."""
    members = base_members()
    sheet = members[SHEET]
    at = sheet.index(b"<sheetData>") + len(b"<sheetData>")
    members[SHEET] = sheet[:at] + b" " * (unpacked_mb * 1024 * 1024) + sheet[at:]
    return pack(members)


def with_dimension(ref: str) -> bytes:
    members = base_members()
    sheet = members[SHEET].decode()
    start = sheet.index("<dimension ref=")
    end = sheet.index("/>", start) + 2
    members[SHEET] = (sheet[:start] + f'<dimension ref="{ref}" />' + sheet[end:]).encode()
    return pack(members)


def long_shared_string(chars: int) -> bytes:
    members = base_members()
    members["xl/sharedStrings.xml"] = (
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" '
        b'uniqueCount="1"><si><t>' + b"x" * chars + b"</t></si></sst>"
    )
    return pack(members)


def long_inline_cell(chars: int) -> bytes:
    members = base_members()
    members[SHEET] = members[SHEET].replace(b"<t>Cliente 0</t>", b"<t>" + b"y" * chars + b"</t>")
    return pack(members)
