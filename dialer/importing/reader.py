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

from dialer.importing.errors import (
    ImportFileError,
    ImportLimitExceeded,
    ImportTooLarge,
    LeadImportError,
)

__all__ = [
    "CANDIDATE_DELIMITERS",
    "RawRow",
    "TableReader",
    "XlsxLimits",
    "cell_text",
    "check_xlsx",
    "open_table",
]

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_CHARS = 64 * 1024
_CHUNK = 1024 * 1024
_HEADERISH = re.compile(r"[^\W\d_]", re.UNICODE)  # a header cell has at least one letter
_ZERO_FORMAT = re.compile(r"^0+$")

FileFormat = Literal["csv", "xlsx"]

_MB = 1024 * 1024
#: Members smaller than this are not held to the compression-ratio limit (tiny XML parts
#: compress very well and are harmless).
_RATIO_FLOOR = 1 * _MB
_DIMENSION = re.compile(
    rb"<(?:\w+:)?dimension\s+ref=\"([A-Z]{1,3})?(\d+)?(?::([A-Z]{1,3})(\d+))?\""
)


@dataclass(frozen=True, slots=True)
class XlsxLimits:
    """What an uploaded lead list may unpack to (``MARCADOR_IMPORTS__*``, docs/security.md).

    Checked before any parsing (:func:`check_xlsx`) and again while rows stream in.
    """

    max_unpacked: int = 500 * _MB
    max_member: int = 300 * _MB
    max_ratio: int = 200
    max_rows: int = 2_000_000
    max_columns: int = 200
    max_cell_chars: int = 32_767

    @classmethod
    def from_settings(cls, imports: Any) -> XlsxLimits:
        """From :class:`dialer.settings.ImportLimitsSettings`."""
        return cls(
            max_unpacked=imports.xlsx_max_unpacked_mb * _MB,
            max_member=imports.xlsx_max_member_mb * _MB,
            max_ratio=imports.xlsx_max_ratio,
            max_rows=imports.xlsx_max_rows,
            max_columns=imports.xlsx_max_columns,
            max_cell_chars=imports.max_cell_chars,
        )


def _too_large(
    path: Path, setting: str, limit: int, found: int, what_es: str, what_en: str
) -> ImportTooLarge:
    return ImportTooLarge(
        f"El archivo excede el límite: {what_es} ({found} > {limit}; {setting}).",
        f"The file exceeds a limit: {what_en} ({found} > {limit}; {setting}).",
        path=str(path),
        reason="limit",
        limit=setting,
        allowed=limit,
        found=found,
    )


def _over_limit(
    path: Path, setting: str, limit: int, found: int, what_es: str, what_en: str
) -> ImportLimitExceeded:
    return ImportLimitExceeded(
        f"El archivo excede el límite: {what_es} ({found} > {limit}; {setting}).",
        f"The file exceeds a limit: {what_en} ({found} > {limit}; {setting}).",
        path=str(path),
        reason="limit",
        limit=setting,
        allowed=limit,
        found=found,
    )


def _column_number(letters: bytes | None) -> int:
    number = 0
    for ch in letters or b"A":
        number = number * 26 + ch - 64
    return number


def _bad_xlsx(path: Path) -> ImportFileError:
    return ImportFileError(
        "El archivo no es un XLSX válido (¿está dañado o es otro formato comprimido?).",
        "The file is not a valid XLSX (damaged, or another zipped format?).",
        path=str(path),
        reason="bad_xlsx",
    )


def check_xlsx(path: Path | str, limits: XlsxLimits | None = None) -> None:
    """Refuse a decompression bomb before parsing, from the archive's directory alone
    (sizes, ratios, declared sheet dimensions) plus a streaming scan of the shared strings.

    The sizes the directory declares are the most zipfile will ever unpack (it stops there
    and checks the CRC), so they bound what the parser can be made to read.
    """
    source = Path(path)
    lim = limits or XlsxLimits()
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _bad_xlsx(source) from exc
    with archive:
        members = archive.infolist()
        names = {m.filename for m in members}
        if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
            raise _bad_xlsx(source)
        total = 0
        for member in members:
            total += member.file_size
            if member.file_size > lim.max_member:
                raise _too_large(
                    source,
                    "MARCADOR_IMPORTS__XLSX_MAX_MEMBER_MB",
                    lim.max_member // _MB,
                    -(-member.file_size // _MB),
                    f"una parte del archivo descomprime a {member.file_size // _MB} MB",
                    f"one archive member unpacks to {member.file_size // _MB} MB",
                )
            ratio = member.file_size // max(member.compress_size, 1)
            if member.file_size >= _RATIO_FLOOR and ratio > lim.max_ratio:
                raise _too_large(
                    source,
                    "MARCADOR_IMPORTS__XLSX_MAX_RATIO",
                    lim.max_ratio,
                    ratio,
                    "relación de compresión",
                    "compression ratio",
                )
        if total > lim.max_unpacked:
            raise _too_large(
                source,
                "MARCADOR_IMPORTS__XLSX_MAX_UNPACKED_MB",
                lim.max_unpacked // _MB,
                -(-total // _MB),
                "tamaño descomprimido total (MB)",
                "total unpacked size (MB)",
            )
        for member in members:
            if member.filename.startswith("xl/worksheets/") and member.filename.endswith(".xml"):
                _check_dimension(archive, member, source, lim)
        if "xl/sharedStrings.xml" in names:
            _check_strings(archive, source, lim)


def _check_dimension(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path, lim: XlsxLimits
) -> None:
    try:
        with archive.open(member) as fh:
            head = fh.read(4096)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise _bad_xlsx(path) from exc
    found = _DIMENSION.search(head)
    if found is None:
        return
    last_col, last_row = found.group(3) or found.group(1), found.group(4) or found.group(2)
    rows = int(last_row) if last_row else 1
    columns = _column_number(last_col)
    if rows > lim.max_rows:
        raise _over_limit(
            path, "MARCADOR_IMPORTS__XLSX_MAX_ROWS", lim.max_rows, rows, "filas", "rows"
        )
    if columns > lim.max_columns:
        raise _over_limit(
            path,
            "MARCADOR_IMPORTS__XLSX_MAX_COLUMNS",
            lim.max_columns,
            columns,
            "columnas",
            "columns",
        )


def _check_strings(archive: zipfile.ZipFile, path: Path, lim: XlsxLimits) -> None:
    """Stream the shared strings: no single string may be longer than a cell may be."""
    from xml.parsers import expat

    parser = expat.ParserCreate()
    length = 0
    longest = 0

    def start(_name: str, _attrs: Any) -> None:
        nonlocal length
        length = 0

    def text(data: str) -> None:
        nonlocal length, longest
        length += len(data)
        if length > longest:
            longest = length

    parser.StartElementHandler = start
    parser.CharacterDataHandler = text
    try:
        with archive.open("xl/sharedStrings.xml") as fh:
            while chunk := fh.read(_CHUNK):
                parser.Parse(chunk, False)
                if longest > lim.max_cell_chars:
                    break
            else:
                parser.Parse(b"", True)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise _bad_xlsx(path) from exc
    except expat.ExpatError as exc:
        raise _bad_xlsx(path) from exc
    if longest > lim.max_cell_chars:
        raise _over_limit(
            path,
            "MARCADOR_IMPORTS__MAX_CELL_CHARS",
            lim.max_cell_chars,
            longest,
            "caracteres en una celda",
            "characters in one cell",
        )


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

    def __init__(self, path: Path | str, limits: XlsxLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits or XlsxLimits()
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
            stripped = [c.strip() for c in cells]
            self._check_cells(stripped, number)
            yield number, stripped

    # ------------------------------------------------------------------ XLSX

    def _open_xlsx(self) -> None:
        import openpyxl

        check_xlsx(self.path, self.limits)
        try:
            workbook = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # any malformed part: hostile archives raise many kinds
            raise _bad_xlsx(self.path) from exc
        self._closers.append(workbook)
        try:
            sheets = (
                [workbook.active, *workbook.worksheets] if workbook.active else workbook.worksheets
            )
        except Exception as exc:
            raise _bad_xlsx(self.path) from exc
        numbered: Iterator[tuple[int, list[str]]] | None = None
        for sheet in sheets:
            if not hasattr(sheet, "iter_rows"):
                continue  # a chartsheet
            candidate = self._guard_xlsx(self._xlsx_rows(sheet))
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

    def _guard_xlsx(self, rows: Iterator[tuple[int, list[str]]]) -> Iterator[tuple[int, list[str]]]:
        """Malformed sheet XML found while streaming is a bad file, not a server error."""
        while True:
            try:
                item = next(rows)
            except StopIteration:
                return
            except LeadImportError:
                raise
            except Exception as exc:
                raise _bad_xlsx(self.path) from exc
            yield item

    def _xlsx_rows(self, sheet: Any) -> Iterator[tuple[int, list[str]]]:
        lim = self.limits
        for index, row in enumerate(sheet.iter_rows(), start=1):
            number = index
            cells: list[str] = []
            for cell in row:
                if number == index and getattr(cell, "row", None):
                    number = int(cell.row)
                cells.append(cell_text(cell.value, getattr(cell, "number_format", None)))
            while cells and not cells[-1]:
                cells.pop()
            if number > lim.max_rows:
                raise _over_limit(
                    self.path,
                    "MARCADOR_IMPORTS__XLSX_MAX_ROWS",
                    lim.max_rows,
                    number,
                    "filas",
                    "rows",
                )
            if len(cells) > lim.max_columns:
                raise _over_limit(
                    self.path,
                    "MARCADOR_IMPORTS__XLSX_MAX_COLUMNS",
                    lim.max_columns,
                    len(cells),
                    "columnas",
                    "columns",
                )
            self._check_cells(cells, number)
            if cells:
                yield number, cells

    def _check_cells(self, cells: list[str], number: int) -> None:
        limit = self.limits.max_cell_chars
        longest = max((len(c) for c in cells), default=0)
        if longest > limit:
            raise _over_limit(
                self.path,
                "MARCADOR_IMPORTS__MAX_CELL_CHARS",
                limit,
                longest,
                f"caracteres en una celda de la fila {number}",
                f"characters in one cell of row {number}",
            )

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


def open_table(path: Path | str, limits: XlsxLimits | None = None) -> TableReader:
    """Open a CSV or XLSX lead list; raises :class:`ImportFileError` when it is not one
    (:class:`ImportTooLarge` / :class:`ImportLimitExceeded` past ``limits``)."""
    return TableReader(path, limits)
