"""Prometheus metrics, computed at scrape time from SQL and Redis.

No global registry: each app owns a :class:`MetricsCollector` with its own
``CollectorRegistry``. A scrape gathers a snapshot asynchronously, then renders it.

Metrics (all gauges, labelled by campaign id where it applies):

- ``marcador_calls_today{campaign_id,outcome}``: attempts started today (campaign zone of the
  deployment, ``settings.timezone``) by outcome (``in_progress`` while unresolved);
- ``marcador_abandon_rate{campaign_id,window}``: abandoned / live answers, ``today`` and
  ``30d``, for running campaigns; ``marcador_abandon_target{campaign_id}`` the cap;
- ``marcador_agents{state}``: logged-in agents by live state;
- ``marcador_ami_link_up{server}``: 1 when the dialer reports the AMI link connected;
- ``marcador_stream_length{stream}`` and ``marcador_stream_pending{stream,group}``: queue
  depths of the command, event and WhatsApp streams;
- ``marcador_leads{campaign_id,status}`` and ``marcador_leads_due{campaign_id}``;
- ``marcador_webhook_deliveries{status}``.

The same registry also holds the request-timing and event-loop-lag histograms of
:mod:`api.timing` (observed as requests are served, not at scrape time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import CallAttempt, Campaign, Lead, Recording, WebhookDelivery
from dialer.domain.outcomes import AgentState, CampaignStatus, LeadStatus
from dialer.redis_keys import Keys
from dialer.settings import Settings
from dialer.store import ACTIVE_STATUSES, campaign_abandon_stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot(Collector):
    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


#: A "connected" link whose dialer has not re-published it for this long counts as down
#: (the dialer re-publishes every ``dialer.telephony.LINK_HEARTBEAT_S``, 1 s).
LINK_STALE_S = 5.0


async def ami_statuses(redis: aioredis.Redis, keys: Keys, settings: Settings) -> dict[str, str]:
    """server -> link state ("missing" when the dialer never reported it)."""
    names = [s.name for s in settings.asterisk.servers]
    pattern = keys.ami_link("*")
    head = pattern[:-1]
    async for key in redis.scan_iter(match=pattern, count=100):
        name = str(key)[len(head) :]
        if name and name not in names:
            names.append(name)
    out: dict[str, str] = {}
    now = time.time()
    for name in names:
        state, beat = await redis.hmget(keys.ami_link(name), ["state", "heartbeat_at"])  # type: ignore[misc]
        out[name] = str(state) if state else "missing"
        try:
            silent = now - float(beat) if beat else 0.0
        except ValueError:
            silent = 0.0
        if state == "connected" and silent > LINK_STALE_S:
            # The dialer that reported it stopped (killed): its last word is not believed.
            out[name] = f"stale (no dialer heartbeat for {silent:.0f} s)"
    return out


async def agent_states(redis: aioredis.Redis, keys: Keys) -> dict[str, int]:
    counts = {s.value: 0 for s in AgentState if s is not AgentState.LOGGED_OUT}
    members: set[str] = await redis.smembers(keys.agents_online)  # type: ignore[misc]
    for member in members:
        if not str(member).isdigit():
            continue
        state = await redis.hget(keys.agent_state(int(member)), "state")  # type: ignore[misc]
        if state in counts:
            counts[str(state)] += 1
    return counts


class MetricsCollector:
    """One per app: its own registry and a lock so concurrent scrapes do not interleave."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self._lock = asyncio.Lock()

    async def render(
        self,
        sm: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis,
        keys: Keys,
        settings: Settings,
        now: datetime,
    ) -> bytes:
        async with self._lock:
            families = [f async for f in self._families(sm, redis, keys, settings, now)]
            self._snapshot.families = families
            return generate_latest(self.registry)

    async def _families(
        self,
        sm: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis,
        keys: Keys,
        settings: Settings,
        now: datetime,
    ) -> Any:
        for family in await self._sql_families(sm, settings, now):
            yield family
        for family in await self._redis_families(redis, keys, settings):
            yield family

    async def _sql_families(
        self, sm: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
    ) -> list[Metric]:
        zone = ZoneInfo(settings.timezone)
        day_start = (
            now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        )
        calls = _gauge(
            "marcador_calls_today", "Call attempts started today", ["campaign_id", "outcome"]
        )
        abandon = _gauge(
            "marcador_abandon_rate", "Abandoned / live answers", ["campaign_id", "window"]
        )
        target = _gauge("marcador_abandon_target", "Abandon-rate cap", ["campaign_id"])
        leads = _gauge("marcador_leads", "Leads by status", ["campaign_id", "status"])
        due = _gauge("marcador_leads_due", "Active leads due now", ["campaign_id"])
        hooks = _gauge("marcador_webhook_deliveries", "Webhook deliveries", ["status"])
        recordings = _gauge(
            "marcador_recordings_today",
            "Recordings of calls connected today, by status (failed: the call went on unrecorded)",
            ["campaign_id", "status"],
        )
        async with sm() as s:
            rows = await s.execute(
                sa.select(CallAttempt.campaign_id, CallAttempt.outcome, sa.func.count())
                .where(CallAttempt.created_at >= day_start)
                .group_by(CallAttempt.campaign_id, CallAttempt.outcome)
            )
            for campaign_id, outcome, n in rows:
                label = outcome.value if outcome is not None else "in_progress"
                calls.add_metric([str(campaign_id), label], float(n))
            running = list(
                await s.scalars(
                    sa.select(Campaign).where(Campaign.status == CampaignStatus.RUNNING)
                )
            )
            for camp in running:
                ab_d, live_d, ab_m, live_m = await campaign_abandon_stats(
                    s, camp.id, now, camp.timezone
                )
                cid = str(camp.id)
                abandon.add_metric([cid, "today"], ab_d / live_d if live_d else 0.0)
                abandon.add_metric([cid, "30d"], ab_m / live_m if live_m else 0.0)
                target.add_metric([cid], camp.abandon_target)
            if running:
                ids = [c.id for c in running]
                by_status = await s.execute(
                    sa.select(Lead.campaign_id, Lead.status, sa.func.count())
                    .where(Lead.campaign_id.in_(ids))
                    .group_by(Lead.campaign_id, Lead.status)
                )
                for campaign_id, status, n in by_status:
                    st = status.value if isinstance(status, LeadStatus) else str(status)
                    leads.add_metric([str(campaign_id), st], float(n))
                due_rows = await s.execute(
                    sa.select(Lead.campaign_id, sa.func.count())
                    .where(
                        Lead.campaign_id.in_(ids),
                        Lead.status.in_(ACTIVE_STATUSES),
                        sa.or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= now),
                    )
                    .group_by(Lead.campaign_id)
                )
                for campaign_id, n in due_rows:
                    due.add_metric([str(campaign_id)], float(n))
            hook_rows = await s.execute(
                sa.select(WebhookDelivery.status, sa.func.count()).group_by(WebhookDelivery.status)
            )
            for status, n in hook_rows:
                hooks.add_metric([str(status)], float(n))
            rec_rows = await s.execute(
                sa.select(Recording.campaign_id, Recording.status, sa.func.count())
                .where(Recording.started_at >= day_start)
                .group_by(Recording.campaign_id, Recording.status)
            )
            for campaign_id, status, n in rec_rows:
                recordings.add_metric([str(campaign_id), str(status.value)], float(n))
        return [calls, abandon, target, leads, due, hooks, recordings]

    async def _redis_families(
        self, redis: aioredis.Redis, keys: Keys, settings: Settings
    ) -> list[Metric]:
        agents = _gauge("marcador_agents", "Logged-in agents by state", ["state"])
        for state, n in (await agent_states(redis, keys)).items():
            agents.add_metric([state], float(n))
        links = _gauge("marcador_ami_link_up", "AMI link connected (1) or not (0)", ["server"])
        for server, state in (await ami_statuses(redis, keys, settings)).items():
            links.add_metric([server], 1.0 if state == "connected" else 0.0)
        length = _gauge("marcador_stream_length", "Entries in a Redis stream", ["stream"])
        pending = _gauge(
            "marcador_stream_pending", "Entries read but not acknowledged", ["stream", "group"]
        )
        for name, stream, groups in _streams(keys):
            length.add_metric([name], float(await redis.xlen(stream)))
            for group in groups:
                pending.add_metric([name, group], float(await _pending(redis, stream, group)))
        return [agents, links, length, pending]


def _streams(keys: Keys) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    yield "commands", keys.commands_stream, (keys.dialer_group,)
    yield "events", keys.events_stream, (keys.webhook_group,)
    yield "whatsapp", keys.whatsapp_stream, (keys.whatsapp_group,)


async def _pending(redis: aioredis.Redis, stream: str, group: str) -> int:
    try:
        info = await redis.xpending(stream, group)
    except Exception:  # no such stream or group yet
        return 0
    if isinstance(info, dict):
        return int(info.get("pending", 0) or 0)
    return 0
