"""The lab PBX's simulated customers (``deploy/asterisk/lab/extensions_lab.conf``), as data.

A lab customer is any number dialled through ``Local/{number}@marcador-lab-pstn``; its LAST
DIGIT picks the behaviour. Tests and chaos use :func:`expected_outcome` to know what the dialer
must record for a number. Pure: no IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from dialer.domain.outcomes import CallOutcome

PSTN_CONTEXT: Final = "marcador-lab-pstn"
BEHAVIOUR_CONTEXT: Final = "marcador-lab-behaviour"
VAGENT_CONTEXT: Final = "marcador-lab-vagent"
VAGENT_TALK_CONTEXT: Final = "marcador-lab-vagent-talk"
LAB_TRUNK: Final = f"Local/{{number}}@{PSTN_CONTEXT}"
"""``AsteriskServer.trunk`` of a lab server."""
VIRTUAL_AGENT_CHANNEL: Final = f"Local/{{extension}}@{VAGENT_CONTEXT}"
TALKING_AGENT_CHANNEL: Final = f"Local/{{extension}}@{VAGENT_CONTEXT}-talk"
"""A virtual agent that keeps talking (``custom/human`` in a loop) in its room."""
TALKING_CUSTOMER_TRUNK: Final = "Local/{number}@marcador-lab-customer-talk"
"""A lab customer who answers and keeps talking until the other side hangs up."""
"""``AsteriskServer.agent_channel`` for virtual agents (no softphone needed)."""
PHONE_AGENT_CHANNEL: Final = "PJSIP/{extension}"
"""``AsteriskServer.agent_channel`` for registered softphones (the production default)."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    digit: str
    name: str
    #: First dialplan application that makes the behaviour (checked against the .conf file).
    application: str
    description: str
    answers: bool
    #: Outcome with AMD off and an agent free at answer.
    outcome: CallOutcome
    #: Outcome with AMD on (``hangup``) and an agent free at answer.
    outcome_amd: CallOutcome
    #: Hang-up cause of a call that ends on the customer side (0: none specific).
    cause: int = 16


BEHAVIOURS: Final[dict[str, Behaviour]] = {
    b.digit: b
    for b in (
        Behaviour(
            "0",
            "talk-until-hangup",
            "Wait",
            "answers and talks until the other side hangs up",
            True,
            CallOutcome.ANSWERED_CONNECTED,
            CallOutcome.ANSWERED_CONNECTED,
        ),
        Behaviour(
            "1",
            "answer-talk",
            "Playback",
            "answers with a short '¿Aló?', talks LAB_TALK s (6) and hangs up",
            True,
            CallOutcome.ANSWERED_CONNECTED,
            CallOutcome.ANSWERED_CONNECTED,
        ),
        Behaviour(
            "2",
            "busy",
            "Busy",
            "busy (cause 17)",
            False,
            CallOutcome.BUSY,
            CallOutcome.BUSY,
            17,
        ),
        Behaviour(
            "3",
            "congestion",
            "Congestion",
            "congestion (cause 34)",
            False,
            CallOutcome.CONGESTION,
            CallOutcome.CONGESTION,
            34,
        ),
        Behaviour(
            "4",
            "ring-no-answer",
            "Ringing",
            "rings until the ring timeout",
            False,
            CallOutcome.NO_ANSWER,
            CallOutcome.NO_ANSWER,
            19,
        ),
        Behaviour(
            "5",
            "quick-hangup",
            "Wait",
            "answers and hangs up after 1 s",
            True,
            CallOutcome.ANSWERED_CONNECTED,
            CallOutcome.ANSWERED_CONNECTED,
        ),
        Behaviour(
            "6",
            "human-greeting",
            "Playback",
            "a person: 0.8 s '¿Aló?', listens 8 s, hangs up (AMD: HUMAN)",
            True,
            CallOutcome.ANSWERED_CONNECTED,
            CallOutcome.ANSWERED_CONNECTED,
        ),
        Behaviour(
            "7",
            "machine-greeting",
            "Playback",
            "an answering machine: 6 s continuous greeting (AMD: MACHINE)",
            True,
            CallOutcome.ANSWERED_CONNECTED,
            CallOutcome.MACHINE,
        ),
        Behaviour(
            "8",
            "rejected",
            "Hangup",
            "rejected before answer (cause 21)",
            False,
            CallOutcome.REJECTED,
            CallOutcome.REJECTED,
            21,
        ),
        Behaviour(
            "9",
            "unallocated",
            "Hangup",
            "unallocated number (cause 1)",
            False,
            CallOutcome.INVALID_NUMBER,
            CallOutcome.INVALID_NUMBER,
            1,
        ),
    )
}


def behaviour_of(number: str) -> Behaviour:
    """The behaviour of lab number ``number`` (its last digit)."""
    digits = number.strip()
    if not digits or not digits[-1].isdigit():
        raise ValueError(f"a lab number ends in a digit: {number!r}")
    return BEHAVIOURS[digits[-1]]


def expected_outcome(number: str, *, amd: bool = False) -> CallOutcome:
    """What the dialer must record for ``number`` when an agent is free at answer."""
    b = behaviour_of(number)
    return b.outcome_amd if amd else b.outcome


def lab_number(digit: str, serial: int, prefix: str = "+5730000") -> str:
    """A distinct E.164 number with behaviour ``digit`` (``serial`` keeps numbers unique)."""
    if digit not in BEHAVIOURS:
        raise ValueError(f"no lab behaviour for digit {digit!r}")
    return f"{prefix}{serial % 10_000:04d}{digit}"
