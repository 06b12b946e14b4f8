"""Wiring of the dialer process: stores, AMI bridge, engine (and, on the embedded default,
the PBX simulator). Used by ``marcador dialer``, ``marcador demo`` and end-to-end tests.

Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr

from ami_bridge.connection import ServerSpec
from ami_bridge.simulator import SimulatorConfig, SimulatorServer, serve
from dialer.db.engine import make_engine, make_sessionmaker
from dialer.domain.clock import Clock
from dialer.engine import Engine, EngineConfig
from dialer.recordings import RecordingPaths
from dialer.redis_client import RedisHandle, connect_redis
from dialer.redis_keys import Keys
from dialer.settings import Settings
from dialer.store import EngineStore
from dialer.telephony import BridgeTelephony

SIM_SERVER_NAME = "sim"


def dialer_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ScaledClock:
    """Virtual wall clock: ``start`` plus event-loop time times ``speed``, plus jumps.

    The PBX simulator scales its timers by the same ``speed``, so both agree on durations.
    :meth:`jump` moves the calendar forward (overnight, to Monday...) without waiting.
    """

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("ScaledClock needs an aware start time")
        self.start = start
        self.speed = speed
        self._t0: float | None = None
        self._offset = timedelta(0)

    def _elapsed(self) -> float:
        t = asyncio.get_running_loop().time()
        if self._t0 is None:
            self._t0 = t
        return (t - self._t0) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._elapsed()) + self._offset

    def jump(self, delta: timedelta) -> None:
        self._offset += delta

    def jump_to(self, when: datetime) -> None:
        if when > self.now():
            self._offset += when - self.now()


@dataclass
class DialerRuntime:
    settings: Settings
    engine: Engine
    telephony: BridgeTelephony
    redis: RedisHandle
    keys: Keys
    simulator: SimulatorServer | None


@asynccontextmanager
async def dialer_runtime(
    settings: Settings,
    clock: Clock,
    *,
    simulator_config: SimulatorConfig | None = None,
    dialer_name: str | None = None,
    engine_config: EngineConfig | None = None,
) -> AsyncIterator[DialerRuntime]:
    """Build and start everything the dialer needs; close it all on exit.

    With no Asterisk server configured, the built-in PBX simulator is started on loopback.
    """
    db = make_engine(settings)
    sm = make_sessionmaker(db)
    redis = connect_redis(settings)
    keys = Keys(settings.redis.key_prefix)
    simulator: SimulatorServer | None = None
    spec: ServerSpec | None = None
    try:
        if settings.asterisk.use_simulator:
            cfg = simulator_config or SimulatorConfig()
            simulator = await serve("127.0.0.1", settings.asterisk.simulator_port, cfg)
            user, amiuser = next(iter(cfg.users.items()))
            spec = ServerSpec(
                SIM_SERVER_NAME, "127.0.0.1", simulator.port, user, SecretStr(amiuser.secret)
            )
        telephony = BridgeTelephony(settings, redis.client, keys, simulator=spec, now=clock.now)
        name = dialer_name or dialer_id()
        config = engine_config or EngineConfig(
            dialer_id=f"{name}.{secrets.token_hex(3)}",
            dialer_name=name,
            trunks={s.name: s.trunk for s in settings.asterisk.servers},
            agent_channels={s.name: s.agent_channel for s in settings.asterisk.servers},
            recording=RecordingPaths.from_settings(settings),
            rejoinable_extensions=settings.webrtc.extensions if settings.webrtc.ws_url else "",
            rejoin_grace=timedelta(seconds=settings.webrtc.rejoin_grace_s),
        )
        if config.recording is not None:
            with contextlib.suppress(OSError):  # a missing mount shows up as failed recordings
                config.recording.local_dir.mkdir(parents=True, exist_ok=True)
        engine = Engine(config, EngineStore(sm), redis.client, keys, telephony, clock)
        await telephony.start()
        try:
            yield DialerRuntime(settings, engine, telephony, redis, keys, simulator)
        finally:
            await telephony.close()
    finally:
        if simulator is not None:
            await simulator.close()
        await redis.close()
        await db.dispose()
