"""Connecting a customer waiting in hold to an agent: the reservation, then the Redirect.

Concurrency (docs/benchmarks.md, "Real PBX"): the agent reservation and the call assignment
are decided synchronously, before any ``await`` (:meth:`Assigner.connect`), so no other task
can pick the same agent or the same call meanwhile; the Redirect then runs in a background task
(:class:`dialer.engine.lanes.Lanes`), so one slow AMI Response never delays another call's
connect. The agent is chosen from in-memory state: the engine never waits on the database on
the answer -> Redirect path.
"""

from __future__ import annotations

from ami_bridge import dialplan
from ami_bridge.errors import AMIError
from dialer.domain.agents import AgentSession
from dialer.domain.outcomes import AgentState
from dialer.engine.agent_state import AgentStates
from dialer.engine.lanes import Lanes
from dialer.engine.model import LiveCall
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger

log = get_logger("marcador.engine")


class Assigner(Part):
    """Gives a waiting customer to an agent: reservation, then the Redirect into their room."""

    def __init__(self, state: EngineState, lanes: Lanes, agent_log: AgentStates) -> None:
        super().__init__(state)
        self.lanes = lanes
        self.agent_log = agent_log

    async def connect(self, call: LiveCall, agent: AgentSession) -> bool:
        """Reserve ``agent`` for ``call`` and Redirect the customer into the agent's room.

        Both are decided before the first ``await`` (here: none at all): no other task can pick
        the same agent or the same call meanwhile. The Redirect runs in a background task
        (:meth:`_redirect`), so the next tracker item does not wait for its AMI Response.
        """
        if call.channel is None or agent.extension is None or not agent.is_available:
            return False
        self.agents[agent.agent_id] = agent.reserve(call.uuid, self._now())
        call.agent_id = agent.agent_id
        self.agent_log.soon(agent.agent_id)
        self.lanes.spawn(
            self._redirect(call, call.channel, agent.agent_id, agent.extension),
            f"redirect:{call.uuid}",
        )
        return True

    async def _redirect(self, call: LiveCall, channel: str, agent_id: int, extension: str) -> None:
        """Send the Redirect of a reserved call. Whatever happened while it was in flight (the
        call ended, the safe harbor started, the agent logged out or took another call) was
        handled by its own item: a failure only undoes what still belongs to this call."""
        try:
            await self.tel.redirect(call.server, channel, dialplan.CTX_AGENT_ROOM, extension)
        except AMIError as exc:
            log.warning("redirect_failed", attempt=call.uuid, error=type(exc).__name__)
            if call.agent_id == agent_id:
                call.agent_id = None
            call.unroutable = True  # gone or unreachable: do not offer it to the next agent
            if self.release(agent_id, call.uuid):
                self.agent_log.soon(agent_id)
                await self.agent_ready(agent_id)

    def release(self, agent_id: int, attempt: str) -> bool:
        """Release agent ``agent_id``'s reservation for ``attempt``, if they still hold it
        (no ``await``: decided on the state as it is now). The caller logs the new state."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.RESERVED or agent.call_attempt != attempt:
            return False
        self.agents[agent_id] = agent.release_reservation(self._now())
        return True

    async def agent_ready(self, agent_id: int) -> None:
        """Agent ``agent_id`` may have just become READY: give them the oldest customer of
        their campaign waiting in hold, if any (design.md §4)."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.is_available or agent.campaign_id is None:
            return
        waiting = [
            c
            for c in self.calls.values()
            if c.campaign_id == agent.campaign_id and c.waiting_in_hold and not c.preview
        ]
        if not waiting:
            return
        call = min(waiting, key=lambda c: (c.held_at, c.dialed_at, c.uuid))
        log.info("waiting_call_to_ready_agent", attempt=call.uuid, agent=agent_id)
        await self.connect(call, agent)
