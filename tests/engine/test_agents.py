from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialer.domain.agents import AgentSession, InvalidAgentTransition, longest_idle
from dialer.domain.outcomes import AgentState

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def logged_in(agent_id: int = 1, joined_at: float = 1) -> AgentSession:
    return AgentSession(agent_id).login("1001", 7, at(0)).room_joined_event("chan-1", at(joined_at))


def test_full_call_cycle() -> None:
    s = AgentSession(1).login("1001", 7, at(0))
    assert s.state is AgentState.PAUSED and s.pause_code == "connecting"
    assert not s.is_available
    s = s.room_joined_event("chan-1", at(2))
    assert s.state is AgentState.READY and s.is_available
    s = s.reserve("att-1", at(10))
    assert s.state is AgentState.RESERVED and not s.is_available
    s = s.connected("att-1", at(10.2))
    assert s.state is AgentState.IN_CALL
    s = s.call_ended(30, at(100))
    assert s.state is AgentState.WRAP_UP
    assert not s.wrap_overdue(at(129)) and s.wrap_overdue(at(130))
    with pytest.raises(InvalidAgentTransition, match="before the disposition"):
        s.ready(at(101))
    s = s.dispositioned(at(110))
    assert s.state is AgentState.READY and s.ready_since == at(110)
    assert s.time_in_state(at(115)) == timedelta(seconds=5)


def test_pause_codes_and_errors() -> None:
    s = logged_in()
    s = s.pause("lunch", at(5))
    assert s.state is AgentState.PAUSED and s.pause_code == "lunch"
    with pytest.raises(InvalidAgentTransition, match="unknown code"):
        s.pause("nap", at(6))
    with pytest.raises(InvalidAgentTransition, match="be reserved"):
        s.reserve("x", at(6))
    assert s.ready(at(7)).state is AgentState.READY


def test_cannot_go_ready_before_room_join() -> None:
    s = AgentSession(1).login("1001", 7, at(0))
    with pytest.raises(InvalidAgentTransition, match="connecting"):
        s.ready(at(1))


def test_channel_hangup_logs_out_from_any_state() -> None:
    for s in (logged_in(), logged_in().reserve("a", at(3)), logged_in().pause("break", at(3))):
        out = s.logout(at(9))
        assert out.state is AgentState.LOGGED_OUT
        assert not out.is_available and not out.is_logged_in


def test_connect_must_match_reserved_call() -> None:
    s = logged_in().reserve("a", at(3))
    with pytest.raises(InvalidAgentTransition):
        s.connected("b", at(4))
    assert s.release_reservation(at(5)).is_available


def test_login_needs_extension() -> None:
    with pytest.raises(InvalidAgentTransition, match="extension"):
        AgentSession(1).login("  ", 7, at(0))


def test_longest_idle_routing() -> None:
    a = logged_in(1, joined_at=5)
    b = logged_in(2, joined_at=3)
    c = logged_in(3, joined_at=1).pause("break", at(4))
    assert longest_idle([a, b, c]) == b
    assert longest_idle([c]) is None
