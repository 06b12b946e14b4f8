"""Baseline pacing policies for the benchmark, and the policy registry used by the simulator.

* ``progressive`` and ``fixed_ratio`` come straight from :mod:`dialer.pacing`.
* :class:`VicidialAdaptHardLimit` is written from VICIdial's *documented* ADAPT_HARD_LIMIT
  behaviour (no VICIdial code was used): every ~15 s the dial level is multiplied by
  (1 + error * intensity), error = (avg ready agents - avg waiting calls) / avg active agents;
  it is clamped to [1, 3]; while the day's drop % exceeds the limit the level is 1.0; and it is
  halved when more than half of the last minute's answered calls were dropped. Lines are counted
  VICIdial-style: level * active agents - (ringing + waiting + talking). The dial level is
  lines per *active* agent, and VICIdial puts an agent on the disposition screen in pause (pause
  code DISPO) until the disposition is saved: agents in wrap-up are not active, so they count
  neither in the level nor in its error (``count_wrap_up=True`` restores the earlier reading,
  which dialed for agents still in wrap-up).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from dialer.domain.outcomes import CallOutcome, DialMode
from dialer.pacing import (
    AgentCounts,
    DecisionReason,
    Pacer,
    PacingConfig,
    PacingDecision,
    PacingSnapshot,
    Segment,
    fixed_ratio_launch,
)
from dialer.simulation.engine import SimPolicy
from dialer.simulation.scenario import Scenario


class VicidialAdaptHardLimit:
    """ADAPT_HARD_LIMIT-style adaptive dial level (baseline)."""

    def __init__(
        self,
        drop_limit: float = 0.03,
        interval: float = 15.0,
        intensity: float = 0.0,
        min_level: float = 1.0,
        max_level: float = 3.0,
        count_wrap_up: bool = False,
    ) -> None:
        self.level = 1.0
        self.count_wrap_up = count_wrap_up
        self.drop_limit = drop_limit
        self.interval = interval
        # VICIdial's intensity modifier runs -40..+40 around 0; we map it to a gain around 1.
        self.gain = 1.0 + intensity / 40.0
        self.min_level = min_level
        self.max_level = max_level
        self._window_start: float | None = None
        self._last_t = 0.0
        self._ready_area = 0.0
        self._waiting_area = 0.0
        self._agents_area = 0.0
        self._last = (0, 0, 0)
        self._answers: deque[tuple[float, bool]] = deque()

    def observe_call(
        self,
        segment: Segment,
        outcome: CallOutcome,
        ring_seconds: float,
        dialed_under: DecisionReason | None = None,
    ) -> None:
        if outcome.is_live_answer:
            self._answers.append((self._last_t, outcome is CallOutcome.ABANDONED))

    def observe_talk(self, seconds: float) -> None:
        return None

    def observe_wrap(self, seconds: float) -> None:
        return None

    def decide(self, snap: PacingSnapshot) -> PacingDecision:
        now = snap.now
        counts = AgentCounts(snap)
        if not self.count_wrap_up:  # wrap-up = VICIdial's DISPO pause: not an active agent
            counts.active -= counts.wrapping
            counts.wrapping = 0
        if self._window_start is None:
            self._window_start = now
            self._last_t = now
        # time-weighted averages over the adapt interval
        dt = now - self._last_t
        r, w, a = self._last
        self._ready_area += r * dt
        self._waiting_area += w * dt
        self._agents_area += a * dt
        self._last_t = now
        self._last = (counts.ready, snap.waiting, counts.active)

        st = snap.stats
        day_drop = st.abandons_today / st.answers_today if st.answers_today else 0.0
        if now - self._window_start >= self.interval:
            span = now - self._window_start
            avg_agents = self._agents_area / span
            if avg_agents > 0:
                err = (self._ready_area / span - self._waiting_area / span) / avg_agents
                self.level *= 1.0 + err * self.gain
            while self._answers and self._answers[0][0] < now - 60.0:
                self._answers.popleft()
            if self._answers:
                dropped = sum(1 for _, d in self._answers if d)
                if dropped > 0.5 * len(self._answers):
                    self.level /= 2.0
            self.level = min(max(self.level, self.min_level), self.max_level)
            self._window_start = now
            self._ready_area = self._waiting_area = self._agents_area = 0.0
        if day_drop > self.drop_limit:
            self.level = 1.0
        k = fixed_ratio_launch(snap, self.level, counts)
        lines = len(snap.ringing) + snap.waiting + counts.talking + k
        return PacingDecision(
            k,
            DialMode.PREDICTIVE,
            DecisionReason.FIXED_RATIO,
            lines / counts.active if counts.active else 0.0,
        )


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A picklable description of a policy: ``kind`` in POLICIES, optional fixed ratio.

    ``fixed_ratio`` with ``ratio == 0`` means "best fixed ratio": bisect it per scenario first.
    """

    kind: str
    ratio: float = 0.0

    @property
    def label(self) -> str:
        if self.kind == "fixed_ratio":
            return f"fixed_ratio({self.ratio:.2f})"
        return self.kind

    @property
    def tick_interval(self) -> float | None:
        # Event-driven policies only change their mind on events; the model-based one also
        # re-evaluates as ring and talk times age, every 1 s (the live engine ticks every
        # 0.5 s; 2 s cost the predictive pacer about 0.25 occupancy points at N=20, p=0.3);
        # the VICIdial-style controller samples its averages on the same tick.
        return 1.0 if self.kind in ("predictive", "oracle_supply", "vicidial") else None

    @property
    def reveal_free_times(self) -> bool:
        """``oracle_supply``: the predictive pacer told exactly when every agent frees up."""
        return self.kind == "oracle_supply"

    def factory(self, scenario: Scenario) -> Callable[[], SimPolicy]:
        kind = self.kind
        if kind in ("predictive", "oracle_supply"):
            cfg = PacingConfig(
                connect_timeout=scenario.connect_timeout,
                amd_false_positive=scenario.amd_false_positive,
            )
            return lambda: Pacer(cfg)
        if kind == "progressive":
            cfg = PacingConfig(mode=DialMode.PROGRESSIVE, connect_timeout=scenario.connect_timeout)
            return lambda: Pacer(cfg)
        if kind == "fixed_ratio":
            cfg = PacingConfig(
                mode=DialMode.FIXED_RATIO,
                fixed_ratio=self.ratio,
                connect_timeout=scenario.connect_timeout,
            )
            return lambda: Pacer(cfg)
        if kind == "vicidial":
            return VicidialAdaptHardLimit
        raise ValueError(f"unknown policy {kind!r}; choose from {', '.join(POLICIES)}")


POLICIES = ("predictive", "progressive", "vicidial", "fixed_ratio", "oracle_supply")


def parse_policy(text: str) -> PolicySpec:
    """Parse ``predictive``, ``progressive``, ``vicidial``, ``fixed_ratio`` or ``ratio:1.8``."""
    t = text.strip().lower()
    if t.startswith("ratio:"):
        try:
            ratio = float(t.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"bad ratio in {text!r}") from None
        if not math.isfinite(ratio) or ratio <= 0:
            raise ValueError(f"ratio must be positive in {text!r}")
        return PolicySpec("fixed_ratio", ratio)
    if t not in POLICIES:
        raise ValueError(f"unknown policy {text!r}; choose from {', '.join(POLICIES)} or ratio:X")
    return PolicySpec(t)
