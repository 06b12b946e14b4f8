"""The command loop: agents' and supervisors' commands from the API, over a Redis stream.

Every dialer reads every command (its own consumer group: fan-out); only the one that owns its
subject acts (:meth:`Commands.is_mine`), and every command acted on or refused gets a result
(``Keys.command_result``) the API shows. Commands an earlier run of this dialer read but never
acknowledged are taken over at start; commands not (yet) ours are retried for
:data:`COMMAND_RETRY_S`, then refused with a reason.
"""

from __future__ import annotations

import asyncio
import json
import time

from ami_bridge.errors import AMIError
from dialer.domain.agents import InvalidAgentTransition
from dialer.engine.controls import CallControlRefused, CallControls
from dialer.engine.model import TRANSFER_BLIND, TRANSFER_CONSULT
from dialer.engine.previews import Previews
from dialer.engine.recording import Recording
from dialer.engine.sessions import Sessions
from dialer.engine.state import EngineState, Part
from dialer.engine.supervision import Supervision, spy_key
from dialer.engine.transfers import Transfers
from dialer.logging import get_logger
from dialer.redis_client import StreamEntry

log = get_logger("marcador.engine")

#: A command about a subject no dialer holds yet (a campaign just started, an agent being
#: restored) is retried this long (real seconds) before it is refused with a reason.
COMMAND_RETRY_S = 20.0
#: Commands older than this (real seconds, from their stream id) are refused, not replayed.
COMMAND_MAX_AGE_S = 120.0
#: How long a command's result stays readable (``Keys.command_result``).
COMMAND_RESULT_TTL_S = 300


def command_age(entry_id: str) -> float | None:
    """Seconds since a stream entry was added (its id starts with Redis's ms time)."""
    try:
        return max(0.0, time.time() - int(entry_id.split("-", 1)[0]) / 1000)
    except ValueError:
        return None


class Commands(Part):
    """Takes this dialer's commands from the stream and acts on them."""

    def __init__(
        self,
        state: EngineState,
        sessions: Sessions,
        previewing: Previews,
        supervision: Supervision,
        controls: CallControls,
        transfers: Transfers,
        recording: Recording,
    ) -> None:
        super().__init__(state)
        self.sessions = sessions
        self.previewing = previewing
        self.supervision = supervision
        self.controls = controls
        self.transfers = transfers
        self.recording = recording

    @property
    def command_group(self) -> str:
        """This dialer's own consumer group: it sees every command (fan-out)."""
        return f"{self.keys.dialer_group}:{self.config.dialer_name or self.config.dialer_id}"

    def is_mine(self, entry: StreamEntry) -> bool:
        """Every dialer reads every command; only the one that owns its subject acts.

        ``agent_login`` belongs to the dialer that owns the campaign (lease); every other agent
        command to the dialer holding that agent's session; ``hangup_call`` to the dialer with
        that call.
        """
        d = entry.data
        try:
            if entry.type in ("spy", "spy_stop"):  # the agent's dialer, or the spy's holder
                key = spy_key(d.get("supervisor_id"), str(d.get("supervisor_extension", "")))
                return key in self.spies or int(d.get("agent_id") or -1) in self.agents
            if entry.type == "agent_login":
                return int(d["campaign_id"]) in self.campaigns
            if entry.type == "hangup_call":
                return str(d.get("attempt")) in self.calls
            if "agent_id" in d:  # a logged-out session left in memory is nobody's
                agent = self.agents.get(int(d["agent_id"]))
                return agent is not None and agent.is_logged_in
        except (TypeError, ValueError):
            return False
        return False

    async def handle_command(self, entry: StreamEntry) -> bool:
        """Act on a command this dialer owns, or refuse it with a reason.

        Returns False when the command is not this dialer's (yet): the caller retries it for
        a while (:data:`COMMAND_RETRY_S`), then :meth:`refuse_unowned`. Every command acted on
        or refused gets a result (``Keys.command_result``, and a ``command_result`` event)
        that the API shows.
        """
        d = entry.data
        if not self.is_mine(entry):
            return False
        try:
            if entry.type == "agent_login":
                await self.sessions.agent_login(
                    int(d["agent_id"]), str(d["extension"]), int(d["campaign_id"])
                )
            elif entry.type in (
                "agent_ready",
                "agent_pause",
                "agent_logout",
                "agent_dispositioned",
            ):
                action = entry.type.removeprefix("agent_")
                extra = {k: v for k, v in d.items() if k != "agent_id"}
                await self.sessions.agent_command(int(d["agent_id"]), action, **extra)
            elif entry.type == "preview_call":
                await self.previewing.preview_call(int(d["agent_id"]))
            elif entry.type == "preview_skip":
                await self.previewing.preview_skip(int(d["agent_id"]))
            elif entry.type in ("spy", "spy_stop"):
                await self.supervision.spy_command(entry)
            elif entry.type == "manual_dial":
                await self.previewing.manual_dial(int(d["agent_id"]), int(d["lead_id"]))
            elif entry.type == "call_control" and d.get("action") == "transfer":
                await self.controls.transfer(
                    int(d["agent_id"]),
                    int(d["target_agent_id"]),
                    attempt=str(d.get("attempt") or "") or None,
                )
            elif entry.type == "call_control" and d.get("action") in ("transfer_out", "consult"):
                await self.transfers.transfer_out(
                    int(d["agent_id"]),
                    str(d.get("target_kind") or ""),
                    str(d.get("target") or ""),
                    label=str(d.get("target_label") or ""),
                    attempt=str(d.get("attempt") or "") or None,
                    mode=TRANSFER_BLIND if d["action"] == "transfer_out" else TRANSFER_CONSULT,
                )
            elif entry.type == "call_control" and d.get("action") == "consult_complete":
                await self.transfers.consult_complete(
                    int(d["agent_id"]), attempt=str(d.get("attempt") or "") or None
                )
            elif entry.type == "call_control" and d.get("action") == "consult_cancel":
                await self.transfers.consult_cancel(
                    int(d["agent_id"]), attempt=str(d.get("attempt") or "") or None
                )
            elif entry.type == "call_control":
                await self.controls.call_control(
                    int(d["agent_id"]),
                    str(d.get("action", "")),
                    attempt=str(d.get("attempt") or "") or None,
                    digits=str(d.get("digits") or ""),
                )
            elif entry.type == "recording_stop":
                await self.recording.stop_recording(int(d["agent_id"]), d.get("by"))
            elif entry.type == "hangup_call":
                call = self.calls.get(str(d["attempt"]))
                if call is not None and call.channel:
                    await self.tel.hangup(call.server, call.channel)
            else:
                log.warning("unknown_command", type=entry.type)
                await self._command_result(entry, "rejected", "unknown_command", entry.type)
                return True
        except CallControlRefused as exc:
            log.info("call_control_refused", code=exc.code, error=str(exc))
            await self._command_result(entry, "rejected", exc.code, str(exc))
            return True
        except (InvalidAgentTransition, KeyError, ValueError, AMIError) as exc:
            log.warning("command_rejected", type=entry.type, error=str(exc))
            await self.publish("command_rejected", {"command": entry.type, "error": str(exc), **d})
            await self._command_result(entry, "rejected", type(exc).__name__, str(exc))
            return True
        await self._command_result(entry, "accepted")
        return True

    async def refuse_unowned(self, entry: StreamEntry, reason: str | None = None) -> None:
        """No dialer took the command in time: refuse it (unless another dialer acted)."""
        d = entry.data
        if reason is None:
            if entry.type == "agent_login":
                reason = f"no dialer runs campaign {d.get('campaign_id')} (is it started?)"
            elif "agent_id" in d:
                reason = "no dialer holds this agent's session (log in again)"
            else:
                reason = "no dialer holds the subject of this command"
        try:
            if await self.redis.exists(self.keys.command_result(entry.id)):
                return  # another dialer acted on it (fan-out: every dialer sees every command)
        except Exception as exc:
            log.warning("command_result_failed", error=type(exc).__name__)
            return
        log.warning("command_not_owned", type=entry.type, reason=reason)
        await self._command_result(entry, "rejected", "not_owned", reason, only_if_new=True)

    async def _command_result(
        self,
        entry: StreamEntry,
        status: str,
        code: str = "",
        message: str = "",
        *,
        only_if_new: bool = False,
    ) -> None:
        """Publish what became of a command: the first refusal, or any dialer's action, wins."""
        body = {
            "command_id": entry.id,
            "command": entry.type,
            "status": status,
            "code": code,
            "message": message[:300],
            "dialer": self.config.dialer_id,
            "agent_id": entry.data.get("agent_id"),
        }
        try:
            written = await self.redis.set(
                self.keys.command_result(entry.id),
                json.dumps(body),
                ex=COMMAND_RESULT_TTL_S,
                nx=only_if_new,
            )
        except Exception as exc:
            log.warning("command_result_failed", error=type(exc).__name__)
            return
        if written:
            await self.publish("command_result", body)

    async def loop(self, stop: asyncio.Event) -> None:
        """Read this dialer's group. Entries an earlier run of this dialer read but never
        acknowledged (it was killed) are taken over first; commands not (yet) ours are retried
        for :data:`COMMAND_RETRY_S`, then refused with a reason."""
        consumer = self.config.dialer_id
        stream, group = self.keys.commands_stream, self.command_group
        loop = asyncio.get_running_loop()
        waiting: list[tuple[StreamEntry, float]] = []
        try:
            left = await self.streams.autoclaim(stream, group, consumer, min_idle_ms=0)
        except Exception as exc:
            log.warning("command_reclaim_failed", error=type(exc).__name__)
            left = []
        if left:
            log.info("commands_reclaimed", count=len(left))
        for entry in left:
            waiting.extend(await self._take_command(entry, loop.time()))
            await self.streams.ack(stream, group, entry.id)
        while not stop.is_set():
            try:
                entries = await self.streams.read_group(stream, group, consumer, block_ms=500)
            except Exception as exc:
                log.warning("command_read_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for entry in entries:
                waiting.extend(await self._take_command(entry, loop.time()))
                await self.streams.ack(stream, group, entry.id)
            still: list[tuple[StreamEntry, float]] = []
            for entry, deadline in waiting:
                if await self.handle_command(entry):
                    continue
                if loop.time() >= deadline:
                    await self.refuse_unowned(entry)
                else:
                    still.append((entry, deadline))
            waiting = still

    async def _take_command(
        self, entry: StreamEntry, now: float
    ) -> list[tuple[StreamEntry, float]]:
        """Handle a new command; returns it (with its retry deadline) if not ours yet."""
        age = command_age(entry.id)
        if age is not None and age > COMMAND_MAX_AGE_S:
            if self.is_mine(entry):
                await self._command_result(
                    entry,
                    "rejected",
                    "expired",
                    f"sent {age:.0f} s ago: not applied, send it again",
                )
            return []
        if await self.handle_command(entry):
            return []
        return [(entry, now + COMMAND_RETRY_S)]
