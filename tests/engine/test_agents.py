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


# ------------------------------------------------------------------ rejoin (issue 15)
GRACE = timedelta(seconds=30)


def in_call() -> AgentSession:
    return logged_in().reserve("att-1", at(3)).connected("att-1", at(4))


def test_a_lost_session_mid_call_is_kept_for_the_grace_and_rejoined() -> None:
    s = in_call().session_lost(at(10), GRACE)
    assert s.state is AgentState.IN_CALL and s.call_attempt == "att-1"
    assert s.is_reconnecting and not s.room_joined and not s.is_available
    assert s.rejoin_deadline == at(40) and not s.rejoin_expired(at(39.9))
    # The reloaded page logs in again: the same session, state and call.
    r = s.login("1001", 7, at(12))
    assert r.state is AgentState.IN_CALL and r.call_attempt == "att-1" and r.is_reconnecting
    # A rejoin call that failed does not extend the deadline.
    assert r.session_lost(at(20), GRACE).rejoin_deadline == at(40)
    j = r.room_joined_event("chan-2", at(14))
    assert j.state is AgentState.IN_CALL and j.room_joined and j.session_channel == "chan-2"
    assert not j.is_reconnecting and not j.rejoin_expired(at(100))
    assert j.call_ended(30, at(50)).state is AgentState.WRAP_UP


def test_the_customer_may_hang_up_during_the_grace_and_the_wrap_up_is_kept() -> None:
    s = in_call().session_lost(at(10), GRACE).call_ended(30, at(15))
    assert s.state is AgentState.WRAP_UP and s.is_reconnecting
    w = logged_in().reserve("a", at(3)).connected("a", at(4)).call_ended(30, at(5))
    assert w.session_lost(at(6), GRACE).is_reconnecting


def test_the_grace_expires_and_the_agent_is_logged_out() -> None:
    s = in_call().session_lost(at(10), GRACE)
    assert s.rejoin_expired(at(40))
    with pytest.raises(InvalidAgentTransition, match="after the grace"):
        s.login("1001", 7, at(40))
    out = s.logout(at(40))
    assert out.state is AgentState.LOGGED_OUT and not out.is_reconnecting
    assert not out.rejoin_expired(at(100))


def test_no_grace_outside_a_call_or_without_a_grace() -> None:
    assert in_call().session_lost(at(10), timedelta(0)).state is AgentState.LOGGED_OUT
    for s in (logged_in(), logged_in().pause("break", at(3)), logged_in().reserve("a", at(3))):
        assert s.session_lost(at(10), GRACE).state is AgentState.LOGGED_OUT


def test_a_rejoin_must_come_from_the_same_extension_and_campaign() -> None:
    s = in_call().session_lost(at(10), GRACE)
    with pytest.raises(InvalidAgentTransition, match="another extension"):
        s.login("1002", 7, at(11))
    with pytest.raises(InvalidAgentTransition, match="another extension"):
        s.login("1001", 8, at(11))
    with pytest.raises(InvalidAgentTransition, match="log in"):
        in_call().login("1001", 7, at(11))  # not reconnecting: already logged in
