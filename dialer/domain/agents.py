"""Agent session state machine (design.md §3). Pure: no IO, `now` passed in.

::

    LOGGED_OUT -> (login: nailed-up call placed) -> READY once the agent's channel is in the room
    READY <-> PAUSED(code)
    READY -> RESERVED -> IN_CALL -> WRAP_UP -> READY

- RESERVED: a call has been picked for this agent (the customer is being redirected).
- WRAP_UP: a disposition is required; the wrap-up timer runs.
- The agent's own channel hanging up logs the agent out at once, whatever the state, except
  for a browser phone during a call or its wrap-up (a page reload, issue 15): the session is
  kept for a grace period (``rejoin_deadline``), state and call unchanged, and a login from the
  same extension rejoins it; the grace expiring logs the agent out.

Every method returns a new :class:`AgentSession` (frozen) or raises
:class:`InvalidAgentTransition` with a message an operator can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from dialer.domain.outcomes import AgentState

PAUSE_CODES: dict[str, str] = {
    "break": "Descanso",
    "lunch": "Almuerzo",
    "training": "Capacitación",
    "manual_call": "Llamada manual",
    "meeting": "Reunión",
    "supervisor": "Pausa por supervisor",
}


class InvalidAgentTransition(Exception):
    """An agent command that is not allowed in the agent's current state."""

    def __init__(self, agent_id: int, state: AgentState, action: str) -> None:
        super().__init__(f"agent {agent_id} cannot {action} while {state.value}")
        self.agent_id = agent_id
        self.state = state
        self.action = action


@dataclass(frozen=True, slots=True)
class AgentSession:
    agent_id: int
    state: AgentState = AgentState.LOGGED_OUT
    since: datetime | None = None
    extension: str | None = None
    campaign_id: int | None = None
    pause_code: str | None = None
    session_channel: str | None = None  # the agent's nailed-up channel (uniqueid)
    room_joined: bool = False
    call_attempt: str | None = None  # attempt uuid of the current call
    ready_since: datetime | None = None  # for longest-idle routing
    wrap_deadline: datetime | None = None
    #: The session call ended mid-call and the agent may rejoin until then (browser phones).
    rejoin_deadline: datetime | None = None
    history: tuple[tuple[AgentState, datetime], ...] = field(default=())

    # ------------------------------------------------------------------ helpers
    def _to(self, state: AgentState, now: datetime, **changes: Any) -> AgentSession:
        hist = (*self.history[-19:], (state, now))
        ready_since = now if state is AgentState.READY else None
        return replace(
            self, state=state, since=now, history=hist, ready_since=ready_since, **changes
        )

    def _require(self, action: str, *states: AgentState) -> None:
        if self.state not in states:
            raise InvalidAgentTransition(self.agent_id, self.state, action)

    def time_in_state(self, now: datetime) -> timedelta:
        return now - self.since if self.since else timedelta(0)

    @property
    def is_available(self) -> bool:
        """Counted by pacing as an agent who can take the next call now."""
        return self.state is AgentState.READY and self.room_joined

    @property
    def is_logged_in(self) -> bool:
        return self.state is not AgentState.LOGGED_OUT

    @property
    def is_reconnecting(self) -> bool:
        """The session call ended mid-call; the agent may still rejoin (see :meth:`rejoin`)."""
        return self.rejoin_deadline is not None and self.is_logged_in

    def rejoin_expired(self, now: datetime) -> bool:
        return (
            self.is_reconnecting
            and self.rejoin_deadline is not None
            and now >= self.rejoin_deadline
        )

    # ------------------------------------------------------------------ transitions
    def login(self, extension: str, campaign_id: int, now: datetime) -> AgentSession:
        """Start a session: the dialer now places the nailed-up call to ``extension``.

        The agent stays PAUSED ("connecting") until their channel joins the room. A session
        waiting for its agent to rejoin (:meth:`session_lost`) is rejoined instead.
        """
        if self.is_reconnecting:
            return self.rejoin(extension, campaign_id, now)
        self._require("log in", AgentState.LOGGED_OUT)
        if not extension.strip():
            raise InvalidAgentTransition(self.agent_id, self.state, "log in without an extension")
        return self._to(
            AgentState.PAUSED,
            now,
            extension=extension.strip(),
            campaign_id=campaign_id,
            pause_code="connecting",
            room_joined=False,
            session_channel=None,
            call_attempt=None,
        )

    def session_lost(self, now: datetime, grace: timedelta) -> AgentSession:
        """The agent's nailed-up session call ended.

        With a ``grace`` (browser phones) during a call or its wrap-up, the session, the state
        and the call are kept until ``now + grace`` (or the deadline already running: a failed
        rejoin does not extend it) so the agent can rejoin; otherwise the agent is logged out.
        """
        if grace > timedelta(0) and self.state in (AgentState.IN_CALL, AgentState.WRAP_UP):
            deadline = self.rejoin_deadline or now + grace
            return replace(self, session_channel=None, room_joined=False, rejoin_deadline=deadline)
        return self.logout(now)

    def rejoin(self, extension: str, campaign_id: int, now: datetime) -> AgentSession:
        """A login while the session waits for its agent: the same extension and campaign,
        before the deadline. State and call are kept; the deadline stays until the new
        session channel joins the room (:meth:`room_joined_event`)."""
        if not self.is_reconnecting or self.rejoin_deadline is None:
            raise InvalidAgentTransition(self.agent_id, self.state, "rejoin")
        if now >= self.rejoin_deadline:
            raise InvalidAgentTransition(self.agent_id, self.state, "rejoin after the grace period")
        if extension.strip() != self.extension or campaign_id != self.campaign_id:
            raise InvalidAgentTransition(
                self.agent_id, self.state, "rejoin from another extension or campaign"
            )
        return self

    def room_joined_event(self, channel: str, now: datetime) -> AgentSession:
        """The agent's nailed-up channel entered their ConfBridge room."""
        if self.state is AgentState.LOGGED_OUT:
            raise InvalidAgentTransition(self.agent_id, self.state, "join the room")
        if self.pause_code == "connecting":
            return self._to(
                AgentState.READY, now, session_channel=channel, room_joined=True, pause_code=None
            )
        return replace(self, session_channel=channel, room_joined=True, rejoin_deadline=None)

    def ready(self, now: datetime) -> AgentSession:
        if self.state is AgentState.READY:
            return self
        self._require("go ready", AgentState.PAUSED, AgentState.WRAP_UP)
        if self.state is AgentState.WRAP_UP:
            raise InvalidAgentTransition(
                self.agent_id, self.state, "go ready before the disposition"
            )
        if not self.room_joined:
            raise InvalidAgentTransition(self.agent_id, self.state, "go ready before connecting")
        return self._to(AgentState.READY, now, pause_code=None)

    def pause(self, code: str, now: datetime) -> AgentSession:
        if code not in PAUSE_CODES:
            raise InvalidAgentTransition(
                self.agent_id, self.state, f"pause with unknown code {code!r}"
            )
        if self.state is AgentState.PAUSED and self.pause_code == "connecting":
            raise InvalidAgentTransition(self.agent_id, self.state, "pause while connecting")
        self._require("pause", AgentState.READY, AgentState.PAUSED)
        return self._to(AgentState.PAUSED, now, pause_code=code)

    def reserve(self, attempt_uuid: str, now: datetime) -> AgentSession:
        if not self.is_available:
            raise InvalidAgentTransition(self.agent_id, self.state, "be reserved")
        return self._to(AgentState.RESERVED, now, call_attempt=attempt_uuid)

    def release_reservation(self, now: datetime) -> AgentSession:
        """The reserved call vanished before it connected: back to READY."""
        self._require("release a reservation", AgentState.RESERVED)
        return self._to(AgentState.READY, now, call_attempt=None)

    def connected(self, attempt_uuid: str, now: datetime) -> AgentSession:
        self._require("connect a call", AgentState.RESERVED)
        if attempt_uuid != self.call_attempt:
            raise InvalidAgentTransition(self.agent_id, self.state, "connect another call")
        return self._to(AgentState.IN_CALL, now)

    def call_ended(self, wrap_up_seconds: int, now: datetime) -> AgentSession:
        self._require("end a call", AgentState.IN_CALL)
        return self._to(
            AgentState.WRAP_UP, now, wrap_deadline=now + timedelta(seconds=wrap_up_seconds)
        )

    def dispositioned(self, now: datetime, *, pause_code: str | None = None) -> AgentSession:
        """The agent submitted the disposition: READY again (or PAUSED if they asked)."""
        self._require("submit a disposition", AgentState.WRAP_UP)
        if pause_code is not None:
            return self._to(
                AgentState.PAUSED, now, pause_code=pause_code, call_attempt=None, wrap_deadline=None
            )
        return self._to(AgentState.READY, now, call_attempt=None, wrap_deadline=None)

    def wrap_overdue(self, now: datetime) -> bool:
        return (
            self.state is AgentState.WRAP_UP
            and self.wrap_deadline is not None
            and now >= self.wrap_deadline
        )

    def logout(self, now: datetime) -> AgentSession:
        """Explicit log-out, or the agent's channel hung up: not counted from now on."""
        if self.state is AgentState.LOGGED_OUT:
            return self
        return self._to(
            AgentState.LOGGED_OUT,
            now,
            pause_code=None,
            session_channel=None,
            room_joined=False,
            wrap_deadline=None,
            rejoin_deadline=None,
        )


def longest_idle(sessions: list[AgentSession]) -> AgentSession | None:
    """The available agent who has waited longest (fair routing)."""
    ready = [s for s in sessions if s.is_available and s.ready_since is not None]
    if not ready:
        return None
    return min(ready, key=lambda s: (s.ready_since, s.agent_id))
