"""PQRS deadlines: 15 business days (Colombian working days) from the day it was raised."""

from __future__ import annotations

from datetime import date, timedelta

from dialer.domain.windows import HolidayCalendar

PQRS_BUSINESS_DAYS = 15


def add_business_days(start: date, days: int, calendar: HolidayCalendar) -> date:
    """The date ``days`` working days after ``start`` (Mon–Fri, Colombian holidays skipped)."""
    if days < 0:
        raise ValueError("days must be >= 0")
    current = start
    left = days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and not calendar.is_holiday(current):
            left -= 1
    return current


def pqrs_deadline(raised_on: date, calendar: HolidayCalendar) -> date:
    return add_business_days(raised_on, PQRS_BUSINESS_DAYS, calendar)
