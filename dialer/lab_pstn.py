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
            "answers and hangs up after 1 s (AMD on: during AMD's initial silence)",
            True,
            CallOutcome.ANSWERED_CONNECTED,
            CallOutcome.EARLY_HANGUP,
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


LATE_PREFIX: Final = "+57319"
"""Numbers starting with it ring first: the second-to-last digit is the seconds of ringing
before the last digit's behaviour (``extensions_lab.conf``, ``marcador-lab-pstn``)."""


def ring_seconds(number: str) -> int:
    """Seconds a lab number rings before its behaviour starts (0 unless a late number)."""
    digits = number.strip()
    if digits.lstrip("+").startswith(LATE_PREFIX.lstrip("+")) and len(digits) >= 2:
        return int(digits[-2])
    return 0


def late_number(digit: str, serial: int, ring: int) -> str:
    """A lab number that rings ``ring`` seconds (0-9), then behaves as ``digit`` says."""
    if not 0 <= ring <= 9:
        raise ValueError(f"a late lab number rings 0-9 s, not {ring}")
    if digit not in BEHAVIOURS:
        raise ValueError(f"no lab behaviour for digit {digit!r}")
    return f"{LATE_PREFIX}0{serial % 10_000:04d}{ring}{digit}"


def lab_number(digit: str, serial: int, prefix: str = "+5730000") -> str:
    """A distinct E.164 number with behaviour ``digit`` (``serial`` keeps numbers unique)."""
    if digit not in BEHAVIOURS:
        raise ValueError(f"no lab behaviour for digit {digit!r}")
    return f"{prefix}{serial % 10_000:04d}{digit}"


TALKER_PREFIX: Final = "+57318"
"""Numbers starting with it answer and play ``custom/tone`` (:data:`TALKER_TONE_HZ`) in a loop
until the other side hangs up (``extensions_lab.conf``, ``marcador-lab-talker``): what an agent
must hear once the customer is put through."""
TALKER_TONE_HZ: Final = 700.0
"""Frequency of the lab sound ``custom/tone`` (``dialer.pbx_lab.LAB_TONES``)."""


def talker_number(serial: int) -> str:
    """A lab customer that plays the tone until hung up. It ends in 0, so
    :func:`expected_outcome` gives the talk-until-hangup outcome (``answered_connected``)."""
    return f"{TALKER_PREFIX}0{serial % 10_000:04d}0"


LISTENER_PREFIX: Final = "+57317"
"""Numbers starting with it answer, play ``custom/tone`` like a talker AND record what they hear
(MixMonitor ``r()``) to ``<spool>/monitor/lab-heard-<number>.wav`` of the lab: the check that
the agent's audio reaches the customer (browser phone tests)."""


def listener_number(serial: int) -> str:
    """A lab customer that plays the tone and records what it hears; ends in 0 (talk until
    hung up, ``answered_connected``)."""
    return f"{LISTENER_PREFIX}0{serial % 10_000:04d}0"


def is_talker(number: str) -> bool:
    return number.strip().lstrip("+").startswith(TALKER_PREFIX.lstrip("+"))
