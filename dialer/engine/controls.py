"""Agent call controls on the nailed-up design (design.md §3; docs/web.md "Call controls"):
hang up, mute, hold, DTMF and blind transfer of the agent's connected call, through AMI.

Each control goes to the lead's history and the audit log (:meth:`CallControls.record_control`);
when the call ends, an open hold is closed and the agent unmuted (:meth:`CallControls.at_call_end`).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from ami_bridge import dialplan
from ami_bridge.errors import AMIError
from dialer.domain.agents import AgentSession
from dialer.domain.outcomes import AgentState
from dialer.engine.agent_state import AgentStates
from dialer.engine.connect import Assigner
from dialer.engine.model import LiveCall
from dialer.engine.state import EngineState, Part
from dialer.engine.supervision import Supervision
from dialer.logging import get_logger

log = get_logger("marcador.engine")

#: Agent call controls (``call_control`` command, ``POST /agent/call/<action>``).
CALL_CONTROLS = ("hangup", "mute", "unmute", "hold", "resume", "dtmf")
#: DTMF digits an agent may send, and how many at once.
DTMF_DIGITS = frozenset("0123456789*#ABCD")
DTMF_MAX = 32


class CallControlRefused(ValueError):
    """A call control the agent's state does not allow; ``code`` goes to the agent (409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CallControls(Part):
    """Agents' controls of their connected calls."""

    def __init__(
        self,
        state: EngineState,
        agent_log: AgentStates,
        assign: Assigner,
        supervision: Supervision,
    ) -> None:
        super().__init__(state)
        self.agent_log = agent_log
        self.assign = assign
        self.supervision = supervision

    async def call_control(
        self, agent_id: int, action: str, *, attempt: str | None = None, digits: str = ""
    ) -> None:
        """An agent's control of their connected call, through AMI on the nailed-up design
        (design.md §3; docs/web.md "Call controls"):

        * ``hangup``: Hangup of the customer's channel; the agent stays in the room and the
          call ends as usual (WRAP_UP).
        * ``mute`` / ``unmute``: ConfbridgeMute / ConfbridgeUnmute of the agent's channel in
          their room: the customer (and anyone else in the room) stops hearing the agent.
        * ``hold`` / ``resume``: Redirect of the customer to ``marcador-onhold`` (music on hold)
          and back into ``marcador-agent-room``; the hold time is summed on the call.
        * ``dtmf``: PlayDTMF of ``digits`` toward the customer (a company's IVR).

        Each is allowed only IN_CALL on the agent's current call (:class:`CallControlRefused`
        with a code otherwise) and goes to the lead's history and the audit log.
        """
        if action not in CALL_CONTROLS:
            raise CallControlRefused("unknown_control", f"unknown call control {action!r}")
        if action == "hangup" and await self._cancel_ringing(agent_id, attempt):
            return
        agent, call = self._controlled_call(agent_id, attempt)
        if call.transfer is not None and action in ("hold", "resume"):
            raise CallControlRefused(
                "transfer_in_progress", "the customer waits for the transfer (cancel it first)"
            )
        channel, ext, now = call.channel, agent.extension, self._now()
        assert channel is not None and ext is not None  # checked by _controlled_call
        detail: dict[str, Any] = {}
        if action == "hangup":
            await self.tel.hangup(call.server, channel)
            if call.on_hold_since is not None:
                detail["held_seconds"] = round((now - call.on_hold_since).total_seconds(), 1)
        elif action in ("mute", "unmute"):
            mute = action == "mute"
            if call.muted == mute:
                code = "already_muted" if mute else "not_muted"
                raise CallControlRefused(
                    code, f"the agent is {'already ' if mute else 'not '}muted"
                )
            room_channel = await self._agent_room_channel(agent_id, call.server)
            await self.tel.confbridge_mute(
                call.server, dialplan.agent_room(ext), room_channel, mute=mute
            )
            call.muted = mute
        elif action == "hold":
            if call.on_hold_since is not None:
                raise CallControlRefused("already_on_hold", "the customer is already on hold")
            await self.tel.redirect(call.server, channel, dialplan.CTX_ONHOLD, ext)
            call.on_hold_since = now
        elif action == "resume":
            if call.on_hold_since is None:
                raise CallControlRefused("not_on_hold", "the customer is not on hold")
            if agent.is_reconnecting:
                # A browser phone mid-rejoin: the room is empty, and a customer Redirected into
                # it would be taken for an abandon. The customer stays on hold until the agent
                # is back (or the grace ends and the call with it).
                raise CallControlRefused(
                    "agent_reconnecting",
                    "the agent's phone is reconnecting: resume once it is back",
                )
            await self.tel.redirect(call.server, channel, dialplan.CTX_AGENT_ROOM, ext)
            held = call.end_hold(now)
            detail = {"held_seconds": round(held, 1), "hold_seconds": round(call.hold_seconds, 1)}
        else:  # dtmf
            digits = digits.strip().upper()
            if not digits or len(digits) > DTMF_MAX or not set(digits) <= DTMF_DIGITS:
                raise CallControlRefused(
                    "invalid_digits", f"send 1-{DTMF_MAX} of 0-9 * # A-D, not {digits[:8]!r}"
                )
            await self.tel.play_dtmf(call.server, channel, digits)
            detail["digits"] = len(digits)  # how many, not which: they may be an account PIN
        log.info("call_control", agent=agent_id, attempt=call.uuid, action=action)
        await self.record_control(call, agent_id, action, now, detail)
        await self.agent_log.log(agent_id)
        await self.publish(
            "call_control",
            {
                "agent_id": agent_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "action": action,
                "on_hold": call.on_hold_since is not None,
                "muted": call.muted,
            },
        )

    async def transfer(self, agent_id: int, target_id: int, *, attempt: str | None = None) -> None:
        """Blind transfer of the agent's connected call to another READY agent of the campaign.

        The customer is Redirected into the target's room (``marcador-agent-room,<ext>``); the
        target goes IN_CALL on that call (screen-pop: the same lead and history) and owns its
        disposition (``CallAttempt.agent_id``); the transferring agent is READY at once, with
        no disposition to give. An open hold is closed, the transferring agent unmuted, and
        supervisors spying on them are hung up (their spy belongs to the call).
        """
        agent, call = self._controlled_call(agent_id, attempt)
        if call.transfer is not None:
            raise CallControlRefused("transfer_in_progress", "a transfer is already under way")
        target = self.agents.get(target_id)
        if target_id == agent_id or target is None or target.campaign_id != agent.campaign_id:
            raise CallControlRefused("target_unavailable", "no such agent in your campaign")
        if not target.is_available or target.extension is None:
            raise CallControlRefused("target_unavailable", "that agent is not ready")
        if target_id in self.previews:
            raise CallControlRefused("target_unavailable", "that agent has a preview on screen")
        channel, now = call.channel, self._now()
        assert channel is not None
        self.agents[target_id] = target.reserve(call.uuid, now)  # before any await
        try:
            await self.tel.redirect(call.server, channel, dialplan.CTX_AGENT_ROOM, target.extension)
        except AMIError:
            current = self.agents.get(target_id)
            if current is not None and current.state is AgentState.RESERVED:
                self.agents[target_id] = current.release_reservation(self._now())
            raise
        reserved = self.agents[target_id]
        self.agents[target_id] = reserved.connected(call.uuid, now)
        call.agent_id = target_id
        detail: dict[str, Any] = {"from_agent": agent_id, "to_agent": target_id}
        if call.on_hold_since is not None:
            held = call.end_hold(now)
            detail["held_seconds"] = round(held, 1)
        was_muted, call.muted = call.muted, False
        current = self.agents[agent_id]
        self.agents[agent_id] = current.call_ended(0, now).dispositioned(now)
        log.info("call_transferred", attempt=call.uuid, agent=agent_id, to=target_id)
        await self.supervision.end_spies_on(call.uuid)
        try:
            await self.store.transfer_attempt(call.uuid, target_id)
        except Exception as exc:
            log.warning("transfer_record_failed", attempt=call.uuid, error=type(exc).__name__)
        await self.record_control(call, agent_id, "transfer", now, detail)
        if was_muted and agent.extension and agent_id in self.agent_room_channel:
            try:
                await self.tel.confbridge_mute(
                    call.server,
                    dialplan.agent_room(agent.extension),
                    self.agent_room_channel[agent_id],
                    mute=False,
                )
            except AMIError as exc:
                log.warning("agent_unmute_failed", agent=agent_id, error=type(exc).__name__)
        await self.agent_log.log(target_id)
        await self.agent_log.log(agent_id)
        await self.publish(
            "screen_pop",
            {
                "agent_id": target_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "transferred_from": agent_id,
            },
        )
        await self.publish(
            "call_control",
            {
                "agent_id": agent_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "action": "transfer",
                "to_agent": target_id,
            },
        )
        await self.assign.agent_ready(agent_id)

    def _controlled_call(self, agent_id: int, attempt: str | None) -> tuple[AgentSession, LiveCall]:
        """The agent's connected call, or :class:`CallControlRefused` with a code."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.is_logged_in:
            raise CallControlRefused("not_logged_in", "the agent is not logged in")
        if agent.state is not AgentState.IN_CALL or agent.call_attempt is None:
            raise CallControlRefused("not_in_call", f"no call to control ({agent.state.value})")
        if attempt and attempt != agent.call_attempt:
            raise CallControlRefused("stale_call", "that call is no longer the agent's call")
        call = self.calls.get(agent.call_attempt)
        if call is None or call.channel is None or agent.extension is None:
            raise CallControlRefused("call_gone", "the call has ended")
        return agent, call

    async def _cancel_ringing(self, agent_id: int, attempt: str | None) -> bool:
        """Hang up while the agent's own preview / manual call still rings (RESERVED): the
        call is cancelled (CANCELLED if unanswered) and the reservation goes with its end."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.RESERVED or not agent.call_attempt:
            return False
        call = self.calls.get(agent.call_attempt)
        if call is None or not call.preview or (attempt and attempt != call.uuid):
            return False
        await self.tel.cancel(call.server, call.uuid)
        log.info("call_control", agent=agent_id, attempt=call.uuid, action="hangup")
        await self.record_control(call, agent_id, "hangup", self._now(), {"ringing": True})
        return True

    async def _agent_room_channel(self, agent_id: int, server: str) -> str:
        """The agent's channel name in their room (for ConfbridgeMute): from their
        ConfbridgeJoin, else the PBX's channel list (a dialer restarted meanwhile)."""
        name = self.agent_room_channel.get(agent_id)
        if name:
            return name
        session = self.agent_server.get(agent_id)
        if session is not None:
            for c in await self.tel.live_channels(server):
                if c.uniqueid == session[1]:
                    self.agent_room_channel[agent_id] = c.channel
                    return c.channel
        raise CallControlRefused("agent_channel_unknown", "the agent's room channel is unknown")

    async def record_control(
        self, call: LiveCall, agent_id: int, action: str, now: datetime, detail: dict[str, Any]
    ) -> None:
        try:
            await self.store.record_call_control(
                attempt_uuid=call.uuid,
                lead_id=call.lead_id,
                agent_id=agent_id,
                action=action,
                now=now,
                detail=detail,
            )
        except Exception as exc:  # the control happened: its record must not undo it
            log.warning("call_control_record_failed", attempt=call.uuid, error=type(exc).__name__)

    async def at_call_end(self, call: LiveCall, agent_id: int, now: datetime) -> None:
        """The call ended: close an open hold (its time is recorded), and unmute the agent,
        whose room channel outlives the call (the next customer must hear them). A transfer
        target's leg still ringing or talking goes with the call; after a transfer out the
        agent has moved on: nothing of theirs is touched."""
        leg = call.transfer
        if leg is not None and leg.leg_id in self.transfer_legs and leg.stopping is None:
            leg.stopping = "call_ended"
            try:
                await self.tel.cancel(leg.server, leg.leg_id)
            except AMIError as exc:
                log.warning("transfer_hangup_failed", leg=leg.leg_id, error=type(exc).__name__)
        if call.transferred_out:
            return
        if call.on_hold_since is not None:
            held = call.end_hold(now)
            await self.record_control(
                call,
                agent_id,
                "hold_ended",
                now,
                {"held_seconds": round(held, 1), "hold_seconds": round(call.hold_seconds, 1)},
            )
        if call.muted or call.adopted:  # adopted: a mute from before the restart is unknown
            call.muted = False
            agent = self.agents.get(agent_id)
            name = self.agent_room_channel.get(agent_id)
            if name is None and agent is not None and call.adopted:
                with contextlib.suppress(CallControlRefused, AMIError):
                    name = await self._agent_room_channel(agent_id, call.server)
            if agent is not None and agent.extension and name:
                try:
                    await self.tel.confbridge_mute(
                        call.server, dialplan.agent_room(agent.extension), name, mute=False
                    )
                except AMIError as exc:
                    log.warning("agent_unmute_failed", agent=agent_id, error=type(exc).__name__)
