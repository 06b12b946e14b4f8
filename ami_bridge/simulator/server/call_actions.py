"""Call actions: Originate (asynchronous and synchronous), Hangup, Redirect, Getvar / Setvar,
PlayDTMF, and MixMonitor / StopMixMonitor on a channel."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from ami_bridge.simulator.pbx import STATE_DESC, Channel, OriginateRequest, parse_callerid
from ami_bridge.simulator.server.session import Session
from ami_bridge.simulator.server.sessions import ActionHandler
from ami_bridge.simulator.wire import Action

if TYPE_CHECKING:
    from ami_bridge.simulator.server import SimulatorServer


class CallActions:
    """Actions on calls and channels."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.pbx = server.pbx

    def handlers(self) -> dict[str, ActionHandler]:
        return {
            "originate": self.originate,
            "hangup": self.hangup,
            "redirect": self.redirect,
            "getvar": self.getvar,
            "setvar": self.setvar,
            "playdtmf": self.playdtmf,
            "mixmonitor": self.mixmonitor,
            "stopmixmonitor": self.stopmixmonitor,
        }

    def _originate_request(self, a: Action) -> OriginateRequest | str:
        dial = a.get("Channel")
        if not dial:
            return "Channel not specified"
        req = OriginateRequest(dial=dial, action_id=a.action_id)
        app = a.get("Application")
        if app:
            req.application, req.data = app, a.get("Data") or ""
        else:
            req.context, req.exten = a.get("Context") or "default", a.get("Exten") or "s"
            prio = a.get("Priority") or "1"
            if not prio.isdigit():
                return "Invalid priority"
            req.priority = int(prio)
        timeout = a.get("Timeout")
        if timeout:
            try:
                req.timeout = max(0.0, int(timeout) / 1000.0)
            except ValueError:
                return "Invalid timeout"
        cid = a.get("CallerID")
        if cid:
            req.cid_name, req.cid_num = parse_callerid(cid)
        for raw in a.get_all("Variable"):
            for part in raw.split(","):
                k, eq, v = part.partition("=")
                if eq and k.strip():
                    req.variables.append((k.strip(), v))
        req.channel_id = a.get("ChannelId") or None
        req.other_channel_id = a.get("OtherChannelId") or None
        req.is_async = (a.get("Async") or "").strip().lower() in ("true", "yes", "1", "on")
        return req

    async def originate(self, s: Session, a: Action) -> None:
        req = self._originate_request(a)
        if isinstance(req, str):
            s.reply(a, [("Response", "Error"), ("Message", req)])
            return
        if req.channel_id is not None and (
            req.channel_id in self.pbx.by_uniqueid
            or (req.other_channel_id and req.other_channel_id in self.pbx.by_uniqueid)
        ):
            s.reply(a, [("Response", "Error"), ("Message", "Uniqueid already in use")])
            return
        if req.application is None and not self.pbx.dialplan.extension_exists(
            req.context or "", req.exten or ""
        ):
            # Asterisk 22 checks the Originate's own Context/Exten before dialing anything.
            s.reply(a, [("Response", "Error"), ("Message", "Extension does not exist.")])
            return
        if req.is_async:
            s.reply(a, [("Response", "Success"), ("Message", "Originate successfully queued")])
            asyncio.get_running_loop().call_soon(self._start_originate, req)
            return
        # Synchronous (file 10): the session is blocked until the call is answered or fails;
        # its events are delivered after the Response.
        s.holding = []
        loop = asyncio.get_running_loop()
        result: asyncio.Future[bool] = loop.create_future()
        call = self.pbx.originates.originate(req)
        if call is None or (call.done and not call.answered):
            result.set_result(False)
        else:
            call.result = result
        ok = await result
        held, s.holding = s.holding, None
        if ok:
            s.reply(a, [("Response", "Success"), ("Message", "Originate successfully queued")])
        else:
            s.reply(a, [("Response", "Error"), ("Message", "Originate failed")])
        for data in held:
            s.write(data)

    def _start_originate(self, req: OriginateRequest) -> None:
        if not self.server.running:
            return
        if self.pbx.originates.originate(req) is None:
            self.pbx.originates.fail_without_channel(req)

    def _channel_or_error(self, s: Session, a: Action, missing: str) -> Channel | None:
        name = a.get("Channel")
        if not name:
            s.reply(a, [("Response", "Error"), ("Message", missing)])
            return None
        ch = self.pbx.find_channel(name)
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", "No such channel")])
        return ch

    async def hangup(self, s: Session, a: Action) -> None:
        name = a.get("Channel") or ""
        if not name:
            s.reply(a, [("Response", "Error"), ("Message", "No channel specified")])
            return
        raw_cause = a.get("Cause") or "16"
        cause = int(raw_cause) if raw_cause.isdigit() else 16
        if len(name) > 2 and name.startswith("/") and name.endswith("/"):
            try:
                pattern = re.compile(name[1:-1])
            except re.error:
                s.reply(a, [("Response", "Error"), ("Message", "Invalid regex")])
                return
            matched = [c for c in self.pbx.channels.values() if pattern.search(c.name)]
            s.list_start(a, "Channels hung up will follow")
            for c in matched:
                s.list_item(a, "ChannelHungup", [("Channel", c.name)], aid_last=True)
            s.list_complete(a, "ChannelsHungupListComplete", len(matched))
            for c in matched:
                if not c.hungup:
                    self.pbx.hangups.hangup_action(c, cause)
            return
        ch = self.pbx.find_channel(name)
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", "No such channel")])
            return
        s.reply(a, [("Response", "Success"), ("Message", "Channel Hungup")])
        self.pbx.hangups.hangup_action(ch, cause)

    async def redirect(self, s: Session, a: Action) -> None:
        name = a.get("Channel") or ""
        if not name:
            s.reply(a, [("Response", "Error"), ("Message", "Channel not specified")])
            return
        ch = self.pbx.find_channel(name)
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", f"Channel does not exist: {name}")])
            return
        exten = a.get("Exten")
        if not exten:
            s.reply(a, [("Response", "Error"), ("Message", "Exten not specified")])
            return
        prio = a.get("Priority") or "1"
        s.reply(a, [("Response", "Success"), ("Message", "Redirect successful")])
        self.pbx.dialplan.redirect(
            ch, a.get("Context") or ch.context, exten, int(prio) if prio.isdigit() else 1
        )

    async def getvar(self, s: Session, a: Action) -> None:
        var = a.get("Variable")
        if not var:
            s.reply(a, [("Response", "Error"), ("Message", "No variable specified")])
            return
        if a.get("Channel"):
            ch = self._channel_or_error(s, a, "No such channel")
            if ch is None:
                return
            value = self._read_var(ch, var)
        else:
            value = self.pbx.global_vars.get(var, "")
        s.reply(a, [("Response", "Success"), ("Variable", var), ("Value", value)])

    @staticmethod
    def _read_var(ch: Channel, var: str) -> str:
        m = re.fullmatch(r"CHANNEL\((\w+)\)", var)
        if m:
            return {
                "state": STATE_DESC.get(ch.state, "Unknown"),
                "name": ch.name,
                "uniqueid": ch.uniqueid,
                "linkedid": ch.linkedid,
                "context": ch.context,
                "exten": ch.exten,
            }.get(m.group(1).lower(), "")
        return ch.variables.get(var, "")

    async def setvar(self, s: Session, a: Action) -> None:
        var = a.get("Variable")
        if not var:
            s.reply(a, [("Response", "Error"), ("Message", "No variable specified")])
            return
        value = a.get("Value") or ""
        if a.get("Channel"):
            ch = self._channel_or_error(s, a, "No such channel")
            if ch is None:
                return
            s.reply(a, [("Response", "Success"), ("Message", "Variable Set")])
            self.pbx.core.setvar(ch, var, value)
        else:
            s.reply(a, [("Response", "Success"), ("Message", "Variable Set")])
            self.pbx.core.set_global(var, value)

    async def mixmonitor(self, s: Session, a: Action) -> None:
        """File 22: Response first, then VarSet MIXMONITOR_FILENAME and MixMonitorStart."""
        ch = self.pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", "No such channel")])
            return
        s.reply(a, [("Response", "Success")])
        self.pbx.mixmonitor.start(ch, a.get("File") or f"{ch.uniqueid}.wav")

    async def stopmixmonitor(self, s: Session, a: Action) -> None:
        """File 22: Response Success, then MixMonitorStop."""
        ch = self.pbx.find_channel(a.get("Channel") or "")
        if ch is None:
            s.reply(a, [("Response", "Error"), ("Message", "No such channel")])
            return
        if ch.mixmonitor is None:
            s.reply(a, [("Response", "Error"), ("Message", "Could not stop MixMonitor")])
            return
        s.reply(a, [("Response", "Success")])
        self.pbx.mixmonitor.stop(ch)

    async def playdtmf(self, s: Session, a: Action) -> None:
        """PlayDTMF as Asterisk 22's manager.c: the channel is looked up first, then the digit;
        the digit is sent toward the channel's far end (no event)."""
        name = a.get("Channel") or ""
        ch = self.pbx.find_channel(name) if name else None
        if ch is None or ch.hungup:
            s.reply(a, [("Response", "Error"), ("Message", "Channel not found")])
            return
        digit = a.get("Digit") or ""
        if not digit:
            s.reply(a, [("Response", "Error"), ("Message", "No digit specified")])
            return
        self.pbx.dtmf_sent.append((ch.name, digit[0]))
        s.reply(a, [("Response", "Success"), ("Message", "DTMF successfully queued")])
