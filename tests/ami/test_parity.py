"""Simulator parity: the call tracker reaches the same outcome from a recorded transcript and from
the PBX simulator driven with the same actions (issue 3, section 5).

The transcript side is replayed with ``tests/ami/replay.py`` (parser -> typed events -> tracker).
The simulator side is a live session against :mod:`ami_bridge.simulator`: the transcript's own
``Originate`` records are sent byte for byte, ``Hangup`` actions are re-aimed at the simulator's
channel of the same leg, and the bytes received are turned into a synthetic transcript that goes
through the very same replay. Nothing is hand-copied from the recordings.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ami_bridge import dialplan as dp
from ami_bridge.simulator import AmiTestClient, Message, SimulatorConfig, SimulatorServer, serve
from ami_bridge.simulator.wire import BANNER
from ami_bridge.tracker import CallEnded, CallTracker, TrackerConfig
from ami_bridge.transcripts import Record, Transcript, load_transcript, transcript_dir
from dialer.domain.outcomes import CallOutcome
from tests.ami.replay import replay

SPEED = 100.0
#: files with recorded originate scenarios the simulator reproduces, and the calls to skip
#: (27's first call goes to the lab's Queue(sales), which Marcador does not use).
SCENARIOS: dict[str, frozenset[str]] = {
    "03": frozenset(),
    "04": frozenset(),
    "05": frozenset(),
    "06": frozenset(),
    "07": frozenset(),
    "08": frozenset(),
    "09": frozenset(),
    "10": frozenset(),
    "11": frozenset(),
    "27": frozenset({"burst-1"}),
    "29": frozenset(),
}


def _load(prefix: str) -> Transcript:
    (path,) = sorted(transcript_dir().glob(f"{prefix}-*.txt"))
    return load_transcript(path)


def _config(prefix: str) -> SimulatorConfig:
    cfg = SimulatorConfig(speed=SPEED, agent_endpoint_context="agents")
    if prefix == "29":  # its PJSIP/1001 answers 486 Busy Here (pyVoIP rejecting)
        cfg.agents = [replace(a, busy=True) if a.ext == "1001" else a for a in cfg.agents]
    return cfg


class _Session:
    """Records what was sent (and when, relative to what was received) for a replay."""

    def __init__(self, client: AmiTestClient) -> None:
        self.client = client
        self.sent: list[tuple[int, bytes]] = []

    def send(self, data: bytes) -> None:
        self.sent.append((len(self.client.messages), data))
        self.client.send_raw(data)

    def as_transcript(self, name: str) -> Transcript:
        records: list[Record] = [Record("in", 0.0, "A", BANNER, is_banner=True)]
        sent = list(self.sent)
        tick = 0
        for i, msg in enumerate([*self.client.messages, None]):
            while sent and sent[0][0] <= i:
                tick += 1
                records.append(Record("out", tick / 1000, "A", sent.pop(0)[1]))
            if msg is not None:
                tick += 1
                records.append(Record("in", tick / 1000, "A", msg.raw))
        return Transcript(name, name, (), tuple(records))


def _hangup(channel: str, cause: str) -> bytes:
    return f"Action: Hangup\r\nChannel: {channel}\r\nCause: {cause}\r\n\r\n".encode()


async def _drive(server: SimulatorServer, t: Transcript) -> Transcript:
    client = await AmiTestClient.connect("127.0.0.1", server.port)
    session = _Session(client)
    session.send(b"Action: Login\r\nUsername: dialer\r\nSecret: dialer-secret\r\n\r\n")
    await client.wait_for(lambda m: m.get("Message") == "Authentication accepted")
    outs = [r for r in t.records if r.direction == "out" and r.connection == "A"]
    i = 0
    while i < len(outs):
        rec = outs[i]
        action = rec.header("Action")
        if action != "Originate":
            i += 1
            continue
        # a burst: originates sent back to back in the recording go out together (file 27)
        burst = [rec]
        while i + len(burst) < len(outs) and outs[i + len(burst)].header("Action") == "Originate":
            nxt = outs[i + len(burst)]
            if nxt.seconds - rec.seconds > 0.01:
                break
            burst.append(nxt)
        mark = len(client.messages)
        for r in burst:
            session.send(r.data)
        i += len(burst)
        # Hangups the recording aimed at this (ringing) call
        while i < len(outs) and outs[i].header("Action") == "Hangup":
            await client.wait_for(lambda m: m.event == "DialState", within=30, start=mark)
            suffix = (outs[i].header("Channel") or "")[-2:]
            target = next(c.name for c in server.channels() if c.name.endswith(suffix))
            session.send(_hangup(target, outs[i].header("Cause") or "16"))
            i += 1
        for r in burst:
            aid = r.header("ActionID") or ""
            if (r.header("Async") or "").lower() == "true":
                await client.event("OriginateResponse", within=30, ActionID=aid)
            else:
                await client.response(aid, within=30)
        if server.pbx.channels:
            await client.wait_for(
                lambda m: m.event == "Hangup" and not server.pbx.channels, within=60
            )
    await client.close()
    return session.as_transcript(f"sim-{t.name}")


@pytest.mark.parametrize("prefix", sorted(SCENARIOS))
async def test_tracker_outcome_parity(prefix: str) -> None:
    recorded = _load(prefix)
    expected = replay(recorded).ended
    server = await serve("127.0.0.1", 0, _config(prefix))
    try:
        simulated = await _drive(server, recorded)
    finally:
        await server.close()
    got = replay(simulated).ended
    compared = 0
    for aid, want in expected.items():
        if aid in SCENARIOS[prefix]:
            continue
        have = got.get(aid)
        assert have is not None, f"{prefix}: no outcome for {aid} from the simulator"
        assert (have.outcome, have.originate_reason, have.hangup_cause) == (
            want.outcome,
            want.originate_reason,
            want.hangup_cause,
        ), f"{prefix} {aid}: simulator {have} vs transcript {want}"
        compared += 1
    assert compared >= 1


# ---------------------------------------------------------------- Marcador's own call flow
async def _flow(
    server: SimulatorServer, number: str, attempt: str, redirect: bool, **variables: str
) -> CallEnded:
    client = await AmiTestClient.connect("127.0.0.1", server.port)
    session = _Session(client)
    session.send(b"Action: Login\r\nUsername: dialer\r\nSecret: dialer-secret\r\n\r\n")
    session.send(
        b"Action: Originate\r\nActionID: agent-login\r\nChannel: PJSIP/1001\r\n"
        + f"Context: {dp.CTX_AGENT}\r\nExten: 1001\r\nAsync: true\r\n\r\n".encode()
    )
    await client.event("ConfbridgeJoin", within=30)
    var_lines = "".join(f"Variable: {k}={v}\r\n" for k, v in variables.items())
    session.send(
        f"Action: Originate\r\nActionID: {attempt}\r\nChannel: Local/{number}@customers\r\n"
        f"Context: {dp.CTX_OUTBOUND}\r\nExten: s\r\nPriority: 1\r\nTimeout: 20000\r\n"
        f"ChannelId: {attempt}\r\nVariable: {dp.VAR_ATTEMPT}={attempt}\r\n{var_lines}"
        "Async: true\r\n\r\n".encode()
    )
    resp = await client.event("OriginateResponse", within=30, ActionID=attempt)
    chan = resp.get("Channel") or ""

    def held_or_gone(m: Message) -> bool:
        if m.get("Channel") != chan:
            return False
        return m.event == "Hangup" or (m.event == "Newexten" and m.get("Context") == dp.CTX_HOLD)

    answered = resp.get("Response") == "Success"
    if redirect and answered and (await client.wait_for(held_or_gone, 30)).event == "Newexten":
        session.send(
            f"Action: Redirect\r\nChannel: {chan}\r\nContext: {dp.CTX_AGENT_ROOM}\r\n"
            "Exten: 1001\r\nPriority: 1\r\n\r\n".encode()
        )
        await client.event("ConfbridgeJoin", within=30, Channel=chan)

    def customer_gone(m: Message) -> bool:
        return m.event == "Hangup" and all(c.name.startswith("PJSIP/") for c in server.channels())

    if any(not c.name.startswith("PJSIP/") for c in server.channels()):
        await client.wait_for(customer_gone, within=60)
    await client.close()
    tracker = CallTracker(
        TrackerConfig(agent_room_prefix=dp.ROOM_PREFIX, abandon_variable=dp.VAR_ABANDONED)
    )
    ended = replay(session.as_transcript(f"flow-{attempt}"), tracker=tracker).ended
    return ended[attempt]


@pytest.mark.parametrize(
    ("number", "redirect", "variables", "outcome"),
    [
        ("3001", True, {}, CallOutcome.ANSWERED_CONNECTED),
        ("3012", False, {dp.VAR_CONNECT_TIMEOUT: "2"}, CallOutcome.ABANDONED),
        ("3008", True, {dp.VAR_AMD: dp.AMD_HANGUP}, CallOutcome.MACHINE),
        ("3002", True, {}, CallOutcome.BUSY),
    ],
)
async def test_marcador_flow_outcomes(
    number: str, redirect: bool, variables: dict[str, str], outcome: CallOutcome
) -> None:
    server = await serve("127.0.0.1", 0, SimulatorConfig(speed=SPEED))
    try:
        ended = await _flow(server, number, f"att-{number}", redirect, **variables)
    finally:
        await server.close()
    assert ended.outcome == outcome, ended
