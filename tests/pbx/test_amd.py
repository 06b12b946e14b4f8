"""AMD on the real PBX (issue 14 defects 1 and 8a): the dialer connects only on the dialplan's
verdict (the customer reaching ``marcador-hold``), never on the bare answer.

One campaign with AMD on dials a person (digit 6), an answering machine (7) and a customer who
hangs up during ``AMD()``'s initial silence (5) at once, with an agent free for each.
"""

from __future__ import annotations

import pytest

from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import expected_outcome, lab_number
from tests.pbx.stack import PbxStack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

AGENTS = ["1101", "1102", "1103"]


async def test_amd_verdicts_are_recorded_and_only_people_reach_an_agent(
    module_stack: PbxStack,
) -> None:
    stack = module_stack
    human, machine, early = (lab_number(d, 600 + int(d)) for d in ("6", "7", "5"))
    camp, _ = await stack.seed_campaign([], amd=True, max_attempts=1, wrap_up_seconds=60)
    users = await stack.add_agents(camp, AGENTS)
    clients = await stack.login_agents(camp, users)
    await stack.add_leads(camp, [human, machine, early])

    # The person is put through, after AMD said HUMAN (not on the answer: defect 1).
    async def human_connected() -> bool:
        row = await stack.attempt_of(camp, human)
        return row is not None and await stack.agent_on(clients, row.uuid) is not None

    await wait_until(human_connected, within=30, what="the person connected to an agent")
    final = await stack.wait_final(camp, [human, machine, early], within=45)

    got = {n: final[n].outcome for n in final}
    assert got == {n: expected_outcome(n, amd=True) for n in final}
    assert got[human] is CallOutcome.ANSWERED_CONNECTED
    assert final[human].amd_status == "HUMAN"
    assert final[human].connected_at is not None

    # The machine never reached an agent (recorded 7/7 answered_connected before the fix).
    assert got[machine] is CallOutcome.MACHINE
    assert final[machine].amd_status == "MACHINE"
    assert final[machine].connected_at is None

    # Hung up during AMD: never offered, never heard the safe harbor, not abandoned (8a).
    assert got[early] is CallOutcome.EARLY_HANGUP
    assert final[early].connected_at is None
    assert final[early].amd_status == "HANGUP"
    assert final[early].answered_at is not None

    # Exactly one agent took a call (the person's); the others are still ready.
    states = sorted([await c.state() for c in clients])
    assert states == ["ready", "ready", "wrap_up"], states
