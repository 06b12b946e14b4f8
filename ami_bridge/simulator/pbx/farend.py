"""The far end of an Originate: the customer's script (config ``Customer.steps``) or the
agent's softphone ringing, answering, refusing, talking and hanging up (files 03-09, 19, 29)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ami_bridge.simulator.config import Step
from ami_bridge.simulator.pbx.core import cancel_task
from ami_bridge.simulator.pbx.model import (
    DIALSTATUS_BY_CAUSE,
    REASON_ANSWERED,
    REASON_FAILED,
    SIP_CODE_BY_CAUSE,
    Call,
    substitute,
)

if TYPE_CHECKING:
    from ami_bridge.simulator.pbx import Pbx


class FarEnd:
    """Plays each call's far-end script and the far party's hang-ups."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.core = pbx.core
        self.clock = pbx.clock

    async def run(self, call: Call) -> None:
        """The far end's script, step by step (on a Local call, each step is a ``;2``
        dialplan line); the call hangs up when the script ends."""
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
                    self.core.newexten(far, prio, app, shown)
                if step.app == "NoOp":
                    continue
                if step.app == "Ringing":
                    self._ringing(call)
                elif step.app == "Answer":
                    self._answer(call)
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
                        self.core.setvar(far, "PLAYBACKSTATUS", "SUCCESS")
                elif step.app == "Converse":
                    await self._converse(call, step)
                elif step.app in ("Busy", "Congestion"):
                    self._busy(call, step.app == "Busy")
                    return
                elif step.app == "Hangup":
                    cause = int(data) if data.isdigit() else 16
                    self.hangup(call, cause)
                    return
            if not call.near.hungup:
                self.hangup(call, 16)
        except asyncio.CancelledError:
            pass

    async def _converse(self, call: Call, step: Step) -> None:
        """A human: waits up to ``patience`` for an agent, then talks ``seconds`` and hangs up."""
        try:
            await asyncio.wait_for(call.connected.wait(), step.patience / self.clock.speed)
        except TimeoutError:
            return
        await self.clock.sleep(step.seconds)

    def _ringing(self, call: Call) -> None:
        near = call.near
        if call.kind == "local":
            self.core.newstate(near, 5)  # file 06: ;1 goes Ringing, ;2 stays Ring
            self.core.dial_event("DialState", near, [("DialStatus", "RINGING")])
        else:
            self.core.newstate(near, 5)  # file 19
            if near.agent is not None:
                self.core.device(f"PJSIP/{near.agent}", "RINGING")
            self.core.dial_event("DialState", near, [("DialStatus", "RINGING")])

    def _answer(self, call: Call) -> None:
        if call.done or call.answered:
            return
        call.answered = True
        call.done = True
        self.core.calls.discard(call)
        if call.timer is not None:
            call.timer.cancel()
        near, far = call.near, call.far
        if far is not None:
            self.core.newstate(far, 6)
        self.core.newstate(near, 6)
        if near.agent is not None:
            self.core.device(f"PJSIP/{near.agent}", "INUSE")
        self.core.dial_event("DialEnd", near, [("DialStatus", "ANSWER")])
        self.pbx.originates.respond(call, True, REASON_ANSWERED)
        if far is not None:
            dev = near.name.rsplit("-", 1)[0]
            self.core.device(dev, "INUSE")
            self.core.device(dev, "INUSE")
        req = call.req
        if req.application is not None:
            near.task = asyncio.ensure_future(
                self.pbx.dialplan.run_application(near, req.application, req.data)
            )
        else:
            self.pbx.dialplan.goto(near, req.context or "", req.exten or "", req.priority)

    def _busy(self, call: Call, busy: bool) -> None:
        """Busy()/Congestion() before answer (files 04, 05): Reason 5/8; ;1 Cause 0."""
        near, far = call.near, call.far
        status, reason, cause = ("BUSY", 5, 17) if busy else ("CONGESTION", 8, 34)
        if far is None:  # a trunk: the carrier's 486/503 ends the channel (file 29): Reason 0
            self.reject(call, cause)
            return
        if call.timer is not None:
            call.timer.cancel()
        self.core.newstate(far, 7)
        self.core.dial_event("DialEnd", near, [("DialStatus", status)])
        self.core.ev_chan("HangupRequest", "call", far, [("Cause", "0")])
        self.pbx.originates.finish_failed(call, reason)
        self.pbx.hangups.hangup_event(near, 0)
        self.core.ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
        self.pbx.hangups.hangup_event(far, cause)
        dev = near.name.rsplit("-", 1)[0]
        for _ in range(3):
            self.core.device(dev, "NOT_INUSE")

    def reject(self, call: Call, cause: int) -> None:
        """The far end hangs up before answering (file 09 for Local, file 29 for PJSIP)."""
        near, far = call.near, call.far
        status = DIALSTATUS_BY_CAUSE.get(cause, "NOANSWER")
        if far is not None:
            self.core.ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
            self.core.ev_chan("HangupRequest", "call", near, [("Cause", str(cause))])
            self.core.dial_event("DialEnd", near, [("DialStatus", status)])
            self.pbx.originates.finish_failed(call, REASON_FAILED)
            self.pbx.hangups.hangup_event(near, cause)
            self.pbx.hangups.hangup_event(far, cause)
            dev = near.name.rsplit("-", 1)[0]
            self.core.device(dev, "NOT_INUSE")
            self.core.device(dev, "NOT_INUSE")
        else:  # a SIP final response: the TechCause header carries its code (file 29)
            tech = SIP_CODE_BY_CAUSE.get(cause, "480")
            self.core.ev_chan(
                "HangupRequest", "call", near, [("Cause", str(cause)), ("TechCause", tech)]
            )
            self.core.dial_event("DialEnd", near, [("DialStatus", status)])
            self.pbx.hangups.hangup_event(near, cause, tech)
            self.pbx.originates.finish_failed(call, REASON_FAILED)

    def hangup(self, call: Call, cause: int = 16) -> None:
        """The customer (or the agent's phone) hangs up."""
        near, far = call.near, call.far
        if near.hungup and (far is None or far.hungup):
            return
        if not call.answered:
            self.reject(call, cause)
            return
        c = str(cause)
        if far is None:
            self.core.ev_chan("HangupRequest", "call", near, [("Cause", c)])
            if near.conference is not None:
                self.pbx.confbridge.leave(near, "HANGUP")
            self.pbx.apps.amd_hangup(near)
            self.pbx.hangups.hangup_event(near, cause)
            return
        # files 03/26: ;2 soft-hangs-up, ;1 is asked to hang up.
        cancel_task(near)
        self.core.ev_chan("SoftHangupRequest", "call", far, [("Cause", c)])
        self.core.ev_chan("HangupRequest", "call", near, [("Cause", c)])
        if near.conference is not None:
            self.pbx.hangups.hangup_event(far, cause)
            self.pbx.confbridge.leave(near, "HANGUP")
            self.core.ev_chan("SoftHangupRequest", "call", near, [("Cause", c)])
            self.pbx.hangups.hangup_event(near, cause)
        elif near.in_amd:
            # real 22.10.1 (issue 14 lab): ;2 goes first, then AMD() reports HANGUP on ;1
            self.pbx.hangups.hangup_event(far, cause)
            self.pbx.apps.amd_hangup(near)
            self.core.ev_chan("SoftHangupRequest", "call", near, [("Cause", c)])
            self.pbx.hangups.hangup_event(near, cause)
        else:
            cancel_task(near)
            self.core.ev_chan("SoftHangupRequest", "call", near, [("Cause", c)])
            self.pbx.hangups.hangup_event(near, cause)
            self.pbx.hangups.hangup_event(far, cause)
        dev = near.name.rsplit("-", 1)[0]
        self.core.device(dev, "NOT_INUSE")
        self.core.device(dev, "NOT_INUSE")
