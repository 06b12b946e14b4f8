"""The :class:`Engine`: wires the engine's parts together and owns its loops.

Three loops run (:meth:`Engine.run`): the bridge loop (the call tracker's outputs and raw AMI
events, dispatched by :meth:`Engine.handle`), the pacing loop (:mod:`dialer.engine.pacing_loop`,
with maintenance rounds, :mod:`dialer.engine.reconcile`) and the command loop
(:mod:`dialer.engine.commands`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import redis.asyncio as aioredis

from ami_bridge.events import ConfbridgeJoin, Hangup
from ami_bridge.tracker import (
    CallAbandoning,
    CallAnswered,
    CallConnected,
    CallEnded,
    CallHeld,
    CallRinging,
)
from dialer.domain.clock import Clock
from dialer.domain.outcomes import DialMode
from dialer.engine.agent_state import AgentStates
from dialer.engine.commands import Commands
from dialer.engine.connect import Assigner
from dialer.engine.controls import CallControls
from dialer.engine.dialing import Dialing
from dialer.engine.lanes import Lanes
from dialer.engine.model import (
    AGENT_SESSION_PREFIX,
    SPY_PREFIX,
    TRANSFER_PREFIX,
    CampaignRuntime,
    EngineConfig,
)
from dialer.engine.outbox import Outbox
from dialer.engine.pacing_loop import PacingLoop
from dialer.engine.port import Telephony, TelephonyItem
from dialer.engine.previews import Previews
from dialer.engine.reconcile import Reconciler
from dialer.engine.recording import Recording
from dialer.engine.routing import Routing
from dialer.engine.sessions import Sessions
from dialer.engine.state import EngineState, Part
from dialer.engine.supervision import Supervision
from dialer.engine.transfers import Transfers
from dialer.logging import get_logger
from dialer.redis_keys import Keys
from dialer.store import EngineStore

log = get_logger("marcador.engine")


class Engine(Part):
    """One dialer: its parts, sharing one :class:`~dialer.engine.state.EngineState`.

    The live state (``calls``, ``agents``, ``campaigns``, ...) and the collaborators
    (``store``, ``tel``, ``clock``, ...) are read through :class:`Part`'s properties.
    """

    def __init__(
        self,
        config: EngineConfig,
        store: EngineStore,
        redis: aioredis.Redis,
        keys: Keys,
        telephony: Telephony,
        clock: Clock,
    ) -> None:
        state = EngineState(config, store, redis, keys, telephony, clock)
        super().__init__(state)
        lanes = self.lanes = Lanes()
        agent_log = self.agent_log = AgentStates(state, lanes)
        outbox = self.outbox = Outbox(state)
        recording = self.recording = Recording(state, lanes)
        assign = self.assign = Assigner(state, lanes, agent_log)
        supervision = self.supervision = Supervision(state)
        controls = self.controls = CallControls(state, agent_log, assign, supervision)
        transfers = self.transfers = Transfers(state, agent_log, controls, supervision)
        dialing = self.dialing = Dialing(state, agent_log, outbox)
        previewing = self.previewing = Previews(state, agent_log, dialing, controls)
        self.routing = Routing(state, lanes, agent_log, assign, controls, recording, outbox)
        sessions = self.sessions = Sessions(state, agent_log, assign)
        self.pacing = PacingLoop(state, dialing, previewing, sessions)
        self.reconciler = Reconciler(state, agent_log, outbox)
        self.commands = Commands(
            state, sessions, previewing, supervision, controls, transfers, recording
        )
        # The engine's entry points (runtime, API, CLI, tests), each kept by its part.
        self.step = self.pacing.step
        self.refresh_campaigns = self.pacing.refresh_campaigns
        self.restore_agents = sessions.restore_agents
        self.agent_login = sessions.agent_login
        self.agent_command = sessions.agent_command
        self.preview_call = previewing.preview_call
        self.preview_skip = previewing.preview_skip
        self.manual_dial = previewing.manual_dial
        self.call_control = controls.call_control
        self.transfer = controls.transfer
        self.transfer_out = transfers.transfer_out
        self.consult_complete = transfers.consult_complete
        self.consult_cancel = transfers.consult_cancel
        self.spy = supervision.spy
        self.stop_spy = supervision.stop_spy
        self.stop_recording = recording.stop_recording
        self.trunk_template = dialing.trunk_template
        self.publish_whatsapp = outbox.publish_whatsapp
        self.republish_outbox = outbox.republish_outbox
        self.maintenance = self.reconciler.maintenance
        self.release_idle_claims = self.reconciler.release_idle_claims
        self.reconcile_orphans = self.reconciler.reconcile_orphans
        self.handle_command = self.commands.handle_command
        self.refuse_unowned = self.commands.refuse_unowned
        self.drain = lanes.drain

    @property
    def command_group(self) -> str:
        """This dialer's own consumer group: it sees every command (fan-out)."""
        return self.commands.command_group

    @property
    def _tasks(self) -> set[asyncio.Task[None]]:
        """The background work in flight (tests look at it)."""
        return self.lanes.tasks

    async def _dial_lead(
        self, rt: CampaignRuntime, lead_id: int, now: datetime, mode: DialMode
    ) -> bool:
        """Claim and dial one lead now, outside the pacer's decision (tests)."""
        return await self.dialing.dial_lead(rt, lead_id, now, mode)

    # ------------------------------------------------------------------ bridge items
    async def handle(self, item: TelephonyItem) -> None:
        """Dispatch one item from the AMI bridge to the part that follows it."""
        it = item.item
        try:
            if isinstance(it, CallAnswered | CallEnded) and it.call_id.startswith(SPY_PREFIX):
                await self.supervision.on_spy_call(it)
            elif str(getattr(it, "call_id", "")).startswith(TRANSFER_PREFIX):
                if isinstance(it, CallAnswered | CallEnded):  # a transfer target's leg
                    await self.transfers.on_leg(it)
            elif isinstance(it, CallAnswered):
                await self.routing.on_answered(it)
            elif isinstance(it, CallHeld):
                await self.routing.on_held(item.server, it)
            elif isinstance(it, CallAbandoning):
                await self.routing.on_abandoning(it)
            elif isinstance(it, CallConnected):
                await self.routing.on_connected(it)
            elif isinstance(it, CallEnded):
                await self.supervision.end_spies_on(it.call_id)  # the spied customer left
                if it.call_id.startswith(AGENT_SESSION_PREFIX):  # an agent's session ended
                    await self.sessions.on_session_ended(it)
                else:
                    await self.routing.on_ended(it)
            elif isinstance(it, CallRinging):
                pass
            elif isinstance(it, ConfbridgeJoin):
                await self.sessions.on_room_join(it)
            elif isinstance(it, Hangup):
                await self.sessions.on_agent_hangup(it)
        except Exception as exc:
            log.exception("bridge_item_failed", item=type(it).__name__, error=str(exc))

    # ------------------------------------------------------------------ run loop
    async def run(self, stop: asyncio.Event, tick: float = 0.5) -> None:
        await self.streams.ensure_group(self.keys.commands_stream, self.command_group, "$")
        bridge = asyncio.create_task(self._bridge_loop(stop), name="bridge")
        tasks = [bridge]
        last_maintenance = -1e9
        loop = asyncio.get_running_loop()
        try:
            # Restore first (own campaigns, their agents, the calls a dead run left), then
            # take commands: a command about an agent must meet that agent already restored.
            await self.step()
            last_maintenance = loop.time()
            try:
                await self.maintenance()
            except Exception as exc:
                log.exception("maintenance_failed", error=str(exc))
            tasks.append(asyncio.create_task(self.commands.loop(stop), name="commands"))
            while not stop.is_set():
                await self.step()
                if loop.time() - last_maintenance >= self.config.maintenance_interval:
                    last_maintenance = loop.time()
                    try:
                        await self.maintenance()
                    except Exception as exc:
                        log.exception("maintenance_failed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Redirects in flight and queued state writes: let them end (bounded), then cancel.
            if not await self.drain(within=self.config.shutdown_grace):
                log.warning("background_tasks_cancelled", count=len(self.lanes.tasks))
            await self.lanes.cancel()

    async def _bridge_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            item = await self.tel.next_item()
            await self.handle(item)
