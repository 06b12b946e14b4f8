"""``marcador pbx-sim``: the control commands used by scripts/chaos.py."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from ami_bridge.simulator import AmiTestClient
from ami_bridge.simulator.cli import PbxController, build_config, is_loopback, send_control
from ami_bridge.simulator.server import serve
from dialer.cli import app


def test_registered_and_documented() -> None:
    result = CliRunner().invoke(app, ["pbx-sim", "--help"])
    assert result.exit_code == 0
    assert "SIGUSR1" in result.output


def test_refuses_non_loopback_host() -> None:
    result = CliRunner().invoke(app, ["pbx-sim", "--host", "192.0.2.1", "--port", "0"])
    assert result.exit_code != 0
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("10.0.0.1")


async def test_control_commands_over_the_socket() -> None:
    sim = await serve("127.0.0.1", 0, build_config(agents=2, speed=50.0, seed=1))
    ctl = PbxController(sim, kill_downtime=0.05)
    control = await asyncio.start_server(ctl.handle_client, "127.0.0.1", 0)
    port = int(control.sockets[0].getsockname()[1])
    client = await AmiTestClient.connect("127.0.0.1", sim.port)
    try:
        await client.login("dialer", "dialer-secret")
        status = await send_control("127.0.0.1", port, "status")
        assert status["running"] is True and status["sessions"] == 1

        dropped = await send_control("127.0.0.1", port, "drop")
        assert dropped == {"ok": True, "action": "drop", "sessions": 1}
        await client.wait_eof(within=2.0)

        assert (await send_control("127.0.0.1", port, "kill 0.05"))["ok"] is True
        for _ in range(100):  # bounded: the restart takes ~0.05 s
            await asyncio.sleep(0.02)
            if sim.running and ctl.counts["kill"] == 1:
                break
        assert sim.running
        assert (await send_control("127.0.0.1", port, "restart 0.01"))["ok"] is True
        await asyncio.wait_for(_counted(ctl, "restart"), 2.0)
        await asyncio.wait_for(sim.wait_fully_booted(), 2.0)

        bad = await send_control("127.0.0.1", port, "kill 999")
        assert bad["ok"] is False and "seconds" in bad["error"]
        assert (await send_control("127.0.0.1", port, "reboot"))["ok"] is False
        final = await send_control("127.0.0.1", port, "status")
        assert final["faults"] == {"restart": 1, "kill": 1, "drop": 1, "start": 0}
    finally:
        await client.close()
        control.close()
        await sim.close()


async def _counted(ctl: PbxController, name: str) -> None:
    for _ in range(500):  # bounded poll of the background task
        if ctl.counts[name] >= 1 and not ctl._tasks:
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("line", ["", "   "])
async def test_empty_command(line: str) -> None:
    sim = await serve("127.0.0.1", 0, build_config(agents=0, speed=1.0, seed=0))
    try:
        assert (await PbxController(sim).command(line))["ok"] is False
    finally:
        await sim.close()
