"""Column mapping: which file column feeds which lead field.

Headers are compared after :func:`normalize_header` (accents, case, punctuation and spacing
removed), so ``"Teléfono 2"``, ``"TELEFONO_2"`` and ``"telefono 2"`` are the same column. The
Spanish defaults cover the exports of the dealer system; a JSON file can add or override
entries::

    {"columns": {"Tel Casa": "phone", "Doc": "national_id", "Observaciones": "ignore"},
     "use_defaults": true}

(a flat ``{"header": "field"}`` object is accepted too). Columns that map to nothing are kept
in ``Lead.extra`` under their original header. ``phone`` and ``event_date`` may come from several
columns; for every other field the first matching column wins and the rest go to ``extra``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from dialer.importing.errors import MappingError

__all__ = [
    "DEFAULT_ALIASES",
    "ColumnMapping",
    "LeadField",
    "MappedRow",
    "ResolvedMapping",
    "normalize_header",
]


class LeadField(StrEnum):
    NAME = "name"
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    NATIONAL_ID = "national_id"
    ID_TYPE = "id_type"
    PHONE = "phone"  # several columns allowed
    EMAIL = "email"
    PLATE = "plate"
    BRAND = "brand"
    MODEL = "model"
    VEHICLE_YEAR = "vehicle_year"
    BRANCH = "branch"
    LAST_VISIT_DATE = "last_visit_date"
    EVENT_DATE = "event_date"  # purchase or service date; several columns allowed
    EXTERNAL_ID = "external_id"
    CONSENT = "consent"  # general data authorisation (habeas data): voice and WhatsApp
    CONSENT_VOICE = "consent_voice"
    CONSENT_WHATSAPP = "consent_whatsapp"
    IGNORE = "ignore"  # drop the column entirely


MULTI_FIELDS = frozenset({LeadField.PHONE, LeadField.EVENT_DATE})

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_header(header: str) -> str:
    """``"  Teléfono_2 "`` -> ``"telefono 2"``; ``"Año Modelo"`` -> ``"ano modelo"``."""
    decomposed = unicodedata.normalize("NFKD", header)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return _NON_ALNUM.sub(" ", plain).strip()


def _aliases(entries: Mapping[LeadField, tuple[str, ...]]) -> dict[str, LeadField]:
    out: dict[str, LeadField] = {}
    for lead_field, names in entries.items():
        for name in names:
            out[normalize_header(name)] = lead_field
    return out


DEFAULT_ALIASES: dict[str, LeadField] = _aliases(
    {
        LeadField.NAME: (
            "nombre", "nombre completo", "nombre cliente", "nombre del cliente", "cliente",
            "nombres y apellidos", "nombre y apellido", "razón social", "razon social",
            "propietario", "titular", "name", "customer",
        ),
        LeadField.FIRST_NAME: ("nombres", "primer nombre", "first name"),
        LeadField.LAST_NAME: ("apellidos", "apellido", "primer apellido", "last name"),
        LeadField.NATIONAL_ID: (
            "cédula", "cedula", "cédula/nit", "cedula nit", "nit", "nit/cc", "cc", "c.c.",
            "documento", "número documento", "numero documento", "no documento",
            "nro documento", "num documento", "documento identidad", "identificación",
            "identificacion", "número identificación", "numero identificacion",
            "num identificacion", "nro identificacion", "id cedula", "doc", "national id",
        ),
        LeadField.ID_TYPE: (
            "tipo documento", "tipo de documento", "tipo doc", "tipo identificación",
            "tipo identificacion", "tipo id", "id type",
        ),
        LeadField.PHONE: (
            "teléfono", "telefono", "tel", "tel.", "teléfono 1", "telefono 1", "teléfono 2",
            "telefono 2", "teléfono 3", "telefono 3", "teléfono fijo", "telefono fijo", "fijo",
            "tel fijo", "teléfono casa", "telefono casa", "teléfono oficina",
            "telefono oficina", "teléfonos", "telefonos", "celular", "celular 1", "celular 2",
            "cel", "cel.", "móvil", "movil", "teléfono celular", "telefono celular",
            "teléfono móvil", "telefono movil", "número celular", "numero celular",
            "número de contacto", "numero de contacto", "whatsapp", "phone",
            "mobile",
        ),
        LeadField.EMAIL: ("email", "e-mail", "correo", "correo electrónico", "correo electronico",
                          "mail"),
        LeadField.PLATE: ("placa", "placas", "plate"),
        LeadField.BRAND: ("marca", "brand"),
        LeadField.MODEL: ("modelo", "línea", "linea", "vehículo", "vehiculo", "model"),
        LeadField.VEHICLE_YEAR: ("año", "ano", "año modelo", "ano modelo", "modelo año",
                                 "modelo ano", "year"),
        LeadField.BRANCH: ("sede", "sucursal", "sede taller", "taller", "punto de venta",
                           "concesionario", "agencia", "branch"),
        LeadField.LAST_VISIT_DATE: (
            "fecha última visita", "fecha ultima visita", "última visita", "ultima visita",
            "fecha último servicio", "fecha ultimo servicio", "fecha ult visita",
            "fecha última entrada", "fecha ultima entrada", "ultima entrada taller",
        ),
        LeadField.EVENT_DATE: (
            "fecha de compra", "fecha compra", "fecha de servicio", "fecha servicio",
            "fecha de venta", "fecha venta", "fecha entrega", "fecha de entrega",
            "fecha factura", "servicio",
        ),
        LeadField.EXTERNAL_ID: ("id cliente", "código", "codigo", "código cliente",
                                "codigo cliente", "cod cliente", "id", "external id"),
        LeadField.CONSENT: (
            "habeas data", "autorización", "autorizacion", "autoriza", "autoriza datos",
            "autorización datos", "autorizacion datos", "autoriza tratamiento de datos",
            "tratamiento de datos", "acepta contacto", "autoriza contacto",
        ),
        LeadField.CONSENT_VOICE: ("autoriza llamadas", "autoriza llamada", "acepta llamadas"),
        LeadField.CONSENT_WHATSAPP: ("autoriza whatsapp", "acepta whatsapp",
                                     "whatsapp autorizado", "autorización whatsapp",
                                     "autorizacion whatsapp"),
    }
)  # fmt: skip

# Headers not in the table above but clearly of one kind ("Teléfono 4", "Celular principal").
_PREFIX_RULES: tuple[tuple[re.Pattern[str], LeadField], ...] = (
    (re.compile(r"^(autoriza|acepta)\w* (whatsapp|wa)\b"), LeadField.CONSENT_WHATSAPP),
    (re.compile(r"^(autoriza|acepta)\w* (llamad|voz|telef)"), LeadField.CONSENT_VOICE),
    (re.compile(r"^(tel|telefono|telefonos|celular|cel|movil|fijo)( |$)"), LeadField.PHONE),
    (re.compile(r"^fecha (de )?(ultima|ult) (visita|entrada|servicio)"), LeadField.LAST_VISIT_DATE),
)


def _parse_field(value: Any, where: str) -> LeadField:
    try:
        return LeadField(str(value).strip().lower())
    except ValueError:
        valid = ", ".join(f.value for f in LeadField)
        raise MappingError(
            f"Campo desconocido {value!r} en el mapeo ({where}). Campos válidos: {valid}.",
            f"Unknown field {value!r} in the mapping ({where}). Valid fields: {valid}.",
            field=str(value),
        ) from None


@dataclass(frozen=True, slots=True)
class MappedRow:
    """A data row split into lead fields (raw text, not cleaned yet)."""

    number: int
    values: dict[LeadField, str]
    phones: list[str]
    event_dates: list[str]
    extra: dict[str, str]
    extra_cells: int = 0  # cells beyond the header's width (kept in extra)


@dataclass(frozen=True, slots=True)
class ResolvedMapping:
    """The mapping applied to one file's headers."""

    headers: list[str]
    fields: list[LeadField | None]  # per column; None -> extra
    #: Column indexes per role, computed once (``apply`` runs for every row).
    _values: tuple[tuple[int, LeadField], ...] = field(init=False, repr=False, compare=False)
    _extra: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)
    _phones: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _event_dates: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        columns = list(enumerate(self.fields))
        plain = (LeadField.PHONE, LeadField.EVENT_DATE, LeadField.IGNORE)
        values = tuple((i, f) for i, f in columns if f is not None and f not in plain)
        object.__setattr__(self, "_values", values)
        extra = tuple((i, self.headers[i]) for i, f in columns if f is None)
        object.__setattr__(self, "_extra", extra)
        phones = tuple(i for i, f in columns if f is LeadField.PHONE)
        object.__setattr__(self, "_phones", phones)
        events = tuple(i for i, f in columns if f is LeadField.EVENT_DATE)
        object.__setattr__(self, "_event_dates", events)

    @property
    def used(self) -> dict[str, str]:
        """Original header -> field name (``"extra"`` for unmapped columns)."""
        return {
            h: (f.value if f else "extra") for h, f in zip(self.headers, self.fields, strict=True)
        }

    @property
    def unmapped(self) -> list[str]:
        return [h for h, f in zip(self.headers, self.fields, strict=True) if f is None]

    def has(self, lead_field: LeadField) -> bool:
        return lead_field in self.fields

    def apply(self, number: int, cells: list[str]) -> MappedRow:
        width = len(self.headers)
        if len(cells) < width:  # a short row: the missing cells are blank
            cells = [*cells, *([""] * (width - len(cells)))]
        values = {f: v for i, f in self._values if (v := cells[i])}
        phones = [v for i in self._phones if (v := cells[i])]
        event_dates = [v for i in self._event_dates if (v := cells[i])]
        extra = {h: v for i, h in self._extra if (v := cells[i])}
        overflow = [c for c in cells[width:] if c]
        for offset, value in enumerate(overflow):
            extra[f"columna_{width + offset + 1}"] = value
        return MappedRow(number, values, phones, event_dates, extra, len(overflow))


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Header -> field overrides on top of the Spanish defaults."""

    columns: Mapping[str, LeadField] = field(default_factory=dict)
    use_defaults: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnMapping:
        if "columns" in data and isinstance(data["columns"], Mapping):
            raw_columns: Mapping[str, Any] = data["columns"]
            use_defaults = data.get("use_defaults", True)
            if not isinstance(use_defaults, bool):
                raise MappingError(
                    "'use_defaults' debe ser true o false.", "'use_defaults' must be a boolean."
                )
            unknown = set(data) - {"columns", "use_defaults"}
            if unknown:
                raise MappingError(
                    f"Claves desconocidas en el mapeo: {', '.join(sorted(unknown))}.",
                    f"Unknown keys in the mapping: {', '.join(sorted(unknown))}.",
                )
        else:
            raw_columns, use_defaults = data, True
        columns: dict[str, LeadField] = {}
        for header, value in raw_columns.items():
            if not isinstance(header, str) or not normalize_header(header):
                raise MappingError(
                    f"Encabezado inválido en el mapeo: {header!r}.",
                    f"Invalid header in the mapping: {header!r}.",
                )
            columns[normalize_header(header)] = _parse_field(value, header)
        return cls(columns=columns, use_defaults=use_defaults)

    @classmethod
    def from_json(cls, path: Path | str) -> ColumnMapping:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise MappingError(
                f"No se pudo leer el archivo de mapeo: {exc.strerror or exc}.",
                f"Cannot read the mapping file: {exc.strerror or exc}.",
            ) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MappingError(
                f"El archivo de mapeo no es JSON válido: {exc}.",
                f"The mapping file is not valid JSON: {exc}.",
            ) from exc
        if not isinstance(data, dict):
            raise MappingError(
                "El mapeo debe ser un objeto JSON {encabezado: campo}.",
                "The mapping must be a JSON object {header: field}.",
            )
        return cls.from_dict(data)

    def field_for(self, header: str) -> LeadField | None:
        key = normalize_header(header)
        if key in self.columns:
            return self.columns[key]
        if not self.use_defaults:
            return None
        if key in DEFAULT_ALIASES:
            return DEFAULT_ALIASES[key]
        for pattern, lead_field in _PREFIX_RULES:
            if pattern.search(key):
                return lead_field
        return None

    def resolve(self, headers: list[str]) -> ResolvedMapping:
        """Map a file's headers; raises :class:`MappingError` when no phone column exists."""
        fields: list[LeadField | None] = []
        seen: set[LeadField] = set()
        for header in headers:
            lead_field = self.field_for(header)
            if lead_field is not None and lead_field not in MULTI_FIELDS:
                if lead_field in seen and lead_field is not LeadField.IGNORE:
                    lead_field = None  # a second "nombre" column: keep it in extra
                else:
                    seen.add(lead_field)
            fields.append(lead_field)
        resolved = ResolvedMapping(headers=list(headers), fields=fields)
        if not resolved.has(LeadField.PHONE):
            shown = ", ".join(headers[:20])
            raise MappingError(
                "No se encontró ninguna columna de teléfono (teléfono, celular, móvil...). "
                f"Columnas del archivo: {shown}. Indique el mapeo con --mapping.",
                "No phone column found (teléfono, celular, móvil...). "
                f"File columns: {shown}. Give a mapping with --mapping.",
                headers=headers[:50],
            )
        return resolved
