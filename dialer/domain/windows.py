"""Call windows: when a lead may be called (design.md §6, Ley 2300 de 2023).

A :class:`CallWindow` is a weekly schedule (one or more time ranges per weekday, in local wall
time) that is evaluated in the *lead's* time zone (default ``America/Bogota``). Sundays and
Colombian public holidays are always closed; the legal defaults are Mon–Fri 07:00–19:00 and
Sat 08:00–15:00. A campaign may tighten the window but never loosen it: constructing a
:class:`CallWindow` that reaches outside the legal hours raises :class:`InvalidCallWindow`.

Everything here is pure: callers pass ``now`` (timezone-aware). Every instant returned by this
module is timezone-aware **UTC**; format it in the lead's zone for display.

Holidays come from the ``holidays`` package through an explicit :class:`HolidayCalendar`,
which caches one year at a time. The engine builds one calendar and passes it down; functions
that receive ``calendar=None`` use a lazily created process-wide calendar (never built at
import time).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Self, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from dialer.domain.errors import InvalidCallWindow, InvalidTimeZone, NaiveDatetimeError

__all__ = [
    "DEFAULT_TZ",
    "DEFAULT_TZ_NAME",
    "LEGAL_HOURS",
    "MIN_RING_TIME",
    "WEEKDAY_FIELDS",
    "CallWindow",
    "ClosedReason",
    "HolidayCalendar",
    "TimeRange",
    "TzLike",
    "WindowStatus",
    "can_start_call",
    "check_legal",
    "closes_at",
    "default_calendar",
    "is_open",
    "next_dialable",
    "next_open",
    "require_aware",
    "resolve_tz",
    "window_status",
]

DEFAULT_TZ_NAME = "America/Bogota"
DEFAULT_TZ = ZoneInfo(DEFAULT_TZ_NAME)

#: A call rings for at least this long (design.md §6); a call must not ring past the close.
MIN_RING_TIME = timedelta(seconds=15)

#: Shortest range a window may contain.
MIN_RANGE = timedelta(minutes=1)

#: How far ahead ``next_open``/``next_dialable`` look before declaring the window dead.
MAX_SEARCH_DAYS = 400

#: Field names of the weekly schedule, indexed by ``date.weekday()`` (Monday = 0).
WEEKDAY_FIELDS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: Legal contact hours per weekday (Ley 2300 de 2023, art. 3). ``None`` = never.
LEGAL_HOURS: tuple[tuple[time, time] | None, ...] = (
    (time(7), time(19)),
    (time(7), time(19)),
    (time(7), time(19)),
    (time(7), time(19)),
    (time(7), time(19)),
    (time(8), time(15)),
    None,
)

_DAY_NAMES_ES = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")

TzLike: TypeAlias = ZoneInfo | str | None


# --------------------------------------------------------------------------- helpers


def resolve_tz(tz: TzLike) -> ZoneInfo:
    """Turn a zone name (or None for the default) into a ZoneInfo, with a typed error."""
    if tz is None:
        return DEFAULT_TZ
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimeZone(f"unknown time zone {tz!r}", tz=tz) from exc


def require_aware(value: datetime, name: str = "now") -> datetime:
    """Reject naive datetimes: the core only works with unambiguous instants."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{name} must be timezone-aware, got {value!r}", field=name)
    return value


def _at(d: date, t: time, tz: tzinfo) -> datetime:
    """Local wall time ``d t`` in ``tz`` as a UTC instant."""
    return datetime.combine(d, t, tzinfo=tz).astimezone(UTC)


# --------------------------------------------------------------------------- holidays


class HolidayCalendar:
    """Public holidays of one country, loaded lazily and cached per year.

    Not thread-hostile: the cache only ever grows with immutable per-year mappings.
    """

    def __init__(self, country: str = "CO", subdiv: str | None = None) -> None:
        self.country = country
        self.subdiv = subdiv
        self._years: dict[int, dict[date, str]] = {}

    def _year(self, year: int) -> dict[date, str]:
        cached = self._years.get(year)
        if cached is None:
            raw = holidays.country_holidays(
                self.country, subdiv=self.subdiv, years=year, language="es"
            )
            cached = {d: str(name) for d, name in raw.items()}
            self._years[year] = cached
        return cached

    def is_holiday(self, day: date) -> bool:
        return day in self._year(day.year)

    def name(self, day: date) -> str | None:
        """The holiday's Spanish name, or None on a working day."""
        return self._year(day.year).get(day)

    def holidays_in(self, year: int) -> dict[date, str]:
        return dict(self._year(year))


@functools.cache
def default_calendar() -> HolidayCalendar:
    """Process-wide Colombian calendar, created on first use (not at import)."""
    return HolidayCalendar("CO")


# --------------------------------------------------------------------------- the window model


class TimeRange(BaseModel):
    """A half-open local time range ``[start, end)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidCallWindow("window times are local wall times; drop the offset")
        span = datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)
        if span < MIN_RANGE:
            raise InvalidCallWindow(
                f"range {self.start:%H:%M}-{self.end:%H:%M} must end after it starts "
                f"and last at least {int(MIN_RANGE.total_seconds() // 60)} min",
                start=self.start.isoformat(),
                end=self.end.isoformat(),
            )
        return self

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _legal(day: int) -> tuple[TimeRange, ...]:
    hours = LEGAL_HOURS[day]
    return () if hours is None else (TimeRange(start=hours[0], end=hours[1]),)


class CallWindow(BaseModel):
    """Weekly contact schedule. Sundays and public holidays are always closed.

    JSON shape (``to_dict``)::

        {"mon": [{"start": "07:00:00", "end": "19:00:00"}], ..., "sun": [],
         "closed_dates": ["2026-12-24"]}

    ``closed_dates`` adds extra closed days (e.g. a company day off) on top of holidays.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mon: tuple[TimeRange, ...] = _legal(0)
    tue: tuple[TimeRange, ...] = _legal(1)
    wed: tuple[TimeRange, ...] = _legal(2)
    thu: tuple[TimeRange, ...] = _legal(3)
    fri: tuple[TimeRange, ...] = _legal(4)
    sat: tuple[TimeRange, ...] = _legal(5)
    sun: tuple[TimeRange, ...] = ()
    closed_dates: frozenset[date] = frozenset()

    @field_validator("mon", "tue", "wed", "thu", "fri", "sat", "sun", mode="after")
    @classmethod
    def _normalise(cls, ranges: tuple[TimeRange, ...]) -> tuple[TimeRange, ...]:
        """Sort, reject overlaps and merge touching ranges."""
        merged: list[TimeRange] = []
        for r in sorted(ranges, key=lambda r: r.start):
            if merged and r.start < merged[-1].end:
                raise InvalidCallWindow(
                    f"ranges {merged[-1]} and {r} overlap", first=str(merged[-1]), second=str(r)
                )
            if merged and r.start == merged[-1].end:
                merged[-1] = TimeRange(start=merged[-1].start, end=r.end)
            else:
                merged.append(r)
        return tuple(merged)

    @model_validator(mode="after")
    def _legal_and_not_empty(self) -> Self:
        check_legal(self)
        if not any(self.ranges(day) for day in range(7)):
            raise InvalidCallWindow("the call window never opens")
        return self

    def ranges(self, weekday: int) -> tuple[TimeRange, ...]:
        """Ranges of a weekday (Monday = 0)."""
        value: tuple[TimeRange, ...] = getattr(self, WEEKDAY_FIELDS[weekday])
        return value

    @classmethod
    def legal_default(cls) -> CallWindow:
        """The widest window the law allows (Ley 2300): the campaign default."""
        return cls()

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["closed_dates"] = sorted(data["closed_dates"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallWindow:
        return cls.model_validate(data)

    def describe_es(self) -> str:
        parts = []
        for day in range(7):
            rs = self.ranges(day)
            parts.append(f"{_DAY_NAMES_ES[day]} " + (", ".join(map(str, rs)) if rs else "cerrado"))
        return "; ".join(parts) + "; festivos cerrado"


def check_legal(window: CallWindow) -> None:
    """Raise :class:`InvalidCallWindow` if any range is outside the legal contact hours."""
    for day in range(7):
        legal = LEGAL_HOURS[day]
        for r in window.ranges(day):
            if legal is None:
                raise InvalidCallWindow(
                    f"calls are not allowed on {WEEKDAY_FIELDS[day]} (Ley 2300 de 2023)",
                    day=WEEKDAY_FIELDS[day],
                    range=str(r),
                )
            if r.start < legal[0] or r.end > legal[1]:
                raise InvalidCallWindow(
                    f"{WEEKDAY_FIELDS[day]} range {r} is outside the legal hours "
                    f"{legal[0]:%H:%M}-{legal[1]:%H:%M} (Ley 2300 de 2023)",
                    day=WEEKDAY_FIELDS[day],
                    range=str(r),
                    legal=f"{legal[0]:%H:%M}-{legal[1]:%H:%M}",
                )


# --------------------------------------------------------------------------- evaluation


class ClosedReason(StrEnum):
    SUNDAY = "sunday"
    HOLIDAY = "holiday"
    CLOSED_DATE = "closed_date"
    NOT_A_CALLING_DAY = "not_a_calling_day"
    BEFORE_HOURS = "before_hours"
    AFTER_HOURS = "after_hours"
    BETWEEN_RANGES = "between_ranges"
    TOO_CLOSE_TO_CLOSE = "too_close_to_close"


def _day_closed(window: CallWindow, day: date, cal: HolidayCalendar) -> ClosedReason | None:
    if day.weekday() == 6:
        return ClosedReason.SUNDAY
    if cal.is_holiday(day):
        return ClosedReason.HOLIDAY
    if day in window.closed_dates:
        return ClosedReason.CLOSED_DATE
    if not window.ranges(day.weekday()):
        return ClosedReason.NOT_A_CALLING_DAY
    return None


def _intervals(
    window: CallWindow, day: date, tz: ZoneInfo, cal: HolidayCalendar
) -> list[tuple[datetime, datetime]]:
    if _day_closed(window, day, cal) is not None:
        return []
    return [(_at(day, r.start, tz), _at(day, r.end, tz)) for r in window.ranges(day.weekday())]


def _walk(
    window: CallWindow, now: datetime, tz: ZoneInfo, cal: HolidayCalendar
) -> Iterator[tuple[datetime, datetime]]:
    """Open intervals (UTC) that end after ``now``, in order, for MAX_SEARCH_DAYS days."""
    day = now.astimezone(tz).date() - timedelta(days=1)  # DST-safe margin
    for _ in range(MAX_SEARCH_DAYS):
        for start, end in _intervals(window, day, tz, cal):
            if end > now:
                yield start, end
        day += timedelta(days=1)


def _prepare(
    now: datetime, tz: TzLike, calendar: HolidayCalendar | None
) -> tuple[datetime, ZoneInfo, HolidayCalendar]:
    return (
        require_aware(now).astimezone(UTC),
        resolve_tz(tz),
        calendar if calendar is not None else default_calendar(),
    )


def _current(
    window: CallWindow, now: datetime, tz: ZoneInfo, cal: HolidayCalendar
) -> tuple[datetime, datetime] | None:
    local_day = now.astimezone(tz).date()
    for start, end in _intervals(window, local_day, tz, cal):
        if start <= now < end:
            return start, end
    return None


def is_open(
    window: CallWindow,
    now: datetime,
    tz: TzLike = DEFAULT_TZ,
    *,
    calendar: HolidayCalendar | None = None,
) -> bool:
    """Is the window open at ``now`` in the lead's zone ``tz``?"""
    utc_now, zone, cal = _prepare(now, tz, calendar)
    return _current(window, utc_now, zone, cal) is not None


def closes_at(
    window: CallWindow,
    now: datetime,
    tz: TzLike = DEFAULT_TZ,
    *,
    calendar: HolidayCalendar | None = None,
) -> datetime | None:
    """When the currently open range closes (UTC), or None if the window is closed now."""
    utc_now, zone, cal = _prepare(now, tz, calendar)
    current = _current(window, utc_now, zone, cal)
    return None if current is None else current[1]


def next_open(
    window: CallWindow,
    now: datetime,
    tz: TzLike = DEFAULT_TZ,
    *,
    calendar: HolidayCalendar | None = None,
) -> datetime:
    """The earliest instant >= ``now`` at which the window is open (``now`` itself if open).

    Skips Sundays, holidays and closed dates.
    """
    return next_dialable(window, now, tz, ring_time=timedelta(0), calendar=calendar)


def can_start_call(
    window: CallWindow,
    now: datetime,
    tz: TzLike = DEFAULT_TZ,
    *,
    ring_time: timedelta = MIN_RING_TIME,
    calendar: HolidayCalendar | None = None,
) -> bool:
    """May a call be launched now? The window must be open and stay open for the whole
    ring time (``now + ring_time <= closes_at``), so no phone rings after the close."""
    utc_now, zone, cal = _prepare(now, tz, calendar)
    current = _current(window, utc_now, zone, cal)
    return current is not None and utc_now + ring_time <= current[1]


def next_dialable(
    window: CallWindow,
    now: datetime,
    tz: TzLike = DEFAULT_TZ,
    *,
    ring_time: timedelta = MIN_RING_TIME,
    calendar: HolidayCalendar | None = None,
) -> datetime:
    """The earliest instant >= ``now`` at which :func:`can_start_call` is true (UTC).

    This is where retries are snapped to. Raises :class:`InvalidCallWindow` if the window
    does not open within ``MAX_SEARCH_DAYS`` (e.g. every range is shorter than the ring time).
    """
    if ring_time < timedelta(0):
        raise InvalidCallWindow("ring_time must not be negative", ring_time=str(ring_time))
    utc_now, zone, cal = _prepare(now, tz, calendar)
    for start, end in _walk(window, utc_now, zone, cal):
        candidate = max(start, utc_now)
        if candidate + ring_time <= end:
            return candidate
    raise InvalidCallWindow(
        f"the call window does not open within {MAX_SEARCH_DAYS} days",
        ring_time=str(ring_time),
    )


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """Everything ``lead explain`` needs to say about the window at one instant."""

    open: bool
    dialable: bool  # open and the ring time fits before the close
    reason: ClosedReason | None  # why not dialable (None when dialable)
    holiday_name: str | None
    local_time: datetime  # ``now`` in the lead's zone
    closes_at: datetime | None
    next_dialable_at: datetime


def window_status(
    window: CallWindow,
    now: datetime,
    tz: TzLike = DEFAULT_TZ,
    *,
    ring_time: timedelta = MIN_RING_TIME,
    calendar: HolidayCalendar | None = None,
) -> WindowStatus:
    utc_now, zone, cal = _prepare(now, tz, calendar)
    local = utc_now.astimezone(zone)
    current = _current(window, utc_now, zone, cal)
    dialable = current is not None and utc_now + ring_time <= current[1]
    reason: ClosedReason | None = None
    if current is not None and not dialable:
        reason = ClosedReason.TOO_CLOSE_TO_CLOSE
    elif current is None:
        reason = _day_closed(window, local.date(), cal)
        if reason is None:
            todays = _intervals(window, local.date(), zone, cal)
            if utc_now < todays[0][0]:
                reason = ClosedReason.BEFORE_HOURS
            elif utc_now >= todays[-1][1]:
                reason = ClosedReason.AFTER_HOURS
            else:
                reason = ClosedReason.BETWEEN_RANGES
    return WindowStatus(
        open=current is not None,
        dialable=dialable,
        reason=reason,
        holiday_name=cal.name(local.date()),
        local_time=local,
        closes_at=None if current is None else current[1],
        next_dialable_at=next_dialable(window, utc_now, zone, ring_time=ring_time, calendar=cal),
    )
