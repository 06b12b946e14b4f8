from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from dialer.domain.dispositions import CallbackScope, DispositionRecord, validate_disposition
from dialer.domain.errors import DispositionRequired, InvalidRetryPolicy, NoDialablePhone
from dialer.domain.outcomes import CallOutcome, CampaignType, LeadStatus
from dialer.domain.retry import (
    AttemptRecord,
    LeadPhone,
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryReason,
    counted_attempts,
    decide_retry,
    pick_first_phone,
)
from dialer.domain.windows import CallWindow, can_start_call
from tests.domain.helpers import CAL, bog

W = CallWindow.legal_default()
TWO = (LeadPhone("p1"), LeadPhone("p2"))
MON_10 = bog(2026, 3, 2, 10)


def att(
    outcome: CallOutcome,
    at: datetime = MON_10,
    phone: str = "p1",
    *,
    trunk: bool = False,
    callback: bool = False,
) -> AttemptRecord:
    return AttemptRecord(phone, at, outcome, trunk_failure=trunk, callback=callback)


def decide(
    attempt: AttemptRecord,
    *,
    history: Sequence[AttemptRecord] = (),
    phones: Sequence[LeadPhone] = TWO,
    policy: RetryPolicy | None = None,
    now: datetime | None = None,
    disposition: DispositionRecord | None = None,
    window: CallWindow = W,
) -> RetryDecision:
    return decide_retry(
        attempt,
        history=history,
        phones=phones,
        policy=policy or RetryPolicy(),
        window=window,
        now=now or attempt.started_at,
        disposition=disposition,
        calendar=CAL,
    )


def dispo(code: str, **details: object) -> DispositionRecord:
    return validate_disposition(CampaignType.CONTACTO_PROACTIVO, code, details, MON_10)


# --------------------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (CallOutcome.BUSY, bog(2026, 3, 2, 10, 20)),
        (CallOutcome.NO_ANSWER, bog(2026, 3, 2, 12)),
        (CallOutcome.REJECTED, bog(2026, 3, 2, 12)),
        (CallOutcome.ABANDONED, bog(2026, 3, 5, 10)),  # 72 h
        (CallOutcome.CONGESTION, bog(2026, 3, 2, 10, 10)),
        (CallOutcome.MACHINE, bog(2026, 3, 3, 13)),  # next day, 3 h later
    ],
)
def test_counted_outcomes_use_their_default_delay_and_rotate_phones(
    outcome: CallOutcome, expected: datetime
) -> None:
    d = decide(att(outcome))
    assert d.action is RetryAction.RETRY
    assert d.lead_status is LeadStatus.PENDING
    assert d.reason is RetryReason.OUTCOME_RETRY
    assert d.next_attempt_at == expected
    assert d.counted and d.attempts_used == 1
    assert d.phone_id == "p2"  # alternate phone next
    assert not d.whatsapp_fallback


@pytest.mark.parametrize(
    ("outcome", "trunk", "delay"),
    [
        (CallOutcome.FAILED, False, timedelta(minutes=10)),
        (CallOutcome.CONGESTION, True, timedelta(minutes=10)),
        (CallOutcome.CANCELLED, False, timedelta(minutes=2)),
    ],
)
def test_system_failures_are_not_counted(
    outcome: CallOutcome, trunk: bool, delay: timedelta
) -> None:
    d = decide(att(outcome, trunk=trunk))
    assert d.action is RetryAction.RETRY
    assert d.reason is RetryReason.SYSTEM_FAILURE
    assert not d.counted and d.attempts_used == 0
    assert d.next_attempt_at == MON_10 + delay
    assert d.phone_id == "p1"  # same phone: the customer's phone never rang


def test_trunk_failure_at_the_cap_does_not_exhaust_the_lead() -> None:
    history = [att(CallOutcome.NO_ANSWER, bog(2026, 3, 2, 8)), att(CallOutcome.BUSY, phone="p2")]
    d = decide(att(CallOutcome.FAILED, bog(2026, 3, 2, 11)), history=history)
    assert d.action is RetryAction.RETRY
    assert d.attempts_used == 2
    # ...while a counted third attempt does
    d = decide(att(CallOutcome.NO_ANSWER, bog(2026, 3, 2, 11)), history=history)
    assert d.action is RetryAction.EXHAUSTED
    assert d.reason is RetryReason.ATTEMPT_LIMIT
    assert d.lead_status is LeadStatus.EXHAUSTED and d.whatsapp_fallback and d.is_final
    assert d.next_attempt_at is None


def test_consecutive_system_failures_back_off() -> None:
    f = [att(CallOutcome.FAILED, MON_10 + timedelta(minutes=i)) for i in range(4)]
    d = decide(f[-1], history=f[:-1])
    assert d.next_attempt_at == f[-1].started_at + timedelta(minutes=80)  # 10 * 2**3
    many = [att(CallOutcome.FAILED, MON_10 + timedelta(seconds=i)) for i in range(30)]
    d = decide(many[-1], history=many[:-1])
    assert d.next_attempt_at == many[-1].started_at + timedelta(hours=2)  # capped


def test_retries_are_snapped_into_the_window() -> None:
    # no answer at 18:00 -> 20:00 is closed -> Tuesday 07:00
    assert decide(att(CallOutcome.NO_ANSWER, bog(2026, 3, 2, 18))).next_attempt_at == bog(
        2026, 3, 3, 7
    )
    # busy on Saturday 14:50 -> 15:10 closed -> Sunday closed -> Monday 07:00
    assert decide(att(CallOutcome.BUSY, bog(2026, 3, 7, 14, 50))).next_attempt_at == bog(
        2026, 3, 9, 7
    )
    # cancelled at window close -> next opening, skipping the San José holiday Monday
    d = decide(att(CallOutcome.CANCELLED, bog(2026, 3, 20, 18, 59, 50)))
    assert d.next_attempt_at == bog(2026, 3, 21, 8)
    # abandoned on Friday 4 Dec 10:00 -> +72 h = Monday 10:00 (open)
    assert decide(att(CallOutcome.ABANDONED, bog(2026, 12, 4, 10))).next_attempt_at == bog(
        2026, 12, 7, 10
    )
    # abandoned on Saturday 5 Dec 10:00 -> Tuesday 8 is a holiday -> Wednesday 07:00
    assert decide(att(CallOutcome.ABANDONED, bog(2026, 12, 5, 10))).next_attempt_at == bog(
        2026, 12, 9, 7
    )


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (bog(2026, 3, 2, 10), bog(2026, 3, 3, 13)),  # +3 h fits
        (bog(2026, 3, 2, 17), bog(2026, 3, 3, 14)),  # 20:00 closed -> 14:00
        (bog(2026, 3, 6, 13, 30), bog(2026, 3, 7, 10, 30)),  # Saturday: 16:30 closed
        (bog(2026, 3, 7, 10), bog(2026, 3, 9, 13)),  # Saturday -> Monday
        (bog(2026, 12, 7, 9), bog(2026, 12, 9, 12)),  # skips the 8 Dec holiday
    ],
)
def test_machine_retries_next_calling_day_at_a_different_hour(
    at: datetime, expected: datetime
) -> None:
    d = decide(att(CallOutcome.MACHINE, at))
    assert d.next_attempt_at == expected
    assert d.next_attempt_at is not None
    assert d.next_attempt_at.astimezone(at.tzinfo).hour != at.hour


# --------------------------------------------------------------------------- phones & caps


def test_rotation_skips_undialable_phones() -> None:
    phones = (LeadPhone("p1"), LeadPhone("p2", dialable=False), LeadPhone("p3"))
    assert decide(att(CallOutcome.BUSY), phones=phones).phone_id == "p3"
    d = decide(att(CallOutcome.BUSY, phone="p3"), phones=phones)
    assert d.phone_id == "p1"  # wraps around


def test_single_phone_stays_on_it() -> None:
    d = decide(att(CallOutcome.NO_ANSWER), phones=(LeadPhone("p1"),))
    assert d.phone_id == "p1"


def test_per_phone_cap_moves_on_then_exhausts() -> None:
    policy = RetryPolicy(max_attempts=6, max_attempts_per_phone=1)
    d = decide(att(CallOutcome.NO_ANSWER), policy=policy)
    assert d.phone_id == "p2"
    d = decide(
        att(CallOutcome.NO_ANSWER, bog(2026, 3, 2, 12), "p2"),
        history=[att(CallOutcome.NO_ANSWER)],
        policy=policy,
    )
    assert d.action is RetryAction.EXHAUSTED
    assert d.reason is RetryReason.PHONES_EXHAUSTED
    assert d.whatsapp_fallback


def test_invalid_number_marks_the_phone_and_tries_the_next() -> None:
    d = decide(att(CallOutcome.INVALID_NUMBER))
    assert d.action is RetryAction.RETRY
    assert d.reason is RetryReason.NEXT_PHONE
    assert d.invalid_phone_id == "p1"
    assert d.phone_id == "p2"
    assert d.next_attempt_at == MON_10 + timedelta(minutes=10)


def test_invalid_last_phone_excludes_the_lead() -> None:
    d = decide(att(CallOutcome.INVALID_NUMBER), phones=(LeadPhone("p1"),))
    assert d.action is RetryAction.EXCLUDED
    assert d.reason is RetryReason.NO_VALID_PHONE
    assert d.invalid_phone_id == "p1"
    assert not d.whatsapp_fallback


def test_unknown_phone_is_a_typed_error() -> None:
    with pytest.raises(NoDialablePhone):
        decide(att(CallOutcome.BUSY, phone="nope"))


def test_pick_first_phone() -> None:
    policy = RetryPolicy(max_attempts_per_phone=1)
    phones = (LeadPhone("p1", dialable=False), LeadPhone("p2"), LeadPhone("p3"))
    assert pick_first_phone(phones, policy) == "p2"
    assert pick_first_phone(phones, policy, [att(CallOutcome.BUSY, phone="p2")]) == "p3"
    with pytest.raises(NoDialablePhone):
        pick_first_phone((LeadPhone("p1", dialable=False),), policy)


def test_counted_attempts_ignores_failures_and_callbacks() -> None:
    policy = RetryPolicy()
    attempts = [
        att(CallOutcome.NO_ANSWER),
        att(CallOutcome.FAILED),
        att(CallOutcome.CONGESTION, trunk=True),
        att(CallOutcome.CONGESTION),
        att(CallOutcome.CANCELLED),
        att(CallOutcome.NO_ANSWER, callback=True),
    ]
    assert counted_attempts(policy, attempts) == 2


# --------------------------------------------------------------------------- dispositions


@pytest.mark.parametrize(
    ("code", "details", "action", "reason"),
    [
        (
            "cita_agendada",
            {
                "appointment_at": "2026-03-05T09:00:00-05:00",
                "branch": "Tunja",
                "service": "5.000 km",
            },
            RetryAction.CONTACTED,
            RetryReason.FINAL_DISPOSITION,
        ),
        (
            "no_interesado",
            {"reason": "precio"},
            RetryAction.CONTACTED,
            RetryReason.FINAL_DISPOSITION,
        ),
        ("servicio_en_otro_taller", {}, RetryAction.CONTACTED, RetryReason.FINAL_DISPOSITION),
        (
            "queja_reclamo",
            {"description": "Cobro doble"},
            RetryAction.CONTACTED,
            RetryReason.FINAL_DISPOSITION,
        ),
        ("no_volver_a_llamar", {}, RetryAction.EXCLUDED, RetryReason.DO_NOT_CALL),
    ],
)
def test_final_dispositions(
    code: str, details: dict[str, object], action: RetryAction, reason: RetryReason
) -> None:
    d = decide(att(CallOutcome.ANSWERED_CONNECTED), disposition=dispo(code, **details))
    assert d.action is action and d.reason is reason
    assert d.is_final and d.next_attempt_at is None and not d.whatsapp_fallback


def test_wrong_number_moves_to_the_alternate_phone() -> None:
    d = decide(att(CallOutcome.ANSWERED_CONNECTED), disposition=dispo("numero_equivocado"))
    assert d.action is RetryAction.RETRY
    assert d.invalid_phone_id == "p1" and d.phone_id == "p2"
    d = decide(
        att(CallOutcome.ANSWERED_CONNECTED),
        phones=(LeadPhone("p1"),),
        disposition=dispo("numero_equivocado"),
    )
    assert d.action is RetryAction.EXCLUDED and d.reason is RetryReason.NO_VALID_PHONE


def test_callback_is_scheduled_snapped_and_scoped() -> None:
    # The customer asks to be called on Sunday 11:00: moved to Monday 07:00.
    record = dispo(
        "volver_a_llamar", callback_at="2026-03-08T11:00:00-05:00", callback_scope="own_agent"
    )
    d = decide(att(CallOutcome.ANSWERED_CONNECTED), disposition=record)
    assert d.action is RetryAction.CALLBACK
    assert d.lead_status is LeadStatus.PENDING
    assert d.next_attempt_at == bog(2026, 3, 9, 7)
    assert d.phone_id == "p1"  # the phone that reached the customer
    assert d.callback_scope is CallbackScope.OWN_AGENT


def test_callback_even_at_the_attempt_cap_but_bounded() -> None:
    record = dispo(
        "volver_a_llamar", callback_at="2026-03-02T16:00:00-05:00", callback_scope="anyone"
    )
    history = [att(CallOutcome.NO_ANSWER, bog(2026, 3, 2, 8)), att(CallOutcome.BUSY, phone="p2")]
    d = decide(att(CallOutcome.ANSWERED_CONNECTED), history=history, disposition=record)
    assert d.action is RetryAction.CALLBACK and d.next_attempt_at == bog(2026, 3, 2, 16)
    callbacks = [att(CallOutcome.ANSWERED_CONNECTED, callback=True) for _ in range(3)]
    d = decide(
        att(CallOutcome.ANSWERED_CONNECTED, callback=True),
        history=callbacks[:-1],
        disposition=record,
    )
    assert d.action is RetryAction.CONTACTED and d.reason is RetryReason.CALLBACK_LIMIT


def test_answered_without_disposition_is_an_error() -> None:
    with pytest.raises(DispositionRequired):
        decide(att(CallOutcome.ANSWERED_CONNECTED))


# --------------------------------------------------------------------------- policy


def test_presets_per_campaign_type() -> None:
    assert RetryPolicy.for_campaign_type(CampaignType.SATISFACCION).max_attempts == 5
    assert RetryPolicy.for_campaign_type(CampaignType.CONTACTO_PROACTIVO).max_attempts == 3
    assert RetryPolicy.for_campaign_type(CampaignType.RECUPERACION).max_attempts == 3


def test_satisfaction_gets_five_attempts() -> None:
    policy = RetryPolicy.for_campaign_type(CampaignType.SATISFACCION)
    history = [att(CallOutcome.NO_ANSWER, MON_10 + timedelta(hours=i)) for i in range(3)]
    d = decide(att(CallOutcome.NO_ANSWER, bog(2026, 3, 2, 14)), history=history, policy=policy)
    assert d.action is RetryAction.RETRY and d.attempts_used == 4
    d = decide(
        att(CallOutcome.NO_ANSWER, bog(2026, 3, 3, 14)),
        history=[*history, att(CallOutcome.BUSY)],
        policy=policy,
    )
    assert d.action is RetryAction.EXHAUSTED


def test_policy_validation() -> None:
    with pytest.raises(InvalidRetryPolicy):
        RetryPolicy(abandoned=timedelta(hours=24))
    with pytest.raises(InvalidRetryPolicy):
        RetryPolicy(busy=timedelta(minutes=-1))
    with pytest.raises(InvalidRetryPolicy):
        RetryPolicy(machine_hour_shift=timedelta(minutes=10))


def test_policy_round_trips_through_json() -> None:
    policy = RetryPolicy(max_attempts=5, busy=timedelta(minutes=30))
    text = policy.model_dump_json()
    assert json.loads(text)["max_attempts"] == 5
    assert RetryPolicy.model_validate_json(text) == policy


def test_decisions_are_always_dialable() -> None:
    for outcome in CallOutcome:
        if outcome is CallOutcome.ANSWERED_CONNECTED:
            continue
        d = decide(att(outcome, bog(2026, 12, 7, 18, 59, 50)))
        if d.next_attempt_at is not None:
            assert can_start_call(W, d.next_attempt_at, calendar=CAL)


def test_storage_decision_on_counting_overrides_the_outcome() -> None:
    """An attempt lost with its dialer is FAILED but counted (the phone may have rung): the
    policy must agree with the stored flag, or a lead gets one attempt more than allowed."""
    policy = RetryPolicy(max_attempts=3)
    lost = AttemptRecord("p1", MON_10, CallOutcome.FAILED, counted=True)
    plain_failure = AttemptRecord("p1", MON_10, CallOutcome.FAILED)
    assert policy.counts(lost) and not policy.counts(plain_failure)
    history = [lost, att(CallOutcome.NO_ANSWER, MON_10 + timedelta(hours=2))]
    last = att(CallOutcome.NO_ANSWER, MON_10 + timedelta(hours=4))
    assert counted_attempts(policy, [*history, last]) == 3
    assert decide(last, history=history, policy=policy).lead_status is LeadStatus.EXHAUSTED


# --- congestion is not counted, but capped per phone (issue 14, defect 8) ------------------
def test_a_phone_that_always_gives_congestion_is_marked_bad_after_the_cap() -> None:
    """Congestion never counts against the limits: without a per-phone cap the same number
    was dialed forever (18 calls to 6 numbers in 20 minutes on the real PBX)."""
    hist = [att(CallOutcome.CONGESTION, MON_10 + timedelta(minutes=i), trunk=True) for i in (0, 10)]
    third = att(CallOutcome.CONGESTION, MON_10 + timedelta(minutes=30), trunk=True)
    d = decide(third, history=hist)
    assert d.reason is RetryReason.TRUNK_FAILURES
    assert d.invalid_phone_id == "p1" and d.phone_id == "p2"
    assert d.invalid_phone_reason == "trunk_failures"
    assert not d.counted and d.attempts_used == 0  # still not counted against the limit
    # a lead with only that phone is closed: no dialable phone left
    only = decide(third, history=hist, phones=(LeadPhone("p1"),))
    assert (only.action, only.invalid_phone_id) == (RetryAction.EXCLUDED, "p1")


def test_congestion_cap_counts_a_streak_on_that_phone_only() -> None:
    c = CallOutcome.CONGESTION
    policy = RetryPolicy(max_trunk_failures_per_phone=2)
    # an answer in between resets the streak; other phones' congestion does not add up
    hist = [att(c, trunk=True), att(CallOutcome.NO_ANSWER), att(c, phone="p2", trunk=True)]
    d = decide(att(c, MON_10 + timedelta(hours=1), trunk=True), history=hist, policy=policy)
    assert d.reason is RetryReason.SYSTEM_FAILURE and d.invalid_phone_id is None
    d2 = decide(
        att(c, MON_10 + timedelta(hours=2), trunk=True),
        history=[*hist, att(c, MON_10 + timedelta(hours=1), trunk=True)],
        policy=policy,
    )
    assert (d2.reason, d2.invalid_phone_id) == (RetryReason.TRUNK_FAILURES, "p1")
