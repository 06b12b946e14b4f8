"""Call recording (issue 16, docs/recording.md): the row at connect, the file after the end,
and the agent's "stop recording"."""

from __future__ import annotations

from datetime import datetime

from dialer.engine.lanes import Lanes
from dialer.engine.model import LiveCall
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger

log = get_logger("marcador.engine")


class Recording(Part):
    """The recording's bookkeeping around a connected call; it never fails the call."""

    def __init__(self, state: EngineState, lanes: Lanes) -> None:
        super().__init__(state)
        self.lanes = lanes

    async def started(self, call: LiveCall, agent_id: int, now: datetime) -> bool:
        """Register the recording row of a connected call; never fails the call."""
        if self.recordings is None:
            return False
        try:
            return await self.recordings.started(call.uuid, agent_id, now) is not None
        except Exception as exc:  # the call goes on whatever happens to the bookkeeping
            log.warning("recording_register_failed", attempt=call.uuid, error=type(exc).__name__)
            return False

    def finished(self, attempt: str) -> None:
        """Finalise the file in the background (Asterisk closes it just after the hang-up)."""
        if self.recordings is None:
            return
        keeper = self.recordings

        async def run() -> None:
            try:
                await keeper.finished(attempt, self._now())
            except Exception as exc:
                log.warning("recording_finalise_failed", attempt=attempt, error=type(exc).__name__)

        # not drained: the finalisation may outlive the call's end and the engine's shutdown
        self.lanes.spawn(run(), f"recording-{attempt}", detached=True)

    async def stop_recording(self, agent_id: int, by: object = None) -> bool:
        """The agent's "stop recording" (the customer objects): StopMixMonitor on the
        customer's channel; the file keeps what came before. Audited on the recording row."""
        agent = self.agents.get(agent_id)
        call = self.calls.get(agent.call_attempt or "") if agent is not None else None
        if call is None or not call.channel or self.recordings is None:
            raise ValueError("no recorded call to stop")
        await self.tel.stop_recording(call.server, call.channel)
        user = int(str(by)) if by is not None and str(by).isdigit() else agent_id
        await self.recordings.stopped(call.uuid, user, self._now())
        await self.publish("recording_stopped", {"agent_id": agent_id, "attempt": call.uuid})
        return True
