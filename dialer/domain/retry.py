"""Retry policy: what happens to a lead after each attempt (design.md §4-§5, issue 4).

:func:`decide_retry` takes the attempt that just ended, the lead's earlier attempts, its phones
and the campaign's :class:`RetryPolicy`, and returns a typed :class:`RetryDecision`: retry at a
given instant on a given phone (always snapped to an instant where a call may start, see
:func:`dialer.domain.windows.next_dialable`), a callback, or a final state (CONTACTED,
EXHAUSTED -> WhatsApp fallback, EXCLUDED).

Defaults (editable per campaign):

============== ==========================================================================
busy           20 min
no answer      2 h (rejected: same)
machine        next day, ``machine_hour_shift`` (3 h) away from the previous hour
abandoned      72 h
congestion     10 min; not counted when the trunk failed (``trunk_failure``)
failed         10 min; never counted (PBX/trunk error: the customer's phone never rang)
cancelled      2 min; never counted (the dialer hung up: pause or window close)
invalid/wrong  the phone is marked unusable; the next phone is tried after 10 min
============== ==========================================================================

Uncounted failures back off exponentially (capped by ``uncounted_backoff_max``) so a dead
trunk does not spin. Uncounted congestion is still capped **per phone**: after
``max_trunk_failures_per_phone`` (3) congestion results in a row on one phone, that phone is
marked bad (reason ``trunk_failures``, stored on the lead's event) and the next phone is tried;
a number that always gives congestion is not dialed forever. Caps:

* ``max_attempts`` counted attempts per lead (3; satisfaction campaigns 5);
* ``max_attempts_per_phone`` counted attempts per phone (default: no extra cap);
* attempts that honour a customer-requested callback (``AttemptRecord.callback``) do not
  count against ``max_attempts``; at most ``max_callbacks`` callbacks are granted, after which
  the lead is closed as CONTACTED (the customer was reached).

Counted attempts rotate over the lead's dialable phones (main, then alternates, round-robin).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dialer.domain.dispositions import CallbackScope, DispositionEffect, DispositionRecord
from dialer.domain.errors import DispositionRequired, InvalidRetryPolicy, NoDialablePhone
from dialer.domain.outcomes import CallOutcome, CampaignType, LeadStatus
from dialer.domain.windows import (
    DEFAULT_TZ,
    MIN_RING_TIME,
    CallWindow,
    HolidayCalendar,
    TzLike,
    can_start_call,
    next_dialable,
    require_aware,
    resolve_tz,
)

__all__ = [
    "AttemptRecord",
    "LeadPhone",
    "RetryAction",
    "RetryDecision",
    "RetryPolicy",
    "RetryReason",
    "congestion_streak",
    "counted_attempts",
    "decide_retry",
    "pick_first_phone",
]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One call attempt of a lead, as the retry policy sees it."""

    phone_id: str
    started_at: datetime
    outcome: CallOutcome
    #: The failure was on our side (trunk/PBX), not the customer's: not counted.
    trunk_failure: bool = False
    #: This attempt honoured a customer-requested callback.
    callback: bool = False
    #: Set when the storage already decided whether the attempt counts (for example an attempt
    #: whose dialer died: its phone may have rung, so it counts although its outcome is
    #: FAILED). ``None``: the policy decides from the outcome.
    counted: bool | None = None


@dataclass(frozen=True, slots=True)
class LeadPhone:
    """A phone of the lead, in preference order (main first)."""

    phone_id: str
    #: False when invalid, a known wrong number, DNC or RNE: never chosen.
    dialable: bool = True


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=50)
    max_attempts_per_phone: int | None = Field(default=None, ge=1, le=50)
    max_callbacks: int = Field(default=3, ge=0, le=20)
    #: Congestion results in a row on one phone (not counted against the limits) after which
    #: the phone is marked bad: it is never dialed again (``RetryReason.TRUNK_FAILURES``).
    max_trunk_failures_per_phone: int = Field(default=3, ge=1, le=50)

    busy: timedelta = timedelta(minutes=20)
    no_answer: timedelta = timedelta(hours=2)
    rejected: timedelta = timedelta(hours=2)
    machine_hour_shift: timedelta = timedelta(hours=3)
    abandoned: timedelta = timedelta(hours=72)
    congestion: timedelta = timedelta(minutes=10)
    failed: timedelta = timedelta(minutes=10)
    cancelled: timedelta = timedelta(minutes=2)
    next_phone_after_bad: timedelta = timedelta(minutes=10)
    uncounted_backoff_max: timedelta = timedelta(hours=2)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for name in (
            "busy",
            "no_answer",
            "rejected",
            "abandoned",
            "congestion",
            "failed",
            "cancelled",
            "next_phone_after_bad",
            "uncounted_backoff_max",
        ):
            if getattr(self, name) < timedelta(0):
                raise InvalidRetryPolicy(f"{name} must not be negative", field=name)
        if self.abandoned < timedelta(hours=72):
            raise InvalidRetryPolicy(
                "abandoned calls wait at least 72 h before a redial (design.md §6)",
                field="abandoned",
            )
        if not timedelta(hours=1) <= self.machine_hour_shift < timedelta(hours=12):
            raise InvalidRetryPolicy(
                "machine_hour_shift must be between 1 h and 12 h", field="machine_hour_shift"
            )
        return self

    @classmethod
    def for_campaign_type(cls, campaign_type: CampaignType) -> RetryPolicy:
        """Presets from the seeds: 5 attempts for satisfaction follow-up, 3 otherwise."""
        if campaign_type is CampaignType.SATISFACCION:
            return cls(max_attempts=5)
        return cls(max_attempts=3)

    @property
    def per_phone_cap(self) -> int:
        return self.max_attempts_per_phone or self.max_attempts

    def counts(self, attempt: AttemptRecord) -> bool:
        """Does this attempt count against the customer's limits?"""
        if attempt.counted is not None:
            return attempt.counted
        if attempt.outcome in (CallOutcome.CANCELLED, CallOutcome.FAILED):
            return False
        return not (attempt.trunk_failure and attempt.outcome is CallOutcome.CONGESTION)

    def delay_for(self, outcome: CallOutcome) -> timedelta:
        delays = {
            CallOutcome.BUSY: self.busy,
            CallOutcome.NO_ANSWER: self.no_answer,
            CallOutcome.REJECTED: self.rejected,
            CallOutcome.ABANDONED: self.abandoned,
            CallOutcome.CONGESTION: self.congestion,
            CallOutcome.FAILED: self.failed,
            CallOutcome.CANCELLED: self.cancelled,
            CallOutcome.INVALID_NUMBER: self.next_phone_after_bad,
            CallOutcome.MACHINE: timedelta(days=1),  # see _machine_slot
        }
        return delays.get(outcome, self.no_answer)


class RetryAction(StrEnum):
    RETRY = "retry"
    CALLBACK = "callback"
    CONTACTED = "contacted"
    EXHAUSTED = "exhausted"
    EXCLUDED = "excluded"


class RetryReason(StrEnum):
    OUTCOME_RETRY = "outcome_retry"  # the outcome's delay (see ``outcome``)
    SYSTEM_FAILURE = "system_failure"  # uncounted trunk/PBX failure or cancel
    NEXT_PHONE = "next_phone"  # the phone was bad; trying another
    CALLBACK_REQUESTED = "callback_requested"
    CALLBACK_LIMIT = "callback_limit"
    FINAL_DISPOSITION = "final_disposition"
    DO_NOT_CALL = "do_not_call"
    EXCLUDED_BY_DISPOSITION = "excluded_by_disposition"
    ATTEMPT_LIMIT = "attempt_limit"
    PHONES_EXHAUSTED = "phones_exhausted"  # phones left but each at its per-phone cap
    NO_VALID_PHONE = "no_valid_phone"  # every phone is invalid/wrong/blocked
    #: the phone gave congestion ``max_trunk_failures_per_phone`` times in a row: marked bad
    TRUNK_FAILURES = "trunk_failures"


_STATUS = {
    RetryAction.RETRY: LeadStatus.PENDING,
    RetryAction.CALLBACK: LeadStatus.PENDING,
    RetryAction.CONTACTED: LeadStatus.CONTACTED,
    RetryAction.EXHAUSTED: LeadStatus.EXHAUSTED,
    RetryAction.EXCLUDED: LeadStatus.EXCLUDED,
}


@dataclass(frozen=True, slots=True)
class RetryDecision:
    action: RetryAction
    reason: RetryReason
    outcome: CallOutcome
    #: Did the finished attempt count against the lead's/phone's caps?
    counted: bool
    #: Counted attempts used so far (this one included) and the lead's cap.
    attempts_used: int
    max_attempts: int
    next_attempt_at: datetime | None = None  # UTC, always dialable
    phone_id: str | None = None  # phone for the next attempt
    #: A phone the engine must mark unusable (invalid number / wrong number).
    invalid_phone_id: str | None = None
    #: Why ``invalid_phone_id`` is unusable: ``trunk_failures`` or the attempt's outcome.
    invalid_phone_reason: str | None = None
    callback_scope: CallbackScope | None = None
    disposition_effect: DispositionEffect | None = None

    @property
    def lead_status(self) -> LeadStatus:
        return _STATUS[self.action]

    @property
    def whatsapp_fallback(self) -> bool:
        """The lead goes onto the WhatsApp fallback stream (exactly once, by the engine)."""
        return self.action is RetryAction.EXHAUSTED

    @property
    def is_final(self) -> bool:
        return self.lead_status.is_final


def counted_attempts(policy: RetryPolicy, attempts: Sequence[AttemptRecord]) -> int:
    """Attempts counted against ``max_attempts`` (callbacks and system failures excluded)."""
    return sum(1 for a in attempts if policy.counts(a) and not a.callback)


def _per_phone(policy: RetryPolicy, attempts: Sequence[AttemptRecord]) -> Counter[str]:
    return Counter(a.phone_id for a in attempts if policy.counts(a) and not a.callback)


def congestion_streak(phone_id: str, attempts: Sequence[AttemptRecord]) -> int:
    """CONGESTION results in a row on ``phone_id`` (latest first; other phones' attempts and
    cancelled ones are skipped, any other outcome on this phone ends the streak)."""
    streak = 0
    for a in reversed(attempts):
        if a.phone_id != phone_id or a.outcome is CallOutcome.CANCELLED:
            continue
        if a.outcome is not CallOutcome.CONGESTION:
            break
        streak += 1
    return streak


def pick_first_phone(
    phones: Sequence[LeadPhone],
    policy: RetryPolicy,
    history: Sequence[AttemptRecord] = (),
) -> str:
    """Phone for a lead's first (or next) attempt: the first dialable one with quota left."""
    used = _per_phone(policy, history)
    for p in phones:
        if p.dialable and used[p.phone_id] < policy.per_phone_cap:
            return p.phone_id
    raise NoDialablePhone("the lead has no dialable phone with attempts left")


def _rotate(
    phones: Sequence[LeadPhone],
    current: str,
    used: Counter[str],
    cap: int,
    blocked: set[str],
    *,
    stay: bool,
) -> str | None:
    ids = [p.phone_id for p in phones]
    start = ids.index(current)
    order = ids[start:] + ids[:start] if stay else ids[start + 1 :] + ids[: start + 1]
    usable = {p.phone_id for p in phones if p.dialable} - blocked
    for pid in order:
        if pid in usable and used[pid] < cap:
            return pid
    return None


def _machine_slot(
    previous: datetime,
    now: datetime,
    policy: RetryPolicy,
    window: CallWindow,
    tz: TzLike,
    ring_time: timedelta,
    calendar: HolidayCalendar | None,
) -> datetime:
    """Next calling day, at an hour ``machine_hour_shift`` away from the previous attempt."""
    zone = resolve_tz(tz)
    prev_local = previous.astimezone(zone)
    base = timedelta(hours=prev_local.hour, minutes=prev_local.minute, seconds=prev_local.second)
    shift = policy.machine_hour_shift
    offsets = [base + shift, base - shift, base + 2 * shift, base - 2 * shift]
    offsets = [o for o in offsets if timedelta(0) <= o < timedelta(days=1)]
    day = now.astimezone(zone).date() + timedelta(days=1)
    for _ in range(21):
        for off in offsets:
            at = (datetime.combine(day, time(0), tzinfo=zone) + off).astimezone(UTC)
            if at >= now and can_start_call(
                window, at, zone, ring_time=ring_time, calendar=calendar
            ):
                return at
        day += timedelta(days=1)
    start = datetime.combine(now.astimezone(zone).date() + timedelta(days=1), time(0), zone)
    return next_dialable(window, start, zone, ring_time=ring_time, calendar=calendar)


def decide_retry(
    attempt: AttemptRecord,
    *,
    history: Sequence[AttemptRecord],
    phones: Sequence[LeadPhone],
    policy: RetryPolicy,
    window: CallWindow,
    now: datetime,
    tz: TzLike = DEFAULT_TZ,
    disposition: DispositionRecord | None = None,
    ring_time: timedelta = MIN_RING_TIME,
    calendar: HolidayCalendar | None = None,
) -> RetryDecision:
    """Decide what follows ``attempt`` (which just ended).

    ``history`` holds the lead's earlier attempts, *without* ``attempt``. ``phones`` are the
    lead's phones in preference order, with their current dialability (DNC/RNE/invalid).
    ``disposition`` is required when the outcome is ANSWERED_CONNECTED.
    """
    utc_now = require_aware(now).astimezone(UTC)
    require_aware(attempt.started_at, "attempt.started_at")
    if attempt.phone_id not in {p.phone_id for p in phones}:
        raise NoDialablePhone(
            f"attempt phone {attempt.phone_id!r} is not one of the lead's phones",
            phone_id=attempt.phone_id,
        )
    everything = [*history, attempt]
    counted = policy.counts(attempt)
    used_total = counted_attempts(policy, everything)
    used_phone = _per_phone(policy, everything)

    def decision(
        action: RetryAction,
        reason: RetryReason,
        *,
        next_attempt_at: datetime | None = None,
        phone_id: str | None = None,
        invalid_phone_id: str | None = None,
        callback_scope: CallbackScope | None = None,
        invalid_phone_reason: str | None = None,
    ) -> RetryDecision:
        return RetryDecision(
            action=action,
            reason=reason,
            outcome=attempt.outcome,
            counted=counted,
            attempts_used=used_total,
            max_attempts=policy.max_attempts,
            next_attempt_at=next_attempt_at,
            phone_id=phone_id,
            invalid_phone_id=invalid_phone_id,
            invalid_phone_reason=invalid_phone_reason if invalid_phone_id else None,
            callback_scope=callback_scope,
            disposition_effect=None if disposition is None else disposition.effect,
        )

    def snap(at: datetime) -> datetime:
        return next_dialable(window, max(at, utc_now), tz, ring_time=ring_time, calendar=calendar)

    def move_on(
        delay: timedelta, *, bad: str | None, why: RetryReason = RetryReason.NEXT_PHONE
    ) -> RetryDecision:
        """Counted (or bad-phone) failure: next phone in rotation, or a final state."""
        blocked = {bad} if bad else set()
        if why is RetryReason.TRUNK_FAILURES:
            why_bad = why.value
        elif disposition is not None:
            why_bad = f"disposition {disposition.code.value}"
        else:
            why_bad = attempt.outcome.value
        remaining = [p for p in phones if p.dialable and p.phone_id not in blocked]
        if not remaining:
            return decision(
                RetryAction.EXCLUDED,
                RetryReason.NO_VALID_PHONE,
                invalid_phone_id=bad,
                invalid_phone_reason=why_bad,
            )
        if used_total >= policy.max_attempts:
            return decision(
                RetryAction.EXHAUSTED,
                RetryReason.ATTEMPT_LIMIT,
                invalid_phone_id=bad,
                invalid_phone_reason=why_bad,
            )
        pid = _rotate(
            phones, attempt.phone_id, used_phone, policy.per_phone_cap, blocked, stay=False
        )
        if pid is None:
            return decision(
                RetryAction.EXHAUSTED,
                RetryReason.PHONES_EXHAUSTED,
                invalid_phone_id=bad,
                invalid_phone_reason=why_bad,
            )
        if attempt.outcome is CallOutcome.MACHINE and bad is None:
            at = _machine_slot(attempt.started_at, utc_now, policy, window, tz, ring_time, calendar)
        else:
            at = snap(utc_now + delay)
        reason = why if bad else RetryReason.OUTCOME_RETRY
        return decision(
            RetryAction.RETRY,
            reason,
            next_attempt_at=at,
            phone_id=pid,
            invalid_phone_id=bad,
            invalid_phone_reason=why_bad,
        )

    outcome = attempt.outcome
    if outcome is CallOutcome.ANSWERED_CONNECTED:
        if disposition is None:
            raise DispositionRequired(
                "an answered call needs the agent's disposition before the retry decision"
            )
        effect = disposition.effect
        if effect is DispositionEffect.DNC:
            return decision(RetryAction.EXCLUDED, RetryReason.DO_NOT_CALL)
        if effect is DispositionEffect.EXCLUSION:
            return decision(RetryAction.EXCLUDED, RetryReason.EXCLUDED_BY_DISPOSITION)
        if effect is DispositionEffect.BAD_PHONE:
            return move_on(policy.next_phone_after_bad, bad=attempt.phone_id)
        if effect is DispositionEffect.CALLBACK:
            granted = sum(1 for a in everything if a.callback)
            if granted >= policy.max_callbacks:
                return decision(RetryAction.CONTACTED, RetryReason.CALLBACK_LIMIT)
            wanted = disposition.details.callback_at or utc_now
            return decision(
                RetryAction.CALLBACK,
                RetryReason.CALLBACK_REQUESTED,
                next_attempt_at=snap(require_aware(wanted, "callback_at")),
                phone_id=attempt.phone_id,
                callback_scope=disposition.details.callback_scope or CallbackScope.ANYONE,
            )
        return decision(RetryAction.CONTACTED, RetryReason.FINAL_DISPOSITION)

    if outcome is CallOutcome.INVALID_NUMBER:
        return move_on(policy.next_phone_after_bad, bad=attempt.phone_id)

    if (
        not counted
        and outcome is CallOutcome.CONGESTION
        and congestion_streak(attempt.phone_id, everything) >= policy.max_trunk_failures_per_phone
    ):
        # Never counted, so without this cap a number that always gives congestion is dialed
        # forever: the phone is marked bad, the next one is tried.
        return move_on(
            policy.next_phone_after_bad, bad=attempt.phone_id, why=RetryReason.TRUNK_FAILURES
        )

    if not counted:
        # Our failure: same phone (if still dialable), exponential backoff, cap untouched.
        streak = 0
        for a in reversed(everything):
            if policy.counts(a):
                break
            streak += 1
        delay = min(
            policy.delay_for(outcome) * (2 ** min(streak - 1, 16)), policy.uncounted_backoff_max
        )
        if used_total >= policy.max_attempts:
            return decision(RetryAction.EXHAUSTED, RetryReason.ATTEMPT_LIMIT)
        pid = _rotate(phones, attempt.phone_id, used_phone, policy.per_phone_cap, set(), stay=True)
        if pid is None:
            if not any(p.dialable for p in phones):
                return decision(RetryAction.EXCLUDED, RetryReason.NO_VALID_PHONE)
            return decision(RetryAction.EXHAUSTED, RetryReason.PHONES_EXHAUSTED)
        return decision(
            RetryAction.RETRY,
            RetryReason.SYSTEM_FAILURE,
            next_attempt_at=snap(utc_now + delay),
            phone_id=pid,
        )

    return move_on(policy.delay_for(outcome), bad=None)
