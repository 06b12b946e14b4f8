from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from dialer.domain.errors import NaiveDatetimeError
from dialer.domain.frequency import (
    ContactEvent,
    FrequencyPolicy,
    FrequencyRule,
    WeekMode,
    check_frequency,
)
from dialer.domain.outcomes import Channel
from tests.domain.helpers import bog

V, WA = Channel.VOICE, Channel.WHATSAPP
NOW = bog(2026, 3, 4, 10)  # Wednesday


def ev(
    at: datetime, channel: Channel = V, direct: bool = True, campaign: str = "c1"
) -> ContactEvent:
    return ContactEvent(at, channel, direct, campaign)


def test_no_history_is_allowed() -> None:
    v = check_frequency([], V, NOW)
    assert v.allowed and v.rule is None and v.next_allowed_at == NOW


def test_attempts_without_direct_contact_do_not_trigger_the_caps() -> None:
    history = [ev(bog(2026, 3, 4, 8), direct=False), ev(bog(2026, 3, 4, 9), WA, direct=False)]
    assert check_frequency(history, V, NOW).allowed
    assert check_frequency(history, WA, NOW).allowed


def test_one_contact_per_day_after_a_direct_contact() -> None:
    v = check_frequency([ev(bog(2026, 3, 4, 9))], V, NOW)
    assert not v.allowed
    assert v.rule is FrequencyRule.DAILY_LIMIT
    assert v.next_allowed_at == bog(2026, 3, 5, 0)  # local midnight, not UTC midnight
    assert "Ley 2300" in v.reason_es and "Ley 2300" in v.reason_en


def test_day_boundary_is_local() -> None:
    # 23:30 Bogotá is already the next day in UTC; the block lasts until Bogotá midnight.
    late = bog(2026, 3, 4, 23, 30)
    v = check_frequency([ev(late)], V, late + timedelta(minutes=10))
    assert v.next_allowed_at == bog(2026, 3, 5, 0)
    assert v.next_allowed_at == datetime(2026, 3, 5, 5, tzinfo=UTC)


def test_counted_across_campaigns() -> None:
    history = [ev(bog(2026, 3, 4, 9), campaign="satisfaccion")]
    assert not check_frequency(history, V, NOW).allowed


def test_the_legal_caps_cannot_be_loosened() -> None:
    with pytest.raises(ValidationError):
        FrequencyPolicy(max_contacts_per_day=2)
    with pytest.raises(ValidationError):
        FrequencyPolicy(max_channels_per_week=2)


def test_contacts_before_the_direct_contact_are_not_what_blocks() -> None:
    # two unanswered calls and then a direct contact at 09:00: blocked until midnight
    history = [ev(bog(2026, 3, 4, 7), direct=False), ev(bog(2026, 3, 4, 9))]
    v = check_frequency(history, V, NOW)
    assert not v.allowed and v.next_allowed_at == bog(2026, 3, 5, 0)
    # unanswered attempts alone never block
    assert check_frequency(history[:1], V, NOW).allowed


def test_one_channel_per_week_rolling() -> None:
    monday = bog(2026, 3, 2, 11)
    history = [ev(monday, V)]
    assert check_frequency(history, V, NOW).allowed  # same channel, another day
    v = check_frequency(history, WA, NOW)
    assert not v.allowed
    assert v.rule is FrequencyRule.CHANNEL_WEEK
    assert v.next_allowed_at == monday + timedelta(days=7)
    assert check_frequency(history, WA, monday + timedelta(days=7)).allowed


def test_calendar_week_mode() -> None:
    saturday = bog(2026, 3, 7, 10)
    history = [ev(saturday, V)]
    monday = bog(2026, 3, 9, 10)
    rolling = check_frequency(history, WA, monday)
    assert not rolling.allowed and rolling.next_allowed_at == saturday + timedelta(days=7)
    calendar = check_frequency(history, WA, monday, policy=FrequencyPolicy(week=WeekMode.CALENDAR))
    assert calendar.allowed
    blocked = check_frequency(
        history, WA, bog(2026, 3, 8, 10), policy=FrequencyPolicy(week=WeekMode.CALENDAR)
    )
    assert not blocked.allowed and blocked.next_allowed_at == bog(2026, 3, 9, 0)


def test_both_rules_combine_into_the_next_allowed_time() -> None:
    history = [ev(bog(2026, 3, 4, 9), V)]
    v = check_frequency(history, WA, NOW)
    assert not v.allowed
    assert v.rule is FrequencyRule.DAILY_LIMIT  # the first rule that blocks now
    assert v.next_allowed_at == bog(2026, 3, 11, 9)  # but the week rule decides when


def test_channels_before_the_direct_contact_do_not_block() -> None:
    # WhatsApp fallback (not direct) Monday, then the customer answered a call Tuesday
    history = [ev(bog(2026, 3, 2, 9), WA, direct=False), ev(bog(2026, 3, 3, 9), V)]
    assert check_frequency(history, V, NOW).allowed
    assert not check_frequency(history, WA, NOW).allowed


def test_customer_requested_contacts_are_exempt_unless_configured() -> None:
    history = [ev(bog(2026, 3, 4, 9))]
    assert check_frequency(history, V, NOW, customer_requested=True).allowed
    strict = FrequencyPolicy(exempt_customer_requested=False)
    assert not check_frequency(history, V, NOW, policy=strict, customer_requested=True).allowed


def test_future_events_are_ignored() -> None:
    assert check_frequency([ev(bog(2026, 3, 4, 15))], V, NOW).allowed


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(NaiveDatetimeError):
        check_frequency([], V, datetime(2026, 3, 4, 10))
    with pytest.raises(NaiveDatetimeError):
        check_frequency([ev(datetime(2026, 3, 4, 9))], V, NOW)
