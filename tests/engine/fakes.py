"""A scripted stand-in for the AMI bridge: records actions, lets tests emit tracker outputs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ami_bridge.actions import ChannelInfo, OriginateRequest
from ami_bridge.errors import AMIError
from dialer.engine import TelephonyItem


@dataclass
class FakeTelephony:
    servers: list[str] = field(default_factory=lambda: ["sim"])
    up: bool = True
    fail_originate: bool = False
    originates: list[tuple[str, OriginateRequest]] = field(default_factory=list)
    redirects: list[tuple[str, str, str, str]] = field(default_factory=list)
    hangups: list[tuple[str, str]] = field(default_factory=list)
    recording_stops: list[tuple[str, str]] = field(default_factory=list)
    queue: asyncio.Queue[TelephonyItem] = field(default_factory=asyncio.Queue)

    def server_names(self) -> Sequence[str]:
        return self.servers

    def link_up(self, server: str) -> bool:
        return self.up

    async def originate(
        self, server: str, req: OriginateRequest, *, call_id: str, ring_timeout: timedelta
    ) -> str:
        if self.fail_originate:
            raise AMIError("not connected")
        self.originates.append((server, req))
        return f"act-{len(self.originates)}"

    async def redirect(self, server: str, channel: str, context: str, exten: str) -> None:
        self.redirects.append((server, channel, context, exten))

    async def hangup(self, server: str, channel: str) -> None:
        self.hangups.append((server, channel))

    async def cancel(self, server: str, call_id: str) -> None:
        self.hangups.append((server, call_id))

    #: (server, conference, channel, mute) of every ConfbridgeMute/Unmute
    mutes: list[tuple[str, str, str, bool]] = field(default_factory=list)
    #: (server, channel, digits) of every PlayDTMF
    dtmf: list[tuple[str, str, str]] = field(default_factory=list)

    async def confbridge_mute(
        self, server: str, conference: str, channel: str, *, mute: bool
    ) -> None:
        self.mutes.append((server, conference, channel, mute))

    async def play_dtmf(self, server: str, channel: str, digits: str) -> None:
        self.dtmf.append((server, channel, digits))

    async def stop_recording(self, server: str, channel: str) -> None:
        self.recording_stops.append((server, channel))

    live: set[str] = field(default_factory=set)
    #: CoreShowChannels items; uniqueids in ``live`` without one are listed bare
    channels: list[ChannelInfo] = field(default_factory=list)
    adopted: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def live_channel_ids(self, server: str) -> set[str]:
        return set(self.live) | {c.uniqueid for c in self.channels}

    async def live_channels(self, server: str) -> list[ChannelInfo]:
        known = {c.uniqueid for c in self.channels}
        return [*self.channels, *(channel_info(u) for u in self.live if u not in known)]

    def adopt(self, server: str, call_id: str, **kw: Any) -> None:
        self.adopted.append((server, call_id, kw))

    async def next_item(self) -> TelephonyItem:
        return await self.queue.get()


def channel_info(
    uniqueid: str,
    *,
    channel: str = "",
    state: int = 6,
    context: str = "",
    exten: str = "",
    application: str = "",
    application_data: str = "",
) -> ChannelInfo:
    """One CoreShowChannel item, as Asterisk lists it (transcript 20)."""
    return ChannelInfo(
        channel=channel or f"PJSIP/trunk-{uniqueid[:8]}",
        uniqueid=uniqueid,
        linkedid=uniqueid,
        channel_state=state,
        channel_state_desc="Up" if state == 6 else "Ringing",
        context=context,
        exten=exten,
        application=application,
        application_data=application_data,
        duration="00:00:10",
        bridge_id="",
        caller_id_num="",
    )
