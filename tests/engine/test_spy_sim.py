"""Supervisor spy end to end: engine -> AMI bridge -> PBX simulator (issue 14, defect 12).

ChanSpy's ``E`` option ends only with the agent's nailed-up channel, so a spy used to follow
the agent into the next customer's call. Here the customer hangs up and the supervisor's
channel must go with the call while the agent's session stays up.
"""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from ami_bridge import dialplan
from dialer.redis_client import Streams
from dialer.settings import Settings

from .factories import make_agent, make_campaign, make_lead
from .sim_rig import (
    channel_names,
    first_call,
    running,
    sim_config,
    sim_runtime,
    sqlite_settings,
    until,
)


async def test_spy_ends_with_the_spied_call_on_the_simulator(
    settings: Settings, tmp_path: Path
) -> None:
    settings = await sqlite_settings(settings, tmp_path / "spy.db")
    sim_cfg = sim_config("1001", "2001", seed=3)
    async with sim_runtime(settings, sim_cfg, "spy") as (rt, sim):
        engine = rt.engine
        sm = engine.store.sm
        camp = await make_campaign(sm, name=f"Spy {tmp_path.name}")
        await make_agent(sm, 901, "1001")
        await make_lead(sm, camp.id, 1)
        async with running(engine):
            _, customer = await first_call(engine, 901, "1001", camp.id)

            spy = await engine.spy(901, "2001", dialplan.SPY_LISTEN, supervisor_id=5)
            await until(lambda: any(s.answered for s in engine.spy_calls.values()))
            assert len(channel_names(sim, "PJSIP/2001-")) == 1  # the supervisor is listening

            assert sim.hangup_from_far_end(customer)  # the customer leaves the room
            await until(lambda: not channel_names(sim, "PJSIP/2001-") and not engine.spy_calls)
            assert channel_names(sim, "PJSIP/1001-")  # the agent's session is still up
            assert engine.spies == {}
        redis: aioredis.Redis = rt.redis.client
        events = await Streams(redis).read(rt.keys.events_stream, "0", count=1000)
        mine = [(e.type, e.data.get("reason")) for e in events if e.data.get("spy") == spy.spy_id]
        assert mine == [("spy_ringing", None), ("spy_started", None), ("spy_ended", "call_ended")]
