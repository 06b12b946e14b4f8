"""Configuration and status of one AMI link: where to log in, backoff, timeouts, and the
:class:`LinkStatus` snapshot published for /readyz, the dashboard and Redis.

Plain data, no IO. The link itself is :class:`ami_bridge.connection.AmiConnection`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from ami_bridge.actions import ChannelInfo
from ami_bridge.events import AMIEvent
from ami_bridge.protocol import DEFAULT_MAX_MESSAGE_SIZE

__all__ = [
    "Backoff",
    "EventHandler",
    "LinkOptions",
    "LinkState",
    "LinkStatus",
    "ReconcileHandler",
    "ServerSpec",
    "StatusHandler",
]


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """Where and how to log in. The secret is a :class:`SecretStr`: it never reaches a log."""

    name: str
    host: str
    port: int
    username: str
    secret: SecretStr

    @classmethod
    def from_settings(cls, server: Any) -> ServerSpec:
        """From a :class:`dialer.settings.AsteriskServer`."""
        return cls(server.name, server.host, server.port, server.username, server.secret)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff; each delay is drawn in ``[nominal * (1 - jitter), nominal]``."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.25
    #: Slower schedule after a refused Login (an admin has to fix the secret).
    auth_initial: float = 5.0
    auth_maximum: float = 300.0

    def delay(self, failures: int, rng: random.Random, *, auth: bool = False) -> float:
        """Delay before attempt number ``failures + 1`` (``failures`` >= 1)."""
        start, cap = (
            (self.auth_initial, self.auth_maximum) if auth else (self.initial, self.maximum)
        )
        nominal = min(cap, start * self.factor ** max(0, failures - 1))
        # Jitter downwards only, so the cap holds and delays at the cap still spread out.
        return max(0.0, nominal * (1.0 - self.jitter * rng.random()))


@dataclass(frozen=True, slots=True)
class LinkOptions:
    action_timeout: float = 5.0
    ping_interval: float = 10.0
    #: Default: ``min(action_timeout, ping_interval)``.
    ping_timeout: float | None = None
    connect_timeout: float = 5.0
    #: A refused Login is answered after ~1 s (transcript 02): allow for that.
    login_timeout: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    queue_size: int = 10_000
    #: Worker tasks per link. With 1 (the default) events are handled strictly in order.
    workers: int = 1
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    events: str = "on"

    @property
    def effective_ping_timeout(self) -> float:
        return self.ping_timeout or min(self.action_timeout, self.ping_interval)

    @property
    def effective_login_timeout(self) -> float:
        return self.login_timeout or self.action_timeout + 2.0

    @classmethod
    def from_settings(cls, asterisk: Any, **overrides: Any) -> LinkOptions:
        """From :class:`dialer.settings.AsteriskSettings` (action_timeout, ping_interval)."""
        base = cls(action_timeout=asterisk.action_timeout, ping_interval=asterisk.ping_interval)
        return replace(base, **overrides)


class LinkState(StrEnum):
    STOPPED = "stopped"  # not started, or closed
    CONNECTING = "connecting"  # TCP connect, Login and reconciliation in progress
    CONNECTED = "connected"  # logged in and reconciled: actions accepted
    BACKOFF = "backoff"  # waiting before the next attempt
    AUTH_FAILED = "auth_failed"  # Login refused; backing off (alert raised)


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """Snapshot of one link, for /readyz, the dashboard and Redis (``Keys.ami_link``)."""

    server: str
    state: LinkState
    last_error: str | None = None
    connected_since: float | None = None  # UNIX time of the current session's login
    next_attempt_in: float | None = None  # seconds, in BACKOFF/AUTH_FAILED
    attempts: int = 0  # TCP connection attempts since start
    sessions: int = 0  # successful logins since start (reconnects = sessions - 1)
    auth_failures: int = 0  # consecutive refused logins
    events_dropped: int = 0  # queue overflows
    protocol_errors: int = 0  # garbage, oversized or undecodable input
    banner: str | None = None

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    @property
    def alert(self) -> bool:
        return self.state is LinkState.AUTH_FAILED

    def as_mapping(self) -> dict[str, str]:
        """Flat string mapping for a Redis hash."""
        return {
            "server": self.server,
            "state": self.state.value,
            "last_error": self.last_error or "",
            "connected_since": "" if self.connected_since is None else f"{self.connected_since}",
            "next_attempt_in": "" if self.next_attempt_in is None else f"{self.next_attempt_in}",
            "attempts": str(self.attempts),
            "sessions": str(self.sessions),
            "auth_failures": str(self.auth_failures),
            "events_dropped": str(self.events_dropped),
            "protocol_errors": str(self.protocol_errors),
            "banner": self.banner or "",
            "alert": "1" if self.alert else "0",
        }


EventHandler = Callable[[str, AMIEvent], Awaitable[None] | None]
ReconcileHandler = Callable[[str, list[ChannelInfo], datetime], Awaitable[None] | None]
StatusHandler = Callable[[LinkStatus], Awaitable[None] | None]
