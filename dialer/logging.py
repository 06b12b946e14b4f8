"""Structured logging (structlog) with privacy filters.

Every log event passes through :func:`redact`: phone numbers and national ids (runs of 7+
digits, optionally with a leading '+') are masked, and values of secret-looking keys are
dropped. Configure once from the CLI or app factory with :func:`configure_logging`. The mask
(:func:`mask_digits`) and :func:`get_logger` live in :mod:`ami_bridge.logs`, the bottom layer,
so the AMI bridge uses them without importing the dialer; they are re-exported here.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from ami_bridge.logs import get_logger as get_logger
from ami_bridge.logs import mask_digits as mask_digits

_SECRET_KEYS = re.compile(r"secret|password|passwd|token|api_key|apikey|authorization|cookie", re.I)


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
