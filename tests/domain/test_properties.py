"""Property tests (derandomized: the same examples on every run)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer.domain.frequency import ContactEvent, check_frequency
from dialer.domain.outcomes import CallOutcome, Channel
from dialer.domain.retry import (
    AttemptRecord,
    LeadPhone,
    RetryAction,
    RetryPolicy,
    counted_attempts,
    decide_retry,
)
from dialer.domain.windows import (
    CallWindow,
    TimeRange,
    can_start_call,
    closes_at,
    is_open,
    next_dialable,
    next_open,
)
from tests.domain.helpers import CAL

PROPS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from(["America/Bogota", "America/New_York", "Europe/Madrid", "America/Lima"])
ring_times = st.integers(min_value=0, max_value=120).map(lambda s: timedelta(seconds=s))


@st.composite
def windows(draw: st.DrawFn) -> CallWindow:
    """Random legal windows: a tightened range (or none) per weekday, Monday always open."""
    legal = {
        "mon": (7, 19),
        "tue": (7, 19),
        "wed": (7, 19),
        "thu": (7, 19),
        "fri": (7, 19),
        "sat": (8, 15),
    }
    days: dict[str, tuple[TimeRange, ...]] = {}
    for name, (lo, hi) in legal.items():
        if name != "mon" and draw(st.booleans()):
            days[name] = ()
            continue
        start = draw(st.integers(lo * 60, hi * 60 - 30))
        end = draw(st.integers(start + 30, hi * 60))
        days[name] = (
            TimeRange(
                start=time(start // 60, start % 60),
                end=time(end // 60, end % 60) if end < 24 * 60 else time(23, 59),
            ),
        )
    return CallWindow.model_validate(days)


@PROPS
@given(window=windows(), now=instants, tz=zones)
def test_next_open_is_open_and_not_before_now(window: CallWindow, now: datetime, tz: str) -> None:
    opened = next_open(window, now, tz, calendar=CAL)
    assert opened >= now
    assert is_open(window, opened, tz, calendar=CAL)
    if is_open(window, now, tz, calendar=CAL):
        assert opened == now
    else:
        # nothing opens in between: one second before, it was still closed
        assert opened == now or not is_open(window, opened - timedelta(seconds=1), tz, calendar=CAL)


@PROPS
@given(window=windows(), now=instants, tz=zones, ring=ring_times)
def test_next_dialable_leaves_room_for_the_ring(
    window: CallWindow, now: datetime, tz: str, ring: timedelta
) -> None:
    at = next_dialable(window, now, tz, ring_time=ring, calendar=CAL)
    assert at >= now
    assert can_start_call(window, at, tz, ring_time=ring, calendar=CAL)
    close = closes_at(window, at, tz, calendar=CAL)
    assert close is not None and at + ring <= close


@PROPS
@given(now=instants, tz=zones)
def test_never_open_on_sundays_or_holidays(now: datetime, tz: str) -> None:
    window = CallWindow.legal_default()
    local_day = now.astimezone(ZoneInfo(tz)).date()
    if local_day.weekday() == 6 or CAL.is_holiday(local_day):
        assert not is_open(window, now, tz, calendar=CAL)


outcomes = st.sampled_from([o for o in CallOutcome if o is not CallOutcome.ANSWERED_CONNECTED])


@PROPS
@given(
    window=windows(),
    start=instants,
    tz=zones,
    steps=st.lists(st.tuples(outcomes, st.booleans()), min_size=1, max_size=25),
    n_phones=st.integers(1, 3),
    max_attempts=st.integers(1, 6),
    per_phone=st.one_of(st.none(), st.integers(1, 3)),
)
def test_retry_respects_caps_and_window(
    window: CallWindow,
    start: datetime,
    tz: str,
    steps: list[tuple[CallOutcome, bool]],
    n_phones: int,
    max_attempts: int,
    per_phone: int | None,
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, max_attempts_per_phone=per_phone)
    phones = [LeadPhone(f"p{i}") for i in range(n_phones)]
    history: list[AttemptRecord] = []
    phone = phones[0].phone_id
    now = next_dialable(window, start, tz, calendar=CAL)
    for outcome, trunk in steps:
        attempt = AttemptRecord(phone, now, outcome, trunk_failure=trunk)
        d = decide_retry(
            attempt,
            history=history,
            phones=phones,
            policy=policy,
            window=window,
            now=now + timedelta(seconds=30),
            tz=tz,
            calendar=CAL,
        )
        history.append(attempt)
        used = counted_attempts(policy, history)
        assert used <= policy.max_attempts
        assert d.attempts_used == used
        per = [
            sum(1 for a in history if a.phone_id == p.phone_id and policy.counts(a)) for p in phones
        ]
        assert max(per) <= policy.per_phone_cap
        if d.action is not RetryAction.RETRY:
            assert d.is_final and d.next_attempt_at is None
            break
        assert d.next_attempt_at is not None and d.phone_id is not None
        assert d.next_attempt_at >= now
        assert can_start_call(window, d.next_attempt_at, tz, calendar=CAL)
        if d.invalid_phone_id is not None:
            phones = [
                LeadPhone(p.phone_id, p.dialable and p.phone_id != d.invalid_phone_id)
                for p in phones
            ]
        assert any(p.phone_id == d.phone_id and p.dialable for p in phones)
        phone, now = d.phone_id, d.next_attempt_at


channels = st.sampled_from([Channel.VOICE, Channel.WHATSAPP, Channel.SMS])


@PROPS
@given(
    now=instants,
    tz=zones,
    channel=channels,
    events=st.lists(st.tuples(st.integers(0, 14 * 24 * 60), channels, st.booleans()), max_size=8),
)
def test_frequency_next_allowed_is_allowed(
    now: datetime, tz: str, channel: Channel, events: list[tuple[int, Channel, bool]]
) -> None:
    history = [ContactEvent(now - timedelta(minutes=m), ch, d) for m, ch, d in events]
    verdict = check_frequency(history, channel, now, tz)
    assert verdict.next_allowed_at >= now
    assert verdict.allowed == (verdict.next_allowed_at == now)
    later = check_frequency(history, channel, verdict.next_allowed_at, tz)
    assert later.allowed
