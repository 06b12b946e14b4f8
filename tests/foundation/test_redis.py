from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dialer.redis_client import Streams, connect_redis
from dialer.redis_keys import Keys
from dialer.settings import load_settings


async def _roundtrip(client: aioredis.Redis, keys: Keys) -> None:
    streams = Streams(client)
    await streams.ensure_group(keys.whatsapp_stream, keys.whatsapp_group)
    await streams.ensure_group(keys.whatsapp_stream, keys.whatsapp_group)  # idempotent
    entry_id = await streams.add(
        keys.whatsapp_stream, "lead_exhausted", {"lead_id": 7, "n": "Peña"}
    )
    got = await streams.read_group(keys.whatsapp_stream, keys.whatsapp_group, "w1")
    assert [(e.id, e.type, e.data) for e in got] == [
        (entry_id, "lead_exhausted", {"lead_id": 7, "n": "Peña"})
    ]
    # w1 dies without acking: w2 takes the entry over with XAUTOCLAIM.
    assert await streams.read_group(keys.whatsapp_stream, keys.whatsapp_group, "w2") == []
    claimed = await streams.autoclaim(keys.whatsapp_stream, keys.whatsapp_group, "w2", 0)
    assert [e.id for e in claimed] == [entry_id]
    assert await streams.ack(keys.whatsapp_stream, keys.whatsapp_group, entry_id) == 1
    assert await streams.autoclaim(keys.whatsapp_stream, keys.whatsapp_group, "w3", 0) == []


async def test_embedded_redis_streams(redis: aioredis.Redis, keys: Keys) -> None:
    await _roundtrip(redis, keys)


async def test_connect_redis_embedded_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARCADOR_REDIS__URL", raising=False)
    handle = connect_redis(load_settings(data_dir=tmp_path))
    try:
        assert handle.embedded is not None
        assert await handle.client.ping()
        await _roundtrip(handle.client, Keys(prefix="emb"))
    finally:
        await handle.close()


async def test_connect_redis_server_mode() -> None:
    url = os.environ.get("MARCADOR_REDIS__URL") or os.environ.get("MARCADOR_TEST_REDIS_URL")
    if not url:
        pytest.skip("no Redis server configured (MARCADOR_REDIS__URL)")
    handle = connect_redis(load_settings(redis={"url": url}))
    keys = Keys(prefix="test-server-mode")
    try:
        assert handle.embedded is None
        await _roundtrip(handle.client, keys)
    finally:
        async for key in handle.client.scan_iter(match=keys.pattern()):
            await handle.client.delete(key)
        await handle.close()


def test_keys_are_prefixed() -> None:
    k = Keys(prefix="p")
    names = [
        k.commands_stream,
        k.events_stream,
        k.whatsapp_stream,
        k.lead_lease(1),
        k.hopper(2),
        k.agent_state(3),
        k.campaign_live(4),
        k.ami_link("pbx1"),
        k.campaign_lease(5),
    ]
    assert all(n.startswith("p:") for n in names)
    assert len(set(names)) == len(names)


async def test_undecodable_entry_does_not_crash(redis: aioredis.Redis, keys: Keys) -> None:
    await redis.xadd(keys.events_stream, {"type": "x", "data": "{not json"})
    got = await Streams(redis).read(keys.events_stream, "0")
    assert got[0].data == {"_undecodable": "{not json"}


def test_stop_embedded_server_left_running(tmp_path: Path) -> None:
    """A process that shared the embedded server was killed and never closed it: the server
    is stopped (its data saved) once nothing uses the data directory; nothing to stop then."""
    import psutil

    from dialer.redis_client import EmbeddedRedis, stop_embedded

    server = EmbeddedRedis(tmp_path)  # never closed, as if its process had been killed
    pid = int(server._server.pid)
    assert psutil.pid_exists(pid)
    assert stop_embedded(tmp_path) is True
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert (tmp_path / "redis.db").exists()  # saved on the way out
    assert stop_embedded(tmp_path) is False
    assert stop_embedded(tmp_path / "never-used") is False


def test_the_last_process_to_close_stops_the_embedded_server(tmp_path: Path) -> None:
    """Two processes share one embedded server; the one that started it closes first (the
    other still connected: it keeps running), then the one that joined closes: stopped."""
    import psutil

    from dialer.redis_client import EmbeddedRedis

    first = EmbeddedRedis(tmp_path)
    pid = int(first._server.pid)
    joined = EmbeddedRedis(tmp_path)
    assert joined.socket_path == first.socket_path
    first.close()
    assert psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    joined.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
