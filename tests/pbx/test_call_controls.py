"""Agent call controls on the real PBX (issue 15): the API -> dialer -> AMI -> Asterisk 22.

A virtual agent (``Local/1001@marcador-lab-vagent``) takes a lab customer who talks until
hung up (last digit 0). Through the agent API: mute / unmute (the ConfBridge ``m`` flag on the
agent's channel), hold / resume (the customer leaves the room for ``marcador-onhold`` and comes
back), DTMF, and hang up (the customer leaves, the agent stays in the room, wraps up).
"""

from __future__ import annotations

import sqlalchemy as sa

from ami_bridge import dialplan as dp
from dialer.db.models import AuditLog, LeadEvent
from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import lab_number
from dialer.pbx_lab import LabPbx
from tests.pbx.stack import AgentClient, PbxStack, wait_until


def _room(lab: LabPbx, ext: str) -> dict[str, str]:
    """``confbridge list agent-<ext>``: channel -> flags."""
    out: dict[str, str] = {}
    for line in lab.cli(f"confbridge list {dp.agent_room(ext)}").splitlines():
        parts = line.split()
        if parts and parts[0].startswith(("Local/", "PJSIP/")):
            flags = parts[1] if len(parts) > 1 and not parts[1].startswith("marcador") else ""
            out[parts[0]] = flags
    return out


def _where(lab: LabPbx, prefix: str) -> str | None:
    """Context of the ``;1`` leg whose name starts with ``prefix``."""
    for line in lab.cli("core show channels concise").splitlines():
        fields = line.split("!")
        if fields[0].startswith(prefix) and fields[0].endswith(";1"):
            return fields[1]
    return None


async def _control(agent: AgentClient, action: str, body: dict[str, str] | None = None) -> None:
    r = await agent.post(f"/agent/call/{action}", body)
    assert r.status_code == 202, r.text
    assert r.json()["result"]["status"] == "accepted", r.text


async def test_hangup_mute_hold_on_the_real_pbx(pbx_stack: PbxStack) -> None:
    number = lab_number("0", 310)
    camp, leads = await pbx_stack.seed_campaign([number], max_attempts=1)
    users = await pbx_stack.add_agents(camp, ["1001"])
    (agent,) = await pbx_stack.login_agents(camp, users)
    lab = pbx_stack.lab
    customer = f"Local/{number}@"
    agent_chan = "Local/1001@marcador-lab-vagent-"

    async def in_call() -> bool:
        return await agent.state() == "in_call"

    await wait_until(in_call, within=60, what="the customer connected")
    room = _room(lab, "1001")
    assert any(c.startswith(customer) for c in room), room

    r = await agent.post("/agent/call/resume")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_on_hold", r.text

    # mute: the agent's channel in the room gets ConfBridge's "m" (muted) flag
    await _control(agent, "mute")
    flags = {c: f for c, f in _room(lab, "1001").items() if c.startswith(agent_chan)}
    assert list(flags.values()) and all("m" in f for f in flags.values()), flags
    assert (await agent.live())["muted"] is True
    r = await agent.post("/agent/call/mute")
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_muted", r.text
    await _control(agent, "unmute")
    flags = {c: f for c, f in _room(lab, "1001").items() if c.startswith(agent_chan)}
    assert all("m" not in f for f in flags.values()), flags

    # hold: the customer waits in marcador-onhold (music on hold), the agent stays in the room
    await _control(agent, "hold")

    async def on_hold() -> bool:
        return _where(lab, customer) == dp.CTX_ONHOLD

    await wait_until(on_hold, within=10, what="customer on hold")
    assert not any(c.startswith(customer) for c in _room(lab, "1001"))
    assert any(c.startswith(agent_chan) for c in _room(lab, "1001"))
    assert (await agent.live())["on_hold_since"]
    await _control(agent, "resume")

    async def back() -> bool:
        return any(c.startswith(customer) for c in _room(lab, "1001"))

    await wait_until(back, within=10, what="customer back in the room")
    assert await agent.state() == "in_call"

    await _control(agent, "dtmf", {"digits": "12#"})

    # hang up: the customer leaves, the agent stays in the room and wraps up
    await _control(agent, "hangup")

    async def wrapping() -> bool:
        return await agent.state() == "wrap_up"

    await wait_until(wrapping, within=15, what="wrap-up after the hang-up")
    assert _where(lab, customer) is None
    assert any(c.startswith(agent_chan) for c in _room(lab, "1001"))
    r = await agent.post("/agent/call/hangup")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_in_call", r.text

    (row,) = await pbx_stack.attempts(camp)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED
    async with pbx_stack.engine.connect() as conn:
        kinds = (
            await conn.execute(
                sa.select(LeadEvent.reason)
                .where(LeadEvent.lead_id == leads[number], LeadEvent.kind == "call_control")
                .order_by(LeadEvent.id)
            )
        ).scalars()
        actions = (
            await conn.execute(
                sa.select(AuditLog.action)
                .where(AuditLog.target_id == row.uuid)
                .order_by(AuditLog.id)
            )
        ).scalars()
        want = ["mute", "unmute", "hold", "resume", "dtmf", "hangup"]
        assert list(kinds) == want
        assert list(actions) == [f"call.{w}" for w in want]


async def test_blind_transfer_on_the_real_pbx(pbx_stack: PbxStack) -> None:
    number = lab_number("0", 320)
    camp, _ = await pbx_stack.seed_campaign([number], max_attempts=1)
    users = await pbx_stack.add_agents(camp, ["1001", "1002"])
    clients = await pbx_stack.login_agents(camp, users)
    lab = pbx_stack.lab
    customer = f"Local/{number}@"

    async def someone_in_call() -> AgentClient | None:
        for c in clients:
            if await c.state() == "in_call":
                return c
        return None

    src = await wait_until(someone_in_call, within=60, what="the customer connected")
    dst = next(c for c in clients if c is not src)
    assert await dst.state() == "ready"
    attempt = (await src.live())["attempt"]
    r = await src.post("/agent/call/transfer", {"target_agent_id": dst.user.id})
    assert r.status_code == 202, r.text
    assert r.json()["result"]["status"] == "accepted", r.text

    async def in_dst_room() -> bool:
        return any(c.startswith(customer) for c in _room(lab, dst.user.extension))

    await wait_until(in_dst_room, within=10, what="the customer in the new agent's room")
    assert not any(c.startswith(customer) for c in _room(lab, src.user.extension))
    live = await dst.live()
    assert live["state"] == "in_call" and live["attempt"] == attempt
    assert (await dst.me())["call"]["attempt"]["uuid"] == attempt  # the screen-pop follows
    assert await src.state() == "ready"

    await _control(dst, "hangup")

    async def dst_wrapping() -> bool:
        return await dst.state() == "wrap_up"

    await wait_until(dst_wrapping, within=15, what="the new agent wraps up")
    (row,) = await pbx_stack.attempts(camp)
    assert row.agent_id == dst.user.id and row.outcome is CallOutcome.ANSWERED_CONNECTED
