"""Structured logging (structlog) with privacy filters.

Every log event passes through :func:`redact`: phone numbers and national ids (runs of 7+
digits, optionally with a leading '+') are masked, and values of secret-looking keys are
dropped. Configure once from the CLI or app factory with :func:`configure_logging`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_DIGITS = re.compile(r"\+?\d[\d\s\-]{5,}\d")
#: Attempt ids (uuid hex) are not personal data: a digit run inside one is left alone.
_UUID_HEX = re.compile(r"\b[0-9a-f]{32}\b")
_SECRET_KEYS = re.compile(r"secret|password|passwd|token|api_key|apikey|authorization|cookie", re.I)


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


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_digits(value)
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_KEYS.search(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in list(event_dict):
        if _SECRET_KEYS.search(key):
            event_dict[key] = "***"
        elif key not in ("timestamp", "level"):
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(level: str = "info", json_logs: bool = False) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
