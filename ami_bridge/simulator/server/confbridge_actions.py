"""ConfBridge actions: ConfbridgeListRooms, ConfbridgeList, ConfbridgeKick, ConfbridgeMute
and ConfbridgeUnmute."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ami_bridge.simulator.server.session import Session
from ami_bridge.simulator.server.sessions import ActionHandler
from ami_bridge.simulator.wire import Action

if TYPE_CHECKING:
    from ami_bridge.simulator.server import SimulatorServer


def _room_and_channel(s: Session, a: Action) -> tuple[str, str] | None:
    """The ``Conference`` and ``Channel`` headers, both required (else the error is sent)."""
    room, chan = a.get("Conference") or "", a.get("Channel") or ""
    if not room:
        s.reply(a, [("Response", "Error"), ("Message", "No Conference name provided.")])
        return None
    if not chan:
        s.reply(a, [("Response", "Error"), ("Message", "No channel name provided.")])
        return None
    return room, chan


class ConfBridgeActions:
    """Actions on the agents' ConfBridge rooms."""

    def __init__(self, server: SimulatorServer) -> None:
        self.pbx = server.pbx

    def handlers(self) -> dict[str, ActionHandler]:
        return {
            "confbridgelistrooms": self.confbridgelistrooms,
            "confbridgelist": self.confbridgelist,
            "confbridgekick": self.confbridgekick,
            "confbridgemute": self.confbridgemute,
            "confbridgeunmute": self.confbridgeunmute,
        }

    async def confbridgelistrooms(self, s: Session, a: Action) -> None:
        rooms = list(self.pbx.conferences.values())
        if not rooms:
            s.reply(a, [("Response", "Error"), ("Message", "No active conferences.")])
            return
        s.list_start(a, "Confbridge conferences will follow")
        for c in rooms:
            s.list_item(
                a,
                "ConfbridgeListRooms",
                [
                    ("Conference", c.name),
                    ("Parties", str(len(c.members))),
                    ("Marked", "0"),
                    ("Locked", "No"),
                    ("Muted", "No"),
                ],
            )
        s.list_complete(a, "ConfbridgeListRoomsComplete", len(rooms))

    async def confbridgelist(self, s: Session, a: Action) -> None:
        room = a.get("Conference") or ""
        conf = self.pbx.conferences.get(room)
        if not room:
            s.reply(a, [("Response", "Error"), ("Message", "No Conference name provided.")])
            return
        if conf is None:
            s.reply(a, [("Response", "Error"), ("Message", "No active conferences.")])
            return
        s.list_start(a, "Confbridge user list will follow")
        for m in conf.members:
            s.list_item(
                a,
                "ConfbridgeList",
                [
                    ("Conference", room),
                    *self.pbx.core.chan_headers(m),
                    ("Admin", "No"),
                    ("MarkedUser", "Yes" if m.agent else "No"),
                    ("Muted", "Yes" if m.name in conf.muted else "No"),
                ],
            )
        s.list_complete(a, "ConfbridgeListComplete", len(conf.members))

    async def confbridgekick(self, s: Session, a: Action) -> None:
        target = _room_and_channel(s, a)
        if target is None:
            return
        room, chan = target
        if room not in self.pbx.conferences:
            s.reply(a, [("Response", "Error"), ("Message", "No Conference by that name found.")])
            return
        msg = "All participants kicked" if chan.lower() == "all" else "User kicked"
        conf = self.pbx.conferences[room]
        if chan.lower() != "all" and not any(m.name == chan for m in conf.members):
            s.reply(
                a,
                [
                    ("Response", "Error"),
                    ("Message", "No Channel by that name found in Conference."),
                ],
            )
            return
        s.reply(a, [("Response", "Success"), ("Message", msg)])
        self.pbx.confbridge.kick(room, chan)

    async def _mute(self, s: Session, a: Action, mute: bool) -> None:
        target = _room_and_channel(s, a)
        if target is None:
            return
        room, chan = target
        err = self.pbx.confbridge.mute(room, chan, mute)
        if err is not None:
            s.reply(a, [("Response", "Error"), ("Message", err)])
            return
        s.reply(a, [("Response", "Success"), ("Message", "User muted" if mute else "User unmuted")])

    async def confbridgemute(self, s: Session, a: Action) -> None:
        await self._mute(s, a, True)

    async def confbridgeunmute(self, s: Session, a: Action) -> None:
        await self._mute(s, a, False)
