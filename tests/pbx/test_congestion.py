"""A number that always gives congestion (lab digit 3) on the real PBX (issue 14 defect 8,
congestion cap): congestion does not count against the limit, so without a cap it was dialed
forever (18 calls to 6 numbers in 20 minutes). After ``max_trunk_failures_per_phone`` (3) in
a row the phone is marked bad and never dialed again.
"""

from __future__ import annotations

import pytest

from dialer.domain.outcomes import CallOutcome, LeadStatus
from dialer.lab_pstn import lab_number
from tests.pbx.stack import PbxStack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

CAP = 3  # RetryPolicy.max_trunk_failures_per_phone's default


async def test_congestion_marks_the_phone_bad_after_the_cap(module_stack: PbxStack) -> None:
    stack = module_stack
    number = lab_number("3", 901)
    camp, leads = await stack.seed_campaign(
        [number], max_attempts=10, retry_rules={"congestion": "PT1S"}
    )
    users = await stack.add_agents(camp, ["1401"])
    await stack.login_agents(camp, users)

    async def closed() -> bool:
        lead = await stack.lead(leads[number])
        done = [a for a in await stack.attempts(camp) if a.outcome is not None]
        return len(done) >= CAP and lead.status not in (
            LeadStatus.NEW,
            LeadStatus.PENDING,
            LeadStatus.IN_PROGRESS,
        )

    await wait_until(closed, within=60, what=f"{CAP} congestion results and the lead closed")
    rows = await stack.attempts(camp)
    assert [a.outcome for a in rows] == [CallOutcome.CONGESTION] * CAP, [
        (a.outcome, a.detail) for a in rows
    ]
    assert not any(a.counts_against_limit for a in rows)
    (phone,) = await stack.phones(leads[number])
    assert phone.valid is False
    lead = await stack.lead(leads[number])
    assert lead.attempts == 0  # never counted: the cap, not max_attempts, stopped it
    assert lead.next_attempt_at is None, lead.next_attempt_at
    assert lead.status is LeadStatus.EXCLUDED, (lead.status, lead.status_reason)
