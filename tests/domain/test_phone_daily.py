"""One call per phone number per day across people (issue 19: phones shared by two people)."""

from __future__ import annotations

from dataclasses import replace

from dialer.domain.eligibility import PhoneSnapshot, RuleCode, evaluate_readiness
from dialer.domain.outcomes import Channel
from tests.domain.helpers import CAL, bog
from tests.domain.test_eligibility import LEAD, NOW, PROACTIVO


def test_a_shared_phone_called_today_for_another_person_waits_until_tomorrow() -> None:
    lead = replace(LEAD, phones=(PhoneSnapshot("p1", others_last_call_at=bog(2026, 3, 4, 8)),))
    r = evaluate_readiness(lead, PROACTIVO, NOW, calendar=CAL)
    assert [x.code for x in r.failed] == [RuleCode.PHONE_DAILY]
    assert r.rule(RuleCode.PHONE_DAILY).next_pass_at == bog(2026, 3, 5, 0)
    assert r.dialable_phone_ids == ()
    assert r.ready_at is not None and r.ready_at >= bog(2026, 3, 5, 0)


def test_the_other_phones_are_used_meanwhile() -> None:
    shared = PhoneSnapshot("p1", others_last_call_at=bog(2026, 3, 4, 8))
    lead = replace(LEAD, phones=(shared, PhoneSnapshot("p2")))
    r = evaluate_readiness(lead, PROACTIVO, NOW, calendar=CAL)
    assert r.ready and r.dialable_phone_ids == ("p2",)


def test_a_call_yesterday_local_time_does_not_block() -> None:
    # 23:30 Bogotá yesterday is 04:30 UTC today: the local day decides
    lead = replace(LEAD, phones=(PhoneSnapshot("p1", others_last_call_at=bog(2026, 3, 3, 23, 30)),))
    r = evaluate_readiness(lead, PROACTIVO, NOW, calendar=CAL)
    assert r.ready and r.dialable_phone_ids == ("p1",)


def test_messages_are_not_calls() -> None:
    lead = replace(LEAD, phones=(PhoneSnapshot("p1", others_last_call_at=bog(2026, 3, 4, 8)),))
    r = evaluate_readiness(lead, PROACTIVO, NOW, channel=Channel.WHATSAPP, calendar=CAL)
    assert r.rule(RuleCode.PHONE_DAILY).passed
