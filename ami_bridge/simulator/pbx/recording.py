"""Call recording (file 22): the ``marcador-record`` subroutine, MixMonitor / StopMixMonitor,
and the file MixMonitor leaves behind."""

from __future__ import annotations

import contextlib
import math
import struct

from ami_bridge import dialplan as dp
from ami_bridge.simulator.pbx.core import ChannelCore
from ami_bridge.simulator.pbx.model import Channel


class MixMonitor:
    """Recordings run on a channel (``Channel.mixmonitor``) and written when they stop."""

    def __init__(self, core: ChannelCore) -> None:
        self.core = core

    async def gosub_record(self, ch: Channel, priority: int) -> None:
        """``Gosub(marcador-record,s,1)`` from the connect path, then back to the caller."""
        self.core.newexten(ch, priority, "Gosub", f"{dp.CTX_RECORD},{dp.EXTEN_START},1")
        back = ch.context, ch.exten
        ch.context, ch.exten = dp.CTX_RECORD, dp.EXTEN_START
        try:
            await self.record_steps(ch)
        finally:
            ch.context, ch.exten = back
        ch.priority = priority

    async def record_steps(self, ch: Channel) -> None:
        """``marcador-record,s``: MixMonitor once per call, then the consent prompt."""
        core, var = self.core, self.core.var
        record = (
            var(ch, dp.VAR_RECORD) == "1"
            and var(ch, dp.VAR_RECORD_FILE) != ""
            and not var(ch, dp.VAR_MIXMONITOR_FILENAME)  # once per call (back from hold)
        )
        core.newexten(ch, 1, "GotoIf", f"{int(not record)}?done")
        if record:
            path = var(ch, dp.VAR_RECORD_FILE)
            core.newexten(ch, 2, "MixMonitor", f"{path},{dp.MIXMONITOR_OPTIONS}")
            self.start(ch, path)
            prompt = var(ch, dp.VAR_CONSENT_PROMPT)
            core.newexten(ch, 3, "GotoIf", f"{int(not prompt)}?done")
            if prompt:
                core.newexten(ch, 4, "Playback", prompt)
                ch.playing = True
                try:
                    await core.clock.sleep(core.config.consent_prompt_seconds)
                finally:
                    ch.playing = False
                if ch.hungup:
                    return
                core.setvar(ch, "PLAYBACKSTATUS", "SUCCESS")
        core.newexten(ch, 5, "Return", "")

    def start(self, ch: Channel, path: str) -> None:
        """MixMonitor (application or AMI action): VarSet MIXMONITOR_FILENAME, MixMonitorStart
        (file 22). A file that cannot be written fails later, silently, as on Asterisk."""
        if ch.mixmonitor is not None:
            self.write(ch)
        ch.mixmonitor = (path, self.core.clock.now())
        self.core.setvar(ch, dp.VAR_MIXMONITOR_FILENAME, path)
        self.core.ev_chan("MixMonitorStart", "call", ch, [])

    def stop(self, ch: Channel) -> bool:
        """StopMixMonitor: the file keeps what came before; MixMonitorStop (file 22)."""
        if ch.mixmonitor is None:
            return False
        self.write(ch)
        self.core.ev_chan("MixMonitorStop", "call", ch, [])
        return True

    def write(self, ch: Channel) -> None:
        """A placeholder for what Asterisk writes with option D: signed-linear 8 kHz, two
        interleaved channels (a quiet tone on each side), as long as the recording ran (cut at
        ``recording_max_seconds``)."""
        if ch.mixmonitor is None:
            return
        path, started = ch.mixmonitor
        ch.mixmonitor = None
        elapsed = max(0.0, self.core.clock.now() - started)
        seconds = min(elapsed, self.core.config.recording_max_seconds)
        frames = int(seconds * 8000)
        left = [int(1000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(80)]
        right = [int(1000 * math.sin(2 * math.pi * 660 * i / 8000)) for i in range(80)]
        period = b"".join(struct.pack("<hh", a, b) for a, b in zip(left, right, strict=True))
        whole, rest = divmod(frames, 80)
        with contextlib.suppress(OSError), open(path, "wb") as fh:  # Asterisk logs; call goes on
            fh.write(period * whole + period[: rest * 4])
