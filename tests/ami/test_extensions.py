"""Asterisk's extension matching (ami_bridge.extensions) and the SHIPPED dialplan run through it.

The expectations marked "bundle" were read from Asterisk 22.10.1 (``dialplan show
<exten>@<context>`` lists the matching extensions in the order Asterisk tries them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ami_bridge import actions as act
from ami_bridge import dialplan as dp
from ami_bridge.extensions import best_match, matches, parse_contexts
from ami_bridge.simulator.pbx import DIALPLAN, LEGACY_CONTEXT

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "asterisk" / "extensions.conf"


@pytest.mark.parametrize(
    ("name", "exten", "expected"),
    [
        ("_X.", "1001", True),
        ("_X.", "1", False),  # "." needs at least one character
        ("_1!", "1", True),  # "!" takes zero or more
        ("_n", "2", True),  # bundle: lower-case n is the wildcard N
        ("_n", "n", False),  # bundle
        ("_x!", "1", True),  # bundle
        ("_N", "1", False),
        ("_Z", "0", False),
        ("_1[0-5]X", "105", True),
        ("_1[0-5]X", "160", False),
        ("_[a-c]X", "b5", True),  # bundle
        ("_[a-c]X", "B5", False),  # bundle: literal characters are case-sensitive
        ("Listen", "listen", False),  # bundle
        ("Listen", "Listen", True),
        ("_ab-X.", "ab1001", True),  # bundle: dashes are ignored
        ("_ab-X.", "ab-1001", True),  # bundle
        ("_listen-X.", "listen-1001", False),  # bundle: the old spy extension never matched
        ("_whisper-X.", "whisper-1001", True),  # bundle: no N, X or Z before the dash
        ("safe-harbor", "safe-harbor", True),
    ],
)
def test_pattern_rules(name: str, exten: str, expected: bool) -> None:
    assert matches(name, exten) is expected


@pytest.mark.parametrize(
    ("names", "exten", "winner"),
    [
        # bundle: literal first, then the narrower class at the first differing position
        (["_1XX", "_1[0-5]X", "100", "_1.", "_1!", "_1ZX", "_1NX"], "100", "100"),
        (["_1XX", "_1[0-5]X", "100", "_1.", "_1!", "_1ZX", "_1NX"], "105", "_1[0-5]X"),
        (["_1XX", "_1[0-5]X", "100", "_1.", "_1!", "_1ZX", "_1NX"], "160", "_1NX"),
        (["_1XX", "_1[0-5]X", "100", "_1.", "_1!", "_1ZX", "_1NX"], "110", "_1[0-5]X"),
        (["_1XX", "_1[0-5]X", "100", "_1.", "_1!", "_1ZX", "_1NX"], "10", "_1."),
        (["_1XX", "_1[0-5]X", "100", "_1.", "_1!", "_1ZX", "_1NX"], "1", "_1!"),
        (["_X.", "_XX", "_[1-3]X"], "12", "_[1-3]X"),
        (["_X.", "_XX", "_[1-3]X"], "45", "_XX"),
        (["_X.", "_XX", "_[1-3]X"], "123", "_X."),
        (["_X.", "s"], "s", "s"),
        (["_X."], "s", None),
    ],
)
def test_precedence(names: list[str], exten: str, winner: str | None) -> None:
    assert best_match(names, exten) == winner


def _shipped() -> dict[str, list[str]]:
    return {k: list(v) for k, v in parse_contexts(SHIPPED.read_text()).items()}


def test_every_extension_the_code_dials_exists_in_the_shipped_dialplan() -> None:
    """Each (context, exten) Marcador originates or redirects to, against the shipped file:
    it must match, and match the extension meant for it."""
    contexts = _shipped()
    ext = "1001"
    wanted = [
        (dp.CTX_AGENT, ext, "_X."),  # agent log-in
        (dp.CTX_OUTBOUND, dp.EXTEN_START, "s"),  # customer originate
        (dp.CTX_OUTBOUND, dp.EXTEN_LEAVE_MESSAGE, "leave-message"),
        (dp.CTX_HOLD, dp.EXTEN_START, "s"),
        (dp.CTX_HOLD, dp.EXTEN_SAFE_HARBOR, "safe-harbor"),
        (dp.CTX_AGENT_ROOM, ext, "_X."),  # Redirect into the agent's room
        (dp.CTX_PREVIEW, ext, "_X."),
    ]
    for mode in dp.SPY_MODES:
        spy = act.spy_originate("PJSIP/2001", ext, mode, channel_id="spy-x")
        exten = dict(spy.headers)["Exten"]
        assert dict(spy.headers)["Context"] == dp.CTX_SPY
        wanted.append((dp.CTX_SPY, exten, mode))
    for context, exten, meant in wanted:
        assert context in contexts, f"context {context} missing from the shipped dialplan"
        got = best_match(contexts[context], exten)
        assert got == meant, f"{exten}@{context} runs {got!r}, not {meant!r}"


def test_the_simulator_dialplan_is_the_shipped_one() -> None:
    """Same contexts, same extension names: the simulator routes with the same matcher, so a
    name Asterisk cannot match fails here (as ``_listen-X.`` would have)."""
    contexts = _shipped()
    for context, table in DIALPLAN.items():
        if context == LEGACY_CONTEXT:
            continue  # the transcripts' lab context, not shipped
        assert list(table) == contexts[context], context
