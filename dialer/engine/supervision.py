"""Supervisor spying: listen, whisper or barge into an agent's current call (ChanSpy).

The spy belongs to the spied call (:class:`~dialer.engine.model.SpySession`): the dialer hangs
the supervisor's channel up when that call ends, when the supervisor stops it, or when they
start another one (one spy each).
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import timedelta

from ami_bridge import dialplan
from ami_bridge.actions import OriginateRequest, spy_agent
from ami_bridge.errors import AMIError
from ami_bridge.tracker import CallAnswered, CallEnded
from dialer.domain.outcomes import AgentState
from dialer.engine.model import SPY_PREFIX, SpySession
from dialer.engine.state import Part
from dialer.logging import get_logger
from dialer.redis_client import StreamEntry

log = get_logger("marcador.engine")


class SpyRefused(ValueError):
    """A spy request the dialer cannot act on; ``code`` goes to the supervisor."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def spy_key(supervisor_id: object, supervisor_extension: str) -> str:
    """Who holds a spy: one spy per supervisor user (or per extension, for old commands)."""
    if supervisor_id not in (None, ""):
        return f"user:{supervisor_id}"
    return f"ext:{supervisor_extension}"


class Supervision(Part):
    """Supervisors' spy calls on this dialer's agents."""

    async def spy(
        self,
        agent_id: int,
        supervisor_extension: str,
        mode: str,
        *,
        supervisor_id: object = None,
        command_id: str = "",
    ) -> SpySession:
        """Ring the supervisor's softphone into ChanSpy on the agent's current call.

        Refused (:class:`SpyRefused`) unless the agent is on a call. A supervisor's earlier spy
        is hung up first (one at a time). The Originate is tracked: a refusal by Asterisk raises
        here; a later failure (no answer, unregistered phone) and the end arrive as the spy
        call's ``CallEnded`` (events ``spy_failed`` / ``spy_ended``).
        """
        if mode not in dialplan.SPY_MODES:
            raise ValueError(f"unknown spy mode {mode!r}")
        agent = self.agents.get(agent_id)
        session = self.agent_server.get(agent_id)
        if agent is None or session is None or agent.extension is None:
            raise SpyRefused("agent_not_logged_in", f"agent {agent_id} is not logged in here")
        attempt = agent.call_attempt
        if agent.state is not AgentState.IN_CALL or attempt is None:
            raise SpyRefused("agent_not_in_call", f"agent {agent_id} is not on a call")
        variables = {dialplan.VAR_SPY_AGENT: spy_agent(agent.extension)}  # validates first
        key = spy_key(supervisor_id, supervisor_extension)
        await self.stop_spy(key, "replaced")
        server = session[0]
        spy = SpySession(
            supervisor=key,
            spy_id=f"{SPY_PREFIX}{uuidlib.uuid4().hex}",
            server=server,
            agent_id=agent_id,
            attempt=attempt,
            mode=mode,
            supervisor_extension=supervisor_extension,
            campaign_id=agent.campaign_id,
            command_id=command_id,
        )
        # The supervisor's phone is dialled like an agent's (AsteriskServer.agent_channel:
        # PJSIP/{extension} in production, a Local channel for lab virtual phones).
        template = self.config.agent_channels.get(server, self.config.default_agent_channel)
        req = OriginateRequest(
            channel=template.format(extension=supervisor_extension),
            channel_id=spy.spy_id,
            context=dialplan.CTX_SPY,
            exten=dialplan.spy_exten(mode),
            timeout_ms=30_000,
            caller_id='"Marcador" <0>',
            variables=variables,
        )
        self.spies[key] = spy.spy_id
        self.spy_calls[spy.spy_id] = spy
        try:
            await self.tel.originate(
                server, req, call_id=spy.spy_id, ring_timeout=timedelta(seconds=30)
            )
        except AMIError:
            self.spy_calls.pop(spy.spy_id, None)
            if self.spies.get(key) == spy.spy_id:
                del self.spies[key]
            raise
        await self.publish("spy_ringing", spy.event())
        return spy

    async def stop_spy(self, key: str, reason: str) -> bool:
        """Hang up supervisor ``key``'s spy, if any (``spy_ended`` follows with ``reason``)."""
        spy_id = self.spies.pop(key, None)
        spy = self.spy_calls.get(spy_id or "")
        if spy is None:
            return False
        spy.stopping = reason
        try:
            await self.tel.cancel(spy.server, spy.spy_id)
        except AMIError as exc:
            log.warning("spy_hangup_failed", spy=spy.spy_id, error=type(exc).__name__)
        return True

    async def end_spies_on(self, attempt: str) -> None:
        """The spied customer left: their call ended. Its spies end with it."""
        for spy in [s for s in self.spy_calls.values() if s.attempt == attempt]:
            if spy.stopping is None:
                await self.stop_spy(spy.supervisor, "call_ended")

    async def on_spy_call(self, ev: CallAnswered | CallEnded) -> None:
        spy = self.spy_calls.get(ev.call_id)
        if spy is None:
            return
        if isinstance(ev, CallAnswered):
            spy.answered = True
            await self.publish("spy_started", spy.event())
            return
        del self.spy_calls[ev.call_id]
        if self.spies.get(spy.supervisor) == spy.spy_id:
            del self.spies[spy.supervisor]
        if ev.answered_at is None and spy.stopping is None:
            # never reached the supervisor: unregistered or busy phone, no answer, refusal
            await self.publish("spy_failed", spy.event(reason=ev.detail))
        else:
            await self.publish("spy_ended", spy.event(reason=spy.stopping or "hung_up"))

    async def spy_command(self, entry: StreamEntry) -> None:
        d = entry.data
        key = spy_key(d.get("supervisor_id"), str(d.get("supervisor_extension", "")))
        if entry.type == "spy_stop":
            await self.stop_spy(key, "stopped")
            return
        agent_id = int(d["agent_id"])
        if agent_id not in self.agents:  # another dialer starts it: ours (if any) is replaced
            await self.stop_spy(key, "replaced")
            return
        base = {
            "command_id": entry.id,
            "supervisor": key,
            "spied_agent_id": agent_id,
            "campaign_id": self.agents[agent_id].campaign_id,
            "mode": d.get("mode"),
        }
        try:
            await self.spy(
                agent_id,
                str(d["supervisor_extension"]),
                str(d["mode"]),
                supervisor_id=d.get("supervisor_id"),
                command_id=entry.id,
            )
        except SpyRefused as exc:
            await self.publish("spy_failed", {**base, "code": exc.code, "reason": str(exc)})
        except (AMIError, ValueError) as exc:  # e.g. "Extension does not exist."
            log.warning("spy_failed", error=str(exc))
            await self.publish("spy_failed", {**base, "code": "pbx_refused", "reason": str(exc)})
