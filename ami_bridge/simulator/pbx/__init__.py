"""The simulated PBX: channels, originates, the shipped dialplan, ConfBridge rooms.

Every event sequence here is modelled on a recording in ``ami-transcripts/`` (file numbers are
cited next to each sequence). The dialplan contexts mirror ``deploy/asterisk/extensions.conf``
line for line, so the ``Newexten`` events (Application/AppData/Priority) are those a real
Asterisk loaded with that file emits.

One part per Asterisk feature, wired by :class:`Pbx`:

* :mod:`~ami_bridge.simulator.pbx.core`: live channels, ids, the per-channel events;
* :mod:`~ami_bridge.simulator.pbx.originate`: Originate and OriginateResponse;
* :mod:`~ami_bridge.simulator.pbx.farend`: the customers (and agent phones) being called;
* :mod:`~ami_bridge.simulator.pbx.hangup`: hang-ups of every origin;
* :mod:`~ami_bridge.simulator.pbx.dialplan`: the interpreter, Redirect, originated apps;
* :mod:`~ami_bridge.simulator.pbx.contexts`: the shipped contexts and AMD;
* :mod:`~ami_bridge.simulator.pbx.confbridge`, :mod:`~ami_bridge.simulator.pbx.spy`,
  :mod:`~ami_bridge.simulator.pbx.recording`, :mod:`~ami_bridge.simulator.pbx.agents`.
"""

from __future__ import annotations

from collections.abc import Callable

from ami_bridge.simulator.clock import SimClock
from ami_bridge.simulator.config import Agent, SimulatorConfig
from ami_bridge.simulator.pbx.agents import AgentPhones
from ami_bridge.simulator.pbx.confbridge import ConfBridge
from ami_bridge.simulator.pbx.contexts import DIALPLAN, LEGACY_CONTEXT, DialplanApps
from ami_bridge.simulator.pbx.core import ChannelCore, cancel_far, cancel_task
from ami_bridge.simulator.pbx.dialplan import Dialplan
from ami_bridge.simulator.pbx.farend import FarEnd
from ami_bridge.simulator.pbx.hangup import Hangups
from ami_bridge.simulator.pbx.model import (
    CAUSE_TXT,
    DIALSTATUS_BY_CAUSE,
    REASON_ANSWERED,
    REASON_BUSY,
    REASON_CONGESTION,
    REASON_FAILED,
    REASON_NO_ANSWER,
    SIP_CODE_BY_CAUSE,
    STATE_DESC,
    UNKNOWN,
    Call,
    Channel,
    Conference,
    Event,
    OriginateRequest,
    parse_callerid,
    substitute,
)
from ami_bridge.simulator.pbx.originate import Originator
from ami_bridge.simulator.pbx.recording import MixMonitor
from ami_bridge.simulator.pbx.spy import ChanSpy
from ami_bridge.simulator.wire import Headers

__all__ = [
    "CAUSE_TXT",
    "DIALPLAN",
    "DIALSTATUS_BY_CAUSE",
    "LEGACY_CONTEXT",
    "REASON_ANSWERED",
    "REASON_BUSY",
    "REASON_CONGESTION",
    "REASON_FAILED",
    "REASON_NO_ANSWER",
    "SIP_CODE_BY_CAUSE",
    "STATE_DESC",
    "UNKNOWN",
    "Call",
    "Channel",
    "Conference",
    "Event",
    "OriginateRequest",
    "Pbx",
    "parse_callerid",
    "substitute",
]


class Pbx:
    """The PBX model: its parts, and what touches them all (a restart, a kill -9).
    ``emit`` receives every event; it never blocks."""

    def __init__(self, config: SimulatorConfig, clock: SimClock, emit: Callable[[Event], None]):
        self.config = config
        self.clock = clock
        self.core = ChannelCore(config, clock, emit)
        self.phones = AgentPhones(self.core)
        self.confbridge = ConfBridge(self.core)
        self.mixmonitor = MixMonitor(self.core)
        self.spy = ChanSpy(self.core)
        self.originates = Originator(self)
        self.far = FarEnd(self)
        self.hangups = Hangups(self)
        self.dialplan = Dialplan(self)
        self.apps = DialplanApps(self)
        #: (channel name, digit) of every PlayDTMF sent (tests read what the customer got)
        self.dtmf_sent: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ state, for readers
    @property
    def channels(self) -> dict[str, Channel]:
        """Live channels by name."""
        return self.core.channels

    @property
    def by_uniqueid(self) -> dict[str, Channel]:
        return self.core.by_uniqueid

    @property
    def conferences(self) -> dict[str, Conference]:
        """ConfBridge rooms by name."""
        return self.confbridge.rooms

    @property
    def agents(self) -> dict[str, Agent]:
        return self.phones.by_ext

    @property
    def global_vars(self) -> dict[str, str]:
        return self.core.global_vars

    @property
    def processed_calls(self) -> int:
        return self.core.processed_calls

    @property
    def boot_wall(self) -> float:
        return self.core.boot_wall

    def find_channel(self, name: str) -> Channel | None:
        return self.core.find_channel(name)

    def emit(self, name: str, category: str, headers: Headers) -> None:
        self.core.emit(name, category, headers)

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Fresh process state (after a restart or kill): counters restart at zero."""
        self.core.reset()

    def mark_boot(self) -> None:
        self.core.mark_boot()

    def drop_all(self) -> None:
        """kill -9: every channel vanishes, no events."""
        core = self.core
        for ch in list(core.channels.values()):
            ch.hungup = True
            cancel_task(ch)
            cancel_far(ch.call)
        for call in core.calls:
            if call.timer is not None:
                call.timer.cancel()
            if call.result is not None and not call.result.done():
                call.result.set_result(False)
        core.channels.clear()
        core.by_uniqueid.clear()
        self.confbridge.rooms.clear()
        core.calls.clear()

    def shutdown_hangup_all(self) -> None:
        """``core restart now``: soft-hangup every channel (Cause 4, file 24), then hang up.

        Hangup causes as on Asterisk 22.10.1: 16 for a channel in a bridge or ConfBridge, 0 for
        every other one (ringing, held in ``Wait()``, a Local ``;2`` leg running its app); a
        call still ringing gets ``OriginateResponse`` Failure, Reason 0."""
        core = self.core
        for ch in list(core.channels.values()):
            if not ch.hungup:
                core.ev_chan("SoftHangupRequest", "call", ch, [("Cause", "4")])
        for ch in list(core.channels.values()):
            if ch.hungup:
                continue
            cause = 16 if ch.conference is not None else 0
            if ch.conference is not None:
                self.confbridge.leave(ch, "HANGUP")
            call = ch.call
            if call is not None and not call.done and not call.answered:
                self.originates.finish_failed(call, REASON_FAILED)
            self.hangups.hangup_event(ch, cause)
        self.drop_all()
