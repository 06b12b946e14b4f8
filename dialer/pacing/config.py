"""Pacing configuration (per campaign). Defaults are the benchmarked, untuned defaults."""

from __future__ import annotations

from dataclasses import dataclass

from dialer.domain.outcomes import DialMode


@dataclass(frozen=True, slots=True)
class PacingConfig:
    mode: DialMode = DialMode.PREDICTIVE
    # fixed ratio: total lines (ringing + waiting + talking) per active agent
    fixed_ratio: float = 1.5
    # compliance
    abandon_limit: float = 0.03  # legal limit, per day and per 30 days
    target_abandon: float = 0.025  # what the slow outer loop aims at (headroom below the limit)
    connect_timeout: float = 2.0  # seconds a live answer waits in hold before safe-harbor
    # hard cap: progressive as soon as fewer than this many abandons are left in today's or the
    # 30-day budget (limit * answers - abandons)
    cap_reserve_abandons: float = 1.5
    # AMD: declared false-positive rate of the campaign's AMD (humans hung up as machines). They
    # are invisible in the outcome counts but count as abandoned, so the pacer budgets for them.
    amd_false_positive: float = 0.0
    # predictive model
    cold_start_answers: int = 40  # live answers to see before leaving progressive
    cold_start_durations: int = 20  # talk and wrap-up samples to see before leaving progressive
    min_agents_predictive: int = 2  # fewer active agents: progressive (small-team fallback)
    max_dial_level: float = 6.0  # hard ceiling on lines per active agent
    cap_penalty: float = 0.8  # bound multiplier each time the hard cap engages mid-day
    initial_risk_bound: float = 0.012  # starting per-call P(abandon) bound (outer loop adapts it)
    min_risk_bound: float = 0.002
    max_risk_bound: float = 0.35
    outer_gain: float = 0.05  # log-step of the outer loop per live answer
    horizon_quantiles: tuple[float, ...] = (0.15, 0.5, 0.85)  # answer-time points averaged
    model_refresh_seconds: float = 600.0  # rebuild lookup tables at most this often

    def __post_init__(self) -> None:
        if not 0.0 < self.target_abandon <= self.abandon_limit < 1.0:
            raise ValueError("need 0 < target_abandon <= abandon_limit < 1")
        if self.fixed_ratio <= 0.0:
            raise ValueError("fixed_ratio must be positive")
        if self.connect_timeout < 0.0:
            raise ValueError("connect_timeout must be >= 0")
        if not 0.0 <= self.amd_false_positive < 0.5:
            raise ValueError("amd_false_positive must be in [0, 0.5)")
        if self.min_agents_predictive < 1:
            raise ValueError("min_agents_predictive must be >= 1")
        if not self.horizon_quantiles or not all(0 < q < 1 for q in self.horizon_quantiles):
            raise ValueError("horizon_quantiles must be in (0, 1)")
