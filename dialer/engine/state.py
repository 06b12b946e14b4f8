"""The state the engine's parts share, and the base of those parts.

One :class:`EngineState` per engine: its collaborators (SQL store, Redis, the AMI bridge, the
clock) and its in-memory live state (calls, agents, campaigns, previews, spies). Each part of
the engine (:class:`Part`) gets it, plus the other parts it calls, when the
:class:`~dialer.engine.core.Engine` wires them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from ami_bridge.actions import ChannelInfo
from ami_bridge.errors import AMIError
from dialer.domain.agents import AgentSession
from dialer.domain.clock import Clock
from dialer.engine.model import (
    CampaignRuntime,
    EngineConfig,
    LiveCall,
    PreviewOffer,
    SpySession,
    TransferLeg,
)
from dialer.engine.port import Telephony
from dialer.leases import Leases
from dialer.logging import get_logger
from dialer.recordings import RecordingKeeper
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from dialer.store import EngineStore

log = get_logger("marcador.engine")


class EngineState:
    """Collaborators and live state, shared by every part of one engine."""

    def __init__(
        self,
        config: EngineConfig,
        store: EngineStore,
        redis: aioredis.Redis,
        keys: Keys,
        telephony: Telephony,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.redis = redis
        self.keys = keys
        self.streams = Streams(redis)
        self.leases = Leases(redis)
        self.tel = telephony
        self.clock = clock
        self.calls: dict[str, LiveCall] = {}
        self.agents: dict[int, AgentSession] = {}
        self.agent_channel: dict[str, int] = {}  # agent session channel id -> agent id
        self.agent_server: dict[int, tuple[str, str]] = {}  # agent id -> (server, channel id)
        self.previews: dict[int, PreviewOffer] = {}  # agent id -> lead on their screen
        self.spies: dict[str, str] = {}  # supervisor key -> ChannelId of their current spy
        self.spy_calls: dict[str, SpySession] = {}  # spy ChannelId -> session (until it ends)
        self.agent_room_channel: dict[int, str] = {}  # agent id -> channel name in their room
        self.transfer_legs: dict[str, TransferLeg] = {}  # xfer ChannelId -> leg (until it ends)
        self.campaigns: dict[int, CampaignRuntime] = {}
        self.recordings = (
            RecordingKeeper(store.sm, config.recording) if config.recording is not None else None
        )

    def now(self) -> datetime:
        return self.clock.now()

    async def publish(self, type_: str, data: dict[str, Any]) -> None:
        """Event stream for the API, dashboard and webhooks. Losing Redis loses only this."""
        try:
            await self.streams.add(self.keys.events_stream, type_, data)
        except Exception as exc:  # Redis down: the live view suffers, nothing else
            log.warning("event_publish_failed", type=type_, error=type(exc).__name__)

    def campaign_agents(self, campaign_id: int) -> list[AgentSession]:
        return [a for a in self.agents.values() if a.campaign_id == campaign_id and a.is_logged_in]

    def predecessor_prefix(self) -> str:
        """Claim-owner prefix of earlier runs of this dialer (``<name>.``): they are dead."""
        name = self.config.dialer_name
        return f"{name}." if name and self.config.dialer_id.startswith(f"{name}.") else ""

    async def pbx_channels(
        self, server: str, cache: dict[str, list[ChannelInfo] | None]
    ) -> list[ChannelInfo] | None:
        """CoreShowChannels of ``server`` (once per round), or None when it can't be asked."""
        if server not in cache:
            chans: list[ChannelInfo] | None = None
            if self.tel.link_up(server):
                try:
                    chans = await self.tel.live_channels(server)
                except AMIError as exc:
                    log.warning("pbx_channels_failed", server=server, error=type(exc).__name__)
            cache[server] = chans
        return cache[server]


class Part:
    """A part of the engine: reads and changes the shared :class:`EngineState`."""

    def __init__(self, state: EngineState) -> None:
        self.state = state

    # The shared state under the names the engine's code has always used.
    @property
    def config(self) -> EngineConfig:
        return self.state.config

    @config.setter
    def config(self, config: EngineConfig) -> None:
        self.state.config = config

    @property
    def store(self) -> EngineStore:
        return self.state.store

    @property
    def redis(self) -> aioredis.Redis:
        return self.state.redis

    @property
    def keys(self) -> Keys:
        return self.state.keys

    @property
    def streams(self) -> Streams:
        return self.state.streams

    @property
    def leases(self) -> Leases:
        return self.state.leases

    @property
    def tel(self) -> Telephony:
        return self.state.tel

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def calls(self) -> dict[str, LiveCall]:
        return self.state.calls

    @property
    def agents(self) -> dict[int, AgentSession]:
        return self.state.agents

    @property
    def agent_channel(self) -> dict[str, int]:
        return self.state.agent_channel

    @property
    def agent_server(self) -> dict[int, tuple[str, str]]:
        return self.state.agent_server

    @property
    def previews(self) -> dict[int, PreviewOffer]:
        return self.state.previews

    @property
    def spies(self) -> dict[str, str]:
        return self.state.spies

    @property
    def spy_calls(self) -> dict[str, SpySession]:
        return self.state.spy_calls

    @property
    def transfer_legs(self) -> dict[str, TransferLeg]:
        return self.state.transfer_legs

    @property
    def agent_room_channel(self) -> dict[int, str]:
        return self.state.agent_room_channel

    @property
    def campaigns(self) -> dict[int, CampaignRuntime]:
        return self.state.campaigns

    @property
    def recordings(self) -> RecordingKeeper | None:
        return self.state.recordings

    def _now(self) -> datetime:
        return self.state.now()

    async def publish(self, type_: str, data: dict[str, Any]) -> None:
        await self.state.publish(type_, data)
