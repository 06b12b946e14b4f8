from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from dialer.domain.eligibility import (
    CampaignRules,
    ConsentSnapshot,
    LeadSnapshot,
    PhoneSnapshot,
    Readiness,
    RuleCode,
    ensure_ready,
    evaluate_readiness,
)
from dialer.domain.errors import NotEligible
from dialer.domain.frequency import ContactEvent
from dialer.domain.outcomes import CampaignType, Channel, LeadStatus
from tests.domain.helpers import CAL, bog

NOW = bog(2026, 3, 4, 10)  # Wednesday 10:00, Bogotá
PROACTIVO = CampaignRules(campaign_type=CampaignType.CONTACTO_PROACTIVO)
SATISFACCION = CampaignRules(campaign_type=CampaignType.SATISFACCION)
RECUPERACION = CampaignRules(campaign_type=CampaignType.RECUPERACION)

LEAD = LeadSnapshot(
    lead_id="L1",
    status=LeadStatus.PENDING,
    phones=(PhoneSnapshot("p1"), PhoneSnapshot("p2")),
    consents=(
        ConsentSnapshot(Channel.VOICE, bog(2025, 1, 1)),
        ConsentSnapshot(Channel.WHATSAPP, bog(2025, 1, 1)),
    ),
    next_attempt_at=bog(2026, 3, 4, 9),
    event_date=date(2026, 3, 1),
    last_visit_date=date(2024, 6, 1),
)


def run(
    lead: LeadSnapshot = LEAD,
    campaign: CampaignRules = PROACTIVO,
    now: datetime = NOW,
    channel: Channel = Channel.VOICE,
) -> Readiness:
    return evaluate_readiness(lead, campaign, now, channel=channel, calendar=CAL)


def only_failure(r: Readiness) -> RuleCode:
    assert not r.ready
    codes = [x.code for x in r.failed]
    assert len(codes) == 1, codes
    return codes[0]


def test_baseline_lead_is_ready_for_every_campaign_type() -> None:
    for campaign in (PROACTIVO, SATISFACCION, RECUPERACION):
        r = run(campaign=campaign)
        assert r.ready, r.summary_en()
        assert r.ready_at == NOW
        assert r.dialable_phone_ids == ("p1", "p2")
        assert {x.code for x in r.rules} == set(RuleCode)
        assert r.summary_es() == "Lista para marcar."
    ensure_ready(run())


@pytest.mark.parametrize(
    "status", [LeadStatus.CONTACTED, LeadStatus.EXHAUSTED, LeadStatus.EXCLUDED]
)
def test_final_status_never_becomes_ready(status: LeadStatus) -> None:
    r = run(replace(LEAD, status=status))
    assert only_failure(r) is RuleCode.LEAD_STATUS
    assert r.ready_at is None


def test_claimed_lead_is_not_ready() -> None:
    assert only_failure(run(replace(LEAD, status=LeadStatus.IN_PROGRESS))) is RuleCode.LEAD_STATUS


def test_new_lead_without_schedule_is_ready() -> None:
    assert run(replace(LEAD, status=LeadStatus.NEW, next_attempt_at=None)).ready


def test_future_next_attempt() -> None:
    r = run(replace(LEAD, next_attempt_at=bog(2026, 3, 4, 12)))
    assert only_failure(r) is RuleCode.NEXT_ATTEMPT_DUE
    assert r.ready_at == bog(2026, 3, 4, 12)
    assert r.rule(RuleCode.NEXT_ATTEMPT_DUE).next_pass_at == bog(2026, 3, 4, 12)


def test_next_attempt_after_close_is_ready_at_the_next_opening() -> None:
    r = run(replace(LEAD, next_attempt_at=bog(2026, 3, 7, 15, 30)))  # Saturday after 15:00
    assert r.ready_at == bog(2026, 3, 9, 7)


def test_window_closed_on_sunday() -> None:
    r = run(now=bog(2026, 3, 8, 10))
    assert only_failure(r) is RuleCode.CALL_WINDOW
    rule = r.rule(RuleCode.CALL_WINDOW)
    assert "domingo" in rule.message_es and "Sunday" in rule.message_en
    assert r.ready_at == bog(2026, 3, 9, 7)


def test_window_closed_on_a_holiday_names_it() -> None:
    r = run(now=bog(2026, 12, 8, 10))
    assert only_failure(r) is RuleCode.CALL_WINDOW
    assert "Inmaculada" in r.rule(RuleCode.CALL_WINDOW).message_es
    assert r.ready_at == bog(2026, 12, 9, 7)


def test_window_uses_the_leads_time_zone() -> None:
    # 18:30 in Bogotá is 00:30 in Madrid
    r = run(replace(LEAD, timezone="Europe/Madrid"), now=bog(2026, 3, 4, 18, 30))
    assert only_failure(r) is RuleCode.CALL_WINDOW
    assert run(now=bog(2026, 3, 4, 18, 30)).ready


def test_all_phones_dnc() -> None:
    lead = replace(LEAD, phones=(PhoneSnapshot("p1", dnc=True), PhoneSnapshot("p2", dnc=True)))
    r = run(lead)
    assert only_failure(r) is RuleCode.DNC
    assert r.ready_at is None and r.dialable_phone_ids == ()


def test_person_on_dnc() -> None:
    r = run(replace(LEAD, person_dnc=True))
    assert only_failure(r) is RuleCode.DNC
    assert r.dialable_phone_ids == ()


def test_one_phone_dnc_leaves_the_other() -> None:
    lead = replace(LEAD, phones=(PhoneSnapshot("p1", dnc=True), PhoneSnapshot("p2")))
    r = run(lead)
    assert r.ready and r.dialable_phone_ids == ("p2",)


def test_all_phones_rne() -> None:
    lead = replace(LEAD, phones=(PhoneSnapshot("p1", rne=True), PhoneSnapshot("p2", rne=True)))
    r = run(lead)
    assert only_failure(r) is RuleCode.RNE
    assert "RNE" in r.rule(RuleCode.RNE).message_es


def test_dnc_and_rne_mixed_blocks_every_phone() -> None:
    lead = replace(LEAD, phones=(PhoneSnapshot("p1", dnc=True), PhoneSnapshot("p2", rne=True)))
    r = run(lead)
    assert only_failure(r) is RuleCode.RNE
    assert r.dialable_phone_ids == ()


def test_no_valid_phone() -> None:
    lead = replace(LEAD, phones=(PhoneSnapshot("p1", invalid=True),))
    assert only_failure(run(lead)) is RuleCode.PHONE_AVAILABLE
    assert only_failure(run(replace(LEAD, phones=()))) is RuleCode.PHONE_AVAILABLE


def test_no_consent_for_the_channel() -> None:
    lead = replace(LEAD, consents=(ConsentSnapshot(Channel.WHATSAPP, bog(2025, 1, 1)),))
    r = run(lead)
    assert only_failure(r) is RuleCode.CONSENT
    assert r.ready_at is None
    assert run(lead, channel=Channel.WHATSAPP).ready


def test_revoked_consent() -> None:
    lead = replace(
        LEAD, consents=(ConsentSnapshot(Channel.VOICE, bog(2025, 1, 1), bog(2026, 3, 4, 9, 59)),)
    )
    r = run(lead)
    assert only_failure(r) is RuleCode.CONSENT
    assert "revocó" in r.rule(RuleCode.CONSENT).message_es


def test_frequency_cap_after_a_direct_contact_today() -> None:
    other_campaign = ContactEvent(bog(2026, 3, 4, 8), Channel.VOICE, True, "c-other")
    r = run(replace(LEAD, contact_history=(other_campaign,)))
    assert only_failure(r) is RuleCode.FREQUENCY
    assert r.ready_at == bog(2026, 3, 5, 7)  # midnight, snapped to the window


def test_frequency_exemption_for_requested_callbacks() -> None:
    contact = ContactEvent(bog(2026, 3, 4, 8), Channel.VOICE, True)
    assert run(replace(LEAD, contact_history=(contact,), callback_requested=True)).ready


def test_open_complaint_blocks_satisfaction_only() -> None:
    lead = replace(LEAD, has_open_complaint=True)
    r = run(lead, SATISFACCION)
    assert only_failure(r) is RuleCode.OPEN_COMPLAINT
    assert r.ready_at is None
    assert run(lead, PROACTIVO).ready
    forced = PROACTIVO.model_copy(update={"skip_open_complaints": True})
    assert only_failure(run(lead, forced)) is RuleCode.OPEN_COMPLAINT


def test_abandoned_call_cooldown() -> None:
    r = run(replace(LEAD, last_abandoned_at=bog(2026, 3, 3, 18)))
    assert only_failure(r) is RuleCode.ABANDON_COOLDOWN
    assert r.ready_at == bog(2026, 3, 6, 18)  # Friday 18:00, inside the window
    assert run(replace(LEAD, last_abandoned_at=bog(2026, 3, 1, 9, 59))).ready
    # ...ending on Saturday after 15:00 -> Monday 07:00
    r = run(replace(LEAD, last_abandoned_at=bog(2026, 3, 4, 16)))
    assert r.ready_at == bog(2026, 3, 9, 7)


def test_satisfaction_starts_on_day_two_after_the_service() -> None:
    r = run(replace(LEAD, event_date=date(2026, 3, 3)), SATISFACCION)  # yesterday
    assert only_failure(r) is RuleCode.CAMPAIGN_START
    assert r.ready_at == bog(2026, 3, 5, 7)
    assert run(replace(LEAD, event_date=date(2026, 3, 2)), SATISFACCION).ready
    missing = run(replace(LEAD, event_date=None), SATISFACCION)
    assert only_failure(missing) is RuleCode.CAMPAIGN_START and missing.ready_at is None


def test_recovery_needs_more_than_a_year_without_visit() -> None:
    recent = run(replace(LEAD, last_visit_date=date(2025, 9, 1)), RECUPERACION)
    assert only_failure(recent) is RuleCode.CAMPAIGN_START
    assert recent.ready_at == bog(2026, 9, 2, 7)  # day 366, Wednesday
    assert run(replace(LEAD, last_visit_date=date(2025, 3, 3)), RECUPERACION).ready  # 366 days
    exactly = run(replace(LEAD, last_visit_date=date(2025, 3, 4)), RECUPERACION)  # 365 days
    assert only_failure(exactly) is RuleCode.CAMPAIGN_START
    missing = run(replace(LEAD, last_visit_date=None), RECUPERACION)
    assert only_failure(missing) is RuleCode.CAMPAIGN_START and missing.ready_at is None


def test_several_failures_combine_into_the_earliest_ready_time() -> None:
    lead = replace(
        LEAD,
        next_attempt_at=bog(2026, 3, 5, 8),
        last_abandoned_at=bog(2026, 3, 2, 9),  # cooldown until Thursday 09:00
    )
    r = run(lead, now=bog(2026, 3, 4, 19, 30))
    assert {x.code for x in r.failed} == {
        RuleCode.NEXT_ATTEMPT_DUE,
        RuleCode.CALL_WINDOW,
        RuleCode.ABANDON_COOLDOWN,
    }
    assert r.ready_at == bog(2026, 3, 5, 9)


def test_not_ready_is_explainable_and_serialisable() -> None:
    r = run(replace(LEAD, person_dnc=True), now=bog(2026, 3, 8, 10))
    with pytest.raises(NotEligible) as err:
        ensure_ready(r)
    assert set(err.value.details["failed"]) == {"dnc", "call_window"}
    data = json.loads(json.dumps(r.to_dict()))
    assert data["ready"] is False and data["ready_at"] is None
    assert {x["code"] for x in data["rules"] if not x["passed"]} == {"dnc", "call_window"}
    assert all(x["message_es"] and x["message_en"] for x in data["rules"])
    assert "DNC" in r.summary_es()


def test_whatsapp_fallback_reuses_the_rules() -> None:
    exhausted = replace(
        LEAD,
        status=LeadStatus.EXHAUSTED,
        next_attempt_at=bog(2026, 3, 9, 9),
        last_abandoned_at=bog(2026, 3, 4, 9),
    )
    assert run(exhausted, channel=Channel.WHATSAPP).ready
    voice = run(exhausted)  # the same lead is not dialable any more
    assert RuleCode.LEAD_STATUS in {x.code for x in voice.failed} and voice.ready_at is None
    # contact hours and frequency still apply to messages
    assert only_failure(run(exhausted, now=bog(2026, 3, 8, 10), channel=Channel.WHATSAPP)) is (
        RuleCode.CALL_WINDOW
    )
    called_today = ContactEvent(bog(2026, 3, 4, 8), Channel.VOICE, True)
    r = run(replace(exhausted, contact_history=(called_today,)), channel=Channel.WHATSAPP)
    assert only_failure(r) is RuleCode.FREQUENCY
    assert r.ready_at == bog(2026, 3, 11, 8)  # one channel per week after a direct contact
    # an excluded (e.g. DNC) lead never gets a message
    excluded = replace(exhausted, status=LeadStatus.EXCLUDED)
    assert only_failure(run(excluded, channel=Channel.WHATSAPP)) is RuleCode.LEAD_STATUS


def test_campaign_rules_round_trip() -> None:
    rules = CampaignRules(campaign_type=CampaignType.SATISFACCION, ring_time=timedelta(seconds=25))
    assert CampaignRules.model_validate_json(rules.model_dump_json()) == rules
