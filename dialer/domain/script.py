"""Campaign scripts (guiones): the placeholders an agent's screen-pop fills in.

A script is user input, so it is never passed to ``str.format``: only ``{name}`` tokens made of
lower-case letters and underscores are placeholders, and only the names in
:data:`PLACEHOLDERS` are filled. A campaign cannot be saved with any other name
(:func:`unknown_placeholders`), so an agent never reads a literal ``{agente}``.
"""

from __future__ import annotations

import re
from typing import Final

#: Placeholder -> what it is filled with (Spanish: the campaign editor shows this list).
PLACEHOLDERS: Final[dict[str, str]] = {
    "nombre": "nombre completo del cliente",
    "primer_nombre": "primer nombre del cliente",
    "cliente": "nombre completo del cliente (igual que {nombre})",
    "placa": "placa del vehículo",
    "marca": "marca del vehículo",
    "modelo": "modelo del vehículo",
    "vehiculo": "marca y modelo",
    "anio": "año del vehículo",
    "sede": "sede del concesionario",
    "asesor": "nombre del asesor que atiende la llamada",
    "campana": "nombre de la campaña",
    "telefonos_concesionario": "teléfonos del concesionario",
}

_PLACEHOLDER: Final = re.compile(r"\{([a-z_]+)\}")


def unknown_placeholders(script: str) -> list[str]:
    """Placeholder names in ``script`` that would not be filled, in order of first use."""
    return list(dict.fromkeys(m for m in _PLACEHOLDER.findall(script) if m not in PLACEHOLDERS))


def fill_script(script: str, values: dict[str, str]) -> str:
    """Replace every known placeholder with its value; anything else stays as written."""

    def _sub(match: re.Match[str]) -> str:
        key = match.group(1)
        return values[key] if key in values else match.group(0)

    return _PLACEHOLDER.sub(_sub, script)
