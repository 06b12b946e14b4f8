"""Transfers out of the campaign: to a supervisor's seat or to an external number from the
admin's allow list, blind or attended (consult, then complete or cancel). docs/web.md "Call
controls" has the states; the blind transfer to another agent is
:meth:`~dialer.engine.controls.CallControls.transfer`.

Telephony (deploy/asterisk/extensions.conf): the customer waits in ``marcador-onhold`` while
the target's leg (``ChannelId xfer-...``, tracked like a spy call) rings. Blind: answered, the
leg sits in transfer room ``xfer-<room>`` (``marcador-transfer-target``) and the customer is
Redirected into it (``marcador-transfer-room``). Consult: answered, the leg joins the agent's
own room (``marcador-consult``); ``complete`` Redirects the leg and the customer into a
transfer room, ``cancel`` hangs the leg up and brings the customer back.

Who dispositions: the transferring agent. Once the call is handed over they go to WRAP_UP on
that attempt (the attempt keeps their ``agent_id``); their disposition is recorded when the
customer's call ends (it is still running with the target until then). The attempt's outcome
is the call's (ANSWERED_CONNECTED); the lead's history says where it went.
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import timedelta
from typing import Any

from ami_bridge import dialplan
from ami_bridge.actions import OriginateRequest
from ami_bridge.errors import AMIError
from ami_bridge.logs import mask_digits
from ami_bridge.tracker import CallAnswered, CallEnded
from dialer.domain.outcomes import AgentState
from dialer.engine.agent_state import AgentStates
from dialer.engine.controls import CallControlRefused, CallControls
from dialer.engine.model import (
    TARGET_EXTERNAL,
    TARGET_KINDS,
    TARGET_SUPERVISOR,
    TRANSFER_BLIND,
    TRANSFER_CONSULT,
    TRANSFER_PREFIX,
    LiveCall,
    TransferLeg,
)
from dialer.engine.state import EngineState, Part
from dialer.engine.supervision import Supervision
from dialer.logging import get_logger

log = get_logger("marcador.engine")

#: Seconds the target's leg may ring before the transfer fails (the customer comes back).
TRANSFER_RING_SECONDS = 30


class Transfers(Part):
    """Transfers of agents' calls to supervisors and allowed external numbers."""

    def __init__(
        self,
        state: EngineState,
        agent_log: AgentStates,
        controls: CallControls,
        supervision: Supervision,
    ) -> None:
        super().__init__(state)
        self.agent_log = agent_log
        self.controls = controls
        self.supervision = supervision

    # ------------------------------------------------------------------ agent commands
    async def transfer_out(
        self,
        agent_id: int,
        kind: str,
        target: str,
        *,
        label: str = "",
        attempt: str | None = None,
        mode: str = TRANSFER_BLIND,
    ) -> TransferLeg:
        """Start a blind transfer (``mode="blind"``) or a consult (``"consult"``) of the
        agent's connected call to a supervisor's extension or an external E.164 number (the
        API checked the supervisor's role and the allow list).

        The customer goes on hold (if not already) and the target's leg is originated. Refused
        (:class:`CallControlRefused`) outside IN_CALL, with a transfer already under way
        (``transfer_in_progress``), or when the PBX refuses the Originate
        (``target_unreachable``, the customer back with the agent).
        """
        if kind not in TARGET_KINDS or mode not in (TRANSFER_BLIND, TRANSFER_CONSULT):
            raise CallControlRefused("unknown_target", f"unknown transfer {mode}/{kind}")
        agent, call = self.controls._controlled_call(agent_id, attempt)
        if call.transfer is not None:
            raise CallControlRefused("transfer_in_progress", "a transfer is already under way")
        if kind == TARGET_SUPERVISOR and not target.isdigit():
            raise CallControlRefused("unknown_target", "a supervisor's extension is digits")
        if kind == TARGET_EXTERNAL and not (target.startswith("+") and target[1:].isdigit()):
            raise CallControlRefused("unknown_target", "an external number is E.164")
        channel, ext, now = call.channel, agent.extension, self._now()
        assert channel is not None and ext is not None  # checked by _controlled_call
        leg = TransferLeg(
            leg_id=f"{TRANSFER_PREFIX}{uuidlib.uuid4().hex}",
            attempt=call.uuid,
            agent_id=agent_id,
            server=call.server,
            mode=mode,
            kind=kind,
            target=target,
            label=label,
            room=str(uuidlib.uuid4().int % 10**12).zfill(12),
            started_at=now,
        )
        held_here = call.on_hold_since is None
        if held_here:
            await self.tel.redirect(call.server, channel, dialplan.CTX_ONHOLD, ext)
            call.on_hold_since = now
        call.transfer = leg
        self.transfer_legs[leg.leg_id] = leg
        if kind == TARGET_SUPERVISOR:
            phones = self.config.agent_channels
            dial = phones.get(call.server, self.config.default_agent_channel)
            dial = dial.format(extension=target)
        else:
            dial = self.config.trunks.get(call.server, self.config.default_trunk)
            dial = dial.format(number=target)
        context, exten = (
            (dialplan.CTX_TRANSFER_TARGET, leg.room)
            if mode == TRANSFER_BLIND
            else (dialplan.CTX_CONSULT, ext)
        )
        action = "transfer_out" if mode == TRANSFER_BLIND else "consult"
        log.info("call_control", agent=agent_id, attempt=call.uuid, action=action, kind=kind)
        # recorded before the Originate: a seat that answers at once comes after it
        await self.controls.record_control(call, agent_id, action, now, self._detail(leg))
        await self.agent_log.log(agent_id)
        await self._publish(call, leg, action)
        req = OriginateRequest(
            channel=dial,
            channel_id=leg.leg_id,
            context=context,
            exten=exten,
            timeout_ms=TRANSFER_RING_SECONDS * 1000,
            caller_id='"Marcador" <0>',
            variables={dialplan.VAR_ATTEMPT: call.uuid},
        )
        try:
            await self.tel.originate(
                call.server,
                req,
                call_id=leg.leg_id,
                ring_timeout=timedelta(seconds=TRANSFER_RING_SECONDS),
            )
        except AMIError as exc:
            self.transfer_legs.pop(leg.leg_id, None)
            call.transfer = None
            if held_here:
                await self._back_to_agent(call, ext)
            log.warning("transfer_originate_failed", attempt=call.uuid, error=type(exc).__name__)
            await self._record_back(call, leg, "transfer_failed", outcome="originate_refused")
            raise CallControlRefused(
                "target_unreachable", "the PBX could not call the target"
            ) from exc
        return leg

    async def consult_complete(self, agent_id: int, *, attempt: str | None = None) -> None:
        """Join the customer and the consulted target in a transfer room; the agent is done
        (WRAP_UP on the call). Refused unless the agent has an answered consult."""
        _, call = self.controls._controlled_call(agent_id, attempt)
        leg = call.transfer
        if leg is None or leg.mode != TRANSFER_CONSULT:
            raise CallControlRefused("not_consulting", "no consult under way")
        if not leg.answered or leg.channel is None:
            raise CallControlRefused("consult_not_answered", "the target has not answered yet")
        channel = call.channel
        assert channel is not None
        # the target first: it is the room's marked user; then the customer joins it
        await self.tel.redirect(call.server, leg.channel, dialplan.CTX_TRANSFER_TARGET, leg.room)
        await self.tel.redirect(call.server, channel, dialplan.CTX_TRANSFER_ROOM, leg.room)
        await self._handed_over(call, leg, "consult_complete")

    async def consult_cancel(self, agent_id: int, *, attempt: str | None = None) -> None:
        """Hang up the consult leg (ringing or answered); the customer is back with the agent."""
        agent, call = self.controls._controlled_call(agent_id, attempt)
        leg = call.transfer
        if leg is None or leg.mode != TRANSFER_CONSULT:
            raise CallControlRefused("not_consulting", "no consult under way")
        ext = agent.extension
        assert ext is not None
        leg.stopping = "cancel"
        call.transfer = None
        try:
            await self.tel.cancel(leg.server, leg.leg_id)
        except AMIError as exc:
            log.warning("consult_hangup_failed", attempt=call.uuid, error=type(exc).__name__)
        await self._back_to_agent(call, ext)
        await self._record_back(call, leg, "consult_cancel")

    # ------------------------------------------------------------------ the target's leg
    async def on_leg(self, ev: CallAnswered | CallEnded) -> None:
        """The target's leg answered or ended (routed here by its ``xfer-`` ChannelId)."""
        leg = self.transfer_legs.get(ev.call_id)
        if leg is None:
            return
        call = self.calls.get(leg.attempt)
        if isinstance(ev, CallAnswered):
            leg.answered, leg.channel = True, ev.channel
            if call is None or call.transfer is not leg:
                # the customer left (or the consult was cancelled) while it rang
                await self._hang_up_leg(leg, leg.stopping or "call_ended")
                return
            if leg.mode == TRANSFER_BLIND:
                assert call.channel is not None
                await self.tel.redirect(
                    call.server, call.channel, dialplan.CTX_TRANSFER_ROOM, leg.room
                )
                await self._handed_over(call, leg, "transfer_out_answered")
            else:
                await self.agent_log.log(leg.agent_id)
                await self._publish(call, leg, "consult_answered")
            return
        del self.transfer_legs[ev.call_id]
        if leg.stopping is not None or call is None or call.transfer is not leg:
            return  # hung up by the dialer, or the customer's call is over
        if leg.joined:
            return  # the target left the transfer room: the customer follows (end_marked)
        # Not answered (no answer, busy, unreachable), or the consulted target hung up: the
        # customer comes back to the agent, who is still on the call.
        agent = self.agents.get(leg.agent_id)
        call.transfer = None
        if agent is not None and agent.extension and agent.call_attempt == call.uuid:
            await self._back_to_agent(call, agent.extension)
        what = "consult_ended" if leg.answered else "transfer_failed"
        await self._record_back(call, leg, what, outcome=ev.outcome.value)

    # ------------------------------------------------------------------ helpers
    async def _handed_over(self, call: LiveCall, leg: TransferLeg, action: str) -> None:
        """The customer is with the target: the agent's part is over (WRAP_UP on the call,
        their disposition to give), spies end, the hold is closed."""
        now = self._now()
        leg.joined = True
        call.transferred_out = True
        detail = self._detail(leg)
        if call.on_hold_since is not None:
            detail["held_seconds"] = round(call.end_hold(now), 1)
        was_muted, call.muted = call.muted, False
        agent_id = leg.agent_id
        agent = self.agents.get(agent_id)
        if agent is not None and agent.state is AgentState.IN_CALL:
            rt = self.campaigns.get(agent.campaign_id or -1)
            wrap = rt.campaign.wrap_up_seconds if rt else 30
            self.agents[agent_id] = agent.call_ended(wrap, now)
        log.info("call_transferred_out", attempt=call.uuid, agent=agent_id, kind=leg.kind)
        await self.supervision.end_spies_on(call.uuid)
        await self.controls.record_control(call, agent_id, action, now, detail)
        if was_muted and agent is not None and agent.extension:
            name = self.agent_room_channel.get(agent_id)
            if name:
                try:
                    await self.tel.confbridge_mute(
                        call.server, dialplan.agent_room(agent.extension), name, mute=False
                    )
                except AMIError as exc:
                    log.warning("agent_unmute_failed", agent=agent_id, error=type(exc).__name__)
        await self.agent_log.log(agent_id)
        await self._publish(call, leg, action)

    async def _back_to_agent(self, call: LiveCall, ext: str) -> None:
        """Redirect the customer from hold back into the agent's room; close the hold."""
        assert call.channel is not None
        try:
            await self.tel.redirect(call.server, call.channel, dialplan.CTX_AGENT_ROOM, ext)
        except AMIError as exc:  # the customer hung up meanwhile: the call's end follows
            log.warning("transfer_resume_failed", attempt=call.uuid, error=type(exc).__name__)
            return
        call.end_hold(self._now())

    async def _record_back(
        self, call: LiveCall, leg: TransferLeg, action: str, **extra: Any
    ) -> None:
        detail = {**self._detail(leg), **extra}
        detail["seconds"] = round((self._now() - leg.started_at).total_seconds(), 1)
        log.info("call_control", agent=leg.agent_id, attempt=call.uuid, action=action)
        await self.controls.record_control(call, leg.agent_id, action, self._now(), detail)
        await self.agent_log.log(leg.agent_id)
        await self._publish(call, leg, action, transfer_state="")

    async def _hang_up_leg(self, leg: TransferLeg, reason: str) -> None:
        leg.stopping = leg.stopping or reason
        try:
            await self.tel.cancel(leg.server, leg.leg_id)
        except AMIError as exc:
            log.warning("transfer_hangup_failed", leg=leg.leg_id, error=type(exc).__name__)

    @staticmethod
    def _detail(leg: TransferLeg) -> dict[str, Any]:
        target = mask_digits(leg.target) if leg.kind == TARGET_EXTERNAL else leg.target
        return {"mode": leg.mode, "target_kind": leg.kind, "target": target, "label": leg.label}

    async def _publish(
        self, call: LiveCall, leg: TransferLeg, action: str, **override: Any
    ) -> None:
        await self.publish(
            "call_control",
            {
                **leg.event(),
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "action": action,
                "on_hold": call.on_hold_since is not None,
                "muted": call.muted,
                **override,
            },
        )
