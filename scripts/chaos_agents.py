"""Simulated agents as a separate process, for ``scripts/chaos.py``.

They act only the way a real agent screen does, over Redis and SQL:

* log in (``agent_login`` on the command stream) when their live state says logged out, or when it
  has not moved for ``--stale`` seconds (their dialer may have died, taking the session with it);
* go ready (``agent_ready``) when paused;
* in wrap-up, record a disposition through :meth:`dialer.store.EngineStore.record_disposition`,
  then send ``agent_dispositioned``.

A command that reaches a dialer which does not hold the agent is rejected by that dialer; the
next round simply sends it again. Runs until SIGTERM or ``--duration``; seeded.

    .venv/bin/python scripts/chaos_agents.py --campaign 1 --agents 1:1001,2:1002 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dialer.db.engine import make_engine, make_sessionmaker
from dialer.domain.dispositions import DispositionCode, validate_disposition
from dialer.domain.outcomes import CampaignType
from dialer.redis_client import Streams, connect_redis
from dialer.redis_keys import Keys
from dialer.settings import load_settings
from dialer.store import DispositionConflict, EngineStore

MIX = (
    DispositionCode.NO_INTERESADO,
    DispositionCode.SERVICIO_EN_OTRO_TALLER,
    DispositionCode.CITA_AGENDADA,
)


@dataclass
class AgentSim:
    user_id: int
    extension: str
    last_seen: tuple[str, str] = ("", "")
    seen_at: float = 0.0
    login_at: float = -1e9
    done: set[str] | None = None


def details(code: DispositionCode, now: datetime, rng: random.Random) -> dict[str, object]:
    if code is DispositionCode.CITA_AGENDADA:
        return {
            "appointment_at": now + timedelta(days=2),
            "branch": "Tunja",
            "service": "Mantenimiento 10.000 km",
        }
    if code is DispositionCode.NO_INTERESADO:
        return {"reason": rng.choice(["precio", "tiempo"])}
    return {}


async def run(args: argparse.Namespace) -> dict[str, int]:
    settings = load_settings()
    keys = Keys(settings.redis.key_prefix)
    db = make_engine(settings)
    store = EngineStore(make_sessionmaker(db))
    redis = connect_redis(settings)
    streams = Streams(redis.client)
    rng = random.Random(args.seed)
    agents = [
        AgentSim(int(uid), ext, done=set())
        for uid, ext in (pair.split(":") for pair in args.agents.split(","))
    ]
    counts = {"logins": 0, "ready": 0, "dispositions": 0, "errors": 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    deadline = time.monotonic() + args.duration
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            for a in agents:
                try:
                    await step(a, args, store, redis.client, streams, keys, rng, counts)
                except Exception as exc:  # Redis or the database restarting: next round
                    counts["errors"] += 1
                    print(f"agent {a.user_id}: {type(exc).__name__}", file=sys.stderr)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.tick)
    finally:
        await redis.close()
        await db.dispose()
    return counts


async def step(
    a: AgentSim,
    args: argparse.Namespace,
    store: EngineStore,
    redis: object,
    streams: Streams,
    keys: Keys,
    rng: random.Random,
    counts: dict[str, int],
) -> None:
    import redis.asyncio as aioredis

    assert isinstance(redis, aioredis.Redis)
    now_mono = time.monotonic()
    state: dict[str, str] = await redis.hgetall(keys.agent_state(a.user_id))  # type: ignore[misc]
    current = (state.get("state", "logged_out"), state.get("since", ""))
    if current != a.last_seen:
        a.last_seen, a.seen_at = current, now_mono
    name = current[0]
    stale = now_mono - a.seen_at > args.stale and name in ("ready", "paused")
    if name == "logged_out" or stale:
        if now_mono - a.login_at >= args.relogin:
            a.login_at = now_mono
            await streams.add(
                keys.commands_stream,
                "agent_login",
                {"agent_id": a.user_id, "extension": a.extension, "campaign_id": args.campaign},
            )
            counts["logins"] += 1
        return
    if name == "paused":
        await streams.add(keys.commands_stream, "agent_ready", {"agent_id": a.user_id})
        counts["ready"] += 1
        return
    if name == "wrap_up":
        attempt = state.get("attempt", "")
        assert a.done is not None
        if attempt and attempt not in a.done:
            now = datetime.now(UTC)
            code = rng.choice(MIX)
            record = validate_disposition(
                CampaignType.CONTACTO_PROACTIVO, code.value, details(code, now, rng), now
            )
            with contextlib.suppress(DispositionConflict):
                await store.record_disposition(attempt, record, now, a.user_id)
            a.done.add(attempt)
            counts["dispositions"] += 1
        await streams.add(keys.commands_stream, "agent_dispositioned", {"agent_id": a.user_id})


def main() -> int:
    parser = argparse.ArgumentParser(description="Simulated agents for scripts/chaos.py")
    parser.add_argument("--campaign", type=int, required=True)
    parser.add_argument("--agents", required=True, help="user_id:extension,...")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tick", type=float, default=1.0)
    parser.add_argument("--stale", type=float, default=20.0, help="re-login after (s) unchanged")
    parser.add_argument("--relogin", type=float, default=5.0, help="min s between logins")
    parser.add_argument("--duration", type=float, default=3600.0)
    args = parser.parse_args()
    counts = asyncio.run(run(args))
    print(counts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
