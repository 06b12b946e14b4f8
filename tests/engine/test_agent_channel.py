"""``AsteriskServer.agent_channel``: the login call dials the server's agent dial-string
template (virtual agents in the lab), ``PJSIP/<ext>`` by default."""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge import dialplan
from dialer.domain.clock import FakeClock
from dialer.engine import Engine, EngineConfig
from dialer.lab_pstn import VIRTUAL_AGENT_CHANNEL
from dialer.redis_keys import Keys
from dialer.settings import AsteriskServer
from dialer.store import EngineStore

from .factories import MONDAY_10AM, make_agent, make_campaign
from .fakes import FakeTelephony


async def _login(
    config: EngineConfig,
    sm: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
) -> str:
    tel = FakeTelephony()
    engine = Engine(config, EngineStore(sm), redis, keys, tel, FakeClock(MONDAY_10AM))
    campaign_id = (await make_campaign(sm)).id
    await make_agent(sm, 7, "1001")
    await engine.agent_login(7, "1001", campaign_id)
    server, req = tel.originates[-1]
    assert (server, req.context, req.exten) == ("sim", dialplan.CTX_AGENT, "1001")
    return req.channel


async def test_agent_login_dials_the_servers_agent_channel_template(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    config = EngineConfig(dialer_id="d1", agent_channels={"sim": VIRTUAL_AGENT_CHANNEL})
    channel = await _login(config, sessionmaker, redis, keys)
    assert channel == "Local/1001@marcador-lab-vagent"


async def test_agent_login_defaults_to_the_pjsip_endpoint(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    assert await _login(EngineConfig(dialer_id="d1"), sessionmaker, redis, keys) == "PJSIP/1001"


def test_agent_channel_setting_needs_the_extension_placeholder() -> None:
    server = AsteriskServer(name="p", host="h", secret="s")
    assert server.agent_channel == "PJSIP/{extension}"
    try:
        AsteriskServer(name="p", host="h", secret="s", agent_channel="PJSIP/1001")
    except ValueError as exc:
        assert "{extension}" in str(exc)
    else:
        raise AssertionError("a template without {extension} must be refused")
