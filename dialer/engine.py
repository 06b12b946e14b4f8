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

Concurrency on that path (docs/benchmarks.md, "Real PBX"): the agent reservation and the call
assignment are decided synchronously, before any ``await`` (:meth:`Engine._connect`); the Redirect
then runs in a background task the engine owns (:meth:`Engine._spawn`), so one slow AMI Response
or SQL write never delays another call's connect. Agent state writes (Redis hash, SQL
``agent_state_log``) take a snapshot synchronously and are written in order per agent by a lane
(:meth:`Engine._in_lane`): rows never swap even when written from different tasks.
:meth:`Engine.drain` waits for all of it (tests, shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid as uuidlib
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from ami_bridge import dialplan
from ami_bridge.actions import ChannelInfo, OriginateRequest, spy_agent
from ami_bridge.errors import AMIError
from ami_bridge.events import AMIEvent, ConfbridgeJoin, Hangup
from ami_bridge.tracker import (
    CallAbandoning,
    CallAnswered,
    CallConnected,
    CallEnded,
    CallHeld,
    CallRinging,
    TrackerOutput,
)
from dialer.db.models import AgentStateLog, Campaign, Lead
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
from dialer.recordings import RecordingKeeper, RecordingPaths, recording_variables
from dialer.redis_client import StreamEntry, Streams
from dialer.redis_keys import Keys
from dialer.store import CallResult, EngineStore, FinishResult, Orphan, campaign_abandon_stats

log = get_logger("marcador.engine")

#: ChannelId prefix of agents' nailed-up session calls (attempt ids are uuid hex: no clash).
AGENT_SESSION_PREFIX = "agent-"
#: ChannelId prefix of supervisors' listen/whisper/barge calls.
SPY_PREFIX = "spy-"
#: A command about a subject no dialer holds yet (a campaign just started, an agent being
#: restored) is retried this long (real seconds) before it is refused with a reason.
COMMAND_RETRY_S = 20.0
#: Commands older than this (real seconds, from their stream id) are refused, not replayed.
COMMAND_MAX_AGE_S = 120.0
#: How long a command's result stays readable (``Keys.command_result``).
COMMAND_RESULT_TTL_S = 300


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

    async def stop_recording(self, server: str, channel: str) -> None:
        """StopMixMonitor on the customer's channel (the recording keeps what came before)."""
        ...

    async def cancel(self, server: str, call_id: str) -> None:
        """Drop a call the dialer no longer wants (outcome CANCELLED if not answered)."""
        ...

    async def confbridge_mute(
        self, server: str, conference: str, channel: str, *, mute: bool
    ) -> None:
        """ConfbridgeMute / ConfbridgeUnmute of ``channel`` in ``conference``."""
        ...

    async def play_dtmf(self, server: str, channel: str, digits: str) -> None:
        """PlayDTMF of each digit toward ``channel``'s far end."""
        ...

    async def next_item(self) -> TelephonyItem: ...

    async def live_channel_ids(self, server: str) -> set[str]:
        """Uniqueids of the channels alive on ``server`` (CoreShowChannels)."""
        ...

    async def live_channels(self, server: str) -> list[ChannelInfo]:
        """Every channel alive on ``server``, with where it is (CoreShowChannels)."""
        ...

    def adopt(
        self,
        server: str,
        call_id: str,
        *,
        uniqueid: str,
        channel: str,
        answered_at: datetime | None,
        conference: str | None,
        connected_at: datetime | None,
    ) -> None:
        """Have the call tracker follow a live call a dead dialer originated."""
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
    #: reached marcador-hold: the dialplan's verdict, the customer waits for an agent
    held_at: datetime | None = None
    #: the safe-harbor path started, or a Redirect failed: no agent may be given to it
    unroutable: bool = False
    #: agent call controls (:meth:`Engine.call_control`): on hold since, seconds held so far,
    #: the agent muted toward the customer
    on_hold_since: datetime | None = None
    hold_seconds: float = 0.0
    muted: bool = False
    #: followed after a dialer restart: a mute set before it is unknown here
    adopted: bool = False

    @property
    def waiting_in_hold(self) -> bool:
        return self.held_at is not None and self.agent_id is None and not self.unroutable


@dataclass(slots=True)
class SpySession:
    """A supervisor listening to (whispering to, barging into) one agent's current call.

    ``ChanSpy``'s ``E`` option only ends with the agent's channel, which is their nailed-up
    session: the spy would follow the agent into the next customer's call. So the spy belongs
    to the spied call (``attempt``): the dialer hangs the supervisor's channel up when that call
    ends, when the supervisor stops it, or when they start another one (one spy each).
    """

    supervisor: str  # "user:<id>" (or "ext:<extension>" for commands without a user id)
    spy_id: str  # ChannelId of the supervisor's call (tracked by the call tracker)
    server: str
    agent_id: int
    attempt: str  # the spied call
    mode: str
    supervisor_extension: str
    campaign_id: int | None
    command_id: str = ""
    answered: bool = False
    stopping: str | None = None  # why the dialer hung it up (call_ended, stopped, replaced)

    def event(self, **extra: Any) -> dict[str, Any]:
        # "spied_agent_id", not "agent_id": the agent's own screen must not receive these.
        return {
            "spy": self.spy_id,
            "supervisor": self.supervisor,
            "spied_agent_id": self.agent_id,
            "attempt": self.attempt,
            "mode": self.mode,
            "campaign_id": self.campaign_id,
            "command_id": self.command_id,
            **extra,
        }


#: Agent call controls (``call_control`` command, ``POST /agent/call/<action>``).
CALL_CONTROLS = ("hangup", "mute", "unmute", "hold", "resume", "dtmf")
#: DTMF digits an agent may send, and how many at once.
DTMF_DIGITS = frozenset("0123456789*#ABCD")
DTMF_MAX = 32


class CallControlRefused(ValueError):
    """A call control the agent's state does not allow; ``code`` goes to the agent (409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SpyRefused(ValueError):
    """A spy request the dialer cannot act on; ``code`` goes to the supervisor."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def spy_key(supervisor_id: object, supervisor_extension: str) -> str:
    """Who holds a spy: one spy per supervisor user (or per extension, for old commands)."""
    if supervisor_id not in (None, ""):
        return f"user:{supervisor_id}"
    return f"ext:{supervisor_extension}"


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
    #: Agent phone dial-string per server (``AsteriskServer.agent_channel``); {extension}.
    agent_channels: Mapping[str, str] = field(default_factory=dict)
    default_agent_channel: str = "PJSIP/{extension}"
    #: Call recording (docs/recording.md); None: campaigns' record_calls is ignored.
    recording: RecordingPaths | None = None
    #: On shutdown, Redirects in flight and queued state writes get this long (real seconds)
    #: to end before they are cancelled.
    shutdown_grace: float = 5.0


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
        self.spies: dict[str, str] = {}  # supervisor key -> ChannelId of their current spy
        self.spy_calls: dict[str, SpySession] = {}  # spy ChannelId -> session (until it ends)
        self.agent_room_channel: dict[int, str] = {}  # agent id -> channel name in their room
        self.campaigns: dict[int, CampaignRuntime] = {}
        self._server_rr = 0
        self._lock = asyncio.Lock()
        self.recordings = (
            RecordingKeeper(store.sm, config.recording) if config.recording is not None else None
        )
        self._recording_tasks: set[asyncio.Task[None]] = set()
        #: leads claimed for nothing at the last maintenance round (:meth:`release_idle_claims`)
        self._idle_claims: set[int] = set()
        #: background work (Redirects, state writes): awaited or cancelled by :meth:`drain`
        self._tasks: set[asyncio.Task[None]] = set()
        #: last task of each ordered lane (``agent:<id>``): the next one waits for it
        self._lanes: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------ background work
    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` in a task the engine owns: its exception is logged, never lost."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("background_task_failed", task=name, error=str(exc))
            finally:
                coro.close()  # cancelled before it started: no "never awaited" warning

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _in_lane(self, lane: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Like :meth:`_spawn`, but after the lane's previous task (FIFO per lane)."""
        prev = self._lanes.get(lane)

        async def after() -> None:
            try:
                if prev is not None and not prev.done():
                    await asyncio.wait([prev])  # its failure or cancellation is not ours
                await coro
            finally:
                coro.close()

        task = self._spawn(after(), lane)
        self._lanes[lane] = task

        def forget(t: asyncio.Task[None]) -> None:
            if self._lanes.get(lane) is t:
                del self._lanes[lane]

        task.add_done_callback(forget)
        return task

    async def drain(self, within: float | None = None) -> bool:
        """Wait for the background work, including what it starts; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            _, pending = await asyncio.wait(set(self._tasks), timeout=left)
            if pending and deadline is not None and loop.time() >= deadline:
                return False
        return True

    async def _cancel_background(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
            ) or await self._take_from_predecessor(self.keys.campaign_lease(cid))
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

    async def _take_from_predecessor(self, key: str) -> bool:
        """Take a lease an earlier (dead) run of this dialer still holds, without waiting for
        it to expire: a restarted dialer resumes its campaigns and agents at once."""
        prefix = self._predecessor_prefix()
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
    async def spy(
        self,
        agent_id: int,
        supervisor_extension: str,
        mode: str,
        *,
        supervisor_id: object = None,
        command_id: str = "",
    ) -> SpySession:
        """Ring the supervisor's softphone into ChanSpy on the agent's current call.

        Refused (:class:`SpyRefused`) unless the agent is on a call. A supervisor's earlier spy
        is hung up first (one at a time). The Originate is tracked: a refusal by Asterisk raises
        here; a later failure (no answer, unregistered phone) and the end arrive as the spy
        call's ``CallEnded`` (events ``spy_failed`` / ``spy_ended``).
        """
        if mode not in dialplan.SPY_MODES:
            raise ValueError(f"unknown spy mode {mode!r}")
        agent = self.agents.get(agent_id)
        session = self.agent_server.get(agent_id)
        if agent is None or session is None or agent.extension is None:
            raise SpyRefused("agent_not_logged_in", f"agent {agent_id} is not logged in here")
        attempt = agent.call_attempt
        if agent.state is not AgentState.IN_CALL or attempt is None:
            raise SpyRefused("agent_not_in_call", f"agent {agent_id} is not on a call")
        variables = {dialplan.VAR_SPY_AGENT: spy_agent(agent.extension)}  # validates first
        key = spy_key(supervisor_id, supervisor_extension)
        await self.stop_spy(key, "replaced")
        server = session[0]
        spy = SpySession(
            supervisor=key,
            spy_id=f"{SPY_PREFIX}{uuidlib.uuid4().hex}",
            server=server,
            agent_id=agent_id,
            attempt=attempt,
            mode=mode,
            supervisor_extension=supervisor_extension,
            campaign_id=agent.campaign_id,
            command_id=command_id,
        )
        # The supervisor's phone is dialled like an agent's (AsteriskServer.agent_channel:
        # PJSIP/{extension} in production, a Local channel for lab virtual phones).
        template = self.config.agent_channels.get(server, self.config.default_agent_channel)
        req = OriginateRequest(
            channel=template.format(extension=supervisor_extension),
            channel_id=spy.spy_id,
            context=dialplan.CTX_SPY,
            exten=dialplan.spy_exten(mode),
            timeout_ms=30_000,
            caller_id='"Marcador" <0>',
            variables=variables,
        )
        self.spies[key] = spy.spy_id
        self.spy_calls[spy.spy_id] = spy
        try:
            await self.tel.originate(
                server, req, call_id=spy.spy_id, ring_timeout=timedelta(seconds=30)
            )
        except AMIError:
            self.spy_calls.pop(spy.spy_id, None)
            if self.spies.get(key) == spy.spy_id:
                del self.spies[key]
            raise
        await self.publish("spy_ringing", spy.event())
        return spy

    async def stop_spy(self, key: str, reason: str) -> bool:
        """Hang up supervisor ``key``'s spy, if any (``spy_ended`` follows with ``reason``)."""
        spy_id = self.spies.pop(key, None)
        spy = self.spy_calls.get(spy_id or "")
        if spy is None:
            return False
        spy.stopping = reason
        try:
            await self.tel.cancel(spy.server, spy.spy_id)
        except AMIError as exc:
            log.warning("spy_hangup_failed", spy=spy.spy_id, error=type(exc).__name__)
        return True

    async def _end_spies_on(self, attempt: str) -> None:
        """The spied customer left: their call ended. Its spies end with it."""
        for spy in [s for s in self.spy_calls.values() if s.attempt == attempt]:
            if spy.stopping is None:
                await self.stop_spy(spy.supervisor, "call_ended")

    async def _on_spy_call(self, ev: CallAnswered | CallEnded) -> None:
        spy = self.spy_calls.get(ev.call_id)
        if spy is None:
            return
        if isinstance(ev, CallAnswered):
            spy.answered = True
            await self.publish("spy_started", spy.event())
            return
        del self.spy_calls[ev.call_id]
        if self.spies.get(spy.supervisor) == spy.spy_id:
            del self.spies[spy.supervisor]
        if ev.answered_at is None and spy.stopping is None:
            # never reached the supervisor: unregistered or busy phone, no answer, refusal
            await self.publish("spy_failed", spy.event(reason=ev.detail))
        else:
            await self.publish("spy_ended", spy.event(reason=spy.stopping or "hung_up"))

    async def _spy_command(self, entry: StreamEntry) -> None:
        d = entry.data
        key = spy_key(d.get("supervisor_id"), str(d.get("supervisor_extension", "")))
        if entry.type == "spy_stop":
            await self.stop_spy(key, "stopped")
            return
        agent_id = int(d["agent_id"])
        if agent_id not in self.agents:  # another dialer starts it: ours (if any) is replaced
            await self.stop_spy(key, "replaced")
            return
        base = {
            "command_id": entry.id,
            "supervisor": key,
            "spied_agent_id": agent_id,
            "campaign_id": self.agents[agent_id].campaign_id,
            "mode": d.get("mode"),
        }
        try:
            await self.spy(
                agent_id,
                str(d["supervisor_extension"]),
                str(d["mode"]),
                supervisor_id=d.get("supervisor_id"),
                command_id=entry.id,
            )
        except SpyRefused as exc:
            await self.publish("spy_failed", {**base, "code": exc.code, "reason": str(exc)})
        except (AMIError, ValueError) as exc:  # e.g. "Extension does not exist."
            log.warning("spy_failed", error=str(exc))
            await self.publish("spy_failed", {**base, "code": "pbx_refused", "reason": str(exc)})

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
        variables.update(recording_variables(camp, attempt_uuid, self.config.recording))
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
            if isinstance(it, CallAnswered | CallEnded) and it.call_id.startswith(SPY_PREFIX):
                await self._on_spy_call(it)
            elif isinstance(it, CallAnswered):
                await self._on_answered(it)
            elif isinstance(it, CallHeld):
                await self._on_held(item.server, it)
            elif isinstance(it, CallAbandoning):
                await self._on_abandoning(it)
            elif isinstance(it, CallConnected):
                await self._on_connected(it)
            elif isinstance(it, CallEnded):
                await self._end_spies_on(it.call_id)  # the spied customer left the room
                await self._on_ended(it)
            elif isinstance(it, CallRinging):
                pass
            elif isinstance(it, ConfbridgeJoin):
                await self._on_room_join(it)
            elif isinstance(it, Hangup):
                await self._on_agent_hangup(it)
        except Exception as exc:
            log.exception("bridge_item_failed", item=type(it).__name__, error=str(exc))

    async def _on_answered(self, ev: CallAnswered) -> None:
        """The customer picked up. Not yet a connect decision: ``AMD()`` may still be listening.

        The dialer connects on :class:`CallHeld` (the leg reached ``marcador-hold``), never on
        the bare answer: a Redirect now would cut AMD short and put machines through.
        """
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        call.answered_at = ev.at
        call.channel = ev.channel or call.channel

    async def _on_held(self, server: str, ev: CallHeld) -> None:
        """The dialplan's verdict: the customer waits in hold. Give them the longest-idle agent;
        with none free they wait, and the first agent to become READY takes the oldest one
        (:meth:`_agent_ready`) until the dialplan's connect timeout plays the safe harbor."""
        call = self.calls.get(ev.call_id)
        if call is None or call.preview:
            return
        if call.answered_at is None:
            call.answered_at = ev.at
        call.held_at = ev.at
        call.channel = ev.channel or call.channel
        agent = longest_idle(self._campaign_agents(call.campaign_id))
        if agent is None:
            log.info("call_waiting_in_hold", attempt=call.uuid)
            return
        await self._connect(call, agent)

    async def _connect(self, call: LiveCall, agent: AgentSession) -> bool:
        """Reserve ``agent`` for ``call`` and Redirect the customer into the agent's room.

        Both are decided before the first ``await`` (here: none at all): no other task can pick
        the same agent or the same call meanwhile. The Redirect runs in a background task
        (:meth:`_redirect`), so the next tracker item does not wait for its AMI Response.
        """
        if call.channel is None or agent.extension is None or not agent.is_available:
            return False
        self.agents[agent.agent_id] = agent.reserve(call.uuid, self._now())
        call.agent_id = agent.agent_id
        self._log_agent_soon(agent.agent_id)
        self._spawn(
            self._redirect(call, call.channel, agent.agent_id, agent.extension),
            f"redirect:{call.uuid}",
        )
        return True

    async def _redirect(self, call: LiveCall, channel: str, agent_id: int, extension: str) -> None:
        """Send the Redirect of a reserved call. Whatever happened while it was in flight (the
        call ended, the safe harbor started, the agent logged out or took another call) was
        handled by its own item: a failure only undoes what still belongs to this call."""
        try:
            await self.tel.redirect(call.server, channel, dialplan.CTX_AGENT_ROOM, extension)
        except AMIError as exc:
            log.warning("redirect_failed", attempt=call.uuid, error=type(exc).__name__)
            if call.agent_id == agent_id:
                call.agent_id = None
            call.unroutable = True  # gone or unreachable: do not offer it to the next agent
            current = self.agents.get(agent_id)
            if (
                current is not None
                and current.state is AgentState.RESERVED
                and current.call_attempt == call.uuid
            ):
                self.agents[agent_id] = current.release_reservation(self._now())
                self._log_agent_soon(agent_id)
                await self._agent_ready(agent_id)

    async def _on_abandoning(self, ev: CallAbandoning) -> None:
        """The safe-harbor path started (hold timeout, or the agent's room was empty).

        A Redirect that lost the race with the timeout lands in ``marcador-agent-room``, whose
        first check sends a customer with ``MARCADOR_ABANDONED=1`` back to the safe harbor: the
        reserved agent will never see them, so the reservation is released now.
        """
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        call.unroutable = True
        agent_id, call.agent_id = call.agent_id, None
        if agent_id is None:
            return
        agent = self.agents.get(agent_id)
        if (
            agent is not None
            and agent.state is AgentState.RESERVED
            and agent.call_attempt == call.uuid
        ):
            self.agents[agent_id] = agent.release_reservation(self._now())
            log.info("reservation_released_safe_harbor", attempt=call.uuid, agent=agent_id)
            await self._log_agent(agent_id)
            await self._agent_ready(agent_id)

    async def _agent_ready(self, agent_id: int) -> None:
        """Agent ``agent_id`` may have just become READY: give them the oldest customer of
        their campaign waiting in hold, if any (design.md §4)."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.is_available or agent.campaign_id is None:
            return
        waiting = [
            c
            for c in self.calls.values()
            if c.campaign_id == agent.campaign_id and c.waiting_in_hold and not c.preview
        ]
        if not waiting:
            return
        call = min(waiting, key=lambda c: (c.held_at, c.dialed_at, c.uuid))
        log.info("waiting_call_to_ready_agent", attempt=call.uuid, agent=agent_id)
        await self._connect(call, agent)

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
        self._log_agent_soon(agent.agent_id)
        # Off the bridge loop, in the call's lane: ``_on_ended`` waits for it before it
        # finishes the attempt, so the rows stay in order.
        self._in_lane(f"call:{call.uuid}", self._record_connect(call, agent.agent_id, ev.at))

    async def _record_connect(self, call: LiveCall, agent_id: int, at: datetime) -> None:
        try:  # durable evidence of the connect: a dialer killed mid-call can't lose it
            await self.store.mark_connected(call.uuid, agent_id, call.answered_at, at)
        except Exception as exc:
            log.warning("connect_record_failed", attempt=call.uuid, error=type(exc).__name__)
        recording = await self._recording_started(call, agent_id, at)
        await self.publish(
            "screen_pop",
            {
                "agent_id": agent_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "recording": recording,
            },
        )

    async def _on_ended(self, ev: CallEnded) -> None:
        if ev.call_id.startswith(AGENT_SESSION_PREFIX):  # an agent's nailed-up session ended
            owner = self.agent_channel.pop(ev.call_id, None)
            if owner is not None and owner in self.agents:
                await self._leave_wrap_up(self.agents[owner])
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
        connect_record = self._lanes.get(f"call:{ev.call_id}")
        if connect_record is not None:  # the connect's row first (``_record_connect``)
            await asyncio.wait([connect_record])
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
        if call is not None and agent_id is not None:
            await self._controls_at_call_end(call, agent_id, now)
        if agent_id is not None:
            await self._agent_call_ended(agent_id, ev, now)
        if ev.connected_at is not None:
            self._recording_finished(ev.call_id)
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
        await self._agent_ready(agent_id)

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
                "end_reason": ev.end_reason or "",
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
        self.agent_room_channel[agent_id] = ev.channel
        self.agents[agent_id] = agent.room_joined_event(ev.uniqueid or "", self._now())
        await self._log_agent(agent_id)
        await self._agent_ready(agent_id)

    async def _on_agent_hangup(self, ev: Hangup) -> None:
        agent_id = self.agent_channel.pop(ev.uniqueid or "", None)
        if agent_id is None:
            return
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        await self._leave_wrap_up(agent)
        self.agents[agent_id] = agent.logout(self._now())
        await self._log_agent(agent_id)
        log.info("agent_channel_hung_up", agent=agent_id)

    async def restore_agents(self, campaign_id: int) -> int:
        """Take over the live agent sessions of a campaign whose dialer died.

        Evidence (docs/reliability.md, "Restart evidence"): the Redis agent hash says which
        session channel on which server, the state and the call; the PBX (CoreShowChannels)
        says whether that session channel is still up (if not, the agent is logged out); the
        database says what became of the call. The state is made consistent with the call:
        an unresolved call keeps the agent on it (reconcile then adopts or resolves it); a
        connected call without a disposition gives WRAP_UP on that call (its lead stays
        claimed, by this dialer now); no call, or one already dispositioned or not theirs,
        gives READY. Pause codes are kept.
        """
        restored = 0
        try:
            members = await self.redis.smembers(self.keys.agents_online)  # type: ignore[misc]
        except Exception as exc:
            log.warning("agent_restore_failed", error=type(exc).__name__)
            return 0
        now = self._now()
        snapshots: dict[str, list[ChannelInfo] | None] = {}
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
            chans = await self._pbx_channels(server, snapshots)
            if chans is not None and not any(c.uniqueid == channel for c in chans):
                # The phone hung up while no dialer ran: the session is over.
                self.agents[agent_id] = AgentSession(agent_id)
                await self._log_agent(agent_id)
                log.info("agent_session_gone_on_restore", agent=agent_id)
                continue
            state, attempt = await self._restored_state(
                agent_id, AgentState(h["state"]), h.get("attempt") or None, now
            )
            rt = self.campaigns.get(campaign_id)
            wrap = rt.campaign.wrap_up_seconds if rt else 30
            self.agents[agent_id] = AgentSession(
                agent_id=agent_id,
                state=state,
                since=now,
                extension=h.get("extension") or None,
                campaign_id=campaign_id,
                pause_code=(h.get("pause_code") or None) if state is AgentState.PAUSED else None,
                session_channel=channel,
                room_joined=True,
                call_attempt=attempt,
                ready_since=now if state is AgentState.READY else None,
                wrap_deadline=now + timedelta(seconds=wrap)
                if state is AgentState.WRAP_UP
                else None,
            )
            self.agent_channel[channel] = agent_id
            self.agent_server[agent_id] = (server, channel)
            restored += 1
            await self._log_agent(agent_id)
        if restored:
            log.info("agents_restored", campaign=campaign_id, count=restored)
        return restored

    async def _restored_state(
        self, agent_id: int, state: AgentState, attempt: str | None, now: datetime
    ) -> tuple[AgentState, str | None]:
        """The state a restored agent resumes in, from their call's record (see above)."""
        if state in (AgentState.READY, AgentState.PAUSED):
            return state, None
        status = await self.store.call_status(attempt) if attempt else None
        if status is None:  # no call on record: a call awaiting their disposition?
            found = await self.store.awaiting_disposition(agent_id, now - timedelta(hours=12))
            status = await self.store.call_status(found) if found else None
            if status is None:
                return AgentState.READY, None
        if status.outcome is None:  # still unresolved: reconcile adopts or resolves it
            kept = AgentState.RESERVED if state is AgentState.RESERVED else AgentState.IN_CALL
            return kept, status.uuid
        if (
            status.outcome is CallOutcome.ANSWERED_CONNECTED
            and status.agent_id == agent_id
            and not status.disposed
        ):
            await self.store.take_claim(
                status.lead_id, self.config.dialer_id, now, self.config.claim_ttl
            )
            return AgentState.WRAP_UP, status.uuid
        return AgentState.READY, None

    async def _leave_wrap_up(self, agent: AgentSession) -> None:
        """An agent logs out in WRAP_UP without a disposition: their call's lead must not stay
        claimed (``in_progress``) for a disposition that will not come. It returns to the pool
        (the contact-frequency rules defer it); a late disposition still decides it."""
        if agent.state is not AgentState.WRAP_UP or not agent.call_attempt:
            return
        status = await self.store.call_status(agent.call_attempt)
        if status is None or status.disposed:
            return
        await self.store.release_claim(status.lead_id)
        await self.leases.force_release(self.keys.lead_lease(status.lead_id))
        log.info("wrap_up_left_without_disposition", agent=agent.agent_id, lead=status.lead_id)

    async def _pbx_channels(
        self, server: str, cache: dict[str, list[ChannelInfo] | None]
    ) -> list[ChannelInfo] | None:
        """CoreShowChannels of ``server`` (once per round), or None when it can't be asked."""
        if server not in cache:
            chans: list[ChannelInfo] | None = None
            if self.tel.link_up(server):
                try:
                    chans = await self.tel.live_channels(server)
                except AMIError as exc:
                    log.warning("pbx_channels_failed", server=server, error=type(exc).__name__)
            cache[server] = chans
        return cache[server]

    def _session_channels(
        self, chans: Sequence[ChannelInfo], agent_id: int, extension: str | None
    ) -> list[ChannelInfo]:
        """The agent's session calls on the PBX: theirs by ChannelId (``agent-<id>-…``,
        whichever dialer run placed it), or a login call to the extension (``marcador-agent``
        context) that is no other agent's session."""
        prefix = f"{AGENT_SESSION_PREFIX}{agent_id}-"
        found = [
            c
            for c in chans
            if c.uniqueid.startswith(prefix)
            or (
                extension
                and c.context == dialplan.CTX_AGENT
                and c.exten == extension
                and not c.uniqueid.startswith(AGENT_SESSION_PREFIX)
            )
        ]
        names = {c.channel for c in found}
        # A Local channel's ;2 leg goes with its ;1 leg: hang up only the ;1.
        return [
            c for c in found if not (c.channel.endswith(";2") and c.channel[:-1] + "1" in names)
        ]

    async def _hangup_sessions(
        self, agent_id: int, extension: str | None, keep: str | None = None
    ) -> int:
        """Hang up every session call of the agent found on the PBX (all linked servers)."""
        count = 0
        cache: dict[str, list[ChannelInfo] | None] = {}
        for server in self.tel.server_names():
            chans = await self._pbx_channels(server, cache)
            for c in self._session_channels(chans or [], agent_id, extension):
                if c.uniqueid == keep:
                    continue
                self.agent_channel.pop(c.uniqueid, None)
                try:
                    await self.tel.hangup(server, c.channel)
                    count += 1
                except AMIError as exc:
                    log.warning("agent_hangup_failed", agent=agent_id, error=type(exc).__name__)
        if count:
            log.info("agent_session_calls_hung_up", agent=agent_id, count=count)
        return count

    async def agent_login(self, agent_id: int, extension: str, campaign_id: int) -> None:
        now = self._now()
        previous = self.agents.get(agent_id) or AgentSession(agent_id)
        agent = previous.login(extension, campaign_id, now)  # validates first
        server = next((s for s in self.tel.server_names() if self.tel.link_up(s)), None)
        if server is None:
            raise AMIError("no Asterisk link is up: cannot call the agent's softphone")
        # A leftover session call (a dialer killed before the logout, a login retried) would
        # keep the phone busy and the room's party count above 0: end it first.
        await self._hangup_sessions(agent_id, agent.extension)
        self.agents[agent_id] = agent
        channel_id = f"{AGENT_SESSION_PREFIX}{agent_id}-{uuidlib.uuid4().hex[:12]}"
        self.agent_channel[channel_id] = agent_id
        self.agent_server[agent_id] = (server, channel_id)
        template = self.config.agent_channels.get(server, self.config.default_agent_channel)
        req = OriginateRequest(
            channel=template.format(extension=extension),
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
            pause_code = kw.get("pause_code")
            if agent.state is AgentState.READY:
                # Restored READY after a restart: the disposition was already on record.
                if pause_code:
                    agent = agent.pause(str(pause_code), now)
            else:
                agent = agent.dispositioned(now, pause_code=pause_code)
        elif action == "logout":
            previous_ext = agent.extension
            await self._leave_wrap_up(agent)
            agent = agent.logout(now)
            offer = self.previews.pop(agent_id, None)
            if offer is not None:
                await self.store.release_claim(offer.lead_id)
            session = self.agent_server.pop(agent_id, None)
            if session is not None:
                self.agent_channel.pop(session[1], None)
            # Hang up the session call(s) the PBX has, not only the one in memory: after a
            # restart the tracker does not know the call, and a retried login may have left one.
            found = await self._hangup_sessions(agent_id, agent.extension or previous_ext)
            if session is not None and not found:
                try:  # PBX listing unavailable: hang up what the tracker knows
                    await self.tel.cancel(*session)
                except AMIError as exc:
                    log.warning("agent_hangup_failed", agent=agent_id, error=type(exc).__name__)
        else:
            raise ValueError(f"unknown agent action {action!r}")
        self.agents[agent_id] = agent
        await self._log_agent(agent_id)
        if action in ("ready", "dispositioned"):
            await self._agent_ready(agent_id)

    # ------------------------------------------------------------------ agent call controls
    def _call_flags(self, agent: AgentSession) -> dict[str, str]:
        """What the agent's live state shows about their call's controls (supervisor view)."""
        call = self.calls.get(agent.call_attempt or "") if agent.call_attempt else None
        if call is None or agent.state is not AgentState.IN_CALL:
            return {"on_hold_since": "", "muted": "", "hold_seconds": ""}
        return {
            "on_hold_since": call.on_hold_since.isoformat() if call.on_hold_since else "",
            "muted": "1" if call.muted else "",
            "hold_seconds": f"{call.hold_seconds:.1f}" if call.hold_seconds else "",
        }

    def _controlled_call(self, agent_id: int, attempt: str | None) -> tuple[AgentSession, LiveCall]:
        """The agent's connected call, or :class:`CallControlRefused` with a code."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.is_logged_in:
            raise CallControlRefused("not_logged_in", "the agent is not logged in")
        if agent.state is not AgentState.IN_CALL or agent.call_attempt is None:
            raise CallControlRefused("not_in_call", f"no call to control ({agent.state.value})")
        if attempt and attempt != agent.call_attempt:
            raise CallControlRefused("stale_call", "that call is no longer the agent's call")
        call = self.calls.get(agent.call_attempt)
        if call is None or call.channel is None or agent.extension is None:
            raise CallControlRefused("call_gone", "the call has ended")
        return agent, call

    async def _cancel_ringing(self, agent_id: int, attempt: str | None) -> bool:
        """Hang up while the agent's own preview / manual call still rings (RESERVED): the
        call is cancelled (CANCELLED if unanswered) and the reservation goes with its end."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.RESERVED or not agent.call_attempt:
            return False
        call = self.calls.get(agent.call_attempt)
        if call is None or not call.preview or (attempt and attempt != call.uuid):
            return False
        await self.tel.cancel(call.server, call.uuid)
        log.info("call_control", agent=agent_id, attempt=call.uuid, action="hangup")
        await self._record_control(call, agent_id, "hangup", self._now(), {"ringing": True})
        return True

    async def _agent_room_channel(self, agent_id: int, server: str) -> str:
        """The agent's channel name in their room (for ConfbridgeMute): from their
        ConfbridgeJoin, else the PBX's channel list (a dialer restarted meanwhile)."""
        name = self.agent_room_channel.get(agent_id)
        if name:
            return name
        session = self.agent_server.get(agent_id)
        if session is not None:
            for c in await self.tel.live_channels(server):
                if c.uniqueid == session[1]:
                    self.agent_room_channel[agent_id] = c.channel
                    return c.channel
        raise CallControlRefused("agent_channel_unknown", "the agent's room channel is unknown")

    async def call_control(
        self, agent_id: int, action: str, *, attempt: str | None = None, digits: str = ""
    ) -> None:
        """An agent's control of their connected call, through AMI on the nailed-up design
        (design.md §3; docs/web.md "Call controls"):

        * ``hangup``: Hangup of the customer's channel; the agent stays in the room and the
          call ends as usual (WRAP_UP).
        * ``mute`` / ``unmute``: ConfbridgeMute / ConfbridgeUnmute of the agent's channel in
          their room: the customer (and anyone else in the room) stops hearing the agent.
        * ``hold`` / ``resume``: Redirect of the customer to ``marcador-onhold`` (music on hold)
          and back into ``marcador-agent-room``; the hold time is summed on the call.
        * ``dtmf``: PlayDTMF of ``digits`` toward the customer (a company's IVR).

        Each is allowed only IN_CALL on the agent's current call (:class:`CallControlRefused`
        with a code otherwise) and goes to the lead's history and the audit log.
        """
        if action not in CALL_CONTROLS:
            raise CallControlRefused("unknown_control", f"unknown call control {action!r}")
        if action == "hangup" and await self._cancel_ringing(agent_id, attempt):
            return
        agent, call = self._controlled_call(agent_id, attempt)
        channel, ext, now = call.channel, agent.extension, self._now()
        assert channel is not None and ext is not None  # checked by _controlled_call
        detail: dict[str, Any] = {}
        if action == "hangup":
            await self.tel.hangup(call.server, channel)
            if call.on_hold_since is not None:
                detail["held_seconds"] = round((now - call.on_hold_since).total_seconds(), 1)
        elif action in ("mute", "unmute"):
            mute = action == "mute"
            if call.muted == mute:
                code = "already_muted" if mute else "not_muted"
                raise CallControlRefused(
                    code, f"the agent is {'already ' if mute else 'not '}muted"
                )
            room_channel = await self._agent_room_channel(agent_id, call.server)
            await self.tel.confbridge_mute(
                call.server, dialplan.agent_room(ext), room_channel, mute=mute
            )
            call.muted = mute
        elif action == "hold":
            if call.on_hold_since is not None:
                raise CallControlRefused("already_on_hold", "the customer is already on hold")
            await self.tel.redirect(call.server, channel, dialplan.CTX_ONHOLD, ext)
            call.on_hold_since = now
        elif action == "resume":
            if call.on_hold_since is None:
                raise CallControlRefused("not_on_hold", "the customer is not on hold")
            await self.tel.redirect(call.server, channel, dialplan.CTX_AGENT_ROOM, ext)
            held = (now - call.on_hold_since).total_seconds()
            call.hold_seconds += held
            call.on_hold_since = None
            detail = {"held_seconds": round(held, 1), "hold_seconds": round(call.hold_seconds, 1)}
        else:  # dtmf
            digits = digits.strip().upper()
            if not digits or len(digits) > DTMF_MAX or not set(digits) <= DTMF_DIGITS:
                raise CallControlRefused(
                    "invalid_digits", f"send 1-{DTMF_MAX} of 0-9 * # A-D, not {digits[:8]!r}"
                )
            await self.tel.play_dtmf(call.server, channel, digits)
            detail["digits"] = len(digits)  # how many, not which: they may be an account PIN
        log.info("call_control", agent=agent_id, attempt=call.uuid, action=action)
        await self._record_control(call, agent_id, action, now, detail)
        await self._log_agent(agent_id)
        await self.publish(
            "call_control",
            {
                "agent_id": agent_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "action": action,
                "on_hold": call.on_hold_since is not None,
                "muted": call.muted,
            },
        )

    async def transfer(self, agent_id: int, target_id: int, *, attempt: str | None = None) -> None:
        """Blind transfer of the agent's connected call to another READY agent of the campaign.

        The customer is Redirected into the target's room (``marcador-agent-room,<ext>``); the
        target goes IN_CALL on that call (screen-pop: the same lead and history) and owns its
        disposition (``CallAttempt.agent_id``); the transferring agent is READY at once, with
        no disposition to give. An open hold is closed, the transferring agent unmuted, and
        supervisors spying on them are hung up (their spy belongs to the call).
        """
        agent, call = self._controlled_call(agent_id, attempt)
        target = self.agents.get(target_id)
        if target_id == agent_id or target is None or target.campaign_id != agent.campaign_id:
            raise CallControlRefused("target_unavailable", "no such agent in your campaign")
        if not target.is_available or target.extension is None:
            raise CallControlRefused("target_unavailable", "that agent is not ready")
        if target_id in self.previews:
            raise CallControlRefused("target_unavailable", "that agent has a preview on screen")
        channel, now = call.channel, self._now()
        assert channel is not None
        self.agents[target_id] = target.reserve(call.uuid, now)  # before any await
        try:
            await self.tel.redirect(call.server, channel, dialplan.CTX_AGENT_ROOM, target.extension)
        except AMIError:
            current = self.agents.get(target_id)
            if current is not None and current.state is AgentState.RESERVED:
                self.agents[target_id] = current.release_reservation(self._now())
            raise
        reserved = self.agents[target_id]
        self.agents[target_id] = reserved.connected(call.uuid, now)
        call.agent_id = target_id
        detail: dict[str, Any] = {"from_agent": agent_id, "to_agent": target_id}
        if call.on_hold_since is not None:
            held = (now - call.on_hold_since).total_seconds()
            call.hold_seconds += held
            call.on_hold_since = None
            detail["held_seconds"] = round(held, 1)
        was_muted, call.muted = call.muted, False
        current = self.agents[agent_id]
        self.agents[agent_id] = current.call_ended(0, now).dispositioned(now)
        log.info("call_transferred", attempt=call.uuid, agent=agent_id, to=target_id)
        await self._end_spies_on(call.uuid)
        try:
            await self.store.transfer_attempt(call.uuid, target_id)
        except Exception as exc:
            log.warning("transfer_record_failed", attempt=call.uuid, error=type(exc).__name__)
        await self._record_control(call, agent_id, "transfer", now, detail)
        if was_muted and agent.extension and agent_id in self.agent_room_channel:
            try:
                await self.tel.confbridge_mute(
                    call.server,
                    dialplan.agent_room(agent.extension),
                    self.agent_room_channel[agent_id],
                    mute=False,
                )
            except AMIError as exc:
                log.warning("agent_unmute_failed", agent=agent_id, error=type(exc).__name__)
        await self._log_agent(target_id)
        await self._log_agent(agent_id)
        await self.publish(
            "screen_pop",
            {
                "agent_id": target_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "transferred_from": agent_id,
            },
        )
        await self.publish(
            "call_control",
            {
                "agent_id": agent_id,
                "attempt": call.uuid,
                "lead_id": call.lead_id,
                "campaign_id": call.campaign_id,
                "action": "transfer",
                "to_agent": target_id,
            },
        )
        await self._agent_ready(agent_id)

    async def manual_dial(self, agent_id: int, lead_id: int) -> str:
        """The agent dials a lead of their campaign by hand (a callback, a preview they chose).

        Allowed READY or PAUSED (not while connecting), with no call and no preview on screen.
        Every rule the dialer applies still applies: the lead is claimed through the same
        :meth:`EngineStore.claim` (``evaluate_readiness``, what ``lead explain`` prints), and a
        refusal carries its reasons (code ``not_eligible``). The call is then placed like a
        preview call: the answered customer goes straight into the agent's room. Returns the
        attempt uuid.
        """
        agent = self.agents.get(agent_id)
        if agent is None or not agent.is_logged_in:
            raise CallControlRefused("not_logged_in", "the agent is not logged in")
        busy = agent.state not in (AgentState.READY, AgentState.PAUSED)
        if busy or not agent.room_joined or agent.pause_code == "connecting":
            raise CallControlRefused("agent_busy", f"cannot dial now ({agent.state.value})")
        if agent_id in self.previews:
            raise CallControlRefused("preview_pending", "call or skip the lead on screen first")
        rt = self.campaigns.get(agent.campaign_id or -1)
        if rt is None:
            raise CallControlRefused(
                "campaign_not_running", "this dialer does not run the campaign"
            )
        async with self.store.sm() as s:
            lead = await s.get(Lead, lead_id)
            lead_campaign = lead.campaign_id if lead is not None else None
        if lead_campaign != rt.campaign.id:
            raise CallControlRefused("lead_not_in_campaign", "the lead is not in your campaign")
        server = self._pick_server(rt.campaign)
        if server is None:
            raise CallControlRefused("no_pbx", "no Asterisk link is up")
        now = self._now()
        lease_key = self.keys.lead_lease(lead_id)
        if not await self.leases.acquire(
            lease_key, self.config.dialer_id, self.config.lead_lease_ms
        ):
            raise CallControlRefused("lead_busy", "the lead is being dialed right now")
        claimed, readiness = await self.store.claim(
            lead_id, rt.campaign, self.config.dialer_id, now, self.config.claim_ttl
        )
        if not claimed:
            await self.leases.release(lease_key, self.config.dialer_id)
            if readiness is None:
                raise CallControlRefused("lead_busy", "the lead is claimed or closed")
            raise CallControlRefused(
                "not_eligible",
                f"{readiness.summary_es()} [{', '.join(r.code.value for r in readiness.failed)}]",
            )
        agent = self.agents.get(agent_id)
        if agent is not None and agent.state is AgentState.PAUSED and agent.room_joined:
            agent = agent.ready(now)  # no await until the call reserves the agent
        if agent is None or not agent.is_available:
            await self.store.release_claim(lead_id)
            await self.leases.release(lease_key, self.config.dialer_id)
            raise CallControlRefused("agent_busy", "the agent took another call meanwhile")
        # Held RESERVED (no attempt yet) while the attempt row is written: no customer waiting
        # in hold can be given to this agent meanwhile; _originate_claimed reserves for real.
        self.agents[agent_id] = agent.reserve("", now)
        if not await self._originate_claimed(
            rt, lead_id, server, now, DialMode.PREVIEW, preview_agent=agent
        ):
            self.agents[agent_id] = agent
            await self._log_agent(agent_id)
            raise CallControlRefused("not_dialable", "the lead has no dialable phone left")
        attempt = self.agents[agent_id].call_attempt or ""
        call = self.calls.get(attempt)
        if call is not None:
            await self._record_control(call, agent_id, "manual_dial", now, {})
        return attempt

    async def _record_control(
        self, call: LiveCall, agent_id: int, action: str, now: datetime, detail: dict[str, Any]
    ) -> None:
        try:
            await self.store.record_call_control(
                attempt_uuid=call.uuid,
                lead_id=call.lead_id,
                agent_id=agent_id,
                action=action,
                now=now,
                detail=detail,
            )
        except Exception as exc:  # the control happened: its record must not undo it
            log.warning("call_control_record_failed", attempt=call.uuid, error=type(exc).__name__)

    async def _controls_at_call_end(self, call: LiveCall, agent_id: int, now: datetime) -> None:
        """The call ended: close an open hold (its time is recorded), and unmute the agent,
        whose room channel outlives the call (the next customer must hear them)."""
        if call.on_hold_since is not None:
            held = (now - call.on_hold_since).total_seconds()
            call.hold_seconds += held
            call.on_hold_since = None
            await self._record_control(
                call,
                agent_id,
                "hold_ended",
                now,
                {"held_seconds": round(held, 1), "hold_seconds": round(call.hold_seconds, 1)},
            )
        if call.muted or call.adopted:  # adopted: a mute from before the restart is unknown
            call.muted = False
            agent = self.agents.get(agent_id)
            name = self.agent_room_channel.get(agent_id)
            if name is None and agent is not None and call.adopted:
                with contextlib.suppress(CallControlRefused, AMIError):
                    name = await self._agent_room_channel(agent_id, call.server)
            if agent is not None and agent.extension and name:
                try:
                    await self.tel.confbridge_mute(
                        call.server, dialplan.agent_room(agent.extension), name, mute=False
                    )
                except AMIError as exc:
                    log.warning("agent_unmute_failed", agent=agent_id, error=type(exc).__name__)

    async def _log_agent(self, agent_id: int) -> None:
        """Publish agent ``agent_id``'s current state and log it; returns once written."""
        await asyncio.shield(self._log_agent_soon(agent_id))

    def _log_agent_soon(self, agent_id: int) -> asyncio.Task[None]:
        """Snapshot agent ``agent_id``'s state now; write it (Redis, ``agent_state_log``, the
        ``agent_state`` event) in the agent's lane, after the writes queued before it."""
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
            **self._call_flags(agent),
        }
        return self._in_lane(
            f"agent:{agent_id}", self._write_agent_state(agent_id, agent, state, now)
        )

    async def _write_agent_state(
        self, agent_id: int, agent: AgentSession, state: dict[str, str], now: datetime
    ) -> None:
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
            if entry.type in ("spy", "spy_stop"):  # the agent's dialer, or the spy's holder
                key = spy_key(d.get("supervisor_id"), str(d.get("supervisor_extension", "")))
                return key in self.spies or int(d.get("agent_id") or -1) in self.agents
            if entry.type == "agent_login":
                return int(d["campaign_id"]) in self.campaigns
            if entry.type == "hangup_call":
                return str(d.get("attempt")) in self.calls
            if "agent_id" in d:  # a logged-out session left in memory is nobody's
                agent = self.agents.get(int(d["agent_id"]))
                return agent is not None and agent.is_logged_in
        except (TypeError, ValueError):
            return False
        return False

    async def handle_command(self, entry: StreamEntry) -> bool:
        """Act on a command this dialer owns, or refuse it with a reason.

        Returns False when the command is not this dialer's (yet): the caller retries it for
        a while (:data:`COMMAND_RETRY_S`), then :meth:`refuse_unowned`. Every command acted on
        or refused gets a result (``Keys.command_result``, and a ``command_result`` event)
        that the API shows.
        """
        d = entry.data
        if not self._is_mine(entry):
            return False
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
            elif entry.type in ("spy", "spy_stop"):
                await self._spy_command(entry)
            elif entry.type == "manual_dial":
                await self.manual_dial(int(d["agent_id"]), int(d["lead_id"]))
            elif entry.type == "call_control" and d.get("action") == "transfer":
                await self.transfer(
                    int(d["agent_id"]),
                    int(d["target_agent_id"]),
                    attempt=str(d.get("attempt") or "") or None,
                )
            elif entry.type == "call_control":
                await self.call_control(
                    int(d["agent_id"]),
                    str(d.get("action", "")),
                    attempt=str(d.get("attempt") or "") or None,
                    digits=str(d.get("digits") or ""),
                )
            elif entry.type == "recording_stop":
                await self.stop_recording(int(d["agent_id"]), d.get("by"))
            elif entry.type == "hangup_call":
                call = self.calls.get(str(d["attempt"]))
                if call is not None and call.channel:
                    await self.tel.hangup(call.server, call.channel)
            else:
                log.warning("unknown_command", type=entry.type)
                await self._command_result(entry, "rejected", "unknown_command", entry.type)
                return True
        except CallControlRefused as exc:
            log.info("call_control_refused", code=exc.code, error=str(exc))
            await self._command_result(entry, "rejected", exc.code, str(exc))
            return True
        except (InvalidAgentTransition, KeyError, ValueError, AMIError) as exc:
            log.warning("command_rejected", type=entry.type, error=str(exc))
            await self.publish("command_rejected", {"command": entry.type, "error": str(exc), **d})
            await self._command_result(entry, "rejected", type(exc).__name__, str(exc))
            return True
        await self._command_result(entry, "accepted")
        return True

    async def refuse_unowned(self, entry: StreamEntry, reason: str | None = None) -> None:
        """No dialer took the command in time: refuse it (unless another dialer acted)."""
        d = entry.data
        if reason is None:
            if entry.type == "agent_login":
                reason = f"no dialer runs campaign {d.get('campaign_id')} (is it started?)"
            elif "agent_id" in d:
                reason = "no dialer holds this agent's session (log in again)"
            else:
                reason = "no dialer holds the subject of this command"
        try:
            if await self.redis.exists(self.keys.command_result(entry.id)):
                return  # another dialer acted on it (fan-out: every dialer sees every command)
        except Exception as exc:
            log.warning("command_result_failed", error=type(exc).__name__)
            return
        log.warning("command_not_owned", type=entry.type, reason=reason)
        await self._command_result(entry, "rejected", "not_owned", reason, only_if_new=True)

    async def _command_result(
        self,
        entry: StreamEntry,
        status: str,
        code: str = "",
        message: str = "",
        *,
        only_if_new: bool = False,
    ) -> None:
        """Publish what became of a command: the first refusal, or any dialer's action, wins."""
        body = {
            "command_id": entry.id,
            "command": entry.type,
            "status": status,
            "code": code,
            "message": message[:300],
            "dialer": self.config.dialer_id,
            "agent_id": entry.data.get("agent_id"),
        }
        try:
            written = await self.redis.set(
                self.keys.command_result(entry.id),
                json.dumps(body),
                ex=COMMAND_RESULT_TTL_S,
                nx=only_if_new,
            )
        except Exception as exc:
            log.warning("command_result_failed", error=type(exc).__name__)
            return
        if written:
            await self.publish("command_result", body)

    # ------------------------------------------------------------------ recording (issue 16)
    async def _recording_started(self, call: LiveCall, agent_id: int, now: datetime) -> bool:
        """Register the recording row of a connected call; never fails the call."""
        if self.recordings is None:
            return False
        try:
            return await self.recordings.started(call.uuid, agent_id, now) is not None
        except Exception as exc:  # the call goes on whatever happens to the bookkeeping
            log.warning("recording_register_failed", attempt=call.uuid, error=type(exc).__name__)
            return False

    def _recording_finished(self, attempt: str) -> None:
        """Finalise the file in the background (Asterisk closes it just after the hang-up)."""
        if self.recordings is None:
            return
        keeper = self.recordings

        async def run() -> None:
            try:
                await keeper.finished(attempt, self._now())
            except Exception as exc:
                log.warning("recording_finalise_failed", attempt=attempt, error=type(exc).__name__)

        task = asyncio.create_task(run(), name=f"recording-{attempt}")
        self._recording_tasks.add(task)
        task.add_done_callback(self._recording_tasks.discard)

    async def stop_recording(self, agent_id: int, by: object = None) -> bool:
        """The agent's "stop recording" (the customer objects): StopMixMonitor on the
        customer's channel; the file keeps what came before. Audited on the recording row."""
        agent = self.agents.get(agent_id)
        call = self.calls.get(agent.call_attempt or "") if agent is not None else None
        if call is None or not call.channel or self.recordings is None:
            raise ValueError("no recorded call to stop")
        await self.tel.stop_recording(call.server, call.channel)
        user = int(str(by)) if by is not None and str(by).isdigit() else agent_id
        await self.recordings.stopped(call.uuid, user, self._now())
        await self.publish("recording_stopped", {"agent_id": agent_id, "attempt": call.uuid})
        return True

    async def maintenance(self) -> None:
        """Recover what dead dialers left: expired claims and orphaned attempts.

        The WhatsApp outbox is re-published once when a dialer starts (``marcador dialer``);
        after that the worker's own sweep picks up queued rows whose stream entry was lost, so
        the stream is not flooded with a copy of every queued row on each round.
        """
        now = self._now()
        await self.reconcile_orphans(now)
        if self.recordings is not None:  # recordings a dead dialer left unfinalised
            await self.recordings.sweep(now)
        released = await self.store.release_expired_claims(now)
        if released:
            await self.leases.force_release(*(self.keys.lead_lease(i) for i in released))
            log.info("expired_claims_released", count=len(released))
        await self.release_idle_claims()

    async def release_idle_claims(self) -> list[int]:
        """Claims this dialer keeps renewing for nothing: every attempt of the lead has its
        outcome, and no call, preview or agent of this dialer is busy with it (e.g. the agent
        who owed the disposition was logged out on a path that did not free the lead). Seen
        idle in two rounds in a row (a lead being claimed right now is not yet in
        ``self.calls``), such a lead goes back to the pool; a late disposition still decides it.
        """
        busy_leads = {c.lead_id for c in self.calls.values()}
        busy_leads |= {p.lead_id for p in self.previews.values()}
        busy_attempts = {a.call_attempt for a in self.agents.values() if a.call_attempt}
        idle = {
            lead_id
            for lead_id, uuid in await self.store.settled_claims(self.config.dialer_id)
            if lead_id not in busy_leads and (uuid is None or uuid not in busy_attempts)
        }
        stale, self._idle_claims = idle & self._idle_claims, idle - self._idle_claims
        for lead_id in sorted(stale):
            await self.store.release_claim(lead_id)
            await self.leases.force_release(self.keys.lead_lease(lead_id))
            log.info("idle_claim_released", lead=lead_id)
        return sorted(stale)

    def _predecessor_prefix(self) -> str:
        """Claim-owner prefix of earlier runs of this dialer (``<name>.``): they are dead."""
        name = self.config.dialer_name
        return f"{name}." if name and self.config.dialer_id.startswith(f"{name}.") else ""

    async def reconcile_orphans(self, now: datetime) -> int:
        """Rebuild what became of the attempts a dead dialer left unresolved.

        Orphans are unresolved attempts whose claim expired, or is held by an earlier run of
        this dialer (so a restart reconciles at once). For each, the PBX is asked
        (CoreShowChannels; the attempt id is the channel's Uniqueid):

        * still up: the call is **adopted**: the tracker follows it to its end, a call sitting
          in an agent's room (``marcador-agent-room``/``agent-<ext>``) is connected to that
          agent, who gets their wrap-up and disposition as usual;
        * gone: it gets the best outcome the evidence supports (:meth:`_evidence`):
          connected to an agent (database, or the agent's live state) -> ANSWERED_CONNECTED
          with that agent, who gets WRAP_UP for it, and the lead waits for the disposition;
          nothing known -> FAILED "lost", **counted** (the phone may have rung).

        Returns the number resolved.
        """
        resolved = 0
        cache: dict[str, list[ChannelInfo] | None] = {}
        for orphan in await self.store.unresolved_attempts(now, self._predecessor_prefix()):
            if orphan.uuid in self.calls or orphan.claim_owner == self.config.dialer_id:
                continue
            chans = await self._pbx_channels(orphan.server, cache)
            if chans is None:
                continue  # can't tell yet
            live = next((c for c in chans if c.uniqueid == orphan.uuid), None)
            if live is not None:
                await self._adopt(orphan, live, now)
                continue
            result = await self._evidence(orphan, now)
            finished = await self.store.finish_attempt(orphan.uuid, result, now)
            if finished.already_finished:
                continue
            resolved += 1
            await self._settle_orphan(orphan, result, now)
            await self.publish(
                "call_ended",
                {
                    "attempt": orphan.uuid,
                    "lead_id": orphan.lead_id,
                    "campaign_id": orphan.campaign_id,
                    "outcome": result.outcome.value,
                    "lead_status": (
                        finished.decision.lead_status.value if finished.decision else "in_progress"
                    ),
                    "next_attempt_at": (
                        str(finished.decision.next_attempt_at) if finished.decision else None
                    ),
                },
            )
            if finished.whatsapp_message_id is not None:
                await self.publish_whatsapp(finished.whatsapp_message_id, finished.lead_id)
        if resolved:
            log.warning("orphan_attempts_resolved", count=resolved)
        return resolved

    async def _evidence(self, orphan: Orphan, now: datetime) -> CallResult:
        """The best outcome the evidence supports for a call that ended unseen."""
        agent_id, connected_at, source = orphan.agent_id, orphan.connected_at, "database"
        if connected_at is None:  # the agent's live state: in a call with this attempt
            agent_id, connected_at = await self._agent_on_call(orphan.uuid, now)
            source = "agent state"
        if connected_at is not None:
            return CallResult(
                CallOutcome.ANSWERED_CONNECTED,
                answered_at=orphan.answered_at or connected_at,
                connected_at=connected_at,
                ended_at=now,
                detail=f"ended while no dialer followed it; connected to an agent ({source})",
                agent_id=agent_id,
            )
        return CallResult(
            CallOutcome.FAILED,
            ended_at=now,
            detail="lost: its dialer stopped before the outcome",
            counts=True,
        )

    async def _agent_on_call(self, uuid: str, now: datetime) -> tuple[int | None, datetime | None]:
        """(agent, connect time) of an agent whose live state shows them IN_CALL on ``uuid``."""
        for agent in self.agents.values():
            if agent.call_attempt == uuid and agent.state is AgentState.IN_CALL:
                return agent.agent_id, agent.since or now
        try:
            members = await self.redis.smembers(self.keys.agents_online)  # type: ignore[misc]
            for raw in members:
                h = await self.redis.hgetall(self.keys.agent_state(int(raw)))  # type: ignore[misc]
                if h.get("attempt") == uuid and h.get("state") == AgentState.IN_CALL.value:
                    since = h.get("since") or ""
                    try:
                        at = datetime.fromisoformat(since)
                    except ValueError:
                        at = now
                    return int(raw), at
        except Exception as exc:  # Redis lost: only the database's evidence remains
            log.warning("agent_state_read_failed", error=type(exc).__name__)
        return None, None

    async def _settle_orphan(self, orphan: Orphan, result: CallResult, now: datetime) -> None:
        """The agent and the lead after an orphan's outcome: wrap-up on a connected call."""
        agent = self.agents.get(result.agent_id or -1)
        if (
            result.outcome is CallOutcome.ANSWERED_CONNECTED
            and agent is not None
            and agent.is_logged_in
        ):
            # The lead waits for this agent's disposition: hold its claim meanwhile.
            await self.store.take_claim(
                orphan.lead_id, self.config.dialer_id, now, self.config.claim_ttl
            )
            rt = self.campaigns.get(agent.campaign_id or -1)
            wrap = rt.campaign.wrap_up_seconds if rt else 30
            self.agents[agent.agent_id] = replace(
                agent,
                state=AgentState.WRAP_UP,
                since=now,
                call_attempt=orphan.uuid,
                ready_since=None,
                pause_code=None,
                wrap_deadline=now + timedelta(seconds=wrap),
            )
            await self._log_agent(agent.agent_id)
            return
        await self.leases.force_release(self.keys.lead_lease(orphan.lead_id))
        for other in list(self.agents.values()):
            if other.call_attempt == orphan.uuid and other.state in (
                AgentState.RESERVED,
                AgentState.IN_CALL,
            ):
                self.agents[other.agent_id] = replace(
                    other, state=AgentState.READY, since=now, ready_since=now, call_attempt=None
                )
                await self._log_agent(other.agent_id)

    async def _adopt(self, orphan: Orphan, live: ChannelInfo, now: datetime) -> None:
        """Follow a dead dialer's call that is still up on the PBX, to its end."""
        answered = live.channel_state == 6  # Up
        room = None
        on_hold = False
        if live.context == dialplan.CTX_AGENT_ROOM and live.exten:
            room = dialplan.agent_room(live.exten)
        elif live.context == dialplan.CTX_ONHOLD and live.exten:
            # The agent had put the customer on hold (call controls): still that agent's call.
            room, on_hold = dialplan.agent_room(live.exten), True
        elif live.application == "ConfBridge" and live.application_data.startswith(
            dialplan.ROOM_PREFIX
        ):
            room = live.application_data.split(",", 1)[0]
        ext = dialplan.agent_of_room(room) if room else None
        agent = next(
            (
                a
                for a in self.agents.values()
                if a.is_logged_in and ext is not None and a.extension == ext
            ),
            None,
        )
        agent_id = agent.agent_id if agent else (orphan.agent_id if room else None)
        connected_at = (orphan.connected_at or now) if room else None
        answered_at = (orphan.answered_at or connected_at or now) if answered else None
        try:
            self.tel.adopt(
                orphan.server,
                orphan.uuid,
                uniqueid=live.uniqueid,
                channel=live.channel,
                answered_at=answered_at,
                conference=room,
                connected_at=connected_at,
            )
        except AMIError as exc:  # already tracked (a reconnect's own reconcile): leave it
            log.warning("adopt_failed", attempt=orphan.uuid, error=str(exc))
            return
        self.calls[orphan.uuid] = LiveCall(
            uuid=orphan.uuid,
            campaign_id=orphan.campaign_id,
            lead_id=orphan.lead_id,
            server=orphan.server,
            number=orphan.number,
            attempt_number=orphan.attempt_number,
            dialed_at=orphan.created_at,
            mode=orphan.mode,
            channel=live.channel,
            answered_at=answered_at,
            agent_id=agent_id,
            on_hold_since=now if on_hold else None,  # the hold's start died with the dialer
            adopted=True,
        )
        await self.store.take_claim(
            orphan.lead_id, self.config.dialer_id, now, self.config.claim_ttl
        )
        lease = self.keys.lead_lease(orphan.lead_id)
        await self.leases.force_release(lease)
        await self.leases.acquire(lease, self.config.dialer_id, self.config.lead_lease_ms)
        if room is not None and connected_at is not None:
            await self.store.mark_connected(orphan.uuid, agent_id, answered_at, connected_at)
        if agent is not None and room is not None:
            self.agents[agent.agent_id] = replace(
                agent,
                state=AgentState.IN_CALL,
                since=connected_at or now,
                call_attempt=orphan.uuid,
                ready_since=None,
                pause_code=None,
                wrap_deadline=None,
            )
            await self._log_agent(agent.agent_id)
        elif agent is None:
            # Nobody here was on it: release an agent left reserved for it.
            for other in list(self.agents.values()):
                if other.call_attempt == orphan.uuid and other.state is AgentState.RESERVED:
                    self.agents[other.agent_id] = other.release_reservation(now)
                    await self._log_agent(other.agent_id)
        log.info(
            "call_adopted",
            attempt=orphan.uuid,
            answered=answered,
            room=room,
            agent=agent_id,
        )

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
        bridge = asyncio.create_task(self._bridge_loop(stop), name="bridge")
        tasks = [bridge]
        last_maintenance = -1e9
        loop = asyncio.get_running_loop()
        try:
            # Restore first (own campaigns, their agents, the calls a dead run left), then
            # take commands: a command about an agent must meet that agent already restored.
            await self.step()
            last_maintenance = loop.time()
            try:
                await self.maintenance()
            except Exception as exc:
                log.exception("maintenance_failed", error=str(exc))
            tasks.append(asyncio.create_task(self._command_loop(stop), name="commands"))
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
            # Redirects in flight and queued state writes: let them end (bounded), then cancel.
            if not await self.drain(within=self.config.shutdown_grace):
                log.warning("background_tasks_cancelled", count=len(self._tasks))
            await self._cancel_background()

    async def _bridge_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            item = await self.tel.next_item()
            await self.handle(item)

    @property
    def command_group(self) -> str:
        """This dialer's own consumer group: it sees every command (fan-out)."""
        return f"{self.keys.dialer_group}:{self.config.dialer_name or self.config.dialer_id}"

    async def _command_loop(self, stop: asyncio.Event) -> None:
        """Read this dialer's group. Entries an earlier run of this dialer read but never
        acknowledged (it was killed) are taken over first; commands not (yet) ours are retried
        for :data:`COMMAND_RETRY_S`, then refused with a reason."""
        consumer = self.config.dialer_id
        stream, group = self.keys.commands_stream, self.command_group
        loop = asyncio.get_running_loop()
        waiting: list[tuple[StreamEntry, float]] = []
        try:
            left = await self.streams.autoclaim(stream, group, consumer, min_idle_ms=0)
        except Exception as exc:
            log.warning("command_reclaim_failed", error=type(exc).__name__)
            left = []
        if left:
            log.info("commands_reclaimed", count=len(left))
        for entry in left:
            waiting.extend(await self._take_command(entry, loop.time()))
            await self.streams.ack(stream, group, entry.id)
        while not stop.is_set():
            try:
                entries = await self.streams.read_group(stream, group, consumer, block_ms=500)
            except Exception as exc:
                log.warning("command_read_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for entry in entries:
                waiting.extend(await self._take_command(entry, loop.time()))
                await self.streams.ack(stream, group, entry.id)
            still: list[tuple[StreamEntry, float]] = []
            for entry, deadline in waiting:
                if await self.handle_command(entry):
                    continue
                if loop.time() >= deadline:
                    await self.refuse_unowned(entry)
                else:
                    still.append((entry, deadline))
            waiting = still

    async def _take_command(
        self, entry: StreamEntry, now: float
    ) -> list[tuple[StreamEntry, float]]:
        """Handle a new command; returns it (with its retry deadline) if not ours yet."""
        age = command_age(entry.id)
        if age is not None and age > COMMAND_MAX_AGE_S:
            if self._is_mine(entry):
                await self._command_result(
                    entry,
                    "rejected",
                    "expired",
                    f"sent {age:.0f} s ago: not applied, send it again",
                )
            return []
        if await self.handle_command(entry):
            return []
        return [(entry, now + COMMAND_RETRY_S)]


def command_age(entry_id: str) -> float | None:
    """Seconds since a stream entry was added (its id starts with Redis's ms time)."""
    try:
        return max(0.0, time.time() - int(entry_id.split("-", 1)[0]) / 1000)
    except ValueError:
        return None
