"""The PBX's channel core: live channels, ids and names, and the events every feature emits
about a channel (Newexten, VarSet, Newstate, DeviceStateChange, Dial*)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable

from ami_bridge.simulator.clock import SimClock
from ami_bridge.simulator.config import SimulatorConfig
from ami_bridge.simulator.pbx.model import STATE_DESC, Call, Channel, Event
from ami_bridge.simulator.wire import Headers, format_message


class ChannelCore:
    """Channels by name and uniqueid, global variables, the calls in flight, and the event
    primitives. ``emit`` receives every event; it never blocks."""

    def __init__(self, config: SimulatorConfig, clock: SimClock, emit: Callable[[Event], None]):
        self.config = config
        self.clock = clock
        self._emit_cb = emit
        self.channels: dict[str, Channel] = {}  # by name
        self.by_uniqueid: dict[str, Channel] = {}
        self.global_vars: dict[str, str] = {}
        self.calls: set[Call] = set()
        #: one seeded stream for bridge ids and login challenges (their order is the wire's)
        self.rng = random.Random(config.seed)
        self.processed_calls = 0
        self.boot_wall = 0.0
        self.reset()

    def reset(self) -> None:
        """Fresh process state (after a restart or kill): counters restart at zero."""
        self._local_seq = 0
        self._pjsip_seq = 0
        self._uid_seq = 0
        self.processed_calls = 0

    def mark_boot(self) -> None:
        self.boot_wall = self.clock.wall()

    # ------------------------------------------------------------------ events
    def emit(self, name: str, category: str, headers: Headers) -> None:
        full: Headers = [("Event", name), ("Privilege", f"{category},all"), *headers]
        self._emit_cb(Event(name, category, tuple(full), format_message(full)))

    @staticmethod
    def chan_headers(ch: Channel, prefix: str = "") -> Headers:
        return [
            (f"{prefix}Channel", ch.name),
            (f"{prefix}ChannelState", str(ch.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(ch.state, "Unknown")),
            (f"{prefix}CallerIDNum", ch.cid_num),
            (f"{prefix}CallerIDName", ch.cid_name),
            (f"{prefix}ConnectedLineNum", ch.conn_num),
            (f"{prefix}ConnectedLineName", ch.conn_name),
            (f"{prefix}Language", "en"),
            (f"{prefix}AccountCode", ""),
            (f"{prefix}Context", ch.context),
            (f"{prefix}Exten", ch.exten),
            (f"{prefix}Priority", str(ch.priority)),
            (f"{prefix}Uniqueid", ch.uniqueid),
            (f"{prefix}Linkedid", ch.linkedid),
        ]

    def ev_chan(self, name: str, category: str, ch: Channel, extra: Headers) -> None:
        self.emit(name, category, [*self.chan_headers(ch), *extra])

    def newexten(self, ch: Channel, priority: int, app: str, data: str) -> None:
        ch.priority = priority
        ch.app, ch.appdata = app, data
        self.ev_chan(
            "Newexten",
            "dialplan",
            ch,
            [("Extension", ch.exten), ("Application", app), ("AppData", data)],
        )

    def setvar(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value
        self.ev_chan("VarSet", "dialplan", ch, [("Variable", name), ("Value", value)])

    def set_global(self, name: str, value: str) -> None:
        self.global_vars[name] = value
        self.emit(
            "VarSet",
            "dialplan",
            [("Channel", "none"), ("Uniqueid", "none"), ("Variable", name), ("Value", value)],
        )

    @staticmethod
    def var(ch: Channel, name: str) -> str:
        return ch.variables.get(name, "")

    def newstate(self, ch: Channel, state: int) -> None:
        ch.state = state
        self.ev_chan("Newstate", "call", ch, [])

    def device(self, device: str, state: str) -> None:
        self.emit("DeviceStateChange", "call", [("Device", device), ("State", state)])

    def dial_event(self, name: str, dest: Channel, extra: Headers) -> None:
        self.emit(name, "call", [*self.chan_headers(dest, "Dest"), *extra])

    # ------------------------------------------------------------------ ids and names
    def uid(self) -> str:
        uid = f"{int(self.clock.wall())}.{self._uid_seq}"
        self._uid_seq += 1
        return uid

    def bridge_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def next_local_seq(self) -> int:
        """The next ``Local/…-XXXXXXXX`` (and ``CBAnn/…``) number."""
        seq = self._local_seq
        self._local_seq += 1
        return seq

    def next_pjsip_seq(self) -> int:
        seq = self._pjsip_seq
        self._pjsip_seq += 1
        return seq

    def new_channel(self, name: str, uniqueid: str, linkedid: str, ctx: str, exten: str) -> Channel:
        ch = Channel(name, uniqueid, linkedid, ctx, exten, created=self.clock.now())
        self.channels[name] = ch
        self.by_uniqueid[uniqueid] = ch
        return ch

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def forget(self, ch: Channel) -> None:
        self.channels.pop(ch.name, None)
        self.by_uniqueid.pop(ch.uniqueid, None)


def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        try:
            current = asyncio.current_task()
        except RuntimeError:
            current = None
        if task is not current:
            task.cancel()


def cancel_far(call: Call | None) -> None:
    """Stop the far end's script of ``call`` (unless it is the running task)."""
    if call is not None:
        _cancel(call.far_task)


def cancel_task(ch: Channel) -> None:
    """Stop ``ch``'s dialplan task (unless it is the running task)."""
    _cancel(ch.task)
