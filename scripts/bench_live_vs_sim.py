"""Live against simulated (issue 20, "Live equals simulated").

One predictive campaign runs on the lab Asterisk (:class:`dialer.pbx_lab.LabPbx`) with the real
``marcador dialer`` and ``marcador api`` processes (:class:`tests.pbx.stack.PbxStack`, as in
``scripts/bench_pbx.py``) and N virtual agents for ``--minutes``. The agents take every call
they are offered; the lab customer decides the talk time (it hangs up: digit 1 says "¿Aló?" and
talks 6 s, digit 6 greets and listens 8 s); each agent dispositions after a seeded lognormal
wrap-up (``--wrap-mean`` s, cv 0.3), through the API, as the disposition loop of
``tests/pbx/test_pacing_tier.py`` does. The leads are a seeded mix of lab numbers
(:data:`MIX`): answers after 0-6 s of ringing, ring-no-answer until the campaign's ring
timeout, busy, rejected, unallocated, congestion. The campaign has ``--history`` live answers
of today already (:meth:`PbxStack.seed_history`, as the pacing tier does): the abandon cap's
budget, so the pacer's own cold start (40 live answers, 20 talk and wrap-up samples) is what
holds it progressive at first. Those rows are deleted after the run: neither the live figures
nor the replay's fit see them.

Then the same campaign is replayed in the simulator from the same database with the
``marcador simulate --from-campaign ID`` machinery (:func:`load_campaign_history`, the fitted
scenario of :meth:`CampaignHistory.scenario`), predictive policy, read twice:

* ``sim (matched)``: one shift as long as the live window, from a cold pacer, with the same
  ``--history`` answers of today (``Scenario.prior_answers``), ``--sim-seeds`` seeds;
* ``sim (replay default)``: what ``marcador simulate --from-campaign ID -p predictive`` prints
  (the fitted shift length, at least 1 h, 20 shifts, 5 seeds): the pacer's steady state.

Metrics (:mod:`dialer.simulation.live_compare`, the simulator's definitions): occupancy
(talk + wrap-up) / logged-in time (``agent_state_log`` spans over the window), talk share, abandon
rate (abandoned / live answers) and dials per connect (``call_attempts`` of the window). The
published pacing state (``GET /campaigns/{id}/live``) is sampled every second: the share of
time in cold start / warm-up / predictive explains most of the gap.

Usage::

    nice .venv/bin/python scripts/bench_live_vs_sim.py              # markdown table
    nice .venv/bin/python scripts/bench_live_vs_sim.py --json       # one JSON object, last line
    .venv/bin/python scripts/bench_live_vs_sim.py --minutes 1 --agents 3 --json   # smoke

Progress goes to stderr. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from dialer.db.engine import make_sessionmaker  # noqa: E402
from dialer.db.models import AgentStateLog, CallAttempt, Lead, Role  # noqa: E402
from dialer.domain.outcomes import CampaignStatus, DialMode  # noqa: E402
from dialer.lab_pstn import late_number  # noqa: E402
from dialer.pbx_lab import LabPbx, bundle_present  # noqa: E402
from dialer.redis_client import connect_redis  # noqa: E402
from dialer.redis_keys import Keys  # noqa: E402
from dialer.settings import load_settings  # noqa: E402
from dialer.simulation.baselines import PolicySpec  # noqa: E402
from dialer.simulation.history import CampaignHistory, load_campaign_history  # noqa: E402
from dialer.simulation.live_compare import (  # noqa: E402
    PacingMetrics,
    StateSpan,
    live_metrics,
    side_by_side,
    sim_metrics,
)
from dialer.simulation.runner import run_policy  # noqa: E402
from dialer.simulation.scenario import ScenarioError  # noqa: E402
from tests.pbx.phones import update_campaign  # noqa: E402
from tests.pbx.stack import AgentClient, PbxStack, wait_until  # noqa: E402

# (lab behaviour digit, share of the leads, seconds of ringing before it: min, max)
MIX: tuple[tuple[str, float, tuple[int, int]], ...] = (
    ("1", 0.18, (2, 9)),  # answers, "¿Aló?" + 6 s, hangs up
    ("6", 0.14, (2, 9)),  # a person: 0.8 s greeting, listens 8 s, hangs up
    ("4", 0.38, (0, 0)),  # rings until the campaign's ring timeout
    ("2", 0.12, (1, 4)),  # busy
    ("8", 0.06, (1, 4)),  # rejected
    ("9", 0.07, (0, 0)),  # unallocated
    ("3", 0.05, (0, 0)),  # congestion
)
DISPOSITION = {"code": "no_interesado", "details": {"reason": "precio"}}
WRAP_CV = 0.3


def say(msg: str) -> None:
    print(f"[bench_live_vs_sim {time.strftime('%X')}] {msg}", file=sys.stderr, flush=True)


def lead_numbers(n: int, seed: int) -> list[str]:
    """``n`` distinct lab numbers drawn from :data:`MIX` (seeded)."""
    rng = random.Random(seed)
    digits = [d for d, _, _ in MIX]
    weights = [w for _, w, _ in MIX]
    rings = {d: r for d, _, r in MIX}
    out = []
    for i in range(n):
        d = rng.choices(digits, weights)[0]
        lo, hi = rings[d]
        out.append(late_number(d, i, rng.randint(lo, hi)))
    return out


def wrap_seconds(seed: int, attempt: str, mean: float) -> float:
    """The wrap-up an agent takes on ``attempt``: lognormal, ``mean`` s, cv 0.3 (seeded)."""
    sigma = math.sqrt(math.log1p(WRAP_CV**2))
    return random.Random(f"{seed}:{attempt}").lognormvariate(math.log(mean) - sigma**2 / 2.0, sigma)


# --- live run -----------------------------------------------------------------------------


async def _agents_loop(
    stack: PbxStack,
    clients: list[AgentClient],
    stop: asyncio.Event,
    seed: int,
    wrap_mean: float,
) -> int:
    """Every agent dispositions its call once its drawn wrap-up has elapsed. The state is read
    from Redis (what the agent screen shows), the disposition goes through the API."""
    settings = stack.redis_settings()
    keys = Keys(settings.redis.key_prefix)
    redis = connect_redis(settings)
    done: set[str] = set()
    try:
        while not stop.is_set():
            now = datetime.now(UTC)
            for c in clients:
                st: dict[str, str] = await redis.client.hgetall(keys.agent_state(c.user.id))  # type: ignore[misc]
                attempt = st.get("attempt", "")
                if st.get("state") != "wrap_up" or not attempt or attempt in done:
                    continue
                since = datetime.fromisoformat(st["since"])
                if (now - since).total_seconds() < wrap_seconds(seed, attempt, wrap_mean):
                    continue
                r = await c.post("/agent/disposition", {"attempt": attempt, **DISPOSITION})
                if r.status_code == 200:
                    done.add(attempt)
            await asyncio.sleep(0.1)  # a polling agent screen, not a wait for a state
    finally:
        await redis.close()
    return len(done)


async def _pacing_loop(sup: AgentClient, camp: int, stop: asyncio.Event) -> list[dict[str, Any]]:
    """The published pacing state, once a second."""
    samples: list[dict[str, Any]] = []
    while not stop.is_set():
        with contextlib.suppress(Exception):
            r = await sup.http.get(f"/api/v1/campaigns/{camp}/live")
            if r.status_code == 200:
                samples.append(r.json().get("pacing") or {})
        await asyncio.sleep(1.0)  # a sampling period
    return samples


async def _spans(stack: PbxStack, user_ids: list[int]) -> list[StateSpan]:
    async with make_sessionmaker(stack.engine)() as s:
        rows = await s.execute(
            sa.select(AgentStateLog.state, AgentStateLog.started_at, AgentStateLog.ended_at).where(
                AgentStateLog.user_id.in_(user_ids)
            )
        )
        return [StateSpan(st, a, b) for st, a, b in rows.tuples()]


async def _drop_history(stack: PbxStack, camp: int) -> None:
    """Delete the rows :meth:`PbxStack.seed_history` wrote (its excluded lead's attempts)."""
    async with make_sessionmaker(stack.engine).begin() as s:
        lead = sa.select(Lead.id).where(Lead.dedupe_key == f"history:{camp}")
        await s.execute(sa.delete(CallAttempt).where(CallAttempt.lead_id.in_(lead)))


async def run_live(
    lab: LabPbx, tmp: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], PacingMetrics, CampaignHistory]:
    n_leads = max(200, int(args.minutes * 60 * args.agents * 0.6))
    stack = PbxStack(lab, tmp, max_channels=args.agents * 8 + 10, log_level="warning")
    say("starting marcador api + dialer")
    stack.start()
    try:
        numbers = lead_numbers(n_leads, args.seed)
        # Agents log in to a running campaign; its leads come once all are in their rooms.
        camp, _ = await stack.seed_campaign(
            [],
            mode=DialMode.PREDICTIVE,
            max_attempts=1,
            ring_timeout=args.ring_timeout,
            connect_timeout=2.0,
            wrap_up_seconds=300,  # the agents disposition; the engine never ends a wrap-up
        )
        if args.history:
            # today's earlier answers (as the pacing tier seeds them): the abandon cap's budget
            await stack.seed_history(camp, args.history)
        users = await stack.add_agents(camp, [str(1101 + i) for i in range(args.agents)])
        (sup_user,) = await stack.add_agents(camp, ["2901"], role=Role.SUPERVISOR)
        say(f"campaign {camp}: {n_leads} leads; logging in {args.agents} virtual agents")
        clients = await stack.login_agents(camp, users, within=90 + 2 * args.agents)
        sup = await stack.agent_client(sup_user)

        stop, window_closed = asyncio.Event(), asyncio.Event()
        agents_task = asyncio.create_task(_agents_loop(stack, clients, stop, args.seed, args.wrap))
        load0 = os.getloadavg()
        await stack.add_leads(camp, numbers)  # one transaction: the window opens at its commit
        t0 = datetime.now(UTC)
        pacing_task = asyncio.create_task(_pacing_loop(sup, camp, window_closed))
        say(f"campaign running for {args.minutes:g} min")
        try:
            await asyncio.sleep(args.minutes * 60.0)  # the measured window itself
            t1 = datetime.now(UTC)
            window_closed.set()
            await update_campaign(stack, camp, status=CampaignStatus.PAUSED)
            say("campaign paused; waiting for the calls in flight to end")

            async def settled() -> bool:
                rows = await stack.attempts(camp)
                return all(a.outcome is not None for a in rows)

            with contextlib.suppress(AssertionError):
                await wait_until(settled, within=60, what="outcomes of the calls in flight")
        finally:
            stop.set()
            window_closed.set()
            dispositions = await agents_task
            samples = await pacing_task
        load1 = os.getloadavg()

        await _drop_history(stack, camp)  # not part of the run, nor of its replay
        attempts = [a for a in await stack.attempts(camp) if a.created_at < t1]
        live = live_metrics(
            (a.outcome for a in attempts), await _spans(stack, [u.id for u in users]), t0, t1
        )
        settings = load_settings(database={"url": stack.db_url})
        hist = await load_campaign_history(settings, str(camp))
    finally:
        say("stopping the processes")
        await stack.aclose()

    reasons = Counter(f"{p.get('mode')}/{p.get('reason')}" for p in samples if p)
    n = sum(reasons.values()) or 1
    levels = [float(p["dial_level"]) for p in samples if p.get("dial_level") is not None]
    info = {
        "campaign_id": camp,
        "leads": n_leads,
        "window_s": round((t1 - t0).total_seconds(), 1),
        "dispositions": dispositions,
        "outcomes": dict(Counter(str(a.outcome) for a in attempts)),
        "pacing_share": {k: round(v / n, 3) for k, v in reasons.most_common()},
        "dial_level_mean": round(sum(levels) / len(levels), 3) if levels else None,
        "dial_level_max": max(levels, default=None),
        "load_avg_1m": round((load0[0] + load1[0]) / 2, 2),
    }
    return info, live, hist


# --- replay -------------------------------------------------------------------------------


def run_sim(hist: CampaignHistory, window_s: float, seeds: int, prior: int) -> dict[str, Any]:
    sc = hist.scenario()
    spec = PolicySpec("predictive")
    matched = sc.with_overrides(
        name=f"{sc.name}-matched",
        shift_hours=window_s / 3600.0,
        shifts=1,
        seeds=tuple(range(1, seeds + 1)),
        prior_answers=prior,
    )
    say(f"simulating {matched.name}: {seeds} seeds x 1 shift of {window_s:.0f} s")
    m = run_policy(matched, spec)
    say(f"simulating {sc.name}: {len(sc.seeds)} seeds x {sc.shifts} shifts of {sc.shift_hours} h")
    d = run_policy(sc, spec)
    return {
        "scenario": sc.to_json(),
        "matched": sim_metrics(m.summary),
        "matched_ci95": {k: round(v.ci95, 4) for k, v in m.summary.items()},
        "default": sim_metrics(d.summary),
        "default_ci95": {k: round(v.ci95, 4) for k, v in d.summary.items()},
    }


# --- CLI ----------------------------------------------------------------------------------


async def _bench(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    say(f"starting a lab PBX in {run_dir}")
    lab = LabPbx.start(run_dir / "lab", progress=say)
    try:
        info, live, hist = await run_live(lab, run_dir / "run", args)
    finally:
        say("stopping the lab PBX")
        lab.stop()
    sim = await asyncio.to_thread(run_sim, hist, info["window_s"], args.sim_seeds, args.history)
    sims: list[tuple[str, PacingMetrics]] = [
        ("sim (matched)", sim["matched"]),
        ("sim (replay default)", sim["default"]),
    ]
    return {
        "minutes": args.minutes,
        "agents": args.agents,
        "wrap_mean_s": args.wrap,
        "ring_timeout_s": args.ring_timeout,
        "seed": args.seed,
        "history_answers": args.history,
        "sim_seeds": args.sim_seeds,
        **info,
        "live": live.to_json(),
        "sim_matched": sim["matched"].to_json(),
        "sim_matched_ci95": sim["matched_ci95"],
        "sim_default": sim["default"].to_json(),
        "sim_default_ci95": sim["default_ci95"],
        "scenario": sim["scenario"],
        "table": side_by_side(live, sims),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A real-PBX campaign against its simulated replay")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--minutes", type=float, default=4.0, help="live campaign length (4)")
    ap.add_argument("--agents", type=int, default=6, help="virtual agents (6)")
    ap.add_argument("--wrap", type=float, default=3.0, help="mean wrap-up seconds (3)")
    ap.add_argument("--ring-timeout", type=int, default=20, help="campaign ring timeout (20)")
    ap.add_argument("--seed", type=int, default=1, help="lead mix and wrap-up draws (1)")
    ap.add_argument("--sim-seeds", type=int, default=20, help="seeds of the matched replay (20)")
    ap.add_argument(
        "--history",
        type=int,
        default=300,
        help="live answers recorded earlier today (the abandon cap's budget; 300, as the pacing "
        "tier; 0: a brand-new campaign, progressive until ~50 answers)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or args.agents < 1 or args.wrap <= 0 or args.sim_seeds < 1:
        ap.error("--minutes, --wrap > 0; --agents, --sim-seeds >= 1")
    if not bundle_present():
        print("no Asterisk bundle (see dialer/pbx_lab.py): nothing to measure", file=sys.stderr)
        return 2
    run_dir = Path(tempfile.mkdtemp(prefix="marcador-bench-livesim-"))
    try:
        bound = 600.0 + args.minutes * 60.0 + 5.0 * args.agents
        result = asyncio.run(asyncio.wait_for(_bench(args, run_dir), bound))
    except ScenarioError as exc:  # too short a run to fit a scenario from
        print(f"the replay could not fit the campaign: {exc}", file=sys.stderr)
        return 3
    finally:
        if args.keep:
            say(f"run directory kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"Live vs simulated: {args.agents} agents, {result['window_s']:.0f} s window, "
            f"campaign {result['campaign_id']}, load {result['load_avg_1m']}\n"
        )
        print(result["table"])
        print(f"\npublished pacing (share of 1 s samples): {result['pacing_share']}")
        print(f"outcomes: {result['outcomes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
