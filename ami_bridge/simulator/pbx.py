"""The simulated PBX: channels, originates, the shipped dialplan, ConfBridge rooms.

Every event sequence here is modelled on a recording in ``ami-transcripts/`` (file numbers are
cited next to each sequence). The dialplan contexts mirror ``deploy/asterisk/extensions.conf``
line for line, so the ``Newexten`` events (Application/AppData/Priority) are those a real
Asterisk loaded with that file emits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import struct
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from ami_bridge import dialplan as dp
from ami_bridge.extensions import best_match
from ami_bridge.simulator.clock import SimClock
from ami_bridge.simulator.config import (
    LAB_PSTN_CONTEXT,
    AmdTruth,
    Customer,
    SimulatorConfig,
    Step,
    lab_pstn_customer,
)
from ami_bridge.simulator.wire import Headers, format_message

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    34: "Circuit/channel congestion",
}
DIALSTATUS_BY_CAUSE = {17: "BUSY", 34: "CONGESTION"}
SIP_CODE_BY_CAUSE = {1: "404", 17: "486", 19: "480", 21: "603", 34: "503"}

REASON_FAILED = 0
REASON_NO_ANSWER = 3
REASON_ANSWERED = 4
REASON_BUSY = 5
REASON_CONGESTION = 8

UNKNOWN = "<unknown>"
LEGACY_CONTEXT = "dialer"  # the transcripts' lab context (hold, amd-only, conf), kept for parity

#: The simulator's dialplan: context -> {extension name as written in extensions.conf: the
#: method that runs it}. Names are matched by Asterisk's rules (:func:`best_match`), and
#: tests/ami/test_extensions.py checks them against deploy/asterisk/extensions.conf.
DIALPLAN: dict[str, dict[str, str]] = {
    dp.CTX_AGENT: {"_X.": "_dp_agent"},
    dp.CTX_OUTBOUND: {dp.EXTEN_START: "_dp_outbound", dp.EXTEN_LEAVE_MESSAGE: "_dp_leave_message"},
    dp.CTX_HOLD: {dp.EXTEN_START: "_dp_hold", dp.EXTEN_SAFE_HARBOR: "_dp_safe_harbor"},
    dp.CTX_AGENT_ROOM: {"_X.": "_dp_agent_room"},
    dp.CTX_PREVIEW: {"_X.": "_dp_preview"},
    dp.CTX_ONHOLD: {"_X.": "_dp_onhold"},
    dp.CTX_RECORD: {dp.EXTEN_START: "_dp_record"},
    dp.CTX_SPY: {mode: "_dp_spy" for mode in dp.SPY_MODES},
    # Calls from agent phones: agents do not dial out (extensions.conf: Hangup(21)).
    dp.CTX_AGENT_PHONES: {"_X.": "_dp_refuse", dp.EXTEN_START: "_dp_refuse"},
    # The transcripts' lab context (ami-transcripts/README.md). "": the extension exists but
    # the simulator does not run it (the channel's dialplan simply ends).
    LEGACY_CONTEXT: {
        "hold": "_dp_legacy",
        "amd-only": "_dp_legacy",
        "conf": "_dp_legacy",
        "queue": "",
        "queue-support": "",
        "direct": "",
        "agent-1001": "",
        "agent-1002": "",
        "agent-1003": "",
    },
}


@dataclass(frozen=True, slots=True)
class Event:
    """One emitted AMI event: its name, read-permission class and encoded bytes."""

    name: str
    category: str
    headers: tuple[tuple[str, str], ...]
    data: bytes

    def get(self, key: str) -> str | None:
        for k, v in self.headers:
            if k == key:
                return v
        return None


@dataclass(eq=False)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    cid_num: str = UNKNOWN
    cid_name: str = UNKNOWN
    conn_num: str = UNKNOWN
    conn_name: str = UNKNOWN
    app: str = ""
    appdata: str = ""
    created: float = 0.0
    variables: dict[str, str] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    conference: Conference | None = None
    conf_profile: str = ""
    conf_result: asyncio.Future[str] | None = None
    call: Call | None = None
    agent: str | None = None  # PJSIP endpoint name for agent channels
    hungup: bool = False
    device: str = ""
    playing: bool = False  # a Playback is running (interrupted -> PLAYBACKSTATUS, file 11)
    in_amd: bool = False  # AMD() is listening (a far hang-up -> AMDSTATUS=HANGUP)
    #: a running MixMonitor: (file, simulated start time)
    mixmonitor: tuple[str, float] | None = None


@dataclass(eq=False)
class Conference:
    name: str
    bridge_id: str
    announcer: str
    members: list[Channel] = field(default_factory=list)
    muted: set[str] = field(default_factory=set)


@dataclass(eq=False)
class OriginateRequest:
    dial: str
    action_id: str | None = None
    context: str | None = None
    exten: str | None = None
    priority: int = 1
    application: str | None = None
    data: str = ""
    timeout: float = 30.0
    cid_name: str | None = None
    cid_num: str | None = None
    variables: list[tuple[str, str]] = field(default_factory=list)
    channel_id: str | None = None
    other_channel_id: str | None = None
    is_async: bool = True


@dataclass(eq=False)
class Call:
    """One Originate in flight."""

    req: OriginateRequest
    kind: Literal["local", "pjsip"]
    customer: Customer
    near: Channel
    far: Channel | None = None  # ;2 of a Local channel
    answered: bool = False
    done: bool = False
    timer: asyncio.TimerHandle | None = None
    result: asyncio.Future[bool] | None = None  # synchronous Originate
    far_task: asyncio.Task[None] | None = None  # the far end's script
    connected: asyncio.Event = field(default_factory=asyncio.Event)


def parse_callerid(value: str) -> tuple[str | None, str | None]:
    """``"Name" <num>`` / ``Name <num>`` / ``num`` -> (name, num)."""
    m = re.match(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$', value)
    if m:
        return (m.group(1) or None), (m.group(2) or None)
    v = value.strip()
    return None, (v or None)


def substitute(text: str, variables: dict[str, str]) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from channel variables (a tiny subset of Asterisk's)."""

    def repl(m: re.Match[str]) -> str:
        name, _, default = m.group(1).partition(":-")
        value = variables.get(name, "")
        return value if value else default

    return re.sub(r"\$\{([^}]+)\}", repl, text)


class Pbx:
    """The PBX model. ``emit`` receives every event; it never blocks."""

    def __init__(self, config: SimulatorConfig, clock: SimClock, emit: Callable[[Event], None]):
        self.config = config
        self.clock = clock
        self._emit_cb = emit
        self.agents = {a.ext: a for a in config.agents}
        self.channels: dict[str, Channel] = {}  # by name
        self.by_uniqueid: dict[str, Channel] = {}
        self.conferences: dict[str, Conference] = {}
        self.global_vars: dict[str, str] = {}
        self.calls: set[Call] = set()
        self._rng = random.Random(config.seed)
        self._number_seen: dict[str, int] = {}
        self.processed_calls = 0
        self.boot_wall = 0.0
        #: (channel name, digit) of every PlayDTMF sent (tests read what the customer got)
        self.dtmf_sent: list[tuple[str, str]] = []
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Fresh process state (after a restart or kill): counters restart at zero."""
        self._local_seq = 0
        self._pjsip_seq = 0
        self._uid_seq = 0
        self.processed_calls = 0

    def mark_boot(self) -> None:
        self.boot_wall = self.clock.wall()

    def drop_all(self) -> None:
        """kill -9: every channel vanishes, no events."""
        for ch in list(self.channels.values()):
            ch.hungup = True
            self._cancel_task(ch)
            self._cancel_far(ch.call)
        for call in self.calls:
            if call.timer is not None:
                call.timer.cancel()
            if call.result is not None and not call.result.done():
                call.result.set_result(False)
        self.channels.clear()
        self.by_uniqueid.clear()
        self.conferences.clear()
        self.calls.clear()

    def shutdown_hangup_all(self) -> None:
        """``core restart now``: soft-hangup every channel (Cause 4, file 24), then hang up.

        Hangup causes as on Asterisk 22.10.1: 16 for a channel in a bridge or ConfBridge, 0 for
        every other one (ringing, held in ``Wait()``, a Local ``;2`` leg running its app); a
        call still ringing gets ``OriginateResponse`` Failure, Reason 0."""
        for ch in list(self.channels.values()):
            if not ch.hungup:
                self._ev_chan("SoftHangupRequest", "call", ch, [("Cause", "4")])
        for ch in list(self.channels.values()):
            if ch.hungup:
                continue
            cause = 16 if ch.conference is not None else 0
            if ch.conference is not None:
                self._conf_leave(ch, "HANGUP")
            call = ch.call
            if call is not None and not call.done and not call.answered:
                self._finish_failed(call, REASON_FAILED)
            self._hangup_event(ch, cause)
        self.drop_all()

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

    def _ev_chan(self, name: str, category: str, ch: Channel, extra: Headers) -> None:
        self.emit(name, category, [*self.chan_headers(ch), *extra])

    def _newexten(self, ch: Channel, priority: int, app: str, data: str) -> None:
        ch.priority = priority
        ch.app, ch.appdata = app, data
        self._ev_chan(
            "Newexten",
            "dialplan",
            ch,
            [("Extension", ch.exten), ("Application", app), ("AppData", data)],
        )

    def setvar(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value
        self._ev_chan("VarSet", "dialplan", ch, [("Variable", name), ("Value", value)])

    def set_global(self, name: str, value: str) -> None:
        self.global_vars[name] = value
        self.emit(
            "VarSet",
            "dialplan",
            [("Channel", "none"), ("Uniqueid", "none"), ("Variable", name), ("Value", value)],
        )

    def _newstate(self, ch: Channel, state: int) -> None:
        ch.state = state
        self._ev_chan("Newstate", "call", ch, [])

    def _device(self, device: str, state: str) -> None:
        self.emit("DeviceStateChange", "call", [("Device", device), ("State", state)])

    def _dial_event(self, name: str, dest: Channel, extra: Headers) -> None:
        self.emit(name, "call", [*self.chan_headers(dest, "Dest"), *extra])

    def _hangup_event(self, ch: Channel, cause: int, tech: str | None = None) -> None:
        if ch.hungup:
            return
        self._cancel_task(ch)
        if ch.conference is not None:
            self._conf_leave(ch, "HANGUP")
        self._write_recording(ch)
        ch.hungup = True
        self._ev_chan(
            "Hangup",
            "call",
            ch,
            [
                ("Cause", str(cause)),
                ("Cause-txt", CAUSE_TXT.get(cause, "Unknown")),
                *([("TechCause", tech)] if tech is not None else []),
            ],
        )
        self.channels.pop(ch.name, None)
        self.by_uniqueid.pop(ch.uniqueid, None)
        call = ch.call
        if call is not None and (call.far is None or call.far is ch or call.far.hungup):
            self._cancel_far(call)
        if ch.conf_result is not None and not ch.conf_result.done():
            ch.conf_result.cancel()
        if ch.agent is not None:
            self._device(f"PJSIP/{ch.agent}", "NOT_INUSE")

    @staticmethod
    def _cancel_far(call: Call | None) -> None:
        if call is None:
            return
        task = call.far_task
        if task is not None and not task.done():
            try:
                current = asyncio.current_task()
            except RuntimeError:
                current = None
            if task is not current:
                task.cancel()

    @staticmethod
    def _cancel_task(ch: Channel) -> None:
        task = ch.task
        if task is not None and not task.done():
            try:
                current = asyncio.current_task()
            except RuntimeError:
                current = None
            if task is not current:
                task.cancel()

    # ------------------------------------------------------------------ ids and names
    def _uid(self) -> str:
        uid = f"{int(self.clock.wall())}.{self._uid_seq}"
        self._uid_seq += 1
        return uid

    def _bridge_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _new_channel(
        self, name: str, uniqueid: str, linkedid: str, ctx: str, exten: str
    ) -> Channel:
        ch = Channel(name, uniqueid, linkedid, ctx, exten, created=self.clock.now())
        self.channels[name] = ch
        self.by_uniqueid[uniqueid] = ch
        return ch

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    # ------------------------------------------------------------------ customers
    def customer_for(self, number: str) -> Customer:
        if number in self.config.nonexistent:
            return Customer(None, label="nonexistent")
        known = self.config.customers.get(number)
        if known is not None:
            return known
        if self.config.population is None:
            return Customer(None, label="nonexistent")
        n = self._number_seen.get(number, 0)
        self._number_seen[number] = n + 1
        rng = random.Random(f"{self.config.seed}|{number}|{n}")
        return self.config.population.sample(rng)

    @staticmethod
    def _agent_script(answer_delay: float, busy: bool) -> tuple[Step, ...]:
        end = Step("Hangup", "17") if busy else Step("Answer")
        return (Step("Ringing"), Step("Wait", "", answer_delay), end, Step("Wait", "", -2.0))

    # ------------------------------------------------------------------ originate
    def originate(self, req: OriginateRequest) -> Call | None:
        """Start an Originate. ``None``: it failed at once (no channel was ever created)."""
        self.processed_calls += 1
        dial = req.dial
        tech, _, rest = dial.partition("/")
        if tech.lower() == "local" and "@" in rest:
            exten, _, ctx = rest.partition("@")
            ctx = ctx.split("/")[0]
            if ctx == dp.CTX_CUSTOMERS:
                customer = self.customer_for(exten)
            elif ctx == LAB_PSTN_CONTEXT:
                customer = lab_pstn_customer(exten)
            else:
                customer = Customer(None, label="nonexistent context")
            return self._originate_local(req, exten, ctx, customer)
        if tech.upper() == "PJSIP" and rest:
            agent = self.agents.get(rest)
            if agent is not None:
                if not agent.registered:
                    return None  # file 07: no contact -> Failure, Reason 0, no events
                script = self._agent_script(agent.answer_delay, agent.busy)
                return self._originate_pjsip(
                    req,
                    endpoint=agent.ext,
                    dialstring=agent.ext,
                    customer=Customer(script, label="agent"),
                    agent=agent.ext,
                )
            number, trunk = self._parse_trunk(rest)
            if trunk is not None and number:
                customer = self.customer_for(number)
                if customer.steps is None:
                    customer = Customer((Step("Hangup", "1"),), label="nonexistent")
                return self._originate_pjsip(
                    req, endpoint=trunk, dialstring=rest, customer=customer, agent=None
                )
        return None  # unknown technology or endpoint (file 07: PJSIP/9999)

    def _parse_trunk(self, rest: str) -> tuple[str, str | None]:
        if "@" in rest and "/" not in rest:
            number, _, trunk = rest.partition("@")
            return number, trunk if trunk in self.config.trunks else None
        trunk, _, uri = rest.partition("/")
        if trunk in self.config.trunks and uri:
            m = re.match(r"(?:sips?:)?([^@;]+)", uri)
            return (m.group(1) if m else uri), trunk
        return "", None

    def _apply_callerid(self, call: Call, chans: list[Channel]) -> None:
        req = call.req
        if req.cid_num is None and req.cid_name is None:
            return
        num = req.cid_num or UNKNOWN
        name = req.cid_name or UNKNOWN
        for ch in chans:
            ch.cid_num, ch.cid_name = num, name
            self._ev_chan(
                "NewCallerid",
                "call",
                ch,
                [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")],
            )
            ch.conn_num, ch.conn_name = num, name
            self._ev_chan("NewConnectedLine", "call", ch, [])

    def _originate_local(
        self, req: OriginateRequest, exten: str, ctx: str, customer: Customer
    ) -> Call:
        seq = self._local_seq
        self._local_seq += 1
        base = f"Local/{exten}@{ctx}-{seq:08x}"
        uid1 = req.channel_id or self._uid()
        if req.other_channel_id:
            uid2 = req.other_channel_id
        elif req.channel_id:
            uid2 = f"{req.channel_id};2"
        else:
            uid2 = self._uid()
        near = self._new_channel(f"{base};1", uid1, uid1, ctx, exten)
        far = self._new_channel(f"{base};2", uid2, uid1, ctx, exten)
        far.state = 4
        call = Call(req, "local", customer, near, far)
        near.call = far.call = call
        self.calls.add(call)
        # file 03: Newchannel x2, AppDial2 on ;1, VarSet (;1 reversed, ;2 in order), CallerID.
        self._ev_chan("Newchannel", "call", near, [])
        self._ev_chan("Newchannel", "call", far, [])
        self._newexten(near, 1, "AppDial2", "(Outgoing Line)")
        for k, v in reversed(req.variables):
            self.setvar(near, k, v)
        if req.cid_num is not None or req.cid_name is not None:
            self._apply_callerid(call, [near])
        for k, v in req.variables:
            self.setvar(far, k, v)
        if req.cid_num is not None or req.cid_name is not None:
            self._apply_callerid(call, [far])
        if customer.steps is None:
            # file 07: no such extension/context -> both legs gone, Cause 0, Reason 0.
            self._hangup_event(far, 0)
            self._hangup_event(near, 0)
            self._device(f"Local/{exten}@{ctx}", "NOT_INUSE")
            self._finish_failed(call, REASON_FAILED)
            return call
        one, two = self.chan_headers(near, "LocalOne"), self.chan_headers(far, "LocalTwo")
        self.emit(
            "LocalBridge",
            "call",
            [*one, *two, ("Context", ctx), ("Exten", exten), ("LocalOptimization", "Yes")],
        )
        self._dial_event("DialBegin", near, [("DialString", f"{exten}@{ctx}")])
        call.far_task = asyncio.ensure_future(self._run_far(call))
        call.timer = self.clock.call_later(req.timeout, lambda: self._originate_timeout(call))
        return call

    def _originate_pjsip(
        self,
        req: OriginateRequest,
        endpoint: str,
        dialstring: str,
        customer: Customer,
        agent: str | None,
    ) -> Call:
        seq = self._pjsip_seq
        self._pjsip_seq += 1
        uid = req.channel_id or self._uid()
        ctx = (
            self.config.agent_endpoint_context
            if agent is not None
            else self.config.trunk_endpoint_context
        )
        ch = self._new_channel(f"PJSIP/{endpoint}-{seq:08x}", uid, uid, ctx, "s")
        ch.agent = agent
        if agent is not None:
            a = self.agents[agent]
            ch.cid_num, ch.cid_name = a.ext, a.name
        call = Call(req, "pjsip", customer, ch)
        ch.call = call
        self.calls.add(call)
        # file 19: Newchannel, AppDial2, VarSet (reversed), CallerID, DialBegin.
        self._ev_chan("Newchannel", "call", ch, [])
        self._newexten(ch, 1, "AppDial2", "(Outgoing Line)")
        for k, v in reversed(req.variables):
            self.setvar(ch, k, v)
        self._apply_callerid(call, [ch])
        self._dial_event("DialBegin", ch, [("DialString", dialstring)])
        call.far_task = asyncio.ensure_future(self._run_far(call))
        call.timer = self.clock.call_later(req.timeout, lambda: self._originate_timeout(call))
        return call

    def _originate_response(self, call: Call, success: bool, reason: int) -> None:
        req = call.req
        if call.result is not None and not call.result.done():
            call.result.set_result(success)
        if not req.is_async:
            return  # file 10: a synchronous Originate gets no OriginateResponse event
        headers: Headers = []
        if req.action_id is not None:
            headers.append(("ActionID", req.action_id))
        headers.append(("Response", "Success" if success else "Failure"))
        headers.append(("Channel", call.near.name if success else req.dial))
        if req.application is not None:
            headers += [("Application", req.application), ("Data", req.data)]
        else:
            headers += [("Context", req.context or ""), ("Exten", req.exten or "")]
        headers.append(("Reason", str(reason)))
        uid = call.near.uniqueid if success else (req.channel_id or UNKNOWN)
        headers += [
            ("Uniqueid", uid),
            ("CallerIDNum", req.cid_num or UNKNOWN),
            ("CallerIDName", req.cid_name or UNKNOWN),
        ]
        self.emit("OriginateResponse", "call", headers)

    def _finish_failed(self, call: Call, reason: int) -> None:
        if call.done:
            return
        call.done = True
        if call.timer is not None:
            call.timer.cancel()
        self._originate_response(call, False, reason)
        self.calls.discard(call)

    def fail_without_channel(self, req: OriginateRequest) -> None:
        """OriginateResponse for an Originate that never created a channel (file 07)."""
        near = Channel(req.dial, UNKNOWN, UNKNOWN, "", "")
        call = Call(req, "pjsip", Customer(None), near)
        self._originate_response(call, False, REASON_FAILED)

    def _originate_timeout(self, call: Call) -> None:
        """Originate ``Timeout`` expired while ringing (file 06): Reason 3, Cause 19, no DialEnd."""
        if call.done or call.answered:
            return
        call.done = True
        self.calls.discard(call)
        near, far = call.near, call.far
        self._cancel_far(call)
        if far is not None:
            self._ev_chan("HangupRequest", "call", far, [("Cause", "19")])
            self._originate_response(call, False, REASON_NO_ANSWER)
            self._hangup_event(near, 19)
            self._ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
            self._hangup_event(far, 19)
            dev = near.name.rsplit("-", 1)[0]
            self._device(dev, "NOT_INUSE")
            self._device(dev, "NOT_INUSE")
        else:
            self._originate_response(call, False, REASON_NO_ANSWER)
            self._hangup_event(near, 19)

    # ------------------------------------------------------------------ far end
    async def _run_far(self, call: Call) -> None:
        steps = call.customer.steps or ()
        far = call.far
        try:
            for prio, step in enumerate(steps, 1):
                if call.near.hungup and (far is None or far.hungup):
                    return
                vars_ = (far or call.near).variables
                data = substitute(step.data, vars_)
                if far is not None:
                    app = "Wait" if step.app == "Converse" else step.app
                    shown = str(int(step.patience)) if step.app == "Converse" else data
                    self._newexten(far, prio, app, shown)
                if step.app == "NoOp":
                    continue
                if step.app == "Ringing":
                    self._far_ringing(call)
                elif step.app == "Answer":
                    self._far_answer(call)
                    await self.clock.sleep(0.02)  # the answered ;1 leg's dialplan runs first
                elif step.app == "Wait":
                    secs = step.seconds
                    if secs == -1.0:
                        try:
                            secs = float(data)
                        except ValueError:
                            secs = 0.0
                    if secs == -2.0:
                        await asyncio.Event().wait()
                    await self.clock.sleep(secs)
                elif step.app == "Playback":
                    if far is not None:
                        far.playing = True
                    await self.clock.sleep(step.seconds)
                    if far is not None:
                        far.playing = False
                        self.setvar(far, "PLAYBACKSTATUS", "SUCCESS")
                elif step.app == "Converse":
                    await self._converse(call, step)
                elif step.app in ("Busy", "Congestion"):
                    self._far_busy(call, step.app == "Busy")
                    return
                elif step.app == "Hangup":
                    cause = int(data) if data.isdigit() else 16
                    self.far_hangup(call, cause)
                    return
            if not call.near.hungup:
                self.far_hangup(call, 16)
        except asyncio.CancelledError:
            pass

    async def _converse(self, call: Call, step: Step) -> None:
        """A human: waits up to ``patience`` for an agent, then talks ``seconds`` and hangs up."""
        try:
            await asyncio.wait_for(call.connected.wait(), step.patience / self.clock.speed)
        except TimeoutError:
            return
        await self.clock.sleep(step.seconds)

    def _far_ringing(self, call: Call) -> None:
        near = call.near
        if call.kind == "local":
            self._newstate(near, 5)  # file 06: ;1 goes Ringing, ;2 stays Ring
            self._dial_event("DialState", near, [("DialStatus", "RINGING")])
        else:
            self._newstate(near, 5)  # file 19
            if near.agent is not None:
                self._device(f"PJSIP/{near.agent}", "RINGING")
            self._dial_event("DialState", near, [("DialStatus", "RINGING")])

    def _far_answer(self, call: Call) -> None:
        if call.done or call.answered:
            return
        call.answered = True
        call.done = True
        self.calls.discard(call)
        if call.timer is not None:
            call.timer.cancel()
        near, far = call.near, call.far
        if far is not None:
            self._newstate(far, 6)
        self._newstate(near, 6)
        if near.agent is not None:
            self._device(f"PJSIP/{near.agent}", "INUSE")
        self._dial_event("DialEnd", near, [("DialStatus", "ANSWER")])
        self._originate_response(call, True, REASON_ANSWERED)
        if far is not None:
            dev = near.name.rsplit("-", 1)[0]
            self._device(dev, "INUSE")
            self._device(dev, "INUSE")
        req = call.req
        if req.application is not None:
            near.task = asyncio.ensure_future(
                self._run_application(near, req.application, req.data)
            )
        else:
            self.goto(near, req.context or "", req.exten or "", req.priority)

    def _far_busy(self, call: Call, busy: bool) -> None:
        """Busy()/Congestion() before answer (files 04, 05): Reason 5/8; ;1 Cause 0."""
        near, far = call.near, call.far
        status, reason, cause = ("BUSY", 5, 17) if busy else ("CONGESTION", 8, 34)
        if far is None:  # a trunk: the carrier's 486/503 ends the channel (file 29): Reason 0
            self.far_reject(call, cause)
            return
        if call.timer is not None:
            call.timer.cancel()
        self._newstate(far, 7)
        self._dial_event("DialEnd", near, [("DialStatus", status)])
        self._ev_chan("HangupRequest", "call", far, [("Cause", "0")])
        self._finish_failed(call, reason)
        self._hangup_event(near, 0)
        self._ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
        self._hangup_event(far, cause)
        dev = near.name.rsplit("-", 1)[0]
        for _ in range(3):
            self._device(dev, "NOT_INUSE")

    def far_reject(self, call: Call, cause: int) -> None:
        """The far end hangs up before answering (file 09 for Local, file 29 for PJSIP)."""
        near, far = call.near, call.far
        status = DIALSTATUS_BY_CAUSE.get(cause, "NOANSWER")
        if far is not None:
            self._ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
            self._ev_chan("HangupRequest", "call", near, [("Cause", str(cause))])
            self._dial_event("DialEnd", near, [("DialStatus", status)])
            self._finish_failed(call, REASON_FAILED)
            self._hangup_event(near, cause)
            self._hangup_event(far, cause)
            dev = near.name.rsplit("-", 1)[0]
            self._device(dev, "NOT_INUSE")
            self._device(dev, "NOT_INUSE")
        else:  # a SIP final response: the TechCause header carries its code (file 29)
            tech = SIP_CODE_BY_CAUSE.get(cause, "480")
            self._ev_chan(
                "HangupRequest", "call", near, [("Cause", str(cause)), ("TechCause", tech)]
            )
            self._dial_event("DialEnd", near, [("DialStatus", status)])
            self._hangup_event(near, cause, tech)
            self._finish_failed(call, REASON_FAILED)

    def far_hangup(self, call: Call, cause: int = 16) -> None:
        """The customer (or the agent's phone) hangs up."""
        near, far = call.near, call.far
        if near.hungup and (far is None or far.hungup):
            return
        if not call.answered:
            self.far_reject(call, cause)
            return
        c = str(cause)
        if far is None:
            self._ev_chan("HangupRequest", "call", near, [("Cause", c)])
            if near.conference is not None:
                self._conf_leave(near, "HANGUP")
            self._amd_hangup(near)
            self._hangup_event(near, cause)
            return
        # files 03/26: ;2 soft-hangs-up, ;1 is asked to hang up.
        self._cancel_task(near)
        self._ev_chan("SoftHangupRequest", "call", far, [("Cause", c)])
        self._ev_chan("HangupRequest", "call", near, [("Cause", c)])
        if near.conference is not None:
            self._hangup_event(far, cause)
            self._conf_leave(near, "HANGUP")
            self._ev_chan("SoftHangupRequest", "call", near, [("Cause", c)])
            self._hangup_event(near, cause)
        elif near.in_amd:
            # real 22.10.1 (issue 14 lab): ;2 goes first, then AMD() reports HANGUP on ;1
            self._hangup_event(far, cause)
            self._amd_hangup(near)
            self._ev_chan("SoftHangupRequest", "call", near, [("Cause", c)])
            self._hangup_event(near, cause)
        else:
            self._cancel_task(near)
            self._ev_chan("SoftHangupRequest", "call", near, [("Cause", c)])
            self._hangup_event(near, cause)
            self._hangup_event(far, cause)
        dev = near.name.rsplit("-", 1)[0]
        self._device(dev, "NOT_INUSE")
        self._device(dev, "NOT_INUSE")

    # ------------------------------------------------------------------ hangup / redirect
    def hangup_action(self, ch: Channel, cause: int) -> None:
        """``Action: Hangup`` on ``ch`` (files 22 and 29)."""
        call = ch.call
        c = str(cause)
        if call is not None and not call.answered and not call.done:
            near, far = call.near, call.far
            self._cancel_far(call)
            if far is None:
                self._ev_chan("SoftHangupRequest", "call", near, [("Cause", c)])
                self._dial_event("DialEnd", near, [("DialStatus", "NOANSWER")])
                self._hangup_event(near, cause)
                self._finish_failed(call, REASON_FAILED)
            elif ch is near:  # file 29 (1)
                self._dial_event("DialEnd", near, [("DialStatus", "NOANSWER")])
                self._ev_chan("HangupRequest", "call", far, [("Cause", c)])
                self._finish_failed(call, REASON_FAILED)
                self._ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
                self._hangup_event(far, cause)
                self._hangup_event(near, cause)
            else:  # file 29 (2)
                self._ev_chan("SoftHangupRequest", "call", far, [("Cause", c)])
                self._ev_chan("HangupRequest", "call", near, [("Cause", c)])
                self._dial_event("DialEnd", near, [("DialStatus", "NOANSWER")])
                self._hangup_event(far, cause)
                self._finish_failed(call, REASON_FAILED)
                self._hangup_event(near, cause)
            return
        if call is not None and call.far is ch:
            self._cancel_far(call)
            self.far_hangup(call, cause)
            return
        # file 22: the dialer hangs up the ;1 leg (or a PJSIP channel) of an answered call.
        self._cancel_task(ch)
        self._ev_chan("SoftHangupRequest", "call", ch, [("Cause", c)])
        if ch.conference is not None:
            self._conf_leave(ch, "HANGUP")
        far = call.far if call is not None else None
        if far is not None and not far.hungup:
            self._cancel_far(call)
            self._ev_chan("HangupRequest", "call", far, [("Cause", c)])
            self._interrupt_playback(far)
            self._hangup_event(ch, cause)
            self._ev_chan("SoftHangupRequest", "call", far, [("Cause", c)])
            self._hangup_event(far, cause)
        else:
            self._hangup_event(ch, cause)

    def _dialplan_hangup(self, ch: Channel, cause: int) -> None:
        """``Hangup()`` run by ``ch``'s own dialplan (file 11)."""
        c = str(cause)
        self._ev_chan("SoftHangupRequest", "call", ch, [("Cause", c)])
        far = ch.call.far if ch.call is not None else None
        if far is not None and not far.hungup and far is not ch:
            self._cancel_far(ch.call)
            self._ev_chan("HangupRequest", "call", far, [("Cause", c)])
            self._interrupt_playback(far)
            self._ev_chan("SoftHangupRequest", "call", far, [("Cause", c)])
            self._hangup_event(far, cause)
        self._hangup_event(ch, cause)

    def _interrupt_playback(self, ch: Channel) -> None:
        if ch.playing:
            ch.playing = False
            self.setvar(ch, "PLAYBACKSTATUS", "SUCCESS")

    def _dialplan_end(self, ch: Channel) -> None:
        """The dialplan (or an originated Application) ran out (file 10): Cause 0."""
        far = ch.call.far if ch.call is not None else None
        if far is not None and not far.hungup and far is not ch:
            self._cancel_far(ch.call)
            self._ev_chan("HangupRequest", "call", far, [("Cause", "0")])
            self._hangup_event(ch, 0)
            self._ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
            self._hangup_event(far, 0)
        else:
            self._hangup_event(ch, 0)

    def goto(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        """Start ``ch``'s dialplan at a new location (after answer, or for a Redirect)."""
        self._cancel_task(ch)
        ch.context, ch.exten, ch.priority = context, exten, priority
        ch.task = asyncio.ensure_future(self._exec(ch))

    def redirect(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        if ch.conference is not None:
            self._conf_leave(ch, "")
        self.goto(ch, context, exten, priority)

    # ------------------------------------------------------------------ dialplan
    def extension_exists(self, context: str, exten: str) -> bool:
        """Would Asterisk find ``exten`` in ``context`` (Originate answers "Extension does not
        exist." otherwise)? Matched by Asterisk's rules (:mod:`ami_bridge.extensions`)."""
        return best_match(DIALPLAN.get(context, {}), exten) is not None

    def _handler(
        self, context: str, exten: str
    ) -> Callable[[Channel], Coroutine[Any, Any, tuple[str, str] | None]] | None:
        table = DIALPLAN.get(context)
        if table is None:
            return None
        name = best_match(table, exten)
        if name is None or not table[name]:
            return None
        handler: Callable[[Channel], Coroutine[Any, Any, tuple[str, str] | None]]
        handler = getattr(self, table[name])
        return handler

    async def _exec(self, ch: Channel) -> None:
        try:
            hops = 0
            while not ch.hungup and hops < 50:
                hops += 1
                handler = self._handler(ch.context, ch.exten)
                if handler is None:
                    self._dialplan_end(ch)
                    return
                nxt = await handler(ch)
                if nxt is None or ch.hungup:
                    return
                ch.context, ch.exten, ch.priority = nxt[0], nxt[1], 1
            if not ch.hungup:
                self._dialplan_end(ch)
        except asyncio.CancelledError:
            pass

    def _var(self, ch: Channel, name: str) -> str:
        return ch.variables.get(name, "")

    async def _app_amd(self, ch: Channel, priority: int) -> None:
        self._newexten(ch, priority, "AMD", "")
        truth: AmdTruth = (
            ch.call.customer.amd if ch.call is not None else AmdTruth("NOTSURE", "", 0)
        )
        ch.in_amd = True
        try:
            await self.clock.sleep(truth.seconds)
        finally:
            ch.in_amd = False
        self.setvar(ch, dp.VAR_AMDSTATUS, truth.status)
        self.setvar(ch, dp.VAR_AMDCAUSE, truth.cause)

    def _amd_hangup(self, ch: Channel) -> None:
        """The far end hung up while ``AMD()`` listened: it sets ``AMDSTATUS=HANGUP`` and an
        empty ``AMDCAUSE`` before the leg hangs up (observed on 22.10.1, issue 14 lab)."""
        if not ch.in_amd:
            return
        ch.in_amd = False
        self._cancel_task(ch)
        self.setvar(ch, dp.VAR_AMDSTATUS, "HANGUP")
        self.setvar(ch, dp.VAR_AMDCAUSE, "")

    async def _dp_outbound(self, ch: Channel) -> tuple[str, str] | None:
        attempt = self._var(ch, dp.VAR_ATTEMPT)
        self._newexten(ch, 1, "NoOp", f"MARCADOR answered attempt={attempt}")
        amd = self._var(ch, dp.VAR_AMD)
        no_amd = amd in ("", dp.AMD_OFF)
        self._newexten(ch, 2, "GotoIf", f"{int(no_amd)}?{dp.CTX_HOLD},{dp.EXTEN_START},1")
        if no_amd:
            return dp.CTX_HOLD, dp.EXTEN_START
        await self._app_amd(ch, 3)
        human = self._var(ch, dp.VAR_AMDSTATUS) != "MACHINE"
        self._newexten(ch, 4, "GotoIf", f"{int(human)}?{dp.CTX_HOLD},{dp.EXTEN_START},1")
        if human:
            return dp.CTX_HOLD, dp.EXTEN_START
        leave = amd == dp.AMD_MESSAGE
        self._newexten(ch, 5, "GotoIf", f"{int(leave)}?{dp.EXTEN_LEAVE_MESSAGE},1")
        if leave:
            return dp.CTX_OUTBOUND, dp.EXTEN_LEAVE_MESSAGE
        self._newexten(ch, 6, "Hangup", "16")
        self._dialplan_hangup(ch, 16)
        return None

    async def _dp_leave_message(self, ch: Channel) -> tuple[str, str] | None:
        self._newexten(ch, 1, "WaitForSilence", "1500,1,15")
        await self.clock.sleep(1.5)
        self.setvar(ch, "WAITSTATUS", "SILENCE")
        msg = self._var(ch, dp.VAR_MACHINE_MESSAGE) or dp.DEFAULT_MACHINE_MESSAGE
        self._newexten(ch, 2, "Playback", msg)
        await self.clock.sleep(self.config.machine_message_seconds)
        self.setvar(ch, "PLAYBACKSTATUS", "SUCCESS")
        self._newexten(ch, 3, "Hangup", "16")
        self._dialplan_hangup(ch, 16)
        return None

    async def _dp_hold(self, ch: Channel) -> tuple[str, str] | None:
        attempt = self._var(ch, dp.VAR_ATTEMPT)
        self._newexten(ch, 1, "NoOp", f"MARCADOR hold attempt={attempt}")
        raw = self._var(ch, dp.VAR_CONNECT_TIMEOUT)
        try:
            timeout = float(raw) if raw else dp.DEFAULT_CONNECT_TIMEOUT
        except ValueError:
            timeout = dp.DEFAULT_CONNECT_TIMEOUT
        shown = raw if raw else f"{dp.DEFAULT_CONNECT_TIMEOUT:g}"
        self._newexten(ch, 2, "Wait", shown)
        await self.clock.sleep(timeout)
        self._newexten(ch, 3, "Goto", f"{dp.EXTEN_SAFE_HARBOR},1")
        return dp.CTX_HOLD, dp.EXTEN_SAFE_HARBOR

    async def _dp_safe_harbor(self, ch: Channel) -> tuple[str, str] | None:
        self._newexten(ch, 1, "Set", f"{dp.VAR_ABANDONED}=1")
        self.setvar(ch, dp.VAR_ABANDONED, "1")
        sound = self._var(ch, dp.VAR_SAFE_HARBOR) or dp.DEFAULT_SAFE_HARBOR
        self._newexten(ch, 2, "Playback", sound)
        await self.clock.sleep(self.config.safe_harbor_seconds)
        self.setvar(ch, "PLAYBACKSTATUS", "SUCCESS")
        self._newexten(ch, 3, "Hangup", "16")
        self._dialplan_hangup(ch, 16)
        return None

    async def _dp_refuse(self, ch: Channel) -> tuple[str, str] | None:
        self._newexten(ch, 1, "Hangup", "21")
        self._dialplan_hangup(ch, 21)
        return None

    async def _confbridge(self, ch: Channel, priority: int, room: str, profile: str) -> str:
        data = f"{room},{dp.BRIDGE_PROFILE},{profile}" if profile else room
        self._newexten(ch, priority, "ConfBridge", data)
        self._conf_join(ch, room, profile)
        loop = asyncio.get_running_loop()
        ch.conf_result = loop.create_future()
        return await ch.conf_result

    async def _dp_agent(self, ch: Channel) -> tuple[str, str] | None:
        ext = ch.exten
        self._newexten(ch, 1, "NoOp", f"MARCADOR agent {ext} logged in")
        await self._confbridge(ch, 2, dp.agent_room(ext), dp.USER_PROFILE_AGENT)
        self._newexten(ch, 3, "Hangup", "16")
        self._dialplan_hangup(ch, 16)
        return None

    async def _dp_agent_room(self, ch: Channel) -> tuple[str, str] | None:
        ext = ch.exten
        room = dp.agent_room(ext)
        attempt = self._var(ch, dp.VAR_ATTEMPT)
        self._newexten(ch, 1, "NoOp", f"MARCADOR connect attempt={attempt} agent={ext}")
        # a Redirect that lost the race with the hold timeout: back to the safe harbor
        abandoned = self._var(ch, dp.VAR_ABANDONED) == "1"
        self._newexten(ch, 2, "GotoIf", f"{int(abandoned)}?{dp.CTX_HOLD},{dp.EXTEN_SAFE_HARBOR},1")
        if abandoned:
            return dp.CTX_HOLD, dp.EXTEN_SAFE_HARBOR
        conf = self.conferences.get(room)
        empty = conf is None or not conf.members
        self._newexten(ch, 3, "GotoIf", f"{int(empty)}?{dp.CTX_HOLD},{dp.EXTEN_SAFE_HARBOR},1")
        if empty:
            return dp.CTX_HOLD, dp.EXTEN_SAFE_HARBOR
        await self._gosub_record(ch, 4)
        if ch.hungup:
            return None
        await self._confbridge(ch, 5, room, dp.USER_PROFILE_CUSTOMER)
        self._newexten(ch, 6, "Hangup", "16")
        self._dialplan_hangup(ch, 16)
        return None

    async def _dp_preview(self, ch: Channel) -> tuple[str, str] | None:
        ext = ch.exten
        attempt = self._var(ch, dp.VAR_ATTEMPT)
        self._newexten(ch, 1, "NoOp", f"MARCADOR preview attempt={attempt} agent={ext}")
        await self._gosub_record(ch, 2)
        if ch.hungup:
            return None
        await self._confbridge(ch, 3, dp.agent_room(ext), dp.USER_PROFILE_CUSTOMER)
        self._newexten(ch, 4, "Hangup", "16")
        self._dialplan_hangup(ch, 16)
        return None

    async def _dp_onhold(self, ch: Channel) -> tuple[str, str] | None:
        """Agent's hold: music on hold (silence without MOH files) until a Redirect back, or
        ``MARCADOR_HOLD_MAX`` seconds, then back into the agent's room."""
        ext = ch.exten
        attempt = self._var(ch, dp.VAR_ATTEMPT)
        self._newexten(ch, 1, "NoOp", f"MARCADOR on hold attempt={attempt} agent={ext}")
        self._newexten(ch, 2, "ExecIf", "1?StartMusicOnHold()")  # IFMODULE(res_musiconhold.so)
        raw = self._var(ch, dp.VAR_HOLD_MAX)
        try:
            seconds = float(raw) if raw else float(dp.DEFAULT_HOLD_MAX)
        except ValueError:
            seconds = float(dp.DEFAULT_HOLD_MAX)
        self._newexten(ch, 3, "Wait", raw or str(dp.DEFAULT_HOLD_MAX))
        await self.clock.sleep(seconds)
        self._newexten(ch, 4, "ExecIf", "1?StopMusicOnHold()")
        self._newexten(ch, 5, "Goto", f"{dp.CTX_AGENT_ROOM},{ext},1")
        return dp.CTX_AGENT_ROOM, ext

    # ------------------------------------------------------------------ recording (file 22)
    async def _gosub_record(self, ch: Channel, priority: int) -> None:
        """``Gosub(marcador-record,s,1)`` from the connect path, then back to the caller."""
        self._newexten(ch, priority, "Gosub", f"{dp.CTX_RECORD},{dp.EXTEN_START},1")
        back = ch.context, ch.exten
        ch.context, ch.exten = dp.CTX_RECORD, dp.EXTEN_START
        try:
            await self._record_steps(ch)
        finally:
            ch.context, ch.exten = back
        ch.priority = priority

    async def _record_steps(self, ch: Channel) -> None:
        record = (
            self._var(ch, dp.VAR_RECORD) == "1"
            and self._var(ch, dp.VAR_RECORD_FILE) != ""
            and not self._var(ch, dp.VAR_MIXMONITOR_FILENAME)  # once per call (back from hold)
        )
        self._newexten(ch, 1, "GotoIf", f"{int(not record)}?done")
        if record:
            path = self._var(ch, dp.VAR_RECORD_FILE)
            self._newexten(ch, 2, "MixMonitor", f"{path},{dp.MIXMONITOR_OPTIONS}")
            self.start_mixmonitor(ch, path)
            prompt = self._var(ch, dp.VAR_CONSENT_PROMPT)
            self._newexten(ch, 3, "GotoIf", f"{int(not prompt)}?done")
            if prompt:
                self._newexten(ch, 4, "Playback", prompt)
                ch.playing = True
                try:
                    await self.clock.sleep(self.config.consent_prompt_seconds)
                finally:
                    ch.playing = False
                if ch.hungup:
                    return
                self.setvar(ch, "PLAYBACKSTATUS", "SUCCESS")
        self._newexten(ch, 5, "Return", "")

    async def _dp_record(self, ch: Channel) -> tuple[str, str] | None:
        """Reached without a Gosub (an Originate into it): runs, and ``Return`` ends it."""
        await self._record_steps(ch)
        self._dialplan_end(ch)
        return None

    def start_mixmonitor(self, ch: Channel, path: str) -> None:
        """MixMonitor (application or AMI action): VarSet MIXMONITOR_FILENAME, MixMonitorStart
        (file 22). A file that cannot be written fails later, silently, as on Asterisk."""
        if ch.mixmonitor is not None:
            self._write_recording(ch)
        ch.mixmonitor = (path, self.clock.now())
        self.setvar(ch, dp.VAR_MIXMONITOR_FILENAME, path)
        self._ev_chan("MixMonitorStart", "call", ch, [])

    def stop_mixmonitor(self, ch: Channel) -> bool:
        """StopMixMonitor: the file keeps what came before; MixMonitorStop (file 22)."""
        if ch.mixmonitor is None:
            return False
        self._write_recording(ch)
        self._ev_chan("MixMonitorStop", "call", ch, [])
        return True

    def _write_recording(self, ch: Channel) -> None:
        """A placeholder for what Asterisk writes with option D: signed-linear 8 kHz, two
        interleaved channels (a quiet tone on each side), as long as the recording ran (cut at
        ``recording_max_seconds``)."""
        if ch.mixmonitor is None:
            return
        path, started = ch.mixmonitor
        ch.mixmonitor = None
        seconds = min(max(0.0, self.clock.now() - started), self.config.recording_max_seconds)
        frames = int(seconds * 8000)
        left = [int(1000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(80)]
        right = [int(1000 * math.sin(2 * math.pi * 660 * i / 8000)) for i in range(80)]
        period = b"".join(struct.pack("<hh", a, b) for a, b in zip(left, right, strict=True))
        whole, rest = divmod(frames, 80)
        with contextlib.suppress(OSError), open(path, "wb") as fh:  # Asterisk logs; call goes on
            fh.write(period * whole + period[: rest * 4])

    async def _dp_spy(self, ch: Channel) -> tuple[str, str] | None:
        mode = ch.exten
        raw = self._var(ch, dp.VAR_SPY_AGENT)
        agent = "".join(c for c in raw if c.isdigit())  # ${FILTER(0-9,...)}
        self._newexten(ch, 1, "NoOp", f"MARCADOR {mode} agent={raw}")
        self._newexten(ch, 2, "ChanSpy", f"PJSIP/{agent}-,{dp.SPY_OPTIONS[mode]}")
        spyee = next(
            (c for c in self.channels.values() if c.name.startswith(f"PJSIP/{agent}-")), None
        )
        if spyee is not None:
            self.emit(
                "ChanSpyStart",
                "call",
                [*self.chan_headers(ch, "Spyer"), *self.chan_headers(spyee, "Spyee")],
            )
            while not spyee.hungup and not ch.hungup:
                await self.clock.sleep(0.5)
            if not ch.hungup:
                self.emit("ChanSpyStop", "call", self.chan_headers(ch, "Spyer"))
        self._newexten(ch, 3, "Hangup", "16")
        self._dialplan_hangup(ch, 16)
        return None

    async def _dp_legacy(self, ch: Channel) -> tuple[str, str] | None:
        """The transcripts' ``dialer`` context (hold, amd-only, conf) for parity tests."""
        lead = self._var(ch, "LEAD_ID")
        if ch.exten == "hold":
            self._newexten(ch, 1, "NoOp", f"DIALER lead {lead} holding")
            self._newexten(ch, 2, "Wait", "300")
            await self.clock.sleep(300)
            self._dialplan_end(ch)
            return None
        if ch.exten == "amd-only":
            self._newexten(ch, 1, "NoOp", f"DIALER lead {lead} -> AMD only")
            await self._app_amd(ch, 2)
            status, cause = self._var(ch, dp.VAR_AMDSTATUS), self._var(ch, dp.VAR_AMDCAUSE)
            self._newexten(ch, 3, "NoOp", f"AMDSTATUS={status} AMDCAUSE={cause}")
            self._newexten(ch, 4, "Hangup", "")
            self._dialplan_hangup(ch, 16)
            return None
        self._newexten(ch, 1, "NoOp", f"DIALER lead {lead} -> ConfBridge")
        await self._confbridge(ch, 2, "dialer-conf", "")
        self._dialplan_end(ch)
        return None

    async def _run_application(self, ch: Channel, app: str, data: str) -> None:
        """Originate with ``Application``/``Data``: no Newexten (file 10)."""
        ch.app, ch.appdata = app, data
        try:
            low = app.lower()
            if low == "wait":
                with contextlib.suppress(ValueError):
                    await self.clock.sleep(float(data or 0))
            elif low == "confbridge":
                room = data.split(",")[0]
                self._conf_join(ch, room, "")
                ch.conf_result = asyncio.get_running_loop().create_future()
                await ch.conf_result
            elif low in ("echo", "musiconhold"):
                await asyncio.Event().wait()
            if not ch.hungup:
                self._dialplan_end(ch)
        except asyncio.CancelledError:
            pass

    # ------------------------------------------------------------------ ConfBridge (file 26)
    def _bridge_headers(self, conf: Conference, count: int) -> Headers:
        return [
            ("BridgeUniqueid", conf.bridge_id),
            ("BridgeType", "base"),
            ("BridgeTechnology", "softmix"),
            ("BridgeCreator", "ConfBridge"),
            ("BridgeName", conf.name),
            ("BridgeNumChannels", str(count)),
            ("BridgeVideoSourceMode", "none"),
        ]

    def _peers_value(self, conf: Conference, ch: Channel) -> str:
        return ",".join([conf.announcer, *(m.name for m in conf.members if m is not ch)])

    def _conf_join(self, ch: Channel, room: str, profile: str) -> None:
        conf = self.conferences.get(room)
        new = conf is None
        if conf is None:
            seq = self._local_seq
            self._local_seq += 1
            conf = Conference(room, self._bridge_id(), f"CBAnn/{room}-{seq:08x};2")
            self.conferences[room] = conf
            self.emit("BridgeCreate", "call", self._bridge_headers(conf, 0))
        conf.members.append(ch)
        ch.conference, ch.conf_profile = conf, profile
        count = len(conf.members) + 1  # + the CBAnn announcer channel
        self.emit(
            "BridgeEnter", "call", [*self._bridge_headers(conf, count), *self.chan_headers(ch)]
        )
        if new:
            self.emit(
                "ConfbridgeStart", "call", [("Conference", room), *self._bridge_headers(conf, 1)]
            )
        for other in conf.members:
            if other is not ch:
                self.setvar(other, "BRIDGEPEER", self._peers_value(conf, other))
        self.setvar(ch, "BRIDGEPEER", self._peers_value(conf, ch))
        admin = "Yes" if profile == dp.USER_PROFILE_SUPERVISOR else "No"
        self.emit(
            "ConfbridgeJoin",
            "call",
            [
                ("Conference", room),
                *self._bridge_headers(conf, count),
                *self.chan_headers(ch),
                ("Admin", admin),
                ("Muted", "Yes" if ch.name in conf.muted else "No"),
            ],
        )
        call = ch.call
        if call is not None and ch is call.near and ch.agent is None:
            call.connected.set()

    def _conf_leave(self, ch: Channel, result: str) -> None:
        conf = ch.conference
        if conf is None:
            return
        before = len(conf.members) + 1
        if result == "KICKED":
            self.setvar(ch, dp.VAR_CONFBRIDGE_RESULT, result)
            self.setvar(ch, "BRIDGEPEER", "")
        room = conf.name
        self.emit(
            "ConfbridgeLeave",
            "call",
            [
                ("Conference", room),
                *self._bridge_headers(conf, before),
                *self.chan_headers(ch),
                ("Admin", "Yes" if ch.conf_profile == dp.USER_PROFILE_SUPERVISOR else "No"),
            ],
        )
        if result != "KICKED":
            self.setvar(ch, "BRIDGEPEER", "")
        conf.members.remove(ch)
        ch.conference = None
        conf.muted.discard(ch.name)
        self.emit(
            "BridgeLeave", "call", [*self._bridge_headers(conf, before - 1), *self.chan_headers(ch)]
        )
        for other in conf.members:
            self.setvar(other, "BRIDGEPEER", self._peers_value(conf, other))
        if result and result != "KICKED":
            self.setvar(ch, dp.VAR_CONFBRIDGE_RESULT, result)
        if ch.conf_result is not None and not ch.conf_result.done():
            ch.conf_result.set_result(result)
        if not conf.members:
            self.emit(
                "ConfbridgeEnd", "call", [("Conference", room), *self._bridge_headers(conf, 1)]
            )
            self.emit("BridgeDestroy", "call", self._bridge_headers(conf, 0))
            self.conferences.pop(room, None)
            return
        if ch.conf_profile == dp.USER_PROFILE_AGENT:
            # end_marked=yes on customer profiles: the agent (marked) left, customers follow.
            for other in list(conf.members):
                if other.conf_profile == dp.USER_PROFILE_CUSTOMER:
                    self._conf_leave(other, "ENDMARKED")

    def conf_kick(self, room: str, channel: str) -> str | None:
        """ConfbridgeKick; returns an error message or ``None``."""
        conf = self.conferences.get(room)
        if conf is None:
            return "No Conference by that name found."
        targets = (
            list(conf.members)
            if channel.lower() == "all"
            else [m for m in conf.members if m.name == channel]
        )
        if not targets:
            return "No Channel by that name found in Conference."
        for m in targets:
            if m.conference is conf:
                self._conf_leave(m, "KICKED")
        return None

    def conf_mute(self, room: str, channel: str, mute: bool) -> str | None:
        conf = self.conferences.get(room)
        if conf is None:
            return "No Conference by that name found."
        targets = [m for m in conf.members if channel.lower() == "all" or m.name == channel]
        if not targets:
            return "No Channel by that name found in Conference."
        for m in targets:
            if mute:
                conf.muted.add(m.name)
            else:
                conf.muted.discard(m.name)
            self.emit(
                "ConfbridgeMute" if mute else "ConfbridgeUnmute",
                "call",
                [
                    ("Conference", room),
                    *self._bridge_headers(conf, len(conf.members) + 1),
                    *self.chan_headers(m),
                    ("Admin", "No"),
                ],
            )
        return None

    # ------------------------------------------------------------------ agents
    def set_agent(
        self,
        ext: str,
        *,
        registered: bool | None = None,
        busy: bool | None = None,
        answer_delay: float | None = None,
    ) -> None:
        agent = self.agents[ext]
        if busy is not None:
            agent.busy = busy
        if answer_delay is not None:
            agent.answer_delay = answer_delay
        if registered is not None and registered != agent.registered:
            agent.registered = registered
            self.emit("ContactStatus", "system", self.contact_status_headers(ext, registered))
            self._device(f"PJSIP/{ext}", "NOT_INUSE" if registered else "UNAVAILABLE")

    @staticmethod
    def contact_uri(ext: str) -> str:
        return f"sip:{ext}@127.0.0.1:{5070 + int(ext) % 1000 if ext.isdigit() else 5070}"

    def contact_status_headers(self, ext: str, registered: bool) -> Headers:
        return [
            ("URI", self.contact_uri(ext)),
            ("ContactStatus", "NonQualified" if registered else "Removed"),
            ("AOR", ext),
            ("EndpointName", ext),
            ("RoundtripUsec", "0"),
        ]

    def agent_channels(self, ext: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.agent == ext and not c.hungup]

    def remote_hangup(self, ch: Channel, cause: int = 16) -> None:
        """The far party of ``ch`` hangs up (customer hangs up, agent drops the headset)."""
        call = ch.call
        if call is None:
            self.hangup_action(ch, cause)
            return
        self._cancel_far(call)
        self.far_hangup(call, cause)
