"""``marcador pbx-sim``: the PBX simulator as a standalone process.

Several dialer processes (and the chaos script) can then share one simulated Asterisk::

    marcador pbx-sim --port 5038 --agents 10 --speed 5 --seed 7
    MARCADOR_ASTERISK__SERVERS='[{"name":"sim","host":"127.0.0.1","port":5038,
        "username":"dialer","secret":"dialer-secret","trunk":"PJSIP/{number}@trunk"}]' \
        marcador dialer

Chaos controls (see ``docs/reliability.md``):

* signals: ``SIGUSR1`` = graceful ``core restart now`` (Shutdown event, EOF, refused for a
  moment, boots again); ``SIGUSR2`` = ``kill -9`` then a fresh start after ``--kill-downtime``
  seconds; ``SIGTERM``/``SIGINT`` = stop.
* a line-based control socket on **loopback only** (``--control-port``, 0 = off). One command per
  line, one JSON reply per line: ``status``, ``restart [refuse_s]``, ``kill [down_s]``,
  ``drop`` (abort every AMI connection; calls go on, as in a network cut), ``start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import signal
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console

from ami_bridge.simulator.config import Agent, Population, SimulatorConfig
from ami_bridge.simulator.server import SimulatorServer, serve

console = Console()

#: Largest downtime a control command may ask for (bounded chaos).
MAX_DOWNTIME_S = 60.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_config(agents: int, speed: float, seed: int) -> SimulatorConfig:
    """Simulator config with ``agents`` registered softphones 1001, 1002, ... ."""
    return SimulatorConfig(
        speed=speed,
        seed=seed,
        agents=[Agent(str(1001 + i)) for i in range(agents)],
        population=Population(talk_mean=60.0, talk_sd=30.0),
    )


@dataclass
class PbxController:
    """Chaos operations on a running :class:`SimulatorServer` (shared by signals and socket)."""

    sim: SimulatorServer
    kill_downtime: float = 2.0
    counts: dict[str, int] = field(
        default_factory=lambda: {"restart": 0, "kill": 0, "drop": 0, "start": 0}
    )
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def status(self) -> dict[str, Any]:
        return {
            "ok": True,
            "running": self.sim.running,
            "fully_booted": self.sim.fully_booted,
            "port": self.sim.port,
            "sessions": len(self.sim.sessions),
            "channels": len(self.sim.pbx.channels),
            "faults": dict(self.counts),
        }

    async def restart(self, refuse_for: float | None = None) -> None:
        self.counts["restart"] += 1
        await self.sim.restart(refuse_for)

    async def kill(self, down_for: float | None = None) -> None:
        """kill -9, then a fresh start after ``down_for`` real seconds."""
        self.counts["kill"] += 1
        await self.sim.kill()
        await asyncio.sleep(
            min(MAX_DOWNTIME_S, self.kill_downtime if down_for is None else down_for)
        )
        await self.sim.start()

    def drop(self) -> int:
        """Abort every AMI connection (the PBX keeps its calls), like a network cut."""
        self.counts["drop"] += 1
        sessions = list(self.sim.sessions)
        for s in sessions:
            s.transport.abort()
        return len(sessions)

    async def start(self) -> None:
        self.counts["start"] += 1
        await self.sim.start()

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def command(self, line: str) -> dict[str, Any]:
        """Run one control command; returns the JSON-able reply."""
        parts = line.strip().split()
        if not parts:
            return {"ok": False, "error": "empty command"}
        name, args = parts[0].lower(), parts[1:]
        try:
            arg = float(args[0]) if args else None
        except ValueError:
            return {"ok": False, "error": f"not a number: {args[0]!r}"}
        if arg is not None and not 0 <= arg <= MAX_DOWNTIME_S:
            return {"ok": False, "error": f"seconds must be within 0..{MAX_DOWNTIME_S:g}"}
        if name == "status":
            return self.status()
        if name == "restart":
            self.spawn(self.restart(arg))
            return {"ok": True, "action": "restart"}
        if name == "kill":
            self.spawn(self.kill(arg))
            return {"ok": True, "action": "kill"}
        if name == "drop":
            return {"ok": True, "action": "drop", "sessions": self.drop()}
        if name == "start":
            await self.start()
            return {"ok": True, "action": "start"}
        return {"ok": False, "error": f"unknown command {name!r}"}

    async def handle_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            for _ in range(1000):  # bounded per connection
                line = await asyncio.wait_for(reader.readline(), timeout=60)
                if not line:
                    break
                reply = await self.command(line.decode("utf-8", "replace")[:200])
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def send_control(host: str, port: int, command: str, within: float = 5.0) -> dict[str, Any]:
    """Send one control command to a running ``marcador pbx-sim`` (used by scripts/chaos.py)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    try:
        writer.write(command.encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), within)
        reply: dict[str, Any] = json.loads(line or b"{}")
        return reply
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def run_pbx_sim(
    host: str,
    port: int,
    config: SimulatorConfig,
    control_port: int,
    kill_downtime: float,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; SIGUSR1/SIGUSR2 and the control socket inject faults."""
    sim = await serve(host, port, config)
    ctl = PbxController(sim, kill_downtime=kill_downtime)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers = {
        signal.SIGINT: stop.set,
        signal.SIGTERM: stop.set,
        signal.SIGUSR1: lambda: ctl.spawn(ctl.restart()),
        signal.SIGUSR2: lambda: ctl.spawn(ctl.kill()),
    }
    for sig, handler in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
    control: asyncio.Server | None = None
    try:
        if control_port:
            control = await asyncio.start_server(ctl.handle_client, "127.0.0.1", control_port)
        console.print(
            f"[green]pbx-sim[/] AMI on {host}:{sim.port} "
            f"({len(config.agents)} agents, speed {config.speed:g}, seed {config.seed})"
            + (f", control on 127.0.0.1:{control_port}" if control_port else "")
        )
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if control is not None:
            control.close()
        for task in list(ctl._tasks):
            task.cancel()
        await asyncio.gather(*ctl._tasks, return_exceptions=True)
        await sim.close()


def pbx_sim_command(
    port: Annotated[int, typer.Option(min=0, max=65535, help="AMI port.")] = 5038,
    host: Annotated[str, typer.Option(help="Listen address (loopback only).")] = "127.0.0.1",
    agents: Annotated[
        int, typer.Option(min=0, max=500, help="Agent softphones 1001, 1002, ...")
    ] = 10,
    speed: Annotated[float, typer.Option(min=0.1, max=100, help="Simulated time speed-up.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed of the customer population.")] = 0,
    control_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Loopback control socket port (0: off).")
    ] = 0,
    kill_downtime: Annotated[
        float, typer.Option(min=0, max=MAX_DOWNTIME_S, help="SIGUSR2: seconds down after kill.")
    ] = 2.0,
) -> None:
    """Run the PBX simulator (AMI, Asterisk 22 behaviour) for several dialers to share.

    SIGUSR1 = graceful PBX restart; SIGUSR2 = kill -9 and start again after --kill-downtime s.
    The control socket takes: status, restart SECONDS, kill SECONDS, drop, start.
    """
    if not is_loopback(host):
        raise typer.BadParameter("the simulator listens on loopback only", param_hint="--host")
    config = build_config(agents, speed, seed)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_pbx_sim(host, port, config, control_port, kill_downtime))


def register(app: typer.Typer) -> None:
    app.command("pbx-sim")(pbx_sim_command)
