"""Originate (files 03-10, 19, 29): the dial string to a customer or an agent's phone, the
Local ``;1``/``;2`` or PJSIP channel, OriginateResponse, and the ring timeout."""

from __future__ import annotations

import asyncio
import random
import re
from typing import TYPE_CHECKING

from ami_bridge import dialplan as dp
from ami_bridge.simulator.config import LAB_PSTN_CONTEXT, Customer, Step, lab_pstn_customer
from ami_bridge.simulator.pbx.core import cancel_far
from ami_bridge.simulator.pbx.model import (
    REASON_FAILED,
    REASON_NO_ANSWER,
    UNKNOWN,
    Call,
    Channel,
    OriginateRequest,
)
from ami_bridge.simulator.wire import Headers

if TYPE_CHECKING:
    from ami_bridge.simulator.pbx import Pbx


class Originator:
    """Starts calls; the far end (:class:`~ami_bridge.simulator.pbx.farend.FarEnd`) then
    plays the customer's (or the agent phone's) script."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.core = pbx.core
        self.config = pbx.config
        self._number_seen: dict[str, int] = {}

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
        self.core.processed_calls += 1
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
            agent = self.pbx.phones.by_ext.get(rest)
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
            self.core.ev_chan(
                "NewCallerid",
                "call",
                ch,
                [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")],
            )
            ch.conn_num, ch.conn_name = num, name
            self.core.ev_chan("NewConnectedLine", "call", ch, [])

    def _originate_local(
        self, req: OriginateRequest, exten: str, ctx: str, customer: Customer
    ) -> Call:
        seq = self.core.next_local_seq()
        base = f"Local/{exten}@{ctx}-{seq:08x}"
        uid1 = req.channel_id or self.core.uid()
        if req.other_channel_id:
            uid2 = req.other_channel_id
        elif req.channel_id:
            uid2 = f"{req.channel_id};2"
        else:
            uid2 = self.core.uid()
        near = self.core.new_channel(f"{base};1", uid1, uid1, ctx, exten)
        far = self.core.new_channel(f"{base};2", uid2, uid1, ctx, exten)
        far.state = 4
        call = Call(req, "local", customer, near, far)
        near.call = far.call = call
        self.core.calls.add(call)
        # file 03: Newchannel x2, AppDial2 on ;1, VarSet (;1 reversed, ;2 in order), CallerID.
        self.core.ev_chan("Newchannel", "call", near, [])
        self.core.ev_chan("Newchannel", "call", far, [])
        self.core.newexten(near, 1, "AppDial2", "(Outgoing Line)")
        for k, v in reversed(req.variables):
            self.core.setvar(near, k, v)
        if req.cid_num is not None or req.cid_name is not None:
            self._apply_callerid(call, [near])
        for k, v in req.variables:
            self.core.setvar(far, k, v)
        if req.cid_num is not None or req.cid_name is not None:
            self._apply_callerid(call, [far])
        if customer.steps is None:
            # file 07: no such extension/context -> both legs gone, Cause 0, Reason 0.
            self.pbx.hangups.hangup_event(far, 0)
            self.pbx.hangups.hangup_event(near, 0)
            self.core.device(f"Local/{exten}@{ctx}", "NOT_INUSE")
            self.finish_failed(call, REASON_FAILED)
            return call
        one, two = self.core.chan_headers(near, "LocalOne"), self.core.chan_headers(far, "LocalTwo")
        self.core.emit(
            "LocalBridge",
            "call",
            [*one, *two, ("Context", ctx), ("Exten", exten), ("LocalOptimization", "Yes")],
        )
        self.core.dial_event("DialBegin", near, [("DialString", f"{exten}@{ctx}")])
        call.far_task = asyncio.ensure_future(self.pbx.far.run(call))
        call.timer = self.core.clock.call_later(req.timeout, lambda: self._originate_timeout(call))
        return call

    def _originate_pjsip(
        self,
        req: OriginateRequest,
        endpoint: str,
        dialstring: str,
        customer: Customer,
        agent: str | None,
    ) -> Call:
        seq = self.core.next_pjsip_seq()
        uid = req.channel_id or self.core.uid()
        ctx = (
            self.config.agent_endpoint_context
            if agent is not None
            else self.config.trunk_endpoint_context
        )
        ch = self.core.new_channel(f"PJSIP/{endpoint}-{seq:08x}", uid, uid, ctx, "s")
        ch.agent = agent
        if agent is not None:
            a = self.pbx.phones.by_ext[agent]
            ch.cid_num, ch.cid_name = a.ext, a.name
        call = Call(req, "pjsip", customer, ch)
        ch.call = call
        self.core.calls.add(call)
        # file 19: Newchannel, AppDial2, VarSet (reversed), CallerID, DialBegin.
        self.core.ev_chan("Newchannel", "call", ch, [])
        self.core.newexten(ch, 1, "AppDial2", "(Outgoing Line)")
        for k, v in reversed(req.variables):
            self.core.setvar(ch, k, v)
        self._apply_callerid(call, [ch])
        self.core.dial_event("DialBegin", ch, [("DialString", dialstring)])
        call.far_task = asyncio.ensure_future(self.pbx.far.run(call))
        call.timer = self.core.clock.call_later(req.timeout, lambda: self._originate_timeout(call))
        return call

    def respond(self, call: Call, success: bool, reason: int) -> None:
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
        self.core.emit("OriginateResponse", "call", headers)

    def finish_failed(self, call: Call, reason: int) -> None:
        if call.done:
            return
        call.done = True
        if call.timer is not None:
            call.timer.cancel()
        self.respond(call, False, reason)
        self.core.calls.discard(call)

    def fail_without_channel(self, req: OriginateRequest) -> None:
        """OriginateResponse for an Originate that never created a channel (file 07)."""
        near = Channel(req.dial, UNKNOWN, UNKNOWN, "", "")
        call = Call(req, "pjsip", Customer(None), near)
        self.respond(call, False, REASON_FAILED)

    def _originate_timeout(self, call: Call) -> None:
        """Originate ``Timeout`` expired while ringing (file 06): Reason 3, Cause 19, no DialEnd."""
        if call.done or call.answered:
            return
        call.done = True
        self.core.calls.discard(call)
        near, far = call.near, call.far
        cancel_far(call)
        if far is not None:
            self.core.ev_chan("HangupRequest", "call", far, [("Cause", "19")])
            self.respond(call, False, REASON_NO_ANSWER)
            self.pbx.hangups.hangup_event(near, 19)
            self.core.ev_chan("SoftHangupRequest", "call", far, [("Cause", "16")])
            self.pbx.hangups.hangup_event(far, 19)
            dev = near.name.rsplit("-", 1)[0]
            self.core.device(dev, "NOT_INUSE")
            self.core.device(dev, "NOT_INUSE")
        else:
            self.respond(call, False, REASON_NO_ANSWER)
            self.pbx.hangups.hangup_event(near, 19)
