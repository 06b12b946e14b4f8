"""The PBX simulator against the recorded transcripts (``ami-transcripts/``).

Every expectation about message shapes is read from the transcript files at test time (parsed
with :mod:`ami_bridge.transcripts`); nothing is copied out of them by hand. Timers run at a high
``speed`` and every wait is an ``await`` on an event, never a sleep.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from ami_bridge import dialplan as dp
from ami_bridge.simulator import (
    Agent,
    AmiTestClient,
    Message,
    Population,
    SimulatorConfig,
    SimulatorServer,
    serve,
)
from ami_bridge.simulator.client import parse_message
from ami_bridge.transcripts import Transcript, load_transcript, transcript_dir

SPEED = 100.0
NOISE = frozenset(
    {
        "DeviceStateChange",
        "QueueMemberStatus",
        "ChallengeSent",
        "SuccessfulAuth",
        "RTCPSent",
        "RTCPReceived",
        "FullyBooted",
    }
)


def fast_config(**kw: object) -> SimulatorConfig:
    cfg = SimulatorConfig(
        speed=SPEED, auth_failure_delay=1.0, restart_refuse_seconds=0.5, boot_seconds=0.3
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    server = await serve("127.0.0.1", 0, fast_config())
    yield server
    await server.close()


async def login(server: SimulatorServer, events: str | None = None) -> AmiTestClient:
    client = await AmiTestClient.connect("127.0.0.1", server.port)
    resp = await client.login("dialer", "dialer-secret", events=events)
    assert resp.response == "Success"
    return client


def transcript(prefix: str) -> Transcript:
    (path,) = sorted(transcript_dir().glob(f"{prefix}-*.txt"))
    return load_transcript(path)


def received(t: Transcript, conn: str = "A") -> list[Message]:
    return [parse_message(r.data) for r in t.received(conn) if not r.is_banner]


def first(msgs: Iterable[Message], **match: str) -> Message:
    for m in msgs:
        if all(m.get(k) == v for k, v in match.items()):
            return m
    raise AssertionError(f"no message with {match}")


# ---------------------------------------------------------------- call event extraction
_LINK_KEYS = ("Linkedid", "DestLinkedid", "LocalOneLinkedid")


def leg(name: str | None) -> str:
    if not name:
        return "-"
    if name.endswith(";1") or name.endswith(";2"):
        return name[-2:]
    return name.split("/")[0]


def norm_uid(uid: str | None) -> str:
    if uid is None:
        return "-"
    return re.sub(r"^\d+\.\d+", "GEN", uid)


def norm_chan(name: str | None) -> str:
    return re.sub(r"-[0-9a-f]{8}(;[12])?$", r"-N\1", name or "")


def call_events(
    stream: Sequence[Message], start: int, action_id: str, channel_id: str | None
) -> list[Message]:
    """Events of the call started by ``action_id`` (stream index ``start`` onwards)."""
    linkedid = channel_id
    if linkedid is None:
        for m in stream[start:]:
            if m.event == "Newchannel" and m.get("Uniqueid") == m.get("Linkedid"):
                linkedid = m.get("Linkedid")
                break
            if m.event == "OriginateResponse" and m.get("ActionID") == action_id:
                break  # failed before any channel existed (file 07)
    out: list[Message] = []
    for m in stream[start:]:
        if m.event is None or m.event in NOISE:
            continue
        if m.event == "OriginateResponse":
            if m.get("ActionID") == action_id:
                out.append(m)
            continue
        if linkedid is not None and any(m.get(k) == linkedid for k in _LINK_KEYS):
            out.append(m)
    return out


def summary(events: list[Message]) -> dict[str, object]:
    def chan(m: Message) -> str | None:
        return m.get("Channel") or m.get("DestChannel") or m.get("LocalOneChannel")

    resp = [m for m in events if m.event == "OriginateResponse"]
    return {
        "events": Counter((m.event, leg(chan(m))) for m in events),
        "originate": [
            (
                m.get("Response"),
                m.get("Reason"),
                norm_chan(m.get("Channel")),
                norm_uid(m.get("Uniqueid")),
                m.get("Context"),
                m.get("Exten"),
            )
            for m in resp
        ],
        "hangup": sorted(
            (leg(m.get("Channel")), m.get("Cause"), m.get("Cause-txt"))
            for m in events
            if m.event == "Hangup"
        ),
        "dial": [
            (m.event, m.get("DialStatus")) for m in events if (m.event or "").startswith("Dial")
        ],
        "varset": Counter(
            (leg(m.get("Channel")), m.get("Variable"), m.get("Value"))
            for m in events
            if m.event == "VarSet"
        ),
        "newexten": Counter(
            (
                leg(m.get("Channel")),
                m.get("Context"),
                m.get("Exten"),
                m.get("Priority"),
                m.get("Application"),
                m.get("AppData"),
            )
            for m in events
            if m.event == "Newexten"
        ),
        "uniqueids": sorted(
            {
                (leg(m.get("Channel")), norm_uid(m.get("Uniqueid")))
                for m in events
                if m.get("Channel") and m.get("Uniqueid")
            }
        ),
    }


def header_shapes(events: list[Message]) -> dict[tuple[str, str], list[str]]:
    shapes: dict[tuple[str, str], list[str]] = {}
    for m in events:
        ch = m.get("Channel") or m.get("DestChannel") or ""
        shapes.setdefault((m.event or "", leg(ch)), m.keys())
    return shapes


def assert_same_call(t_events: list[Message], s_events: list[Message]) -> None:
    ts, ss = summary(t_events), summary(s_events)
    for key in ts:
        assert ss[key] == ts[key], f"{key} differs:\n transcript={ts[key]}\n simulator={ss[key]}"
    t_shapes, s_shapes = header_shapes(t_events), header_shapes(s_events)
    for k, keys in t_shapes.items():
        assert s_shapes.get(k) == keys, f"header names/order of {k} differ"


# ---------------------------------------------------------------- login rules (files 01, 02)
async def test_banner_login_ping_logoff_like_file_01(sim: SimulatorServer) -> None:
    t = received(transcript("01"))
    client = await AmiTestClient.connect("127.0.0.1", sim.port)
    assert client.banner == transcript("01").records[0].text.rstrip("\r\n")
    resp = await client.login("dialer", "dialer-secret")
    assert resp.keys() == first(t, Message="Authentication accepted").keys()
    booted = await client.event("FullyBooted")
    assert booted.keys() == first(t, Event="FullyBooted").keys()
    auth = await client.event("SuccessfulAuth")
    assert auth.keys() == first(t, Event="SuccessfulAuth").keys()
    pong = await client.action("Ping")
    assert pong.keys() == first(t, Ping="Pong", ActionID="ping-1").keys()
    client.send("Ping", action_id=None)
    bare = await client.wait_for(lambda m: m.get("Ping") == "Pong" and m.get("ActionID") is None)
    with_id = first(t, Ping="Pong").keys()
    assert bare.keys() == [k for k in with_id if k != "ActionID"]
    bye = await client.action("Logoff")
    assert (bye.response, bye.get("Message")) == ("Goodbye", "Thanks for all the fish.")
    assert bye.keys() == first(t, Response="Goodbye").keys()
    await client.wait_eof()


async def test_failed_logins_close_after_delay_file_02() -> None:
    t = received(transcript("02"))
    expected = first(t, Message="Authentication failed")
    server = await serve("127.0.0.1", 0, fast_config(auth_failure_delay=1.0))
    try:
        for user, secret in (("dialer", "wrong-secret"), ("nosuchuser", "x")):
            client = await AmiTestClient.connect("127.0.0.1", server.port)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            resp = await client.login(user, secret)
            assert resp.keys() == expected.keys()
            assert resp.get("Message") == "Authentication failed"
            assert loop.time() - t0 >= 1.0 / SPEED * 0.9  # the delay, scaled
            await client.wait_eof()
    finally:
        await server.close()


async def test_actions_before_login_are_denied_and_socket_stays_open(
    sim: SimulatorServer,
) -> None:
    t = received(transcript("02"), "C")
    client = await AmiTestClient.connect("127.0.0.1", sim.port)
    for action in ("Ping", "CoreStatus", "Originate"):
        resp = await client.action(action, ("Channel", "Local/3001@customers"))
        assert resp.keys() == first(t, Message="Permission denied").keys()
        assert resp.get("Message") == "Permission denied"
    assert not client.eof
    assert (await client.login("dialer", "dialer-secret")).response == "Success"
    await client.close()


async def test_read_only_user_and_events_off(sim: SimulatorServer) -> None:
    mon = await AmiTestClient.connect("127.0.0.1", sim.port)
    assert (await mon.login("monitor", "monitor-secret")).response == "Success"
    assert (await mon.action("Ping")).response == "Success"
    denied = await mon.action("Originate", ("Channel", "Local/3001@customers"), ("Async", "true"))
    assert denied.get("Message") == "Permission denied"
    await mon.event("RequestNotAllowed")
    quiet = await login(sim, events="off")
    assert not quiet.events()
    loud = await login(sim)
    await loud.event("FullyBooted")
    aid = loud.send(
        "Originate",
        ("Channel", "Local/3002@customers"),
        ("Context", "dialer"),
        ("Exten", "hold"),
        ("Async", "true"),
    )
    await loud.event("OriginateResponse", ActionID=aid)
    assert quiet.events() == []  # file 23: with Events: off no OriginateResponse arrives
    ev = await quiet.action("Events", ("EventMask", "call"))
    assert ev.get("Events") == "On"
    aid2 = loud.send(
        "Originate",
        ("Channel", "Local/3002@customers"),
        ("Context", "dialer"),
        ("Exten", "hold"),
        ("Async", "true"),
    )
    await quiet.event("OriginateResponse", ActionID=aid2)
    assert not [m for m in quiet.events() if (m.get("Privilege") or "").startswith("dialplan")]
    for c in (mon, quiet, loud):
        await c.close()


async def test_md5_challenge_login(sim: SimulatorServer) -> None:
    import hashlib

    client = await AmiTestClient.connect("127.0.0.1", sim.port)
    chal = await client.action("Challenge", ("AuthType", "md5"))
    key = hashlib.md5(((chal.get("Challenge") or "") + "dialer-secret").encode()).hexdigest()  # noqa: S324
    ok = await client.action("Login", ("AuthType", "md5"), ("Username", "dialer"), ("Key", key))
    assert ok.get("Message") == "Authentication accepted"
    await client.close()


# ---------------------------------------------------------------- originate outcomes
# (file, index of the Originate in that file, config tweak)
ORIGINATE_CASES = [
    ("03", 0, None),
    ("04", 0, None),
    ("04", 1, None),
    ("05", 0, None),
    ("06", 0, None),
    ("07", 0, None),
    ("07", 1, None),
    ("07", 2, None),
    ("07", 3, None),
    ("08", 0, None),
    ("09", 0, None),
    ("09", 1, None),
    ("11", 0, None),
    ("11", 1, None),
    ("11", 2, None),
    ("29", 0, None),
    ("29", 1, None),
    ("29", 2, "busy-1001"),
]


def _originates(t: Transcript) -> list[int]:
    return [
        i
        for i, r in enumerate(t.records)
        if r.direction == "out" and r.header("Action") == "Originate"
    ]


async def _wait_call_over(server: SimulatorServer, client: AmiTestClient, aid: str) -> None:
    await client.event("OriginateResponse", within=30, ActionID=aid)

    def gone(_: Message) -> bool:
        return not server.pbx.channels

    if server.pbx.channels:
        await client.wait_for(lambda m: m.event == "Hangup" and gone(m), within=30)


@pytest.mark.parametrize(("prefix", "index", "tweak"), ORIGINATE_CASES)
async def test_originate_outcome_matches_transcript(
    prefix: str, index: int, tweak: str | None
) -> None:
    t = transcript(prefix)
    cfg = fast_config(agent_endpoint_context="agents")  # the recording lab's endpoint context
    if tweak == "busy-1001":
        cfg.agents = [replace(a, busy=True) if a.ext == "1001" else a for a in cfg.agents]
    server = await serve("127.0.0.1", 0, cfg)
    try:
        client = await login(server)
        await client.event("FullyBooted")
        rec_index = _originates(t)[index]
        rec = t.records[rec_index]
        aid = rec.header("ActionID") or ""
        chan_id = rec.header("ChannelId")
        # transcript side: received messages after this originate
        t_stream = [
            parse_message(r.data)
            for r in t.records[rec_index:]
            if r.direction == "in" and not r.is_banner and r.connection == "A"
        ]
        t_events = call_events(t_stream, 0, aid, chan_id)
        # later client actions of the transcript that act on this call (file 29)
        nxt = [i for i in _originates(t) if i > rec_index]
        stop = nxt[0] if nxt else len(t.records)
        hangups = [
            r
            for r in t.records[rec_index:stop]
            if r.direction == "out" and r.header("Action") == "Hangup"
        ]
        start = len(client.messages)
        client.send_raw(rec.data)
        for h in hangups:
            await client.event("DialState", within=30)
            suffix = (h.header("Channel") or "")[-2:]
            target = next(c for c in server.channels() if c.name.endswith(suffix))
            client.send("Hangup", ("Channel", target.name), ("Cause", h.header("Cause") or "16"))
        await _wait_call_over(server, client, aid)
        s_events = call_events(client.messages, start, aid, chan_id)
        assert_same_call(t_events, s_events)
        await client.close()
    finally:
        await server.close()


async def test_sync_originate_file_10(sim: SimulatorServer) -> None:
    t = transcript("10")
    client = await login(sim)
    await client.event("FullyBooted")
    recs = [t.records[i] for i in _originates(t)]
    busy, answered = recs[0], recs[1]
    client.send_raw(busy.data)
    resp = await client.response(busy.header("ActionID") or "")
    assert (resp.response, resp.get("Message")) == ("Error", "Originate failed")
    client.send_raw(answered.data)
    start = len(client.messages)
    resp2 = await client.response(answered.header("ActionID") or "", within=30)
    assert resp2.get("Message") == "Originate successfully queued"
    # the call's events were held back until the (delayed) Response, as in the recording
    idx = client.messages.index(resp2)
    assert all(m.event is None or m.event in NOISE for m in client.messages[start:idx])
    assert any(m.event == "DialEnd" for m in client.messages[idx:])
    assert not [m for m in client.messages if m.event == "OriginateResponse"]
    await client.close()


async def test_concurrent_burst_file_27_and_200_originates(sim: SimulatorServer) -> None:
    t = transcript("27")
    client = await login(sim)
    await client.event("FullyBooted")
    recs = [t.records[i] for i in _originates(t)]
    for r in recs:
        client.send_raw(r.data)
    t_stream = received(t)
    for r in recs[1:]:  # busy, no answer, congestion (the first goes to the lab's Queue)
        aid = r.header("ActionID") or ""
        await client.event("OriginateResponse", within=30, ActionID=aid)
    await client.wait_for(lambda m: m.event == "Hangup" and not sim.pbx.channels, within=30)
    for r in recs[1:]:
        aid, cid = r.header("ActionID") or "", r.header("ChannelId")
        assert_same_call(
            call_events(t_stream, 0, aid, cid), call_events(client.messages, 0, aid, cid)
        )
    # 200 concurrent originates across the lab numbers: one OriginateResponse each, right reason
    expected = {"3001": "4", "3002": "5", "3003": "8", "3005": "4", "3010": "0", "3011": "0"}
    numbers = list(expected)
    ids: dict[str, str] = {}
    for i in range(200):
        n = numbers[i % len(numbers)]
        aid = client.send(
            "Originate",
            ("Channel", f"Local/{n}@customers"),
            ("Context", "dialer"),
            ("Exten", "hold"),
            ("ChannelId", f"burst-{i}"),
            ("Timeout", "30000"),
            ("Async", "true"),
        )
        ids[aid] = expected[n]
    got: dict[str, str] = {}

    def all_in(m: Message) -> bool:
        if m.event == "OriginateResponse" and m.get("ActionID") in ids:
            got[m.get("ActionID") or ""] = m.get("Reason") or ""
        return len(got) == len(ids)

    await client.wait_for(all_in, within=60)
    assert got == ids
    await client.close()


# ---------------------------------------------------------------- Marcador call flow
def _vars(attempt: str, **extra: str) -> list[tuple[str, str]]:
    base = {dp.VAR_ATTEMPT: attempt, dp.VAR_LEAD: "L1", dp.VAR_CAMPAIGN: "C1", **extra}
    return [("Variable", f"{k}={v}") for k, v in base.items()]


async def _agent_login(client: AmiTestClient, ext: str) -> str:
    aid = client.send(
        "Originate",
        ("Channel", f"PJSIP/{ext}"),
        ("Context", dp.CTX_AGENT),
        ("Exten", ext),
        ("Priority", "1"),
        ("Timeout", "30000"),
        ("Async", "true"),
    )
    resp = await client.event("OriginateResponse", within=30, ActionID=aid)
    assert resp.get("Reason") == "4"
    join = await client.event("ConfbridgeJoin", within=30, Conference=dp.agent_room(ext))
    return join.get("Channel") or ""


async def _customer_call(client: AmiTestClient, number: str, attempt: str, **v: str) -> Message:
    aid = client.send(
        "Originate",
        ("Channel", f"Local/{number}@customers"),
        ("Context", dp.CTX_OUTBOUND),
        ("Exten", dp.EXTEN_START),
        ("Priority", "1"),
        ("CallerID", '"Marcador" <6087400000>'),
        ("Timeout", "20000"),
        ("ChannelId", attempt),
        *_vars(attempt, **v),
        ("Async", "true"),
    )
    return await client.event("OriginateResponse", within=30, ActionID=aid)


async def test_nailed_up_room_and_redirect_on_answer(sim: SimulatorServer) -> None:
    t26 = received(transcript("26"))
    client = await login(sim)
    agent_chan = await _agent_login(client, "1001")
    assert agent_chan.startswith("PJSIP/1001-")
    start = await client.event("ConfbridgeStart")
    assert start.keys() == first(t26, Event="ConfbridgeStart").keys()
    resp = await _customer_call(client, "3012", "att-1")
    assert (resp.get("Response"), resp.get("Uniqueid")) == ("Success", "att-1")
    cust = resp.get("Channel") or ""
    await client.event("Newexten", Channel=cust, Context=dp.CTX_HOLD, Application="Wait")
    red = await client.action(
        "Redirect",
        ("Channel", cust),
        ("Context", dp.CTX_AGENT_ROOM),
        ("Exten", "1001"),
        ("Priority", "1"),
    )
    assert red.get("Message") == "Redirect successful"
    # Generous bounds: this waited 5 s and once timed out on a CI-loaded machine (load ~10).
    join = await client.event("ConfbridgeJoin", within=30, Channel=cust)
    assert join.keys() == first(t26, Event="ConfbridgeJoin").keys()
    enter = await client.event("BridgeEnter", within=30, Channel=cust)
    assert enter.keys() == first(t26, Event="BridgeEnter").keys()
    assert sim.conferences()[dp.agent_room("1001")] == [agent_chan, cust]
    hang = await client.action("Hangup", ("Channel", cust), ("Cause", "16"))
    assert hang.get("Message") == "Channel Hungup"
    leave = await client.event("ConfbridgeLeave", Channel=cust)
    assert leave.keys() == first(t26, Event="ConfbridgeLeave").keys()
    h = await client.event("Hangup", Channel=cust)
    assert h.get("Cause") == "16"
    # the agent stays in the nailed-up room
    assert sim.conferences()[dp.agent_room("1001")] == [agent_chan]
    assert not [m for m in client.events(["VarSet"]) if m.get("Variable") == dp.VAR_ABANDONED]
    await client.close()


async def test_safe_harbor_abandon_without_redirect(sim: SimulatorServer) -> None:
    client = await login(sim)
    resp = await _customer_call(client, "3012", "att-2", **{dp.VAR_CONNECT_TIMEOUT: "2"})
    cust = resp.get("Channel") or ""
    await client.event("Newexten", within=30, Channel=cust, Exten=dp.EXTEN_SAFE_HARBOR)
    flag = await client.event("VarSet", within=30, Channel=cust, Variable=dp.VAR_ABANDONED)
    assert flag.get("Value") == "1"
    hang = await client.event("Hangup", within=30, Channel=cust)
    assert (hang.get("Cause"), hang.get("Cause-txt")) == ("16", "Normal Clearing")
    waits = [
        m
        for m in client.events(["Newexten"])
        if m.get("Channel") == cust
        and m.get("Context") == dp.CTX_HOLD
        and m.get("Application") == "Wait"
    ]
    assert [w.get("AppData") for w in waits] == ["2"]
    await client.close()


async def test_redirect_to_empty_room_gets_safe_harbor(sim: SimulatorServer) -> None:
    client = await login(sim)
    resp = await _customer_call(client, "3012", "att-3", **{dp.VAR_CONNECT_TIMEOUT: "30"})
    cust = resp.get("Channel") or ""
    await client.event("Newexten", Channel=cust, Context=dp.CTX_HOLD, Application="Wait")
    await client.action(
        "Redirect", ("Channel", cust), ("Context", dp.CTX_AGENT_ROOM), ("Exten", "1002")
    )
    await client.event("VarSet", within=30, Channel=cust, Variable=dp.VAR_ABANDONED)
    await client.event("Hangup", within=30, Channel=cust)
    await client.close()


async def test_amd_machine_is_hung_up_before_hold(sim: SimulatorServer) -> None:
    client = await login(sim)
    resp = await _customer_call(client, "3008", "att-4", **{dp.VAR_AMD: dp.AMD_HANGUP})
    cust = resp.get("Channel") or ""
    status = await client.event("VarSet", within=30, Channel=cust, Variable="AMDSTATUS")
    cause = await client.event("VarSet", within=30, Channel=cust, Variable="AMDCAUSE")
    t11 = received(transcript("11"))
    assert (status.get("Value"), cause.get("Value")) == (
        "MACHINE",
        first(t11, Variable="AMDCAUSE", Value=cause.get("Value") or "").get("Value"),
    )
    hang = await client.event("Hangup", within=30, Channel=cust)
    assert hang.get("Cause") == "16"
    assert not [
        m
        for m in client.events(["Newexten"])
        if m.get("Channel") == cust and m.get("Context") == dp.CTX_HOLD
    ]
    await client.close()


async def test_preview_into_agent_room_and_kick_mute(sim: SimulatorServer) -> None:
    client = await login(sim)
    agent_chan = await _agent_login(client, "1002")
    aid = client.send(
        "Originate",
        ("Channel", "Local/3009@customers"),
        ("Context", dp.CTX_PREVIEW),
        ("Exten", "1002"),
        ("ChannelId", "prev-1"),
        ("Variable", "TALK=600"),
        ("Async", "true"),
    )
    resp = await client.event("OriginateResponse", within=30, ActionID=aid)
    cust = resp.get("Channel") or ""
    await client.event("ConfbridgeJoin", Channel=cust)
    mute = await client.action(
        "ConfbridgeMute", ("Conference", dp.agent_room("1002")), ("Channel", agent_chan)
    )
    assert mute.get("Message") == "User muted"
    await client.event("ConfbridgeMute", Channel=agent_chan)
    kick = await client.action(
        "ConfbridgeKick", ("Conference", dp.agent_room("1002")), ("Channel", cust)
    )
    assert kick.get("Message") == "User kicked"
    res = await client.event("VarSet", Channel=cust, Variable=dp.VAR_CONFBRIDGE_RESULT)
    assert res.get("Value") == "KICKED"
    await client.event("Hangup", within=30, Channel=cust)
    bad = await client.action("ConfbridgeKick", ("Conference", "nope"), ("Channel", "all"))
    assert bad.response == "Error"
    # the agent hangs up the softphone: the room ends
    assert sim.agent_hangs_up("1002")
    await client.event("ConfbridgeEnd", Conference=dp.agent_room("1002"))
    await client.close()


async def test_agent_unregistered_and_busy(sim: SimulatorServer) -> None:
    client = await login(sim)
    aid = client.send(
        "Originate",
        ("Channel", "PJSIP/1003"),
        ("Context", dp.CTX_AGENT),
        ("Exten", "1003"),
        ("Async", "true"),
    )
    r = await client.event("OriginateResponse", ActionID=aid)
    assert (r.get("Response"), r.get("Reason"), r.get("Uniqueid")) == ("Failure", "0", "<unknown>")
    sim.set_agent("1003", registered=True)
    st = await client.event("ContactStatus", AOR="1003")
    assert st.keys() == first(received(transcript("28")), Event="ContactStatus").keys()
    sim.set_agent("1001", busy=True)
    aid = client.send(
        "Originate",
        ("Channel", "PJSIP/1001"),
        ("Context", dp.CTX_AGENT),
        ("Exten", "1001"),
        ("Async", "true"),
    )
    r = await client.event("OriginateResponse", within=30, ActionID=aid)
    assert (r.get("Response"), r.get("Reason")) == ("Failure", "0")
    h = [m for m in client.events(["Hangup"]) if (m.get("Channel") or "").startswith("PJSIP/1001")]
    assert h[-1].get("Cause") == "17"
    await client.close()


# ---------------------------------------------------------------- call-control actions (file 22)
async def test_getvar_setvar_and_gone_channel_errors(sim: SimulatorServer) -> None:
    t = received(transcript("22"))
    client = await login(sim)
    resp = await _customer_call(client, "3012", "att-5", **{dp.VAR_CONNECT_TIMEOUT: "60"})
    cust = resp.get("Channel") or ""
    g = await client.action("Getvar", ("Channel", cust), ("Variable", dp.VAR_LEAD))
    assert g.keys() == first(t, ActionID="getvar-002").keys()
    assert g.get("Value") == "L1"
    s = await client.action("Setvar", ("Channel", cust), ("Variable", "X"), ("Value", "y"))
    assert s.get("Message") == first(t, ActionID="setvar-003").get("Message")
    st = await client.action("Getvar", ("Channel", cust), ("Variable", "CHANNEL(state)"))
    assert st.get("Value") == "Up"
    glob = await client.action("Setvar", ("Variable", "GLOBAL_FLAG"), ("Value", "1"))
    assert glob.response == "Success"
    gv = await client.event("VarSet", Variable="GLOBAL_FLAG")
    assert gv.keys() == first(t, Event="VarSet", Variable="GLOBAL_FLAG").keys()
    chans = await client.action("CoreShowChannels")
    assert chans.get("EventList") == "start"
    done = await client.event("CoreShowChannelsComplete")
    assert done.get("ListItems") == "2"
    item = await client.event("CoreShowChannel")
    assert item.keys() == first(received(transcript("20")), Event="CoreShowChannel").keys()
    await client.action("Hangup", ("Channel", cust), ("Cause", "16"))
    await client.event("Hangup", Channel=cust)
    again = await client.action("Hangup", ("Channel", cust))
    assert again.get("Message") == first(t, ActionID="hangup-015").get("Message")
    red = await client.action("Redirect", ("Channel", cust), ("Context", "x"), ("Exten", "y"))
    expected = first(t, ActionID="redirect-016").get("Message") or ""
    assert red.get("Message") == expected.replace(expected.split(": ", 1)[1], cust)
    unknown = await client.action("NoSuchAction")
    t20 = received(transcript("20"))
    assert unknown.get("Message") == first(t20, ActionID="nosuchaction-019").get("Message")
    eps = await client.action("PJSIPShowEndpoints")
    assert eps.get("EventList") == "start"
    ep = await client.event("EndpointList")
    assert ep.keys() == first(t20, Event="EndpointList").keys()
    await client.close()


# ---------------------------------------------------------------- restart and kill (24, 25)
async def test_restart_shutdown_eof_refuse_then_boot() -> None:
    # generous refuse/boot windows (0.3 s real) so the client is surely inside each phase
    sim = await serve("127.0.0.1", 0, fast_config(restart_refuse_seconds=30.0, boot_seconds=30.0))
    try:
        await _restart_scenario(sim)
    finally:
        await sim.close()


async def _restart_scenario(sim: SimulatorServer) -> None:
    t24 = received(transcript("24"), "A")
    t24b = received(transcript("24"), "B")
    client = await login(sim)
    resp = await _customer_call(client, "3012", "att-6", **{dp.VAR_CONNECT_TIMEOUT: "60"})
    cust = resp.get("Channel") or ""
    restart = asyncio.ensure_future(sim.restart())
    soft = await client.event("SoftHangupRequest", Channel=cust)
    assert soft.get("Cause") == "4"
    shut = await client.event("Shutdown")
    assert shut.keys() == first(t24, Event="Shutdown").keys()
    assert (shut.get("Shutdown"), shut.get("Restart")) == ("Cleanly", "True")
    await client.wait_eof()
    with pytest.raises(OSError):
        await AmiTestClient.connect("127.0.0.1", sim.port)
    await restart
    assert not sim.fully_booted
    again = await AmiTestClient.connect("127.0.0.1", sim.port)
    assert (await again.login("dialer", "dialer-secret")).response == "Success"
    booted = await again.event("FullyBooted")
    assert booted.keys() == first(t24b, Event="FullyBooted").keys()
    assert booted.get("Uptime") == "0"
    await again.close()


async def test_restart_through_ami_the_issuer_gets_only_eof(sim: SimulatorServer) -> None:
    """Checked on Asterisk 22.10.1 (``Command: core restart now`` on session A): A gets no
    Response, no event, only EOF; B gets SoftHangupRequest Cause 4 for every leg, the Hangups,
    a Failure OriginateResponse (Reason 0) for a call still ringing, ``Shutdown``, then EOF."""
    issuer = await login(sim)
    other = await login(sim)
    agent_chan = await _agent_login(other, "1001")  # in its ConfBridge room
    await _customer_call(other, "3012", "att-r1", **{dp.VAR_CONNECT_TIMEOUT: "60"})
    ringing = other.send(
        "Originate",
        ("Channel", "Local/3004@customers"),
        ("Context", dp.CTX_OUTBOUND),
        ("Exten", "s"),
        ("ChannelId", "att-r2"),
        ("Timeout", "30000"),
        ("Async", "true"),
    )
    await other.event("Newchannel", Uniqueid="att-r2")
    n = len(issuer.messages)
    issuer.send("Command", ("Command", "core restart now"))
    shut = await other.event("Shutdown")
    assert (shut.get("Shutdown"), shut.get("Restart")) == ("Cleanly", "True")
    await other.wait_eof()
    await issuer.wait_eof()
    assert issuer.messages[n:] == []  # no Response, no SoftHangupRequest, no Shutdown
    soft = {m.get("Uniqueid") for m in other.messages if m.event == "SoftHangupRequest"}
    assert {"att-r1", "att-r2"} <= soft
    assert all(
        m.get("Cause") == "4"
        for m in other.messages
        if m.event == "SoftHangupRequest" and m.get("Uniqueid") in ("att-r1", "att-r2")
    )
    failed = await other.event("OriginateResponse", ActionID=ringing)
    assert (failed.get("Response"), failed.get("Reason")) == ("Failure", "0")
    # causes seen on the bundle: 0 for a call held in Wait() or ringing (16 only when bridged)
    causes = {m.get("Uniqueid"): m.get("Cause") for m in other.messages if m.event == "Hangup"}
    assert (causes["att-r1"], causes["att-r2"]) == ("0", "0")
    agent_hangup = [
        m for m in other.messages if m.event == "Hangup" and m.get("Channel") == agent_chan
    ]
    assert agent_hangup[0].get("Cause") == "16"
    await sim.wait_fully_booted()


async def test_kill_bare_eof_refused_until_started(sim: SimulatorServer) -> None:
    client = await login(sim)
    await _customer_call(client, "3012", "att-7", **{dp.VAR_CONNECT_TIMEOUT: "60"})
    n = len(client.messages)
    await sim.kill()
    await client.wait_eof()
    after = {m.event for m in client.messages[n:]}
    assert not after & {"Shutdown", "Hangup", "SoftHangupRequest"}  # a bare EOF
    with pytest.raises(OSError):
        await AmiTestClient.connect("127.0.0.1", sim.port)
    await sim.start()
    again = await login(sim)
    await again.event("FullyBooted")
    assert sim.channels() == []
    await again.close()


# ---------------------------------------------------------------- population and trunks
async def test_population_is_seeded_and_reaches_every_outcome() -> None:
    pop = Population(
        answer=0.4,
        busy=0.15,
        congestion=0.1,
        invalid=0.1,
        rejected=0.05,
        ring_mean=2,
        ring_sd=1,
        talk_mean=3,
        talk_sd=1,
        patience_mean=3,
    )
    reasons: list[list[tuple[str, str]]] = []
    for _ in range(2):
        # A slower clock than SPEED: ring and timeout timers must not swap order under CPU load.
        server = await serve("127.0.0.1", 0, fast_config(population=pop, seed=42, speed=10.0))
        try:
            client = await login(server)
            ids = [
                client.send(
                    "Originate",
                    ("Channel", f"PJSIP/+5760800{i:05d}@trunk"),
                    ("Context", dp.CTX_OUTBOUND),
                    ("Exten", "s"),
                    ("Timeout", "6000"),
                    ("ChannelId", f"pop-{i}"),
                    ("Async", "true"),
                )
                for i in range(60)
            ]
            got: dict[str, tuple[str, str]] = {}

            def done(m: Message, got: dict[str, tuple[str, str]] = got, n: int = len(ids)) -> bool:
                if m.event == "OriginateResponse":
                    got[m.get("ActionID") or ""] = (m.get("Response") or "", m.get("Reason") or "")
                return len(got) == n

            await client.wait_for(done, within=60)
            reasons.append([got[i] for i in ids])
            await client.close()
        finally:
            await server.close()
    assert reasons[0] == reasons[1]
    assert {r for _, r in reasons[0]} == {"0", "3", "4"}  # trunk busy/reject -> 0 (file 29)


async def test_unknown_endpoint_and_bad_originate(sim: SimulatorServer) -> None:
    client = await login(sim)
    aid = client.send(
        "Originate",
        ("Channel", "PJSIP/9999"),
        ("Context", "dialer"),
        ("Exten", "hold"),
        ("ChannelId", "cid-1"),
        ("Async", "true"),
    )
    r = await client.event("OriginateResponse", ActionID=aid)
    assert (r.get("Reason"), r.get("Uniqueid")) == ("0", "cid-1")
    bad = await client.action("Originate", ("Async", "true"))
    assert bad.response == "Error"
    await client.close()


async def test_originate_to_a_missing_extension_is_refused(sim: SimulatorServer) -> None:
    """Asterisk 22.10.1 checks the Originate's Context/Exten first (checked on the bundle):
    ``Response: Error`` / ``Extension does not exist.``, no channel, no OriginateResponse.
    ``listen-1001`` is what the old dialplan's ``_listen-X.`` was meant to match."""
    client = await login(sim)
    for context, exten in (("x", "s"), (dp.CTX_SPY, "listen-1001")):
        bad = await client.action(
            "Originate",
            ("Channel", "PJSIP/1001"),
            ("Context", context),
            ("Exten", exten),
            ("ChannelId", f"cid-{context}"),
            ("Async", "true"),
        )
        assert (bad.response, bad.get("Message")) == ("Error", "Extension does not exist.")
    assert sim.channels() == []
    await client.close()


def test_config_defaults_match_readme_lab() -> None:
    cfg = SimulatorConfig()
    assert {a.ext: a.registered for a in cfg.agents} == {"1001": True, "1002": True, "1003": False}
    assert isinstance(cfg.agents[0], Agent)
    assert "3999" in cfg.nonexistent
    assert set(cfg.customers) == {f"30{n:02d}" for n in range(1, 13)}


async def test_recording_on_connect_and_stop_like_file_22(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    """marcador-record on the connect path: Gosub, MixMonitor (D) with the attempt's file,
    VarSet MIXMONITOR_FILENAME and MixMonitorStart (header names of file 22), the consent
    prompt; StopMixMonitor answers Success, then MixMonitorStop; the file keeps what came
    before (interleaved stereo signed linear)."""
    t22 = received(transcript("22"))
    client = await login(sim)
    await _agent_login(client, "1001")
    raw = tmp_path / "att-rec.raw"
    resp = await _customer_call(
        client,
        "3012",
        "att-rec",
        **{
            dp.VAR_CONNECT_TIMEOUT: "60",
            dp.VAR_RECORD: "1",
            dp.VAR_RECORD_FILE: str(raw),
            dp.VAR_CONSENT_PROMPT: "marcador/consent",
        },
    )
    cust = resp.get("Channel") or ""
    await client.event("Newexten", Channel=cust, Context=dp.CTX_HOLD, Application="Wait")
    await client.action(
        "Redirect", ("Channel", cust), ("Context", dp.CTX_AGENT_ROOM), ("Exten", "1001")
    )
    start = await client.event("MixMonitorStart", Channel=cust)
    assert start.keys() == first(t22, Event="MixMonitorStart").keys()
    setvar = [
        m
        for m in client.events(["VarSet"])
        if m.get("Channel") == cust and m.get("Variable") == dp.VAR_MIXMONITOR_FILENAME
    ]
    assert [m.get("Value") for m in setvar] == [str(raw)]
    assert setvar[0].keys() == first(t22, Event="VarSet", Variable="MIXMONITOR_FILENAME").keys()
    await client.event("ConfbridgeJoin", Channel=cust, within=30)
    steps = [
        (m.get("Context"), m.get("Priority"), m.get("Application"), m.get("AppData"))
        for m in client.events(["Newexten"])
        if m.get("Channel") == cust and m.get("Context") in (dp.CTX_AGENT_ROOM, dp.CTX_RECORD)
    ]
    assert steps[3:] == [
        (dp.CTX_AGENT_ROOM, "4", "Gosub", "marcador-record,s,1"),
        (dp.CTX_RECORD, "1", "GotoIf", "0?done"),
        (dp.CTX_RECORD, "2", "MixMonitor", f"{raw},D"),
        (dp.CTX_RECORD, "3", "GotoIf", "0?done"),
        (dp.CTX_RECORD, "4", "Playback", "marcador/consent"),
        (dp.CTX_RECORD, "5", "Return", ""),
        (dp.CTX_AGENT_ROOM, "5", "ConfBridge", "agent-1001,marcador_room,marcador_customer"),
    ]
    stop = await client.action("StopMixMonitor", ("Channel", cust))
    assert stop.get("Response") == "Success"
    end = await client.event("MixMonitorStop", Channel=cust)
    assert end.keys() == first(t22, Event="MixMonitorStop").keys()
    size = raw.stat().st_size
    assert size > 0 and size % 4 == 0  # 2 channels x 16 bit
    again = await client.action("StopMixMonitor", ("Channel", cust))
    assert again.get("Response") == "Error"
    await client.action("Hangup", ("Channel", cust))
    await client.event("Hangup", Channel=cust)
    assert raw.stat().st_size == size  # nothing written after the stop
    await client.close()
