"""Pacing on the real PBX, read from ``GET /campaigns/{id}/live`` (the published pacing state,
issue 14 items 3, 9 and 10) and from the PBX's channels.

Five campaigns run at once on one stack (virtual agents, each campaign its own):

* predictive, 5 agents, customers that answer and hang up after 1 s (agents disposition at
  once): published ``cold_start`` at first, then predictive with a dial level once the pacer has
  seen its 40 live answers and 20 talk and wrap-up samples;
* fixed ratio 3, one agent, customers that ring without answer, today's history well inside
  the cap: published ``fixed_ratio`` and more customer lines than agents on the PBX;
* the same with today's abandon rate over the cap: progressive (``hard_cap_30d``: the
  history is today's), never more customer lines than agents;
* predictive over the cap: progressive (the cap's reason);
* preview: mode ``preview``, no dial level, calls only for the agent (one at a time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from dialer.db.models import Role
from dialer.domain.outcomes import CampaignStatus, DialMode
from dialer.lab_pstn import lab_number
from tests.pbx.phones import channels, update_campaign
from tests.pbx.stack import AgentClient, PbxStack, wait_until

DISPOSITION = {"code": "no_interesado", "details": {"reason": "precio"}}


async def _campaign(
    stack: PbxStack,
    numbers: Iterable[str],
    mode: DialMode,
    agents: list[str],
    *,
    ratio: float = 1.0,
    answered: int = 0,
    abandoned: int = 0,
) -> tuple[int, list[AgentClient], AgentClient]:
    """A campaign (history seeded, then started), its agents logged in, and a supervisor."""
    camp, _ = await stack.seed_campaign(
        numbers, mode=mode, max_attempts=1, status=CampaignStatus.DRAFT, wrap_up_seconds=300
    )
    if answered or abandoned:
        await stack.seed_history(camp, answered, abandoned=abandoned)
    await update_campaign(stack, camp, dial_ratio=ratio, status=CampaignStatus.RUNNING)
    users = await stack.add_agents(camp, agents)
    (sup,) = await stack.add_agents(camp, [f"29{camp:02d}"], role=Role.SUPERVISOR)
    clients = await stack.login_agents(camp, users, within=60)
    return camp, clients, await stack.agent_client(sup)


async def _pacing(sup: AgentClient, camp: int) -> dict[str, Any]:
    r = await sup.http.get(f"/api/v1/campaigns/{camp}/live")
    assert r.status_code == 200, r.text
    pacing: dict[str, Any] = r.json()["pacing"]
    return pacing


def _lines(chans: list[str], numbers: Iterable[str]) -> int:
    """Customer calls of these numbers up on the PBX (the ``;1`` halves of their Local legs)."""
    wanted = set(numbers)
    return sum(1 for c in chans if c.endswith(";1") and c.split("@", 1)[0][6:] in wanted)


async def test_modes_publish_their_pacing_and_the_cap_binds(pbx_stack: PbxStack) -> None:
    stack, lab = pbx_stack, pbx_stack.lab
    pred_numbers = [lab_number("5", 1000 + i) for i in range(150)]
    fixed_numbers = [lab_number("4", 2000 + i) for i in range(12)]
    capped_numbers = [lab_number("4", 3000 + i) for i in range(12)]
    pcapped_numbers = [lab_number("4", 4000 + i) for i in range(12)]
    preview_numbers = [lab_number("1", 5000 + i) for i in range(3)]

    (pred, pred_agents, pred_sup), fixed, capped, pcapped, preview = await asyncio.gather(
        _campaign(
            stack,
            pred_numbers,
            DialMode.PREDICTIVE,
            ["1031", "1032", "1033", "1034", "1035"],
            answered=300,
        ),
        _campaign(stack, fixed_numbers, DialMode.FIXED_RATIO, ["1041"], ratio=3, answered=300),
        _campaign(
            stack,
            capped_numbers,
            DialMode.FIXED_RATIO,
            ["1042"],
            ratio=3,
            answered=20,
            abandoned=5,
        ),
        _campaign(
            stack,
            pcapped_numbers,
            DialMode.PREDICTIVE,
            ["1043", "1044"],
            answered=20,
            abandoned=5,
        ),
        _campaign(stack, preview_numbers, DialMode.PREVIEW, ["1045"]),
    )

    first = await wait_until(
        lambda: _published(pred_sup, pred), within=10, what="predictive pacing published"
    )
    assert first["mode"] == "progressive" and first["reason"] == "cold_start", first

    # Agents of the predictive campaign disposition every call at once.
    stop = asyncio.Event()

    async def disposition_loop() -> int:
        done = 0
        while not stop.is_set():
            for c in pred_agents:
                live = await c.live()
                if live.get("state") == "wrap_up" and live.get("attempt"):
                    r = await c.post(
                        "/agent/disposition", {"attempt": live["attempt"], **DISPOSITION}
                    )
                    if r.status_code == 200:
                        done += 1
            await asyncio.sleep(0.1)  # a polling agent screen, not a wait for a state
        return done

    driver = asyncio.create_task(disposition_loop())
    most = {"fixed": 0, "capped": 0, "pcapped": 0, "preview": 0}

    async def predictive_and_caps() -> dict[str, Any] | None:
        chans = channels(lab)
        most["fixed"] = max(most["fixed"], _lines(chans, fixed_numbers))
        most["capped"] = max(most["capped"], _lines(chans, capped_numbers))
        most["pcapped"] = max(most["pcapped"], _lines(chans, pcapped_numbers))
        most["preview"] = max(most["preview"], _lines(chans, preview_numbers))
        assert most["capped"] <= 1, "the capped fixed-ratio campaign over-dialed"
        assert most["pcapped"] <= 2, "the capped predictive campaign over-dialed"
        p = await _pacing(pred_sup, pred)
        if p["source"] == "dialer" and p["mode"] == "predictive" and most["fixed"] > 1:
            return p
        return None

    try:
        live = await wait_until(
            predictive_and_caps, within=240, what="predictive out of cold start", interval=0.5
        )
    finally:
        stop.set()
        dispositions = await driver
    print(f"predictive left cold start after {dispositions} dispositions: {live}")
    assert live["reason"] in ("risk_bound", "line_cap"), live
    assert live["dial_level"] is not None and live["dial_level"] > 0.0, live

    fixed_p = await _pacing(fixed[2], fixed[0])
    assert (fixed_p["mode"], fixed_p["reason"], fixed_p["source"]) == (
        "fixed_ratio",
        "fixed_ratio",
        "dialer",
    ), fixed_p
    assert fixed_p["dial_level"] is not None and fixed_p["dial_level"] > 1.0, fixed_p
    assert most["fixed"] > 1  # over-dialed on the PBX: more ringing lines than agents

    for camp, sup in ((capped[0], capped[2]), (pcapped[0], pcapped[2])):
        p = await _pacing(sup, camp)
        # today's history is the 30 days' too: the 30-day verdict is checked first
        assert (p["mode"], p["source"]) == ("progressive", "dialer"), p
        assert p["reason"] in ("hard_cap_30d", "hard_cap_today"), p
        assert p["dial_level"] is not None and p["dial_level"] <= 1.0, p

    pv = await _pacing(preview[2], preview[0])
    assert (pv["mode"], pv["reason"], pv["dial_level"]) == ("preview", "preview", None), pv
    # Preview calls are the agent's own (placed when they press "call" or when the 20 s
    # countdown ends): each is bound to the agent, in preview mode, never more than one.
    (agent,) = preview[1]
    rows = await stack.attempts(preview[0])
    assert all(a.agent_id == agent.user.id and a.mode == DialMode.PREVIEW for a in rows), [
        (a.agent_id, a.mode) for a in rows
    ]
    assert most["preview"] <= 1


async def _published(sup: AgentClient, camp: int) -> dict[str, Any] | None:
    """The dialer's published pacing once it sees the campaign's agents ready.

    A pacing round can run between the campaign's start and its agents' logins; that round
    publishes ``no_agents`` (dial level 0), which is right, and is not what this test waits for.
    """
    p = await _pacing(sup, camp)
    return p if p["source"] == "dialer" and p["reason"] != "no_agents" else None
