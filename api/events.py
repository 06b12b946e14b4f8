"""Commands to the dialer, events to the stream, and the live feed: one :class:`Broadcaster`
per API process reads the event stream and fans it out to the SSE clients, filtered per role."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from api.auth import Principal
from dialer.logging import get_logger
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys

log = get_logger(__name__)

HEARTBEAT_S = 15.0


async def send_command(
    redis: aioredis.Redis, keys: Keys, type_: str, data: Mapping[str, Any]
) -> str:
    """Append a command for the dialer (``Keys.commands_stream``)."""
    return await Streams(redis).add(keys.commands_stream, type_, data)


async def publish_event(
    redis: aioredis.Redis, keys: Keys, type_: str, data: Mapping[str, Any]
) -> str:
    """Append an event for dashboards and webhooks (``Keys.events_stream``)."""
    return await Streams(redis).add(keys.events_stream, type_, data)


async def last_event_id(redis: aioredis.Redis, keys: Keys) -> str:
    """The event stream's last id (``0-0`` when empty): read events after it with
    :func:`wait_for_event`."""
    if not await redis.exists(keys.events_stream):
        return "0-0"
    info = await redis.xinfo_stream(keys.events_stream)
    return str(info["last-generated-id"])


async def wait_for_event(
    redis: aioredis.Redis,
    keys: Keys,
    after: str,
    match: Callable[[StreamEntry], bool],
    timeout_s: float,
) -> StreamEntry | None:
    """The first event after ``after`` that ``match``es, or ``None`` after ``timeout_s``.

    For a command whose result the caller can wait for a moment (e.g. a spy's Originate,
    refused or queued within milliseconds): the dialer answers on the event stream.
    """
    streams = Streams(redis)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    cursor = after
    while (left := deadline - loop.time()) > 0:
        entries = await streams.read(
            keys.events_stream, cursor, count=100, block_ms=max(1, int(left * 1000))
        )
        for entry in entries:
            cursor = entry.id
            if match(entry):
                return entry
    return None


async def live_agent_state(redis: aioredis.Redis, keys: Keys, agent_id: int) -> dict[str, str]:
    raw: dict[str, str] = await redis.hgetall(keys.agent_state(agent_id))  # type: ignore[misc]
    return {str(k): str(v) for k, v in raw.items()}


def seconds_since(since: str, now: datetime) -> float | None:
    try:
        start = datetime.fromisoformat(since)
    except ValueError:
        return None
    if start.tzinfo is None:
        return None
    return max(0.0, (now - start).total_seconds())


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def visible(principal: Principal, campaigns: frozenset[int] | None, entry: StreamEntry) -> bool:
    """Agents: only events about themselves. Supervisors: events of their campaigns."""
    data = entry.data
    if principal.is_agent:
        return _as_int(data.get("agent_id")) == principal.user_id
    if campaigns is None:
        return True
    cid = _as_int(data.get("campaign_id"))
    return cid is not None and cid in campaigns


def sse(entry: StreamEntry) -> str:
    payload = json.dumps(
        {"type": entry.type, "data": entry.data}, separators=(",", ":"), default=str
    )
    return f"id: {entry.id}\nevent: {entry.type}\ndata: {payload}\n\n"


def stream_id(value: str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)`` (stream ids compare as pairs)."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


# --------------------------------------------------------------------------- fan-out

RETRY_HINT = b"retry: 2000\n\n"
KEEP_ALIVE = b": keep-alive\n\n"
#: Entries one XREAD returns at most.
READ_COUNT = 500
#: Encoded entries buffered per subscriber before it is switched to catching up from Redis.
QUEUE_SIZE = 2000
#: Pause before the reader retries after a Redis error.
RETRY_S = 1.0
#: After an event arrives, wait this long for more before writing (one write per batch, not
#: per event: a hundred clients times a busy stream is otherwise mostly socket writes). Adds at
#: most this much to the event -> screen delay (goal: 1 s).
COALESCE_S = 0.1


@dataclass(frozen=True, slots=True)
class Encoded:
    """One stream entry, decoded and SSE-encoded once per API process."""

    entry: StreamEntry
    key: tuple[int, int]
    data: bytes


class Subscription:
    """One SSE client: its filter and a bounded queue of entries it may see."""

    __slots__ = ("campaigns", "lagging", "principal", "queue")

    def __init__(
        self, principal: Principal, campaigns: frozenset[int] | None, maxsize: int
    ) -> None:
        self.principal = principal
        self.campaigns = campaigns
        self.queue: asyncio.Queue[Encoded] = asyncio.Queue(maxsize)
        #: Set when the queue overflowed: the reader stops feeding it and the client reads
        #: what it missed straight from Redis (nothing is dropped).
        self.lagging = False

    def offer(self, item: Encoded) -> None:
        if self.lagging or not visible(self.principal, self.campaigns, item.entry):
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lagging = True


class Broadcaster:
    """One reader of ``Keys.events_stream`` per API process, fanned out to every SSE client.

    The reader task does one blocking ``XREAD`` at a time and encodes each entry once; each
    subscriber gets the entries its principal may see (:func:`visible`) through a bounded
    queue, without waiting on anyone: a subscriber whose queue is full is marked *lagging* and
    catches up from Redis itself (``XREAD`` after the last id it sent), so a slow client
    neither blocks the others nor loses events. After a Redis error the reader waits
    ``retry_s`` and resumes from its cursor. A client resuming with ``Last-Event-ID`` first
    replays from Redis the same way.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        block_ms: int = int(HEARTBEAT_S * 1000),
        queue_size: int = QUEUE_SIZE,
        retry_s: float = RETRY_S,
        read_count: int = READ_COUNT,
        coalesce_s: float = COALESCE_S,
    ) -> None:
        self.redis = redis
        self.stream = keys.events_stream
        self.block_ms = block_ms
        self.queue_size = queue_size
        self.retry_s = retry_s
        self.read_count = read_count
        self.coalesce_s = coalesce_s
        self.subscribers: set[Subscription] = set()
        #: Called with every entry read (in this process), e.g. to prepare what an agent
        #: screen will ask for next; must not block (start a task for I/O).
        self.listeners: list[Callable[[StreamEntry], None]] = []
        self.cursor: str | None = None
        #: Counters for tests and metrics.
        self.reads = 0
        self.errors = 0
        self.delivered = 0
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Resolve the cursor (the stream's last id) and start the reader, once.

        Every subscription made after this returns sees every later entry.
        """
        if self._task is not None and not self._task.done():
            return
        async with self._start_lock:
            if self._task is not None and not self._task.done():
                return
            if self.cursor is None:
                self.cursor = await self._last_id()
            self._task = asyncio.create_task(self._run(), name="sse-broadcaster")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _last_id(self) -> str:
        if not await self.redis.exists(self.stream):
            return "0-0"
        info = await self.redis.xinfo_stream(self.stream)
        return str(info["last-generated-id"])

    async def _run(self) -> None:
        streams = Streams(self.redis)
        while True:
            try:
                if self.cursor is None:
                    self.cursor = await self._last_id()
                entries = await streams.read(
                    self.stream, self.cursor, count=self.read_count, block_ms=self.block_ms
                )
                self.reads += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or restarting: keep the cursor, retry
                self.errors += 1
                log.warning("sse_reader_error", error=repr(exc), retry_s=self.retry_s)
                await asyncio.sleep(self.retry_s)
                continue
            if entries:
                self.dispatch(entries)

    def dispatch(self, entries: list[StreamEntry]) -> None:
        """Encode each entry once and offer it to every subscriber (never waits)."""
        for entry in entries:
            self.cursor = entry.id
            for listener in self.listeners:
                try:
                    listener(entry)
                except Exception as exc:  # a listener never stops the feed
                    log.warning("sse_listener_failed", error=repr(exc))
            if not self.subscribers:
                continue
            item = Encoded(entry, stream_id(entry.id), sse(entry).encode())
            for sub in self.subscribers:
                sub.offer(item)

    # ------------------------------------------------------------------ subscribers
    def subscribe(
        self, principal: Principal, campaigns: frozenset[int] | None, *, catch_up: bool = False
    ) -> Subscription:
        sub = Subscription(principal, campaigns, self.queue_size)
        sub.lagging = catch_up
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    async def events(
        self,
        principal: Principal,
        campaigns: frozenset[int] | None,
        last_id: str | None = None,
        *,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> AsyncGenerator[bytes, None]:
        """The SSE body for one client: a ``retry`` hint, then its events (what arrives within
        ``coalesce_s`` of the first goes out in one write), and a comment every ``heartbeat_s``
        without events.

        ``last_id``: resume after this stream id (``Last-Event-ID``); None: from now on.
        """
        await self.start()
        sub = self.subscribe(principal, campaigns, catch_up=last_id is not None)
        last = stream_id(last_id) if last_id is not None else None
        try:
            yield RETRY_HINT
            while True:
                if sub.lagging and sub.queue.empty():
                    sub.lagging = False  # fed again from here on; Redis fills the gap
                    assert last is not None
                    since = last
                    async for chunk, upto in self._replay(sub, since):
                        last = upto
                        if chunk:
                            yield chunk
                    continue
                try:
                    async with asyncio.timeout(heartbeat_s):
                        first = await sub.queue.get()
                except TimeoutError:
                    yield KEEP_ALIVE
                    continue
                if self.coalesce_s > 0:
                    await asyncio.sleep(self.coalesce_s)
                batch = [first]
                while not sub.queue.empty():
                    batch.append(sub.queue.get_nowait())
                out = [it.data for it in batch if last is None or it.key > last]
                last = batch[-1].key if last is None else max(last, batch[-1].key)
                if out:
                    self.delivered += len(out)
                    yield b"".join(out)
        finally:
            self.unsubscribe(sub)

    async def _replay(
        self, sub: Subscription, after: tuple[int, int]
    ) -> AsyncIterator[tuple[bytes, tuple[int, int]]]:
        """What the subscriber missed, read from Redis in pages (its own ``XREAD``)."""
        streams = Streams(self.redis)
        last = after
        while True:
            entries = await streams.read(
                self.stream, f"{last[0]}-{last[1]}", count=self.read_count, block_ms=None
            )
            if not entries:
                return
            parts: list[bytes] = []
            for entry in entries:
                last = stream_id(entry.id)
                if visible(sub.principal, sub.campaigns, entry):
                    parts.append(sse(entry).encode())
            self.delivered += len(parts)
            yield b"".join(parts), last
            if len(entries) < self.read_count:
                return
