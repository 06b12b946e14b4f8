"""The shipped dialplan (``deploy/asterisk/extensions.conf``) as the simulator runs it: one
method per extension, emitting the ``Newexten`` events (Application/AppData/Priority) a real
Asterisk loaded with that file emits, and the AMD application the outbound context runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ami_bridge import dialplan as dp
from ami_bridge.simulator.config import AmdTruth
from ami_bridge.simulator.pbx.core import cancel_task
from ami_bridge.simulator.pbx.model import Channel

if TYPE_CHECKING:
    from ami_bridge.simulator.pbx import Pbx

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
    dp.CTX_TRANSFER_TARGET: {"_X.": "_dp_transfer_target"},
    dp.CTX_TRANSFER_ROOM: {"_X.": "_dp_transfer_room"},
    dp.CTX_CONSULT: {"_X.": "_dp_consult"},
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


class DialplanApps:
    """The extensions of :data:`DIALPLAN`. Each returns where the dialplan goes next
    (context, extension) or ``None`` when the channel's dialplan is over."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.core = pbx.core
        self.clock = pbx.clock
        self.config = pbx.config

    async def app_amd(self, ch: Channel, priority: int) -> None:
        self.core.newexten(ch, priority, "AMD", "")
        truth: AmdTruth = (
            ch.call.customer.amd if ch.call is not None else AmdTruth("NOTSURE", "", 0)
        )
        ch.in_amd = True
        try:
            await self.clock.sleep(truth.seconds)
        finally:
            ch.in_amd = False
        self.core.setvar(ch, dp.VAR_AMDSTATUS, truth.status)
        self.core.setvar(ch, dp.VAR_AMDCAUSE, truth.cause)

    def amd_hangup(self, ch: Channel) -> None:
        """The far end hung up while ``AMD()`` listened: it sets ``AMDSTATUS=HANGUP`` and an
        empty ``AMDCAUSE`` before the leg hangs up (observed on 22.10.1, issue 14 lab)."""
        if not ch.in_amd:
            return
        ch.in_amd = False
        cancel_task(ch)
        self.core.setvar(ch, dp.VAR_AMDSTATUS, "HANGUP")
        self.core.setvar(ch, dp.VAR_AMDCAUSE, "")

    async def _dp_outbound(self, ch: Channel) -> tuple[str, str] | None:
        attempt = self.core.var(ch, dp.VAR_ATTEMPT)
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR answered attempt={attempt}")
        amd = self.core.var(ch, dp.VAR_AMD)
        no_amd = amd in ("", dp.AMD_OFF)
        self.core.newexten(ch, 2, "GotoIf", f"{int(no_amd)}?{dp.CTX_HOLD},{dp.EXTEN_START},1")
        if no_amd:
            return dp.CTX_HOLD, dp.EXTEN_START
        await self.app_amd(ch, 3)
        human = self.core.var(ch, dp.VAR_AMDSTATUS) != "MACHINE"
        self.core.newexten(ch, 4, "GotoIf", f"{int(human)}?{dp.CTX_HOLD},{dp.EXTEN_START},1")
        if human:
            return dp.CTX_HOLD, dp.EXTEN_START
        leave = amd == dp.AMD_MESSAGE
        self.core.newexten(ch, 5, "GotoIf", f"{int(leave)}?{dp.EXTEN_LEAVE_MESSAGE},1")
        if leave:
            return dp.CTX_OUTBOUND, dp.EXTEN_LEAVE_MESSAGE
        self.core.newexten(ch, 6, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_leave_message(self, ch: Channel) -> tuple[str, str] | None:
        self.core.newexten(ch, 1, "WaitForSilence", "1500,1,15")
        await self.clock.sleep(1.5)
        self.core.setvar(ch, "WAITSTATUS", "SILENCE")
        msg = self.core.var(ch, dp.VAR_MACHINE_MESSAGE) or dp.DEFAULT_MACHINE_MESSAGE
        self.core.newexten(ch, 2, "Playback", msg)
        await self.clock.sleep(self.config.machine_message_seconds)
        self.core.setvar(ch, "PLAYBACKSTATUS", "SUCCESS")
        self.core.newexten(ch, 3, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_hold(self, ch: Channel) -> tuple[str, str] | None:
        attempt = self.core.var(ch, dp.VAR_ATTEMPT)
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR hold attempt={attempt}")
        raw = self.core.var(ch, dp.VAR_CONNECT_TIMEOUT)
        try:
            timeout = float(raw) if raw else dp.DEFAULT_CONNECT_TIMEOUT
        except ValueError:
            timeout = dp.DEFAULT_CONNECT_TIMEOUT
        shown = raw if raw else f"{dp.DEFAULT_CONNECT_TIMEOUT:g}"
        self.core.newexten(ch, 2, "Wait", shown)
        await self.clock.sleep(timeout)
        self.core.newexten(ch, 3, "Goto", f"{dp.EXTEN_SAFE_HARBOR},1")
        return dp.CTX_HOLD, dp.EXTEN_SAFE_HARBOR

    async def _dp_safe_harbor(self, ch: Channel) -> tuple[str, str] | None:
        self.core.newexten(ch, 1, "Set", f"{dp.VAR_ABANDONED}=1")
        self.core.setvar(ch, dp.VAR_ABANDONED, "1")
        sound = self.core.var(ch, dp.VAR_SAFE_HARBOR) or dp.DEFAULT_SAFE_HARBOR
        self.core.newexten(ch, 2, "Playback", sound)
        await self.clock.sleep(self.config.safe_harbor_seconds)
        self.core.setvar(ch, "PLAYBACKSTATUS", "SUCCESS")
        self.core.newexten(ch, 3, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_refuse(self, ch: Channel) -> tuple[str, str] | None:
        self.core.newexten(ch, 1, "Hangup", "21")
        self.pbx.hangups.dialplan_hangup(ch, 21)
        return None

    async def _dp_agent(self, ch: Channel) -> tuple[str, str] | None:
        ext = ch.exten
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR agent {ext} logged in")
        rejoinable = self.core.var(ch, dp.VAR_REJOINABLE) == "1"
        profile = dp.USER_PROFILE_AGENT_REJOINABLE if rejoinable else dp.USER_PROFILE_AGENT
        await self.pbx.confbridge.app(ch, 2, dp.agent_room(ext), profile)
        self.core.newexten(ch, 3, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_agent_room(self, ch: Channel) -> tuple[str, str] | None:
        ext = ch.exten
        room = dp.agent_room(ext)
        attempt = self.core.var(ch, dp.VAR_ATTEMPT)
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR connect attempt={attempt} agent={ext}")
        # a Redirect that lost the race with the hold timeout: back to the safe harbor
        abandoned = self.core.var(ch, dp.VAR_ABANDONED) == "1"
        self.core.newexten(
            ch, 2, "GotoIf", f"{int(abandoned)}?{dp.CTX_HOLD},{dp.EXTEN_SAFE_HARBOR},1"
        )
        if abandoned:
            return dp.CTX_HOLD, dp.EXTEN_SAFE_HARBOR
        conf = self.pbx.confbridge.rooms.get(room)
        empty = conf is None or not conf.members
        self.core.newexten(ch, 3, "GotoIf", f"{int(empty)}?{dp.CTX_HOLD},{dp.EXTEN_SAFE_HARBOR},1")
        if empty:
            return dp.CTX_HOLD, dp.EXTEN_SAFE_HARBOR
        await self.pbx.mixmonitor.gosub_record(ch, 4)
        if ch.hungup:
            return None
        await self.pbx.confbridge.app(ch, 5, room, dp.USER_PROFILE_CUSTOMER)
        self.core.newexten(ch, 6, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_preview(self, ch: Channel) -> tuple[str, str] | None:
        ext = ch.exten
        attempt = self.core.var(ch, dp.VAR_ATTEMPT)
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR preview attempt={attempt} agent={ext}")
        await self.pbx.mixmonitor.gosub_record(ch, 2)
        if ch.hungup:
            return None
        await self.pbx.confbridge.app(ch, 3, dp.agent_room(ext), dp.USER_PROFILE_CUSTOMER)
        self.core.newexten(ch, 4, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_onhold(self, ch: Channel) -> tuple[str, str] | None:
        """Agent's hold: music on hold (silence without MOH files) until a Redirect back, or
        ``MARCADOR_HOLD_MAX`` seconds, then back into the agent's room."""
        ext = ch.exten
        attempt = self.core.var(ch, dp.VAR_ATTEMPT)
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR on hold attempt={attempt} agent={ext}")
        self.core.newexten(ch, 2, "ExecIf", "1?StartMusicOnHold()")  # IFMODULE(res_musiconhold.so)
        raw = self.core.var(ch, dp.VAR_HOLD_MAX)
        try:
            seconds = float(raw) if raw else float(dp.DEFAULT_HOLD_MAX)
        except ValueError:
            seconds = float(dp.DEFAULT_HOLD_MAX)
        self.core.newexten(ch, 3, "Wait", raw or str(dp.DEFAULT_HOLD_MAX))
        await self.clock.sleep(seconds)
        self.core.newexten(ch, 4, "ExecIf", "1?StopMusicOnHold()")
        self.core.newexten(ch, 5, "Goto", f"{dp.CTX_AGENT_ROOM},{ext},1")
        return dp.CTX_AGENT_ROOM, ext

    async def _dp_transfer_target(self, ch: Channel) -> tuple[str, str] | None:
        room = ch.exten
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR transfer target room={room}")
        await self.pbx.confbridge.app(ch, 2, dp.transfer_room(room), dp.USER_PROFILE_AGENT)
        self.core.newexten(ch, 3, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_transfer_room(self, ch: Channel) -> tuple[str, str] | None:
        room = ch.exten
        attempt = self.core.var(ch, dp.VAR_ATTEMPT)
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR transfer attempt={attempt} room={room}")
        await self.pbx.confbridge.app(ch, 2, dp.transfer_room(room), dp.USER_PROFILE_CUSTOMER)
        self.core.newexten(ch, 3, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_consult(self, ch: Channel) -> tuple[str, str] | None:
        ext = ch.exten
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR consult agent={ext}")
        await self.pbx.confbridge.app(ch, 2, dp.agent_room(ext), dp.USER_PROFILE_CUSTOMER)
        self.core.newexten(ch, 3, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_record(self, ch: Channel) -> tuple[str, str] | None:
        """Reached without a Gosub (an Originate into it): runs, and ``Return`` ends it."""
        await self.pbx.mixmonitor.record_steps(ch)
        self.pbx.hangups.dialplan_end(ch)
        return None

    async def _dp_spy(self, ch: Channel) -> tuple[str, str] | None:
        mode = ch.exten
        raw = self.core.var(ch, dp.VAR_SPY_AGENT)
        agent = "".join(c for c in raw if c.isdigit())  # ${FILTER(0-9,...)}
        self.core.newexten(ch, 1, "NoOp", f"MARCADOR {mode} agent={raw}")
        self.core.newexten(ch, 2, "ChanSpy", f"PJSIP/{agent}-,{dp.SPY_OPTIONS[mode]}")
        await self.pbx.spy.spy(ch, agent)
        self.core.newexten(ch, 3, "Hangup", "16")
        self.pbx.hangups.dialplan_hangup(ch, 16)
        return None

    async def _dp_legacy(self, ch: Channel) -> tuple[str, str] | None:
        """The transcripts' ``dialer`` context (hold, amd-only, conf) for parity tests."""
        lead = self.core.var(ch, "LEAD_ID")
        if ch.exten == "hold":
            self.core.newexten(ch, 1, "NoOp", f"DIALER lead {lead} holding")
            self.core.newexten(ch, 2, "Wait", "300")
            await self.clock.sleep(300)
            self.pbx.hangups.dialplan_end(ch)
            return None
        if ch.exten == "amd-only":
            self.core.newexten(ch, 1, "NoOp", f"DIALER lead {lead} -> AMD only")
            await self.app_amd(ch, 2)
            status, cause = self.core.var(ch, dp.VAR_AMDSTATUS), self.core.var(ch, dp.VAR_AMDCAUSE)
            self.core.newexten(ch, 3, "NoOp", f"AMDSTATUS={status} AMDCAUSE={cause}")
            self.core.newexten(ch, 4, "Hangup", "")
            self.pbx.hangups.dialplan_hangup(ch, 16)
            return None
        self.core.newexten(ch, 1, "NoOp", f"DIALER lead {lead} -> ConfBridge")
        await self.pbx.confbridge.app(ch, 2, "dialer-conf", "")
        self.pbx.hangups.dialplan_end(ch)
        return None
