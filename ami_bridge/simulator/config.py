"""Configuration of the PBX simulator: AMI users, agents, lab customers, the generic population.

All durations are *simulated* seconds; :attr:`SimulatorConfig.speed` divides every one of them
(``speed=10`` runs ten times faster than real time).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from ami_bridge import dialplan as dp

# One step of a far-end ("customer") script. For Local channels every step is a dialplan line on
# the ``;2`` leg (it shows up as ``Newexten``); for trunk channels only its effect is visible.
StepName = Literal[
    "NoOp", "Answer", "Ringing", "Wait", "Busy", "Congestion", "Hangup", "Playback", "Converse"
]


@dataclass(frozen=True, slots=True)
class Step:
    app: StepName
    data: str = ""
    seconds: float = 0.0  # Wait/Playback duration; Converse: talk time once connected
    patience: float = 0.0  # Converse: hang up if not connected to an agent within this time


@dataclass(frozen=True, slots=True)
class AmdTruth:
    """What ``AMD()`` concludes about this customer, and how long it takes to say so."""

    status: str
    cause: str
    seconds: float


AMD_HUMAN = AmdTruth("HUMAN", "HUMAN-800-800", 2.1)
AMD_MACHINE = AmdTruth("MACHINE", "LONGGREETING-1500-1500", 2.0)
AMD_SILENCE = AmdTruth("MACHINE", "INITIALSILENCE-2500-2500", 3.0)


@dataclass(frozen=True, slots=True)
class Customer:
    """A far end: its script and the AMD verdict. ``steps=None``: the number does not exist."""

    steps: tuple[Step, ...] | None
    amd: AmdTruth = AMD_HUMAN
    label: str = ""


#: The transcripts' lab customers (``Local/<exten>@customers``), step for step as recorded.
LAB_CUSTOMERS: dict[str, Customer] = {
    "3001": Customer(
        (
            Step("NoOp", "CUSTOMER answer+talk5 LEAD_ID=${LEAD_ID}"),
            Step("Answer"),
            Step("Wait", "5", 5.0),
            Step("Hangup", "16"),
        ),
        label="answer+talk5",
    ),
    "3002": Customer((Step("NoOp", "CUSTOMER busy"), Step("Busy", "10")), label="busy"),
    "3003": Customer(
        (Step("NoOp", "CUSTOMER congestion"), Step("Congestion", "10")), label="congestion"
    ),
    "3004": Customer(
        (Step("NoOp", "CUSTOMER ring-no-answer"), Step("Ringing"), Step("Wait", "300", 300.0)),
        label="ring-no-answer",
    ),
    "3005": Customer(
        (
            Step("NoOp", "CUSTOMER answer+quick-hangup"),
            Step("Answer"),
            Step("Wait", "1", 1.0),
            Step("Hangup", "16"),
        ),
        label="answer+quick-hangup",
    ),
    "3006": Customer(
        (Step("NoOp", "CUSTOMER answer+silence"), Step("Answer"), Step("Wait", "10", 10.0)),
        amd=AMD_SILENCE,
        label="answer+silence",
    ),
    "3007": Customer(
        (
            Step("NoOp", "CUSTOMER human-like"),
            Step("Answer"),
            Step("Playback", "custom/human", 0.8),
            Step("Wait", "20", 20.0),
        ),
        amd=AMD_HUMAN,
        label="human-like",
    ),
    "3008": Customer(
        (
            Step("NoOp", "CUSTOMER answering-machine-like"),
            Step("Answer"),
            Step("Playback", "custom/machine", 6.0),
        ),
        amd=AMD_MACHINE,
        label="answering-machine-like",
    ),
    "3009": Customer(
        (
            Step("NoOp", "CUSTOMER ring3+answer+talk ${TALK}"),
            Step("Ringing"),
            Step("Wait", "3", 3.0),
            Step("Answer"),
            Step("Wait", "${TALK:-30}", -1.0),  # -1: take ${TALK}, default 30
            Step("Hangup", "16"),
        ),
        label="ring3+answer+talk",
    ),
    "3010": Customer((Step("NoOp", "CUSTOMER rejected"), Step("Hangup", "21")), label="rejected"),
    "3011": Customer(
        (Step("NoOp", "CUSTOMER unallocated"), Step("Hangup", "1")), label="unallocated"
    ),
    "3012": Customer(
        (Step("NoOp", "CUSTOMER answer+talk-forever"), Step("Answer"), Step("Wait", "600", 600.0)),
        label="answer+talk-forever",
    ),
}

#: The lab PBX's customers (``Local/<number>@marcador-lab-pstn``, behaviour by the number's LAST
#: digit: ``deploy/asterisk/lab/extensions_lab.conf``, ``dialer/lab_pstn.py``). Timings are the
#: ones recorded on the real lab (``tests/fixtures/pbx-transcripts/``, issue 14 parity): AMD
#: says HUMAN 2.12 s and MACHINE 1.98 s after it starts; the quick hang-up (digit 5) reaches AMD
#: 1.50 s after the answer (``Wait(1)`` plus the Local channel's frame timing).
LAB_PSTN_CONTEXT = "marcador-lab-pstn"
LAB_AMD_HUMAN = AmdTruth("HUMAN", "HUMAN-800-800", 2.12)
LAB_AMD_MACHINE = AmdTruth("MACHINE", "LONGGREETING-1500-1500", 1.98)
LAB_PSTN_CUSTOMERS: dict[str, Customer] = {
    "0": Customer(
        (Step("NoOp", "LAB talk-until-hangup"), Step("Answer"), Step("Wait", "3600", 3600.0)),
        amd=LAB_AMD_HUMAN,
        label="lab talk-until-hangup",
    ),
    "1": Customer(
        (
            Step("NoOp", "LAB answer-talk"),
            Step("Answer"),
            Step("Playback", "custom/human", 0.8),
            Step("Wait", "6", 6.0),
            Step("Hangup", "16"),
        ),
        amd=LAB_AMD_HUMAN,
        label="lab answer-talk",
    ),
    "2": Customer((Step("NoOp", "LAB busy"), Step("Busy", "10")), label="lab busy"),
    "3": Customer(
        (Step("NoOp", "LAB congestion"), Step("Congestion", "10")), label="lab congestion"
    ),
    "4": Customer(
        (Step("NoOp", "LAB ring-no-answer"), Step("Ringing"), Step("Wait", "600", 600.0)),
        label="lab ring-no-answer",
    ),
    "5": Customer(
        (
            Step("NoOp", "LAB quick-hangup"),
            Step("Answer"),
            Step("Wait", "1", 1.5),
            Step("Hangup", "16"),
        ),
        amd=AmdTruth("NOTSURE", "TOOLONG", 5.0),  # never reached: the customer hangs up first
        label="lab quick-hangup",
    ),
    "6": Customer(
        (
            Step("NoOp", "LAB human-greeting"),
            Step("Answer"),
            Step("Playback", "custom/human", 0.8),
            Step("Wait", "8", 8.0),
            Step("Hangup", "16"),
        ),
        amd=LAB_AMD_HUMAN,
        label="lab human-greeting",
    ),
    "7": Customer(
        (
            Step("NoOp", "LAB machine-greeting"),
            Step("Answer"),
            Step("Playback", "custom/machine", 6.0),
            Step("Wait", "4", 4.0),
            Step("Hangup", "16"),
        ),
        amd=LAB_AMD_MACHINE,
        label="lab machine-greeting",
    ),
    "8": Customer((Step("NoOp", "LAB rejected"), Step("Hangup", "21")), label="lab rejected"),
    "9": Customer((Step("NoOp", "LAB unallocated"), Step("Hangup", "1")), label="lab unallocated"),
}


def lab_pstn_customer(number: str) -> Customer:
    """The lab customer of ``number`` (its last digit; no digit: a nonexistent number)."""
    digit = number.strip()[-1:]
    return LAB_PSTN_CUSTOMERS.get(digit, NONEXISTENT)


NONEXISTENT = Customer(None, label="nonexistent")


@dataclass(frozen=True, slots=True)
class Population:
    """Generic simulated customers (any number not in the lab table), all seeded.

    Shares are of all calls; whatever is left after answer/busy/congestion/invalid/rejected
    rings until the Originate ``Timeout``. ``machine`` is the share of *answered* calls that are
    answering machines.
    """

    answer: float = 0.55
    busy: float = 0.08
    congestion: float = 0.02
    invalid: float = 0.03  # unallocated number, cause 1
    rejected: float = 0.02  # cause 21
    machine: float = 0.15
    ring_mean: float = 7.0
    ring_sd: float = 4.0
    ring_min: float = 1.0
    talk_mean: float = 90.0
    talk_sd: float = 45.0
    talk_min: float = 5.0
    patience_mean: float = 8.0  # a human hangs up after this much silence without an agent
    patience_sd: float = 3.0
    patience_min: float = 2.5
    machine_greeting: float = 20.0

    def sample(self, rng: random.Random, label: str = "sim") -> Customer:
        r = rng.random()
        ring = max(self.ring_min, rng.gauss(self.ring_mean, self.ring_sd))
        noop = Step("NoOp", f"CUSTOMER {label}")
        ringing = (Step("Ringing"), Step("Wait", f"{ring:.1f}", ring))
        edge = self.answer
        if r < edge:
            if rng.random() < self.machine:
                greet = Step("Playback", "sim/machine-greeting", self.machine_greeting)
                return Customer(
                    (noop, *ringing, Step("Answer"), greet, Step("Hangup", "16")),
                    amd=AMD_MACHINE,
                    label="machine",
                )
            talk = max(self.talk_min, rng.gauss(self.talk_mean, self.talk_sd))
            patience = max(self.patience_min, rng.gauss(self.patience_mean, self.patience_sd))
            conv = Step("Converse", f"{talk:.0f}", talk, patience)
            return Customer(
                (noop, *ringing, Step("Answer"), conv, Step("Hangup", "16")),
                amd=AMD_HUMAN,
                label="human",
            )
        for share, steps, name in (
            (self.busy, (Step("Busy", "10"),), "busy"),
            (self.congestion, (Step("Congestion", "10"),), "congestion"),
            (self.invalid, (Step("Hangup", "1"),), "invalid"),
            (self.rejected, (*ringing, Step("Hangup", "21")), "rejected"),
        ):
            edge += share
            if r < edge:
                return Customer((noop, *steps), label=name)
        return Customer((noop, Step("Ringing"), Step("Wait", "600", 600.0)), label="no-answer")


@dataclass(slots=True)
class Agent:
    """A simulated softphone on PJSIP endpoint ``ext`` (pyVoIP-like: answers after ~1 s)."""

    ext: str
    registered: bool = True
    answer_delay: float = 1.0
    busy: bool = False  # answers 486 Busy Here
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"Agent {self.ext}"


@dataclass(frozen=True, slots=True)
class AmiUser:
    secret: str
    read: frozenset[str] = frozenset({"all"})
    write: frozenset[str] = frozenset({"all"})


@dataclass(slots=True)
class SimulatorConfig:
    """Everything the simulator can be told. Defaults mirror the transcripts' lab."""

    users: dict[str, AmiUser] = field(
        default_factory=lambda: {
            "dialer": AmiUser("dialer-secret"),
            "monitor": AmiUser("monitor-secret", write=frozenset()),
        }
    )
    agents: list[Agent] = field(
        default_factory=lambda: [Agent("1001"), Agent("1002"), Agent("1003", registered=False)]
    )
    customers: dict[str, Customer] = field(default_factory=lambda: dict(LAB_CUSTOMERS))
    """Per-number behaviour, used for ``Local/<n>@customers`` and trunk dial strings alike."""
    population: Population | None = field(default_factory=Population)
    """Behaviour of numbers not in :attr:`customers` (``None``: they do not exist)."""
    trunks: frozenset[str] = frozenset({"trunk"})
    """PJSIP endpoints that reach the population: ``PJSIP/<number>@trunk`` or
    ``PJSIP/trunk/sip:<number>@host``."""
    nonexistent: frozenset[str] = frozenset({"3999"})
    seed: int = 0
    speed: float = 1.0
    auth_failure_delay: float = 1.0
    restart_refuse_seconds: float = 0.5
    shutdown_event_delay: float = 1.1
    """``core restart now``: the ``Shutdown`` event follows the channels' hang-ups this much
    later (1.1 s on the real lab, ``tests/fixtures/pbx-transcripts/05``)."""
    boot_seconds: float = 0.3
    safe_harbor_seconds: float = 4.0
    machine_message_seconds: float = 8.0
    consent_prompt_seconds: float = 3.0
    """Length of the campaign's consent prompt ("Esta llamada puede ser grabada...")."""
    recording_max_seconds: float = 120.0
    """The placeholder recording a ``MixMonitor`` writes is cut at this length (simulated s)."""
    agent_endpoint_context: str = dp.CTX_AGENT_PHONES
    trunk_endpoint_context: str = "marcador-trunk-in"
    epoch: float = 1_795_336_000.0
    """Simulated wall clock at start (Uniqueids look like ``<epoch>.<seq>``)."""
