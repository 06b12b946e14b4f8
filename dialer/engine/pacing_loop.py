"""The pacing loop: own campaigns (leases), and every ~0.5 s per running campaign take a
snapshot (agents, calls ringing, customers waiting, abandon stats), let the pacer decide how
many lines to launch, publish that decision, and dial (:mod:`dialer.engine.dialing`).
Preview campaigns are not paced: their agents get offers (:mod:`dialer.engine.previews`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from dialer.db.models import Campaign
from dialer.domain.outcomes import AgentState, CampaignStatus, DialMode
from dialer.engine.dialing import Dialing
from dialer.engine.model import CampaignRuntime
from dialer.engine.previews import Previews
from dialer.engine.sessions import Sessions
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger
from dialer.pacing.config import PacingConfig
from dialer.pacing.pacer import Pacer
from dialer.pacing.types import (
    AgentView,
    CallView,
    PacingDecision,
    PacingSnapshot,
    PacingStats,
    Segment,
)
from dialer.store import campaign_abandon_stats

log = get_logger("marcador.engine")


def pacing_config(campaign: Campaign) -> PacingConfig:
    """The pacer's configuration from the campaign's settings (mode, ratio, caps)."""
    limit = min(0.03, campaign.abandon_target)
    return PacingConfig(
        mode=campaign.dial_mode,
        fixed_ratio=max(1.0, campaign.dial_ratio),
        abandon_limit=limit,
        target_abandon=min(limit, round(limit * 5 / 6, 5)),
        connect_timeout=campaign.connect_timeout,
    )


def pacing_live_fields(decision: PacingDecision | None, now: datetime) -> dict[str, str]:
    """The pacing state as published in ``Keys.campaign_live`` (the dashboard reads it).

    ``mode`` is the mode actually applied (predictive falls back to progressive during cold
    start, under the abandon cap or with a small team), ``reason`` says why (a
    :class:`~dialer.pacing.types.DecisionReason` value), ``dial_level`` is lines per active
    agent. No decision (a preview campaign): mode preview, no level.
    """
    if decision is None:
        return {
            "mode": DialMode.PREVIEW.value,
            "reason": "preview",
            "dial_level": "",
            "launch": "0",
            "risk": "",
            "risk_bound": "",
            "pacing_at": now.isoformat(),
        }
    return {
        "mode": decision.mode.value,
        "reason": decision.reason.value,
        "dial_level": f"{decision.dial_level:.3f}",
        "launch": str(decision.launch),
        "risk": f"{decision.risk:.5f}",
        "risk_bound": f"{decision.risk_bound:.5f}",
        "pacing_at": now.isoformat(),
    }


class PacingLoop(Part):
    """Owns campaigns and paces the running ones."""

    def __init__(
        self, state: EngineState, dialing: Dialing, previewing: Previews, sessions: Sessions
    ) -> None:
        super().__init__(state)
        self.dialing = dialing
        self.previewing = previewing
        self.sessions = sessions
        self._lock = asyncio.Lock()

    async def refresh_campaigns(self) -> None:
        """Own the running and paused campaigns we can lease; forget draft/finished ones.

        A paused campaign stays owned (it is not paced, see ``_pace``) so that agents can log
        in before it starts and keep their session on the same dialer when it does.
        """
        running = {c.id: c for c in await self.store.active_campaigns()}
        for cid in list(self.campaigns):
            if cid not in running:
                self.campaigns.pop(cid)
                await self.leases.release(self.keys.campaign_lease(cid), self.config.dialer_id)
        for cid, camp in running.items():
            owned = await self.leases.acquire(
                self.keys.campaign_lease(cid), self.config.dialer_id, self.config.campaign_lease_ms
            ) or await self._take_from_predecessor(self.keys.campaign_lease(cid))
            if not owned:
                self.campaigns.pop(cid, None)
                continue
            rt = self.campaigns.get(cid)
            if rt is None:
                self.campaigns[cid] = CampaignRuntime(
                    campaign=camp, pacer=Pacer(pacing_config(camp))
                )
                await self.sessions.restore_agents(cid)
            else:
                rt.campaign = camp

    async def _take_from_predecessor(self, key: str) -> bool:
        """Take a lease an earlier (dead) run of this dialer still holds, without waiting for
        it to expire: a restarted dialer resumes its campaigns and agents at once."""
        prefix = self.state.predecessor_prefix()
        holder = await self.leases.owner(key) if prefix else None
        if holder is None or not holder.startswith(prefix) or holder == self.config.dialer_id:
            return False
        await self.leases.force_release(key)
        return await self.leases.acquire(key, self.config.dialer_id, self.config.campaign_lease_ms)

    async def step(self) -> None:
        """One pacing round over every owned campaign (called every ~0.5 s)."""
        async with self._lock:
            await self.refresh_campaigns()
            now = self._now()
            await self.store.renew_claims(self.config.dialer_id, now, self.config.claim_ttl)
            try:  # browser-phone agents who did not rejoin in time (issue 15)
                await self.sessions.expire_rejoins()
            except Exception as exc:
                log.exception("rejoin_expiry_failed", error=str(exc))
            for rt in list(self.campaigns.values()):
                try:
                    await self._pace(rt, now)
                except Exception as exc:
                    log.exception("pacing_failed", campaign=rt.campaign.id, error=str(exc))

    def _snapshot(self, rt: CampaignRuntime, now: datetime) -> PacingSnapshot:
        t = now.timestamp()
        agents = tuple(
            AgentView(
                agent_id=str(a.agent_id),
                state=AgentState.PAUSED if not a.room_joined else a.state,
                since=(a.since or now).timestamp(),
                expected_free_at=a.wrap_deadline.timestamp() if a.wrap_deadline else None,
            )
            for a in self.state.campaign_agents(rt.campaign.id)
        )
        mine = [c for c in self.calls.values() if c.campaign_id == rt.campaign.id]
        ringing = tuple(
            CallView(
                call_id=c.uuid,
                dialed_at=c.dialed_at.timestamp(),
                segment=Segment(attempt=c.attempt_number, hour=c.dialed_at.hour),
            )
            for c in mine
            if c.answered_at is None and not c.preview
        )
        waiting = sum(1 for c in mine if c.answered_at is not None and c.agent_id is None)
        return PacingSnapshot(
            now=t, agents=agents, ringing=ringing, waiting=waiting, stats=rt.stats
        )

    async def _refresh_stats(self, rt: CampaignRuntime, now: datetime) -> None:
        if rt.stats_at and now - rt.stats_at < self.config.stats_refresh:
            return
        async with self.store.sm() as s:
            ab_d, live_d, ab_m, live_m = await campaign_abandon_stats(
                s, rt.campaign.id, now, rt.campaign.timezone
            )
        rt.stats = PacingStats(
            answers_today=live_d, abandons_today=ab_d, answers_30d=live_m, abandons_30d=ab_m
        )
        rt.stats_at = now

    def _decide(self, rt: CampaignRuntime, now: datetime) -> PacingDecision:
        wanted = pacing_config(rt.campaign)
        if wanted != rt.pacer.config:
            if wanted.connect_timeout != rt.pacer.config.connect_timeout:
                rt.pacer = Pacer(wanted)
                rt.feed.rebind(rt.pacer)
            else:  # mode, ratio or cap changed: keep what the model learned
                rt.pacer.config = wanted
        return rt.pacer.decide(self._snapshot(rt, now))

    async def _pace(self, rt: CampaignRuntime, now: datetime) -> None:
        camp = rt.campaign
        if camp.status is not CampaignStatus.RUNNING:
            return
        if camp.dial_mode is DialMode.PREVIEW:
            rt.last_decision = None
            await self._publish_pacing(rt, now)
            await self.previewing.offer_previews(rt, now)
            return
        await self._refresh_stats(rt, now)
        decision = self._decide(rt, now)
        rt.last_decision = decision
        await self._publish_pacing(rt, now)
        launch = min(decision.launch, self.config.max_launch_per_tick)
        if launch <= 0:
            return
        candidates = await self.store.candidate_ids(camp.id, now, launch * 3)
        launched = 0
        for lead_id in candidates:
            if launched >= launch:
                break
            if await self.dialing.dial_lead(rt, lead_id, now, decision.mode):
                launched += 1

    async def _publish_pacing(self, rt: CampaignRuntime, now: datetime) -> None:
        """Publish the effective mode, dial level and reason (``Keys.campaign_live``).

        The hash expires unless refreshed, so a stopped dialer or a paused campaign does not
        leave a stale mode on the dashboard. Losing Redis loses only this view.
        """
        key = self.keys.campaign_live(rt.campaign.id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping=pacing_live_fields(rt.last_decision, now))
                pipe.pexpire(key, 3 * self.config.campaign_lease_ms)
                await pipe.execute()
        except Exception as exc:
            log.warning("pacing_publish_failed", error=type(exc).__name__)
