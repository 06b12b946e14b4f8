"""Opt-out words in inbound replies (``STOP``, ``no más``, ``baja``...)."""

from __future__ import annotations

import re
import unicodedata

_OPT_OUT_EXACT = frozenset(
    {
        "stop",
        "baja",
        "cancelar",
        "no mas",
        "parar",
        "detener",
        "alto",
        "basta",
        "salir",
        "unsubscribe",
        "desuscribir",
        "desuscribirme",
        "no molestar",
        "no molestar mas",
        "detener promociones",
        "stop promotions",
        "no me interesa recibir mensajes",
    }
)
_OPT_OUT_PHRASES = (
    "no mas mensajes",
    "no me escriban",
    "no me envien",
    "no me manden",
    "no quiero recibir",
    "no quiero mas mensajes",
    "dejen de escribir",
    "dejen de enviar",
    "darme de baja",
    "dar de baja",
    "eliminen mi numero",
    "borren mi numero",
)
_PUNCT = re.compile(r"[^\w\s]")


def normalise_text(text: str) -> str:
    """Lower case, accents and punctuation/emoji removed, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_PUNCT.sub(" ", plain).split())


def is_opt_out(text: str) -> bool:
    """``STOP``, ``no más``, ``baja``, ``cancelar`` and similar (short messages only).

    Exact keywords, a keyword followed by at most two words ("baja por favor"), or an
    unambiguous phrase anywhere ("por favor no me escriban más").
    """
    norm = normalise_text(text)
    if not norm:
        return False
    if norm in _OPT_OUT_EXACT:
        return True
    words = norm.split()
    for kw in _OPT_OUT_EXACT:
        kw_words = kw.split()
        if words[: len(kw_words)] == kw_words and len(words) <= len(kw_words) + 2:
            return True
    return any(p in norm for p in _OPT_OUT_PHRASES)
