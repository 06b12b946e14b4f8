from __future__ import annotations

import random

import pytest

from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.pacing import AgentView, Pacer, PacingConfig, Segment

SEG = Segment("default", 1, 10)


def train(pacer: Pacer, n_dials: int = 2000, p: float = 0.3, seed: int = 7) -> Pacer:
    """Feed a pacer synthetic history: answer prob p, delay ~9 s, talk ~180 s, wrap ~15 s."""
    rng = random.Random(seed)
    for _ in range(n_dials):
        if rng.random() < p:
            outcome = CallOutcome.ANSWERED_CONNECTED
            pacer.observe_call(SEG, outcome, rng.lognormvariate(2.09, 0.47))
            pacer.observe_talk(rng.lognormvariate(4.85, 0.83))
            pacer.observe_wrap(rng.lognormvariate(2.66, 0.29))
        else:
            pacer.observe_call(SEG, CallOutcome.NO_ANSWER, rng.uniform(20.0, 25.0))
    return pacer


@pytest.fixture(scope="module")
def trained() -> Pacer:
    return train(Pacer(PacingConfig()))


def agent(i: int, state: AgentState, since: float) -> AgentView:
    return AgentView(str(i), state, since)
