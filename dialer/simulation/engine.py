"""Seeded discrete-event simulator of an outbound campaign on a virtual clock.

One :func:`simulate_run` call plays every shift of a scenario for one seed and one policy. The
policy is any object with the :class:`SimPolicy` shape; the predictive pacer used live
(:class:`dialer.pacing.Pacer`) is one. Events live in a ``heapq`` ordered by (time, sequence).

Call model (per dial): a fast failure (``fast_fail_share``) ends after ``fast_fail_seconds``;
otherwise the callee answers with probability ``answer_prob`` (by hour of shift, times the
active list's factor) after ``answer_delay``, or the call ends unanswered after
``no_answer_timeout``. With AMD on, an answer is a machine with ``machine_share`` (hung up after
``amd_seconds``); a human is ready for an agent after ``amd_seconds``, except that
``amd_false_positive`` of humans are hung up as machines: those count as abandoned live answers
in the metrics, but the pacer and the outcome counters see MACHINE, as they would live.
A live answer connects to the longest-idle READY agent, or waits up to ``connect_timeout`` for
one, else it is ABANDONED.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.pacing.feed import PacerFeed, PacingPolicy
from dialer.pacing.types import (
    AgentView,
    CallView,
    PacingSnapshot,
    PacingStats,
    Segment,
)
from dialer.simulation.scenario import Scenario

DAY = 86400.0

#: A simulated policy is anything a :class:`~dialer.pacing.feed.PacerFeed` can drive: the
#: simulator feeds it through the very adapter the live engine uses.
SimPolicy = PacingPolicy


@dataclass
class ShiftStats:
    talk: float = 0.0
    wrap: float = 0.0
    idle: float = 0.0
    paused: float = 0.0
    live: int = 0  # live answers, AMD false positives included
    abandoned: int = 0  # abandoned live answers, AMD false positives included
    connects: int = 0
    dials: int = 0

    @property
    def logged_in(self) -> float:
        return self.talk + self.wrap + self.idle


@dataclass
class RunResult:
    """Raw result of one seed: per-shift stats plus run-wide samples."""

    shifts: list[ShiftStats] = field(default_factory=list)
    idle_waits: list[float] = field(default_factory=list)
    peak_lines_per_agent: float = 0.0
    decisions: int = 0
    predictive_decisions: int = 0


# event kinds
_LIVE, _END, _ABANDON, _TALK_END, _WRAP_END, _TICK, _SCHEDULE, _BREAK, _BREAK_END, _SHIFT_END = (
    range(10)
)

_READY = AgentState.READY
_IN_CALL = AgentState.IN_CALL
_WRAP = AgentState.WRAP_UP
_PAUSED = AgentState.PAUSED


class _Agent:
    __slots__ = (
        "aid",
        "break_pending",
        "free_at",
        "logged_in",
        "logout_pending",
        "since",
        "state",
        "view",
        "wrap_len",
    )

    def __init__(self, aid: int, now: float) -> None:
        self.aid = aid
        self.free_at = 0.0  # oracle runs: when the current talk + wrap-up will end
        self.wrap_len = 0.0
        self.state = _READY
        self.since = now
        self.logged_in = True
        self.logout_pending = False
        self.break_pending = 0.0
        self.view = AgentView(str(aid), _READY, now)


class _Call:
    __slots__ = ("dialed_at", "fp", "outcome", "segment", "view")

    def __init__(self, view: CallView, outcome: CallOutcome, fp: bool) -> None:
        self.view = view
        self.dialed_at = view.dialed_at
        self.segment = view.segment
        self.outcome = outcome
        self.fp = fp


def simulate_run(
    scenario: Scenario,
    make_policy: Callable[[], SimPolicy],
    seed: int,
    tick_interval: float | None = 1.0,
    reveal_free_times: bool = False,
) -> RunResult:
    """Run every shift of ``scenario`` for ``seed``. ``make_policy()`` builds a fresh policy.

    ``reveal_free_times`` (an oracle for bounding what better prediction could gain): each
    agent's view carries the exact moment its talk + wrap-up ends (``expected_free_at``). Talk and
    wrap-up are then both drawn at connect time, so the random stream differs from a normal run.
    """
    sim = _Sim(scenario, make_policy, seed, tick_interval, reveal_free_times)
    return sim.run()


class _Sim:
    def __init__(
        self,
        sc: Scenario,
        make_policy: Callable[[], SimPolicy],
        seed: int,
        tick_interval: float | None,
        reveal_free_times: bool = False,
    ) -> None:
        self.sc = sc
        self.oracle = reveal_free_times
        self.make_policy = make_policy
        self.rng = random.Random(f"{sc.name}:{seed}")
        self.tick = tick_interval
        rng = self.rng
        self.s_delay = sc.answer_delay.sampler(rng)
        self.s_talk = sc.talk.sampler(rng)
        self.s_wrap = sc.wrap.sampler(rng)
        self.s_noans = sc.no_answer_timeout.sampler(rng)
        self.result = RunResult()
        self.policy: SimPolicy = make_policy()
        # 30-day counters as the system of record sees them (AMD false positives hidden)
        self.rec_answers_30d = 0
        self.rec_abandons_30d = 0

    def run(self) -> RunResult:
        for day in range(self.sc.shifts):
            if day and self.sc.cold_start_each_shift:
                self.policy = self.make_policy()
            self._run_shift(day)
        return self.result

    # ------------------------------------------------------------------------------------------
    def _run_shift(self, day: int) -> None:
        sc = self.sc
        rng = self.rng
        rand = rng.random
        policy = self.policy
        decide = policy.decide
        # the same adapter as the live engine derives every sample the policy learns from
        feed = PacerFeed(policy)
        feed_agent = feed.agent_state
        feed_dialed = feed.dialed
        feed_ended = feed.call_ended
        start = day * DAY + sc.shift_start_hour * 3600.0
        end = start + sc.shift_hours * 3600.0
        st = ShiftStats()
        self.result.shifts.append(st)
        res = self.result
        idle_waits = res.idle_waits
        heap: list[tuple[float, int, int, Any]] = []
        seq = 0
        push = heapq.heappush
        pop = heapq.heappop
        ct = sc.connect_timeout
        oracle = self.oracle

        agents: list[_Agent] = []
        views: dict[int, AgentView] = {}
        ready_q: deque[_Agent] = deque()
        ringing: dict[int, _Call] = {}
        ring_views: dict[int, CallView] = {}
        waiting: deque[tuple[int, _Call, float]] = deque()  # (call id, call, live time)
        waiting_ids: set[int] = set()
        call_id = day * 10_000_000
        # recorded (visible) answers / abandons today; the first day starts with the history
        counters = [sc.prior_answers if day == 0 else 0, 0]
        talking = 0
        n_active = 0

        def set_state(ag: _Agent, state: AgentState, now: float) -> None:
            nonlocal talking, n_active
            old = ag.state
            dt = now - ag.since
            if old is _IN_CALL:
                st.talk += dt
                talking -= 1
            elif old is _WRAP:
                st.wrap += dt
            elif old is _READY:
                st.idle += dt
            else:
                st.paused += dt
            if old is _PAUSED:
                n_active += 1
            if state is _PAUSED:
                n_active -= 1
            elif state is _IN_CALL:
                talking += 1
            ag.state = state
            ag.since = now
            free_at = None
            if oracle:
                if state is _IN_CALL:
                    free_at = ag.free_at
                elif state is _WRAP:
                    free_at = now + ag.wrap_len
            v = AgentView(ag.view.agent_id, state, now, free_at)
            ag.view = v
            views[ag.aid] = v
            feed_agent(ag.aid, state, now)

        def login(now: float) -> None:
            nonlocal n_active
            ag = _Agent(len(agents), now)
            agents.append(ag)
            views[ag.aid] = ag.view
            feed_agent(ag.aid, _READY, now)
            n_active += 1
            agent_ready(ag, now, fresh=True)

        def logout(ag: _Agent, now: float) -> None:
            nonlocal n_active
            dt = now - ag.since
            if ag.state is _READY:
                st.idle += dt
                n_active -= 1
            elif ag.state is _PAUSED:
                st.paused += dt
            ag.logged_in = False
            views.pop(ag.aid, None)
            feed_agent(ag.aid, AgentState.LOGGED_OUT, now)

        def connect(ag: _Agent, cid: int, call: _Call, live_at: float, now: float) -> None:
            nonlocal seq
            st.connects += 1
            idle_waits.append(now - ag.since)
            talk_len = s_talk()
            if oracle:
                ag.wrap_len = s_wrap()
                ag.free_at = now + talk_len + ag.wrap_len
            set_state(ag, _IN_CALL, now)
            feed_ended(cid, CallOutcome.ANSWERED_CONNECTED, live_at)
            counters[0] += 1
            seq += 1
            push(heap, (now + talk_len, seq, _TALK_END, ag))

        def agent_ready(ag: _Agent, now: float, fresh: bool = False) -> None:
            """The agent becomes available (after wrap-up, login or a break)."""
            nonlocal seq
            if ag.logout_pending:
                if not fresh:
                    set_state(ag, _READY, now)
                logout(ag, now)
                return
            if ag.break_pending > 0.0:
                length = ag.break_pending
                ag.break_pending = 0.0
                set_state(ag, _PAUSED, now)
                seq += 1
                push(heap, (now + length, seq, _BREAK_END, ag))
                return
            if not fresh:
                set_state(ag, _READY, now)
            while waiting:
                cid, call, live_at = waiting.popleft()
                waiting_ids.discard(cid)
                if now - live_at <= ct:
                    connect(ag, cid, call, live_at, now)
                    return
            ready_q.append(ag)

        s_talk = self.s_talk
        s_wrap = self.s_wrap
        s_delay = self.s_delay
        s_noans = self.s_noans
        ff_share = sc.fast_fail_share
        ff_s = sc.fast_fail_seconds
        amd = sc.amd
        amd_s = sc.amd_seconds if amd else 0.0
        machine = sc.machine_share
        fp_rate = sc.amd_false_positive
        probs = sc.answer_prob
        n_probs = len(probs)
        switches = sc.list_switches
        list_id = "default"
        factor = 1.0
        hour0 = sc.shift_start_hour
        seg_cache: dict[tuple[str, int], Segment] = {}
        ring_tuple: tuple[CallView, ...] = ()
        ring_dirty = True

        def current(now: float) -> tuple[Segment, float]:
            nonlocal list_id, factor
            h = (now - start) / 3600.0
            for sw in switches:
                if h >= sw.at_hour:
                    list_id, factor = sw.list_id, sw.answer_prob_factor
            hi = int(h)
            key = (list_id, hi)
            seg = seg_cache.get(key)
            if seg is None:
                seg = seg_cache[key] = Segment(list_id, 1, hour0 + hi)
            p = probs[hi if hi < n_probs else n_probs - 1] * factor
            return seg, (p if p < 1.0 else 1.0)

        def pace(now: float) -> None:
            nonlocal seq, call_id, ring_tuple, ring_dirty
            if now >= end:
                return
            if ring_dirty:
                ring_tuple = tuple(ring_views.values())
                ring_dirty = False
            seg, p = current(now)
            snap = PacingSnapshot(
                now,
                tuple(views.values()),
                ring_tuple,
                len(waiting),
                PacingStats(
                    counters[0],
                    counters[1],
                    self.rec_answers_30d + counters[0],
                    self.rec_abandons_30d + counters[1],
                ),
                seg,
            )
            d = decide(snap)
            res.decisions += 1
            if d.risk_bound > 0.0:
                res.predictive_decisions += 1
            k = d.launch
            if k <= 0:
                return
            if n_active > 0:
                lines = (len(ringing) + len(waiting) + talking + k) / n_active
                if lines > res.peak_lines_per_agent:
                    res.peak_lines_per_agent = lines
            st.dials += k
            under = d.reason
            for _ in range(k):
                call_id += 1
                cv = CallView(str(call_id), now, seg)
                feed_dialed(call_id, seg, now, under)
                seq += 1
                if rand() < ff_share:
                    call = _Call(cv, CallOutcome.FAILED, False)
                    push(heap, (now + ff_s, seq, _END, call_id))
                elif rand() < p:
                    t_ans = now + s_delay() + amd_s
                    if amd and rand() < machine:
                        call = _Call(cv, CallOutcome.MACHINE, False)
                        push(heap, (t_ans, seq, _END, call_id))
                    elif amd and rand() < fp_rate:
                        call = _Call(cv, CallOutcome.MACHINE, True)
                        push(heap, (t_ans, seq, _END, call_id))
                    else:
                        call = _Call(cv, CallOutcome.ANSWERED_CONNECTED, False)
                        push(heap, (t_ans, seq, _LIVE, call_id))
                else:
                    call = _Call(cv, CallOutcome.NO_ANSWER, False)
                    push(heap, (now + s_noans(), seq, _END, call_id))
                ringing[call_id] = call
                ring_views[call_id] = cv
            ring_dirty = True

        # --- initial agents, schedule, breaks, ticks -----------------------------------------
        schedule = sc.agent_schedule
        n0 = sc.agents
        if schedule and schedule[0][0] <= 0.0:
            n0 = schedule[0][1]
        for _ in range(n0):
            login(start)
        for h, n in schedule:
            if h > 0.0:
                seq += 1
                push(heap, (start + h * 3600.0, seq, _SCHEDULE, n))
        if sc.breaks is not None:
            length = sc.breaks.minutes * 60.0
            cycle = length / sc.breaks.share
            n_br = max(n0, max((n for _, n in schedule), default=0))
            for i in range(n_br):
                t = start + (i + 0.5) / n_br * cycle
                while t < end:
                    seq += 1
                    push(heap, (t, seq, _BREAK, (i, length)))
                    t += cycle
        if self.tick:
            seq += 1
            push(heap, (start + self.tick, seq, _TICK, None))
        seq += 1
        push(heap, (end, seq, _SHIFT_END, None))
        pace(start)

        tick = self.tick or 0.0
        while heap:
            now, _, kind, data = pop(heap)
            if kind == _TICK:
                pace(now)
                seq += 1
                push(heap, (now + tick, seq, _TICK, None))
            elif kind == _END:
                call = ringing.pop(data)
                del ring_views[data]
                ring_dirty = True
                if call.fp:
                    st.live += 1
                    st.abandoned += 1
                feed_ended(data, call.outcome, now)
                if not tick:
                    # ticking policies pick the freed line up on the next tick
                    pace(now)
            elif kind == _LIVE:
                call = ringing.pop(data)
                del ring_views[data]
                ring_dirty = True
                st.live += 1
                free_ag: _Agent | None = None
                while ready_q:
                    cand = ready_q.popleft()
                    if cand.state is _READY and cand.logged_in:
                        free_ag = cand
                        break
                if free_ag is not None:
                    connect(free_ag, data, call, now, now)
                else:
                    waiting.append((data, call, now))
                    waiting_ids.add(data)
                    seq += 1
                    push(heap, (now + ct, seq, _ABANDON, (data, call)))
            elif kind == _ABANDON:
                cid, call = data
                if cid in waiting_ids:
                    waiting_ids.discard(cid)
                    for j, item in enumerate(waiting):
                        if item[0] == cid:
                            del waiting[j]
                            break
                    st.abandoned += 1
                    counters[1] += 1
                    counters[0] += 1
                    feed_ended(cid, CallOutcome.ABANDONED, now - ct)
                    pace(now)
            elif kind == _TALK_END:
                ag = data
                set_state(ag, _WRAP, now)  # the feed takes the talk sample
                seq += 1
                push(heap, (now + (ag.wrap_len if oracle else s_wrap()), seq, _WRAP_END, ag))
                pace(now)
            elif kind == _WRAP_END:
                ag = data
                agent_ready(ag, now)  # the feed takes the wrap-up sample
                pace(now)
            elif kind == _SCHEDULE:
                target = int(data)
                live_agents = [a for a in agents if a.logged_in and not a.logout_pending]
                if target > len(live_agents):
                    for _ in range(target - len(live_agents)):
                        login(now)
                else:
                    for ag in live_agents[target:]:
                        ag.logout_pending = True
                        if ag.state is _READY or ag.state is _PAUSED:
                            if ag in ready_q:
                                ready_q.remove(ag)
                            logout(ag, now)
                pace(now)
            elif kind == _BREAK:
                i, length = data
                if i < len(agents):
                    ag = agents[i]
                    if ag.logged_in and not ag.logout_pending and ag.state is not _PAUSED:
                        if ag.state is _READY:
                            if ag in ready_q:
                                ready_q.remove(ag)
                            set_state(ag, _PAUSED, now)
                            seq += 1
                            push(heap, (now + length, seq, _BREAK_END, ag))
                        else:
                            ag.break_pending = length
                pace(now)
            elif kind == _BREAK_END:
                ag = data
                if ag.logged_in and ag.state is _PAUSED:
                    agent_ready(ag, now)
                    pace(now)
            else:  # shift end
                break

        # close the books for the shift
        for ag in agents:
            if not ag.logged_in:
                continue
            dt = end - ag.since
            if ag.state is _IN_CALL:
                st.talk += dt
            elif ag.state is _WRAP:
                st.wrap += dt
            elif ag.state is _READY:
                st.idle += dt
            else:
                st.paused += dt
        self.rec_answers_30d += counters[0]
        self.rec_abandons_30d += counters[1]
