"""The agents' softphones as PJSIP endpoints: registration (ContactStatus), busy / answer
delay, and their live channels."""

from __future__ import annotations

from ami_bridge.simulator.config import Agent
from ami_bridge.simulator.pbx.core import ChannelCore
from ami_bridge.simulator.pbx.model import Channel
from ami_bridge.simulator.wire import Headers


class AgentPhones:
    """The configured agents by extension (shared with the config: changes persist)."""

    def __init__(self, core: ChannelCore) -> None:
        self.core = core
        self.by_ext: dict[str, Agent] = {a.ext: a for a in core.config.agents}

    def set_agent(
        self,
        ext: str,
        *,
        registered: bool | None = None,
        busy: bool | None = None,
        answer_delay: float | None = None,
    ) -> None:
        agent = self.by_ext[ext]
        if busy is not None:
            agent.busy = busy
        if answer_delay is not None:
            agent.answer_delay = answer_delay
        if registered is not None and registered != agent.registered:
            agent.registered = registered
            self.core.emit("ContactStatus", "system", self.contact_status_headers(ext, registered))
            self.core.device(f"PJSIP/{ext}", "NOT_INUSE" if registered else "UNAVAILABLE")

    @staticmethod
    def contact_uri(ext: str) -> str:
        return f"sip:{ext}@127.0.0.1:{5070 + int(ext) % 1000 if ext.isdigit() else 5070}"

    def contact_status_headers(self, ext: str, registered: bool) -> Headers:
        return [
            ("URI", self.contact_uri(ext)),
            ("ContactStatus", "NonQualified" if registered else "Removed"),
            ("AOR", ext),
            ("EndpointName", ext),
            ("RoundtripUsec", "0"),
        ]

    def channels(self, ext: str) -> list[Channel]:
        return [c for c in self.core.channels.values() if c.agent == ext and not c.hungup]
