"""Online estimators behind the predictive pacer (pure, no IO).

* :class:`AnswerRateEstimator`: live-answer probability by segment (list, attempt, hour),
  with hierarchical shrinkage global -> list -> list+attempt -> list+attempt+hour and
  exponential forgetting, so a new list or a new hour starts from its parent's estimate.
* :class:`PacingModel`: the fitted answer-delay / talk / wrap-up lognormals, the empirical
  distribution of when non-answered calls end, and lookup tables derived from them:
  - ``a``: P(an in-flight call answers within horizon h | it has rung r seconds), per p;
  - ``q``: P(an agent in talk / wrap-up is free within h + connect_timeout | elapsed e).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dialer.pacing.distributions import DecayingHistogram, LogMomentEstimator, LogNormal
from dialer.pacing.types import Segment

RING_RES = 4.0  # table steps per second of ring time
RING_N = 480  # 120 s; calls ringing longer than that count as not answering
WRAP_RES = 2.0
WRAP_N = 1200  # 600 s; longer wrap-ups use the last entry
TALK_RES = 0.25
TALK_N = 1800  # 2 h
P_BUCKETS = 200


class _Rate:
    __slots__ = ("a", "n")

    def __init__(self) -> None:
        self.a = 0.0
        self.n = 0.0

    def add(self, hit: bool, decay: float) -> None:
        self.a = self.a * decay + (1.0 if hit else 0.0)
        self.n = self.n * decay + 1.0


class AnswerRateEstimator:
    """P(live answer) per segment, shrunk towards the parent segment with ``kappa`` pseudo-dials."""

    def __init__(
        self,
        prior: float = 0.3,
        kappa: float = 25.0,
        global_window: float = 400.0,
        segment_window: float = 3000.0,
    ) -> None:
        self._prior = prior
        self._kappa = kappa
        self._gdecay = 1.0 - 1.0 / global_window
        self._sdecay = 1.0 - 1.0 / segment_window
        self._global = _Rate()
        self._rates: dict[tuple[object, ...], _Rate] = {}
        self.dials = 0
        self.live_answers = 0

    def observe(self, segment: Segment, live: bool) -> None:
        self.dials += 1
        self.live_answers += int(live)
        self._global.add(live, self._gdecay)
        for key in self._keys(segment):
            rate = self._rates.get(key)
            if rate is None:
                rate = self._rates[key] = _Rate()
            rate.add(live, self._sdecay)

    @staticmethod
    def _keys(s: Segment) -> tuple[tuple[object, ...], ...]:
        return ((s.list_id,), (s.list_id, s.attempt), (s.list_id, s.attempt, s.hour))

    def estimate(self, segment: Segment) -> float:
        k = self._kappa
        g = self._global
        p = (g.a + k * self._prior) / (g.n + k)
        for key in self._keys(segment):
            rate = self._rates.get(key)
            if rate is not None:
                p = (rate.a + k * p) / (rate.n + k)
        return min(max(p, 0.001), 0.999)


@dataclass(frozen=True, slots=True)
class Tables:
    """Lookup tables for one refresh of the model (see module docstring)."""

    horizons: tuple[float, ...]  # answer-time points h_m (s after dial), equally weighted
    levels: tuple[float, ...]  # F_D(h_m): share of live answers that come before h_m
    ring_f: tuple[float, ...]  # F_D on the ring grid
    ring_f_shift: tuple[tuple[float, ...], ...]  # F_D(r + h_m) on the ring grid, per m
    ring_sn: tuple[float, ...]  # survival of non-answer end times on the ring grid
    q_wrap: tuple[tuple[float, ...], ...]  # per m, by elapsed wrap-up
    qv_wrap: tuple[tuple[float, ...], ...]  # q(1-q)
    q_talk: tuple[tuple[float, ...], ...]
    qv_talk: tuple[tuple[float, ...], ...]
    rem_wrap: tuple[float, ...]  # expected remaining wrap-up by elapsed
    rem_talk: tuple[float, ...]  # expected remaining talk + mean wrap-up by elapsed
    gate_horizon: float  # "within the answer horizon": Q_D(0.95) + connect_timeout


class PacingModel:
    """Fitted distributions plus cached tables. Feed it observations; read :attr:`tables`."""

    def __init__(self, connect_timeout: float, horizon_quantiles: tuple[float, ...]) -> None:
        self.connect_timeout = connect_timeout
        self.horizon_quantiles = horizon_quantiles
        self.answer_rate = AnswerRateEstimator()
        self.answer_delay = LogMomentEstimator(LogNormal.from_mean_cv(10.0, 0.6))
        self.talk = LogMomentEstimator(LogNormal.from_mean_cv(120.0, 1.0))
        self.wrap = LogMomentEstimator(LogNormal.from_mean_cv(20.0, 0.6))
        self.nonlive_end = DecayingHistogram(1.0 / RING_RES, RING_N, window=3000.0)
        self._tables: Tables | None = None
        self._fitted: tuple[float, ...] = ()
        self._a_cache: dict[int, tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]] = {}
        self.built_at = -math.inf

    # -- observations -------------------------------------------------------------------------
    def observe_dial(self, segment: Segment, live: bool, ring_seconds: float) -> None:
        self.answer_rate.observe(segment, live)
        if live:
            self.answer_delay.observe(ring_seconds)
        else:
            self.nonlive_end.observe(ring_seconds)

    # -- tables --------------------------------------------------------------------------------
    def _params(self) -> tuple[float, ...]:
        d, t, w = self.answer_delay.estimate(), self.talk.estimate(), self.wrap.estimate()
        return (d.mu, d.sigma, t.mu, t.sigma, w.mu, w.sigma, float(self.nonlive_end.observations))

    def refresh(self, now: float, min_interval: float) -> Tables:
        """Rebuild the tables if due (time-limited) and the fit moved materially."""
        if self._tables is not None and now - self.built_at < min_interval:
            return self._tables
        params = self._params()
        if self._tables is not None and self._fitted:
            moved = max(abs(a - b) for a, b in zip(params[:6], self._fitted[:6], strict=True))
            grew = params[6] > 2.0 * self._fitted[6] + 50.0
            if moved < 0.04 and not grew:
                self.built_at = now
                return self._tables
        self._tables = self._build()
        self._fitted = params
        self._a_cache = {}
        self.built_at = now
        return self._tables

    @property
    def tables(self) -> Tables:
        if self._tables is None:
            self._tables = self._build()
            self._fitted = self._params()
        return self._tables

    def _build(self) -> Tables:
        d = self.answer_delay.estimate()
        t = self.talk.estimate()
        w = self.wrap.estimate()
        c = self.connect_timeout
        horizons = tuple(d.quantile(u) for u in self.horizon_quantiles)
        ring = [i / RING_RES for i in range(RING_N)]
        ring_f = tuple(d.cdf(r) for r in ring)
        ring_f_shift = tuple(tuple(d.cdf(r + h) for r in ring) for h in horizons)
        sn = self.nonlive_end.survival()
        if self.nonlive_end.observations == 0:
            # no data yet: assume a 25 s ring timeout
            sn = [1.0 if r < 25.0 else 0.0 for r in ring] + [0.0]
        ring_sn = tuple(sn[:RING_N])

        q_wrap: list[tuple[float, ...]] = []
        qv_wrap: list[tuple[float, ...]] = []
        wrap_e = [i / WRAP_RES for i in range(WRAP_N)]
        for h in horizons:
            row = []
            for e in wrap_e:
                s = w.sf(e)
                q = 1.0 if s < 1e-9 else min(1.0, (w.cdf(e + h + c) - w.cdf(e)) / s)
                row.append(q)
            q_wrap.append(tuple(row))
            qv_wrap.append(tuple(x * (1.0 - x) for x in row))

        # talk -> wrap -> free: convolve the talk residual with wrap-up quantiles
        n_w = 6
        w_pts = [w.quantile((j + 0.5) / n_w) for j in range(n_w)]
        talk_e = [i / TALK_RES for i in range(TALK_N)]
        q_talk: list[tuple[float, ...]] = []
        qv_talk: list[tuple[float, ...]] = []
        talk_cdf_e = [t.cdf(e) for e in talk_e]
        for h in horizons:
            row = []
            for e, fe in zip(talk_e, talk_cdf_e, strict=True):
                s = 1.0 - fe
                if s < 1e-9:
                    row.append(0.0)
                    continue
                acc = 0.0
                for wv in w_pts:
                    x = e + h + c - wv
                    if x > e:
                        acc += t.cdf(x) - fe
                row.append(min(1.0, acc / (n_w * s)))
            q_talk.append(tuple(row))
            qv_talk.append(tuple(x * (1.0 - x) for x in row))

        rem_wrap = tuple(w.conditional_remaining_mean(e) for e in wrap_e)
        w_mean = w.mean
        rem_talk = tuple(t.conditional_remaining_mean(e) + w_mean for e in talk_e)
        return Tables(
            horizons=horizons,
            levels=tuple(self.horizon_quantiles),
            ring_f=ring_f,
            ring_f_shift=ring_f_shift,
            ring_sn=ring_sn,
            q_wrap=tuple(q_wrap),
            qv_wrap=tuple(qv_wrap),
            q_talk=tuple(q_talk),
            qv_talk=tuple(qv_talk),
            rem_wrap=rem_wrap,
            rem_talk=rem_talk,
            gate_horizon=d.quantile(0.95) + c,
        )

    def answer_tables(self, p: float) -> tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]:
        """Per horizon m: (a, a(1-a)) by ring-grid index, for calls of live-answer prob ``p``."""
        pb = min(max(round(p * P_BUCKETS), 1), P_BUCKETS - 1)
        cached = self._a_cache.get(pb)
        if cached is not None:
            return cached
        tb = self.tables
        pp = pb / P_BUCKETS
        out = []
        for shift in tb.ring_f_shift:
            a_row = []
            for f, fs, sn in zip(tb.ring_f, shift, tb.ring_sn, strict=True):
                den = pp * (1.0 - f) + (1.0 - pp) * sn
                a_row.append(0.0 if den < 1e-9 else min(1.0, pp * (fs - f) / den))
            out.append((tuple(a_row), tuple(x * (1.0 - x) for x in a_row)))
        result = tuple(out)
        self._a_cache[pb] = result
        return result
