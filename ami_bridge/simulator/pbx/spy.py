"""ChanSpy: a supervisor's channel listening to (or whispering to) an agent's channel."""

from __future__ import annotations

from ami_bridge.simulator.pbx.core import ChannelCore
from ami_bridge.simulator.pbx.model import Channel


class ChanSpy:
    """The spying itself; the ``marcador-spy`` extension lines are in the contexts."""

    def __init__(self, core: ChannelCore) -> None:
        self.core = core

    async def spy(self, ch: Channel, agent: str) -> None:
        """``ChanSpy(PJSIP/<agent>-,…)`` run by ``ch``: ChanSpyStart on the agent's first
        channel, then ChanSpyStop when that channel hangs up (none when the spy did). Without
        a channel to spy on, it returns at once."""
        core = self.core
        spyee = next(
            (c for c in core.channels.values() if c.name.startswith(f"PJSIP/{agent}-")), None
        )
        if spyee is None:
            return
        core.emit(
            "ChanSpyStart",
            "call",
            [*core.chan_headers(ch, "Spyer"), *core.chan_headers(spyee, "Spyee")],
        )
        while not spyee.hungup and not ch.hungup:
            await core.clock.sleep(0.5)
        if not ch.hungup:
            core.emit("ChanSpyStop", "call", core.chan_headers(ch, "Spyer"))
