"""ConfBridge (file 26): the agents' rooms, joins and leaves with their Bridge*/Confbridge*
events, BRIDGEPEER upkeep, and the ConfbridgeKick / ConfbridgeMute actions."""

from __future__ import annotations

import asyncio

from ami_bridge import dialplan as dp
from ami_bridge.simulator.pbx.core import ChannelCore
from ami_bridge.simulator.pbx.model import Channel, Conference
from ami_bridge.simulator.wire import Headers


class ConfBridge:
    """The rooms, by name."""

    def __init__(self, core: ChannelCore) -> None:
        self.core = core
        self.rooms: dict[str, Conference] = {}

    async def app(self, ch: Channel, priority: int, room: str, profile: str) -> str:
        """The ``ConfBridge()`` application: join, then wait until the channel leaves."""
        data = f"{room},{dp.BRIDGE_PROFILE},{profile}" if profile else room
        self.core.newexten(ch, priority, "ConfBridge", data)
        self.join(ch, room, profile)
        loop = asyncio.get_running_loop()
        ch.conf_result = loop.create_future()
        return await ch.conf_result

    @staticmethod
    def _bridge_headers(conf: Conference, count: int) -> Headers:
        return [
            ("BridgeUniqueid", conf.bridge_id),
            ("BridgeType", "base"),
            ("BridgeTechnology", "softmix"),
            ("BridgeCreator", "ConfBridge"),
            ("BridgeName", conf.name),
            ("BridgeNumChannels", str(count)),
            ("BridgeVideoSourceMode", "none"),
        ]

    @staticmethod
    def _peers_value(conf: Conference, ch: Channel) -> str:
        return ",".join([conf.announcer, *(m.name for m in conf.members if m is not ch)])

    def join(self, ch: Channel, room: str, profile: str) -> None:
        core = self.core
        conf = self.rooms.get(room)
        new = conf is None
        if conf is None:
            seq = core.next_local_seq()
            conf = Conference(room, core.bridge_id(), f"CBAnn/{room}-{seq:08x};2")
            self.rooms[room] = conf
            core.emit("BridgeCreate", "call", self._bridge_headers(conf, 0))
        conf.members.append(ch)
        ch.conference, ch.conf_profile = conf, profile
        count = len(conf.members) + 1  # + the CBAnn announcer channel
        core.emit(
            "BridgeEnter", "call", [*self._bridge_headers(conf, count), *core.chan_headers(ch)]
        )
        if new:
            core.emit(
                "ConfbridgeStart", "call", [("Conference", room), *self._bridge_headers(conf, 1)]
            )
        for other in conf.members:
            if other is not ch:
                core.setvar(other, "BRIDGEPEER", self._peers_value(conf, other))
        core.setvar(ch, "BRIDGEPEER", self._peers_value(conf, ch))
        admin = "Yes" if profile == dp.USER_PROFILE_SUPERVISOR else "No"
        core.emit(
            "ConfbridgeJoin",
            "call",
            [
                ("Conference", room),
                *self._bridge_headers(conf, count),
                *core.chan_headers(ch),
                ("Admin", admin),
                ("Muted", "Yes" if ch.name in conf.muted else "No"),
            ],
        )
        call = ch.call
        if call is not None and ch is call.near and ch.agent is None:
            call.connected.set()

    def leave(self, ch: Channel, result: str) -> None:
        core = self.core
        conf = ch.conference
        if conf is None:
            return
        before = len(conf.members) + 1
        if result == "KICKED":
            core.setvar(ch, dp.VAR_CONFBRIDGE_RESULT, result)
            core.setvar(ch, "BRIDGEPEER", "")
        room = conf.name
        core.emit(
            "ConfbridgeLeave",
            "call",
            [
                ("Conference", room),
                *self._bridge_headers(conf, before),
                *core.chan_headers(ch),
                ("Admin", "Yes" if ch.conf_profile == dp.USER_PROFILE_SUPERVISOR else "No"),
            ],
        )
        if result != "KICKED":
            core.setvar(ch, "BRIDGEPEER", "")
        conf.members.remove(ch)
        ch.conference = None
        conf.muted.discard(ch.name)
        core.emit(
            "BridgeLeave", "call", [*self._bridge_headers(conf, before - 1), *core.chan_headers(ch)]
        )
        for other in conf.members:
            core.setvar(other, "BRIDGEPEER", self._peers_value(conf, other))
        if result and result != "KICKED":
            core.setvar(ch, dp.VAR_CONFBRIDGE_RESULT, result)
        if ch.conf_result is not None and not ch.conf_result.done():
            ch.conf_result.set_result(result)
        if not conf.members:
            core.emit(
                "ConfbridgeEnd", "call", [("Conference", room), *self._bridge_headers(conf, 1)]
            )
            core.emit("BridgeDestroy", "call", self._bridge_headers(conf, 0))
            self.rooms.pop(room, None)
            return
        if ch.conf_profile == dp.USER_PROFILE_AGENT:
            # end_marked=yes on customer profiles: the agent (marked) left, customers follow.
            for other in list(conf.members):
                if other.conf_profile == dp.USER_PROFILE_CUSTOMER:
                    self.leave(other, "ENDMARKED")

    def kick(self, room: str, channel: str) -> str | None:
        """ConfbridgeKick; returns an error message or ``None``."""
        conf = self.rooms.get(room)
        if conf is None:
            return "No Conference by that name found."
        targets = (
            list(conf.members)
            if channel.lower() == "all"
            else [m for m in conf.members if m.name == channel]
        )
        if not targets:
            return "No Channel by that name found in Conference."
        for m in targets:
            if m.conference is conf:
                self.leave(m, "KICKED")
        return None

    def mute(self, room: str, channel: str, mute: bool) -> str | None:
        conf = self.rooms.get(room)
        if conf is None:
            return "No Conference by that name found."
        targets = [m for m in conf.members if channel.lower() == "all" or m.name == channel]
        if not targets:
            return "No Channel by that name found in Conference."
        for m in targets:
            if mute:
                conf.muted.add(m.name)
            else:
                conf.muted.discard(m.name)
            self.core.emit(
                "ConfbridgeMute" if mute else "ConfbridgeUnmute",
                "call",
                [
                    ("Conference", room),
                    *self._bridge_headers(conf, len(conf.members) + 1),
                    *self.core.chan_headers(m),
                    ("Admin", "No"),
                ],
            )
        return None
