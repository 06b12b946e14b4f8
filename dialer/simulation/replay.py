"""What-if replay: fit a scenario from a campaign's recorded attempts.

The database side (loading attempts of a campaign) lives with the engine; this module only needs
plain records, so it stays pure and testable. ``marcador simulate --from-campaign ID`` loads the
records, calls :func:`scenario_from_history`, and simulates the fitted scenario under the chosen
policies and settings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from dialer.domain.outcomes import CallOutcome
from dialer.simulation.scenario import Dist, Scenario, ScenarioError

_FAST_FAIL = frozenset(
    {
        CallOutcome.BUSY,
        CallOutcome.CONGESTION,
        CallOutcome.REJECTED,
        CallOutcome.INVALID_NUMBER,
        CallOutcome.FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One recorded attempt, as the replay needs it.

    ``ring_seconds``: dial -> answer for answered calls (live or machine), dial -> end otherwise.
    ``talk_seconds`` / ``wrap_seconds``: for connected calls. ``agent_id`` lets the replay
    count how many agents were working.
    """

    dialed_at: datetime
    outcome: CallOutcome
    ring_seconds: float
    talk_seconds: float | None = None
    wrap_seconds: float | None = None
    agent_id: str | None = None


def _lognormal_fit(values: Sequence[float], key: str) -> Dist:
    xs = [v for v in values if v > 0 and math.isfinite(v)]
    if len(xs) < 2:
        raise ScenarioError(f"history: not enough {key} samples to fit (need >= 2, got {len(xs)})")
    logs = [math.log(x) for x in xs]
    m = sum(logs) / len(logs)
    v = sum((x - m) ** 2 for x in logs) / (len(logs) - 1)
    mean = math.exp(m + v / 2.0)
    cv = math.sqrt(math.expm1(v))
    return Dist("lognormal", mean, cv)


def scenario_from_history(
    records: Iterable[AttemptRecord],
    name: str = "replay",
    agents: int | None = None,
    shift_hours: float | None = None,
    shifts: int = 20,
    seeds: int = 5,
    connect_timeout: float = 2.0,
    amd_false_positive: float = 0.0,
) -> Scenario:
    """Fit a :class:`Scenario` from recorded attempts.

    * answer probability: answers (live or machine) / non-fast-fail attempts, per hour of shift;
    * answer delay, talk, wrap-up: lognormal fits of the connected calls;
    * no-answer timeout: uniform over the observed range of NO_ANSWER ring times;
    * fast failures: busy/congestion/rejected/invalid/failed, with their mean time;
    * machines: MACHINE share of answers (AMD on when any);
    * agents: distinct agents seen (or ``agents``); shift length: first..last dial per day.
    """
    recs = sorted(records, key=lambda r: r.dialed_at)
    if not recs:
        raise ScenarioError("history: no attempts to replay")
    live = [r for r in recs if r.outcome.is_live_answer]
    connected = [r for r in recs if r.outcome is CallOutcome.ANSWERED_CONNECTED]
    fast = [r for r in recs if r.outcome in _FAST_FAIL]
    machines = [r for r in recs if r.outcome is CallOutcome.MACHINE]
    no_answer = [r for r in recs if r.outcome is CallOutcome.NO_ANSWER]
    considered = [r for r in recs if r.outcome is not CallOutcome.CANCELLED]
    if len(live) < 2:
        raise ScenarioError(f"history: need at least 2 live answers, got {len(live)}")

    # hourly answer profile over the hours of the day seen in the data
    start_hour = min(r.dialed_at.hour for r in recs)
    end_hour = max(r.dialed_at.hour for r in recs)
    dials_h = [0] * (end_hour - start_hour + 1)
    live_h = [0] * (end_hour - start_hour + 1)
    for r in considered:
        if r.outcome in _FAST_FAIL:
            continue
        i = r.dialed_at.hour - start_hour
        dials_h[i] += 1
        live_h[i] += int(r.outcome.is_live_answer or r.outcome is CallOutcome.MACHINE)
    overall = sum(live_h) / max(1, sum(dials_h))
    # shrink sparse hours towards the overall rate (20 pseudo-dials)
    profile = [
        round((lv + 20 * overall) / (d + 20), 4) for lv, d in zip(live_h, dials_h, strict=True)
    ]
    if max(profile) - min(profile) < 0.01:
        profile = [round(overall, 4)]

    talk = _lognormal_fit([r.talk_seconds for r in connected if r.talk_seconds], "talk")
    wraps = [r.wrap_seconds for r in connected if r.wrap_seconds]
    wrap = _lognormal_fit(wraps, "wrap") if len(wraps) >= 2 else Dist("constant", 1.0)
    delay = _lognormal_fit([r.ring_seconds for r in live], "answer delay")
    if no_answer:
        ring = [r.ring_seconds for r in no_answer]
        timeout = Dist("uniform", min(ring), max(ring))
    else:
        timeout = Dist("uniform", 20.0, 25.0)
    answered = len(live) + len(machines)
    n_agents = agents or len({r.agent_id for r in connected if r.agent_id}) or 1
    days = {r.dialed_at.date() for r in recs}
    if shift_hours is None:
        spans = []
        for day in days:
            ts = [r.dialed_at for r in recs if r.dialed_at.date() == day]
            spans.append((max(ts) - min(ts)).total_seconds() / 3600.0)
        shift_hours = max(1.0, round(sum(spans) / len(spans), 2))
    return Scenario(
        name=name,
        description=f"Fitted from {len(recs)} recorded attempts over {len(days)} day(s)",
        agents=n_agents,
        answer_prob=tuple(profile),
        answer_delay=delay,
        talk=talk,
        wrap=wrap,
        no_answer_timeout=timeout,
        fast_fail_share=len(fast) / len(considered) if considered else 0.0,
        fast_fail_seconds=max(0.5, sum(r.ring_seconds for r in fast) / len(fast)) if fast else 3.0,
        machine_share=len(machines) / answered if answered else 0.0,
        amd_false_positive=amd_false_positive,
        shift_hours=shift_hours,
        shifts=shifts,
        seeds=tuple(range(1, seeds + 1)),
        connect_timeout=connect_timeout,
        shift_start_hour=start_hour,
    )
