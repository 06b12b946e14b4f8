"""The standard benchmark grid and the stress scenarios (also shipped as JSON files)."""

from __future__ import annotations

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


def grid_scenarios() -> list[Scenario]:
    return [parse_scenario(grid_json(n, p)) for n in GRID_AGENTS for p in GRID_P]


def stress_scenarios() -> list[Scenario]:
    return [parse_scenario(d) for d in stress_json()]
