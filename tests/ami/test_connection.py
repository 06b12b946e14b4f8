"""Fault tests of the AMI connection manager (ami_bridge.connection), all on loopback.

Two kinds of peer:

* the in-project PBX simulator (``ami_bridge.simulator``) for login, wrong secret, graceful
  restart and kill;
* :class:`FakeAmi`, a tiny scriptable AMI server written here, for what the simulator has no
  hook for: staying silent on Ping (half-open socket), listing chosen channels in
  ``CoreShowChannels`` (a call that survives the outage next to one that vanished), never
  answering an Originate, and injecting raw bytes (garbage, 1 MB header, non-UTF-8).

Nothing sleeps to wait: every wait is an ``asyncio.wait_for`` on a condition, with a bound.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from ami_bridge import dialplan as dp
from ami_bridge.actions import ActionRequest, OriginateRequest
from ami_bridge.connection import (
    AmiBridge,
    AmiConnection,
    AmiPool,
    Backoff,
    LinkOptions,
    LinkState,
    LinkStatus,
    ServerSpec,
)
from ami_bridge.errors import (
    ActionOutcomeUnknown,
    ConnectionLost,
    DuplicateActionID,
    InvalidAction,
    NoSuchChannel,
    NotConnected,
)
from ami_bridge.events import AMIEvent, Newchannel, UnknownEvent
from ami_bridge.simulator import SimulatorConfig, SimulatorServer, serve
from ami_bridge.tracker import CallAnswered, CallEnded
from dialer.domain.outcomes import CallOutcome

WAIT = 5.0  # upper bound of every condition wait
FAST_BACKOFF = Backoff(
    initial=0.02, maximum=0.1, factor=2.0, jitter=0.0, auth_initial=0.05, auth_maximum=0.2
)
FAST = LinkOptions(
    action_timeout=1.0,
    ping_interval=60.0,  # the watchdog is exercised explicitly where needed
    connect_timeout=1.0,
    backoff=FAST_BACKOFF,
)


# --- helpers ------------------------------------------------------------------------------------


class Watch:
    """Collects callback values and lets a test await a condition on them."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, *args: Any) -> None:
        self.items.append(args[-1] if len(args) > 1 else args[0])
        task = asyncio.ensure_future(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def until(self, pred: Callable[[list[Any]], bool], within: float = WAIT) -> None:
        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: pred(self.items))

        await asyncio.wait_for(_wait(), within)


def ended(items: list[Any], call_id: str) -> list[CallEnded]:
    return [o for o in items if isinstance(o, CallEnded) and o.call_id == call_id]


def state_seen(items: list[Any], state: LinkState) -> bool:
    return any(isinstance(s, LinkStatus) and s.state is state for s in items)


def connected_sessions(n: int) -> Callable[[list[Any]], bool]:
    return lambda items: any(
        isinstance(s, LinkStatus) and s.state is LinkState.CONNECTED and s.sessions >= n
        for s in items
    )


def spec(port: int, pw: str = "dialer-secret", name: str = "pbx1") -> ServerSpec:
    return ServerSpec(name, "127.0.0.1", port, "dialer", SecretStr(pw))


class FakeAmi:
    """A scriptable AMI server (asyncio streams). Counts connections and actions."""

    def __init__(self, pw: str = "dialer-secret") -> None:
        self.secret = pw
        self.answer_ping = True
        self.answer_originate = True
        self.live: list[dict[str, str]] = []  # CoreShowChannel items
        self.connections = 0
        self.actions: list[dict[str, str]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._cond = asyncio.Condition()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def count(self, name: str) -> int:
        return sum(1 for a in self.actions if a.get("Action", "").lower() == name.lower())

    async def until(self, pred: Callable[[], bool], within: float = WAIT) -> None:
        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(pred)

        await asyncio.wait_for(_wait(), within)

    async def _changed(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def inject(self, data: bytes) -> None:
        for w in self.writers:
            w.write(data)

    def event(self, **headers: str) -> bytes:
        return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n"

    def drop(self) -> None:
        """Bare EOF on every connection (like a kill -9 or a network cut)."""
        for w in self.writers:
            w.close()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        await self._changed()
        buf = b""
        try:
            while data := await reader.read(65536):
                buf += data
                while b"\r\n\r\n" in buf:
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    headers: dict[str, str] = {}
                    for line in raw.decode().split("\r\n"):
                        k, _, v = line.partition(": ")
                        headers.setdefault(k, v)
                    self.actions.append(headers)
                    self._reply(writer, headers)
                    await self._changed()
        except (ConnectionError, OSError):
            pass
        finally:
            if writer in self.writers:
                self.writers.remove(writer)
            writer.close()

    def _reply(self, w: asyncio.StreamWriter, h: dict[str, str]) -> None:
        name = h.get("Action", "").lower()
        aid = h.get("ActionID", "")
        if name == "login":
            if h.get("Secret") == self.secret:
                w.write(
                    self.event(Response="Success", ActionID=aid, Message="Authentication accepted")
                )
                w.write(
                    self.event(Event="FullyBooted", Privilege="system,all", Status="Fully Booted")
                )
            else:
                w.write(self.event(Response="Error", ActionID=aid, Message="Authentication failed"))
                w.close()
        elif name == "ping":
            if self.answer_ping:
                w.write(self.event(Response="Success", ActionID=aid, Ping="Pong", Timestamp="1.0"))
        elif name == "coreshowchannels":
            w.write(
                self.event(
                    Response="Success",
                    ActionID=aid,
                    EventList="start",
                    Message="Channels will follow",
                )
            )
            for ch in self.live:
                w.write(self.event(Event="CoreShowChannel", ActionID=aid, **ch))
            w.write(
                self.event(
                    Event="CoreShowChannelsComplete",
                    ActionID=aid,
                    EventList="Complete",
                    ListItems=str(len(self.live)),
                )
            )
        elif name == "originate":
            if self.answer_originate:
                w.write(
                    self.event(
                        Response="Success", ActionID=aid, Message="Originate successfully queued"
                    )
                )
        elif name == "logoff":
            w.write(
                self.event(Response="Goodbye", ActionID=aid, Message="Thanks for all the fish.")
            )
            w.close()
        else:
            w.write(self.event(Response="Error", ActionID=aid, Message="Invalid/unknown command"))


def channel_item(uniqueid: str, name: str) -> dict[str, str]:
    return {
        "Channel": name,
        "ChannelState": "6",
        "ChannelStateDesc": "Up",
        "Context": dp.CTX_HOLD,
        "Exten": "s",
        "Uniqueid": uniqueid,
        "Linkedid": uniqueid,
        "Application": "Wait",
        "ApplicationData": "2",
    }


def originate_req(channel_id: str, number: str = "3012", **variables: str) -> OriginateRequest:
    return OriginateRequest(
        channel=f"Local/{number}@customers",
        channel_id=channel_id,
        context=dp.CTX_OUTBOUND,
        exten=dp.EXTEN_START,
        timeout_ms=60_000,
        caller_id='"Concesionario Boyacá" <6087654321>',
        variables={dp.VAR_ATTEMPT: channel_id, **variables},
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    server = await serve("127.0.0.1", 0, SimulatorConfig(speed=20.0, seed=3))
    yield server
    await server.close()


# --- simulator: login, wrong secret, restart, kill ----------------------------------------------


async def test_login_success_then_actions(sim: SimulatorServer) -> None:
    statuses, outputs = Watch(), Watch()
    bridge = AmiBridge(
        [spec(sim.port)], options=FAST, on_status=statuses.add, on_output=outputs.add, seed=1
    )
    link = bridge.link("pbx1")
    with pytest.raises(NotConnected):  # before start: nothing is sent
        await link.ping()
    async with bridge:
        await bridge.wait_ready(WAIT)
        status = bridge.statuses()["pbx1"]
        assert status.state is LinkState.CONNECTED and status.connected_since is not None
        assert status.banner == "Asterisk Call Manager/11.0.0" and status.sessions == 1
        assert bridge.ready
        # "connected" came only after CONNECTING (TCP + Login + reconcile), never before
        states = [s.state for s in statuses.items]
        assert states[:2] == [LinkState.CONNECTING, LinkState.CONNECTED]

        await link.ping()
        endpoints = {e.name: e for e in await link.pjsip_show_endpoints()}
        assert endpoints["1001"].registered and not endpoints["1003"].registered
        with pytest.raises(NoSuchChannel):
            await link.hangup("PJSIP/nosuch-00000000")

        queued = await bridge.originate("pbx1", originate_req("att-1", "3005"))
        assert queued.channel_id == "att-1"
        await outputs.until(lambda items: bool(ended(items, "att-1")))
        end = ended(outputs.items, "att-1")[0]
        assert end.originate_reason == 4 and end.outcome is CallOutcome.ABANDONED
    assert bridge.statuses()["pbx1"].state is LinkState.STOPPED


async def test_wrong_secret_backs_off_alerts_and_never_loops_tight() -> None:
    config = SimulatorConfig(speed=50.0, seed=1)  # refused Login answered after 1 s / 50
    sim = await serve("127.0.0.1", 0, config)
    statuses = Watch()
    link = AmiConnection(spec(sim.port, pw="wrong-secret"), options=FAST, on_status=statuses.add)
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    def on_status(status: LinkStatus) -> None:
        statuses.add(status)
        if status.next_attempt_in is None:
            starts.append(loop.time())

    link._on_status = on_status
    try:
        with structlog.testing.capture_logs() as logs:
            await link.start()
            await statuses.until(lambda items: any(s.auth_failures >= 4 for s in items))
        status = link.status
        assert status.state is LinkState.AUTH_FAILED and status.alert
        assert status.as_mapping()["alert"] == "1"
        assert "Authentication failed" in (status.last_error or "")
        delays = [s.next_attempt_in for s in statuses.items if s.next_attempt_in is not None]
        assert delays[:3] == [0.05, 0.1, 0.2]  # exponential (jitter 0 here), capped
        # no tight loop: consecutive attempts are separated by at least the backoff delay
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert len(gaps) >= 3 and all(g >= d * 0.9 for g, d in zip(gaps, delays, strict=False))
        refused = [e for e in logs if e["event"] == "ami_login_refused"]
        assert refused and all(e["alert"] is True for e in refused)
        assert "wrong-secret" not in repr(logs)  # the secret never reaches a log
        assert not link.connected
        with pytest.raises(NotConnected):
            await link.ping()
    finally:
        await link.close()
        await sim.close()


async def test_graceful_restart_reconnects_and_no_call_stays_pending(
    sim: SimulatorServer,
) -> None:
    statuses, outputs = Watch(), Watch()
    bridge = AmiBridge(
        [spec(sim.port)], options=FAST, on_status=statuses.add, on_output=outputs.add, seed=2
    )
    async with bridge:
        await bridge.wait_ready(WAIT)
        await bridge.originate("pbx1", originate_req("att-r1", **{dp.VAR_CONNECT_TIMEOUT: "600"}))
        await outputs.until(
            lambda items: any(isinstance(o, CallAnswered) and o.call_id == "att-r1" for o in items)
        )
        await sim.restart()  # Hangup events, Shutdown, EOF, refused for a while, boot
        await statuses.until(connected_sessions(2))
        await outputs.until(lambda items: bool(ended(items, "att-r1")))
        assert len(ended(outputs.items, "att-r1")) == 1
        assert len(bridge.trackers["pbx1"]) == 0  # nothing pending
        assert state_seen(statuses.items, LinkState.BACKOFF)
        # the link works again: a new call is placed and tracked to its end
        await bridge.originate("pbx1", originate_req("att-r2", "3005"))
        await outputs.until(lambda items: bool(ended(items, "att-r2")))


async def test_kill_then_start_reconciles_lost_call_as_failed(sim: SimulatorServer) -> None:
    statuses, outputs = Watch(), Watch()
    bridge = AmiBridge(
        [spec(sim.port)], options=FAST, on_status=statuses.add, on_output=outputs.add, seed=3
    )
    async with bridge:
        await bridge.wait_ready(WAIT)
        ringing = asyncio.Event()
        sim.add_listener(lambda ev: ringing.set() if ev.get("Uniqueid") == "att-k1" else None)
        await bridge.originate("pbx1", originate_req("att-k1", "3004"))  # rings forever
        await asyncio.wait_for(ringing.wait(), WAIT)
        await sim.kill()  # bare EOF, no events; refused until start()
        await statuses.until(lambda items: state_seen(items, LinkState.BACKOFF))
        assert "att-k1" in bridge.trackers["pbx1"]  # fate unknown while the PBX is down
        await sim.start()
        await statuses.until(connected_sessions(2))
        await outputs.until(lambda items: bool(ended(items, "att-k1")))
        end = ended(outputs.items, "att-k1")[0]
        assert end.outcome is CallOutcome.FAILED and end.detail == "lost during PBX outage"


# --- fake server: reconciliation, half-open socket, no re-send, bad input -------------------------


async def test_reconcile_keeps_live_call_and_resolves_vanished_one(fake: FakeAmi) -> None:
    statuses, outputs = Watch(), Watch()
    bridge = AmiBridge(
        [spec(fake.port)], options=FAST, on_status=statuses.add, on_output=outputs.add, seed=4
    )
    async with bridge:
        await bridge.wait_ready(WAIT)
        alive = await bridge.originate("pbx1", originate_req("alive"))
        await bridge.originate("pbx1", originate_req("gone"))
        fake.live = [channel_item("alive", "Local/3012@customers-00000001;1")]
        fake.drop()  # EOF; the PBX keeps "alive" and lost "gone" meanwhile
        await statuses.until(connected_sessions(2))
        await outputs.until(lambda items: bool(ended(items, "gone")))
        end = ended(outputs.items, "gone")[0]
        assert end.outcome is CallOutcome.FAILED and end.detail == "lost during PBX outage"
        tracker = bridge.trackers["pbx1"]
        assert "alive" in tracker and not ended(outputs.items, "alive")  # re-attached
        # later events still reach the re-attached call
        fake.inject(
            fake.event(
                Event="Hangup",
                Channel="Local/3012@customers-00000001;1",
                Uniqueid="alive",
                Linkedid="alive",
                Cause="17",
                **{"Cause-txt": "User busy"},
            )
        )
        fake.inject(fake.event(Event="Hangup", Channel="x;2", Uniqueid="alive;2", Cause="17"))
        fake.inject(
            fake.event(
                Event="OriginateResponse",
                ActionID=alive.action_id,
                Response="Failure",
                Channel="Local/3012@customers",
                Reason="5",
                Uniqueid="alive",
            )
        )
        await outputs.until(lambda items: bool(ended(items, "alive")))
        assert ended(outputs.items, "alive")[0].outcome is CallOutcome.BUSY
        assert len(tracker) == 0


async def test_half_open_socket_ping_watchdog_aborts_and_reconnects(fake: FakeAmi) -> None:
    statuses = Watch()
    options = LinkOptions(
        action_timeout=1.0, ping_interval=0.05, ping_timeout=0.1, backoff=FAST_BACKOFF
    )
    link = AmiConnection(spec(fake.port), options=options, on_status=statuses.add)
    async with link:
        await link.wait_connected(WAIT)
        await fake.until(lambda: fake.count("Ping") >= 1)  # the watchdog pings
        with structlog.testing.capture_logs() as logs:
            fake.answer_ping = False  # the socket stays open, nobody answers
            await statuses.until(lambda items: state_seen(items, LinkState.BACKOFF))
        assert any(e["event"] == "ami_ping_timeout" for e in logs)
        fake.answer_ping = True
        await statuses.until(connected_sessions(2))
        assert fake.connections == 2
        await link.ping()


async def test_originate_is_never_resent_after_reconnect(fake: FakeAmi) -> None:
    statuses, outputs = Watch(), Watch()
    bridge = AmiBridge(
        [spec(fake.port)], options=FAST, on_status=statuses.add, on_output=outputs.add, seed=5
    )
    async with bridge:
        await bridge.wait_ready(WAIT)
        fake.answer_originate = False
        pending = asyncio.ensure_future(bridge.originate("pbx1", originate_req("once")))
        await fake.until(lambda: fake.count("Originate") == 1)
        fake.drop()
        with pytest.raises(ConnectionLost):
            await pending
        assert issubclass(ConnectionLost, ActionOutcomeUnknown)
        await statuses.until(connected_sessions(2))
        await bridge.link("pbx1").ping()  # a full round trip on the new session
        assert fake.count("Originate") == 1  # panoramisk would have re-sent it here
        await outputs.until(lambda items: bool(ended(items, "once")))  # resolved, not retried
        assert ended(outputs.items, "once")[0].detail == "lost during PBX outage"


async def test_duplicate_action_id_is_refused_before_sending(fake: FakeAmi) -> None:
    link = AmiConnection(spec(fake.port), options=FAST)
    async with link:
        await link.wait_connected(WAIT)
        fake.answer_originate = False
        first = asyncio.ensure_future(link.originate(originate_req("a"), action_id="dup-1"))
        await fake.until(lambda: fake.count("Originate") == 1)
        with pytest.raises(DuplicateActionID):
            await link.originate(originate_req("b"), action_id="dup-1")
        with pytest.raises(InvalidAction):  # header injection is refused, nothing sent
            await link.send(ActionRequest("Setvar", (("Variable", "X"), ("Value", "1\r\nA: b"))))
        first.cancel()
        assert fake.count("Originate") == 1 and fake.count("Setvar") == 0


async def test_bad_input_is_logged_and_the_link_recovers(fake: FakeAmi) -> None:
    events = Watch()
    link = AmiConnection(spec(fake.port), options=FAST, on_event=events.add)
    async with link:
        await link.wait_connected(WAIT)
        with structlog.testing.capture_logs() as logs:
            fake.inject(b"\x00\xff garbage without structure\r\n\r\n")
            fake.inject(b"Event: Huge\r\nX-Big: " + b"A" * (1 << 20) + b"\r\n\r\n")  # 1 MB header
            fake.inject(
                b"Event: Newchannel\r\nCallerIDName: \xc3\x28bad\xff\r\nUniqueid: u1\r\n\r\n"
            )
            fake.inject(fake.event(Event="SomethingNew", Foo="bar"))  # unknown event
            fake.inject(fake.event(Response="Success", ActionID="never-sent", Message="?"))
            fake.inject(b"Response: Success\r\nActionID: never-sent\r\n\r\n")  # duplicate
            fake.inject(b"Event: Truncat")  # ...and the rest of it never comes
            fake.inject(b"ed\r\nUniqueid: t\r\n\r\n")
            fake.inject(fake.event(Event="Newchannel", Uniqueid="after", CallerIDName="Ok"))
            await events.until(
                lambda items: any(getattr(e, "uniqueid", None) == "after" for e in items)
            )
        kinds = {e.get("kind") for e in logs if e["event"] == "ami_protocol_error"}
        assert {"MessageTooLarge", "InvalidEncoding"} <= kinds
        assert sum(e["event"] == "ami_unsolicited_response" for e in logs) == 2
        assert any(isinstance(e, UnknownEvent) and e.name == "SomethingNew" for e in events.items)
        bad = [e for e in events.items if isinstance(e, Newchannel) and e.uniqueid == "u1"]
        assert bad and "\ufffd" in bad[0].caller_id_name  # decoded with replacement, not lost
        assert link.status.protocol_errors >= 2
        await link.ping()  # same session still answers
        assert fake.connections == 1 and link.connected


async def test_utf8_split_across_reads_survives(fake: FakeAmi) -> None:
    events = Watch()
    link = AmiConnection(spec(fake.port), options=FAST, on_event=events.add)
    async with link:
        await link.wait_connected(WAIT)
        protocol = link._protocol
        assert protocol is not None
        raw = "Event: Newchannel\r\nCallerIDName: José Muñoz Peña\r\nUniqueid: u-ñ\r\n\r\n"
        data = raw.encode("utf-8")
        cut = data.index("é".encode()) + 1  # in the middle of the two-byte "é"
        protocol.data_received(data[:cut])  # two separate reads, as TCP may deliver them
        protocol.data_received(data[cut:])
        # and the same through the socket, one byte per write
        for i in range(len(data)):
            fake.inject(data[i : i + 1])
        await events.until(
            lambda items: sum(isinstance(e, Newchannel) and e.uniqueid == "u-ñ" for e in items) >= 2
        )
        names = {e.caller_id_name for e in events.items if isinstance(e, Newchannel)}
        assert names == {"José Muñoz Peña"}


async def test_handler_errors_and_queue_overflow_never_drop_the_link(fake: FakeAmi) -> None:
    gate = asyncio.Event()
    seen: list[AMIEvent] = []

    async def handler(server: str, event: AMIEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")
        await gate.wait()

    options = LinkOptions(
        action_timeout=1.0, ping_interval=0.05, queue_size=4, backoff=FAST_BACKOFF
    )
    link = AmiConnection(spec(fake.port), options=options, on_event=handler)
    with structlog.testing.capture_logs() as logs:
        async with link:
            await link.wait_connected(WAIT)
            reconciles = fake.count("CoreShowChannels")
            fake.inject(b"".join(fake.event(Event="Foo", N=str(i)) for i in range(20)))
            await fake.until(lambda: fake.count("Ping") >= 2)
            assert link.status.events_dropped > 0
            gate.set()
            await asyncio.wait_for(link.drain(), WAIT)
            # lost events trigger a reconciliation once the queue has drained
            await fake.until(lambda: fake.count("CoreShowChannels") > reconciles)
            assert link.connected and fake.connections == 1
    assert any(e["event"] == "ami_event_handler_failed" for e in logs)
    assert any(e["event"] == "ami_event_queue_full" for e in logs)


async def test_close_stops_scheduled_reconnects(fake: FakeAmi) -> None:
    statuses = Watch()
    options = LinkOptions(
        action_timeout=1.0,
        ping_interval=60.0,
        backoff=Backoff(initial=0.2, maximum=0.2, jitter=0.0),
    )
    link = AmiConnection(spec(fake.port), options=options, on_status=statuses.add)
    await link.start()
    await link.wait_connected(WAIT)
    fake.drop()
    await statuses.until(lambda items: state_seen(items, LinkState.BACKOFF))
    await link.close()  # while a reconnect is scheduled
    assert link.status.state is LinkState.STOPPED
    with pytest.raises(TimeoutError):  # bounded: 2.5x the backoff delay
        await fake.until(lambda: fake.connections > 1, within=0.5)
    with pytest.raises(NotConnected):
        await link.ping()


async def test_pool_reports_per_server_status(fake: FakeAmi, sim: SimulatorServer) -> None:
    published: dict[str, LinkStatus] = {}
    watch = Watch()

    def on_status(status: LinkStatus) -> None:
        published[status.server] = status
        watch.add(status)

    servers = [spec(fake.port, name="pbx-a"), spec(sim.port, pw="nope", name="pbx-b")]
    async with AmiPool(servers, options=FAST, on_status=on_status, seed=9) as pool:
        await pool.wait_ready(WAIT)
        await watch.until(lambda _: published.get("pbx-b") is not None and published["pbx-b"].alert)
        statuses = pool.statuses()
        assert statuses["pbx-a"].state is LinkState.CONNECTED
        assert statuses["pbx-b"].state is LinkState.AUTH_FAILED
        assert pool.ready and pool.connected() == ["pbx-a"]
        assert published["pbx-a"].as_mapping()["state"] == "connected"
        with pytest.raises(NotConnected):
            await pool.link("pbx-b").ping()
        with pytest.raises(NotConnected):
            pool.link("nope")


def test_backoff_is_exponential_capped_and_jittered() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.25)
    rng = random.Random(0)
    delays = [backoff.delay(n, rng) for n in range(1, 8)]
    nominal = [1, 2, 4, 8, 8, 8, 8]
    assert all(0.75 * n <= d <= n for d, n in zip(delays, nominal, strict=True))
    assert len(set(delays)) == len(delays)  # jittered


def test_specs_from_settings_fall_back_to_the_simulator() -> None:
    from dialer.settings import AsteriskSettings

    sim_spec = spec(5038, name="sim")
    assert AmiPool.specs_from_settings(AsteriskSettings(), sim_spec) == [sim_spec]
    with pytest.raises(ValueError, match="simulator"):
        AmiPool.specs_from_settings(AsteriskSettings())
    configured = AsteriskSettings.model_validate(
        {"servers": [{"name": "tunja", "host": "10.0.0.5", "secret": "x"}]}
    )
    [only] = AmiPool.specs_from_settings(configured, sim_spec)
    assert (only.name, only.host, only.port) == ("tunja", "10.0.0.5", 5038)
