"""Pure cleaning rules of the lead import (no IO; the service feeds them data).

* :func:`normalize_phone` / :func:`parse_phone_cell`: Colombian numbers to E.164 with
  ``phonenumbers`` (region CO), including the pre-2021 landline formats mapped to the 60X scheme
  (Resolución CRC 5826 de 2019, in force since 1 September 2021): the old one-digit area
  indicator N becomes ``60N``:

  ====  =====================================================================
  601   Bogotá, Cundinamarca
  602   Cauca, Nariño, Valle del Cauca
  604   Antioquia, Córdoba, Chocó
  605   Atlántico, Bolívar, Cesar, La Guajira, Magdalena, San Andrés, Sucre
  606   Caldas, Quindío, Risaralda
  607   Arauca, Norte de Santander, Santander
  608   Amazonas, Boyacá, Casanare, Caquetá, Guaviare, Guainía, Huila, Meta,
        Tolima, Putumayo, Vaupés, Vichada
  ====  =====================================================================

  Accepted old shapes: ``(8) 7401234`` (indicator + 7 digits), ``098 7401234`` /
  ``03 8 7401234`` (long-distance carrier prefix 05/07/09, or 03 from a mobile, + indicator +
  7 digits), ``08 7401234``, and a bare 7-digit local number, which gets the campaign's default
  prefix (608 for Tunja and Duitama).
* Names, national ids, id types, plates, dates and yes/no authorisations.
* Corporate detection (NIT id type or shape, company markers in the name).
* Duplicate grouping (:func:`group_rows`): same national id or same phone, transitively
  (union-find), within the file and against the campaign's existing leads. Two *different*
  national ids are never merged: a phone shared by two people is linked to both.
* :func:`decide_group`: the lead's fate (new, or excluded as corporate / DNC / no consent).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType

from dialer.importing.mapping import LeadField, MappedRow

__all__ = [
    "CleanLead",
    "CleanPhone",
    "CleaningOptions",
    "ExistingLead",
    "Group",
    "GroupDecision",
    "PhoneIssue",
    "PhoneKind",
    "Reason",
    "clean_row",
    "corporate_marker",
    "decide_group",
    "group_rows",
    "normalize_id",
    "normalize_id_type",
    "normalize_name",
    "normalize_phone",
    "normalize_plate",
    "parse_bool",
    "parse_date",
    "parse_phone_cell",
]

# ---------------------------------------------------------------------------- reasons


class Reason(StrEnum):
    """Why a row did not become a dialable lead (stable codes: report, API, LeadEvent)."""

    # excluded: stored as a lead with status EXCLUDED
    CORPORATE = "corporate"
    DNC = "dnc"
    NO_CONSENT = "no_consent"
    # rejected: bad data, nothing stored
    NO_PHONE = "no_phone"
    INVALID_PHONE = "invalid_phone"
    # merged into another row's lead
    DUPLICATE = "duplicate"
    # matched a lead imported earlier (upsert)
    ALREADY_IMPORTED = "already_imported"


class PhoneKind(StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"


class PhoneIssue(StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID = "invalid"  # right length, but not a Colombian number
    REPEATED_DIGITS = "repeated_digits"  # 3000000000, 6081111111...
    FOREIGN = "foreign"  # a valid number of another country: not dialed
    UNSUPPORTED_TYPE = "unsupported_type"  # toll-free, premium, shared cost...
    LETTERS = "letters"
    LOSSY_NUMBER = "lossy_number"  # Excel scientific notation that lost digits
    #: also the phone of another national id: linked to both people (households, small
    #: businesses); dial-time rules call one number at most once a day
    SHARED_WITH_OTHER_PERSON = "shared_with_other_person"
    TOO_MANY_PHONES = "too_many_phones"  # kept in Lead.extra, not dialed
    DNC = "dnc"


@dataclass(frozen=True, slots=True)
class CleaningOptions:
    #: Prefix for bare 7-digit local landlines (Tunja, Duitama: 608).
    default_landline_prefix: str = "608"
    #: Maximum dialable phones per lead; extra ones go to ``Lead.extra["otros_telefonos"]``.
    max_phones: int = 4

    def __post_init__(self) -> None:
        if not re.fullmatch(r"60[124-8]", self.default_landline_prefix):
            raise ValueError("default_landline_prefix must be one of 601, 602, 604-608")
        if self.max_phones < 1:
            raise ValueError("max_phones must be >= 1")


# ---------------------------------------------------------------------------- phones


@dataclass(frozen=True, slots=True)
class CleanPhone:
    e164: str
    kind: PhoneKind


_PLACEHOLDERS = frozenset(
    {"", "0", "na", "n a", "n/a", "no", "no tiene", "notiene", "sin", "sin telefono",
     "sin numero", "ninguno", "null", "none", "nan", "-", "--", "x", "no aplica", "s n", "sn"}
)  # fmt: skip
_LABEL = re.compile(
    r"^\s*(?:tel(?:[eé]fono)?s?|cel(?:ular)?|m[oó]vil|fijo|whats?app|wa|casa|oficina|ofc?)"
    r"\s*\.?\s*[:.\-]?\s*(?=[+(\d])",
    re.IGNORECASE,
)
_EXTENSION = re.compile(
    r"\s*(?:ext(?:ensi[oó]n)?\.?|x|#|opc(?:i[oó]n)?\.?)\s*[:.]?\s*\d{1,6}\s*$", re.IGNORECASE
)
_SCIENTIFIC = re.compile(r"^\s*(\d+(?:[.,]\d+)?)[eE]\+?(\d{1,2})\s*$")
_FLOAT_ZERO = re.compile(r"^\s*(\d+)[.,]0+\s*$")
_SPLIT = re.compile(r"\s*(?:[/;|\n]|,(?!0+\s*$)|\s+[yo]\s+|\s+-\s+)\s*", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
_NON_DIGIT = re.compile(r"\D")
_TOKEN_SPLIT = re.compile(r"[\s\-.]+")
# Only ASCII digits, spaces, dashes, parentheses and "+", starting like a number: no
# placeholder, Excel float, label, extension or letter rule can apply (normalize_phone's
# shortcut straight to the digits).
_PLAIN_NUMBER = re.compile(r"[0-9+(][0-9 ()+\-]*")
_OLD_INDICATORS = frozenset("1245678")


def _placeholder(text: str) -> bool:
    if not text:
        return True
    if text[0].isdigit() or text[0] in "+(":
        return text == "0"
    return _strip_accents(text).lower().strip(" .") in _PLACEHOLDERS


def _from_scientific(text: str) -> str | None:
    """``3,00123457E+09`` -> digits when the notation kept every digit, else None."""
    match = _SCIENTIFIC.match(text)
    if match is None:
        return None
    mantissa, exponent = match.group(1).replace(",", "."), int(match.group(2))
    try:
        value = Decimal(mantissa).scaleb(exponent)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        return None
    if value != value.to_integral_value():
        return None
    digits = str(int(value))
    significant = len(mantissa.replace(".", "").lstrip("0"))
    return digits if significant >= len(digits) else ""


_Desc = tuple[frozenset[int], re.Pattern[str]]
_SPECIAL_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


@dataclass(frozen=True, slots=True)
class _TypeTable:
    """``phonenumbers.number_type`` for one country, with its metadata compiled once.

    The same checks in the same order as phonenumbers' ``_number_type_helper`` (possible
    lengths, then a full match of the national number pattern), without its per-call metadata
    lookups and regex cache: about 10x faster, identical results (tests/importing compares the
    two on a sample of inputs).
    """

    general: _Desc | None
    special: tuple[tuple[_Desc, int], ...]
    fixed_line: _Desc | None
    mobile: _Desc | None
    same_mobile_and_fixed: bool

    @staticmethod
    def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
        if desc is None or not desc.national_number_pattern:
            return None
        return frozenset(desc.possible_length), re.compile(desc.national_number_pattern)

    @classmethod
    def for_country(cls, country_code: int) -> _TypeTable:
        region = phonenumbers.region_code_for_country_code(country_code)
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            country_code, region
        )
        if metadata is None:  # pragma: no cover - 57 is always in phonenumbers' metadata
            raise LookupError(f"no phonenumbers metadata for +{country_code}")
        special = tuple(
            (desc, kind)
            for attr, kind in _SPECIAL_TYPES
            if (desc := cls._desc(getattr(metadata, attr))) is not None
        )
        return cls(
            general=cls._desc(metadata.general_desc),
            special=special,
            fixed_line=cls._desc(metadata.fixed_line),
            mobile=cls._desc(metadata.mobile),
            same_mobile_and_fixed=bool(metadata.same_mobile_and_fixed_line_pattern),
        )

    @staticmethod
    def _matches(desc: _Desc | None, nsn: str) -> bool:
        if desc is None:
            return False
        lengths, pattern = desc
        if lengths and len(nsn) not in lengths:
            return False
        return pattern.fullmatch(nsn) is not None

    def number_type(self, nsn: str) -> int:
        """The PhoneNumberType of a national significant number (digits, no leading zero)."""
        matches = self._matches
        if not matches(self.general, nsn):
            return PhoneNumberType.UNKNOWN
        for desc, kind in self.special:
            if matches(desc, nsn):
                return kind
        if matches(self.fixed_line, nsn):
            if self.same_mobile_and_fixed or matches(self.mobile, nsn):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        if not self.same_mobile_and_fixed and matches(self.mobile, nsn):
            return PhoneNumberType.MOBILE
        return PhoneNumberType.UNKNOWN


@cache
def _type_table(country_code: int) -> _TypeTable:
    return _TypeTable.for_country(country_code)


def _number_type_slow(nsn: str) -> int:
    """The reference: phonenumbers' own ``number_type`` (used when the fast path cannot be)."""
    number = phonenumbers.PhoneNumber(country_code=57, national_number=int(nsn))
    return int(phonenumbers.number_type(number))


@lru_cache(maxsize=131072)
def _classify(nsn: str) -> CleanPhone | PhoneIssue:
    """Validate a 10-digit Colombian national number (phonenumbers' metadata for +57)."""
    if len(set(nsn[-7:])) == 1:
        return PhoneIssue.REPEATED_DIGITS
    if nsn[0] != "0" and nsn.isdigit() and nsn.isascii():
        kind = _type_table(57).number_type(nsn)
    else:  # pragma: no cover - callers only pass digit strings without a leading zero
        kind = _number_type_slow(nsn)
    if kind == PhoneNumberType.MOBILE:
        return CleanPhone("+57" + nsn, PhoneKind.MOBILE)
    if kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return CleanPhone("+57" + nsn, PhoneKind.LANDLINE)
    if kind == PhoneNumberType.UNKNOWN:
        return PhoneIssue.INVALID
    return PhoneIssue.UNSUPPORTED_TYPE


def _foreign(digits: str) -> PhoneIssue:
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return PhoneIssue.INVALID
    return PhoneIssue.FOREIGN if phonenumbers.is_valid_number(number) else PhoneIssue.INVALID


def _national(digits: str, default_prefix: str) -> str | PhoneIssue:
    """Reduce Colombian digit strings (country code already removed) to the 10-digit NSN."""
    n = len(digits)
    if n == 10 and digits[0] == "3":
        return digits  # mobile
    if n == 10 and digits.startswith("60"):
        return digits  # landline, 2021 scheme
    if n == 10 and digits[0] == "0" and digits[1] in "3579" and digits[2] in _OLD_INDICATORS:
        return "60" + digits[2:]  # 0 + carrier (or 03 from a mobile) + indicator + 7 digits
    if n == 11 and digits[0] == "0" and digits[1] == "3":
        return digits[1:]  # 0 + mobile
    if n == 11 and digits.startswith("060"):
        return digits[1:]
    if n == 9 and digits[0] == "0" and digits[1] in _OLD_INDICATORS:
        return "60" + digits[1:]  # 0 + indicator + 7 digits
    if n == 8 and digits[0] in _OLD_INDICATORS:
        return "60" + digits  # indicator + 7 digits: "(8) 7401234"
    if n == 7 and digits[0] not in "01":
        return default_prefix + digits  # local number
    if digits.startswith(("1800", "01800", "1900", "01900")):
        return PhoneIssue.UNSUPPORTED_TYPE
    if n < 10:
        return PhoneIssue.TOO_SHORT
    if n > 10:
        return PhoneIssue.TOO_LONG
    return PhoneIssue.INVALID


def normalize_phone(
    raw: str, default_landline_prefix: str = "608"
) -> CleanPhone | PhoneIssue | None:
    """One number as typed by a person or exported by Excel -> E.164, an issue, or None (blank).

    >>> normalize_phone("(8) 740 1234").e164
    '+576087401234'
    """
    text = raw.strip()
    if text.isdigit() and len(text) == 10 and text[0] == "3":
        return _classify(text)  # the common case: a bare mobile number
    if _PLAIN_NUMBER.fullmatch(text):
        return None if text == "0" else _from_digits(text, default_landline_prefix)
    if _placeholder(text):
        return None
    sci = _from_scientific(text)
    if sci == "":
        return PhoneIssue.LOSSY_NUMBER
    if sci is not None:
        text = sci
    else:
        float_zero = _FLOAT_ZERO.match(text)
        if float_zero:
            text = float_zero.group(1)
    text = _LABEL.sub("", text)
    text = _EXTENSION.sub("", text)
    if _LETTER.search(text):
        return PhoneIssue.LETTERS
    return _from_digits(text, default_landline_prefix)


def _from_digits(text: str, default_landline_prefix: str) -> CleanPhone | PhoneIssue:
    """The last step of :func:`normalize_phone`: text without letters -> E.164 or an issue."""
    plus = text.lstrip().startswith("+")
    digits = _NON_DIGIT.sub("", text)
    if not digits:
        return PhoneIssue.INVALID
    if plus or digits.startswith("00"):
        international = digits[2:] if digits.startswith("00") and not plus else digits
        if international.startswith(("557", "757", "957")) and not plus:
            international = international[1:]  # 005/007/009 + 57: carrier-selected call
        if not international.startswith("57"):
            return _foreign(international)
        digits = international[2:]
    elif digits.startswith("057") and len(digits) in (11, 13):
        digits = digits[3:]  # 057 (0 + country code) + 10 digits, or + indicator + 7 digits
    elif digits.startswith("57") and len(digits) in (10, 12):
        digits = digits[2:]  # 57 + 10 digits, or 57 + old indicator + 7 digits
    national = _national(digits, default_landline_prefix)
    if isinstance(national, PhoneIssue):
        return national
    return _classify(national)


def _join_fragments(parts: list[str]) -> list[str]:
    """Rejoin pieces of ONE number that a separator cut ("313/928/1487"): a run of adjacent
    pieces with fewer than 7 digits each is one number (no phone has fewer than 7 digits)."""
    out: list[str] = []
    pending: list[str] = []
    for part in parts:
        if len(_NON_DIGIT.sub("", part)) < 7 and not _LETTER.search(part):
            pending.append(part.strip())
            continue
        if pending:
            out.append(" ".join(pending))
            pending = []
        out.append(part)
    if pending:
        out.append(" ".join(pending))
    return out


def _split_cell(cell: str) -> list[str]:
    parts = _join_fragments([p for p in _SPLIT.split(cell) if p.strip()])
    out: list[str] = []
    for part in parts:
        if len(_NON_DIGIT.sub("", part)) > 12:
            tokens = [t for t in _TOKEN_SPLIT.split(part.strip()) if t]
            if len(tokens) >= 2 and all(len(_NON_DIGIT.sub("", t)) >= 7 for t in tokens):
                out.extend(tokens)  # "3001234567 3109876543"
                continue
        out.append(part)
    return out


def parse_phone_cell(
    cell: str, default_landline_prefix: str = "608"
) -> tuple[list[CleanPhone], list[PhoneIssue]]:
    """A cell may hold several numbers ("300 123 4567 / (8) 7401234")."""
    phones: list[CleanPhone] = []
    issues: list[PhoneIssue] = []
    if cell.isdigit() and cell.isascii():  # one bare number: nothing to split
        result = normalize_phone(cell, default_landline_prefix) if cell != "0" else None
        if isinstance(result, CleanPhone):
            phones.append(result)
        elif result is not None:
            issues.append(result)
        return phones, issues
    if _placeholder(cell):
        return phones, issues
    if _PLAIN_NUMBER.fullmatch(cell) and " - " not in cell and len(cell) <= 12:
        parts = [cell]  # one number, as _split_cell would find: no separator, <= 12 digits
    else:
        whole = _from_scientific(cell) if _SCIENTIFIC.match(cell) else None
        parts = [cell] if whole is not None or _FLOAT_ZERO.match(cell) else _split_cell(cell)
    for part in parts:
        result = normalize_phone(part, default_landline_prefix)
        if isinstance(result, CleanPhone):
            phones.append(result)
        elif result is not None:
            issues.append(result)
    return phones, issues


# ---------------------------------------------------------------------------- text fields


class _StripAccents(dict[int, str]):
    """``str.translate`` table: a character -> its NFKD form without combining marks, filled
    on first use. Per character equals per string: only marks (combining class > 0) are
    ever reordered by NFKD, and they are all dropped."""

    def __missing__(self, code: int) -> str:
        decomposed = unicodedata.normalize("NFKD", chr(code))
        plain = "".join(c for c in decomposed if not unicodedata.combining(c))
        self[code] = plain
        return plain


_STRIP_ACCENTS = _StripAccents()


def _strip_accents(text: str) -> str:
    if text.isascii():
        return text
    return text.translate(_STRIP_ACCENTS)


_SPACES = re.compile(r"\s+")
_LOWER_PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "e", "da", "van", "von"})


def normalize_name(raw: str) -> str:
    """Trim, collapse spaces, title case keeping Spanish particles lower: 'José de la Peña'."""
    words = raw.split()
    out = [
        w.lower() if i and w.lower() in _LOWER_PARTICLES else w.title() for i, w in enumerate(words)
    ]
    return " ".join(out)[:200]


_ID_PREFIX = re.compile(
    r"^\s*(C\.?\s*C|N\.?\s*I\.?\s*T|C\.?\s*E|T\.?\s*I|P\.?\s*P|PPT|PEP)\.?\s*[:#.\-]?\s*(?=\d)",
    re.IGNORECASE,
)
_ID_JUNK = re.compile(r"[\s.,'´`]")
_NIT_DV = re.compile(r"^(\d{6,15})-(\d)$")


def normalize_id(raw: str) -> tuple[str | None, str | None, bool]:
    """A national id as typed -> (canonical id, id type found in the value, has NIT check digit).

    Leading zeros are kept. Dots, commas, spaces and the NIT check digit ("-7") are removed;
    an Excel float ("1049612345.0") loses its ".0". Placeholders and all-zero ids give None.
    """
    text = raw.strip()
    if _placeholder(text):
        return None, None, False
    found_type: str | None = None
    prefix = _ID_PREFIX.match(text)
    if prefix:
        found_type = normalize_id_type(prefix.group(1))
        text = text[prefix.end() :]
    float_zero = _FLOAT_ZERO.match(text)
    if float_zero and "." in text:
        text = float_zero.group(1)
    text = _ID_JUNK.sub("", text).upper()
    has_dv = False
    dv = _NIT_DV.match(text)
    if dv:
        text, has_dv = dv.group(1), True
    text = text.replace("-", "")
    if not text or not text.isalnum() or set(text) == {"0"} or len(text) < 3 or len(text) > 20:
        return None, found_type, False
    return text, found_type, has_dv


_ID_TYPES = {
    "CC": "CC", "CEDULA": "CC", "CEDULADECIUDADANIA": "CC", "CEDULACIUDADANIA": "CC",
    "NIT": "NIT", "NUMERODEIDENTIFICACIONTRIBUTARIA": "NIT",
    "CE": "CE", "CEDULADEEXTRANJERIA": "CE", "CEDULAEXTRANJERIA": "CE",
    "TI": "TI", "TARJETADEIDENTIDAD": "TI", "TARJETAIDENTIDAD": "TI",
    "PP": "PP", "PA": "PP", "PAS": "PP", "PASAPORTE": "PP",
    "PPT": "PPT", "PEP": "PEP", "RC": "RC", "NUIP": "NUIP",
}  # fmt: skip


_NOT_UPPER = re.compile(r"[^A-Z]")


@lru_cache(maxsize=1024)
def normalize_id_type(raw: str) -> str:
    key = _NOT_UPPER.sub("", _strip_accents(raw).upper())
    return _ID_TYPES.get(key, key[:8] or "CC")


_PLATE_JUNK = re.compile(r"[^A-Z0-9]")


def normalize_plate(raw: str) -> str | None:
    plate = _PLATE_JUNK.sub("", _strip_accents(raw).upper())
    return plate[:16] or None


_TRUE = frozenset(
    {"si", "s", "yes", "y", "1", "x", "true", "verdadero", "v", "autoriza", "acepta", "ok",
     "autorizado", "aceptado", "si autoriza", "si acepta"}
)  # fmt: skip
_FALSE = frozenset(
    {"no", "n", "0", "false", "falso", "f", "no autoriza", "no acepta", "rechaza",
     "no autorizado", "revocado", "revoca"}
)  # fmt: skip


@lru_cache(maxsize=1024)  # a file holds a handful of distinct values
def parse_bool(raw: str) -> bool | None:
    """'SI' / 'Sí' / 'X' / '1' -> True, 'NO' / '0' -> False, anything else -> None (unknown)."""
    key = _SPACES.sub(" ", _strip_accents(raw).lower().strip(" .!"))
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    return None


_MONTHS = {
    "ene": 1, "jan": 1, "feb": 2, "mar": 3, "abr": 4, "apr": 4, "may": 5, "jun": 6, "jul": 7,
    "ago": 8, "aug": 8, "sep": 9, "set": 9, "oct": 10, "nov": 11, "dic": 12, "dec": 12,
}  # fmt: skip
_ISO = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T].*)?$")
_DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})(?:[ T].*)?$")
_NAMED = re.compile(r"^(\d{1,2})(?:\s+de\s+|[-/ .]+)([a-z]{3,})\.?(?:\s+de\s+|[-/ .]+)(\d{2,4})$")
_SERIAL = re.compile(r"^(\d{5})(?:\.\d+)?$")
_EXCEL_EPOCH = date(1899, 12, 30)


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 70 else 1900
    return year


def _safe_date(year: int, month: int, day: int) -> date | None:
    if not 1900 <= year <= 2200:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


@lru_cache(maxsize=16384)  # dates repeat a lot in a lead list
def parse_date(raw: str) -> date | None:
    """dd/mm/yyyy (Colombian), yyyy-mm-dd, '15-ene-2024', Excel serials. None if unparseable.

    A US-style mm/dd/yyyy is accepted only when it cannot be read as dd/mm (day > 12).
    """
    text = _strip_accents(raw).strip().lower()
    if not text:
        return None
    if m := _ISO.match(text):
        return _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if m := _DMY.match(text):
        day, month, year = int(m.group(1)), int(m.group(2)), _year(m.group(3))
        if month > 12 >= day:
            day, month = month, day
        return _safe_date(year, month, day)
    if m := _NAMED.match(text):
        month_no = _MONTHS.get(m.group(2)[:3])
        if month_no is None:
            return None
        return _safe_date(_year(m.group(3)), month_no, int(m.group(1)))
    if m := _SERIAL.match(text):
        serial = int(m.group(1))
        if 20000 <= serial <= 80000:  # 1954..2119
            return _EXCEL_EPOCH + timedelta(days=serial)
    return None


# ---------------------------------------------------------------------------- corporate

_COMPANY_WORDS = frozenset(
    {"SAS", "LTDA", "LIMITADA", "EU", "SCA", "SCS", "CIA", "SOCIEDAD", "EMPRESA", "EMPRESAS",
     "CORPORACION", "CORP", "INC", "LLC", "FUNDACION", "ASOCIACION", "COOPERATIVA",
     "COOPERATIVO", "INVERSIONES", "INVERSIONISTAS", "COMERCIALIZADORA", "DISTRIBUIDORA",
     "DISTRIBUCIONES", "CONSTRUCTORA", "CONSTRUCCIONES", "TRANSPORTES", "TRANSPORTADORA",
     "ALCALDIA", "GOBERNACION", "MUNICIPIO", "MINISTERIO", "SECRETARIA", "INSTITUTO",
     "UNIVERSIDAD", "COLEGIO", "HOSPITAL", "CLINICA", "BANCO", "CONSORCIO", "INDUSTRIAS",
     "INDUSTRIAL", "SERVICIOS", "SOLUCIONES", "INGENIERIA", "LOGISTICA", "AGROPECUARIA",
     "HOLDING", "GRUPO", "EPS", "IPS", "ESE", "ESP", "BIC", "EJERCITO", "POLICIA",
     "ARMADA", "DEPARTAMENTO", "CONCESIONARIA", "CAJA", "COMPENSACION"}
)  # fmt: skip
_COMPANY_PHRASES = (
    ("UNION", "TEMPORAL"), ("S", "EN", "C"), ("Y", "CIA"), ("&", "CIA"), ("EN", "LIQUIDACION"),
)  # fmt: skip
_SA_FOLLOWERS = frozenset({"ESP", "BIC", "EN", "Y", "&"})
# Cheap pre-filter: most names are people and never reach the token rules.
_CORPORATE_HINT = re.compile(
    r"\b(?:" + "|".join(sorted(_COMPANY_WORDS)) + r"|[A-Z])\b|&|UNION\s+TEMPORAL|LIQUIDACION"
)


def _name_tokens(name: str) -> list[str]:
    """Upper-case tokens; runs of single letters are joined with dots ("S. A. S." -> "S.A.S")."""
    text = _strip_accents(name).upper().replace("&", " & ")
    raw = [t for t in re.split(r"[^A-Z0-9&]+", text) if t]
    tokens: list[str] = []
    run: list[str] = []
    for tok in [*raw, ""]:
        if len(tok) == 1 and tok.isalpha() and tok not in {"Y", "O"}:
            run.append(tok)
            continue
        if run:
            tokens.append(".".join(run))
            run = []
        if tok:
            tokens.append(tok)
    return tokens


def corporate_marker(
    name: str, id_type: str | None = None, national_id: str | None = None
) -> str | None:
    """The first sign that a row is a company, or None for a person.

    Signs: the NIT id type; a company NIT shape (9 digits starting with 8 or 9, the range
    issued to legal entities); company words (S.A.S., LTDA, E.U., "& CIA", SOCIEDAD, EMPRESA,
    CORPORACION...). "S.A." counts only when written as separate letters ("S.A.", "S. A.",
    "S A") at the end of the name or before ESP/BIC, so surnames like "Sa" and names like
    "Sara", "Rosa" or "Salas" never match.
    """
    if id_type == "NIT":
        return "NIT"
    if national_id and national_id.isdigit() and len(national_id) == 9 and national_id[0] in "89":
        return "NIT"
    upper = _strip_accents(name).upper()
    if not _CORPORATE_HINT.search(upper):
        return None
    tokens = _name_tokens(upper)
    for i, tok in enumerate(tokens):
        if tok == "S.A":
            if i > 0 and (i == len(tokens) - 1 or tokens[i + 1] in _SA_FOLLOWERS):
                return "S.A."
            continue
        if tok.replace(".", "") in _COMPANY_WORDS:
            return tok.replace(".", "")
    for phrase in _COMPANY_PHRASES:
        width = len(phrase)
        for i in range(len(tokens) - width + 1):
            if tuple(tokens[i : i + width]) == phrase:
                return " ".join(phrase)
    return None


# ---------------------------------------------------------------------------- rows


@dataclass(slots=True)
class CleanLead:
    """One file row after cleaning (pure data, ready for grouping)."""

    row: int
    name: str = ""
    national_id: str | None = None
    id_type: str = "CC"
    phones: list[CleanPhone] = field(default_factory=list)
    phone_issues: list[PhoneIssue] = field(default_factory=list)
    had_phone_input: bool = False
    email: str | None = None
    plate: str | None = None
    brand: str | None = None
    model: str | None = None
    vehicle_year: int | None = None
    branch: str | None = None
    last_visit_date: date | None = None
    event_date: date | None = None
    external_id: str | None = None
    consent_voice: bool | None = None
    consent_whatsapp: bool | None = None
    corporate: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # warning codes, e.g. "bad_date:last_visit"


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


_YEAR = re.compile(r"(19|20)\d\d")


def _short(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if value.isprintable() and "  " not in value:
        value = value.strip()  # the only whitespace is single spaces: nothing to collapse
    else:
        value = _SPACES.sub(" ", value).strip()
    return value[:limit] or None


def clean_row(mapped: MappedRow, options: CleaningOptions | None = None) -> CleanLead:
    """Clean one mapped row. Never raises: problems become notes or phone issues."""
    opts = options or CleaningOptions()
    v = mapped.values
    lead = CleanLead(row=mapped.number, extra=dict(mapped.extra))
    if mapped.extra_cells:
        lead.notes.append("extra_cells")

    name = v.get(LeadField.NAME) or " ".join(
        p for p in (v.get(LeadField.FIRST_NAME, ""), v.get(LeadField.LAST_NAME, "")) if p
    )
    lead.name = normalize_name(name)

    id_type_raw = v.get(LeadField.ID_TYPE)
    national_id, type_in_value, has_dv = normalize_id(v.get(LeadField.NATIONAL_ID, ""))
    lead.national_id = national_id
    if id_type_raw:
        lead.id_type = normalize_id_type(id_type_raw)
    elif type_in_value:
        lead.id_type = type_in_value
    elif has_dv:
        lead.id_type = "NIT"
    if v.get(LeadField.NATIONAL_ID) and national_id is None:
        lead.notes.append("bad_national_id")

    seen: set[str] = set()
    for cell in mapped.phones:
        lead.had_phone_input = lead.had_phone_input or not _placeholder(cell)
        phones, issues = parse_phone_cell(cell, opts.default_landline_prefix)
        lead.phone_issues.extend(issues)
        for phone in phones:
            if phone.e164 not in seen:
                seen.add(phone.e164)
                lead.phones.append(phone)

    email = v.get(LeadField.EMAIL)
    if email:
        email = email.strip().lower()
        if _EMAIL.match(email) and len(email) <= 200:
            lead.email = email
        else:
            lead.notes.append("bad_email")
            lead.extra.setdefault("email", email[:200])
    plate = v.get(LeadField.PLATE)
    lead.plate = normalize_plate(plate) if plate else None
    lead.brand = _short(v.get(LeadField.BRAND), 60)
    lead.model = _short(v.get(LeadField.MODEL), 100)
    lead.branch = _short(v.get(LeadField.BRANCH), 80)
    lead.external_id = _short(v.get(LeadField.EXTERNAL_ID), 64)
    year_raw = v.get(LeadField.VEHICLE_YEAR) or (
        lead.model if lead.model and _YEAR.fullmatch(lead.model) else None
    )
    if year_raw:
        year_text = year_raw.strip().removesuffix(".0")
        if _YEAR.fullmatch(year_text):
            lead.vehicle_year = int(year_text)
        else:
            lead.notes.append("bad_vehicle_year")

    visit_raw = v.get(LeadField.LAST_VISIT_DATE)
    if visit_raw:
        lead.last_visit_date = parse_date(visit_raw)
        if lead.last_visit_date is None:
            lead.notes.append("bad_date:last_visit_date")
    event_dates: list[date] = []
    for raw in mapped.event_dates:
        parsed = parse_date(raw)
        if parsed is None:
            lead.notes.append("bad_date:event_date")
        else:
            event_dates.append(parsed)
    lead.event_date = max(event_dates, default=None)

    general = parse_bool(v[LeadField.CONSENT]) if LeadField.CONSENT in v else None
    voice = parse_bool(v[LeadField.CONSENT_VOICE]) if LeadField.CONSENT_VOICE in v else None
    whatsapp = (
        parse_bool(v[LeadField.CONSENT_WHATSAPP]) if LeadField.CONSENT_WHATSAPP in v else None
    )
    lead.consent_voice = voice if voice is not None else general
    lead.consent_whatsapp = whatsapp if whatsapp is not None else general
    for key in (LeadField.CONSENT, LeadField.CONSENT_VOICE, LeadField.CONSENT_WHATSAPP):
        if key in v and parse_bool(v[key]) is None:
            lead.notes.append(f"bad_consent:{key.value}")

    lead.corporate = corporate_marker(lead.name, lead.id_type, lead.national_id)
    return lead


# ---------------------------------------------------------------------------- grouping


@dataclass(frozen=True, slots=True)
class ExistingLead:
    """A lead already in the campaign (for upserts)."""

    lead_id: int
    national_id: str | None
    phones: tuple[str, ...]  # E.164, in position order
    next_position: int = 0  # position for the next appended phone
    #: Extra phone keys that identify the lead without being on it (e.g. the E.164 in a
    #: ``tel:`` dedupe key whose phone was dropped as DNC).
    match_phones: tuple[str, ...] = ()


@dataclass(slots=True)
class Group:
    """Rows (and possibly one existing lead) that are the same person."""

    rows: list[CleanLead]
    existing: ExistingLead | None = None
    #: row number -> (row it merged into, "id" or "phone") for every non-primary row.
    merged_into: dict[int, tuple[int, str]] = field(default_factory=dict)
    #: row number -> phones that also belong to another person (kept: linked to both).
    shared: dict[int, list[str]] = field(default_factory=dict)

    @property
    def primary(self) -> CleanLead:
        return self.rows[0]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.nid: list[str | None] = []

    def add(self, nid: str | None) -> int:
        self.parent.append(len(self.parent))
        self.nid.append(nid)
        return len(self.parent) - 1

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def compatible(self, a: int, b: int) -> bool:
        na, nb = self.nid[self.find(a)], self.nid[self.find(b)]
        return na is None or nb is None or na == nb

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra  # the earliest node (existing lead, then first row) is the root
        if self.nid[ra] is None:
            self.nid[ra] = self.nid[rb]


def group_rows(rows: Sequence[CleanLead], existing: Iterable[ExistingLead] = ()) -> list[Group]:
    """Group duplicate rows (same id or phone, transitively) and match them to existing leads.

    Groups come back in file order (by their first row). A row's phone that already belongs
    to a different national id stays on that row too, without merging the two people: the
    phone is linked to both (recorded in ``shared``; households share landlines).
    """
    uf = _UnionFind()
    owner: dict[str, int] = {}
    existing_nodes: list[ExistingLead] = []
    for lead in existing:
        node = uf.add(lead.national_id)
        existing_nodes.append(lead)
        keys = ([f"id:{lead.national_id}"] if lead.national_id else []) + [
            f"tel:{p}" for p in (*lead.phones, *lead.match_phones)
        ]
        for key in keys:
            other = owner.setdefault(key, node)
            if other != node and uf.compatible(node, other):
                uf.union(node, other)
    base = len(existing_nodes)
    via: dict[int, str] = {}
    shared: dict[int, list[str]] = {}
    for index, row in enumerate(rows):
        node = uf.add(row.national_id)
        assert node == base + index
        if row.national_id:
            key = f"id:{row.national_id}"
            other = owner.setdefault(key, node)
            if other != node:
                uf.union(node, other)
                via.setdefault(node, "id")
        for phone in row.phones:
            key = f"tel:{phone.e164}"
            other = owner.setdefault(key, node)
            if other == node or uf.find(other) == uf.find(node):
                continue
            if uf.compatible(node, other):
                uf.union(node, other)
                via.setdefault(node, "phone")
            else:  # another person's phone too: keep it on both, do not merge the people
                shared.setdefault(row.row, []).append(phone.e164)
        if row.row in shared:
            row.phone_issues.append(PhoneIssue.SHARED_WITH_OTHER_PERSON)

    members: dict[int, list[int]] = {}
    for node in range(len(uf.parent)):
        members.setdefault(uf.find(node), []).append(node)
    groups: list[Group] = []
    for nodes in members.values():
        row_nodes = [n for n in nodes if n >= base]
        if not row_nodes:
            continue
        existing_ids = [existing_nodes[n] for n in nodes if n < base]
        group = Group(
            rows=[rows[n - base] for n in row_nodes],
            existing=min(existing_ids, key=lambda e: e.lead_id) if existing_ids else None,
        )
        first = group.rows[0].row
        for n in row_nodes[1:]:
            group.merged_into[rows[n - base].row] = (first, via.get(n, "id"))
        for n in row_nodes:
            if rows[n - base].row in shared:
                group.shared[rows[n - base].row] = shared[rows[n - base].row]
        groups.append(group)
    groups.sort(key=lambda g: g.rows[0].row)
    return groups


# ---------------------------------------------------------------------------- decision


@dataclass(slots=True)
class GroupDecision:
    """What to store for a group."""

    #: None -> a new dialable lead (or an upsert, when the group has an existing lead).
    excluded: Reason | None
    #: All exclusion reasons that apply (the first one is ``excluded``).
    reasons: list[Reason]
    #: Rejected (no usable phone, nothing stored): the reason per row.
    rejected: Reason | None
    phones: list[CleanPhone]  # to store (new lead) or append (existing lead), in dial order
    overflow_phones: list[str]  # beyond max_phones: kept in Lead.extra, not dialed
    dnc_phones: list[str]  # dropped because they are on the DNC/RNE lists
    corporate_marker: str | None
    consent_voice: bool | None  # the file's authorisation, group-wide (any NO wins)
    consent_voice_row: int | None  # the row that gave it (proof)
    consent_whatsapp: bool | None
    consent_whatsapp_row: int | None
    dedupe_key: str | None
    person_key: str | None
    merged: CleanLead  # the group's rows folded into one record (primary first)


def _fold(rows: Sequence[CleanLead]) -> CleanLead:
    first = rows[0]
    out = CleanLead(
        row=first.row,
        name=first.name,
        national_id=first.national_id,
        id_type=first.id_type,
        email=first.email,
        plate=first.plate,
        brand=first.brand,
        model=first.model,
        vehicle_year=first.vehicle_year,
        branch=first.branch,
        last_visit_date=first.last_visit_date,
        event_date=first.event_date,
        external_id=first.external_id,
        extra=dict(first.extra),
    )
    for row in rows[1:]:
        for attr in ("name", "email", "plate", "brand", "model", "vehicle_year", "branch",
                     "external_id"):  # fmt: skip
            if not getattr(out, attr):
                setattr(out, attr, getattr(row, attr))
        if out.national_id is None and row.national_id:
            out.national_id, out.id_type = row.national_id, row.id_type
        if row.last_visit_date and (
            out.last_visit_date is None or row.last_visit_date > out.last_visit_date
        ):
            out.last_visit_date = row.last_visit_date
        if row.event_date and (out.event_date is None or row.event_date > out.event_date):
            out.event_date = row.event_date
        for key, value in row.extra.items():
            out.extra.setdefault(key, value)
    return out


def _consent(rows: Sequence[CleanLead], voice: bool) -> tuple[bool | None, int | None]:
    found: tuple[bool | None, int | None] = (None, None)
    for row in rows:
        value = row.consent_voice if voice else row.consent_whatsapp
        if value is False:
            return False, row.row  # any NO wins
        if value is True and found[0] is None:
            found = (True, row.row)
    return found


def decide_group(
    group: Group,
    dnc: Container[str],
    revoked_voice: Container[str],
    options: CleaningOptions | None = None,
) -> GroupDecision:
    """Decide a group's fate. ``dnc``: E.164 numbers on the DNC/RNE lists (any container);
    ``revoked_voice``: person keys (national ids, E.164) with a revoked voice consent."""
    opts = options or CleaningOptions()
    merged = _fold(group.rows) if len(group.rows) > 1 or group.existing else group.rows[0]
    existing = group.existing
    existing_phones = set(existing.phones) if existing else set()
    candidates: list[CleanPhone] = []
    seen: set[str] = set()
    for row in group.rows:
        for phone in row.phones:
            if phone.e164 not in seen and phone.e164 not in existing_phones:
                seen.add(phone.e164)
                candidates.append(phone)
    candidates.sort(key=lambda p: p.kind is not PhoneKind.MOBILE)  # stable: mobile first
    dnc_phones = [p.e164 for p in candidates if p.e164 in dnc]
    dialable = [p for p in candidates if p.e164 not in dnc]
    room = max(0, opts.max_phones - len(existing_phones))
    phones, overflow = dialable[:room], [p.e164 for p in dialable[room:]]

    voice, voice_row = _consent(group.rows, True)
    whatsapp, whatsapp_row = _consent(group.rows, False)
    all_phones = [p.e164 for p in candidates] + list(existing_phones)
    if merged.national_id is None and existing and existing.national_id:
        merged.national_id = existing.national_id
    person_key = merged.national_id or (
        existing.phones[0] if existing and existing.phones else None
    )
    if person_key is None and (dialable or dnc_phones):
        person_key = (dialable or candidates)[0].e164
    dedupe_key = (
        f"id:{merged.national_id}"
        if merged.national_id
        else (f"tel:{person_key}" if person_key else None)
    )

    rejected: Reason | None = None
    reasons: list[Reason] = []
    marker = next((r.corporate for r in group.rows if r.corporate), None)
    if existing is None and not candidates:
        had_input = any(r.had_phone_input for r in group.rows)
        rejected = Reason.INVALID_PHONE if had_input else Reason.NO_PHONE
    else:
        if marker:
            reasons.append(Reason.CORPORATE)
        if existing is None and not dialable:
            reasons.append(Reason.DNC)
        person_keys = [k for k in (merged.national_id, *all_phones) if k]
        if voice is False or any(k in revoked_voice for k in person_keys):
            reasons.append(Reason.NO_CONSENT)
    return GroupDecision(
        excluded=reasons[0] if reasons else None,
        reasons=reasons,
        rejected=rejected,
        phones=phones,
        overflow_phones=overflow,
        dnc_phones=dnc_phones,
        corporate_marker=marker,
        consent_voice=voice,
        consent_voice_row=voice_row,
        consent_whatsapp=whatsapp,
        consent_whatsapp_row=whatsapp_row,
        dedupe_key=dedupe_key,
        person_key=person_key,
        merged=merged,
    )
