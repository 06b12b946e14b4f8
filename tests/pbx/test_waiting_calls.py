"""Abandon, safe harbor and a waiting call taken by an agent who frees up, on the real PBX
(issue 14 defect 2).

One agent, a fixed-ratio campaign (3 lines per agent) dialing at once:

* two customers who answer at once: one is put through, the other waits in ``marcador-hold``
  with no agent free, is abandoned after the connect timeout and hears the safe-harbor message;
* a customer who answers 4 s later (a late lab number): by then the agent's first call is over
  and the agent is in wrap-up; the agent posts the disposition ("ready") while this customer
  waits in hold, and takes them (connected, not abandoned).
"""

from __future__ import annotations

import pytest

from ami_bridge import dialplan as dp
from ami_bridge.simulator import AmiTestClient
from ami_bridge.simulator.client import Message
from dialer.domain.outcomes import CallOutcome, DialMode
from dialer.lab_pstn import lab_number, late_number
from tests.pbx.stack import PbxStack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _leg_of(number: str, m: Message) -> bool:
    return (m.get("Channel") or "").startswith(f"Local/{number}@") and (
        m.get("Channel") or ""
    ).endswith(";1")


async def test_abandon_safe_harbor_and_a_waiting_call_taken_by_an_agent_who_frees_up(
    module_stack: PbxStack, module_ami: AmiTestClient
) -> None:
    stack, ami = module_stack, module_ami
    first, second = lab_number("0", 701), lab_number("0", 702)
    late = late_number("0", 703, ring=4)
    camp, _ = await stack.seed_campaign(
        [],
        mode=DialMode.FIXED_RATIO,
        dial_ratio=3.0,
        max_attempts=1,
        connect_timeout=2.0,
        wrap_up_seconds=120,
    )
    # A track record of 200 live answers today: the legal cap (3 %) leaves room for the
    # over-dial (a new campaign would hold progressive: cap_warmup).
    await stack.seed_history(camp, 200)
    (user,) = await stack.add_agents(camp, ["1201"])
    (agent,) = await stack.login_agents(camp, [user])
    start = len(ami.messages)
    await stack.add_leads(camp, [first, second, late])

    # One of the two early customers is put through; the other waits with no agent free.
    async def connected_early() -> str | None:
        for number in (first, second):
            row = await stack.attempt_of(camp, number)
            if row is not None and await stack.agent_on([agent], row.uuid) is not None:
                return number
        return None

    taken = await wait_until(connected_early, within=30, what="an early customer connected")
    waiting = second if taken == first else first
    taken_row = await stack.attempt_of(camp, taken)
    assert taken_row is not None
    # The agent's call ends before the late customer answers: the agent is in wrap-up.
    assert stack.hangup_customer(taken)

    async def in_wrap_up() -> bool:
        return await agent.state() == "wrap_up"

    await wait_until(in_wrap_up, within=15, what="the agent in wrap-up")

    # The late customer reaches the hold (the dialplan's verdict) while nobody is free ...
    hold = await ami.wait_for(
        lambda m: (
            m.event == "Newexten"
            and m.get("Context") == dp.CTX_HOLD
            and m.get("Extension") == "s"
            and _leg_of(late, m)
        ),
        within=30,
        start=start,
    )
    # ... and the agent frees up ("pasar a disponible" after the disposition) within the
    # connect timeout: the engine Redirects the oldest waiting call to them.
    r = await agent.post(
        "/agent/disposition",
        {"attempt": taken_row.uuid, "code": "no_interesado", "details": {"reason": "precio"}},
    )
    assert r.status_code in (200, 202), r.text
    late_row = await stack.attempt_of(camp, late)
    assert late_row is not None

    async def late_connected() -> bool:
        return await stack.agent_on([agent], late_row.uuid) is not None

    await wait_until(late_connected, within=10, what="the waiting customer connected")
    assert stack.hangup_customer(late)

    final = await stack.wait_final(camp, [first, second, late], within=30)
    assert final[taken].outcome is CallOutcome.ANSWERED_CONNECTED
    assert final[late].outcome is CallOutcome.ANSWERED_CONNECTED, final[late].detail
    assert final[late].connected_at is not None
    assert final[waiting].outcome is CallOutcome.ABANDONED, final[waiting].detail
    assert final[waiting].connected_at is None

    # The abandoned customer: MARCADOR_ABANDONED set by the dialplan, safe-harbor played.
    events = ami.messages[start:]
    abandoned_vars = [
        m
        for m in events
        if m.event == "VarSet"
        and m.get("Variable") == dp.VAR_ABANDONED
        and m.get("Value") == "1"
        and _leg_of(waiting, m)
    ]
    assert abandoned_vars, "MARCADOR_ABANDONED never set on the abandoned customer"
    played = [
        m
        for m in events
        if m.event == "Newexten"
        and m.get("Context") == dp.CTX_HOLD
        and m.get("Extension") == dp.EXTEN_SAFE_HARBOR
        and m.get("Application") == "Playback"
        and _leg_of(waiting, m)
    ]
    assert played and played[0].get("AppData"), "the safe-harbor message was not played"
    # The late customer never took the safe-harbor path: one consistent outcome.
    assert not [
        m
        for m in events
        if m.event == "VarSet" and m.get("Variable") == dp.VAR_ABANDONED and _leg_of(late, m)
    ]
    assert hold.get("Uniqueid")
