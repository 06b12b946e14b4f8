"""A phone shared by two people (issue 19) is called at most once a day, at claim time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.domain.eligibility import RuleCode
from dialer.domain.outcomes import DialMode
from dialer.store import EngineStore

from .factories import MONDAY_10AM, make_campaign, make_lead

TTL = timedelta(seconds=30)
HOUSEHOLD = "+576087401234"


async def test_shared_phone_called_for_one_person_waits_a_day_for_the_other(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store = EngineStore(sessionmaker)
    camp = await make_campaign(sessionmaker)
    ana = await make_lead(sessionmaker, camp.id, 1, phones=(HOUSEHOLD,))
    luis = await make_lead(sessionmaker, camp.id, 2, phones=(HOUSEHOLD,))
    own = await make_lead(sessionmaker, camp.id, 3)  # a phone of its own: unaffected

    ok, _ = await store.claim(ana.id, camp, "d1", MONDAY_10AM, TTL)
    assert ok
    await store.create_attempt(ana.id, camp, "d1", "sim", DialMode.PROGRESSIVE, MONDAY_10AM)

    later = MONDAY_10AM + timedelta(hours=2)
    ok, readiness = await store.claim(luis.id, camp, "d1", later, TTL)
    assert not ok and readiness is not None
    assert [r.code for r in readiness.failed] == [RuleCode.PHONE_DAILY]
    explained = await store.readiness(luis.id, later)
    assert not explained.rule(RuleCode.PHONE_DAILY).passed
    ok, _ = await store.claim(own.id, camp, "d1", later, TTL)
    assert ok

    tomorrow = MONDAY_10AM + timedelta(days=1)
    assert (await store.readiness(luis.id, tomorrow)).rule(RuleCode.PHONE_DAILY).passed
