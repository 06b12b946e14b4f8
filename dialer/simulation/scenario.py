"""Simulation scenarios: a JSON format, parsed into frozen dataclasses with clear errors.

See ``docs/simulation.md`` for every key.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dialer.pacing.distributions import LogNormal


class ScenarioError(ValueError):
    """A scenario file or dict is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class Dist:
    """A duration distribution: lognormal(mean, cv), uniform(min, max) or constant(value)."""

    kind: str
    a: float
    b: float = 0.0

    @property
    def mean(self) -> float:
        if self.kind == "lognormal":
            return self.a
        if self.kind == "uniform":
            return (self.a + self.b) / 2.0
        return self.a

    def sampler(self, rng: random.Random) -> Any:
        """A zero-argument callable drawing one value (fast path for the event loop)."""
        if self.kind == "lognormal":
            if self.b <= 0.0:
                value = self.a
                return lambda: value
            ln = LogNormal.from_mean_cv(self.a, self.b)
            mu, sigma, draw = ln.mu, ln.sigma, rng.lognormvariate
            return lambda: draw(mu, sigma)
        if self.kind == "uniform":
            lo, hi, uni = self.a, self.b, rng.uniform
            return lambda: uni(lo, hi)
        value = self.a
        return lambda: value

    def to_json(self) -> dict[str, Any]:
        if self.kind == "lognormal":
            return {"dist": "lognormal", "mean": self.a, "cv": self.b}
        if self.kind == "uniform":
            return {"dist": "uniform", "min": self.a, "max": self.b}
        return {"dist": "constant", "value": self.a}

    @classmethod
    def parse(cls, key: str, raw: Any) -> Dist:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return cls("constant", _pos(key, float(raw)))
        if not isinstance(raw, dict):
            raise ScenarioError(f"{key}: expected a number or an object with 'dist'")
        kind = raw.get("dist", "lognormal")
        try:
            if kind == "lognormal":
                mean = _pos(f"{key}.mean", float(raw["mean"]))
                cv = float(raw.get("cv", 0.5))
                if cv < 0:
                    raise ScenarioError(f"{key}.cv: must be >= 0")
                return cls("lognormal", mean, cv)
            if kind == "uniform":
                lo, hi = float(raw["min"]), float(raw["max"])
                if not 0 <= lo <= hi:
                    raise ScenarioError(f"{key}: need 0 <= min <= max")
                return cls("uniform", lo, hi)
            if kind == "constant":
                return cls("constant", _pos(f"{key}.value", float(raw["value"])))
        except KeyError as exc:
            raise ScenarioError(f"{key}: missing {exc.args[0]!r} for dist {kind!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ScenarioError):
                raise
            raise ScenarioError(f"{key}: {exc}") from None
        raise ScenarioError(f"{key}.dist: unknown {kind!r} (lognormal, uniform, constant)")


def _pos(key: str, v: float) -> float:
    if not v > 0 or math.isinf(v):
        raise ScenarioError(f"{key}: must be a positive number, got {v}")
    return v


def _share(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= float(v) <= 1.0:
        raise ScenarioError(f"{key}: must be a number in [0, 1], got {v!r}")
    return float(v)


@dataclass(frozen=True, slots=True)
class ListSwitch:
    at_hour: float  # hours into the shift
    list_id: str
    answer_prob_factor: float  # multiplies answer_prob from then on


@dataclass(frozen=True, slots=True)
class Breaks:
    share: float  # share of each agent's logged-in time spent on breaks
    minutes: float  # length of one break


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    agents: int
    answer_prob: tuple[float, ...]  # one value, or one per hour of the shift (last one holds)
    answer_delay: Dist
    talk: Dist
    wrap: Dist
    no_answer_timeout: Dist
    fast_fail_share: float = 0.0
    fast_fail_seconds: float = 3.0
    machine_share: float = 0.0
    amd_seconds: float = 2.5
    amd_false_positive: float = 0.0
    breaks: Breaks | None = None
    agent_schedule: tuple[tuple[float, int], ...] = ()  # (hours into shift, agents logged in)
    list_switches: tuple[ListSwitch, ...] = ()
    shift_hours: float = 8.0
    shifts: int = 20
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    connect_timeout: float = 2.0
    cold_start_each_shift: bool = False
    shift_start_hour: int = 8
    # live answers (none abandoned) the campaign already recorded today when the first shift
    # starts: the abandon budget it starts with (a live campaign with a history, issue 20)
    prior_answers: int = 0
    description: str = ""

    @property
    def amd(self) -> bool:
        return self.machine_share > 0.0 or self.amd_false_positive > 0.0

    @property
    def ceiling(self) -> float:
        """talk / (talk + wrap): occupancy of an oracle with no idle time and no abandons."""
        return self.talk.mean / (self.talk.mean + self.wrap.mean)

    def with_overrides(self, **kw: Any) -> Scenario:
        return replace(self, **kw)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "agents": self.agents,
            "answer_prob": self.answer_prob[0]
            if len(self.answer_prob) == 1
            else list(self.answer_prob),
            "answer_delay": self.answer_delay.to_json(),
            "talk": self.talk.to_json(),
            "wrap": self.wrap.to_json(),
            "no_answer_timeout": self.no_answer_timeout.to_json(),
            "fast_fail_share": self.fast_fail_share,
            "fast_fail_seconds": self.fast_fail_seconds,
            "machine_share": self.machine_share,
            "amd_seconds": self.amd_seconds,
            "amd_false_positive": self.amd_false_positive,
            "breaks": None
            if self.breaks is None
            else {"share": self.breaks.share, "minutes": self.breaks.minutes},
            "agent_schedule": [[h, n] for h, n in self.agent_schedule],
            "list_switches": [
                {
                    "at_hour": s.at_hour,
                    "list_id": s.list_id,
                    "answer_prob_factor": s.answer_prob_factor,
                }
                for s in self.list_switches
            ],
            "shift_hours": self.shift_hours,
            "shifts": self.shifts,
            "seeds": list(self.seeds),
            "connect_timeout": self.connect_timeout,
            "cold_start_each_shift": self.cold_start_each_shift,
            "shift_start_hour": self.shift_start_hour,
        }
        if self.prior_answers:
            out["prior_answers"] = self.prior_answers
        return out


_KNOWN = {
    "name",
    "description",
    "agents",
    "agent_schedule",
    "answer_prob",
    "answer_delay",
    "talk",
    "wrap",
    "no_answer_timeout",
    "fast_fail_share",
    "fast_fail_seconds",
    "machine_share",
    "amd_seconds",
    "amd_false_positive",
    "breaks",
    "list_switches",
    "shift_hours",
    "shifts",
    "seeds",
    "connect_timeout",
    "cold_start_each_shift",
    "shift_start_hour",
    "prior_answers",
}
_REQUIRED = ("agents", "answer_prob", "answer_delay", "talk", "wrap", "no_answer_timeout")


def parse_scenario(raw: Any, default_name: str = "scenario") -> Scenario:
    if not isinstance(raw, dict):
        raise ScenarioError("scenario: expected a JSON object")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ScenarioError(f"unknown key(s): {', '.join(unknown)}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ScenarioError(f"missing required key(s): {', '.join(missing)}")

    agents = raw["agents"]
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 1:
        raise ScenarioError(f"agents: must be a positive integer, got {agents!r}")
    ap = raw["answer_prob"]
    probs: tuple[float, ...]
    if isinstance(ap, list):
        if not ap:
            raise ScenarioError("answer_prob: the hourly profile is empty")
        probs = tuple(_share(f"answer_prob[{i}]", v) for i, v in enumerate(ap))
    else:
        probs = (_share("answer_prob", ap),)

    schedule: list[tuple[float, int]] = []
    for i, item in enumerate(raw.get("agent_schedule") or []):
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise ScenarioError(f"agent_schedule[{i}]: expected [hour, agents]")
        h, n = item
        if not isinstance(h, int | float) or h < 0:
            raise ScenarioError(f"agent_schedule[{i}]: hour must be >= 0")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ScenarioError(f"agent_schedule[{i}]: agents must be an integer >= 0")
        schedule.append((float(h), n))

    switches: list[ListSwitch] = []
    for i, item in enumerate(raw.get("list_switches") or []):
        if not isinstance(item, dict) or "at_hour" not in item:
            raise ScenarioError(f"list_switches[{i}]: expected an object with at_hour")
        switches.append(
            ListSwitch(
                float(item["at_hour"]),
                str(item.get("list_id", f"list{i + 2}")),
                _pos(
                    f"list_switches[{i}].answer_prob_factor",
                    float(item.get("answer_prob_factor", 1.0)),
                ),
            )
        )

    breaks = None
    b = raw.get("breaks")
    if b is not None:
        if not isinstance(b, dict):
            raise ScenarioError("breaks: expected an object {share, minutes} or null")
        share = _share("breaks.share", b.get("share", 0.0))
        if share >= 0.9:
            raise ScenarioError("breaks.share: must be below 0.9")
        if share > 0:
            breaks = Breaks(share, _pos("breaks.minutes", float(b.get("minutes", 15))))

    seeds_raw = raw.get("seeds", 5)
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        if seeds_raw < 1:
            raise ScenarioError("seeds: must be >= 1")
        seeds = tuple(range(1, seeds_raw + 1))
    elif isinstance(seeds_raw, list) and seeds_raw and all(isinstance(s, int) for s in seeds_raw):
        seeds = tuple(seeds_raw)
    else:
        raise ScenarioError("seeds: a count or a non-empty list of integers")

    shifts = raw.get("shifts", 20)
    if isinstance(shifts, bool) or not isinstance(shifts, int) or shifts < 1:
        raise ScenarioError("shifts: must be a positive integer")
    start_hour = raw.get("shift_start_hour", 8)
    if not isinstance(start_hour, int) or not 0 <= start_hour <= 23:
        raise ScenarioError("shift_start_hour: an integer 0..23")
    prior = raw.get("prior_answers", 0)
    if isinstance(prior, bool) or not isinstance(prior, int) or prior < 0:
        raise ScenarioError("prior_answers: an integer >= 0")
    try:
        return Scenario(
            name=str(raw.get("name", default_name)),
            description=str(raw.get("description", "")),
            agents=agents,
            answer_prob=probs,
            answer_delay=Dist.parse("answer_delay", raw["answer_delay"]),
            talk=Dist.parse("talk", raw["talk"]),
            wrap=Dist.parse("wrap", raw["wrap"]),
            no_answer_timeout=Dist.parse("no_answer_timeout", raw["no_answer_timeout"]),
            fast_fail_share=_share("fast_fail_share", raw.get("fast_fail_share", 0.0)),
            fast_fail_seconds=_pos("fast_fail_seconds", float(raw.get("fast_fail_seconds", 3.0))),
            machine_share=_share("machine_share", raw.get("machine_share", 0.0)),
            amd_seconds=float(raw.get("amd_seconds", 2.5)),
            amd_false_positive=_share("amd_false_positive", raw.get("amd_false_positive", 0.0)),
            breaks=breaks,
            agent_schedule=tuple(sorted(schedule)),
            list_switches=tuple(sorted(switches, key=lambda s: s.at_hour)),
            shift_hours=_pos("shift_hours", float(raw.get("shift_hours", 8.0))),
            shifts=shifts,
            seeds=seeds,
            connect_timeout=float(raw.get("connect_timeout", 2.0)),
            cold_start_each_shift=bool(raw.get("cold_start_each_shift", False)),
            shift_start_hour=start_hour,
            prior_answers=prior,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError(str(exc)) from None


def load_scenario(path: Path) -> Scenario:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    try:
        return parse_scenario(raw, default_name=path.stem)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
