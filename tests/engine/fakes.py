"""A scripted stand-in for the AMI bridge: records actions, lets tests emit tracker outputs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from ami_bridge.actions import OriginateRequest
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

    async def stop_recording(self, server: str, channel: str) -> None:
        self.recording_stops.append((server, channel))

    live: set[str] = field(default_factory=set)

    async def live_channel_ids(self, server: str) -> set[str]:
        return set(self.live)

    async def next_item(self) -> TelephonyItem:
        return await self.queue.get()
