"""Live against simulated: the same three pacing metrics from a real campaign run and from its
replay (issue 20, "Live equals simulated"; ``scripts/bench_live_vs_sim.py``).

Pure: the benchmark reads the rows (``call_attempts`` outcomes, ``agent_state_log`` spans) and
the simulator's summaries; this module turns them into comparable numbers, with the simulator's
definitions (``dialer/simulation/metrics.py``):

* **occupancy** (talk + wrap-up) / logged-in time, paused time excluded: the simulator calls it
  ``utilization``; ``talk_share`` is talk / logged-in (the simulator's ``occupancy``);
* **abandon rate**: abandoned / live answers (answered_connected + abandoned);
* **dials per connect**: every dial (cancelled ones included: they were placed) / connected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.simulation.metrics import Estimate

_NOT_LOGGED = frozenset({AgentState.LOGGED_OUT, AgentState.PAUSED})


@dataclass(frozen=True, slots=True)
class StateSpan:
    """One ``agent_state_log`` row: ``ended_at`` None while still open."""

    state: AgentState
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class PacingMetrics:
    occupancy: float  # (talk + wrap) / logged-in
    talk_share: float  # talk / logged-in
    abandon_rate: float  # abandoned / live answers
    dials_per_connect: float
    dials: int = 0
    connects: int = 0
    live_answers: int = 0
    abandoned: int = 0
    talk_s: float = 0.0
    wrap_s: float = 0.0
    logged_in_s: float = 0.0

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "occupancy": _finite(self.occupancy),
            "talk_share": _finite(self.talk_share),
            "abandon_rate": _finite(self.abandon_rate),
            "dials_per_connect": _finite(self.dials_per_connect),
            "dials": self.dials,
            "connects": self.connects,
            "live_answers": self.live_answers,
            "abandoned": self.abandoned,
            "talk_s": round(self.talk_s, 2),
            "wrap_s": round(self.wrap_s, 2),
            "logged_in_s": round(self.logged_in_s, 2),
        }


def _finite(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def _clip(span: StateSpan, start: datetime, end: datetime) -> float:
    lo = max(span.started_at, start)
    hi = min(span.ended_at or end, end)
    return max(0.0, (hi - lo).total_seconds())


def live_metrics(
    outcomes: Iterable[CallOutcome | None],
    spans: Iterable[StateSpan],
    start: datetime,
    end: datetime,
) -> PacingMetrics:
    """The three metrics of a live run: ``outcomes`` of the attempts dialed in the window
    (None: no outcome yet, still counted as a dial), agent ``spans`` clipped to [start, end]."""
    if end <= start:
        raise ValueError("the window must end after it starts")
    talk = wrap = logged = 0.0
    for sp in spans:
        if sp.state in _NOT_LOGGED:
            continue
        secs = _clip(sp, start, end)
        logged += secs
        if sp.state is AgentState.IN_CALL:
            talk += secs
        elif sp.state is AgentState.WRAP_UP:
            wrap += secs
    dials = connects = abandoned = 0
    for o in outcomes:
        dials += 1
        connects += o is CallOutcome.ANSWERED_CONNECTED
        abandoned += o is CallOutcome.ABANDONED
    live = connects + abandoned
    return PacingMetrics(
        occupancy=(talk + wrap) / logged if logged else 0.0,
        talk_share=talk / logged if logged else 0.0,
        abandon_rate=abandoned / live if live else 0.0,
        dials_per_connect=dials / connects if connects else math.inf,
        dials=dials,
        connects=connects,
        live_answers=live,
        abandoned=abandoned,
        talk_s=talk,
        wrap_s=wrap,
        logged_in_s=logged,
    )


def sim_metrics(summary: Mapping[str, Estimate]) -> PacingMetrics:
    """The same metrics from a simulator summary (means over seeds)."""
    return PacingMetrics(
        occupancy=summary["utilization"].mean,
        talk_share=summary["occupancy"].mean,
        abandon_rate=summary["abandon_30d"].mean,
        dials_per_connect=summary["dials_per_connect"].mean,
    )


ROWS: tuple[tuple[str, str, bool], ...] = (
    # (attribute, label, shown as a percentage)
    ("occupancy", "occupancy (talk+wrap)/logged-in", True),
    ("talk_share", "talk/logged-in", True),
    ("abandon_rate", "abandon rate (abandoned/live answers)", True),
    ("dials_per_connect", "dials per connect", False),
)


def _fmt(value: float, pct: bool) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.2f}%" if pct else f"{value:.2f}"


def _diff(value: float, base: float, pct: bool) -> str:
    if not (math.isfinite(value) and math.isfinite(base)):
        return "n/a"
    d = value - base
    return f"{100 * d:+.2f} pt" if pct else f"{d:+.2f}"


def side_by_side(live: PacingMetrics, sims: Sequence[tuple[str, PacingMetrics]]) -> str:
    """A markdown table: live, each simulated reading, and each one's difference to live."""
    head = ["metric", "live (real PBX)"]
    for name, _ in sims:
        head += [name, f"{name} - live"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for attr, label, pct in ROWS:
        base = float(getattr(live, attr))
        cells = [label, _fmt(base, pct)]
        for _, m in sims:
            v = float(getattr(m, attr))
            cells += [_fmt(v, pct), _diff(v, base, pct)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
