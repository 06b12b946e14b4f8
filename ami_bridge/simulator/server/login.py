"""Login and session actions: Challenge, Login (plain or MD5), Logoff, Ping, Events, Filter."""

from __future__ import annotations

import hashlib
import re
import time
from typing import TYPE_CHECKING

from ami_bridge.simulator.server.session import Session
from ami_bridge.simulator.server.sessions import ActionHandler
from ami_bridge.simulator.wire import Action, format_message

if TYPE_CHECKING:
    from ami_bridge.simulator.server import SimulatorServer


class LoginActions:
    """The actions a session runs for itself (three of them before it is logged in)."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.pbx = server.pbx
        self.clock = server.clock
        self.config = server.config

    def handlers(self) -> dict[str, ActionHandler]:
        return {
            "challenge": self.challenge,
            "login": self.login,
            "logoff": self.logoff,
            "ping": self.ping,
            "events": self.events,
            "filter": self.filter,
        }

    async def challenge(self, s: Session, a: Action) -> None:
        s.challenge = str(self.pbx.core.rng.randrange(100_000_000, 999_999_999))
        s.reply(a, [("Response", "Success"), ("Challenge", s.challenge)])

    async def login(self, s: Session, a: Action) -> None:
        username = a.get("Username") or ""
        user = self.config.users.get(username)
        ok = False
        if user is not None:
            if (a.get("AuthType") or "").lower() == "md5" and s.challenge is not None:
                digest = hashlib.md5((s.challenge + user.secret).encode(), usedforsecurity=False)
                ok = digest.hexdigest() == (a.get("Key") or "")
            else:
                ok = a.get("Secret") == user.secret
        if not ok:
            await self.clock.sleep(self.config.auth_failure_delay)
            s.reply(a, [("Response", "Error"), ("Message", "Authentication failed")])
            self.server.sessions.close(s, abort=False)
            return
        s.user, s.perms = username, user
        ev = (a.get("Events") or "on").strip().lower()
        s.set_event_mask(ev)
        s.reply(a, [("Response", "Success"), ("Message", "Authentication accepted")])
        if s.events_on and self.server.fully_booted:
            uptime = int(self.clock.wall() - self.pbx.boot_wall)
            s.write(
                format_message(
                    [
                        ("Event", "FullyBooted"),
                        ("Privilege", "system,all"),
                        ("Uptime", str(uptime)),
                        ("LastReload", str(uptime)),
                        ("Status", "Fully Booted"),
                    ]
                )
            )
        self.server.sessions.security_event(
            s, "SuccessfulAuth", "Informational", [("UsingPassword", "0")]
        )

    async def logoff(self, s: Session, a: Action) -> None:
        s.reply(a, [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")])
        self.server.sessions.close(s, abort=False)

    async def ping(self, s: Session, a: Action) -> None:
        s.reply(a, [("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])

    async def events(self, s: Session, a: Action) -> None:
        s.set_event_mask((a.get("EventMask") or "on").strip().lower())
        s.reply(a, [("Response", "Success"), ("Events", "On" if s.events_on else "Off")])

    async def filter(self, s: Session, a: Action) -> None:
        flt = a.get("Filter") or ""
        include = not flt.startswith("!")
        try:
            pattern = re.compile(flt if include else flt[1:])
        except re.error:
            s.reply(a, [("Response", "Error"), ("Message", "Filter Not Added")])
            return
        s.filters.append((include, pattern))
        s.reply(a, [("Response", "Success"), ("Message", "Success")])
