"""Retries, the attempt limit and the WhatsApp outbox on the real PBX.

Busy (digit 2) and ring-no-answer (digit 4) customers in a campaign with two attempts and
2-second retry rules: each is dialed exactly twice, the retry waits its rule, the lead ends
``exhausted`` and exactly one WhatsApp fallback row is queued for it (the outbox).
"""

from __future__ import annotations

from datetime import timedelta

from dialer.domain.outcomes import CallOutcome, DialMode, LeadStatus
from dialer.lab_pstn import expected_outcome, lab_number
from tests.pbx.stack import PbxStack, wait_until

MAX_ATTEMPTS = 2
RETRY = timedelta(seconds=2)


async def test_busy_and_no_answer_exhaust_into_one_whatsapp_each(pbx_stack: PbxStack) -> None:
    stack = pbx_stack
    numbers = [lab_number("2", 401), lab_number("2", 402), lab_number("4", 403)]
    camp, leads = await stack.seed_campaign(
        numbers,
        mode=DialMode.PROGRESSIVE,
        max_attempts=MAX_ATTEMPTS,
        ring_timeout=15,
        whatsapp=True,
        retry_rules={"busy": "PT2S", "no_answer": "PT2S"},
    )
    users = await stack.add_agents(camp, ["1021", "1022", "1023"])
    await stack.login_agents(camp, users)

    async def all_exhausted() -> bool:
        for n in numbers:
            if (await stack.lead(leads[n])).status != LeadStatus.EXHAUSTED:
                return False
        return True

    await wait_until(all_exhausted, within=120, what="every lead exhausted")

    rows = await stack.attempts(camp)
    for n in numbers:
        mine = [a for a in rows if a.number == n]
        assert [a.outcome for a in mine] == [expected_outcome(n)] * MAX_ATTEMPTS, [
            (a.outcome, a.hangup_cause) for a in mine
        ]
        assert [a.attempt_number for a in mine] == list(range(1, MAX_ATTEMPTS + 1))
        assert all(a.counts_against_limit for a in mine)
        # The retry waited its rule (busy/no_answer: 2 s after the previous call ended).
        first, second = mine
        assert first.ended_at is not None and second.created_at is not None
        assert second.created_at - first.ended_at >= RETRY - timedelta(milliseconds=50)
    assert {expected_outcome(n) for n in numbers} == {CallOutcome.BUSY, CallOutcome.NO_ANSWER}

    # The outbox: exactly one queued WhatsApp message per exhausted lead.
    async def outbox() -> dict[int, int] | None:
        per_lead: dict[int, int] = {}
        for r in await stack.whatsapp_rows(camp):
            if r.lead_id is not None:
                per_lead[r.lead_id] = per_lead.get(r.lead_id, 0) + 1
        return per_lead if set(per_lead) >= set(leads.values()) else None

    per_lead = await wait_until(outbox, within=20, what="a WhatsApp row for every lead")
    assert per_lead == {lead_id: 1 for lead_id in leads.values()}
    for r in await stack.whatsapp_rows(camp):
        assert r.template == "recordatorio_mantenimiento"
        assert r.phone in numbers
