"""The dialplan interpreter: where a channel's dialplan starts (after answer, a Redirect),
the extension lookup by Asterisk's rules, and an Originate's ``Application``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ami_bridge.extensions import best_match
from ami_bridge.simulator.pbx.contexts import DIALPLAN
from ami_bridge.simulator.pbx.core import cancel_task
from ami_bridge.simulator.pbx.model import Channel

if TYPE_CHECKING:
    from ami_bridge.simulator.pbx import Pbx

Extension = Callable[[Channel], Coroutine[Any, Any, tuple[str, str] | None]]


class Dialplan:
    """Runs a channel's dialplan from a location, one extension after another."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.clock = pbx.clock

    def goto(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        """Start ``ch``'s dialplan at a new location (after answer, or for a Redirect)."""
        cancel_task(ch)
        ch.context, ch.exten, ch.priority = context, exten, priority
        ch.task = asyncio.ensure_future(self._exec(ch))

    def redirect(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        if ch.conference is not None:
            self.pbx.confbridge.leave(ch, "")
        self.goto(ch, context, exten, priority)

    def extension_exists(self, context: str, exten: str) -> bool:
        """Would Asterisk find ``exten`` in ``context`` (Originate answers "Extension does not
        exist." otherwise)? Matched by Asterisk's rules (:mod:`ami_bridge.extensions`)."""
        return best_match(DIALPLAN.get(context, {}), exten) is not None

    def _handler(self, context: str, exten: str) -> Extension | None:
        """The :class:`~ami_bridge.simulator.pbx.contexts.DialplanApps` method that runs
        ``exten`` in ``context`` (``None``: no such extension, or one not simulated)."""
        table = DIALPLAN.get(context)
        if table is None:
            return None
        name = best_match(table, exten)
        if name is None or not table[name]:
            return None
        handler: Extension = getattr(self.pbx.apps, table[name])
        return handler

    async def _exec(self, ch: Channel) -> None:
        try:
            hops = 0
            while not ch.hungup and hops < 50:
                hops += 1
                handler = self._handler(ch.context, ch.exten)
                if handler is None:
                    self.pbx.hangups.dialplan_end(ch)
                    return
                nxt = await handler(ch)
                if nxt is None or ch.hungup:
                    return
                ch.context, ch.exten, ch.priority = nxt[0], nxt[1], 1
            if not ch.hungup:
                self.pbx.hangups.dialplan_end(ch)
        except asyncio.CancelledError:
            pass

    async def run_application(self, ch: Channel, app: str, data: str) -> None:
        """Originate with ``Application``/``Data``: no Newexten (file 10)."""
        ch.app, ch.appdata = app, data
        try:
            low = app.lower()
            if low == "wait":
                with contextlib.suppress(ValueError):
                    await self.clock.sleep(float(data or 0))
            elif low == "confbridge":
                room = data.split(",")[0]
                self.pbx.confbridge.join(ch, room, "")
                ch.conf_result = asyncio.get_running_loop().create_future()
                await ch.conf_result
            elif low in ("echo", "musiconhold"):
                await asyncio.Event().wait()
            if not ch.hungup:
                self.pbx.hangups.dialplan_end(ch)
        except asyncio.CancelledError:
            pass
