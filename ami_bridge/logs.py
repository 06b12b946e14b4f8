"""The bridge's logging helpers: a structlog logger and the phone-number mask.

The AMI bridge sits below the dialer and never imports it, so the digit mask lives here and
:mod:`dialer.logging` re-exports it. The bridge masks what it logs from the wire itself
(:func:`mask_digits`); every log event is masked once more by the privacy filter that
:func:`dialer.logging.configure_logging` installs (``redact``), bridge logs included.
"""

from __future__ import annotations

import re
from typing import Any

import structlog

__all__ = ["get_logger", "mask_digits"]

_DIGITS = re.compile(r"\+?\d[\d\s\-]{5,}\d")
#: Attempt ids (uuid hex) are not personal data: a digit run inside one is left alone.
_UUID_HEX = re.compile(r"\b[0-9a-f]{32}\b")


def mask_digits(text: str) -> str:
    """Mask any run of 7+ digits, keeping the last two: ``+573001234567`` -> ``+*********67``."""

    def _sub(match: re.Match[str]) -> str:
        raw = match.group(0)
        digits = [c for c in raw if c.isdigit()]
        if len(digits) < 7:
            return raw
        keep = "".join(digits[-2:])
        return ("+" if raw.startswith("+") else "") + "*" * (len(digits) - 2) + keep

    if not _UUID_HEX.search(text):
        return _DIGITS.sub(_sub, text)
    out, last = [], 0
    for m in _UUID_HEX.finditer(text):  # mask between the ids, never inside one
        out += [_DIGITS.sub(_sub, text[last : m.start()]), m.group(0)]
        last = m.end()
    out.append(_DIGITS.sub(_sub, text[last:]))
    return "".join(out)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
