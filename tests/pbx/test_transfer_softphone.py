"""Blind transfer to a supervisor's real softphone seat (lab seat 2001) on the real PBX.

The dialer calls agents and supervisors at ``PJSIP/{extension}`` (the production agent
channel: ``PbxStack(virtual_agents=False)``); one :class:`Softphone` registers the agent's seat
and the supervisor's seat 2001 and auto-answers. After the transfer the customer and
``PJSIP/2001`` share ConfBridge ``xfer-<room>``; when the supervisor hangs up nothing of the
transfer is left on the PBX and the agent's nailed-up channel is still there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ami_bridge import dialplan as dp
from dialer.db.models import Role
from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import lab_number
from dialer.pbx_lab import LabPbx
from dialer.softphone import Softphone
from tests.pbx.phones import in_thread, lab_phone, phone_channels
from tests.pbx.stack import PbxStack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

AGENT, SUPERVISOR = "1009", "2001"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone_stack(
    lab_pbx: LabPbx, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PbxStack]:
    stack = PbxStack(lab_pbx, tmp_path_factory.mktemp("pbx-xfer-phones"), virtual_agents=False)
    stack.start()
    try:
        yield stack
    finally:
        await stack.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(lab_pbx: LabPbx) -> AsyncIterator[Softphone]:
    p = await in_thread(lab_phone(lab_pbx, (AGENT, SUPERVISOR), answer_delay=0.5))
    try:
        yield p
    finally:
        await asyncio.to_thread(p.stop)


async def test_blind_transfer_to_the_supervisor_softphone(
    phone_stack: PbxStack, phone: Softphone
) -> None:
    stack = phone_stack
    number = lab_number("0", 1501)
    camp, _ = await stack.seed_campaign([number], max_attempts=1, wrap_up_seconds=120)
    (user,) = await stack.add_agents(camp, [AGENT])
    (sup,) = await stack.add_agents(camp, [SUPERVISOR], role=Role.SUPERVISOR)
    (agent,) = await stack.login_agents(camp, [user])

    async def in_call() -> bool:
        return await agent.state() == "in_call"

    await wait_until(in_call, within=60, what="the customer connected")
    agent_legs = phone_channels(stack.lab, AGENT)
    assert agent_legs
    r = await agent.post(
        "/agent/call/transfer-out", {"target_kind": "supervisor", "target_id": sup.id}
    )
    assert r.status_code == 202 and r.json()["result"]["status"] == "accepted", r.text

    def seat() -> list[dict[str, str]]:
        return [c for c in stack.channels() if c["name"].startswith(f"PJSIP/{SUPERVISOR}-")]

    async def together() -> bool:
        customer = [
            c["context"] for c in stack.customer_channels(number) if c["name"].endswith(";1")
        ]
        return customer == [dp.CTX_TRANSFER_ROOM] and [
            (c["context"], c["app"]) for c in seat()
        ] == [(dp.CTX_TRANSFER_TARGET, "ConfBridge")]

    await wait_until(together, within=30, what="customer and the supervisor's phone together")

    async def wrapping() -> bool:
        return await agent.state() == "wrap_up"

    await wait_until(wrapping, within=15, what="the transferring agent in wrap-up")
    # the supervisor hangs up: the customer follows, nothing of the transfer is left
    for c in seat():
        stack.lab.cli(f"channel request hangup {c['name']}")

    async def gone() -> bool:
        xfer = (dp.CTX_TRANSFER_ROOM, dp.CTX_TRANSFER_TARGET, dp.CTX_CONSULT)
        return (
            not seat()
            and not stack.customer_channels(number)
            and not [c for c in stack.channels() if c["context"] in xfer]
        )

    await wait_until(gone, within=20, what="no transfer channel left")
    assert phone_channels(stack.lab, AGENT) == agent_legs  # the agent's session is untouched

    async def recorded() -> bool:
        return all(r.outcome is not None for r in await stack.attempts(camp))

    await wait_until(recorded, within=15, what="the call's end recorded")
    (row,) = await stack.attempts(camp)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED and row.agent_id == user.id
