"""The dialer engine: campaigns -> claimed leads -> originates -> outcomes -> retries.

This is the IO shell that ties together the pure pieces (pacing, agent state machine, rules,
call tracker) with SQL (:class:`dialer.store.EngineStore`), Redis (events, commands, leases)
and the AMI bridge (:class:`Telephony`). Call flow: design.md §4.

Ordering guarantees that make crashes safe:

* a lead is claimed (SQL ``lead_claims`` + Redis lease) before anything else;
* the attempt row is committed before the Originate is sent;
* the outcome, the retry decision and the WhatsApp outbox row are one SQL transaction;
* the WhatsApp stream publication happens after that commit; a crash between the two loses
  nothing, because queued outbox rows are re-published when a dialer starts
  (:meth:`Engine.republish_outbox`) and swept by the WhatsApp worker; the row's idempotency key
  makes any repeat harmless.

The engine never waits on the database on the answer -> Redirect path: the agent is chosen from
in-memory state.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from ami_bridge import dialplan
from ami_bridge.actions import OriginateRequest
from ami_bridge.errors import AMIError
from ami_bridge.events import AMIEvent, ConfbridgeJoin, Hangup
from ami_bridge.tracker import CallAnswered, CallConnected, CallEnded, CallRinging, TrackerOutput
from dialer.db.models import AgentStateLog, Campaign
from dialer.domain.agents import AgentSession, InvalidAgentTransition, longest_idle
from dialer.domain.clock import Clock
from dialer.domain.errors import AttemptLimitReached, NoDialablePhone
from dialer.domain.outcomes import AgentState, CallOutcome, CampaignStatus, DialMode, LeadStatus
from dialer.leases import Leases
from dialer.logging import get_logger
from dialer.pacing.config import PacingConfig
from dialer.pacing.feed import PacerFeed
from dialer.pacing.pacer import Pacer
from dialer.pacing.types import (
    AgentView,
    CallView,
    PacingDecision,
    PacingSnapshot,
    PacingStats,
    Segment,
)
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys
from dialer.store import CallResult, EngineStore, FinishResult, campaign_abandon_stats

log = get_logger("marcador.engine")

#: ChannelId prefix of agents' nailed-up session calls (attempt ids are uuid hex: no clash).
AGENT_SESSION_PREFIX = "agent-"


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


# --------------------------------------------------------------------------- bridge port


@dataclass(frozen=True, slots=True)
class TelephonyItem:
    """One item from the AMI bridge: a tracker output or a raw typed event."""

    server: str
    item: TrackerOutput | AMIEvent


class Telephony(Protocol):
    """What the engine needs from the AMI bridge (implemented in ``ami_bridge.service``)."""

    def server_names(self) -> Sequence[str]: ...

    def link_up(self, server: str) -> bool: ...

    async def originate(
        self, server: str, req: OriginateRequest, *, call_id: str, ring_timeout: timedelta
    ) -> str:
        """Track and send an async Originate. Returns the ActionID; raises AMIError."""
        ...

    async def redirect(self, server: str, channel: str, context: str, exten: str) -> None: ...

    async def hangup(self, server: str, channel: str) -> None: ...

    async def cancel(self, server: str, call_id: str) -> None:
        """Drop a call the dialer no longer wants (outcome CANCELLED if not answered)."""
        ...

    async def next_item(self) -> TelephonyItem: ...

    async def live_channel_ids(self, server: str) -> set[str]:
        """Uniqueids of the channels alive on ``server`` (CoreShowChannels)."""
        ...

    async def spy(self, server: str, supervisor_channel: str, agent_ext: str, mode: str) -> None:
        """Ring the supervisor into ChanSpy on the agent's channel."""
        ...


# --------------------------------------------------------------------------- live state


@dataclass(slots=True)
class LiveCall:
    uuid: str
    campaign_id: int
    lead_id: int
    server: str
    number: str
    attempt_number: int
    dialed_at: datetime
    mode: DialMode
    channel: str | None = None
    answered_at: datetime | None = None
    agent_id: int | None = None
    preview: bool = False


@dataclass(frozen=True, slots=True)
class PreviewOffer:
    lead_id: int
    campaign_id: int
    offered_at: datetime
    deadline: datetime


@dataclass(slots=True)
class CampaignRuntime:
    campaign: Campaign
    pacer: Pacer
    last_decision: PacingDecision | None = None
    stats: PacingStats = field(default_factory=PacingStats)
    stats_at: datetime | None = None
    #: The pacer's only input of samples: the simulator feeds its pacer the same way.
    feed: PacerFeed = field(init=False)

    def __post_init__(self) -> None:
        self.feed = PacerFeed(self.pacer)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    #: Unique per process run: claims and leases are owned by it, so a restarted process
    #: never renews what its dead predecessor held.
    dialer_id: str
    #: Stable name (host or service instance): its command consumer group survives restarts.
    dialer_name: str = ""
    claim_ttl: timedelta = timedelta(seconds=60)
    campaign_lease_ms: int = 15_000
    #: Redis lead lease, in real milliseconds (the SQL claim is the durable guarantee).
    lead_lease_ms: int = 60_000
    max_launch_per_tick: int = 20
    stats_refresh: timedelta = timedelta(seconds=10)
    maintenance_interval: float = 5.0  # seconds of loop time between maintenance rounds
    preview_seconds: timedelta = timedelta(seconds=20)  # countdown on the agent's screen
    preview_auto_call: bool = True  # place the call when the countdown ends
    preview_skip_delay: timedelta = timedelta(minutes=15)
    #: Dial-string template per server (``AsteriskServer.trunk``); {number} is the E.164 number.
    trunks: Mapping[str, str] = field(default_factory=dict)
    default_trunk: str = "PJSIP/{number}@trunk"


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        store: EngineStore,
        redis: aioredis.Redis,
        keys: Keys,
        telephony: Telephony,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.redis = redis
        self.keys = keys
        self.streams = Streams(redis)
        self.leases = Leases(redis)
        self.tel = telephony
        self.clock = clock
        self.calls: dict[str, LiveCall] = {}
        self.agents: dict[int, AgentSession] = {}
        self.agent_channel: dict[str, int] = {}  # agent session channel id -> agent id
        self.agent_server: dict[int, tuple[str, str]] = {}  # agent id -> (server, channel id)
        self.previews: dict[int, PreviewOffer] = {}  # agent id -> lead on their screen
        self.campaigns: dict[int, CampaignRuntime] = {}
        self._server_rr = 0
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ helpers
    def _now(self) -> datetime:
        return self.clock.now()

    async def publish(self, type_: str, data: dict[str, Any]) -> None:
        """Event stream for the API, dashboard and webhooks. Losing Redis loses only this."""
        try:
            await self.streams.add(self.keys.events_stream, type_, data)
        except Exception as exc:  # Redis down: the live view suffers, nothing else
            log.warning("event_publish_failed", type=type_, error=type(exc).__name__)

    def _pick_server(self, campaign: Campaign) -> str | None:
        names = [s for s in self.tel.server_names() if self.tel.link_up(s)]
        wanted = campaign.servers.get("names") if campaign.servers else None
        if wanted:
            names = [s for s in names if s in wanted]
        if not names:
            return None
        self._server_rr = (self._server_rr + 1) % len(names)
        return names[self._server_rr]

    def _campaign_agents(self, campaign_id: int) -> list[AgentSession]:
        return [a for a in self.agents.values() if a.campaign_id == campaign_id and a.is_logged_in]

    # ------------------------------------------------------------------ campaigns
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
            )
            if not owned:
                self.campaigns.pop(cid, None)
                continue
            rt = self.campaigns.get(cid)
            if rt is None:
                self.campaigns[cid] = CampaignRuntime(
                    campaign=camp, pacer=Pacer(pacing_config(camp))
                )
                await self.restore_agents(cid)
            else:
                rt.campaign = camp

    async def step(self) -> None:
        """One pacing round over every owned campaign (called every ~0.5 s)."""
        async with self._lock:
            await self.refresh_campaigns()
            now = self._now()
            await self.store.renew_claims(self.config.dialer_id, now, self.config.claim_ttl)
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
            for a in self._campaign_agents(rt.campaign.id)
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
            await self._offer_previews(rt, now)
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
            if await self._dial_lead(rt, lead_id, now, decision.mode):
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

    def _feed_agent(self, agent: AgentSession) -> None:
        """Report an agent's state to its campaign's pacer feed (talk and wrap-up samples)."""
        rt = self.campaigns.get(agent.campaign_id) if agent.campaign_id is not None else None
        if rt is not None:
            since = agent.since or self._now()
            rt.feed.agent_state(agent.agent_id, agent.state, since.timestamp())

    async def _dial_lead(
        self,
        rt: CampaignRuntime,
        lead_id: int,
        now: datetime,
        mode: DialMode,
        preview_agent: AgentSession | None = None,
    ) -> bool:
        camp = rt.campaign
        server = self._pick_server(camp)
        if server is None:
            return False
        lease_key = self.keys.lead_lease(lead_id)
        ttl_ms = self.config.lead_lease_ms
        if not await self.leases.acquire(lease_key, self.config.dialer_id, ttl_ms):
            return False
        claimed, _ = await self.store.claim(
            lead_id, camp, self.config.dialer_id, now, self.config.claim_ttl
        )
        if not claimed:
            await self.leases.release(lease_key, self.config.dialer_id)
            return False
        return await self._originate_claimed(rt, lead_id, server, now, mode, preview_agent)

    async def _originate_claimed(
        self,
        rt: CampaignRuntime,
        lead_id: int,
        server: str,
        now: datetime,
        mode: DialMode,
        preview_agent: AgentSession | None = None,
    ) -> bool:
        """Write the attempt row, then originate. The lead is already claimed by us."""
        camp = rt.campaign
        lease_key = self.keys.lead_lease(lead_id)
        try:
            info = await self.store.create_attempt(
                lead_id, camp, self.config.dialer_id, server, mode, now
            )
        except (AttemptLimitReached, NoDialablePhone) as exc:
            # Every attempt used, or every phone invalid/DNC/used up: close the lead instead
            # of failing the round (exhausted leads get their WhatsApp fallback).
            log.warning("lead_not_dialable", lead=lead_id, reason=exc.code)
            at_limit = isinstance(exc, AttemptLimitReached)
            message_id = await self.store.close_claimed(
                lead_id,
                LeadStatus.EXHAUSTED if at_limit else LeadStatus.EXCLUDED,
                exc.code,
                now,
            )
            await self.leases.release(lease_key, self.config.dialer_id)
            if message_id is not None:
                await self.publish_whatsapp(message_id, lead_id)
            return False
        except (LookupError, IntegrityError, StaleDataError) as exc:
            # Our claim expired and was taken back meanwhile: nothing was dialed.
            log.warning("claim_lost_before_dial", lead=lead_id, error=type(exc).__name__)
            await self.leases.release(lease_key, self.config.dialer_id)
            return False
        call = LiveCall(
            uuid=info.uuid,
            campaign_id=camp.id,
            lead_id=lead_id,
            server=server,
            number=info.number,
            attempt_number=info.attempt_number,
            dialed_at=now,
            mode=mode,
            preview=preview_agent is not None,
            agent_id=preview_agent.agent_id if preview_agent else None,
        )
        self.calls[info.uuid] = call
        # tag the call with the decision that launched it (preview calls: none)
        decision = rt.last_decision if preview_agent is None else None
        rt.feed.dialed(
            info.uuid,
            Segment(attempt=call.attempt_number, hour=now.hour),
            now.timestamp(),
            decision.reason if decision is not None else None,
        )
        if preview_agent is not None:
            self.agents[preview_agent.agent_id] = preview_agent.reserve(info.uuid, now)
            await self._log_agent(preview_agent.agent_id)
        req = self._originate_request(camp, info.uuid, info.number, lead_id, server, preview_agent)
        try:
            action_id = await self.tel.originate(
                server,
                req,
                call_id=info.uuid,
                ring_timeout=timedelta(seconds=camp.ring_timeout),
            )
        except AMIError as exc:
            # The tracker resolves it (FAILED, not counted); the outcome arrives as CallEnded.
            log.warning("originate_failed", attempt=info.uuid, error=type(exc).__name__)
            return True
        await self.store.mark_dialed(info.uuid, action_id, now)
        await self.publish(
            "call_dialing",
            {"attempt": info.uuid, "campaign_id": camp.id, "lead_id": lead_id, "server": server},
        )
        return True

    # ------------------------------------------------------------------ preview mode
    async def _offer_previews(self, rt: CampaignRuntime, now: datetime) -> None:
        """Preview: every READY agent gets the next lead on screen, with a countdown.

        The lead is claimed while it is on the agent's screen. The agent calls or skips; when
        the countdown ends the call is placed (``preview_auto_call``).
        """
        camp = rt.campaign
        for agent in self._campaign_agents(camp.id):
            offer = self.previews.get(agent.agent_id)
            if offer is not None:
                if now >= offer.deadline and self.config.preview_auto_call:
                    await self.preview_call(agent.agent_id)
                continue
            if not agent.is_available:
                continue
            for lead_id in await self.store.candidate_ids(camp.id, now, 5):
                if not await self.leases.acquire(
                    self.keys.lead_lease(lead_id), self.config.dialer_id, self.config.lead_lease_ms
                ):
                    continue
                claimed, _ = await self.store.claim(
                    lead_id, camp, self.config.dialer_id, now, self.config.claim_ttl
                )
                if not claimed:
                    await self.leases.release(self.keys.lead_lease(lead_id), self.config.dialer_id)
                    continue
                deadline = now + self.config.preview_seconds
                self.previews[agent.agent_id] = PreviewOffer(lead_id, camp.id, now, deadline)
                await self._log_agent(agent.agent_id)
                await self.publish(
                    "preview_offer",
                    {
                        "agent_id": agent.agent_id,
                        "lead_id": lead_id,
                        "campaign_id": camp.id,
                        "deadline": deadline.isoformat(),
                    },
                )
                break

    async def preview_call(self, agent_id: int) -> bool:
        """The agent pressed "Llamar" (or the countdown ended): dial the offered lead."""
        offer = self.previews.pop(agent_id, None)
        agent = self.agents.get(agent_id)
        rt = self.campaigns.get(offer.campaign_id) if offer else None
        if offer is None or agent is None or rt is None or not agent.is_available:
            return False
        server = self._pick_server(rt.campaign)
        if server is None:
            await self.store.release_claim(offer.lead_id)
            return False
        return await self._originate_claimed(
            rt, offer.lead_id, server, self._now(), DialMode.PREVIEW, preview_agent=agent
        )

    async def preview_skip(self, agent_id: int) -> bool:
        """The agent skipped the offered lead: it goes back to the pool, later."""
        offer = self.previews.pop(agent_id, None)
        if offer is None:
            return False
        now = self._now()
        await self.store.skip_lead(offer.lead_id, now, now + self.config.preview_skip_delay)
        await self.leases.release(self.keys.lead_lease(offer.lead_id), self.config.dialer_id)
        await self._log_agent(agent_id)
        return True

    # ------------------------------------------------------------------ supervisor spy
    async def spy(self, agent_id: int, supervisor_extension: str, mode: str) -> None:
        """Ring the supervisor's softphone and ChanSpy on the agent (listen/whisper/barge)."""
        if mode not in dialplan.SPY_MODES:
            raise ValueError(f"unknown spy mode {mode!r}")
        agent = self.agents.get(agent_id)
        session = self.agent_server.get(agent_id)
        if agent is None or session is None or agent.extension is None:
            raise InvalidAgentTransition(agent_id, AgentState.LOGGED_OUT, "be listened to")
        await self.tel.spy(session[0], f"PJSIP/{supervisor_extension}", agent.extension, mode)

    def _originate_request(
        self,
        camp: Campaign,
        attempt_uuid: str,
        number: str,
        lead_id: int,
        server: str,
        preview_agent: AgentSession | None,
    ) -> OriginateRequest:
        trunk = camp.trunk or self.trunk_template(server)
        variables = {
            dialplan.VAR_ATTEMPT: attempt_uuid,
            dialplan.VAR_LEAD: str(lead_id),
            dialplan.VAR_CAMPAIGN: str(camp.id),
            dialplan.VAR_CONNECT_TIMEOUT: f"{camp.connect_timeout:g}",
            dialplan.VAR_AMD: "hangup" if camp.amd_enabled else "off",
        }
        if preview_agent is not None and preview_agent.extension:
            context, exten = dialplan.CTX_PREVIEW, preview_agent.extension
        else:
            context, exten = dialplan.CTX_OUTBOUND, dialplan.EXTEN_START
        return OriginateRequest(
            channel=trunk.format(number=number),
            channel_id=attempt_uuid,
            context=context,
            exten=exten,
            timeout_ms=max(15, camp.ring_timeout) * 1000,
            caller_id=camp.caller_id or None,
            variables=variables,
        )

    def trunk_template(self, server: str) -> str:
        return self.config.trunks.get(server, self.config.default_trunk)

    # ------------------------------------------------------------------ bridge items
    async def handle(self, item: TelephonyItem) -> None:
        it = item.item
        try:
            if isinstance(it, CallAnswered):
                await self._on_answered(item.server, it)
            elif isinstance(it, CallConnected):
                await self._on_connected(it)
            elif isinstance(it, CallEnded):
                await self._on_ended(it)
            elif isinstance(it, CallRinging):
                pass
            elif isinstance(it, ConfbridgeJoin):
                await self._on_room_join(it)
            elif isinstance(it, Hangup):
                await self._on_agent_hangup(it)
        except Exception as exc:
            log.exception("bridge_item_failed", item=type(it).__name__, error=str(exc))

    async def _on_answered(self, server: str, ev: CallAnswered) -> None:
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        call.answered_at = ev.at
        call.channel = ev.channel
        if call.preview:
            return  # the preview dialplan puts the customer straight into the agent's room
        rt = self.campaigns.get(call.campaign_id)
        agent = longest_idle(self._campaign_agents(call.campaign_id))
        if agent is None or ev.channel is None or agent.extension is None:
            # Nobody free: the dialplan's connect_timeout plays the safe-harbor message.
            return
        self.agents[agent.agent_id] = agent.reserve(call.uuid, self._now())
        call.agent_id = agent.agent_id
        try:
            await self.tel.redirect(server, ev.channel, dialplan.CTX_AGENT_ROOM, agent.extension)
        except AMIError as exc:
            log.warning("redirect_failed", attempt=call.uuid, error=type(exc).__name__)
            self.agents[agent.agent_id] = self.agents[agent.agent_id].release_reservation(
                self._now()
            )
            call.agent_id = None
        del rt

    async def _on_connected(self, ev: CallConnected) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or call.agent_id is None:
            return
        agent = self.agents.get(call.agent_id)
        if agent is None:
            return
        now = self._now()
        if call.preview and agent.state is AgentState.READY:
            agent = agent.reserve(call.uuid, now)
        try:
            self.agents[agent.agent_id] = agent.connected(call.uuid, now)
        except InvalidAgentTransition as exc:
            log.warning("connect_mismatch", error=str(exc))
            return
        await self._log_agent(agent.agent_id)
        await self.publish(
            "screen_pop",
            {
                "agent_id": agent.agent_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
            },
        )

    async def _on_ended(self, ev: CallEnded) -> None:
        if ev.call_id.startswith(AGENT_SESSION_PREFIX):  # an agent's nailed-up session ended
            owner = self.agent_channel.pop(ev.call_id, None)
            if owner is not None and owner in self.agents:
                self.agents[owner] = self.agents[owner].logout(self._now())
                self.agent_server.pop(owner, None)
                await self._log_agent(owner)
            return
        call = self.calls.pop(ev.call_id, None)
        now = self._now()
        agent_id = call.agent_id if call else None
        result = CallResult(
            outcome=ev.outcome,
            answered_at=ev.answered_at,
            connected_at=ev.connected_at,
            ended_at=ev.ended_at,
            hangup_cause=ev.hangup_cause,
            originate_reason=ev.originate_reason,
            amd_status=ev.amd_status,
            amd_cause=ev.amd_cause,
            channel=ev.channel,
            detail=ev.detail,
            agent_id=agent_id if ev.outcome is CallOutcome.ANSWERED_CONNECTED else None,
            trunk_failure=ev.outcome in (CallOutcome.FAILED, CallOutcome.CONGESTION)
            and ev.answered_at is None
            and ev.hangup_cause in (None, 0, 34, 38, 41, 42),
        )
        finished = await self.store.finish_attempt(ev.call_id, result, now)
        if call is not None:
            await self.leases.release(self.keys.lead_lease(call.lead_id), self.config.dialer_id)
            rt = self.campaigns.get(call.campaign_id)
            if rt is not None:
                # talk and wrap-up samples come from the agent's states (``_feed_agent``)
                rt.feed.call_ended(
                    ev.call_id, ev.outcome, (ev.answered_at or ev.ended_at).timestamp()
                )
                rt.stats_at = None  # abandon counters changed
        if agent_id is not None:
            await self._agent_call_ended(agent_id, ev, now)
        await self._after_finish(finished, ev)

    async def _agent_call_ended(self, agent_id: int, ev: CallEnded, now: datetime) -> None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        if agent.state is AgentState.IN_CALL:
            rt = self.campaigns.get(agent.campaign_id or -1)
            wrap = rt.campaign.wrap_up_seconds if rt else 30
            self.agents[agent_id] = agent.call_ended(wrap, now)
        elif agent.state is AgentState.RESERVED:
            self.agents[agent_id] = agent.release_reservation(now)
        await self._log_agent(agent_id)

    async def _after_finish(self, finished: FinishResult, ev: CallEnded) -> None:
        if finished.already_finished:
            return
        decision = finished.decision
        await self.publish(
            "call_ended",
            {
                "attempt": finished.attempt_uuid,
                "lead_id": finished.lead_id,
                "campaign_id": finished.campaign_id,
                "outcome": ev.outcome.value,
                "lead_status": decision.lead_status.value if decision else "in_progress",
                "next_attempt_at": str(decision.next_attempt_at) if decision else None,
            },
        )
        if finished.whatsapp_message_id is not None:
            await self.publish_whatsapp(finished.whatsapp_message_id, finished.lead_id)

    async def publish_whatsapp(self, message_id: int, lead_id: int) -> None:
        try:
            await self.streams.add(
                self.keys.whatsapp_stream,
                "lead_exhausted",
                {"message_id": message_id, "lead_id": lead_id},
            )
        except Exception as exc:  # republished from the outbox later
            log.warning("whatsapp_publish_failed", error=type(exc).__name__)

    # ------------------------------------------------------------------ agent sessions
    async def _on_room_join(self, ev: ConfbridgeJoin) -> None:
        agent_id = self.agent_channel.get(ev.uniqueid or "")
        if agent_id is None:
            return
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        self.agents[agent_id] = agent.room_joined_event(ev.uniqueid or "", self._now())
        await self._log_agent(agent_id)

    async def _on_agent_hangup(self, ev: Hangup) -> None:
        agent_id = self.agent_channel.pop(ev.uniqueid or "", None)
        if agent_id is None:
            return
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        self.agents[agent_id] = agent.logout(self._now())
        await self._log_agent(agent_id)
        log.info("agent_channel_hung_up", agent=agent_id)

    async def restore_agents(self, campaign_id: int) -> int:
        """Take over the live agent sessions of a campaign whose dialer died.

        Their nailed-up calls are still in their rooms on the PBX; the Redis agent hash says
        which channel and server. Agents caught mid-call come back in WRAP_UP.
        """
        restored = 0
        try:
            members = await self.redis.smembers(self.keys.agents_online)  # type: ignore[misc]
        except Exception as exc:
            log.warning("agent_restore_failed", error=type(exc).__name__)
            return 0
        now = self._now()
        for raw in members:
            agent_id = int(raw)
            if agent_id in self.agents and self.agents[agent_id].is_logged_in:
                continue
            h = await self.redis.hgetall(self.keys.agent_state(agent_id))  # type: ignore[misc]
            if h.get("campaign_id") != str(campaign_id) or h.get("state") in (None, "logged_out"):
                continue
            channel, server = h.get("channel", ""), h.get("server", "")
            if not channel or not server:
                continue
            state = AgentState(h["state"])
            if state in (AgentState.RESERVED, AgentState.IN_CALL):
                state = AgentState.WRAP_UP
            self.agents[agent_id] = AgentSession(
                agent_id=agent_id,
                state=state,
                since=now,
                extension=h.get("extension") or None,
                campaign_id=campaign_id,
                pause_code=h.get("pause_code") or None,
                session_channel=channel,
                room_joined=True,
                ready_since=now if state is AgentState.READY else None,
                wrap_deadline=now if state is AgentState.WRAP_UP else None,
            )
            self.agent_channel[channel] = agent_id
            self.agent_server[agent_id] = (server, channel)
            restored += 1
            await self._log_agent(agent_id)
        if restored:
            log.info("agents_restored", campaign=campaign_id, count=restored)
        return restored

    async def agent_login(self, agent_id: int, extension: str, campaign_id: int) -> None:
        now = self._now()
        previous = self.agents.get(agent_id) or AgentSession(agent_id)
        agent = previous.login(extension, campaign_id, now)  # validates first
        server = next((s for s in self.tel.server_names() if self.tel.link_up(s)), None)
        if server is None:
            raise AMIError("no Asterisk link is up: cannot call the agent's softphone")
        self.agents[agent_id] = agent
        channel_id = f"{AGENT_SESSION_PREFIX}{agent_id}-{uuidlib.uuid4().hex[:12]}"
        self.agent_channel[channel_id] = agent_id
        self.agent_server[agent_id] = (server, channel_id)
        req = OriginateRequest(
            channel=f"PJSIP/{extension}",
            channel_id=channel_id,
            context=dialplan.CTX_AGENT,
            exten=extension,
            timeout_ms=30_000,
            caller_id='"Marcador" <0>',
            variables={},
        )
        try:
            await self.tel.originate(
                server, req, call_id=channel_id, ring_timeout=timedelta(seconds=30)
            )
        except AMIError:
            self.agents[agent_id] = previous  # nothing changed: the agent may try again
            self.agent_channel.pop(channel_id, None)
            self.agent_server.pop(agent_id, None)
            raise
        await self._log_agent(agent_id)

    async def agent_command(self, agent_id: int, action: str, **kw: Any) -> None:
        now = self._now()
        agent = self.agents.get(agent_id)
        if agent is None:
            raise InvalidAgentTransition(agent_id, AgentState.LOGGED_OUT, action)
        if action == "ready":
            agent = agent.ready(now)
        elif action == "pause":
            agent = agent.pause(str(kw.get("code", "break")), now)
        elif action == "dispositioned":
            agent = agent.dispositioned(now, pause_code=kw.get("pause_code"))
        elif action == "logout":
            agent = agent.logout(now)
            offer = self.previews.pop(agent_id, None)
            if offer is not None:
                await self.store.release_claim(offer.lead_id)
            session = self.agent_server.pop(agent_id, None)
            if session is not None:
                server, channel_id = session
                self.agent_channel.pop(channel_id, None)
                try:  # hang up the nailed-up call: the softphone is free again
                    await self.tel.cancel(server, channel_id)
                except AMIError as exc:
                    log.warning("agent_hangup_failed", agent=agent_id, error=type(exc).__name__)
        else:
            raise ValueError(f"unknown agent action {action!r}")
        self.agents[agent_id] = agent
        await self._log_agent(agent_id)

    async def _log_agent(self, agent_id: int) -> None:
        agent = self.agents[agent_id]
        self._feed_agent(agent)
        now = self._now()
        state = {
            "state": agent.state.value,
            "since": (agent.since or now).isoformat(),
            "extension": agent.extension or "",
            "campaign_id": str(agent.campaign_id or ""),
            "pause_code": agent.pause_code or "",
            "attempt": agent.call_attempt or "",
            "preview_lead": str(self.previews[agent_id].lead_id)
            if agent_id in self.previews
            else "",
            "preview_deadline": (
                self.previews[agent_id].deadline.isoformat() if agent_id in self.previews else ""
            ),
            "server": self.agent_server.get(agent_id, ("", ""))[0],
            "channel": self.agent_server.get(agent_id, ("", ""))[1],
        }
        try:
            await self.redis.hset(self.keys.agent_state(agent_id), mapping=state)  # type: ignore[misc]
            if agent.is_logged_in:
                await self.redis.sadd(self.keys.agents_online, str(agent_id))  # type: ignore[misc]
            else:
                await self.redis.srem(self.keys.agents_online, str(agent_id))  # type: ignore[misc]
        except Exception as exc:
            log.warning("agent_state_publish_failed", error=type(exc).__name__)
        async with self.store.sm.begin() as s:
            open_row = await s.scalar(
                AgentStateLog.__table__.select()
                .where(AgentStateLog.user_id == agent_id, AgentStateLog.ended_at.is_(None))
                .with_only_columns(AgentStateLog.id)
            )
            if open_row is not None:
                row = await s.get(AgentStateLog, open_row)
                if row is not None:
                    if row.state is agent.state and row.pause_code == agent.pause_code:
                        return
                    row.ended_at = now
            if agent.state is not AgentState.LOGGED_OUT:
                s.add(
                    AgentStateLog(
                        user_id=agent_id,
                        campaign_id=agent.campaign_id,
                        state=agent.state,
                        pause_code=agent.pause_code,
                        started_at=now,
                    )
                )
        await self.publish("agent_state", {"agent_id": agent_id, **state})

    # ------------------------------------------------------------------ commands
    def _is_mine(self, entry: StreamEntry) -> bool:
        """Every dialer reads every command; only the one that owns its subject acts.

        ``agent_login`` belongs to the dialer that owns the campaign (lease); every other agent
        command to the dialer holding that agent's session; ``hangup_call`` to the dialer with
        that call.
        """
        d = entry.data
        try:
            if entry.type == "agent_login":
                return int(d["campaign_id"]) in self.campaigns
            if entry.type == "hangup_call":
                return str(d.get("attempt")) in self.calls
            if "agent_id" in d:
                return int(d["agent_id"]) in self.agents
        except (TypeError, ValueError):
            return False
        return False

    async def handle_command(self, entry: StreamEntry) -> None:
        d = entry.data
        if not self._is_mine(entry):
            return
        try:
            if entry.type == "agent_login":
                await self.agent_login(
                    int(d["agent_id"]), str(d["extension"]), int(d["campaign_id"])
                )
            elif entry.type in (
                "agent_ready",
                "agent_pause",
                "agent_logout",
                "agent_dispositioned",
            ):
                action = entry.type.removeprefix("agent_")
                extra = {k: v for k, v in d.items() if k != "agent_id"}
                await self.agent_command(int(d["agent_id"]), action, **extra)
            elif entry.type == "preview_call":
                await self.preview_call(int(d["agent_id"]))
            elif entry.type == "preview_skip":
                await self.preview_skip(int(d["agent_id"]))
            elif entry.type == "spy":
                await self.spy(int(d["agent_id"]), str(d["supervisor_extension"]), str(d["mode"]))
            elif entry.type == "hangup_call":
                call = self.calls.get(str(d["attempt"]))
                if call is not None and call.channel:
                    await self.tel.hangup(call.server, call.channel)
            else:
                log.warning("unknown_command", type=entry.type)
        except (InvalidAgentTransition, KeyError, ValueError, AMIError) as exc:
            log.warning("command_rejected", type=entry.type, error=str(exc))
            await self.publish("command_rejected", {"command": entry.type, "error": str(exc), **d})

    async def maintenance(self) -> None:
        """Recover what dead dialers left: expired claims and orphaned attempts.

        The WhatsApp outbox is re-published once when a dialer starts (``marcador dialer``);
        after that the worker's own sweep picks up queued rows whose stream entry was lost, so
        the stream is not flooded with a copy of every queued row on each round.
        """
        now = self._now()
        await self.reconcile_orphans(now)
        released = await self.store.release_expired_claims(now)
        if released:
            await self.leases.force_release(*(self.keys.lead_lease(i) for i in released))
            log.info("expired_claims_released", count=len(released))

    async def reconcile_orphans(self, now: datetime) -> int:
        """Resolve attempts whose dialer died before their outcome.

        An attempt still alive on its PBX is left alone (checked again next round); one that
        is gone is resolved FAILED "lost", and **counted** against the limits, because the
        customer's phone may have rung: a limit is never exceeded.
        """
        live: dict[str, set[str]] = {}
        resolved = 0
        for uuid, server in await self.store.orphan_attempts(now):
            if uuid in self.calls:
                continue
            if server not in live:
                if not self.tel.link_up(server):
                    continue  # can't tell yet
                try:
                    live[server] = await self.tel.live_channel_ids(server)
                except AMIError:
                    continue
            if uuid in live[server]:
                continue
            finished = await self.store.finish_attempt(
                uuid,
                CallResult(
                    CallOutcome.FAILED,
                    ended_at=now,
                    detail="lost: its dialer stopped before the outcome",
                    counts=True,
                ),
                now,
            )
            if not finished.already_finished:
                resolved += 1
                await self.leases.force_release(self.keys.lead_lease(finished.lead_id))
                if finished.whatsapp_message_id is not None:
                    await self.publish_whatsapp(finished.whatsapp_message_id, finished.lead_id)
        if resolved:
            log.warning("orphan_attempts_resolved", count=resolved)
        return resolved

    async def republish_outbox(self) -> int:
        """Re-publish queued WhatsApp fallbacks (after a crash or a Redis loss)."""
        count = 0
        for msg in await self.store.queued_whatsapp():
            if msg.lead_id is not None:
                await self.publish_whatsapp(msg.id, msg.lead_id)
                count += 1
        return count

    # ------------------------------------------------------------------ run loop
    async def run(self, stop: asyncio.Event, tick: float = 0.5) -> None:
        await self.streams.ensure_group(self.keys.commands_stream, self.command_group, "$")
        tasks = [
            asyncio.create_task(self._bridge_loop(stop), name="bridge"),
            asyncio.create_task(self._command_loop(stop), name="commands"),
        ]
        last_maintenance = -1e9
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                await self.step()
                if loop.time() - last_maintenance >= self.config.maintenance_interval:
                    last_maintenance = loop.time()
                    try:
                        await self.maintenance()
                    except Exception as exc:
                        log.exception("maintenance_failed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _bridge_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            item = await self.tel.next_item()
            await self.handle(item)

    @property
    def command_group(self) -> str:
        """This dialer's own consumer group: it sees every command (fan-out)."""
        return f"{self.keys.dialer_group}:{self.config.dialer_name or self.config.dialer_id}"

    async def _command_loop(self, stop: asyncio.Event) -> None:
        consumer = self.config.dialer_id
        stream, group = self.keys.commands_stream, self.command_group
        while not stop.is_set():
            try:
                entries = await self.streams.read_group(stream, group, consumer, block_ms=500)
            except Exception as exc:
                log.warning("command_read_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for entry in entries:
                await self.handle_command(entry)
                await self.streams.ack(stream, group, entry.id)
