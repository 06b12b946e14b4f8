"""The JSON contract of ``scripts/bench_live_vs_sim.py`` (issue 20, live equals simulated): a
short predictive campaign of virtual agents on the lab Asterisk, then its simulated replay.

In the real-PBX tier (run once by ``.ci/run``), not beside the other benchmark contracts in
``tests/benchmarks``: it takes minutes, and those run in both suite runs.
"""

from __future__ import annotations

import pytest

from dialer.pbx_lab import bundle_present
from tests.benchmarks.test_json_contract import _run


def test_bench_live_vs_sim_json() -> None:
    if not bundle_present():
        pytest.skip("no Asterisk bundle (MARCADOR_ASTERISK_BUNDLE or ../shared/asterisk)")
    data = _run(
        "bench_live_vs_sim.py",
        *("--minutes", "1", "--agents", "3", "--sim-seeds", "1", "--json"),
        timeout=420,
    )
    keys = {"campaign_id", "window_s", "outcomes", "pacing_share", "table", "scenario"}
    assert keys | {"live", "sim_matched", "sim_default"} <= data.keys()
    for side in ("live", "sim_matched", "sim_default"):
        assert {"occupancy", "abandon_rate", "dials_per_connect"} <= data[side].keys()
    assert data["live"]["connects"] >= 2 and 0.0 < data["live"]["occupancy"] < 1.0
