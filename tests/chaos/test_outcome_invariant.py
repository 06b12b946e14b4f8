"""scripts/chaos.py ``--pbx asterisk``: the invariant "every attempt's recorded outcome matches
what its number's lab behaviour produced" (pure: attempts are plain objects, no processes)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import lab_number
from tests.pbx.stack import _chaos

T0 = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


def _attempt(digit: str, outcome: CallOutcome | None, start_s: float, end_s: float) -> Any:
    return SimpleNamespace(
        uuid=f"a-{digit}-{start_s:g}",
        number=lab_number(digit, int(start_s)),
        outcome=outcome,
        created_at=T0 + timedelta(seconds=start_s),
        ended_at=T0 + timedelta(seconds=end_s),
    )


def _chaos_run(tmp_path: Path, faults: list[tuple[float, str]]) -> Any:
    chaos = _chaos().Chaos(argparse.Namespace(pbx="asterisk"), tmp_path)
    chaos.disruptions = [(T0 + timedelta(seconds=s), f) for s, f in faults]
    return chaos


def test_matching_outcomes_and_abandons_of_answering_numbers_pass(tmp_path: Path) -> None:
    chaos = _chaos_run(tmp_path, [])
    attempts = [
        _attempt("2", CallOutcome.BUSY, 0, 1),
        _attempt("3", CallOutcome.CONGESTION, 0, 1),
        _attempt("4", CallOutcome.NO_ANSWER, 0, 15),
        _attempt("8", CallOutcome.REJECTED, 0, 1),
        _attempt("9", CallOutcome.INVALID_NUMBER, 0, 1),
        _attempt("1", CallOutcome.ANSWERED_CONNECTED, 0, 8),
        _attempt("6", CallOutcome.ABANDONED, 0, 4),  # no agent free: predictive over-dial
        _attempt("5", None, 0, 1),  # no outcome: attempts_without_outcome counts it
    ]
    assert chaos.outcome_mismatches(attempts, False) == (0, 0, [])


def test_a_wrong_outcome_is_a_mismatch_unless_a_fault_hit_the_call(tmp_path: Path) -> None:
    chaos = _chaos_run(tmp_path, [(50.0, "pbx_restart")])
    wrong = _attempt("2", CallOutcome.NO_ANSWER, 10, 20)  # busy number recorded no_answer
    cut = _attempt("1", CallOutcome.FAILED, 45, 51)  # live when the PBX restarted
    machine = _attempt("7", CallOutcome.MACHINE, 100, 110)  # AMD off: machine is wrong
    mismatches, excused, examples = chaos.outcome_mismatches([wrong, cut, machine], False)
    assert (mismatches, excused) == (2, 1)
    assert wrong.uuid in examples[0] and "busy" in examples[0]
    # With AMD on, the machine-like number's expected outcome is machine.
    assert chaos.outcome_mismatches([machine], True) == (0, 0, [])
