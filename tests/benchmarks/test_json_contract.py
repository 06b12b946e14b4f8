"""Every ``scripts/bench_*.py --json`` prints ONE JSON object on the last line of stdout, with
the keys docs/benchmarks.md lists (progress goes to stderr). Tiny sizes: a contract test,
not a measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, timeout: float = 120.0) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARCADOR_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr[-3000:]
    data = json.loads(lines[-1])
    assert isinstance(data, dict)
    assert len(lines) == 1, f"stdout must hold only the JSON line, got: {lines[:-1]!r}"
    return data


def test_bench_import_json() -> None:
    data = _run("bench_import.py", "--rows", "200", "--json")
    assert {"rows", "seconds", "cpu_seconds", "rows_per_s", "backend", "runs"} <= data.keys()
    assert data["rows"] == 200 and data["backend"] == "sqlite"
    assert [run["backend"] for run in data["runs"]] == ["sqlite"]
    assert data["seconds"] > 0 and data["cpu_seconds"] > 0


def test_bench_reports_json() -> None:
    data = _run("bench_reports.py", "--attempts", "200", "--repeat", "1", "--json")
    assert {"attempts", "seconds", "backend", "runs"} <= data.keys()
    assert data["attempts"] == 200 and data["backend"] == "sqlite"
    assert data["seconds"] == data["runs"][-1]["total"] > 0


def test_bench_ami_json() -> None:
    data = _run("bench_ami.py", "--json", "--no-live", "--events", "2000", "--rounds", "1")
    assert data["events_per_s"] > 0


@pytest.mark.slow
def test_bench_pacing_json(tmp_path: Path) -> None:
    saved = tmp_path / "pacing.json"
    data = _run(
        "bench_pacing.py",
        "--quick",
        "--only",
        "grid_n5_p30",
        "--processes",
        "1",
        "--json",
        "--save-json",
        str(saved),
    )
    # --save-json writes the same object (with the tables, one run gives both)
    assert json.loads(saved.read_text(encoding="utf-8")) == data
    assert {
        "scenarios",
        "targets_met",
        "elapsed_seconds",
        "targets",
        "targets_table",
    } <= data.keys()
    per_seed = [t for t in data["targets"] if t["target"] == "30-day abandon"]
    assert [t["seed"] for t in per_seed] == [1, 2]  # the abandon targets are per seed
    for t in data["targets"]:
        assert t["status"] in ("PASS", "MISS") and t["measured"] and t["required"]
    assert data["targets_met"] == all(t["status"] == "PASS" for t in data["targets"])


def test_bench_pacing_property_json() -> None:
    data = _run(
        "bench_pacing.py",
        "--property",
        "--property-count",
        "2",
        "--property-shifts",
        "1",
        "--processes",
        "1",
        "--json",
    )
    assert data["property"] is True and len(data["scenarios"]) == 2
    assert data["all_pass"] == all(r["status"] == "PASS" for r in data["scenarios"])


def test_chaos_has_short_and_json() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "--short" in out and "--json" in out


@pytest.mark.pbx
def test_bench_pbx_json() -> None:
    """Three calls through the lab Asterisk and the real engine (~25 s): the contract only."""
    from dialer.pbx_lab import bundle_present

    if not bundle_present():
        pytest.skip("no Asterisk bundle (MARCADOR_ASTERISK_BUNDLE or ../shared/asterisk)")
    data = _run("bench_pbx.py", "--calls", "3", "--baseline-calls", "0", "--json", timeout=180)
    keys = {
        "answer_to_join_p50_ms",
        "answer_to_join_p99_ms",
        "concurrent_calls",
        "originates_per_s",
        "dialer_cpu_fraction",
        "asterisk_cpu_fraction",
        "load_avg_1m",
        "goal_met",
    }
    assert keys <= data.keys()
    assert data["calls"] == 3 and data["joined"] == 3 and data["concurrent_calls"] == 3
    assert 0 < data["answer_to_join_p50_ms"] <= data["answer_to_join_p99_ms"]
    assert data["untimestamped_events"] == 0  # timestampevents is on in the lab


@pytest.mark.pbx
def test_bench_webrtc_json() -> None:
    """Two calls to a browser phone in headless Chromium on the lab Asterisk: the contract."""
    import shutil as _shutil

    from dialer.pbx_lab import bundle_present

    if not bundle_present():
        pytest.skip("no Asterisk bundle (MARCADOR_ASTERISK_BUNDLE or ../shared/asterisk)")
    if not (_shutil.which("chromium") and _shutil.which("chromedriver")):
        pytest.skip("chromium/chromedriver not installed")
    data = _run("bench_webrtc.py", "--calls", "2", "--json", timeout=300)
    keys = {
        "calls",
        "answer_to_browser_audio_p50_ms",
        "answer_to_browser_audio_p99_ms",
        "answer_to_browser_audio_min_ms",
        "answer_to_browser_audio_max_ms",
        "load_avg_1m",
        "cpus",
        "when",
    }
    assert keys <= data.keys()
    assert data["calls"] == 2
    assert 0 < data["answer_to_browser_audio_p50_ms"] <= data["answer_to_browser_audio_p99_ms"]
