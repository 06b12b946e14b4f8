"""Hang-ups (files 10, 11, 22, 29): the Hangup event itself, ``Action: Hangup``, a dialplan's
own ``Hangup()`` or end, and the far party hanging up on request (tests, the chaos CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ami_bridge.simulator.pbx.core import cancel_far, cancel_task
from ami_bridge.simulator.pbx.model import CAUSE_TXT, REASON_FAILED, Channel

if TYPE_CHECKING:
    from ami_bridge.simulator.pbx import Pbx


class Hangups:
    """Every way a channel hangs up, with the event sequence Asterisk 22.10.1 gives it."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.core = pbx.core

    def hangup_event(self, ch: Channel, cause: int, tech: str | None = None) -> None:
        """``ch`` is gone: it leaves its room, its recording is written, ``Hangup``."""
        if ch.hungup:
            return
        cancel_task(ch)
        if ch.conference is not None:
            self.pbx.confbridge.leave(ch, "HANGUP")
        self.pbx.mixmonitor.write(ch)
        ch.hungup = True
        self.core.ev_chan(
            "Hangup",
            "call",
            ch,
            [
                ("Cause", str(cause)),
                ("Cause-txt", CAUSE_TXT.get(cause, "Unknown")),
                *([("TechCause", tech)] if tech is not None else []),
            ],
        )
        self.core.forget(ch)
        call = ch.call
        if call is not None and (call.far is None or call.far is ch or call.far.hungup):
            cancel_far(call)
        if ch.conf_result is not None and not ch.conf_result.done():
            ch.conf_result.cancel()
        if ch.agent is not None:
            self.core.device(f"PJSIP/{ch.agent}", "NOT_INUSE")

    def hangup_action(self, ch: Channel, cause: int) -> None:
        """``Action: Hangup`` on ``ch`` (files 22 and 29)."""
        ev_chan, dial_event = self.core.ev_chan, self.core.dial_event
        finish_failed = self.pbx.originates.finish_failed
        call = ch.call
        c = str(cause)
        if call is not None and not call.answered and not call.done:
            near, far = call.near, call.far
            cancel_far(call)
            if far is None:
                ev_chan("SoftHangupRequest", "call", near, [("Cause", c)])
                dial_event("DialEnd", near, [("DialStatus", "NOANSWER")])
                self.hangup_event(near, cause)
                finish_failed(call, REASON_FAILED)
            elif ch is near:  # file 29 (1)
                dial_event("DialEnd", near, [("DialStatus", "NOANSWER")])
                ev_chan("HangupRequest", "call", far, [("Cause", c)])
                finish_failed(call, REASON_FAILED)
                ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
                self.hangup_event(far, cause)
                self.hangup_event(near, cause)
            else:  # file 29 (2)
                ev_chan("SoftHangupRequest", "call", far, [("Cause", c)])
                ev_chan("HangupRequest", "call", near, [("Cause", c)])
                dial_event("DialEnd", near, [("DialStatus", "NOANSWER")])
                self.hangup_event(far, cause)
                finish_failed(call, REASON_FAILED)
                self.hangup_event(near, cause)
            return
        if call is not None and call.far is ch:
            cancel_far(call)
            self.pbx.far.hangup(call, cause)
            return
        # file 22: the dialer hangs up the ;1 leg (or a PJSIP channel) of an answered call.
        cancel_task(ch)
        ev_chan("SoftHangupRequest", "call", ch, [("Cause", c)])
        if ch.conference is not None:
            self.pbx.confbridge.leave(ch, "HANGUP")
        far = call.far if call is not None else None
        if far is not None and not far.hungup:
            cancel_far(call)
            ev_chan("HangupRequest", "call", far, [("Cause", c)])
            self.interrupt_playback(far)
            self.hangup_event(ch, cause)
            ev_chan("SoftHangupRequest", "call", far, [("Cause", c)])
            self.hangup_event(far, cause)
        else:
            self.hangup_event(ch, cause)

    def dialplan_hangup(self, ch: Channel, cause: int) -> None:
        """``Hangup()`` run by ``ch``'s own dialplan (file 11)."""
        ev_chan = self.core.ev_chan
        c = str(cause)
        ev_chan("SoftHangupRequest", "call", ch, [("Cause", c)])
        far = ch.call.far if ch.call is not None else None
        if far is not None and not far.hungup and far is not ch:
            cancel_far(ch.call)
            ev_chan("HangupRequest", "call", far, [("Cause", c)])
            self.interrupt_playback(far)
            ev_chan("SoftHangupRequest", "call", far, [("Cause", c)])
            self.hangup_event(far, cause)
        self.hangup_event(ch, cause)

    def interrupt_playback(self, ch: Channel) -> None:
        if ch.playing:
            ch.playing = False
            self.core.setvar(ch, "PLAYBACKSTATUS", "SUCCESS")

    def dialplan_end(self, ch: Channel) -> None:
        """The dialplan (or an originated Application) ran out (file 10): Cause 0."""
        far = ch.call.far if ch.call is not None else None
        if far is not None and not far.hungup and far is not ch:
            cancel_far(ch.call)
            self.core.ev_chan("HangupRequest", "call", far, [("Cause", "0")])
            self.hangup_event(ch, 0)
            self.core.ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
            self.hangup_event(far, 0)
        else:
            self.hangup_event(ch, 0)

    def remote_hangup(self, ch: Channel, cause: int = 16) -> None:
        """The far party of ``ch`` hangs up (customer hangs up, agent drops the headset)."""
        call = ch.call
        if call is None:
            self.hangup_action(ch, cause)
            return
        cancel_far(call)
        self.pbx.far.hangup(call, cause)
