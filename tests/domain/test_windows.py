from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from dialer.domain.errors import (
    DomainError,
    InvalidCallWindow,
    InvalidTimeZone,
    NaiveDatetimeError,
)
from dialer.domain.windows import (
    CallWindow,
    ClosedReason,
    HolidayCalendar,
    TimeRange,
    can_start_call,
    closes_at,
    is_open,
    next_dialable,
    next_open,
    window_status,
)
from tests.domain.helpers import BOGOTA, CAL, bog

W = CallWindow.legal_default()


def tr(a: str, b: str) -> TimeRange:
    return TimeRange(start=time.fromisoformat(a), end=time.fromisoformat(b))


# --------------------------------------------------------------------------- holidays


def test_reference_holidays_come_from_the_holidays_package() -> None:
    co = holidays.country_holidays("CO", years=2026)
    assert date(2026, 12, 8) in co  # Inmaculada Concepción (fixed)
    assert date(2026, 1, 12) in co  # Reyes Magos, moved to Monday (Ley Emiliani)
    assert date(2026, 1, 6) not in co  # ...so the 6th is a working Tuesday
    assert date(2026, 3, 23) in co  # San José, moved to Monday
    assert CAL.is_holiday(date(2026, 12, 8))
    assert "Inmaculada" in (CAL.name(date(2026, 12, 8)) or "")
    assert CAL.name(date(2026, 1, 6)) is None


def test_calendar_caches_per_year() -> None:
    cal = HolidayCalendar("CO")
    assert cal.is_holiday(date(2027, 1, 1))
    first = cal.holidays_in(2027)
    assert cal.holidays_in(2027) == first
    assert date(2027, 12, 25) in first


# --------------------------------------------------------------------------- weekday edges


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (bog(2026, 3, 2, 6, 59, 59), False),  # Monday before 07:00
        (bog(2026, 3, 2, 7, 0, 0), True),
        (bog(2026, 3, 2, 12, 0, 0), True),
        (bog(2026, 3, 2, 18, 59, 59), True),
        (bog(2026, 3, 2, 19, 0, 0), False),  # 19:00 is already closed
        (bog(2026, 3, 6, 18, 59, 59), True),  # Friday
        (bog(2026, 3, 7, 7, 59, 59), False),  # Saturday opens at 08:00
        (bog(2026, 3, 7, 8, 0, 0), True),
        (bog(2026, 3, 7, 14, 59, 59), True),
        (bog(2026, 3, 7, 15, 0, 0), False),  # Saturday 15:00 closed
        (bog(2026, 3, 8, 10, 0, 0), False),  # Sunday
        (bog(2026, 12, 8, 10, 0, 0), False),  # Inmaculada Concepción (Tuesday)
        (bog(2026, 1, 12, 10, 0, 0), False),  # Reyes Magos moved to Monday
        (bog(2026, 1, 6, 10, 0, 0), True),  # the original date is a working day
    ],
)
def test_is_open_edges(at: datetime, expected: bool) -> None:
    assert is_open(W, at, "America/Bogota", calendar=CAL) is expected


def test_is_open_accepts_any_representation_of_the_instant() -> None:
    at = bog(2026, 3, 2, 18, 59, 59)
    assert is_open(W, at.astimezone(UTC), BOGOTA, calendar=CAL)
    assert not is_open(W, (at + timedelta(seconds=1)).astimezone(UTC), BOGOTA, calendar=CAL)


def test_closes_at() -> None:
    assert closes_at(W, bog(2026, 3, 2, 10), calendar=CAL) == bog(2026, 3, 2, 19)
    assert closes_at(W, bog(2026, 3, 7, 10), calendar=CAL) == bog(2026, 3, 7, 15)
    assert closes_at(W, bog(2026, 3, 8, 10), calendar=CAL) is None
    result = closes_at(W, bog(2026, 3, 2, 10), calendar=CAL)
    assert result is not None and result.tzinfo is UTC


# --------------------------------------------------------------------------- next_open


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (bog(2026, 3, 2, 10), bog(2026, 3, 2, 10)),  # already open: now
        (bog(2026, 3, 2, 5, 30), bog(2026, 3, 2, 7)),
        (bog(2026, 3, 2, 19), bog(2026, 3, 3, 7)),
        (bog(2026, 3, 6, 19, 30), bog(2026, 3, 7, 8)),  # Friday night -> Saturday 08:00
        (bog(2026, 3, 7, 15), bog(2026, 3, 9, 7)),  # Saturday 15:00 -> Monday
        (bog(2026, 3, 8, 12), bog(2026, 3, 9, 7)),  # Sunday -> Monday
        # Holiday weekend: Sat 21 closes 15:00, Sun 22, Mon 23 San José -> Tue 24 07:00
        (bog(2026, 3, 21, 15), bog(2026, 3, 24, 7)),
        # Saturday 10 Jan -> Sunday -> Monday 12 Reyes Magos (moved) -> Tuesday 13
        (bog(2026, 1, 10, 16), bog(2026, 1, 13, 7)),
        # Monday 7 Dec evening -> Tuesday 8 holiday -> Wednesday 9
        (bog(2026, 12, 7, 19), bog(2026, 12, 9, 7)),
        # Holy week 2026: Thu 2 and Fri 3 April are holidays; Saturday 4 opens
        (bog(2026, 4, 1, 19), bog(2026, 4, 4, 8)),
        # Christmas on a Friday: Thu 24 evening -> Sat 26 08:00
        (bog(2026, 12, 24, 19), bog(2026, 12, 26, 8)),
    ],
)
def test_next_open(now: datetime, expected: datetime) -> None:
    got = next_open(W, now, "America/Bogota", calendar=CAL)
    assert got == expected
    assert got.tzinfo is UTC
    assert is_open(W, got, calendar=CAL)


def test_next_open_uses_a_lazy_default_calendar() -> None:
    assert next_open(W, bog(2026, 12, 7, 19)) == bog(2026, 12, 9, 7)


# --------------------------------------------------------------------------- ring-time safety


def test_a_call_must_not_ring_past_the_close() -> None:
    ring = timedelta(seconds=15)
    assert can_start_call(W, bog(2026, 3, 2, 18, 59, 44), ring_time=ring, calendar=CAL)
    assert can_start_call(W, bog(2026, 3, 2, 18, 59, 45), ring_time=ring, calendar=CAL)
    assert not can_start_call(W, bog(2026, 3, 2, 18, 59, 46), ring_time=ring, calendar=CAL)
    assert not can_start_call(W, bog(2026, 3, 7, 14, 59, 50), ring_time=ring, calendar=CAL)
    assert not can_start_call(W, bog(2026, 3, 8, 10), ring_time=ring, calendar=CAL)
    # a longer originate timeout shrinks the usable window further
    assert not can_start_call(
        W, bog(2026, 3, 2, 18, 59, 40), ring_time=timedelta(seconds=30), calendar=CAL
    )


def test_next_dialable_skips_the_last_seconds_before_close() -> None:
    assert next_dialable(W, bog(2026, 3, 6, 18, 59, 50), calendar=CAL) == bog(2026, 3, 7, 8)
    assert next_dialable(W, bog(2026, 3, 6, 18, 59, 45), calendar=CAL) == bog(
        2026, 3, 6, 18, 59, 45
    )


def test_next_dialable_fails_when_the_ring_time_never_fits() -> None:
    tiny = CallWindow(mon=(tr("08:00", "08:01"),), tue=(), wed=(), thu=(), fri=(), sat=())
    with pytest.raises(InvalidCallWindow):
        next_dialable(tiny, bog(2026, 3, 2, 7), ring_time=timedelta(minutes=5), calendar=CAL)


# --------------------------------------------------------------------------- time zones


def test_a_lead_in_another_zone_uses_its_own_clock() -> None:
    madrid = ZoneInfo("Europe/Madrid")
    instant = datetime(2026, 3, 2, 19, 30, tzinfo=UTC)  # Bogotá 14:30, Madrid 20:30
    assert is_open(W, instant, BOGOTA, calendar=CAL)
    assert not is_open(W, instant, madrid, calendar=CAL)
    assert is_open(W, instant, "Europe/Madrid", calendar=CAL) is False
    # Madrid reopens Tuesday 07:00 local = 06:00 UTC (CET, UTC+1)
    assert next_open(W, instant, madrid, calendar=CAL) == datetime(2026, 3, 3, 6, tzinfo=UTC)


def test_bogota_has_no_dst_but_new_york_does() -> None:
    ny = ZoneInfo("America/New_York")
    # Bogotá is UTC-5 all year
    assert bog(2026, 1, 5, 7).utcoffset() == bog(2026, 7, 6, 7).utcoffset() == timedelta(hours=-5)
    # New York switches to EDT on Sunday 8 March 2026: Monday opens at 07:00 EDT = 11:00 UTC
    opening = next_open(W, datetime(2026, 3, 8, 12, tzinfo=UTC), ny, calendar=CAL)
    assert opening == datetime(2026, 3, 9, 11, tzinfo=UTC)
    # The previous Monday (EST) opened at 12:00 UTC
    assert next_open(W, datetime(2026, 3, 1, 12, tzinfo=UTC), ny, calendar=CAL) == datetime(
        2026, 3, 2, 12, tzinfo=UTC
    )
    assert not is_open(W, datetime(2026, 3, 9, 10, 59, tzinfo=UTC), ny, calendar=CAL)


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(NaiveDatetimeError):
        is_open(W, datetime(2026, 3, 2, 10), calendar=CAL)
    with pytest.raises(InvalidTimeZone):
        is_open(W, bog(2026, 3, 2, 10), "Mars/Olympus_Mons", calendar=CAL)
    with pytest.raises(DomainError):
        is_open(W, bog(2026, 3, 2, 10), "Nowhere", calendar=CAL)


# --------------------------------------------------------------------------- legality & model


def test_the_default_is_the_legal_maximum() -> None:
    assert W.mon == (tr("07:00", "19:00"),)
    assert W.sat == (tr("08:00", "15:00"),)
    assert W.sun == ()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mon": (tr("06:30", "19:00"),)},  # starts before 07:00
        {"fri": (tr("07:00", "19:30"),)},  # ends after 19:00
        {"sat": (tr("08:00", "16:00"),)},  # Saturday past 15:00
        {"sat": (tr("07:00", "12:00"),)},  # Saturday before 08:00
        {"sun": (tr("09:00", "12:00"),)},  # never on Sundays
    ],
)
def test_a_campaign_cannot_loosen_the_legal_hours(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidCallWindow) as err:
        CallWindow.model_validate(kwargs)
    assert "Ley 2300" in str(err.value)


def test_a_campaign_may_tighten_the_window() -> None:
    tight = CallWindow(
        mon=(tr("08:00", "12:00"), tr("14:00", "18:00")),
        tue=(tr("08:00", "12:00"),),
        wed=(),
        thu=(),
        fri=(),
        sat=(),
        closed_dates=frozenset({date(2026, 3, 3)}),
    )
    assert is_open(tight, bog(2026, 3, 2, 11, 59), calendar=CAL)
    assert not is_open(tight, bog(2026, 3, 2, 13), calendar=CAL)  # lunch break
    assert closes_at(tight, bog(2026, 3, 2, 9), calendar=CAL) == bog(2026, 3, 2, 12)
    assert next_open(tight, bog(2026, 3, 2, 12), calendar=CAL) == bog(2026, 3, 2, 14)
    # Tuesday the 3rd is a closed date, Wed-Sat closed: next Monday
    assert next_open(tight, bog(2026, 3, 2, 18), calendar=CAL) == bog(2026, 3, 9, 8)
    status = window_status(tight, bog(2026, 3, 2, 13), calendar=CAL)
    assert status.reason is ClosedReason.BETWEEN_RANGES


def test_overlapping_ranges_are_rejected_and_touching_ones_merged() -> None:
    with pytest.raises(InvalidCallWindow):
        CallWindow(mon=(tr("08:00", "12:00"), tr("11:00", "13:00")))
    merged = CallWindow(mon=(tr("12:00", "19:00"), tr("07:00", "12:00")))
    assert merged.mon == (tr("07:00", "19:00"),)


def test_malformed_windows_are_rejected() -> None:
    with pytest.raises(InvalidCallWindow):
        tr("12:00", "11:00")
    with pytest.raises(InvalidCallWindow):
        tr("12:00", "12:00")
    with pytest.raises(InvalidCallWindow):
        CallWindow(mon=(), tue=(), wed=(), thu=(), fri=(), sat=())


def test_window_round_trips_through_json() -> None:
    tight = CallWindow(
        mon=(tr("08:00", "12:00"), tr("14:00", "18:00")),
        closed_dates=frozenset({date(2026, 12, 24), date(2026, 12, 31)}),
    )
    text = json.dumps(tight.to_dict())
    data = json.loads(text)
    assert data["mon"] == [
        {"start": "08:00:00", "end": "12:00:00"},
        {"start": "14:00:00", "end": "18:00:00"},
    ]
    assert data["closed_dates"] == ["2026-12-24", "2026-12-31"]
    assert CallWindow.from_dict(data) == tight
    assert CallWindow.model_validate_json(text) == tight
    # a stored window that became illegal fails loudly on load
    data["sun"] = [{"start": "09:00", "end": "10:00"}]
    with pytest.raises(InvalidCallWindow):
        CallWindow.from_dict(data)


def test_window_status_explains_why_it_is_closed() -> None:
    holiday = window_status(W, bog(2026, 12, 8, 10), calendar=CAL)
    assert not holiday.open and holiday.reason is ClosedReason.HOLIDAY
    assert holiday.holiday_name is not None and "Inmaculada" in holiday.holiday_name
    assert holiday.next_dialable_at == bog(2026, 12, 9, 7)
    assert window_status(W, bog(2026, 3, 8, 10), calendar=CAL).reason is ClosedReason.SUNDAY
    assert window_status(W, bog(2026, 3, 2, 6), calendar=CAL).reason is ClosedReason.BEFORE_HOURS
    assert window_status(W, bog(2026, 3, 2, 20), calendar=CAL).reason is ClosedReason.AFTER_HOURS
    late = window_status(W, bog(2026, 3, 2, 18, 59, 50), calendar=CAL)
    assert late.open and not late.dialable and late.reason is ClosedReason.TOO_CLOSE_TO_CLOSE
    ok = window_status(W, bog(2026, 3, 2, 10), calendar=CAL)
    assert ok.dialable and ok.reason is None and ok.closes_at == bog(2026, 3, 2, 19)
    assert "domingo cerrado" in W.describe_es()


def test_pqrs_deadline_skips_weekends_and_holidays() -> None:
    from datetime import date

    from dialer.domain.pqrs import add_business_days, pqrs_deadline
    from dialer.domain.windows import HolidayCalendar

    cal = HolidayCalendar()
    # Fri 2026-12-04 + 3 working days: Mon 7, (Tue 8 is Inmaculada Concepción), Wed 9, Thu 10.
    assert add_business_days(date(2026, 12, 4), 3, cal) == date(2026, 12, 10)
    # 15 working days from Mon 2026-11-23: Dec 8 is a holiday, so Dec 15.
    assert pqrs_deadline(date(2026, 11, 23), cal) == date(2026, 12, 15)
