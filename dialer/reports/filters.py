"""Report filters and periods (pure).

A period is a range of **local calendar days** ``[start, end)`` in one time zone (the
campaigns' zone, ``America/Bogota`` by default). Its UTC boundaries, and the UTC start of every
local day in it, are computed here in Python and passed to SQL as bound parameters, so the
queries use no database-specific date functions and work unchanged on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dialer.domain.outcomes import CampaignType
from dialer.domain.windows import DEFAULT_TZ_NAME, resolve_tz

__all__ = ["MAX_PERIOD_DAYS", "InvalidReportFilter", "ReportFilter", "previous_month"]

#: Longest period a report may cover (a year plus a leap day).
MAX_PERIOD_DAYS = 366

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class InvalidReportFilter(ValueError):
    """A report filter that cannot be used (bad month, empty range...)."""


def _month_bounds(text: str) -> tuple[date, date]:
    match = _MONTH.match(text.strip())
    if match is None:
        raise InvalidReportFilter(f"month must look like 2026-10, got {text!r}")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or not 2000 <= year <= 2100:
        raise InvalidReportFilter(f"month out of range: {text!r}")
    start = date(year, month, 1)
    end = date(year + (month == 12), month % 12 + 1, 1)
    return start, end


def previous_month(day: date) -> str:
    """The calendar month before ``day``'s month, as ``YYYY-MM``."""
    first = day.replace(day=1) - timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


class ReportFilter(BaseModel):
    """Which data an indicator covers. Empty tuples mean "no restriction".

    ``start``/``end`` are local dates; ``end`` is exclusive. Brand and branch match
    case-insensitively.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: date
    end: date
    timezone: str = DEFAULT_TZ_NAME
    campaign_ids: tuple[int, ...] = ()
    campaign_types: tuple[CampaignType, ...] = ()
    brands: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()
    agent_ids: tuple[int, ...] = ()
    label: str = Field(default="", max_length=40)

    @field_validator("brands", "branches", mode="after")
    @classmethod
    def _clean(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({v.strip() for v in values if v.strip()}))

    @field_validator("campaign_ids", "agent_ids", mode="after")
    @classmethod
    def _sorted_ids(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(values)))

    @model_validator(mode="after")
    def _check(self) -> Self:
        resolve_tz(self.timezone)
        if self.end <= self.start:
            raise InvalidReportFilter(
                f"the period must end after it starts ({self.start} .. {self.end})"
            )
        if self.start.year < 2000 or self.end.year > 2101:
            raise InvalidReportFilter("report periods lie between the years 2000 and 2100")
        if (self.end - self.start).days > MAX_PERIOD_DAYS:
            raise InvalidReportFilter(f"a report covers at most {MAX_PERIOD_DAYS} days")
        if not self.label:
            object.__setattr__(self, "label", self.default_label())
        return self

    # ------------------------------------------------------------------ constructors
    @classmethod
    def for_month(cls, month: str, **kwargs: Any) -> ReportFilter:
        start, end = _month_bounds(month)
        return cls(start=start, end=end, label=month, **kwargs)

    @classmethod
    def for_dates(cls, first: date, last: date, **kwargs: Any) -> ReportFilter:
        """Both days inclusive."""
        if last >= date(2100, 12, 31):
            raise InvalidReportFilter("report periods lie between the years 2000 and 2100")
        return cls(start=first, end=last + timedelta(days=1), **kwargs)

    # ------------------------------------------------------------------ derived values
    def default_label(self) -> str:
        if self.start.day == 1 and _month_bounds(f"{self.start:%Y-%m}")[1] == self.end:
            return f"{self.start:%Y-%m}"
        return f"{self.start.isoformat()}_{(self.end - timedelta(days=1)).isoformat()}"

    @property
    def zone(self) -> ZoneInfo:
        return resolve_tz(self.timezone)

    def local_midnight(self, day: date) -> datetime:
        """UTC instant of local midnight starting ``day``."""
        return datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)

    @property
    def start_utc(self) -> datetime:
        return self.local_midnight(self.start)

    @property
    def end_utc(self) -> datetime:
        return self.local_midnight(self.end)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    def day_bounds(self, first: date | None = None) -> list[datetime]:
        """UTC starts of each local day from ``first`` (default: the period start) to the end,
        plus the end itself: ``len(days) + 1`` instants."""
        day = first or self.start
        out: list[datetime] = []
        while day <= self.end:
            out.append(self.local_midnight(day))
            day += timedelta(days=1)
        return out

    @property
    def has_lead_filters(self) -> bool:
        return bool(self.campaign_ids or self.campaign_types or self.brands or self.branches)

    def as_of(self, now: datetime) -> datetime:
        """The instant the report describes: the period end, or ``now`` if earlier."""
        return min(self.end_utc, now.astimezone(UTC))

    def describe(self) -> dict[str, Any]:
        """JSON-friendly view (stored with report runs, shown in report headers)."""
        return {
            "label": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "last_day": (self.end - timedelta(days=1)).isoformat(),
            "timezone": self.timezone,
            "campaign_ids": list(self.campaign_ids),
            "campaign_types": [t.value for t in self.campaign_types],
            "brands": list(self.brands),
            "branches": list(self.branches),
            "agent_ids": list(self.agent_ids),
        }

    @classmethod
    def from_description(cls, data: dict[str, Any]) -> ReportFilter:
        return cls(
            start=date.fromisoformat(data["start"]),
            end=date.fromisoformat(data["end"]),
            timezone=data.get("timezone", DEFAULT_TZ_NAME),
            campaign_ids=tuple(data.get("campaign_ids", ())),
            campaign_types=tuple(CampaignType(t) for t in data.get("campaign_types", ())),
            brands=tuple(data.get("brands", ())),
            branches=tuple(data.get("branches", ())),
            agent_ids=tuple(data.get("agent_ids", ())),
            label=data.get("label", ""),
        )
