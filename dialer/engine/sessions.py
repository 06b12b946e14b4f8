"""Agent sessions: login (the nailed-up call into the agent's room), state changes, logout,
and taking over the sessions of a dialer that died.

The agent's softphone is called once at login (ChannelId ``agent-<id>-…``) and stays in their
ConfBridge room (design.md §3); customers are Redirected into it
(:mod:`dialer.engine.routing`). The agent is READY only once their channel joined the room.

Browser-phone agents (issue 15) join the room unmarked (``MARCADOR_REJOINABLE``): when their
session call ends during a call or its wrap-up (a page reload), the customer stays in the room
(music on hold) and the session is kept for ``EngineConfig.rejoin_grace``; the reloaded page
logs in again, which calls the seat back into the same room. If the grace expires, the agent
is logged out and the customer, whom ConfBridge no longer ends with the agent, is hung up.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ami_bridge import dialplan
from ami_bridge.actions import ChannelInfo, OriginateRequest
from ami_bridge.errors import AMIError
from ami_bridge.events import ConfbridgeJoin, Hangup
from ami_bridge.tracker import CallEnded
from dialer.domain.agents import AgentSession, InvalidAgentTransition
from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.engine.agent_state import AgentStates
from dialer.engine.connect import Assigner
from dialer.engine.model import AGENT_SESSION_PREFIX
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger
from dialer.webrtc import is_browser_seat

log = get_logger("marcador.engine")


class Sessions(Part):
    """Agents' sessions on this dialer, from login to logout."""

    def __init__(self, state: EngineState, agent_log: AgentStates, assign: Assigner) -> None:
        super().__init__(state)
        self.agent_log = agent_log
        self.assign = assign

    async def on_room_join(self, ev: ConfbridgeJoin) -> None:
        agent_id = self.agent_channel.get(ev.uniqueid or "")
        if agent_id is None:
            return
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        self.agent_room_channel[agent_id] = ev.channel
        self.agents[agent_id] = agent.room_joined_event(ev.uniqueid or "", self._now())
        if agent.is_reconnecting:
            await self._remute(agent, ev.channel)
        await self.agent_log.log(agent_id)
        await self.assign.agent_ready(agent_id)

    async def _remute(self, agent: AgentSession, channel: str) -> None:
        """A browser-phone agent rejoined a call they had muted: ConfBridge knows only the new
        channel, which joins unmuted, so the mute is applied again (the agent screen still
        shows "muted"). If that fails, the call is marked unmuted, which is then the truth."""
        call = self.calls.get(agent.call_attempt or "")
        if call is None or not call.muted or not agent.extension:
            return
        try:
            await self.tel.confbridge_mute(
                call.server, dialplan.agent_room(agent.extension), channel, mute=True
            )
            log.info("agent_mute_reapplied", agent=agent.agent_id)
        except AMIError as exc:
            call.muted = False
            log.warning("agent_remute_failed", agent=agent.agent_id, error=type(exc).__name__)

    async def on_agent_hangup(self, ev: Hangup) -> None:
        agent_id = self.agent_channel.pop(ev.uniqueid or "", None)
        if agent_id is None:
            return
        if agent_id in self.agents:
            await self._session_lost(agent_id)
            log.info("agent_channel_hung_up", agent=agent_id)

    async def on_session_ended(self, ev: CallEnded) -> None:
        """An agent's nailed-up session call ended: the agent is logged out (or, a browser
        phone mid-call, may rejoin for a while)."""
        owner = self.agent_channel.pop(ev.call_id, None)
        if owner is not None and owner in self.agents:
            await self._session_lost(owner)

    def rejoinable(self, extension: str | None) -> bool:
        """Whether ``extension`` is a browser-phone seat whose session may be rejoined."""
        spec = self.config.rejoinable_extensions
        return (
            bool(spec)
            and self.config.rejoin_grace > timedelta(0)
            and is_browser_seat(spec, extension)
        )

    async def _session_lost(self, agent_id: int) -> None:
        agent = self.agents[agent_id]
        grace = self.config.rejoin_grace if self.rejoinable(agent.extension) else timedelta(0)
        after = agent.session_lost(self._now(), grace)
        self.agent_server.pop(agent_id, None)
        self.agent_room_channel.pop(agent_id, None)
        if after.is_reconnecting:
            self.agents[agent_id] = after
            await self.agent_log.log(agent_id)
            log.info(
                "agent_session_lost_rejoin_pending",
                agent=agent_id,
                state=after.state.value,
                grace_s=grace.total_seconds(),
            )
            return
        await self._logged_out(agent, after)

    async def _logged_out(self, before: AgentSession, after: AgentSession) -> None:
        """The agent's session is over: the claim of an undisposed wrap-up is released and a
        rejoinable agent's customer (not ended by ConfBridge with the agent) is hung up."""
        await self._leave_wrap_up(before)
        self.agents[before.agent_id] = after
        await self.agent_log.log(before.agent_id)
        if self.rejoinable(before.extension) and before.call_attempt:
            call = self.calls.get(before.call_attempt)
            if call is not None and call.channel and before.state is AgentState.IN_CALL:
                try:
                    await self.tel.hangup(call.server, call.channel)
                    log.info("customer_hung_up_with_agent", agent=before.agent_id)
                except AMIError as exc:
                    log.warning(
                        "customer_hangup_failed", agent=before.agent_id, error=type(exc).__name__
                    )

    async def expire_rejoins(self) -> int:
        """Log out the agents whose rejoin grace ran out (the pacing loop calls it)."""
        now = self._now()
        expired = [a for a in self.agents.values() if a.rejoin_expired(now)]
        for agent in expired:
            log.info("agent_rejoin_expired", agent=agent.agent_id, state=agent.state.value)
            await self._logged_out(agent, agent.logout(now))
            # A rejoin call still ringing would put the seat into a room nobody owns.
            session = self.agent_server.pop(agent.agent_id, None)
            if session is not None:
                self.agent_channel.pop(session[1], None)
                if not await self._hangup_sessions(agent.agent_id, agent.extension):
                    try:  # not up yet (ringing): cancel the Originate
                        await self.tel.cancel(*session)
                    except AMIError as exc:
                        log.warning(
                            "agent_hangup_failed", agent=agent.agent_id, error=type(exc).__name__
                        )
        return len(expired)

    async def restore_agents(self, campaign_id: int) -> int:
        """Take over the live agent sessions of a campaign whose dialer died.

        Evidence (docs/reliability.md, "Restart evidence"): the Redis agent hash says which
        session channel on which server, the state and the call; the PBX (CoreShowChannels)
        says whether that session channel is still up (if not, the agent is logged out); the
        database says what became of the call. The state is made consistent with the call:
        an unresolved call keeps the agent on it (reconcile then adopts or resolves it); a
        connected call without a disposition gives WRAP_UP on that call (its lead stays
        claimed, by this dialer now); no call, or one already dispositioned or not theirs,
        gives READY. Pause codes are kept.
        """
        restored = 0
        try:
            members = await self.redis.smembers(self.keys.agents_online)  # type: ignore[misc]
        except Exception as exc:
            log.warning("agent_restore_failed", error=type(exc).__name__)
            return 0
        now = self._now()
        snapshots: dict[str, list[ChannelInfo] | None] = {}
        for raw in members:
            agent_id = int(raw)
            if agent_id in self.agents and self.agents[agent_id].is_logged_in:
                continue
            h = await self.redis.hgetall(self.keys.agent_state(agent_id))  # type: ignore[misc]
            if h.get("campaign_id") != str(campaign_id) or h.get("state") in (None, "logged_out"):
                continue
            channel, server = h.get("channel", ""), h.get("server", "")
            if not channel or not server:
                continue
            chans = await self.state.pbx_channels(server, snapshots)
            if chans is not None and not any(c.uniqueid == channel for c in chans):
                # The phone hung up while no dialer ran: the session is over.
                self.agents[agent_id] = AgentSession(agent_id)
                await self.agent_log.log(agent_id)
                log.info("agent_session_gone_on_restore", agent=agent_id)
                continue
            state, attempt = await self._restored_state(
                agent_id, AgentState(h["state"]), h.get("attempt") or None, now
            )
            rt = self.campaigns.get(campaign_id)
            wrap = rt.campaign.wrap_up_seconds if rt else 30
            self.agents[agent_id] = AgentSession(
                agent_id=agent_id,
                state=state,
                since=now,
                extension=h.get("extension") or None,
                campaign_id=campaign_id,
                pause_code=(h.get("pause_code") or None) if state is AgentState.PAUSED else None,
                session_channel=channel,
                room_joined=True,
                call_attempt=attempt,
                ready_since=now if state is AgentState.READY else None,
                wrap_deadline=now + timedelta(seconds=wrap)
                if state is AgentState.WRAP_UP
                else None,
            )
            self.agent_channel[channel] = agent_id
            self.agent_server[agent_id] = (server, channel)
            restored += 1
            await self.agent_log.log(agent_id)
        if restored:
            log.info("agents_restored", campaign=campaign_id, count=restored)
        return restored

    async def _restored_state(
        self, agent_id: int, state: AgentState, attempt: str | None, now: datetime
    ) -> tuple[AgentState, str | None]:
        """The state a restored agent resumes in, from their call's record (see above)."""
        if state in (AgentState.READY, AgentState.PAUSED):
            return state, None
        status = await self.store.call_status(attempt) if attempt else None
        if status is None:  # no call on record: a call awaiting their disposition?
            found = await self.store.awaiting_disposition(agent_id, now - timedelta(hours=12))
            status = await self.store.call_status(found) if found else None
            if status is None:
                return AgentState.READY, None
        if status.outcome is None:  # still unresolved: reconcile adopts or resolves it
            kept = AgentState.RESERVED if state is AgentState.RESERVED else AgentState.IN_CALL
            return kept, status.uuid
        if (
            status.outcome is CallOutcome.ANSWERED_CONNECTED
            and status.agent_id == agent_id
            and not status.disposed
        ):
            await self.store.take_claim(
                status.lead_id, self.config.dialer_id, now, self.config.claim_ttl
            )
            return AgentState.WRAP_UP, status.uuid
        return AgentState.READY, None

    async def _leave_wrap_up(self, agent: AgentSession) -> None:
        """An agent logs out in WRAP_UP without a disposition: their call's lead must not stay
        claimed (``in_progress``) for a disposition that will not come. It returns to the pool
        (the contact-frequency rules defer it); a late disposition still decides it."""
        if agent.state is not AgentState.WRAP_UP or not agent.call_attempt:
            return
        status = await self.store.call_status(agent.call_attempt)
        if status is None or status.disposed:
            return
        await self.store.release_claim(status.lead_id)
        await self.leases.force_release(self.keys.lead_lease(status.lead_id))
        log.info("wrap_up_left_without_disposition", agent=agent.agent_id, lead=status.lead_id)

    def _session_channels(
        self, chans: Sequence[ChannelInfo], agent_id: int, extension: str | None
    ) -> list[ChannelInfo]:
        """The agent's session calls on the PBX: theirs by ChannelId (``agent-<id>-…``,
        whichever dialer run placed it), or a login call to the extension (``marcador-agent``
        context) that is no other agent's session."""
        prefix = f"{AGENT_SESSION_PREFIX}{agent_id}-"
        found = [
            c
            for c in chans
            if c.uniqueid.startswith(prefix)
            or (
                extension
                and c.context == dialplan.CTX_AGENT
                and c.exten == extension
                and not c.uniqueid.startswith(AGENT_SESSION_PREFIX)
            )
        ]
        names = {c.channel for c in found}
        # A Local channel's ;2 leg goes with its ;1 leg: hang up only the ;1.
        return [
            c for c in found if not (c.channel.endswith(";2") and c.channel[:-1] + "1" in names)
        ]

    async def _hangup_sessions(
        self, agent_id: int, extension: str | None, keep: str | None = None
    ) -> int:
        """Hang up every session call of the agent found on the PBX (all linked servers)."""
        count = 0
        cache: dict[str, list[ChannelInfo] | None] = {}
        for server in self.tel.server_names():
            chans = await self.state.pbx_channels(server, cache)
            for c in self._session_channels(chans or [], agent_id, extension):
                if c.uniqueid == keep:
                    continue
                self.agent_channel.pop(c.uniqueid, None)
                try:
                    await self.tel.hangup(server, c.channel)
                    count += 1
                except AMIError as exc:
                    log.warning("agent_hangup_failed", agent=agent_id, error=type(exc).__name__)
        if count:
            log.info("agent_session_calls_hung_up", agent=agent_id, count=count)
        return count

    async def agent_login(self, agent_id: int, extension: str, campaign_id: int) -> None:
        now = self._now()
        previous = self.agents.get(agent_id) or AgentSession(agent_id)
        agent = previous.login(extension, campaign_id, now)  # validates first
        server = next((s for s in self.tel.server_names() if self.tel.link_up(s)), None)
        if server is None:
            raise AMIError("no Asterisk link is up: cannot call the agent's softphone")
        # A leftover session call (a dialer killed before the logout, a login retried) would
        # keep the phone busy and the room's party count above 0: end it first.
        await self._hangup_sessions(agent_id, agent.extension)
        self.agents[agent_id] = agent
        if agent.is_reconnecting:
            log.info("agent_rejoining", agent=agent_id, state=agent.state.value)
        channel_id = f"{AGENT_SESSION_PREFIX}{agent_id}-{uuidlib.uuid4().hex[:12]}"
        self.agent_channel[channel_id] = agent_id
        self.agent_server[agent_id] = (server, channel_id)
        template = self.config.agent_channels.get(server, self.config.default_agent_channel)
        rejoinable = self.rejoinable(agent.extension)
        req = OriginateRequest(
            channel=template.format(extension=extension),
            channel_id=channel_id,
            context=dialplan.CTX_AGENT,
            exten=extension,
            timeout_ms=30_000,
            caller_id='"Marcador" <0>',
            variables={dialplan.VAR_REJOINABLE: "1"} if rejoinable else {},
        )
        try:
            await self.tel.originate(
                server, req, call_id=channel_id, ring_timeout=timedelta(seconds=30)
            )
        except AMIError:
            self.agents[agent_id] = previous  # nothing changed: the agent may try again
            self.agent_channel.pop(channel_id, None)
            self.agent_server.pop(agent_id, None)
            raise
        await self.agent_log.log(agent_id)

    async def agent_command(self, agent_id: int, action: str, **kw: Any) -> None:
        now = self._now()
        agent = self.agents.get(agent_id)
        if agent is None:
            raise InvalidAgentTransition(agent_id, AgentState.LOGGED_OUT, action)
        if action == "ready":
            agent = agent.ready(now)
        elif action == "pause":
            agent = agent.pause(str(kw.get("code", "break")), now)
        elif action == "dispositioned":
            pause_code = kw.get("pause_code")
            if agent.state is AgentState.READY:
                # Restored READY after a restart: the disposition was already on record.
                if pause_code:
                    agent = agent.pause(str(pause_code), now)
            else:
                agent = agent.dispositioned(now, pause_code=pause_code)
        elif action == "logout":
            previous_ext = agent.extension
            await self._logged_out(agent, agent.logout(now))
            agent = self.agents[agent_id]
            offer = self.previews.pop(agent_id, None)
            if offer is not None:
                await self.store.release_claim(offer.lead_id)
            session = self.agent_server.pop(agent_id, None)
            if session is not None:
                self.agent_channel.pop(session[1], None)
            # Hang up the session call(s) the PBX has, not only the one in memory: after a
            # restart the tracker does not know the call, and a retried login may have left one.
            found = await self._hangup_sessions(agent_id, agent.extension or previous_ext)
            if session is not None and not found:
                try:  # PBX listing unavailable: hang up what the tracker knows
                    await self.tel.cancel(*session)
                except AMIError as exc:
                    log.warning("agent_hangup_failed", agent=agent_id, error=type(exc).__name__)
        else:
            raise ValueError(f"unknown agent action {action!r}")
        self.agents[agent_id] = agent
        await self.agent_log.log(agent_id)
        if action in ("ready", "dispositioned"):
            await self.assign.agent_ready(agent_id)
