"""Opt-in tests against a real Asterisk 22 loaded with ``deploy/asterisk`` (docs/asterisk.md).

Skipped unless ``MARCADOR_TEST_AMI=host:port:user:secret`` is set. They assume the lab context
``customers`` is loaded and that agent endpoint 1001 has a registered auto-answering softphone
(pyVoIP or baresip). ``MARCADOR_TEST_AGENT`` overrides the agent extension. The restart test
also needs ``MARCADOR_TEST_AMI_RESTART=1`` (it runs ``core restart now`` through the AMI
``Command`` action, so that user needs ``write=command`` for that one test).

Nothing here sleeps to wait: every step awaits an AMI event, with a generous timeout.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from ami_bridge import dialplan as dp
from ami_bridge.simulator import AmiTestClient, Message

_SPEC = os.environ.get("MARCADOR_TEST_AMI", "")
pytestmark = [
    pytest.mark.asterisk,
    pytest.mark.skipif(not _SPEC, reason="set MARCADOR_TEST_AMI=host:port:user:secret"),
]
AGENT = os.environ.get("MARCADOR_TEST_AGENT", "1001")


def _target() -> tuple[str, int, str, str]:
    host, port, user, secret = _SPEC.split(":", 3)
    return host, int(port), user, secret


@pytest.fixture
async def ami() -> AsyncIterator[AmiTestClient]:
    host, port, user, secret = _target()
    client = await AmiTestClient.connect(host, port)
    resp = await client.login(user, secret)
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


async def _agent_login(ami: AmiTestClient) -> str:
    aid = ami.send(
        "Originate",
        ("Channel", f"PJSIP/{AGENT}"),
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


async def test_nailed_up_room_and_redirect_on_answer(ami: AmiTestClient) -> None:
    agent_chan = await _agent_login(ami)
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


@pytest.mark.skipif(
    os.environ.get("MARCADOR_TEST_AMI_RESTART") != "1", reason="set MARCADOR_TEST_AMI_RESTART=1"
)
async def test_reconnect_after_core_restart_now(ami: AmiTestClient) -> None:
    """Asterisk sends ``Shutdown`` only to the *other* AMI sessions: the one that sent
    ``core restart now`` gets no Response and no event, only EOF."""
    host, port, user, secret = _target()
    observer = await AmiTestClient.connect(host, port)
    assert (await observer.login(user, secret)).response == "Success"
    n = len(ami.messages)
    ami.send("Command", ("Command", "core restart now"))
    shut = await observer.event("Shutdown", within=30)
    assert (shut.get("Shutdown"), shut.get("Restart")) == ("Cleanly", "True")
    await observer.wait_eof(within=30)
    await ami.wait_eof(within=30)
    assert not [m for m in ami.messages[n:] if m.event == "Shutdown" or m.response]
    client: AmiTestClient | None = None
    for _ in range(120):  # bounded reconnect loop with backoff, as the bridge does
        try:
            client = await AmiTestClient.connect(host, port)
            break
        except OSError:
            await asyncio.sleep(0.5)  # backoff between reconnect attempts, not a wait for state
    assert client is not None, "Asterisk did not come back within 60 s"
    assert client.banner == "Asterisk Call Manager/11.0.0"
    assert (await client.login(user, secret)).response == "Success"
    booted = await client.event("FullyBooted", within=60)
    assert booted.get("Status") == "Fully Booted"
    await client.close()
