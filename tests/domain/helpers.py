"""Shared helpers for the pure domain tests (fixed datetimes, one holiday calendar)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dialer.domain.windows import HolidayCalendar

BOGOTA = ZoneInfo("America/Bogota")
CAL = HolidayCalendar("CO")


def bog(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A wall-clock instant in Bogotá (UTC-5, no DST)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BOGOTA)
