"""The standard benchmark grid and the stress scenarios (also shipped as JSON files)."""

from __future__ import annotations

import random
from typing import Any

from dialer.simulation.scenario import Scenario, parse_scenario

GRID_AGENTS = (5, 10, 20, 50)
GRID_P = (0.2, 0.3, 0.4)


def base_json(agents: int, p: float | list[float], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "agents": agents,
        "answer_prob": p,
        "answer_delay": {"dist": "lognormal", "mean": 9.0, "cv": 0.5},
        "talk": {"dist": "lognormal", "mean": 180.0, "cv": 1.0},
        "wrap": {"dist": "lognormal", "mean": 15.0, "cv": 0.3},
        "no_answer_timeout": {"dist": "uniform", "min": 20.0, "max": 25.0},
        "fast_fail_share": 0.1,
        "fast_fail_seconds": 3.0,
        "machine_share": 0.0,
        "amd_seconds": 2.5,
        "amd_false_positive": 0.0,
        "breaks": None,
        "shift_hours": 8.0,
        "shifts": 20,
        "seeds": 5,
        "connect_timeout": 2.0,
    }


def grid_json(agents: int, p: float) -> dict[str, Any]:
    d = base_json(agents, p, f"grid_n{agents}_p{round(p * 100):02d}")
    d["description"] = f"Standard grid: {agents} agents, answer probability {p}"
    return d


def stress_json() -> list[dict[str, Any]]:
    out = []
    d = base_json(10, [0.2, 0.25, 0.3, 0.35, 0.4, 0.35, 0.3, 0.25], "stress_hourly_profile")
    d["description"] = "Hourly answer profile 0.2 -> 0.4 -> 0.25 over the shift, 10 agents"
    out.append(d)
    d = base_json(10, 0.3, "stress_breaks")
    d["breaks"] = {"share": 0.1, "minutes": 15}
    d["description"] = "10% of agent time on staggered 15-minute breaks, 10 agents"
    out.append(d)
    d = base_json(10, 0.3, "stress_cold_start")
    d["cold_start_each_shift"] = True
    d["description"] = "The pacer forgets everything every shift (cold start daily), 10 agents"
    out.append(d)
    d = base_json(10, 0.3, "stress_list_switch")
    d["list_switches"] = [{"at_hour": 4.0, "list_id": "B", "answer_prob_factor": 0.5}]
    d["description"] = "Mid-shift switch to a list where p halves (0.3 -> 0.15), 10 agents"
    out.append(d)
    d = base_json(10, 0.3, "stress_agents_drop")
    d["agent_schedule"] = [[0, 10], [3.0, 4], [6.0, 10]]
    d["description"] = "Agents drop from 10 to 4 at hour 3 (back to 10 at hour 6)"
    out.append(d)
    d = base_json(10, 0.3, "stress_amd")
    d["machine_share"] = 0.15
    d["amd_seconds"] = 2.5
    d["amd_false_positive"] = 0.01
    d["description"] = "AMD on: 15% machines detected after 2.5 s, 1% of humans hung up (abandoned)"
    out.append(d)
    return out


def _family(agents: int, p: float | list[float], name: str, desc: str, **kw: Any) -> dict[str, Any]:
    d = base_json(agents, p, f"family_{name}")
    d.update(kw)
    d["description"] = desc
    return d


def _talk(mean: float, cv: float) -> dict[str, Any]:
    return {"dist": "lognormal", "mean": mean, "cv": cv}


def family_json() -> list[dict[str, Any]]:
    """Scenario families the grid never saw (issue 20): 2-3 scenarios each, defaults elsewhere."""
    short, long_wrap = _talk(90.0, 1.0), {"dist": "lognormal", "mean": 45.0, "cv": 0.3}
    swing_a = [0.2, 0.3, 0.4, 0.4, 0.3, 0.2, 0.2, 0.4]
    swing_b = [0.4, 0.4, 0.2, 0.2, 0.4, 0.4, 0.2, 0.2]
    delay = {"dist": "uniform", "min": 5.0, "max": 12.0}
    return [
        # short talk, long wrap-up
        _family(
            10,
            0.4,
            "shortwrap_n10_p40",
            "Talk 90 s, wrap-up 45 s, p=0.4, 10 agents",
            talk=short,
            wrap=long_wrap,
        ),
        _family(
            20,
            0.3,
            "shortwrap_n20_p30",
            "Talk 90 s, wrap-up 45 s, p=0.3, 20 agents",
            talk=short,
            wrap=long_wrap,
        ),
        _family(
            20,
            0.4,
            "shortwrap_n20_p40",
            "Talk 90 s, wrap-up 45 s, p=0.4, 20 agents",
            talk=short,
            wrap=long_wrap,
        ),
        # tiny teams
        _family(2, 0.3, "tiny_n2_p30", "Two agents, p=0.3"),
        _family(3, 0.4, "tiny_n3_p40", "Three agents, p=0.4"),
        _family(4, 0.2, "tiny_n4_p20", "Four agents, p=0.2"),
        # hourly answer profiles swinging 2x within a shift
        _family(10, swing_a, "swing_n10", "Hourly p 0.2 -> 0.4 -> 0.2 -> 0.4 (2x), 10 agents"),
        _family(20, swing_b, "swing_n20", "Hourly p 0.4/0.4/0.2/0.2 twice (2x steps), 20 agents"),
        # staffing halves and recovers mid-shift
        _family(
            10,
            0.3,
            "halfstaff_n10",
            "Agents 10 -> 5 at hour 3, back to 10 at hour 5",
            agent_schedule=[[0, 10], [3.0, 5], [5.0, 10]],
        ),
        _family(
            20,
            0.3,
            "halfstaff_n20",
            "Agents 20 -> 10 at hour 2, back to 20 at hour 4",
            agent_schedule=[[0, 20], [2.0, 10], [4.0, 20]],
        ),
        _family(
            6,
            0.4,
            "halfstaff_n6_p40",
            "Agents 6 -> 3 at hour 4, back to 6 at hour 6",
            agent_schedule=[[0, 6], [4.0, 3], [6.0, 6]],
        ),
        # long talk with high variance
        _family(10, 0.3, "longtalk_n10", "Talk 300 s cv 1.5, 10 agents", talk=_talk(300.0, 1.5)),
        _family(20, 0.3, "longtalk_n20", "Talk 300 s cv 1.5, 20 agents", talk=_talk(300.0, 1.5)),
        _family(
            20,
            0.2,
            "longtalk_n20_p20",
            "Talk 400 s cv 1.3, p=0.2, 20 agents",
            talk=_talk(400.0, 1.3),
        ),
        # answer delays of 5-12 s
        _family(10, 0.3, "delay_n10", "Answer delay uniform 5-12 s, 10 agents", answer_delay=delay),
        _family(20, 0.3, "delay_n20", "Answer delay uniform 5-12 s, 20 agents", answer_delay=delay),
        _family(
            20,
            0.4,
            "delay_n20_p40",
            "Answer delay uniform 5-12 s, p=0.4, 20 agents",
            answer_delay=delay,
        ),
    ]


def grid_scenarios() -> list[Scenario]:
    return [parse_scenario(grid_json(n, p)) for n in GRID_AGENTS for p in GRID_P]


def stress_scenarios() -> list[Scenario]:
    return [parse_scenario(d) for d in stress_json()]


def family_scenarios() -> list[Scenario]:
    return [parse_scenario(d) for d in family_json()]


# Documented ranges of the property check (issue 20; docs/simulation.md)
PROPERTY_RANGES: dict[str, tuple[float, float]] = {
    "agents": (2, 60),
    "answer_prob": (0.1, 0.5),
    "talk_mean": (60.0, 400.0),
    "talk_cv": (0.5, 1.5),
    "wrap_mean": (5.0, 60.0),
    "fast_fail_share": (0.0, 0.2),
}


def property_json(seed: int, index: int, shifts: int = 5, hours: float = 8.0) -> dict[str, Any]:
    """Random scenario number ``index`` of the property check, drawn from PROPERTY_RANGES."""
    rng = random.Random(seed * 100_003 + index)
    r = PROPERTY_RANGES
    agents = rng.randint(int(r["agents"][0]), int(r["agents"][1]))
    p = round(rng.uniform(*r["answer_prob"]), 3)
    d = base_json(agents, p, f"property_{seed}_{index:02d}")
    d["talk"] = _talk(round(rng.uniform(*r["talk_mean"]), 1), round(rng.uniform(*r["talk_cv"]), 2))
    d["wrap"] = {"dist": "lognormal", "mean": round(rng.uniform(*r["wrap_mean"]), 1), "cv": 0.3}
    d["fast_fail_share"] = round(rng.uniform(*r["fast_fail_share"]), 3)
    d["shifts"] = shifts
    d["shift_hours"] = hours
    d["seeds"] = [index + 1]
    d["description"] = (
        f"Property scenario: {agents} agents, p={p}, talk {d['talk']['mean']} s "
        f"cv {d['talk']['cv']}, wrap {d['wrap']['mean']} s, fast fails {d['fast_fail_share']}"
    )
    return d


def property_scenarios(
    count: int = 30, seed: int = 20, shifts: int = 5, hours: float = 8.0
) -> list[Scenario]:
    return [parse_scenario(property_json(seed, i, shifts, hours)) for i in range(count)]
