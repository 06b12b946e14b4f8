"""``core restart now`` in the middle of a campaign (issue 14 defect 8, PBX restart).

Its own lab Asterisk (the session's lab is shared by the other modules). A progressive
campaign has one customer talking with an agent and one still ringing when the PBX restarts:

* the connected call is ``answered_connected`` with ``end_reason`` ``pbx_restart`` (detail);
* the ringing call is ``failed`` (``pbx_restart``) and does not count against the limit: with
  ``max_attempts = 1`` the lead is dialed again once the dialer is back;
* the dialer reconnects on its own: the agents log in again and the campaign goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from dialer.db.models import CallAttempt
from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import lab_number, late_number
from dialer.pbx_lab import LabPbx, bundle_dir, bundle_present
from tests.pbx.stack import PbxStack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

AGENTS = ["1301", "1302"]


@pytest.fixture(scope="module")
def restart_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPbx]:
    """A lab of this module's own: restarting the session's lab would cut other tests."""
    if not bundle_present():
        pytest.skip(f"no Asterisk bundle at {bundle_dir()} (set MARCADOR_ASTERISK_BUNDLE)")
    lab = LabPbx.start(tmp_path_factory.mktemp("pbx-restart-lab"))
    try:
        yield lab
    finally:
        lab.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def restart_stack(
    restart_lab: LabPbx, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PbxStack]:
    stack = PbxStack(restart_lab, tmp_path_factory.mktemp("pbx-restart-stack")).start()
    try:
        yield stack
    finally:
        await stack.aclose()


async def test_core_restart_mid_campaign(restart_stack: PbxStack) -> None:
    stack, lab = restart_stack, restart_stack.lab
    talking = lab_number("0", 801)
    ringing = late_number("5", 802, ring=9)  # rings 9 s, then answers and hangs up after 1 s
    camp, leads = await stack.seed_campaign(
        [], max_attempts=1, ring_timeout=30, wrap_up_seconds=60, retry_rules={"failed": "PT1S"}
    )
    users = await stack.add_agents(camp, AGENTS)
    clients = await stack.login_agents(camp, users)
    leads = await stack.add_leads(camp, [talking, ringing])

    async def both_in_progress() -> bool:
        row = await stack.attempt_of(camp, talking)
        talking_up = row is not None and await stack.agent_on(clients, row.uuid) is not None
        ring = await stack.attempt_of(camp, ringing)
        still_ringing = ring is not None and ring.answered_at is None
        return talking_up and still_ringing and bool(stack.customer_channels(ringing))

    await wait_until(both_in_progress, within=30, what="one call connected, one ringing")
    lab.cli("core restart now")

    async def first_attempts() -> dict[str, CallAttempt] | None:
        firsts: dict[str, CallAttempt] = {}
        for a in await stack.attempts(camp):
            firsts.setdefault(a.number, a)
        if all(n in firsts and firsts[n].outcome is not None for n in (talking, ringing)):
            return firsts
        return None

    firsts = await wait_until(first_attempts, within=45, what="the outcomes of the cut calls")
    cut_talk, cut_ring = firsts[talking], firsts[ringing]
    assert cut_talk.outcome is CallOutcome.ANSWERED_CONNECTED, cut_talk.detail
    assert (cut_talk.detail or "").startswith("pbx_restart"), cut_talk.detail
    assert cut_talk.connected_at is not None
    assert cut_ring.outcome is CallOutcome.FAILED, cut_ring.detail
    assert (cut_ring.detail or "").startswith("pbx_restart"), cut_ring.detail
    assert cut_ring.counts_against_limit is False
    assert (await stack.lead(leads[ringing])).attempts == 0

    # The dialer reconnects by itself; the agents' phones are called again, and the lead whose
    # ringing call was cut is dialed again although max_attempts is 1.
    await stack.login_agents(camp, users, within=90)

    async def redialed() -> CallAttempt | None:
        row = await stack.attempt_of(camp, ringing)
        if row is None or row.id == cut_ring.id or row.outcome is None:
            return None
        return row

    again = await wait_until(redialed, within=60, what="the cut lead dialed again")
    assert again.outcome is CallOutcome.ANSWERED_CONNECTED, again.detail
    assert again.counts_against_limit is True
    assert stack.dialer_alive()
