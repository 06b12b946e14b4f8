"""Call routing: the customer answers, waits in hold, is given an agent, talks, hangs up.

Answer -> Redirect (design.md §4): the dialer connects on :class:`CallHeld` (the leg reached
``marcador-hold``: AMD's verdict is in), never on the bare answer. The longest-idle agent of the
campaign is chosen from in-memory state (:mod:`dialer.engine.connect`); with no agent free the
customer waits, and the first agent to become READY takes the oldest waiting customer
(:meth:`~dialer.engine.connect.Assigner.agent_ready`) until the dialplan's safe harbor plays.

The connect's row is written in the call's lane; the end of the call waits for it before it
finishes the attempt, so the rows stay in order. At the end, the outcome, the retry decision and
the WhatsApp outbox row are one SQL transaction (``finish_attempt``); the outbox row is
published after that commit (:mod:`dialer.engine.outbox`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from ami_bridge.tracker import CallAbandoning, CallAnswered, CallConnected, CallEnded, CallHeld
from dialer.domain.agents import InvalidAgentTransition, longest_idle
from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.engine.agent_state import AgentStates
from dialer.engine.connect import Assigner
from dialer.engine.controls import CallControls
from dialer.engine.lanes import Lanes
from dialer.engine.model import LiveCall
from dialer.engine.outbox import Outbox
from dialer.engine.recording import Recording
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger
from dialer.store import CallResult, FinishResult

log = get_logger("marcador.engine")


class Routing(Part):
    """Follows a customer's call from the answer to the end (the call tracker's outputs)."""

    def __init__(
        self,
        state: EngineState,
        lanes: Lanes,
        agent_log: AgentStates,
        assign: Assigner,
        controls: CallControls,
        recording: Recording,
        outbox: Outbox,
    ) -> None:
        super().__init__(state)
        self.lanes = lanes
        self.agent_log = agent_log
        self.assign = assign
        self.controls = controls
        self.recording = recording
        self.outbox = outbox

    async def on_answered(self, ev: CallAnswered) -> None:
        """The customer picked up. Not yet a connect decision: ``AMD()`` may still be listening.

        The dialer connects on :class:`CallHeld` (the leg reached ``marcador-hold``), never on
        the bare answer: a Redirect now would cut AMD short and put machines through.
        """
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        call.answered_at = ev.at
        call.channel = ev.channel or call.channel

    async def on_held(self, server: str, ev: CallHeld) -> None:
        """The dialplan's verdict: the customer waits in hold. Give them the longest-idle agent;
        with none free they wait, and the first agent to become READY takes the oldest one
        (:meth:`Assigner.agent_ready`) until the dialplan's connect timeout plays the safe
        harbor."""
        call = self.calls.get(ev.call_id)
        if call is None or call.preview:
            return
        if call.answered_at is None:
            call.answered_at = ev.at
        call.held_at = ev.at
        call.channel = ev.channel or call.channel
        agent = longest_idle(self.state.campaign_agents(call.campaign_id))
        if agent is None:
            log.info("call_waiting_in_hold", attempt=call.uuid)
            return
        await self.assign.connect(call, agent)

    async def on_abandoning(self, ev: CallAbandoning) -> None:
        """The safe-harbor path started (hold timeout, or the agent's room was empty).

        A Redirect that lost the race with the timeout lands in ``marcador-agent-room``, whose
        first check sends a customer with ``MARCADOR_ABANDONED=1`` back to the safe harbor: the
        reserved agent will never see them, so the reservation is released now.
        """
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        call.unroutable = True
        agent_id, call.agent_id = call.agent_id, None
        if agent_id is None:
            return
        if self.assign.release(agent_id, call.uuid):
            log.info("reservation_released_safe_harbor", attempt=call.uuid, agent=agent_id)
            await self.agent_log.log(agent_id)
            await self.assign.agent_ready(agent_id)

    async def on_connected(self, ev: CallConnected) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or call.agent_id is None:
            return
        agent = self.agents.get(call.agent_id)
        if agent is None:
            return
        now = self._now()
        if call.preview and agent.state is AgentState.READY:
            agent = agent.reserve(call.uuid, now)
        try:
            self.agents[agent.agent_id] = agent.connected(call.uuid, now)
        except InvalidAgentTransition as exc:
            log.warning("connect_mismatch", error=str(exc))
            return
        self.agent_log.soon(agent.agent_id)
        # Off the bridge loop, in the call's lane: ``_on_ended`` waits for it before it
        # finishes the attempt, so the rows stay in order.
        self.lanes.in_lane(f"call:{call.uuid}", self._record_connect(call, agent.agent_id, ev.at))

    async def _record_connect(self, call: LiveCall, agent_id: int, at: datetime) -> None:
        try:  # durable evidence of the connect: a dialer killed mid-call can't lose it
            await self.store.mark_connected(call.uuid, agent_id, call.answered_at, at)
        except Exception as exc:
            log.warning("connect_record_failed", attempt=call.uuid, error=type(exc).__name__)
        recording = await self.recording.started(call, agent_id, at)
        await self.publish(
            "screen_pop",
            {
                "agent_id": agent_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "recording": recording,
            },
        )

    async def on_ended(self, ev: CallEnded) -> None:
        """A customer's call ended: its outcome, the agent's wrap-up, the lead's next step."""
        call = self.calls.pop(ev.call_id, None)
        now = self._now()
        agent_id = call.agent_id if call else None
        result = CallResult(
            outcome=ev.outcome,
            answered_at=ev.answered_at,
            connected_at=ev.connected_at,
            ended_at=ev.ended_at,
            hangup_cause=ev.hangup_cause,
            originate_reason=ev.originate_reason,
            amd_status=ev.amd_status,
            amd_cause=ev.amd_cause,
            channel=ev.channel,
            detail=ev.detail,
            agent_id=agent_id if ev.outcome is CallOutcome.ANSWERED_CONNECTED else None,
            trunk_failure=ev.outcome in (CallOutcome.FAILED, CallOutcome.CONGESTION)
            and ev.answered_at is None
            and ev.hangup_cause in (None, 0, 34, 38, 41, 42),
        )
        connect_record = self.lanes.last(f"call:{ev.call_id}")
        if connect_record is not None:  # the connect's row first (``_record_connect``)
            await asyncio.wait([connect_record])
        finished = await self.store.finish_attempt(ev.call_id, result, now)
        if call is not None:
            await self.leases.release(self.keys.lead_lease(call.lead_id), self.config.dialer_id)
            rt = self.campaigns.get(call.campaign_id)
            if rt is not None:
                # talk and wrap-up samples come from the agent's states (``_feed_agent``)
                rt.feed.call_ended(
                    ev.call_id, ev.outcome, (ev.answered_at or ev.ended_at).timestamp()
                )
                rt.stats_at = None  # abandon counters changed
        if call is not None and agent_id is not None:
            await self.controls.at_call_end(call, agent_id, now)
        if agent_id is not None and not (call is not None and call.transferred_out):
            await self._agent_call_ended(agent_id, ev, now)  # (transferred out: wrapped up)
        if ev.connected_at is not None:
            self.recording.finished(ev.call_id)
        transferred_by = agent_id if call is not None and call.transferred_out else None
        await self._after_finish(finished, ev, transferred_by)

    async def _agent_call_ended(self, agent_id: int, ev: CallEnded, now: datetime) -> None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        if agent.state is AgentState.IN_CALL:
            rt = self.campaigns.get(agent.campaign_id or -1)
            wrap = rt.campaign.wrap_up_seconds if rt else 30
            self.agents[agent_id] = agent.call_ended(wrap, now)
        elif agent.state is AgentState.RESERVED:
            self.agents[agent_id] = agent.release_reservation(now)
        await self.agent_log.log(agent_id)
        await self.assign.agent_ready(agent_id)

    async def _after_finish(
        self, finished: FinishResult, ev: CallEnded, transferred_by: int | None = None
    ) -> None:
        if finished.already_finished:
            return
        decision = finished.decision
        await self.publish(
            "call_ended",
            {
                "attempt": finished.attempt_uuid,
                "lead_id": finished.lead_id,
                "campaign_id": finished.campaign_id,
                "outcome": ev.outcome.value,
                "end_reason": ev.end_reason or "",
                "lead_status": decision.lead_status.value if decision else "in_progress",
                "next_attempt_at": str(decision.next_attempt_at) if decision else None,
                # transferred out: the agent whose disposition waits for this end (the API
                # records it then)
                **({"transferred_by": transferred_by} if transferred_by is not None else {}),
            },
        )
        if finished.whatsapp_message_id is not None:
            await self.outbox.publish_whatsapp(finished.whatsapp_message_id, finished.lead_id)
