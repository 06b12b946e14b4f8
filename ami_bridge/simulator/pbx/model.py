"""The PBX model's data: channels, calls, ConfBridge rooms, emitted events, and the constants
their AMI events carry (Asterisk 22.10.1's wording, as in ``ami-transcripts/``)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Literal

from ami_bridge.simulator.config import Customer

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
