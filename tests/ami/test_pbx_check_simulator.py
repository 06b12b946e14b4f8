"""``marcador pbx check`` against the PBX simulator (no Asterisk needed): the permission
checks see a user without write classes, and what the simulator does not model (modules,
ShowDialPlan, a PJSIP trunk) shows up as failed lines, never as a crash."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ami_bridge.simulator import Agent, SimulatorConfig, SimulatorServer, serve
from dialer.pbx_check import Status, check_server
from dialer.settings import AsteriskServer


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    server = await serve("127.0.0.1", 0, SimulatorConfig(agents=[Agent("1001")]))
    yield server
    await server.close()


def _server(sim: SimulatorServer, user: str, secret: str) -> AsteriskServer:
    return AsteriskServer(name="sim", host="127.0.0.1", port=sim.port, username=user, secret=secret)


async def test_full_user_passes_permissions_and_fails_what_is_not_modelled(
    sim: SimulatorServer,
) -> None:
    results = await check_server(_server(sim, "dialer", "dialer-secret"), within=2.0)
    status = {r.item: r.status for r in results}
    for item in ("AMI login", "read: system", "read: call", "read: dialplan"):
        assert status[item] is Status.OK, item
    for cls in ("originate", "call", "reporting", "system"):
        assert status[f"write: {cls}"] is Status.OK, cls
    assert status["agent endpoints"] is Status.OK
    assert status["module app_confbridge.so"] is Status.FAIL  # ModuleCheck is not simulated
    assert status["trunk"] is Status.FAIL  # no PJSIP endpoint "trunk"


async def test_user_without_write_classes_fails_each_one(sim: SimulatorServer) -> None:
    results = await check_server(_server(sim, "monitor", "monitor-secret"), within=2.0)
    by_item = {r.item: r for r in results}
    for cls in ("originate", "call", "reporting", "system"):
        assert by_item[f"write: {cls}"].status is Status.FAIL, cls
        assert f"add '{cls}' to write=" in by_item[f"write: {cls}"].detail


async def test_wrong_secret_is_one_failed_login_line(sim: SimulatorServer) -> None:
    results = await check_server(_server(sim, "dialer", "wrong"), within=2.0)
    assert [(r.item, r.status) for r in results] == [("AMI login", Status.FAIL)]
