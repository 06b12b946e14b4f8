"""``GET /campaigns/{id}/live`` shows the pacing the dialer applies, and why (issue 14 #10).

The engine itself publishes its pacing state (``Keys.campaign_live``); the API reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from fastapi import FastAPI

from ami_bridge.events import ConfbridgeJoin
from dialer.db.models import Campaign, Role
from dialer.domain.clock import FakeClock
from dialer.domain.outcomes import CallOutcome, DialMode
from dialer.engine import Engine, EngineConfig, TelephonyItem
from dialer.redis_keys import Keys
from dialer.store import EngineStore
from tests.api.helpers import ApiClient, make_campaign, make_connected_attempt, make_lead
from tests.engine.fakes import FakeTelephony


def _join(uniqueid: str, conference: str) -> ConfbridgeJoin:
    fields: dict[str, object] = {f: "" for f in ConfbridgeJoin.__dataclass_fields__}
    fields.update(uniqueid=uniqueid, conference=conference, admin=False, muted=False)
    return ConfbridgeJoin(**fields)  # type: ignore[arg-type]


async def test_live_shows_the_mode_the_dialer_applies_and_why(
    app: FastAPI,
    clients: Callable[..., Awaitable[ApiClient]],
    redis: aioredis.Redis,
    keys: Keys,
    clock: FakeClock,
) -> None:
    app.state.live_cache_s = 0.0
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    async with sm.begin() as s:
        (await s.get_one(Campaign, cid)).dial_mode = DialMode.PREDICTIVE
    ana = await clients("ana", Role.AGENT, campaigns=(cid,), extension="1001")
    beto = await clients("beto", Role.AGENT, campaigns=(cid,), extension="1002")
    sup = await clients("sofia", Role.SUPERVISOR, campaigns=(cid,))
    url = f"/api/v1/campaigns/{cid}/live"

    # no dialer yet: the configured mode, and no level to show
    pacing = (await sup.get(url)).json()["pacing"]
    assert pacing["mode"] == "predictive"
    assert (pacing["dial_level"], pacing["reason"], pacing["source"]) == (None, None, "campaign")

    tel = FakeTelephony()
    engine = Engine(EngineConfig(dialer_id="d1"), EngineStore(sm), redis, keys, tel, clock)
    await engine.step()  # owns the campaign
    for user, ext in ((ana, "1001"), (beto, "1002")):
        await engine.agent_login(user.user_id, ext, cid)
        login = tel.originates[-1][1]
        await engine.handle(TelephonyItem("sim", _join(login.channel_id, f"agent-{ext}")))
    await engine.step()
    # a new predictive campaign: progressive until enough live answers are in
    pacing = (await sup.get(url)).json()["pacing"]
    assert pacing == {
        "mode": "progressive",
        "dial_level": 1.0,  # two READY agents, one line each
        "dial_ratio": pacing["dial_ratio"],
        "reason": "cap_warmup",
        "source": "dialer",
    }

    # an abandoned live answer: the 30-day abandon budget is spent
    lead = await make_lead(sm, cid, 1)
    await make_connected_attempt(sm, cid, lead, None, outcome=CallOutcome.ABANDONED)
    clock.advance(11)  # past the engine's stats refresh
    await engine.step()
    pacing = (await sup.get(url)).json()["pacing"]
    assert (pacing["mode"], pacing["reason"], pacing["source"]) == (
        "progressive",
        "hard_cap_30d",
        "dialer",
    )
    assert pacing["dial_level"] is not None

    # the published state expires: a stopped dialer leaves no stale mode behind
    ttl = await redis.pttl(keys.campaign_live(cid))
    assert 0 < ttl <= 3 * engine.config.campaign_lease_ms
