"""System actions: CoreStatus, CoreSettings, Command (version, ``core restart now``),
CoreShowChannels, and the agents' PJSIP endpoints and contacts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ami_bridge.simulator.server.session import Session
from ami_bridge.simulator.server.sessions import ActionHandler
from ami_bridge.simulator.wire import Action

if TYPE_CHECKING:
    from ami_bridge.simulator.server import SimulatorServer


class SystemActions:
    """What the PBX reports about itself, its channels and its endpoints."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self.pbx = server.pbx
        self.clock = server.clock

    def handlers(self) -> dict[str, ActionHandler]:
        return {
            "corestatus": self.corestatus,
            "coresettings": self.coresettings,
            "command": self.command,
            "coreshowchannels": self.coreshowchannels,
            "pjsipshowendpoints": self.pjsipshowendpoints,
            "pjsipshowcontacts": self.pjsipshowcontacts,
        }

    async def corestatus(self, s: Session, a: Action) -> None:
        boot = time.gmtime(self.pbx.boot_wall)
        date, tod = time.strftime("%Y-%m-%d", boot), time.strftime("%H:%M:%S", boot)
        s.reply(
            a,
            [
                ("Response", "Success"),
                ("CoreStartupDate", date),
                ("CoreStartupTime", tod),
                ("CoreReloadDate", date),
                ("CoreReloadTime", tod),
                ("CoreCurrentCalls", str(len({c.linkedid for c in self.pbx.channels.values()}))),
                ("CoreProcessedCalls", str(self.pbx.processed_calls)),
            ],
        )

    async def coresettings(self, s: Session, a: Action) -> None:
        s.reply(
            a,
            [
                ("Response", "Success"),
                ("AMIversion", "11.0.0"),
                ("AsteriskVersion", "22.10.1"),
                ("SystemName", ""),
                ("CoreMaxCalls", "0"),
            ],
        )

    async def command(self, s: Session, a: Action) -> None:
        cmd = (a.get("Command") or "").strip()
        if cmd == "core show version":
            out = "Asterisk 22.10.1 (Marcador PBX simulator)"
        elif cmd in ("core restart now", "core restart gracefully"):
            # Asterisk 22.10.1: the issuing session gets no Response, only EOF.
            self.server.lifecycle.restart_in_background(issuer=s)
            return
        else:
            out = (
                f"No such command '{cmd}' (type 'core show help {cmd}' for other possible commands)"
            )
        s.reply(
            a, [("Response", "Success"), ("Message", "Command output follows"), ("Output", out)]
        )

    async def coreshowchannels(self, s: Session, a: Action) -> None:
        s.list_start(a, "Channels will follow")
        chans = list(self.pbx.channels.values())
        now = self.clock.now()
        for c in chans:
            secs = int(now - c.created)
            dur = f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
            bridge = c.conference.bridge_id if c.conference is not None else ""
            s.list_item(
                a,
                "CoreShowChannel",
                [
                    *self.pbx.core.chan_headers(c),
                    ("Application", c.app),
                    ("ApplicationData", c.appdata),
                    ("Duration", dur),
                    ("BridgeId", bridge),
                ],
            )
        s.list_complete(a, "CoreShowChannelsComplete", len(chans))

    async def pjsipshowendpoints(self, s: Session, a: Action) -> None:
        s.list_start(a, "A listing of Endpoints follows, presented as EndpointList events")
        agents = list(self.pbx.agents.values())
        for ag in agents:
            active = len(self.pbx.phones.channels(ag.ext))
            if not ag.registered:
                state = "Unavailable"
            elif active:
                state = "In use"
            else:
                state = "Not in use"
            contacts = f"{ag.ext}/{self.pbx.phones.contact_uri(ag.ext)}," if ag.registered else ""
            s.list_item(
                a,
                "EndpointList",
                [
                    ("ObjectType", "endpoint"),
                    ("ObjectName", ag.ext),
                    ("Transport", "transport-udp"),
                    ("Aor", ag.ext),
                    ("Auths", ag.ext),
                    ("OutboundAuths", ""),
                    ("Contacts", contacts),
                    ("DeviceState", state),
                    ("ActiveChannels", str(active)),
                ],
            )
        s.list_complete(a, "EndpointListComplete", len(agents))

    async def pjsipshowcontacts(self, s: Session, a: Action) -> None:
        s.list_start(a, "A listing of Contacts follows, presented as ContactList events")
        regs = [ag for ag in self.pbx.agents.values() if ag.registered]
        for ag in regs:
            uri = self.pbx.phones.contact_uri(ag.ext)
            port = uri.rsplit(":", 1)[1]
            s.list_item(
                a,
                "ContactList",
                [
                    ("ObjectType", "contact"),
                    ("ObjectName", f"{ag.ext};@{ag.ext}sim"),
                    ("ViaAddr", "127.0.0.1"),
                    ("QualifyTimeout", "3.000000"),
                    ("Qualify2xxOnly", "false"),
                    ("CallId", f"sim-{ag.ext}@127.0.0.1:{port}"),
                    ("RegServer", ""),
                    ("PruneOnBoot", "no"),
                    ("Path", ""),
                    ("Endpoint", ag.ext),
                    ("ViaPort", port),
                    ("AuthenticateQualify", "no"),
                    ("Uri", uri),
                    ("QualifyFrequency", "0"),
                    ("UserAgent", "pyVoIP 1.6.8"),
                    ("ExpirationTime", str(int(self.clock.wall()) + 3600)),
                    ("OutboundProxy", ""),
                    ("Status", "NonQualified"),
                    ("RoundtripUsec", "N/A"),
                ],
            )
        s.list_complete(a, "ContactListComplete", len(regs))
