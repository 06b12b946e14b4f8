"""The engine's port to the AMI bridge: what it needs from telephony, and what it receives.

Implemented by :class:`dialer.telephony.BridgeTelephony` (the AMI bridge, real or simulated
PBX); tests use a fake (tests/engine/fakes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ami_bridge.actions import ChannelInfo, OriginateRequest
from ami_bridge.events import AMIEvent
from ami_bridge.tracker import TrackerOutput


@dataclass(frozen=True, slots=True)
class TelephonyItem:
    """One item from the AMI bridge: a tracker output or a raw typed event."""

    server: str
    item: TrackerOutput | AMIEvent


class Telephony(Protocol):
    """What the engine needs from the AMI bridge (implemented in
    :class:`dialer.telephony.BridgeTelephony`)."""

    def server_names(self) -> Sequence[str]: ...

    def link_up(self, server: str) -> bool: ...

    async def originate(
        self, server: str, req: OriginateRequest, *, call_id: str, ring_timeout: timedelta
    ) -> str:
        """Track and send an async Originate. Returns the ActionID; raises AMIError."""
        ...

    async def redirect(self, server: str, channel: str, context: str, exten: str) -> None: ...

    async def hangup(self, server: str, channel: str) -> None: ...

    async def stop_recording(self, server: str, channel: str) -> None:
        """StopMixMonitor on the customer's channel (the recording keeps what came before)."""
        ...

    async def cancel(self, server: str, call_id: str) -> None:
        """Drop a call the dialer no longer wants (outcome CANCELLED if not answered)."""
        ...

    async def confbridge_mute(
        self, server: str, conference: str, channel: str, *, mute: bool
    ) -> None:
        """ConfbridgeMute / ConfbridgeUnmute of ``channel`` in ``conference``."""
        ...

    async def play_dtmf(self, server: str, channel: str, digits: str) -> None:
        """PlayDTMF of each digit toward ``channel``'s far end."""
        ...

    async def next_item(self) -> TelephonyItem: ...

    async def live_channel_ids(self, server: str) -> set[str]:
        """Uniqueids of the channels alive on ``server`` (CoreShowChannels)."""
        ...

    async def live_channels(self, server: str) -> list[ChannelInfo]:
        """Every channel alive on ``server``, with where it is (CoreShowChannels)."""
        ...

    def adopt(
        self,
        server: str,
        call_id: str,
        *,
        uniqueid: str,
        channel: str,
        answered_at: datetime | None,
        conference: str | None,
        connected_at: datetime | None,
    ) -> None:
        """Have the call tracker follow a live call a dead dialer originated."""
        ...
