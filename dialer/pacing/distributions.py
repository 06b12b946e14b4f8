"""Small, dependency-free distribution helpers used by the pacing model (pure math, no IO)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_SQRT2 = math.sqrt(2.0)
_STD_NORMAL = NormalDist()


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal, P(Z > z)."""
    return 0.5 * math.erfc(z / _SQRT2)


def normal_quantile(u: float) -> float:
    return _STD_NORMAL.inv_cdf(u)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Lognormal distribution parametrised by the mean and sd of ``ln X``."""

    mu: float
    sigma: float

    @classmethod
    def from_mean_cv(cls, mean: float, cv: float) -> LogNormal:
        if mean <= 0 or cv < 0:
            raise ValueError(f"lognormal needs mean > 0 and cv >= 0 (got mean={mean}, cv={cv})")
        s2 = math.log1p(cv * cv)
        return cls(math.log(mean) - s2 / 2.0, math.sqrt(s2))

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma * self.sigma / 2.0)

    @property
    def cv(self) -> float:
        return math.sqrt(math.expm1(self.sigma * self.sigma))

    def cdf(self, x: float) -> float:
        if x <= 0.0:
            return 0.0
        if self.sigma <= 0.0:
            return 1.0 if math.log(x) >= self.mu else 0.0
        return 0.5 * math.erfc(-(math.log(x) - self.mu) / (self.sigma * _SQRT2))

    def sf(self, x: float) -> float:
        return 1.0 - self.cdf(x)

    def quantile(self, u: float) -> float:
        return math.exp(self.mu + self.sigma * normal_quantile(u))

    def conditional_remaining_mean(self, elapsed: float) -> float:
        """E[X - e | X > e]: expected remaining time after ``elapsed`` seconds."""
        if elapsed <= 0.0:
            return self.mean
        s = self.sigma
        if s <= 0.0:
            return max(0.0, math.exp(self.mu) - elapsed)
        z = (math.log(elapsed) - self.mu) / s
        tail = normal_sf(z)
        if tail < 1e-12:
            return 0.0
        # E[X 1{X>e}] = mean * P(Z > z - sigma)
        return max(0.0, self.mean * normal_sf(z - s) / tail - elapsed)


class LogMomentEstimator:
    """Online lognormal fit: exponentially weighted mean/variance of ``ln x`` with a prior.

    ``window`` is the effective memory in observations; ``prior_weight`` pseudo-observations of
    the prior keep early estimates sane (they fade as data arrives).
    """

    __slots__ = ("_m", "_n", "_s2", "_window", "count")

    def __init__(self, prior: LogNormal, prior_weight: float = 5.0, window: float = 2000.0) -> None:
        self._n = prior_weight
        self._m = prior.mu
        self._s2 = prior.sigma * prior.sigma
        self._window = window
        self.count = 0

    def observe(self, x: float) -> None:
        if not (x > 0.0) or math.isinf(x):
            return
        lx = math.log(max(x, 0.05))
        self.count += 1
        self._n = min(self._n + 1.0, self._window)
        w = 1.0 / self._n
        d = lx - self._m
        self._m += w * d
        self._s2 = (1.0 - w) * (self._s2 + w * d * d)

    def estimate(self) -> LogNormal:
        return LogNormal(self._m, math.sqrt(max(self._s2, 1e-6)))


class DecayingHistogram:
    """Histogram of durations in fixed bins with exponential forgetting (empirical survival)."""

    __slots__ = ("_counts", "_growth", "_inc", "bin_width", "observations")

    def __init__(self, bin_width: float, n_bins: int, window: float = 2000.0) -> None:
        self.bin_width = bin_width
        self._counts = [0.0] * n_bins
        # Forgetting without touching every bin: each new observation weighs 1/decay times more
        # than the previous one; counts are renormalised when the weight grows large.
        self._growth = 1.0 / (1.0 - 1.0 / window)
        self._inc = 1.0
        self.observations = 0

    def observe(self, x: float) -> None:
        i = min(max(int(x / self.bin_width), 0), len(self._counts) - 1)
        self._counts[i] += self._inc
        self._inc *= self._growth
        self.observations += 1
        if self._inc > 1e9:
            scale = 1.0 / self._inc
            self._counts = [c * scale for c in self._counts]
            self._inc = 1.0

    def survival(self) -> list[float]:
        """S[i] = P(X >= i * bin_width) for i in 0..n_bins (the last entry is 0)."""
        tot = sum(self._counts)
        n = len(self._counts)
        out = [0.0] * (n + 1)
        if tot <= 0.0:
            return out
        acc = tot
        for i in range(n):
            out[i] = max(acc / tot, 0.0)
            acc -= self._counts[i]
        return out
