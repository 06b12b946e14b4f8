"""The rig the engine-on-the-simulator tests share: one dialer runtime (``dialer_runtime``
with its in-process PBX simulator) on a fresh SQLite file, agents that answer at once and
customers who answer and stay on the line, and bounded waits on what the engine reaches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ami_bridge.simulator import Agent, Population, SimulatorConfig, SimulatorServer
from dialer.domain.outcomes import AgentState
from dialer.engine import Engine
from dialer.runtime import DialerRuntime, ScaledClock, dialer_runtime
from dialer.settings import Settings

START = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # Monday 10:00 in Bogotá
SPEED = 20.0


async def until(cond: Callable[[], bool], within: float = 20.0) -> None:
    """Bounded wait for a condition the engine reaches on its own (real-time budget)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


def sim_config(*agents: str, seed: int, **options: Any) -> SimulatorConfig:
    """Agents ``agents`` answering after 0.2 s; every customer answers (no machine) after
    about a second of ringing and talks for ~50 minutes (the test hangs up first)."""
    return SimulatorConfig(
        speed=SPEED,
        seed=seed,
        agents=[Agent(ext, answer_delay=0.2) for ext in agents],
        population=Population(
            answer=1.0,
            busy=0,
            congestion=0,
            invalid=0,
            rejected=0,
            machine=0,
            ring_mean=1.0,
            ring_sd=0.1,
            talk_mean=3000.0,
            talk_sd=1.0,
        ),
        **options,
    )


async def sqlite_settings(settings: Settings, db_file: Path) -> Settings:
    """``settings`` on a fresh, migrated SQLite database at ``db_file``."""
    from dialer.db.migrate import upgrade

    db_url = f"sqlite+aiosqlite:///{db_file}"
    await asyncio.to_thread(upgrade, db_url)
    return settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": db_url})}
    )


@asynccontextmanager
async def sim_runtime(
    settings: Settings, sim_cfg: SimulatorConfig, name: str
) -> AsyncIterator[tuple[DialerRuntime, SimulatorServer]]:
    """The dialer runtime named ``name`` on its built-in simulator, clock at :data:`START`."""
    clock = ScaledClock(START, speed=SPEED)
    async with dialer_runtime(settings, clock, simulator_config=sim_cfg, dialer_name=name) as rt:
        assert rt.simulator is not None
        yield rt, rt.simulator


@asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[None]:
    """``engine.run`` in the background for the block; stopped (and awaited) after it."""
    stop = asyncio.Event()
    runner = asyncio.create_task(engine.run(stop, tick=0.03))
    try:
        yield
    finally:
        stop.set()
        await runner


async def first_call(
    engine: Engine, agent_id: int, extension: str, campaign_id: int
) -> tuple[str, str]:
    """Log the agent in once the engine runs the campaign and wait for their first call:
    (attempt, the customer's channel)."""
    await until(lambda: campaign_id in engine.campaigns)
    await engine.agent_login(agent_id, extension, campaign_id)
    await until(lambda: engine.agents[agent_id].state is AgentState.IN_CALL)
    attempt = engine.agents[agent_id].call_attempt
    assert attempt is not None
    customer = engine.calls[attempt].channel
    assert customer is not None
    return attempt, customer


def channel_names(sim: SimulatorServer, prefix: str) -> list[str]:
    return [c.name for c in sim.channels() if c.name.startswith(prefix)]


def where(sim: SimulatorServer, name: str) -> tuple[str, str | None] | None:
    """(context, ConfBridge room) of the live channel ``name``; ``None`` once it is gone."""
    for c in sim.channels():
        if c.name == name:
            return c.context, c.conference
    return None
