"""A browser-phone agent rejoins the same call after a page reload (issue 15): engine -> AMI
bridge -> PBX simulator.

The browser seat's session call carries ``MARCADOR_REJOINABLE=1``, so the agent joins the room
unmarked: when that session call ends mid-call the customer stays in the room, the agent stays
IN_CALL ("reconnecting") for ``MARCADOR_WEBRTC__REJOIN_GRACE_S``, and a login calls the seat
back into the same room. Without a rejoin the grace expires: logged out, the customer hung up,
one outcome. A hardware softphone (not a browser seat) is logged out at once, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from ami_bridge import dialplan
from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.settings import Settings

from .factories import make_agent, make_campaign, make_lead
from .sim_rig import first_call, running, sim_config, sim_runtime, sqlite_settings, until, where


async def until_async(
    probe: Callable[[], Awaitable[None]], done: Callable[[], bool], within: float = 20.0
) -> None:
    """:func:`until` for a condition read from the database (``probe`` refreshes it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    await probe()
    while not done():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
        await probe()


def _webrtc(settings: Settings, extensions: str) -> Settings:
    webrtc = settings.webrtc.model_copy(
        update={"ws_url": "wss://pbx.test:8089/ws", "extensions": extensions, "rejoin_grace_s": 30}
    )
    return settings.model_copy(update={"webrtc": webrtc})


async def test_a_browser_agent_rejoins_the_same_call_or_the_grace_expires(
    settings: Settings, tmp_path: Path
) -> None:
    settings = _webrtc(await sqlite_settings(settings, tmp_path / "rejoin.db"), "1001")
    async with sim_runtime(settings, sim_config("1001", seed=11), "rejoin") as (rt, sim):
        engine = rt.engine
        sm = engine.store.sm
        camp = await make_campaign(sm, name=f"Rejoin {tmp_path.name}")
        await make_agent(sm, 901, "1001")
        await make_lead(sm, camp.id, 1)
        room = dialplan.agent_room("1001")
        async with running(engine):
            attempt, customer = await first_call(engine, 901, "1001", camp.id)
            agent_chan = engine.agent_room_channel[901]
            joined = sim.pbx.find_channel(agent_chan)
            assert joined is not None
            assert joined.conf_profile == dialplan.USER_PROFILE_AGENT_REJOINABLE

            # The page reloads: its session call ends; the customer waits in the room.
            assert sim.hangup_from_far_end(agent_chan)
            await until(lambda: engine.agents[901].is_reconnecting)
            agent = engine.agents[901]
            assert agent.state is AgentState.IN_CALL and agent.call_attempt == attempt
            assert where(sim, customer) == (dialplan.CTX_AGENT_ROOM, room)
            assert sim.conferences()[room] == [customer]
            await engine.drain()
            live = await rt.redis.client.hgetall(rt.keys.agent_state(901))  # type: ignore[misc]
            assert live["state"] == "in_call" and live["rejoin_deadline"]

            # The reloaded page logs in again: the seat is called back into the same room.
            await engine.agent_login(901, "1001", camp.id)
            await until(lambda: engine.agents[901].room_joined)
            agent = engine.agents[901]
            assert not agent.is_reconnecting
            assert agent.state is AgentState.IN_CALL and agent.call_attempt == attempt
            rejoined = engine.agent_room_channel[901]
            assert rejoined != agent_chan
            assert sorted(sim.conferences()[room]) == sorted([customer, rejoined])
            await engine.drain()
            live = await rt.redis.client.hgetall(rt.keys.agent_state(901))  # type: ignore[misc]
            assert live["rejoin_deadline"] == ""

            # Another reload, and no rejoin this time: the grace (30 s) expires.
            assert sim.hangup_from_far_end(rejoined)
            await until(lambda: engine.agents[901].is_reconnecting)
            await until(lambda: engine.agents[901].state is AgentState.LOGGED_OUT, within=20)
            await until(lambda: where(sim, customer) is None)

            outcomes: list[CallOutcome | None] = [None]

            async def recorded() -> None:
                status = await engine.store.call_status(attempt)
                outcomes[0] = status.outcome if status else None

            await until_async(recorded, lambda: outcomes[0] is not None)
            assert outcomes[0] is CallOutcome.ANSWERED_CONNECTED
            assert not [c for c in sim.channels() if c.name.startswith("PJSIP/1001-")]


async def test_a_hardware_softphone_is_logged_out_at_once(
    settings: Settings, tmp_path: Path
) -> None:
    settings = _webrtc(await sqlite_settings(settings, tmp_path / "hw.db"), "1101-1110")
    async with sim_runtime(settings, sim_config("1001", seed=12), "hw") as (rt, sim):
        engine = rt.engine
        sm = engine.store.sm
        camp = await make_campaign(sm, name=f"Hardware {tmp_path.name}")
        await make_agent(sm, 902, "1001")
        await make_lead(sm, camp.id, 1)
        async with running(engine):
            _, customer = await first_call(engine, 902, "1001", camp.id)
            agent_chan = engine.agent_room_channel[902]
            joined = sim.pbx.find_channel(agent_chan)
            assert joined is not None and joined.conf_profile == dialplan.USER_PROFILE_AGENT
            assert sim.hangup_from_far_end(agent_chan)
            await until(lambda: engine.agents[902].state is AgentState.LOGGED_OUT)
            assert not engine.agents[902].is_reconnecting
            await until(lambda: where(sim, customer) is None)  # end_marked, as before
