"""Agent state publication: the Redis hash, ``agent_state_log`` rows and ``agent_state`` events.

Each change is snapshotted synchronously (the state as it is now) and written in the agent's
lane (:meth:`dialer.engine.lanes.Lanes.in_lane`): rows never swap even when written from
different tasks. The pacer's feed gets the agent's talk and wrap-up samples from here too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from dialer.db.models import AgentStateLog
from dialer.domain.agents import AgentSession
from dialer.domain.outcomes import AgentState
from dialer.engine.lanes import Lanes
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger

log = get_logger("marcador.engine")


class AgentStates(Part):
    """Publishes and logs agents' states, in order per agent."""

    def __init__(self, state: EngineState, lanes: Lanes) -> None:
        super().__init__(state)
        self.lanes = lanes

    async def log(self, agent_id: int) -> None:
        """Publish agent ``agent_id``'s current state and log it; returns once written."""
        await asyncio.shield(self.soon(agent_id))

    def soon(self, agent_id: int) -> asyncio.Task[None]:
        """Snapshot agent ``agent_id``'s state now; write it (Redis, ``agent_state_log``, the
        ``agent_state`` event) in the agent's lane, after the writes queued before it."""
        agent = self.agents[agent_id]
        self._feed_agent(agent)
        now = self._now()
        state = {
            "state": agent.state.value,
            "since": (agent.since or now).isoformat(),
            "extension": agent.extension or "",
            "campaign_id": str(agent.campaign_id or ""),
            "pause_code": agent.pause_code or "",
            "attempt": agent.call_attempt or "",
            "preview_lead": str(self.previews[agent_id].lead_id)
            if agent_id in self.previews
            else "",
            "preview_deadline": (
                self.previews[agent_id].deadline.isoformat() if agent_id in self.previews else ""
            ),
            "server": self.agent_server.get(agent_id, ("", ""))[0],
            "channel": self.agent_server.get(agent_id, ("", ""))[1],
            # A browser phone's session call ended mid-call: rejoin by then (issue 15).
            "rejoin_deadline": agent.rejoin_deadline.isoformat()
            if agent.is_reconnecting and agent.rejoin_deadline
            else "",
            **self._call_flags(agent),
        }
        return self.lanes.in_lane(
            f"agent:{agent_id}", self._write_agent_state(agent_id, agent, state, now)
        )

    async def _write_agent_state(
        self, agent_id: int, agent: AgentSession, state: dict[str, str], now: datetime
    ) -> None:
        try:
            await self.redis.hset(self.keys.agent_state(agent_id), mapping=state)  # type: ignore[misc]
            if agent.is_logged_in:
                await self.redis.sadd(self.keys.agents_online, str(agent_id))  # type: ignore[misc]
            else:
                await self.redis.srem(self.keys.agents_online, str(agent_id))  # type: ignore[misc]
        except Exception as exc:
            log.warning("agent_state_publish_failed", error=type(exc).__name__)
        async with self.store.sm.begin() as s:
            open_row = await s.scalar(
                AgentStateLog.__table__.select()
                .where(AgentStateLog.user_id == agent_id, AgentStateLog.ended_at.is_(None))
                .with_only_columns(AgentStateLog.id)
            )
            if open_row is not None:
                row = await s.get(AgentStateLog, open_row)
                if row is not None:
                    if row.state is agent.state and row.pause_code == agent.pause_code:
                        return
                    row.ended_at = now
            if agent.state is not AgentState.LOGGED_OUT:
                s.add(
                    AgentStateLog(
                        user_id=agent_id,
                        campaign_id=agent.campaign_id,
                        state=agent.state,
                        pause_code=agent.pause_code,
                        started_at=now,
                    )
                )
        await self.publish("agent_state", {"agent_id": agent_id, **state})

    def _feed_agent(self, agent: AgentSession) -> None:
        """Report an agent's state to its campaign's pacer feed (talk and wrap-up samples)."""
        rt = self.campaigns.get(agent.campaign_id) if agent.campaign_id is not None else None
        if rt is not None:
            since = agent.since or self._now()
            rt.feed.agent_state(agent.agent_id, agent.state, since.timestamp())

    def _call_flags(self, agent: AgentSession) -> dict[str, str]:
        """What the agent's live state shows about their call's controls (supervisor view)."""
        call = self.calls.get(agent.call_attempt or "") if agent.call_attempt else None
        if call is None or agent.state is not AgentState.IN_CALL:
            return {
                "on_hold_since": "",
                "muted": "",
                "hold_seconds": "",
                "transfer_state": "",
                "transfer_label": "",
            }
        leg = call.transfer
        return {
            "on_hold_since": call.on_hold_since.isoformat() if call.on_hold_since else "",
            "muted": "1" if call.muted else "",
            "hold_seconds": f"{call.hold_seconds:.1f}" if call.hold_seconds else "",
            # transferring / consult_ringing / consulting (docs/web.md "Call controls")
            "transfer_state": leg.state if leg is not None else "",
            "transfer_label": leg.label if leg is not None else "",
        }
