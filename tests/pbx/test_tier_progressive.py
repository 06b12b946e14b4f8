"""Real ``marcador api`` + ``marcador dialer`` processes on the lab PBX, virtual agents.

Every lab behaviour is dialed in one progressive campaign (concurrently, one call per ready
agent) and must get the outcome ``dialer.lab_pstn`` predicts.
"""

from __future__ import annotations

import asyncio

from dialer.domain.outcomes import CallOutcome, DialMode
from dialer.lab_pstn import BEHAVIOURS, expected_outcome, lab_number
from dialer.pbx_lab import LabPbx
from tests.pbx.stack import PbxStack, wait_until

AGENTS = [str(n) for n in range(1001, 1009)]


def _rooms(lab: LabPbx) -> str:
    return lab.cli("confbridge list")


async def test_virtual_agents_log_in_through_the_api(pbx_stack: PbxStack) -> None:
    camp, _ = await pbx_stack.seed_campaign([])
    users = await pbx_stack.add_agents(camp, ["1001", "1002"])
    clients = await pbx_stack.login_agents(camp, users)
    assert [await c.state() for c in clients] == ["ready", "ready"]
    rooms = _rooms(pbx_stack.lab)
    assert "agent-1001" in rooms and "agent-1002" in rooms, rooms


def _hangup_customer(lab: LabPbx, number: str) -> bool:
    """Hang up the lab customer leg(s) of ``number`` (the customer "hangs up")."""
    hung = False
    for line in lab.cli("core show channels concise").splitlines():
        name = line.split("!", 1)[0]
        if name.startswith(f"Local/{number}@"):
            lab.cli(f"channel request hangup {name}")
            hung = True
    return hung


async def test_progressive_campaign_records_every_behaviour(pbx_stack: PbxStack) -> None:
    numbers = {digit: lab_number(digit, 100 + int(digit)) for digit in BEHAVIOURS}
    camp, leads = await pbx_stack.seed_campaign(
        numbers.values(), mode=DialMode.PROGRESSIVE, max_attempts=1, whatsapp=True
    )
    users = await pbx_stack.add_agents(camp, AGENTS)
    clients = await pbx_stack.login_agents(camp, users)

    async def talk_until_hangup_connected() -> bool:
        # The attempt row is written at the end of the call: the agent's live state says
        # "in_call" with this attempt while it lasts.
        rows = {a.number: a for a in await pbx_stack.attempts(camp)}
        row = rows.get(numbers["0"])
        if row is None:
            return False
        lives = await asyncio.gather(*(c.live() for c in clients))
        return any(lv.get("state") == "in_call" and lv.get("attempt") == row.uuid for lv in lives)

    await wait_until(talk_until_hangup_connected, within=60, what="digit 0 connected")
    assert _hangup_customer(pbx_stack.lab, numbers["0"])

    async def all_final() -> dict[str, CallOutcome] | None:
        rows = await pbx_stack.attempts(camp)
        done = {a.number: a.outcome for a in rows if a.outcome is not None}
        return done if len(done) == len(numbers) else None

    outcomes = await wait_until(all_final, within=90, what="every attempt's outcome")
    got = {d: outcomes[n] for d, n in numbers.items()}
    want = {d: expected_outcome(n) for d, n in numbers.items()}
    assert got == want

    # Exhausted after one attempt without contact: the WhatsApp fallback is queued (outbox).
    rows = await pbx_stack.whatsapp_rows(camp)
    queued = {r.lead_id for r in rows}
    assert leads[numbers["2"]] in queued  # busy
    assert leads[numbers["1"]] not in queued  # contacted: no fallback


async def test_amd_on_machine_is_not_put_through(pbx_stack: PbxStack) -> None:
    numbers = {d: lab_number(d, 200 + int(d)) for d in ("6", "7")}
    camp, _ = await pbx_stack.seed_campaign(numbers.values(), amd=True, max_attempts=1)
    users = await pbx_stack.add_agents(camp, ["1001", "1002"])
    await pbx_stack.login_agents(camp, users)

    async def all_final() -> dict[str, CallOutcome] | None:
        rows = await pbx_stack.attempts(camp)
        done = {a.number: a.outcome for a in rows if a.outcome is not None}
        return done if len(done) == len(numbers) else None

    outcomes = await wait_until(all_final, within=60, what="both outcomes")
    assert {d: outcomes[n] for d, n in numbers.items()} == {
        d: expected_outcome(n, amd=True) for d, n in numbers.items()
    }
