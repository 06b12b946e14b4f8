"""Read lead lists (CSV or XLSX) as rows of text, streaming.

Every cell comes out as a stripped ``str`` so that leading zeros survive: numbers stored as
numbers in Excel are rendered without ``.0`` or scientific notation (and with the zero padding
of a ``0000000000`` number format), dates as ISO ``yyyy-mm-dd``.

CSV: the delimiter is sniffed among ``,`` ``;`` tab and ``|``; the encoding is UTF-8 (with or
without BOM), UTF-16 with BOM (Excel's "Unicode text"), else Windows-1252, else Latin-1.

The format is detected from the file's bytes, not its name. Anything that is neither CSV nor
XLSX, an empty file or a file without a header raises :class:`ImportFileError`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from dialer.importing.errors import ImportFileError

__all__ = ["CANDIDATE_DELIMITERS", "RawRow", "TableReader", "cell_text", "open_table"]

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_CHARS = 64 * 1024
_CHUNK = 1024 * 1024
_HEADERISH = re.compile(r"[^\W\d_]", re.UNICODE)  # a header cell has at least one letter
_ZERO_FORMAT = re.compile(r"^0+$")

FileFormat = Literal["csv", "xlsx"]


@dataclass(frozen=True, slots=True)
class RawRow:
    """One data row: its number as the user sees it (header = its own row number) and cells."""

    number: int
    cells: list[str]


def cell_text(value: Any, number_format: str | None = None) -> str:
    """Render one spreadsheet value as the text a person would read in the cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "SI" if value else "NO"
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = _float_text(value)
    elif isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    elif isinstance(value, date | time):
        return value.isoformat()
    elif isinstance(value, Decimal):
        text = format(value.normalize(), "f") if value.is_finite() else str(value)
    else:
        return str(value).strip()
    if number_format and _ZERO_FORMAT.match(number_format) and text.isdigit():
        text = text.zfill(len(number_format))
    return text


def _float_text(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):  # NaN / inf
        return ""
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    try:
        text = format(Decimal(repr(value)), "f")
    except InvalidOperation:  # pragma: no cover - repr of a finite float is always valid
        return repr(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _detect_format(path: Path) -> FileFormat:
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        raise ImportFileError(
            f"No se pudo abrir el archivo: {exc.strerror or exc}.",
            f"Cannot open the file: {exc.strerror or exc}.",
            path=str(path),
        ) from exc
    if not head.strip(b" \t\r\n\xef\xbb\xbf\x00\xff\xfe"):
        raise ImportFileError(
            "El archivo está vacío.", "The file is empty.", path=str(path), reason="empty"
        )
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(
            "Formato Excel antiguo (.xls) no soportado: guarde el archivo como .xlsx o .csv.",
            "Old Excel format (.xls) is not supported: save the file as .xlsx or .csv.",
            path=str(path),
            reason="xls",
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "csv"  # UTF-16 text (Excel "Unicode text")
    if b"\x00" in head or head.startswith((b"%PDF", b"\x89PNG", b"\x1f\x8b", b"GIF8", b"\xff\xd8")):
        raise ImportFileError(
            "El archivo no es CSV ni XLSX (parece binario).",
            "The file is neither CSV nor XLSX (it looks binary).",
            path=str(path),
            reason="not_tabular",
        )
    return "csv"


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _detect_encoding(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(4)
    candidates = ["utf-8", "cp1252"]
    if head.startswith(codecs.BOM_UTF8):
        candidates.insert(0, "utf-8-sig")
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates.insert(0, "utf-16")
    for encoding in candidates:
        if _decodes(path, encoding):
            return encoding
    return "latin-1"


def _is_blank(cells: list[str]) -> bool:
    return not any(c.strip() for c in cells)


def _sniff_delimiter(sample: str, complete: bool) -> str:
    lines = sample.splitlines(keepends=True)
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut in the middle
    text = "".join(lines[:60])
    best: tuple[int, float, int, int] | None = None
    choice = ","
    for rank, delim in enumerate(CANDIDATE_DELIMITERS):
        try:
            rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if not _is_blank(r)]
        except csv.Error:
            continue
        if not rows:
            continue
        width = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == width) / len(rows)
        score = (int(width > 1), consistent, width, -rank)
        if best is None or score > best:
            best, choice = score, delim
    return choice


def _check_header(cells: list[str], path: Path) -> list[str]:
    headers = [c.strip() for c in cells]
    if headers:  # a BOM read as Windows-1252 text, in a file that is not valid UTF-8
        headers[0] = headers[0].removeprefix("\ufeff").removeprefix("ï»¿").strip()
    filled = [h for h in headers if h]
    if not filled:
        raise ImportFileError(
            "El archivo no tiene fila de encabezado.",
            "The file has no header row.",
            path=str(path),
            reason="no_header",
        )
    if not any(_HEADERISH.search(h) for h in filled):
        raise ImportFileError(
            "La primera fila no es un encabezado (solo contiene números): agregue los nombres "
            "de las columnas.",
            "The first row is not a header (numbers only): add the column names.",
            path=str(path),
            reason="no_header",
        )
    return [h or f"columna_{i + 1}" for i, h in enumerate(headers)]


class TableReader:
    """An open lead list. Use as a context manager; iterate for :class:`RawRow` items."""

    format: FileFormat
    encoding: str | None
    delimiter: str | None
    headers: list[str]
    header_row: int

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.format = _detect_format(self.path)
        self.encoding = None
        self.delimiter = None
        self._rows: Iterator[RawRow]
        self._closers: list[Any] = []
        try:
            if self.format == "xlsx":
                self._open_xlsx()
            else:
                self._open_csv()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ CSV

    def _open_csv(self) -> None:
        self.encoding = _detect_encoding(self.path)
        fh = self.path.open("r", encoding=self.encoding, errors="replace", newline="")
        self._closers.append(fh)
        sample = fh.read(_SNIFF_CHARS)
        complete = len(sample) < _SNIFF_CHARS
        fh.seek(0)
        self.delimiter = _sniff_delimiter(sample, complete)
        reader = csv.reader(fh, delimiter=self.delimiter)
        numbered = self._guard_csv(reader)
        self.headers, self.header_row = self._take_header(numbered)
        # _guard_csv strips every cell: a blank row is one with no non-empty cell
        self._rows = (RawRow(n, cells) for n, cells in numbered if any(cells))

    def _guard_csv(self, reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
        number = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(
                    f"CSV mal formado cerca de la fila {number + 1}: {exc}.",
                    f"Malformed CSV near row {number + 1}: {exc}.",
                    path=str(self.path),
                    row=number + 1,
                    reason="malformed_csv",
                ) from exc
            number += 1
            yield number, [c.strip() for c in cells]

    # ------------------------------------------------------------------ XLSX

    def _open_xlsx(self) -> None:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            workbook = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
            raise ImportFileError(
                "El archivo no es un XLSX válido (¿está dañado o es otro formato comprimido?).",
                "The file is not a valid XLSX (damaged, or another zipped format?).",
                path=str(self.path),
                reason="bad_xlsx",
            ) from exc
        self._closers.append(workbook)
        sheets = [workbook.active, *workbook.worksheets] if workbook.active else workbook.worksheets
        numbered: Iterator[tuple[int, list[str]]] | None = None
        for sheet in sheets:
            candidate = self._xlsx_rows(sheet)
            first = next(candidate, None)
            if first is not None:
                numbered = _chain_one(first, candidate)
                break
        if numbered is None:
            raise ImportFileError(
                "El archivo está vacío.", "The file is empty.", path=str(self.path), reason="empty"
            )
        self.headers, self.header_row = self._take_header(numbered)
        self._rows = (RawRow(n, cells) for n, cells in numbered if not _is_blank(cells))

    @staticmethod
    def _xlsx_rows(sheet: Any) -> Iterator[tuple[int, list[str]]]:
        for index, row in enumerate(sheet.iter_rows(), start=1):
            number = index
            cells: list[str] = []
            for cell in row:
                if number == index and getattr(cell, "row", None):
                    number = int(cell.row)
                cells.append(cell_text(cell.value, getattr(cell, "number_format", None)))
            while cells and not cells[-1]:
                cells.pop()
            if cells:
                yield number, cells

    # ------------------------------------------------------------------ common

    def _take_header(self, numbered: Iterator[tuple[int, list[str]]]) -> tuple[list[str], int]:
        for number, cells in numbered:
            if not _is_blank(cells):
                return _check_header(cells, self.path), number
        raise ImportFileError(
            "El archivo está vacío.", "The file is empty.", path=str(self.path), reason="empty"
        )

    def __iter__(self) -> Iterator[RawRow]:
        return self._rows

    def close(self) -> None:
        for closer in self._closers:
            closer.close()
        self._closers.clear()

    def __enter__(self) -> TableReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _chain_one(
    first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


def open_table(path: Path | str) -> TableReader:
    """Open a CSV or XLSX lead list; raises :class:`ImportFileError` when it is not one."""
    return TableReader(path)
