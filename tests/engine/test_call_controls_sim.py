"""Agent call controls end to end: engine -> AMI bridge -> PBX simulator (issue 15).

Hang up, mute / unmute, hold / resume and DTMF act through AMI on the nailed-up design: the
customer sits in the agent's ConfBridge room; hold Redirects them to ``marcador-onhold`` and
back. Each control is refused outside IN_CALL or in the wrong sub-state (with a code), and is
written to the lead's history and the audit log.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ami_bridge import dialplan
from dialer.db.models import AuditLog, LeadEvent
from dialer.domain.outcomes import AgentState
from dialer.engine import CallControlRefused
from dialer.settings import Settings

from .factories import make_agent, make_campaign, make_lead
from .sim_rig import running, sim_config, sim_runtime, sqlite_settings, until, where


async def test_call_controls_on_the_simulator(settings: Settings, tmp_path: Path) -> None:
    settings = await sqlite_settings(settings, tmp_path / "controls.db")
    sim_cfg = sim_config("1001", seed=5)
    async with sim_runtime(settings, sim_cfg, "ctl") as (rt, sim):
        engine = rt.engine
        sm = engine.store.sm
        camp = await make_campaign(sm, name=f"Controls {tmp_path.name}")
        await make_agent(sm, 901, "1001")
        await make_lead(sm, camp.id, 1)
        no_consent = await make_lead(sm, camp.id, 3, consent=False)
        room = dialplan.agent_room("1001")
        async with running(engine):
            await until(lambda: camp.id in engine.campaigns)
            await engine.agent_login(901, "1001", camp.id)
            await until(lambda: engine.agents[901].state is AgentState.READY)
            with pytest.raises(CallControlRefused) as refused:
                await engine.call_control(901, "hold")
            assert refused.value.code == "not_in_call"

            await until(lambda: engine.agents[901].state is AgentState.IN_CALL)
            attempt = engine.agents[901].call_attempt
            assert attempt is not None
            lead_id = engine.calls[attempt].lead_id
            customer = engine.calls[attempt].channel
            assert customer is not None
            agent_chan = engine.agent_room_channel[901]
            assert agent_chan.startswith("PJSIP/1001-")
            assert where(sim, customer) == (dialplan.CTX_AGENT_ROOM, room)

            with pytest.raises(CallControlRefused) as refused:
                await engine.call_control(901, "hold", attempt="someone-else")
            assert refused.value.code == "stale_call"

            # mute / unmute: ConfbridgeMute of the agent's channel in their room
            await engine.call_control(901, "mute", attempt=attempt)
            assert agent_chan in sim.pbx.conferences[room].muted
            with pytest.raises(CallControlRefused) as refused:
                await engine.call_control(901, "mute")
            assert refused.value.code == "already_muted"
            live = await rt.redis.client.hgetall(rt.keys.agent_state(901))  # type: ignore[misc]
            assert live["muted"] == "1"
            await engine.call_control(901, "unmute")
            assert agent_chan not in sim.pbx.conferences[room].muted

            # hold: the customer leaves the room for music on hold; resume brings them back
            with pytest.raises(CallControlRefused) as refused:
                await engine.call_control(901, "resume")
            assert refused.value.code == "not_on_hold"
            await engine.call_control(901, "hold")
            await until(lambda: where(sim, customer) == (dialplan.CTX_ONHOLD, None))
            assert sim.conferences()[room] == [agent_chan]  # the agent stays in the room
            live = await rt.redis.client.hgetall(rt.keys.agent_state(901))  # type: ignore[misc]
            assert live["on_hold_since"]
            with pytest.raises(CallControlRefused) as refused:
                await engine.call_control(901, "hold")
            assert refused.value.code == "already_on_hold"
            held_from = engine.calls[attempt].on_hold_since
            assert held_from is not None
            await until(lambda: engine.clock.now() >= held_from + timedelta(seconds=2))
            await engine.call_control(901, "resume")
            await until(lambda: where(sim, customer) == (dialplan.CTX_AGENT_ROOM, room))
            assert engine.agents[901].state is AgentState.IN_CALL  # still the same call
            assert engine.calls[attempt].hold_seconds > 0

            # DTMF toward the customer's leg
            with pytest.raises(CallControlRefused) as refused:
                await engine.call_control(901, "dtmf", digits="12x")
            assert refused.value.code == "invalid_digits"
            await engine.call_control(901, "dtmf", digits="1#")
            assert sim.pbx.dtmf_sent == [(customer, "1"), (customer, "#")]

            # mute, then hang up the customer: the agent stays in the room, unmuted, wraps up
            await engine.call_control(901, "mute")
            await engine.call_control(901, "hangup")
            await until(lambda: engine.agents[901].state is AgentState.WRAP_UP)
            await until(lambda: agent_chan not in sim.pbx.conferences[room].muted)
            assert where(sim, customer) is None
            assert sim.conferences()[room] == [agent_chan]
            with pytest.raises(CallControlRefused) as refused:
                await engine.call_control(901, "hangup")
            assert refused.value.code == "not_in_call"

            # manual dial: not while wrapping up; a lead failing a rule is refused with why
            second = await make_lead(sm, camp.id, 2)
            with pytest.raises(CallControlRefused) as refused:
                await engine.manual_dial(901, second.id)
            assert refused.value.code == "agent_busy"
            await engine.agent_command(901, "dispositioned", pause_code="manual_call")
            assert engine.agents[901].pause_code == "manual_call"
            with pytest.raises(CallControlRefused) as refused:
                await engine.manual_dial(901, no_consent.id)
            assert refused.value.code == "not_eligible" and "consent" in str(refused.value)
            manual = await engine.manual_dial(901, second.id)
            assert engine.calls[manual].lead_id == second.id and engine.calls[manual].preview
            await until(
                lambda: (
                    engine.agents[901].state is AgentState.IN_CALL
                    and engine.agents[901].call_attempt == manual
                )
            )
            second_chan = engine.calls[manual].channel
            assert second_chan is not None
            assert where(sim, second_chan) == (dialplan.CTX_PREVIEW, room)
        async with sm() as s:
            events = (
                await s.scalars(
                    sa.select(LeadEvent)
                    .where(LeadEvent.lead_id == lead_id, LeadEvent.kind == "call_control")
                    .order_by(LeadEvent.id)
                )
            ).all()
            audit = (
                await s.scalars(
                    sa.select(AuditLog).where(AuditLog.target_id == attempt).order_by(AuditLog.id)
                )
            ).all()
        want = ["mute", "unmute", "hold", "resume", "dtmf", "mute", "hangup"]
        assert [e.reason for e in events] == want
        assert all(e.detail["attempt"] == attempt for e in events)
        resume = events[3].detail
        assert resume["held_seconds"] > 0 and resume["hold_seconds"] == resume["held_seconds"]
        assert events[4].detail["digits"] == 2  # how many, never which
        assert [a.action for a in audit] == [f"call.{x}" for x in want]
        assert {a.actor for a in audit} == {"user:901"}
        async with sm() as s:
            manual_events = (
                await s.scalars(
                    sa.select(LeadEvent.reason).where(
                        LeadEvent.lead_id == second.id, LeadEvent.kind == "call_control"
                    )
                )
            ).all()
            refusal = await s.scalar(sa.select(LeadEvent).where(LeadEvent.lead_id == no_consent.id))
        assert list(manual_events) == ["manual_dial"]
        assert refusal is not None and refusal.reason == "consent"  # the dialer's own record


async def test_blind_transfer_to_a_ready_agent_on_the_simulator(
    settings: Settings, tmp_path: Path
) -> None:
    from dialer.db.models import CallAttempt

    settings = await sqlite_settings(settings, tmp_path / "transfer.db")
    sim_cfg = sim_config("1001", "1002", seed=7)
    async with sim_runtime(settings, sim_cfg, "xfer") as (rt, sim):
        engine = rt.engine
        sm = engine.store.sm
        camp = await make_campaign(sm, name=f"Transfer {tmp_path.name}")
        await make_agent(sm, 901, "1001")
        await make_agent(sm, 902, "1002")
        await make_lead(sm, camp.id, 1)
        async with running(engine):
            await until(lambda: camp.id in engine.campaigns)
            await engine.agent_login(901, "1001", camp.id)
            await engine.agent_login(902, "1002", camp.id)
            await until(lambda: any(a.state is AgentState.IN_CALL for a in engine.agents.values()))
            src = next(i for i, a in engine.agents.items() if a.state is AgentState.IN_CALL)
            dst = 902 if src == 901 else 901
            await until(lambda: engine.agents[dst].state is AgentState.READY)
            attempt = engine.agents[src].call_attempt
            assert attempt is not None
            customer = engine.calls[attempt].channel
            assert customer is not None
            dst_room = dialplan.agent_room(engine.agents[dst].extension or "")

            with pytest.raises(CallControlRefused) as refused:
                await engine.transfer(src, src)
            assert refused.value.code == "target_unavailable"
            await engine.call_control(src, "hold")
            await engine.transfer(src, dst)
            await until(lambda: where(sim, customer) == (dialplan.CTX_AGENT_ROOM, dst_room))
            assert engine.agents[dst].state is AgentState.IN_CALL
            assert engine.agents[dst].call_attempt == attempt
            assert engine.agents[src].state is AgentState.READY  # no disposition to give
            assert engine.calls[attempt].agent_id == dst
            assert engine.calls[attempt].on_hold_since is None

            await engine.call_control(dst, "hangup")
            await until(lambda: engine.agents[dst].state is AgentState.WRAP_UP)
            assert engine.agents[src].state is AgentState.READY
        async with sm() as s:
            row = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == attempt))
            reasons = (
                await s.scalars(
                    sa.select(LeadEvent.reason)
                    .where(LeadEvent.kind == "call_control")
                    .order_by(LeadEvent.id)
                )
            ).all()
            xfer = await s.scalar(sa.select(AuditLog).where(AuditLog.action == "call.transfer"))
        assert row is not None and row.agent_id == dst  # the disposition is the new agent's
        assert list(reasons) == ["hold", "transfer", "hangup"]
        assert xfer is not None and xfer.detail["to_agent"] == dst
