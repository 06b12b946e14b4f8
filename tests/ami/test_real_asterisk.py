"""Tests against a real Asterisk 22 loaded with ``deploy/asterisk`` (docs/asterisk.md).

Target, in order:

* ``MARCADOR_TEST_AMI=host:port:user:secret`` (an admin's own lab): the lab context
  ``customers`` must be loaded and agent ``MARCADOR_TEST_AGENT`` (1001) must have a registered
  auto-answering softphone (``MARCADOR_TEST_AGENT_CHANNEL`` overrides the dial string). The
  restart test also needs ``MARCADOR_TEST_AMI_RESTART=1`` and a user with ``write=command``.
* otherwise the session's lab PBX (``lab_pbx``, tests/conftest.py) when the Asterisk bundle is
  present: the lab-admin user, a virtual agent, and the restart test included;
* otherwise skipped.

Nothing here sleeps to wait: every step awaits an AMI event, with a generous timeout.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from ami_bridge import dialplan as dp
from ami_bridge.simulator import AmiTestClient, Message
from dialer.lab_pstn import VIRTUAL_AGENT_CHANNEL
from dialer.pbx_lab import bundle_present

_SPEC = os.environ.get("MARCADOR_TEST_AMI", "")
pytestmark = [
    pytest.mark.asterisk,
    pytest.mark.skipif(
        not _SPEC and not bundle_present(),
        reason="no Asterisk bundle and no MARCADOR_TEST_AMI=host:port:user:secret",
    ),
]
AGENT = os.environ.get("MARCADOR_TEST_AGENT", "1001")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str
    secret: str
    agent_channel: str
    restart: bool


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    if _SPEC:
        host, port, user, secret = _SPEC.split(":", 3)
        channel = os.environ.get("MARCADOR_TEST_AGENT_CHANNEL", f"PJSIP/{AGENT}")
        restart = os.environ.get("MARCADOR_TEST_AMI_RESTART") == "1"
        return Target(host, int(port), user, secret, channel, restart)
    lab = request.getfixturevalue("lab_pbx")
    admin = lab.admin
    channel = VIRTUAL_AGENT_CHANNEL.format(extension=AGENT)
    return Target(admin.host, admin.port, admin.username, admin.secret, channel, True)


@pytest.fixture
async def ami(target: Target) -> AsyncIterator[AmiTestClient]:
    client = await AmiTestClient.connect(target.host, target.port)
    resp = await client.login(target.user, target.secret)
    assert resp.response == "Success", resp
    yield client
    await client.close()


def _attempt() -> str:
    return f"it-{time.time_ns()}"


async def _originate_customer(
    ami: AmiTestClient, number: str, attempt: str, **variables: str
) -> Message:
    extra = [("Variable", f"{k}={v}") for k, v in {dp.VAR_ATTEMPT: attempt, **variables}.items()]
    aid = ami.send(
        "Originate",
        ("Channel", f"Local/{number}@{dp.CTX_CUSTOMERS}"),
        ("Context", dp.CTX_OUTBOUND),
        ("Exten", dp.EXTEN_START),
        ("Priority", "1"),
        ("CallerID", '"Marcador" <6087400000>'),
        ("Timeout", "20000"),
        ("ChannelId", attempt),
        *extra,
        ("Async", "true"),
    )
    return await ami.event("OriginateResponse", within=40, ActionID=aid)


@pytest.mark.parametrize(
    ("number", "response", "reason"),
    [
        ("3001", "Success", "4"),
        ("3002", "Failure", "5"),
        ("3003", "Failure", "8"),
        ("3010", "Failure", "0"),
        ("3999", "Failure", "0"),
    ],
)
async def test_originate_to_lab_customers(
    ami: AmiTestClient, number: str, response: str, reason: str
) -> None:
    attempt = _attempt()
    r = await _originate_customer(ami, number, attempt, **{dp.VAR_CONNECT_TIMEOUT: "1"})
    assert (r.get("Response"), r.get("Reason")) == (response, reason)
    if response == "Failure" and number != "3999":
        assert r.get("Uniqueid") == attempt  # ChannelId given (file 04)


async def _agent_login(ami: AmiTestClient, channel: str) -> str:
    aid = ami.send(
        "Originate",
        ("Channel", channel),
        ("Context", dp.CTX_AGENT),
        ("Exten", AGENT),
        ("Priority", "1"),
        ("Timeout", "30000"),
        ("Async", "true"),
    )
    r = await ami.event("OriginateResponse", within=40, ActionID=aid)
    assert r.get("Reason") == "4", "is the agent softphone registered and auto-answering?"
    join = await ami.event("ConfbridgeJoin", within=20, Conference=dp.agent_room(AGENT))
    return join.get("Channel") or ""


async def test_nailed_up_room_and_redirect_on_answer(ami: AmiTestClient, target: Target) -> None:
    agent_chan = await _agent_login(ami, target.agent_channel)
    try:
        r = await _originate_customer(ami, "3012", _attempt(), **{dp.VAR_CONNECT_TIMEOUT: "10"})
        cust = r.get("Channel") or ""
        await ami.event("Newexten", within=20, Channel=cust, Context=dp.CTX_HOLD)
        red = await ami.action(
            "Redirect",
            ("Channel", cust),
            ("Context", dp.CTX_AGENT_ROOM),
            ("Exten", AGENT),
            ("Priority", "1"),
        )
        assert red.get("Message") == "Redirect successful"
        await ami.event("ConfbridgeJoin", within=20, Channel=cust)
        await ami.action("Hangup", ("Channel", cust), ("Cause", "16"))
        await ami.event("Hangup", within=20, Channel=cust)
    finally:
        await ami.action("Hangup", ("Channel", agent_chan), ("Cause", "16"))


async def test_abandon_timer_safe_harbor(ami: AmiTestClient) -> None:
    r = await _originate_customer(ami, "3012", _attempt(), **{dp.VAR_CONNECT_TIMEOUT: "2"})
    cust = r.get("Channel") or ""
    await ami.event("Newexten", within=20, Channel=cust, Exten=dp.EXTEN_SAFE_HARBOR)
    flag = await ami.event("VarSet", within=20, Channel=cust, Variable=dp.VAR_ABANDONED)
    assert flag.get("Value") == "1"
    hang = await ami.event("Hangup", within=40, Channel=cust)
    assert hang.get("Cause") == "16"


async def test_reconnect_after_core_restart_now(ami: AmiTestClient, target: Target) -> None:
    """``core restart now`` over AMI: the ISSUING session gets neither a response nor
    ``Shutdown``, only EOF; every OTHER session gets ``Shutdown`` (Restart: True), then EOF
    (../shared/asterisk/README.md). Then the PBX comes back and a new login sees FullyBooted."""
    if not target.restart:
        pytest.skip("set MARCADOR_TEST_AMI_RESTART=1 (needs write=command)")
    observer = await AmiTestClient.connect(target.host, target.port)
    assert (await observer.login(target.user, target.secret)).response == "Success"
    ami.send("Command", ("Command", "core restart now"))
    shutdown = await observer.event("Shutdown", within=30)
    assert shutdown.get("Restart") == "True"
    await observer.wait_eof(within=30)
    await observer.close()
    await ami.wait_eof(within=30)
    assert not ami.events(["Shutdown"]), "the issuing session is not sent Shutdown"
    client: AmiTestClient | None = None
    for _ in range(120):  # bounded reconnect loop with backoff, as the bridge does
        try:
            client = await AmiTestClient.connect(target.host, target.port)
            break
        except OSError:
            await asyncio.sleep(0.5)  # backoff between reconnect attempts, not a wait for state
    assert client is not None, "Asterisk did not come back within 60 s"
    assert client.banner == "Asterisk Call Manager/11.0.0"
    assert (await client.login(target.user, target.secret)).response == "Success"
    booted = await client.event("FullyBooted", within=60)
    assert booted.get("Status") == "Fully Booted"
    await client.close()
