"""``marcador pbx check``: is this Asterisk ready for Marcador? A checklist for an admin.

It logs in with each configured AMI user (``MARCADOR_ASTERISK__SERVERS``) and checks, using
only what that user may do (so a missing permission shows up as a failed line):

* the login itself, and the read classes: ``system`` (FullyBooted after login), ``call`` and
  ``dialplan`` (the events of a harmless probe call into ``marcador-phones``, which hangs up);
* the write classes: ``originate``, ``call``, ``reporting``, ``system`` (each action is sent
  without its mandatory fields, so it does nothing; only "Permission denied" fails);
* the modules ConfBridge, AMD, ChanSpy, MixMonitor (``ModuleCheck``);
* Marcador's dialplan contexts (``ShowDialPlan``);
* the agent endpoints: defined, and how many are registered (a warning, not a failure);
* the safe-harbor and machine-message sounds (a Local channel plays them: ``PLAYBACKSTATUS``);
* the trunk of the server's dial-string template: a PJSIP endpoint with a reachable contact,
  or the dialplan context of a Local trunk.

Exit code 0 when nothing failed, 1 otherwise. Secrets are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from ami_bridge import dialplan as dp
from ami_bridge.simulator.client import AmiTestClient, Message
from dialer.settings import AsteriskServer

MODULES = {
    "app_confbridge.so": "ConfBridge (agent rooms)",
    "app_amd.so": "AMD (answering machines)",
    "app_chanspy.so": "ChanSpy (supervisor listen/whisper/barge)",
    "app_mixmonitor.so": "MixMonitor (recording)",
}
CONTEXTS = (
    dp.CTX_AGENT,
    dp.CTX_OUTBOUND,
    dp.CTX_HOLD,
    dp.CTX_AGENT_ROOM,
    dp.CTX_PREVIEW,
    dp.CTX_SPY,
    dp.CTX_AGENT_PHONES,
)
SOUNDS = (dp.DEFAULT_SAFE_HARBOR, dp.DEFAULT_MACHINE_MESSAGE)
#: write class -> a harmless action of that class (Originate/Redirect without their mandatory
#: fields do nothing; the others only read).
WRITE_PROBES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "originate": ("Originate", ()),
    "call": ("Redirect", ()),
    "reporting": ("CoreShowChannels", ()),
    "system": ("PJSIPShowEndpoints", ()),
}


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class CheckResult:
    server: str
    item: str
    status: Status
    detail: str


def _denied(msg: Message) -> bool:
    return msg.response == "Error" and "permission denied" in (msg.get("Message") or "").lower()


class _Checker:
    def __init__(
        self, server: AsteriskServer, ami: AmiTestClient, within: float, sounds: tuple[str, ...]
    ) -> None:
        self.server = server
        self.sound_names = sounds
        self.ami = ami
        self.within = within
        self.results: list[CheckResult] = []

    def add(self, item: str, status: Status, detail: str) -> None:
        self.results.append(CheckResult(self.server.name, item, status, detail))

    async def list_action(self, action: str, *headers: tuple[str, str]) -> list[Message]:
        """Run a list action; return its items (up to the ``...Complete`` event)."""
        aid = self.ami.send(action, *headers)
        first = await self.ami.response(aid, self.within)
        if first.response != "Success":
            raise PermissionError(first.get("Message") or "error")
        start = self.ami.messages.index(first)
        await self.ami.wait_for(
            lambda m: m.get("ActionID") == aid and (m.get("EventList") == "Complete"),
            self.within,
            start,
        )
        return [
            m
            for m in self.ami.messages[start + 1 :]
            if m.get("ActionID") == aid and m.get("EventList") != "Complete"
        ]

    # ------------------------------------------------------------------ checks
    async def read_classes(self, login_at: int) -> None:
        try:
            await self.ami.wait_for(lambda m: m.event == "FullyBooted", 3.0, login_at)
            self.add("read: system", Status.OK, "FullyBooted received")
        except TimeoutError:
            self.add("read: system", Status.FAIL, "no FullyBooted: add 'system' to read=")
        start = len(self.ami.messages)
        probe = f"marcador-check-{time.time_ns()}"
        aid = self.ami.send(
            "Originate",
            ("Channel", f"Local/s@{dp.CTX_AGENT_PHONES}"),
            ("Context", dp.CTX_AGENT_PHONES),
            ("Exten", "s"),
            ("Priority", "1"),
            ("ChannelId", probe),
            ("Async", "true"),
        )
        resp = await self.ami.response(aid, self.within)
        if _denied(resp):
            self.add("read: call, dialplan", Status.WARN, "not checked (no write=originate)")
            return
        for cls, event in (("call", "Newchannel"), ("dialplan", "Newexten")):
            try:
                await self.ami.wait_for(lambda m, e=event: m.event == e, self.within, start)  # type: ignore[misc]
                self.add(f"read: {cls}", Status.OK, f"{event} events received")
            except TimeoutError:
                self.add(f"read: {cls}", Status.FAIL, f"no {event} events: add '{cls}' to read=")

    async def write_classes(self) -> None:
        for cls, (action, headers) in WRITE_PROBES.items():
            resp = await self.ami.action(action, *headers)
            if _denied(resp):
                self.add(f"write: {cls}", Status.FAIL, f"{action} refused: add '{cls}' to write=")
            elif "unknown command" in (resp.get("Message") or "").lower():
                self.add(f"write: {cls}", Status.WARN, f"cannot check: {action} unknown here")
            else:
                self.add(f"write: {cls}", Status.OK, f"{action} allowed")

    async def modules(self) -> None:
        for module, what in MODULES.items():
            resp = await self.ami.action("ModuleCheck", ("Module", module))
            if resp.response == "Success":
                self.add(f"module {module}", Status.OK, what)
            elif _denied(resp):
                self.add(f"module {module}", Status.FAIL, "cannot check: add 'system' to write=")
            else:
                hint = " (needs amd.conf)" if module == "app_amd.so" else ""
                self.add(f"module {module}", Status.FAIL, f"not loaded{hint}: {what}")

    async def contexts(self) -> None:
        for ctx in CONTEXTS:
            try:
                await self.list_action("ShowDialPlan", ("Context", ctx))
                self.add(f"context {ctx}", Status.OK, "present")
            except PermissionError as exc:
                self.add(f"context {ctx}", Status.FAIL, f"{exc} (extensions.conf loaded?)")

    async def endpoints(self) -> None:
        try:
            items = await self.list_action("PJSIPShowEndpoints")
        except PermissionError as exc:
            self.add("agent endpoints", Status.FAIL, f"PJSIPShowEndpoints: {exc}")
            return
        agents = [m for m in items if re.fullmatch(r"\d+", m.get("ObjectName") or "")]
        if not agents:
            self.add("agent endpoints", Status.FAIL, "no numeric PJSIP endpoint (agent seat)")
            return
        registered = [m for m in agents if (m.get("Contacts") or "").strip(", ")]
        names = ", ".join(sorted(m.get("ObjectName") or "" for m in agents))
        self.add("agent endpoints", Status.OK, f"{len(agents)} defined: {names}")
        status = Status.OK if registered else Status.WARN
        self.add(
            "agent phones registered",
            status,
            f"{len(registered)} of {len(agents)} registered"
            + ("" if registered else " (agents register their softphones to log in)"),
        )

    async def sounds(self) -> None:
        """Each sound is played by the real safe-harbor path: a Local channel into
        ``marcador-hold,safe-harbor`` with ``MARCADOR_SAFE_HARBOR`` set to it. A missing file
        fails at once (PLAYBACKSTATUS=FAILED); a present one is still playing after a moment
        (or SUCCESS). The probe is then hung up."""
        probe = f"Local/{dp.EXTEN_SAFE_HARBOR}@{dp.CTX_HOLD}-"
        for sound in self.sound_names:
            start = len(self.ami.messages)
            aid = self.ami.send(
                "Originate",
                ("Channel", f"Local/{dp.EXTEN_SAFE_HARBOR}@{dp.CTX_HOLD}"),
                ("Application", "Wait"),
                ("Data", "30"),
                ("Variable", f"_{dp.VAR_SAFE_HARBOR}={sound}"),
                ("Async", "true"),
            )
            resp = await self.ami.response(aid, self.within)
            if _denied(resp):
                self.add(f"sound {sound}", Status.WARN, "not checked (no write=originate)")
                continue
            status = ""
            # The 2 s for a verdict start when the probe's Playback starts, not at the
            # Originate: on a loaded PBX the Local channel may take longer than that to get
            # there, and a missing file was then reported as "plays".
            with contextlib.suppress(TimeoutError, EOFError):
                started = await self.ami.wait_for(
                    lambda m: (
                        m.event == "Newexten"
                        and m.get("Application") == "Playback"
                        and (m.get("Channel") or "").startswith(probe)
                    ),
                    self.within,
                    start,
                )
                start = self.ami.messages.index(started)
            with contextlib.suppress(TimeoutError, EOFError):
                var = await self.ami.wait_for(
                    lambda m: m.event == "VarSet" and m.get("Variable") == "PLAYBACKSTATUS",
                    2.0,
                    start,
                )
                status = var.get("Value") or ""
            with contextlib.suppress(TimeoutError, EOFError):
                done = await self.ami.event("OriginateResponse", self.within, ActionID=aid)
                if done.get("Channel"):
                    await self.ami.action("Hangup", ("Channel", done.get("Channel") or ""))
            if status == "FAILED":
                self.add(f"sound {sound}", Status.FAIL, "missing: install it under sounds/<lang>/")
            else:
                self.add(f"sound {sound}", Status.OK, "plays")

    async def trunk(self) -> None:
        template = self.server.trunk
        m = re.match(r"^PJSIP/\{number\}@([^/]+)$", template)
        if m:
            endpoint = m.group(1)
            try:
                items = await self.list_action("PJSIPShowEndpoints")
            except PermissionError as exc:
                self.add("trunk", Status.FAIL, f"PJSIPShowEndpoints: {exc}")
                return
            found = [i for i in items if i.get("ObjectName") == endpoint]
            if not found:
                self.add("trunk", Status.FAIL, f"PJSIP endpoint {endpoint!r} is not defined")
                return
            state = found[0].get("DeviceState") or ""
            contacts = (found[0].get("Contacts") or "").strip(", ")
            ok = bool(contacts) and state != "Unavailable"
            self.add(
                "trunk",
                Status.OK if ok else Status.FAIL,
                f"endpoint {endpoint}: {state or 'unknown'}"
                + ("" if contacts else ", no contact (check the aor and qualify)"),
            )
            return
        m = re.match(r"^Local/\{number\}@([^/]+)", template)
        if m:
            try:
                await self.list_action("ShowDialPlan", ("Context", m.group(1)))
                self.add("trunk", Status.OK, f"Local trunk: context {m.group(1)} present")
            except PermissionError as exc:
                self.add("trunk", Status.FAIL, f"context {m.group(1)}: {exc}")
            return
        self.add("trunk", Status.WARN, f"cannot check a {template.split('/')[0]} trunk")


async def check_server(
    server: AsteriskServer, *, within: float = 5.0, sounds: tuple[str, ...] = SOUNDS
) -> list[CheckResult]:
    """Every check for one server (connection errors become one failed line)."""
    try:
        ami = await AmiTestClient.connect(server.host, server.port, within)
    except (OSError, TimeoutError) as exc:
        where = f"{server.host}:{server.port}"
        return [CheckResult(server.name, "AMI connection", Status.FAIL, f"{where}: {exc}")]
    checker = _Checker(server, ami, within, sounds)
    try:
        login_at = len(ami.messages)
        resp = await ami.login(server.username, server.secret.get_secret_value())
        if resp.response != "Success":
            checker.add(
                "AMI login", Status.FAIL, f"user {server.username!r}: {resp.get('Message')}"
            )
            return checker.results
        checker.add("AMI login", Status.OK, f"user {server.username!r}, {ami.banner}")
        steps: list[Callable[[], Awaitable[None]]] = [
            lambda: checker.read_classes(login_at),
            checker.write_classes,
            checker.modules,
            checker.contexts,
            checker.endpoints,
            checker.sounds,
            checker.trunk,
        ]
        for step in steps:
            try:
                await step()
            except (TimeoutError, EOFError) as exc:
                checker.add(step.__name__, Status.FAIL, f"no answer from Asterisk: {exc!r}")
        return checker.results
    finally:
        with contextlib.suppress(Exception):
            await ami.close()


async def check_servers(servers: list[AsteriskServer]) -> list[CheckResult]:
    results = await asyncio.gather(*(check_server(s) for s in servers))
    return [r for rs in results for r in rs]
