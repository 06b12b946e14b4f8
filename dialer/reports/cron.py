"""A tiny 5-field cron parser and the pure "is a report due?" logic.

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week (0-7,
0 and 7 = Sunday). Each field takes ``*``, numbers, ranges ``a-b``, steps ``*/n`` or
``a-b/n`` and comma lists. As in Vixie cron, when both day fields are restricted a day
matches if **either** matches. Times are local wall times in the given zone.

Nothing here reads the clock: callers pass ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dialer.domain.windows import TzLike, require_aware, resolve_tz

__all__ = ["CronSchedule", "InvalidCron", "due_fire", "parse_cron", "previous_fire"]

#: How far back :func:`previous_fire` looks (covers "29 February" schedules).
MAX_LOOKBACK_DAYS = 366 * 8 + 2

_ALIASES = {"@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0", "@daily": "0 0 * * *"}


class InvalidCron(ValueError):
    """A cron expression that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class CronSchedule:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month field is "*"
    any_weekday: bool  # day-of-week field is "*"

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow


def _field(text: str, lo: int, hi: int, name: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise InvalidCron(f"empty item in the {name} field")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise InvalidCron(f"bad step {step_text!r} in the {name} field")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            if not (a.isdigit() and b.isdigit()):
                raise InvalidCron(f"bad range {base!r} in the {name} field")
            start, end = int(a), int(b)
        elif base.isdigit():
            start = int(base)
            end = hi if step_text else start
        else:
            raise InvalidCron(f"bad value {base!r} in the {name} field")
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise InvalidCron(f"{part!r} is outside {lo}-{hi} in the {name} field")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> CronSchedule:
    text = _ALIASES.get(expression.strip(), expression.strip())
    fields = text.split()
    if len(fields) != 5:
        raise InvalidCron(
            f"a cron expression has 5 fields (minute hour day month weekday), got {expression!r}"
        )
    minute, hour, day, month, weekday = fields
    weekdays = _field(weekday, 0, 7, "day-of-week")
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    return CronSchedule(
        expression=expression.strip(),
        minutes=_field(minute, 0, 59, "minute"),
        hours=_field(hour, 0, 23, "hour"),
        days=_field(day, 1, 31, "day-of-month"),
        months=_field(month, 1, 12, "month"),
        weekdays=frozenset(weekdays),
        any_day=day == "*",
        any_weekday=weekday == "*",
    )


def previous_fire(schedule: CronSchedule, now: datetime, tz: TzLike = None) -> datetime | None:
    """The latest fire time ``<= now`` (aware UTC), or None if none in the look-back."""
    utc_now = require_aware(now).astimezone(UTC)
    zone = resolve_tz(tz)
    today = utc_now.astimezone(zone).date()
    times = sorted((time(h, m) for h in schedule.hours for m in schedule.minutes), reverse=True)
    for back in range(MAX_LOOKBACK_DAYS):
        day = today - timedelta(days=back)
        if not schedule.matches_day(day):
            continue
        for t in times:
            fire = datetime.combine(day, t, tzinfo=zone).astimezone(UTC)
            if fire <= utc_now:
                return fire
    return None


def due_fire(
    schedule: CronSchedule,
    now: datetime,
    last_fire: datetime | None,
    tz: TzLike = None,
) -> datetime | None:
    """The fire time to run now, if the latest one has not been handled yet.

    ``last_fire`` is the fire time of the newest scheduled run already stored. Only the
    latest fire is returned (no backfill of every missed month after a long outage).
    """
    fire = previous_fire(schedule, now, tz)
    if fire is None:
        return None
    if last_fire is not None and fire <= require_aware(last_fire, "last_fire"):
        return None
    return fire
