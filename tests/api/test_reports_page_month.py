"""The reports page opens on the latest month with data (not an empty previous month)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from dialer.db.models import Role
from tests.api.helpers import (
    MONDAY_10AM,
    ApiClient,
    make_campaign,
    make_connected_attempt,
    make_lead,
)

HTML = {"accept": "text/html"}


def _month(html: str) -> str:
    found = re.search(r'data-default-month="([0-9-]+)"', html)
    assert found is not None
    return found.group(1)


async def test_reports_open_on_the_latest_month_with_data(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    sm = app.state.sessionmaker
    cid = await make_campaign(sm)
    other = await make_campaign(sm, "Otra campaña")
    sup = await clients("sofia", Role.SUPERVISOR, campaigns=(cid,))
    this_month = f"{MONDAY_10AM:%Y-%m}"
    first = MONDAY_10AM.replace(day=1)
    previous = f"{first.year - (first.month == 1):04d}-{(first.month - 2) % 12 + 1:02d}"
    # No calls: the month that just ended.
    assert _month((await sup.get("/reportes", headers=HTML)).text) == previous
    # Calls in a campaign the supervisor does not see change nothing.
    await make_connected_attempt(sm, other, await make_lead(sm, other, 2), None)
    assert _month((await sup.get("/reportes", headers=HTML)).text) == previous
    # A call this month in the supervisor's campaign: this month.
    await make_connected_attempt(sm, cid, await make_lead(sm, cid, 1), None)
    assert _month((await sup.get("/reportes", headers=HTML)).text) == this_month
