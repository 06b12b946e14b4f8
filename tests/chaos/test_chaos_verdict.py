"""scripts/chaos.py fails a run whose invariant paths were never exercised (issue 17)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chaos_script", ROOT / "scripts" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos_script"] = module
    spec.loader.exec_module(module)
    return module


def _result(chaos: ModuleType, **exercised: int) -> dict[str, Any]:
    counts = {key: 5 for key in chaos.INVARIANTS} | exercised
    return {**{key: 0 for key in chaos.INVARIANTS}, "exercised": counts}


def test_every_invariant_has_an_exercise_count() -> None:
    chaos = _chaos()
    assert set(chaos.EXERCISED) == set(chaos.INVARIANTS + chaos.PBX_INVARIANTS)


def test_unexercised_path_fails_the_run() -> None:
    chaos = _chaos()
    assert chaos.failures(_result(chaos)) == []
    assert chaos.failures(_result(chaos, whatsapp_duplicates=0)) == ["whatsapp_duplicates"]
    broken = {**_result(chaos), "double_dials": 1}
    assert chaos.failures(broken) == ["double_dials"]
    assert "0 WhatsApp messages the fake Graph API received" in chaos.render(
        {
            **_result(chaos, whatsapp_duplicates=0),
            "backend": "embedded",
            "duration_s": 1,
            "leads": 1,
            "attempts": 1,
            "whatsapp_messages": 0,
            "webhook_deliveries": 0,
            "faults": {},
            "lead_status": {},
            "outcomes": {},
            "examples": {},
            "notes": [],
        }
    )
