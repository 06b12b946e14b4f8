"""The dashboard answer cache (api/cache.py): fresh, stale while refreshing, computed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

from api import cache


class Answer(BaseModel):
    n: int


async def test_stale_answer_is_served_while_its_refresh_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow refresh (busy machine) does not make every request wait for it: the last answer
    is served while it runs, even past TTL + MAX_STALE_S (up to MAX_REFRESHING_S)."""
    now = [100.0]
    monkeypatch.setattr(cache, "_monotonic", lambda: now[0])
    state = SimpleNamespace()
    gate = asyncio.Event()
    calls: list[int] = []

    async def compute() -> Answer:
        calls.append(1)
        if len(calls) == 2:
            await gate.wait()  # the refresh is slow
        return Answer(n=len(calls))

    async def get() -> int:
        entry = await cache.cached(state, "live", 1, 0.5, compute)
        assert isinstance(entry.value, Answer)
        return entry.value.n

    assert await get() == 1  # computed in the request
    assert await get() == 1  # fresh
    now[0] += 1.0
    assert await get() == 1  # stale: served, a refresh starts
    refresh = state.live_refreshing[("live", 1)]
    await asyncio.sleep(0)
    assert len(calls) == 2  # the refresh is running
    now[0] += cache.MAX_STALE_S + 1.0
    assert await get() == 1  # older than TTL + MAX_STALE_S, but its refresh is running
    assert len(calls) == 2
    gate.set()
    await refresh
    assert state.live_cache[("live", 1)].value == Answer(n=2)  # stored, dated 101.0
    # Older than TTL + MAX_STALE_S with no refresh running: computed in the request.
    assert await get() == 3
