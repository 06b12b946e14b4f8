"""The pacer: one stateful, IO-free object per campaign.

The live engine (and the simulator) call :meth:`Pacer.decide` with a frozen
:class:`~dialer.pacing.types.PacingSnapshot` and launch ``decision.launch`` calls, and feed
outcomes back through :meth:`Pacer.observe_call`, :meth:`Pacer.observe_talk` and
:meth:`Pacer.observe_wrap`. Nothing here reads a clock, a socket or a file: ``now`` travels in
the snapshot. See ``docs/pacing.md`` for the algorithm.
"""

from __future__ import annotations

import math

from dialer.domain.outcomes import AgentState, CallOutcome, DialMode
from dialer.pacing.config import PacingConfig
from dialer.pacing.distributions import normal_sf
from dialer.pacing.estimators import (
    RING_N,
    RING_RES,
    TALK_N,
    TALK_RES,
    WRAP_N,
    WRAP_RES,
    PacingModel,
)
from dialer.pacing.types import (
    CLOSED_LOOP_REASONS,
    DecisionReason,
    PacingDecision,
    PacingSnapshot,
    PacingStats,
    Segment,
)

_READY = AgentState.READY
_WRAP = AgentState.WRAP_UP
_TALK = AgentState.IN_CALL
_RESERVED = AgentState.RESERVED


class AgentCounts:
    __slots__ = ("active", "ready", "talking", "wrapping")

    def __init__(self, snap: PacingSnapshot) -> None:
        states = [a.state for a in snap.agents]
        self.ready = states.count(_READY)
        self.talking = states.count(_TALK) + states.count(_RESERVED)
        self.wrapping = states.count(_WRAP)
        self.active = self.ready + self.talking + self.wrapping


def progressive_launch(snap: PacingSnapshot, counts: AgentCounts | None = None) -> int:
    """One line per READY agent: READY agents minus calls already ringing or waiting."""
    c = counts or AgentCounts(snap)
    return max(0, c.ready - len(snap.ringing) - snap.waiting)


def fixed_ratio_launch(
    snap: PacingSnapshot, ratio: float, counts: AgentCounts | None = None
) -> int:
    """Keep ``ratio`` lines (ringing + waiting + talking) per active agent."""
    c = counts or AgentCounts(snap)
    if c.active == 0:
        return 0
    lines = len(snap.ringing) + snap.waiting + c.talking
    return max(0, math.floor(ratio * c.active + 1e-9) - lines)


def _clamp(idx: list[int], n: int) -> list[int]:
    """Clamp table indices into [0, n - 1] (rarely needed: only checks min/max in C)."""
    if idx and (max(idx) >= n or min(idx) < 0):
        return [0 if i < 0 else (n - 1 if i >= n else i) for i in idx]
    return idx


def _dial_level(snap: PacingSnapshot, counts: AgentCounts, launch: int) -> float:
    if counts.active == 0:
        return 0.0
    return (len(snap.ringing) + snap.waiting + counts.talking + launch) / counts.active


def budget_headroom(answers: int, abandons: int, limit: float, fp_share: float) -> float:
    """Abandons still allowed before the rate reaches ``limit`` (AMD false positives included).

    ``fp_share`` = f/(1-f) is the expected number of hidden AMD false positives per live answer.
    """
    if fp_share <= 0.0:
        return limit * answers - abandons
    mean = fp_share * answers
    # the hidden count is random: budget for a pessimistic (mean + 2 sd) number of them
    hidden = mean + 2.0 * math.sqrt(mean)
    return limit * (answers + hidden) - (abandons + hidden)


class Pacer:
    """Pacing for one campaign: preview, progressive, fixed ratio or model-based predictive."""

    def __init__(self, config: PacingConfig | None = None) -> None:
        self.config = config or PacingConfig()
        cfg = self.config
        self.model = PacingModel(cfg.connect_timeout, cfg.horizon_quantiles)
        self._log_bound = math.log(cfg.initial_risk_bound)
        f = cfg.amd_false_positive
        self._fp_share = f / (1.0 - f)
        # own-abandon target once the hidden AMD false positives are budgeted
        self._own_target = max(0.001, cfg.target_abandon * (1.0 + self._fp_share) - self._fp_share)
        self._capped = False
        self._last_answers_today = 0
        self._daily_answers = 0.0  # typical answers per day, learned across days
        # live answers (and abandons among them) the outer loop has counted
        self.loop_answers = 0
        self.loop_abandons = 0

    # -- observations ----------------------------------------------------------------------------
    @property
    def risk_bound(self) -> float:
        return math.exp(self._log_bound)

    def observe_call(
        self,
        segment: Segment,
        outcome: CallOutcome,
        ring_seconds: float,
        dialed_under: DecisionReason | None = None,
    ) -> None:
        """A dialed call finished ringing.

        ``ring_seconds``: for a live answer (connected or abandoned), dial -> the moment it was
        ready for an agent (after AMD); otherwise dial -> the end of the attempt.
        ``dialed_under``: the reason of the decision that launched the call (None: unknown, or
        not launched by the pacer). The outer loop counts the live answers of calls launched by
        a risk-bounded decision, whatever the pacer decides meanwhile: an abandon arrives
        seconds after its dial, when the pacer may well be holding back or capped.
        """
        live = outcome.is_live_answer
        self.model.observe_dial(segment, live, ring_seconds)
        if live and dialed_under in CLOSED_LOOP_REASONS:
            cfg = self.config
            abandoned = outcome is CallOutcome.ABANDONED
            self.loop_answers += 1
            self.loop_abandons += abandoned
            hit = 1.0 if abandoned else 0.0
            lb = self._log_bound + cfg.outer_gain * (self._own_target - hit)
            lo, hi = math.log(cfg.min_risk_bound), math.log(cfg.max_risk_bound)
            self._log_bound = min(max(lb, lo), hi)

    def observe_talk(self, seconds: float) -> None:
        self.model.talk.observe(seconds)

    def observe_wrap(self, seconds: float) -> None:
        self.model.wrap.observe(seconds)

    # -- decisions -------------------------------------------------------------------------------
    def decide(self, snap: PacingSnapshot) -> PacingDecision:
        cfg = self.config
        counts = AgentCounts(snap)
        mode = cfg.mode
        if mode is DialMode.PREVIEW:
            return PacingDecision(
                0, DialMode.PREVIEW, DecisionReason.PREVIEW, _dial_level(snap, counts, 0)
            )
        if mode is DialMode.PROGRESSIVE:
            return self._progressive(snap, counts, DecisionReason.PROGRESSIVE)
        if mode is DialMode.FIXED_RATIO:
            if counts.active == 0:
                return PacingDecision(0, DialMode.FIXED_RATIO, DecisionReason.NO_AGENTS, 0.0)
            # a fixed ratio over-dials by design: the abandon cap binds it as it does predictive
            capped = self._cap_check(snap, penalize=False)
            if capped is not None:
                return self._progressive(snap, counts, capped)
            k = fixed_ratio_launch(snap, cfg.fixed_ratio, counts)
            return PacingDecision(
                k, DialMode.FIXED_RATIO, DecisionReason.FIXED_RATIO, _dial_level(snap, counts, k)
            )
        return self._predictive(snap, counts)

    def _progressive(
        self, snap: PacingSnapshot, counts: AgentCounts, reason: DecisionReason
    ) -> PacingDecision:
        k = progressive_launch(snap, counts)
        return PacingDecision(k, DialMode.PROGRESSIVE, reason, _dial_level(snap, counts, k))

    def _hard_cap(self, stats: PacingStats, waiting: int = 0) -> DecisionReason | None:
        cfg = self.config
        # answers already waiting in hold may still abandon: they use up the reserve first
        reserve = cfg.cap_reserve_abandons + waiting
        # Today's rate is judged at the end of the day. Early in the day the denominator is
        # tiny, so it counts at least a quarter of a typical day's answers (learned from the
        # previous days; unknown on the first day, which therefore starts progressive).
        answers = max(stats.answers_today, int(0.25 * self._daily_answers))
        today = budget_headroom(answers, stats.abandons_today, cfg.abandon_limit, self._fp_share)
        month = budget_headroom(
            stats.answers_30d, stats.abandons_30d, cfg.abandon_limit, self._fp_share
        )
        if month < reserve and stats.abandons_30d > 0:
            return DecisionReason.HARD_CAP_30D
        if today < reserve and stats.abandons_today > 0:
            return DecisionReason.HARD_CAP_TODAY
        if month < reserve or today < reserve:
            # no abandon yet, but too few live answers to afford one (a new campaign or day)
            return DecisionReason.CAP_WARMUP
        return None

    def _cap_check(self, snap: PacingSnapshot, *, penalize: bool) -> DecisionReason | None:
        """The hard cap's verdict for this decision (None: not capped), with its day tracking.

        Every mode that can over-dial (predictive, fixed ratio) runs progressive while it
        holds. ``penalize``: the cap engaging mid-day shrinks the predictive risk bound.
        """
        cfg = self.config
        answers_today = snap.stats.answers_today
        if answers_today < self._last_answers_today:  # a new day began
            last = self._last_answers_today
            self._daily_answers = (
                last if self._daily_answers == 0 else 0.7 * self._daily_answers + 0.3 * last
            )
        capped = self._hard_cap(snap.stats, snap.waiting)
        if capped is not None:
            if penalize and not self._capped and answers_today >= self._last_answers_today:
                # the cap engaged because of abandons (not a new day): the bound overshot
                self._log_bound = max(
                    self._log_bound + math.log(cfg.cap_penalty), math.log(cfg.min_risk_bound)
                )
            self._capped = True
        else:
            self._capped = False
        self._last_answers_today = answers_today
        return capped

    def _predictive(self, snap: PacingSnapshot, counts: AgentCounts) -> PacingDecision:
        cfg = self.config
        if counts.active == 0:
            return PacingDecision(0, DialMode.PREDICTIVE, DecisionReason.NO_AGENTS, 0.0)
        capped = self._cap_check(snap, penalize=True)
        if capped is not None:
            return self._progressive(snap, counts, capped)
        model = self.model
        if (
            model.answer_rate.live_answers < cfg.cold_start_answers
            or model.talk.count < cfg.cold_start_durations
            or model.wrap.count < cfg.cold_start_durations
        ):
            return self._progressive(snap, counts, DecisionReason.COLD_START)
        if counts.active < cfg.min_agents_predictive:
            return self._progressive(snap, counts, DecisionReason.SMALL_TEAM)

        floor = progressive_launch(snap, counts)
        lines = len(snap.ringing) + snap.waiting + counts.talking
        k_max = max(floor, math.floor(cfg.max_dial_level * counts.active + 1e-9) - lines)
        tb = model.refresh(snap.now, cfg.model_refresh_seconds)
        now = snap.now
        n_h = len(tb.horizons)
        c = cfg.connect_timeout

        # supply: READY agents, minus answers already waiting, plus agents certain to be free
        agents = snap.agents
        certain = [float(counts.ready - snap.waiting)] * n_h
        mu = [0.0] * n_h
        var = [0.0] * n_h
        if any(a.expected_free_at is not None for a in agents):
            plain = []
            for a in agents:
                if a.expected_free_at is None or a.state is _READY:
                    plain.append(a)
                    continue
                dt = a.expected_free_at - now
                for m in range(n_h):
                    if dt <= tb.horizons[m] + c:
                        certain[m] += 1.0
            agents = tuple(plain)
        wrap_idx = [int((now - a.since) * WRAP_RES) for a in agents if a.state is _WRAP]
        talk_idx = [
            int((now - a.since) * TALK_RES)
            for a in agents
            if a.state is _TALK or a.state is _RESERVED
        ]
        wrap_idx = _clamp(wrap_idx, WRAP_N)
        talk_idx = _clamp(talk_idx, TALK_N)
        if certain[-1] <= 0.0:
            gate = tb.gate_horizon
            rem_w, rem_t = tb.rem_wrap, tb.rem_talk
            if not (
                any(rem_w[i] <= gate for i in wrap_idx) or any(rem_t[i] <= gate for i in talk_idx)
            ):
                # nobody is or will be free within the answer horizon: never dial
                return PacingDecision(
                    0, DialMode.PREDICTIVE, DecisionReason.NO_AGENTS, _dial_level(snap, counts, 0)
                )
        for m in range(n_h):
            if wrap_idx:
                mu[m] -= sum(map(tb.q_wrap[m].__getitem__, wrap_idx))
                var[m] += sum(map(tb.qv_wrap[m].__getitem__, wrap_idx))
            if talk_idx:
                mu[m] -= sum(map(tb.q_talk[m].__getitem__, talk_idx))
                var[m] += sum(map(tb.qv_talk[m].__getitem__, talk_idx))

        # demand: in-flight calls answering within each horizon, grouped by segment
        ringing = snap.ringing
        estimate = model.answer_rate.estimate
        if ringing:
            seg0 = ringing[0].segment
            if all([cv.segment is seg0 for cv in ringing]):
                groups = {
                    seg0: _clamp([int((now - cv.dialed_at) * RING_RES) for cv in ringing], RING_N)
                }
            else:
                groups = {}
                for cv in ringing:
                    groups.setdefault(cv.segment, []).append(int((now - cv.dialed_at) * RING_RES))
                groups = {sg: _clamp(ix, RING_N) for sg, ix in groups.items()}
            for seg, idx in groups.items():
                tabs = model.answer_tables(estimate(seg))
                for m in range(n_h):
                    a_tab, av_tab = tabs[m]
                    mu[m] += sum(map(a_tab.__getitem__, idx))
                    var[m] += sum(map(av_tab.__getitem__, idx))

        p_new = estimate(snap.next_segment)
        pis = [p_new * lvl for lvl in tb.levels]
        bound = self.risk_bound
        launch = 0
        risk = 0.0
        for k in range(1, k_max + 1):
            r = 0.0
            extra = k - 1
            for m in range(n_h):
                pi = pis[m]
                mu_k = mu[m] + extra * pi
                v_k = var[m] + extra * pi * (1.0 - pi)
                # abandon iff demand before this call + 1 > supply, i.e. X >= certain supply
                thr = certain[m] - 0.5 - mu_k
                if v_k < 1e-9:
                    r += 1.0 if thr < 0.0 else 0.0
                else:
                    r += normal_sf(thr / math.sqrt(v_k))
            r /= n_h
            if r > bound:
                break
            launch = k
            risk = r
        reason = DecisionReason.RISK_BOUND
        if launch < floor:
            launch = floor
        if launch >= k_max and k_max > floor:
            reason = DecisionReason.LINE_CAP
        return PacingDecision(
            launch,
            DialMode.PREDICTIVE,
            reason,
            _dial_level(snap, counts, launch),
            risk=risk,
            risk_bound=bound,
        )
