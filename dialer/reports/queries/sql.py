"""SQL helpers shared by the indicator queries.

The one dialect-specific piece is :class:`seconds_between` (a duration in seconds), compiled for
each dialect below. Per-day buckets are ``CASE`` expressions over bound day boundaries
(:func:`day_bucket`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from dialer.db.models import UTCDateTime
from dialer.domain.windows import resolve_tz

__all__ = [
    "day_bucket",
    "int_of",
    "local_date",
    "seconds_between",
    "secs_of",
    "text_of",
    "ts_param",
]


class seconds_between(sa.sql.functions.FunctionElement[float]):  # noqa: N801 - SQL function
    """``end - start`` in seconds (float). NULL if either side is NULL."""

    type = sa.Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between)
def _seconds_pg(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(end, **kw)} - {compiler.process(start, **kw)}))"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = list(element.clauses)
    return (
        f"((julianday({compiler.process(end, **kw)}) - "
        f"julianday({compiler.process(start, **kw)})) * 86400.0)"
    )


def ts_param(value: datetime) -> ColumnElement[datetime]:
    """``value`` as a bound UTC timestamp."""
    return sa.literal(value, UTCDateTime())


def day_bucket(column: Any, bounds: Sequence[datetime]) -> ColumnElement[int]:
    """Index of the local day ``column`` falls in (bounds: day starts + end), else -1."""
    whens = [(column < b, i) for i, b in enumerate(bounds[1:])]
    return sa.case(*whens, else_=-1)


def text_of(value: Any) -> str:
    """An enum's value (or the value itself) as text."""
    return str(getattr(value, "value", value))


def int_of(value: Any) -> int:
    """A count or SUM that may be NULL, as an int."""
    return int(value or 0)


def secs_of(value: Any) -> int:
    """A SUM of seconds that may be NULL, rounded to whole seconds."""
    return round(float(value or 0))


def local_date(value: datetime, tz: str) -> date:
    return value.astimezone(resolve_tz(tz)).date()
