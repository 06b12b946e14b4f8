"""Transfers out of the campaign on the real PBX (issue 15): the API -> dialer -> AMI ->
Asterisk 22, and what channels exist afterwards.

The supervisor's seat is dialled like an agent's phone (the lab's ``agent_channel``: a virtual
phone ``Local/2001@marcador-lab-vagent`` that answers, as in test_spy.py); the external number
is a lab PSTN customer on the allow list (last digit 0: talks until hung up). Blind to the
supervisor, blind to the external number, and attended: consult then complete, consult then
cancel. Afterwards no transfer / consult channel is left on the PBX.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ami_bridge import dialplan as dp
from dialer.db.models import LeadEvent, Role, TransferNumber
from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import lab_number
from tests.pbx.stack import AgentClient, PbxStack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SUPERVISOR = "2001"
XFER_CONTEXTS = (dp.CTX_TRANSFER_ROOM, dp.CTX_TRANSFER_TARGET, dp.CTX_CONSULT)


async def _on_a_call(
    stack: PbxStack, ext: str, number: str
) -> tuple[int, AgentClient, int, dict[str, int]]:
    camp, leads = await stack.seed_campaign([number], max_attempts=1, wrap_up_seconds=120)
    (user,) = await stack.add_agents(camp, [ext])
    (sup,) = await stack.add_agents(camp, [SUPERVISOR], role=Role.SUPERVISOR)
    (agent,) = await stack.login_agents(camp, [user])

    async def in_call() -> bool:
        return await agent.state() == "in_call"

    await wait_until(in_call, within=60, what="the customer connected")
    return camp, agent, sup.id, leads


def _where(stack: PbxStack, prefix: str) -> list[tuple[str, str]]:
    """(context, app) of the ;1 legs (or PJSIP channels) whose name starts with ``prefix``."""
    return [
        (c["context"], c["app"])
        for c in stack.channels()
        if c["name"].startswith(prefix) and not c["name"].endswith(";2")
    ]


def _xfer_channels(stack: PbxStack) -> list[dict[str, str]]:
    return [c for c in stack.channels() if c["context"] in XFER_CONTEXTS]


async def _wrapping_up(agent: AgentClient) -> None:
    """The hand-over is recorded just after the customer's Redirect: wait for the wrap-up."""

    async def wrapping() -> bool:
        return await agent.state() == "wrap_up"

    await wait_until(wrapping, within=15, what="the transferring agent in wrap-up")


async def _accepted(agent: AgentClient, path: str, body: dict[str, Any] | None = None) -> None:
    r = await agent.post(f"/agent/call/{path}", body)
    assert r.status_code == 202, r.text
    assert r.json()["result"]["status"] == "accepted", r.text


async def _history(stack: PbxStack, lead_id: int) -> list[str]:
    async with stack.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(LeadEvent.reason)
            .where(LeadEvent.lead_id == lead_id, LeadEvent.kind == "call_control")
            .order_by(LeadEvent.id)
        )
        return list(rows.scalars())


async def _allow(stack: PbxStack, number: str, label: str) -> int:
    from datetime import UTC, datetime

    async with stack.engine.begin() as conn:
        res = await conn.execute(
            sa.insert(TransferNumber).values(e164=number, label=label, added_at=datetime.now(UTC))
        )
        pk = res.inserted_primary_key
        assert pk is not None
        return int(pk[0])


async def _gone(stack: PbxStack, number: str) -> None:
    async def nothing_left() -> bool:
        return not stack.customer_channels(number) and not _xfer_channels(stack)

    await wait_until(nothing_left, within=20, what="no customer / transfer channel left")


async def test_blind_transfer_to_a_supervisor_on_the_real_pbx(module_stack: PbxStack) -> None:
    stack = module_stack
    number = lab_number("0", 1401)
    camp, agent, sup_id, leads = await _on_a_call(stack, "1701", number)
    await _accepted(agent, "transfer-out", {"target_kind": "supervisor", "target_id": sup_id})

    async def with_supervisor() -> bool:
        return _where(stack, f"Local/{number}@") == [
            (dp.CTX_TRANSFER_ROOM, "ConfBridge")
        ] and _where(stack, f"Local/{SUPERVISOR}@") == [(dp.CTX_TRANSFER_TARGET, "ConfBridge")]

    await wait_until(with_supervisor, within=20, what="customer and supervisor in a room")
    await _wrapping_up(agent)  # the agent's part is over
    assert (await agent.live())["attempt"]
    # the supervisor hangs up: the customer leaves with them; nothing is left behind
    for c in stack.channels():
        if c["name"].startswith(f"Local/{SUPERVISOR}@") and c["context"] == dp.CTX_TRANSFER_TARGET:
            stack.lab.cli(f"channel request hangup {c['name']}")
    await _gone(stack, number)
    assert any(c["name"].startswith("Local/1701@") for c in stack.channels())  # agent stays

    async def recorded() -> bool:
        return all(r.outcome is not None for r in await stack.attempts(camp))

    await wait_until(recorded, within=15, what="the call's end recorded")
    (row,) = await stack.attempts(camp)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED and row.agent_id == agent.user.id
    assert await _history(stack, leads[number]) == ["transfer_out", "transfer_out_answered"]


async def test_blind_transfer_to_an_external_number_on_the_real_pbx(
    module_stack: PbxStack,
) -> None:
    stack = module_stack
    number, external = lab_number("0", 1402), lab_number("0", 1499)
    allowed = await _allow(stack, external, "Soporte externo")
    camp, agent, _, leads = await _on_a_call(stack, "1702", number)
    await _accepted(agent, "transfer-out", {"target_kind": "external", "target_id": allowed})

    async def with_external() -> bool:
        return _where(stack, f"Local/{number}@") == [
            (dp.CTX_TRANSFER_ROOM, "ConfBridge")
        ] and _where(stack, f"Local/{external}@") == [(dp.CTX_TRANSFER_TARGET, "ConfBridge")]

    await wait_until(with_external, within=20, what="customer and external number in a room")
    await _wrapping_up(agent)
    # the customer hangs up first: the dialer hangs the external leg up
    assert stack.hangup_customer(number)
    await _gone(stack, number)
    await wait_until(lambda: _no_legs(stack, external), within=20, what="the external leg hung up")

    async def recorded() -> bool:
        return all(r.outcome is not None for r in await stack.attempts(camp))

    await wait_until(recorded, within=15, what="the call's end recorded")
    (row,) = await stack.attempts(camp)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED
    assert await _history(stack, leads[number]) == ["transfer_out", "transfer_out_answered"]


async def _no_legs(stack: PbxStack, number: str) -> bool:
    return not stack.customer_channels(number)


async def test_consult_then_complete_or_cancel_on_the_real_pbx(module_stack: PbxStack) -> None:
    stack = module_stack
    number = lab_number("0", 1403)
    camp, agent, sup_id, leads = await _on_a_call(stack, "1703", number)
    room = dp.agent_room("1703")

    # consult -> cancel: the supervisor joins the agent's room, the customer waits on hold
    await _accepted(agent, "consult", {"target_kind": "supervisor", "target_id": sup_id})

    async def consulting() -> bool:
        return (await agent.live()).get("transfer_state") == "consulting" and _where(
            stack, f"Local/{SUPERVISOR}@"
        ) == [(dp.CTX_CONSULT, "ConfBridge")]

    await wait_until(consulting, within=20, what="the supervisor in the agent's room")
    assert _where(stack, f"Local/{number}@") == [(dp.CTX_ONHOLD, "Wait")]
    assert room in stack.lab.cli("confbridge list")
    await _accepted(agent, "consult/cancel")

    async def back() -> bool:
        return _where(stack, f"Local/{number}@") == [
            (dp.CTX_AGENT_ROOM, "ConfBridge")
        ] and not _xfer_channels(stack)

    await wait_until(back, within=20, what="the customer back, the consult leg gone")
    assert await agent.state() == "in_call"

    # consult -> complete: customer and supervisor together, the agent done
    await _accepted(agent, "consult", {"target_kind": "supervisor", "target_id": sup_id})
    await wait_until(consulting, within=20, what="the supervisor in the agent's room again")
    await _accepted(agent, "consult/complete")

    async def joined() -> bool:
        return _where(stack, f"Local/{number}@") == [
            (dp.CTX_TRANSFER_ROOM, "ConfBridge")
        ] and _where(stack, f"Local/{SUPERVISOR}@") == [(dp.CTX_TRANSFER_TARGET, "ConfBridge")]

    await wait_until(joined, within=20, what="customer and supervisor in a transfer room")
    await _wrapping_up(agent)
    assert stack.hangup_customer(number)
    await _gone(stack, number)
    assert not any(c["name"].startswith(f"Local/{SUPERVISOR}@") for c in stack.channels())

    async def recorded() -> bool:
        return all(r.outcome is not None for r in await stack.attempts(camp))

    await wait_until(recorded, within=15, what="the call's end recorded")
    (row,) = await stack.attempts(camp)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED
    assert await _history(stack, leads[number]) == [
        "consult",
        "consult_cancel",
        "consult",
        "consult_complete",
    ]
