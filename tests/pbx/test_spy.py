"""Supervisor spy on the real PBX (issue 14 defects 11 and 12).

The supervisor's phone is dialled like an agent's (``AsteriskServer.agent_channel``: a lab
virtual phone, ``Local/2001@marcador-lab-vagent``), answers, and runs ``ChanSpy`` in the
literal ``marcador-spy`` extension of the mode. The spy belongs to the spied call: a second
request replaces the first, ``DELETE /agents/{id}/spy`` stops it, and it ends when the spied
customer leaves (the agent's nailed-up session stays). Not in a call: 409.
"""

from __future__ import annotations

import pytest

from ami_bridge import dialplan as dp
from dialer.db.models import Role
from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import lab_number
from tests.pbx.stack import PbxStack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

AGENT, SUPERVISOR = "1501", "2001"


async def test_spy_listen_replace_stop_and_end_with_the_call(module_stack: PbxStack) -> None:
    stack = module_stack
    customer = lab_number("0", 1001)
    camp, _ = await stack.seed_campaign([], max_attempts=1, wrap_up_seconds=60)
    (agent_user,) = await stack.add_agents(camp, [AGENT])
    (sup_user,) = await stack.add_agents(camp, [SUPERVISOR], role=Role.SUPERVISOR)
    (agent,) = await stack.login_agents(camp, [agent_user])
    sup = await stack.agent_client(sup_user)
    path = f"/agents/{agent_user.id}/spy"

    def spies() -> list[dict[str, str]]:
        return [c for c in stack.channels() if c["context"] == dp.CTX_SPY]

    async def spying(spy_id: str, mode: str) -> bool:
        found = spies()
        return (
            len(found) == 1
            and found[0]["uniqueid"] == spy_id
            and found[0]["exten"] == mode
            and found[0]["app"] == "ChanSpy"
            and found[0]["data"].startswith(f"PJSIP/{AGENT}-")
        )

    async def no_spy() -> bool:
        return not spies()

    # Not on a call: refused at once, no call to the supervisor.
    r = await sup.post(path, {"mode": "listen"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "agent_not_in_call", r.text
    assert not spies()

    await stack.add_leads(camp, [customer])

    async def on_call() -> bool:
        row = await stack.attempt_of(camp, customer)
        return row is not None and await stack.agent_on([agent], row.uuid) is not None

    await wait_until(on_call, within=30, what="the agent on a call")

    r = await sup.post(path, {"mode": "listen"})
    assert r.status_code == 202 and r.json()["status"] == "ringing", r.text
    first = r.json()["spy"]
    await wait_until(lambda: spying(first, "listen"), within=15, what="the listen spy up")

    # A second request replaces the first (one spy per supervisor).
    r = await sup.post(path, {"mode": "barge"})
    assert r.status_code == 202 and r.json()["status"] == "ringing", r.text
    second = r.json()["spy"]
    assert second != first
    await wait_until(lambda: spying(second, "barge"), within=15, what="barge replacing listen")

    # DELETE stops it.
    r = await sup.delete(path)
    assert r.status_code == 202, r.text
    await wait_until(no_spy, within=15, what="the spy stopped")

    # A new spy ends when the spied customer leaves; the agent's session stays.
    r = await sup.post(path, {"mode": "whisper"})
    assert r.status_code == 202 and r.json()["status"] == "ringing", r.text
    third = r.json()["spy"]
    await wait_until(lambda: spying(third, "whisper"), within=15, what="the whisper spy up")
    assert stack.hangup_customer(customer)
    await wait_until(no_spy, within=15, what="the spy ended with the spied call")

    async def wrapping() -> bool:
        return await agent.state() == "wrap_up"

    await wait_until(wrapping, within=15, what="the agent in wrap-up")
    assert any(c["name"].startswith(f"Local/{AGENT}@") for c in stack.channels())
    (row,) = await stack.attempts(camp)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED
