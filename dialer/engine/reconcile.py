"""Recovering what dead dialers left: unresolved attempts (adopted if still up on the PBX,
else given the best outcome the evidence supports), expired and idle claims, and recordings
left unfinalised (docs/reliability.md, "Restart evidence").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from ami_bridge import dialplan
from ami_bridge.actions import ChannelInfo
from ami_bridge.errors import AMIError
from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.engine.agent_state import AgentStates
from dialer.engine.model import LiveCall
from dialer.engine.outbox import Outbox
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger
from dialer.store import CallResult, Orphan

log = get_logger("marcador.engine")


class Reconciler(Part):
    """Maintenance rounds: orphaned attempts and claims."""

    def __init__(self, state: EngineState, agent_log: AgentStates, outbox: Outbox) -> None:
        super().__init__(state)
        self.agent_log = agent_log
        self.outbox = outbox
        #: leads claimed for nothing at the last maintenance round (:meth:`release_idle_claims`)
        self._idle_claims: set[int] = set()

    async def maintenance(self) -> None:
        """Recover what dead dialers left: expired claims and orphaned attempts.

        The WhatsApp outbox is re-published once when a dialer starts (``marcador dialer``);
        after that the worker's own sweep picks up queued rows whose stream entry was lost, so
        the stream is not flooded with a copy of every queued row on each round.
        """
        now = self._now()
        await self.reconcile_orphans(now)
        if self.recordings is not None:  # recordings a dead dialer left unfinalised
            await self.recordings.sweep(now)
        released = await self.store.release_expired_claims(now)
        if released:
            await self.leases.force_release(*(self.keys.lead_lease(i) for i in released))
            log.info("expired_claims_released", count=len(released))
        await self.release_idle_claims()

    async def release_idle_claims(self) -> list[int]:
        """Claims this dialer keeps renewing for nothing: every attempt of the lead has its
        outcome, and no call, preview or agent of this dialer is busy with it (e.g. the agent
        who owed the disposition was logged out on a path that did not free the lead). Seen
        idle in two rounds in a row (a lead being claimed right now is not yet in
        ``self.calls``), such a lead goes back to the pool; a late disposition still decides it.
        """
        busy_leads = {c.lead_id for c in self.calls.values()}
        busy_leads |= {p.lead_id for p in self.previews.values()}
        busy_attempts = {a.call_attempt for a in self.agents.values() if a.call_attempt}
        idle = {
            lead_id
            for lead_id, uuid in await self.store.settled_claims(self.config.dialer_id)
            if lead_id not in busy_leads and (uuid is None or uuid not in busy_attempts)
        }
        stale, self._idle_claims = idle & self._idle_claims, idle - self._idle_claims
        for lead_id in sorted(stale):
            await self.store.release_claim(lead_id)
            await self.leases.force_release(self.keys.lead_lease(lead_id))
            log.info("idle_claim_released", lead=lead_id)
        return sorted(stale)

    async def reconcile_orphans(self, now: datetime) -> int:
        """Rebuild what became of the attempts a dead dialer left unresolved.

        Orphans are unresolved attempts whose claim expired, or is held by an earlier run of
        this dialer (so a restart reconciles at once). For each, the PBX is asked
        (CoreShowChannels; the attempt id is the channel's Uniqueid):

        * still up: the call is **adopted**: the tracker follows it to its end, a call sitting
          in an agent's room (``marcador-agent-room``/``agent-<ext>``) is connected to that
          agent, who gets their wrap-up and disposition as usual;
        * gone: it gets the best outcome the evidence supports (:meth:`_evidence`):
          connected to an agent (database, or the agent's live state) -> ANSWERED_CONNECTED
          with that agent, who gets WRAP_UP for it, and the lead waits for the disposition;
          nothing known -> FAILED "lost", **counted** (the phone may have rung).

        Returns the number resolved.
        """
        resolved = 0
        cache: dict[str, list[ChannelInfo] | None] = {}
        for orphan in await self.store.unresolved_attempts(now, self.state.predecessor_prefix()):
            if orphan.uuid in self.calls or orphan.claim_owner == self.config.dialer_id:
                continue
            chans = await self.state.pbx_channels(orphan.server, cache)
            if chans is None:
                continue  # can't tell yet
            live = next((c for c in chans if c.uniqueid == orphan.uuid), None)
            if live is not None:
                await self._adopt(orphan, live, now)
                continue
            result = await self._evidence(orphan, now)
            finished = await self.store.finish_attempt(orphan.uuid, result, now)
            if finished.already_finished:
                continue
            resolved += 1
            await self._settle_orphan(orphan, result, now)
            await self.publish(
                "call_ended",
                {
                    "attempt": orphan.uuid,
                    "lead_id": orphan.lead_id,
                    "campaign_id": orphan.campaign_id,
                    "outcome": result.outcome.value,
                    "lead_status": (
                        finished.decision.lead_status.value if finished.decision else "in_progress"
                    ),
                    "next_attempt_at": (
                        str(finished.decision.next_attempt_at) if finished.decision else None
                    ),
                },
            )
            if finished.whatsapp_message_id is not None:
                await self.outbox.publish_whatsapp(finished.whatsapp_message_id, finished.lead_id)
        if resolved:
            log.warning("orphan_attempts_resolved", count=resolved)
        return resolved

    async def _evidence(self, orphan: Orphan, now: datetime) -> CallResult:
        """The best outcome the evidence supports for a call that ended unseen."""
        agent_id, connected_at, source = orphan.agent_id, orphan.connected_at, "database"
        if connected_at is None:  # the agent's live state: in a call with this attempt
            agent_id, connected_at = await self._agent_on_call(orphan.uuid, now)
            source = "agent state"
        if connected_at is not None:
            return CallResult(
                CallOutcome.ANSWERED_CONNECTED,
                answered_at=orphan.answered_at or connected_at,
                connected_at=connected_at,
                ended_at=now,
                detail=f"ended while no dialer followed it; connected to an agent ({source})",
                agent_id=agent_id,
            )
        return CallResult(
            CallOutcome.FAILED,
            ended_at=now,
            detail="lost: its dialer stopped before the outcome",
            counts=True,
        )

    async def _agent_on_call(self, uuid: str, now: datetime) -> tuple[int | None, datetime | None]:
        """(agent, connect time) of an agent whose live state shows them IN_CALL on ``uuid``."""
        for agent in self.agents.values():
            if agent.call_attempt == uuid and agent.state is AgentState.IN_CALL:
                return agent.agent_id, agent.since or now
        try:
            members = await self.redis.smembers(self.keys.agents_online)  # type: ignore[misc]
            for raw in members:
                h = await self.redis.hgetall(self.keys.agent_state(int(raw)))  # type: ignore[misc]
                if h.get("attempt") == uuid and h.get("state") == AgentState.IN_CALL.value:
                    since = h.get("since") or ""
                    try:
                        at = datetime.fromisoformat(since)
                    except ValueError:
                        at = now
                    return int(raw), at
        except Exception as exc:  # Redis lost: only the database's evidence remains
            log.warning("agent_state_read_failed", error=type(exc).__name__)
        return None, None

    async def _settle_orphan(self, orphan: Orphan, result: CallResult, now: datetime) -> None:
        """The agent and the lead after an orphan's outcome: wrap-up on a connected call."""
        agent = self.agents.get(result.agent_id or -1)
        if (
            result.outcome is CallOutcome.ANSWERED_CONNECTED
            and agent is not None
            and agent.is_logged_in
        ):
            # The lead waits for this agent's disposition: hold its claim meanwhile.
            await self.store.take_claim(
                orphan.lead_id, self.config.dialer_id, now, self.config.claim_ttl
            )
            rt = self.campaigns.get(agent.campaign_id or -1)
            wrap = rt.campaign.wrap_up_seconds if rt else 30
            self.agents[agent.agent_id] = replace(
                agent,
                state=AgentState.WRAP_UP,
                since=now,
                call_attempt=orphan.uuid,
                ready_since=None,
                pause_code=None,
                wrap_deadline=now + timedelta(seconds=wrap),
            )
            await self.agent_log.log(agent.agent_id)
            return
        await self.leases.force_release(self.keys.lead_lease(orphan.lead_id))
        for other in list(self.agents.values()):
            if other.call_attempt == orphan.uuid and other.state in (
                AgentState.RESERVED,
                AgentState.IN_CALL,
            ):
                self.agents[other.agent_id] = replace(
                    other, state=AgentState.READY, since=now, ready_since=now, call_attempt=None
                )
                await self.agent_log.log(other.agent_id)

    async def _adopt(self, orphan: Orphan, live: ChannelInfo, now: datetime) -> None:
        """Follow a dead dialer's call that is still up on the PBX, to its end."""
        answered = live.channel_state == 6  # Up
        room = None
        on_hold = False
        if live.context == dialplan.CTX_AGENT_ROOM and live.exten:
            room = dialplan.agent_room(live.exten)
        elif live.context == dialplan.CTX_ONHOLD and live.exten:
            # The agent had put the customer on hold (call controls): still that agent's call.
            room, on_hold = dialplan.agent_room(live.exten), True
        elif live.application == "ConfBridge" and live.application_data.startswith(
            dialplan.ROOM_PREFIX
        ):
            room = live.application_data.split(",", 1)[0]
        ext = dialplan.agent_of_room(room) if room else None
        agent = next(
            (
                a
                for a in self.agents.values()
                if a.is_logged_in and ext is not None and a.extension == ext
            ),
            None,
        )
        agent_id = agent.agent_id if agent else (orphan.agent_id if room else None)
        connected_at = (orphan.connected_at or now) if room else None
        answered_at = (orphan.answered_at or connected_at or now) if answered else None
        try:
            self.tel.adopt(
                orphan.server,
                orphan.uuid,
                uniqueid=live.uniqueid,
                channel=live.channel,
                answered_at=answered_at,
                conference=room,
                connected_at=connected_at,
            )
        except AMIError as exc:  # already tracked (a reconnect's own reconcile): leave it
            log.warning("adopt_failed", attempt=orphan.uuid, error=str(exc))
            return
        self.calls[orphan.uuid] = LiveCall(
            uuid=orphan.uuid,
            campaign_id=orphan.campaign_id,
            lead_id=orphan.lead_id,
            server=orphan.server,
            number=orphan.number,
            attempt_number=orphan.attempt_number,
            dialed_at=orphan.created_at,
            mode=orphan.mode,
            channel=live.channel,
            answered_at=answered_at,
            agent_id=agent_id,
            on_hold_since=now if on_hold else None,  # the hold's start died with the dialer
            adopted=True,
        )
        await self.store.take_claim(
            orphan.lead_id, self.config.dialer_id, now, self.config.claim_ttl
        )
        lease = self.keys.lead_lease(orphan.lead_id)
        await self.leases.force_release(lease)
        await self.leases.acquire(lease, self.config.dialer_id, self.config.lead_lease_ms)
        if room is not None and connected_at is not None:
            await self.store.mark_connected(orphan.uuid, agent_id, answered_at, connected_at)
        if agent is not None and room is not None:
            self.agents[agent.agent_id] = replace(
                agent,
                state=AgentState.IN_CALL,
                since=connected_at or now,
                call_attempt=orphan.uuid,
                ready_since=None,
                pause_code=None,
                wrap_deadline=None,
            )
            await self.agent_log.log(agent.agent_id)
        elif agent is None:
            # Nobody here was on it: release an agent left reserved for it.
            for other in list(self.agents.values()):
                if other.call_attempt == orphan.uuid and other.state is AgentState.RESERVED:
                    self.agents[other.agent_id] = other.release_reservation(now)
                    await self.agent_log.log(other.agent_id)
        log.info(
            "call_adopted",
            attempt=orphan.uuid,
            answered=answered,
            room=room,
            agent=agent_id,
        )
