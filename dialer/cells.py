"""User-supplied text in generated spreadsheets, written as text (no formula injection).

Every XLSX and CSV writer goes through these helpers (the monthly reports, the per-row import
reports, any export):

- XLSX: a string is always a *text* cell (``t="inlineStr"``/shared string), never a formula,
  even when it starts with ``=``; ``quotePrefix`` keeps it text when someone edits the cell.
- CSV: a spreadsheet program evaluates a field starting with ``=``, ``+``, ``-``, ``@``, tab or
  carriage return, so such a field gets a leading apostrophe (OWASP's advice).

``tests/reports/test_formula_injection.py`` walks every workbook Marcador generates for formula
cells.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["FORMULA_TRIGGERS", "csv_field", "csv_row", "text_cell", "write_only_row"]

#: First characters that make a spreadsheet read a CSV field as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_field(value: Any) -> Any:
    """A CSV field a spreadsheet will not evaluate (non-text values pass unchanged)."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_field(v) for v in values]


def _as_text(cell: Any, value: Any) -> Any:
    if isinstance(value, str) and cell.data_type == "f":
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


def text_cell(ws: Any, row: int, column: int, value: Any) -> Any:
    """``ws.cell(row, column, value)`` that never makes a formula out of a string."""
    cell = ws.cell(row=row, column=column)
    cell.value = value
    return _as_text(cell, value)


def write_only_row(ws: Any, values: Iterable[Any]) -> list[Any]:
    """Cells for ``ws.append`` on a write-only sheet; strings stay text."""
    from openpyxl.cell import WriteOnlyCell

    return [_as_text(WriteOnlyCell(ws, value=v), v) for v in values]
