"""Dashboard aggregates for the supervisor screen: one campaign's live picture and its day.

``GET /campaigns/{id}/live``: agents by state (with time in state, current customer and talk
time), calls dialing / ringing / answered / connected, the dial mode and level, abandon rate
today and over 30 days against the cap, answer and contact rates, leads ready and remaining,
attempts used, and the call window (open now, closes at, next opening).

``GET /campaigns/{id}/today``: the day so far (campaign time zone) in 15-minute buckets, for
the dashboard's charts.

Live call counters come from the dialer's ``Keys.campaign_live`` hash when it publishes them;
otherwise they are derived from SQL (attempts without an outcome) and the agents' live state.
The pacing state (effective mode, dial level and why) comes from the same hash, which the
dialer refreshes on every pacing round; without it, the campaign's configured mode is shown.
The answers are cached per campaign for :data:`~api.cache.LIVE_CACHE_S`
(``app.state.live_cache_s``, see :mod:`api.cache`), so a hundred open dashboards cost one
computation per campaign and interval; access is checked before the cache is used, and a cache
hit needs no database connection.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.auth import Scope
from api.cache import cache_ttl, cached
from api.deps import Ctx, RequestContext, Scoped
from api.errors import not_found
from api.events import seconds_since
from api.routers.campaigns import load_campaign
from api.types import PathId
from dialer.db.models import (
    CallAttempt,
    Campaign,
    Lead,
    Recording,
    RecordingStatus,
    Role,
    User,
    UserCampaign,
)
from dialer.domain.errors import InvalidCallWindow
from dialer.domain.outcomes import AgentState, CallOutcome, DialMode, LeadStatus
from dialer.domain.windows import CallWindow, closes_at, is_open, next_open
from dialer.store import campaign_abandon_stats

router = APIRouter(prefix="/campaigns", tags=["dashboard"])

#: The legal hard cap on abandoned live answers (design.md §6).
ABANDON_CAP = 0.03
BUCKET_MINUTES = 15
#: The day's series changes slowly: it is recomputed at most this often.
TODAY_CACHE_S = 5.0

_ANSWERED = (
    CallOutcome.ANSWERED_CONNECTED,
    CallOutcome.ABANDONED,
    CallOutcome.MACHINE,
    CallOutcome.EARLY_HANGUP,
)
_LIVE = (CallOutcome.ANSWERED_CONNECTED, CallOutcome.ABANDONED)
_ACTIVE = (LeadStatus.NEW, LeadStatus.PENDING, LeadStatus.IN_PROGRESS)


class LiveAgent(BaseModel):
    id: int
    username: str
    full_name: str
    extension: str | None
    state: str
    seconds_in_state: float | None
    pause_code: str | None
    attempt: str | None
    customer: str | None
    lead_id: int | None
    talk_seconds: float | None
    # agent call controls (issue 15): the customer on hold since / the agent muted
    on_hold_since: str | None = None
    muted: bool = False
    # transfer out: transferring / consult_ringing / consulting (docs/web.md "Call controls")
    transfer_state: str | None = None
    transfer_label: str | None = None
    # a browser phone's page reloaded mid-call: the agent is rejoining the same call
    reconnecting: bool = False


class LiveCalls(BaseModel):
    dialing: int
    ringing: int
    answered: int
    connected: int
    source: str  # "dialer" (the engine's live hash) or "derived" (SQL + agent states)


class LivePacing(BaseModel):
    """The pacing the dialer applies now (``source`` "dialer"), else what the campaign says.

    ``mode`` is the effective mode: predictive runs progressive during its cold start, under
    the abandon cap or with a small team, and ``reason`` says why (a pacer decision reason:
    ``cold_start``, ``cap_warmup``, ``hard_cap_today``, ``hard_cap_30d``, ``small_team``,
    ``no_agents``, ``risk_bound``, ``line_cap``, or the mode's own name).
    """

    mode: str
    dial_level: float | None
    dial_ratio: float
    reason: str | None
    source: str  # "dialer" (published by the pacer) or "campaign" (the configured mode)


class LiveAbandon(BaseModel):
    today: int
    live_answers_today: int
    rate_today: float
    d30: int
    live_answers_30d: int
    rate_30d: float
    target: float
    cap: float
    level: str  # ok / warning / danger


class LiveRates(BaseModel):
    attempts_today: int
    finished_today: int
    answered_today: int
    connected_today: int
    answer_rate: float
    contact_rate: float


class LiveLeads(BaseModel):
    by_status: dict[str, int]
    ready: int
    remaining: int
    total: int
    attempts_used: int
    attempts_capacity: int


class LiveWindow(BaseModel):
    open: bool
    closes_at: datetime | None
    next_open_at: datetime | None


class LiveCampaign(BaseModel):
    id: int
    name: str
    type: str
    status: str
    dial_mode: str
    dial_ratio: float
    abandon_target: float
    max_attempts: int
    wrap_up_seconds: int
    timezone: str


class LiveRecordings(BaseModel):
    """Recordings of today's connected calls (issue 16); failed ones went on unrecorded."""

    enabled: bool
    recording: int = 0
    ok: int = 0
    failed: int = 0
    deleted: int = 0
    last_failure: str | None = None


class LiveOut(BaseModel):
    campaign: LiveCampaign
    now: datetime
    agents: list[LiveAgent]
    agents_by_state: dict[str, int]
    calls: LiveCalls
    pacing: LivePacing
    abandon: LiveAbandon
    rates: LiveRates
    leads: LiveLeads
    window: LiveWindow
    recordings: LiveRecordings | None = None


class Bucket(BaseModel):
    start: datetime
    attempts: int
    answered: int
    connected: int
    abandoned: int


class TodayOut(BaseModel):
    campaign_id: int
    timezone: str
    day_start: datetime
    now: datetime
    bucket_minutes: int
    buckets: list[Bucket]


def abandon_level(rate: float, cap: float) -> str:
    """``danger`` at or over 90% of the cap, ``warning`` from 66%, else ``ok``."""
    if cap <= 0:
        return "ok"
    if rate >= cap * 0.9:
        return "danger"
    if rate >= cap * 0.66:
        return "warning"
    return "ok"


def _local_day_start(now: datetime, tz: str) -> datetime:
    local = now.astimezone(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def _campaign_agents(ctx: RequestContext, campaign_id: int) -> list[User]:
    assigned = sa.select(UserCampaign.user_id).where(UserCampaign.campaign_id == campaign_id)
    raw_online: set[str] = await ctx.redis.smembers(ctx.keys.agents_online)  # type: ignore[misc]
    online = {int(x) for x in raw_online if str(x).isdigit()}
    q = (
        sa.select(User)
        .where(User.role == Role.AGENT, sa.or_(User.id.in_(assigned), User.id.in_(online)))
        .order_by(User.id)
    )
    return list(await ctx.db.scalars(q))


async def _agents(
    ctx: RequestContext, campaign_id: int, now: datetime
) -> tuple[list[LiveAgent], dict[str, int]]:
    users = await _campaign_agents(ctx, campaign_id)
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for u in users:
            pipe.hgetall(ctx.keys.agent_state(u.id))
        states: list[dict[str, str]] = await pipe.execute()
    rows: list[tuple[User, dict[str, str]]] = []
    for user, raw in zip(users, states, strict=True):
        live = {str(k): str(v) for k, v in (raw or {}).items()}
        cid = live.get("campaign_id", "")
        if cid.isdigit() and int(cid) != campaign_id:
            continue  # logged in to another campaign
        rows.append((user, live))
    uuids = [live["attempt"] for _, live in rows if live.get("attempt")]
    calls: dict[str, tuple[int, str]] = {}
    if uuids:
        found = await ctx.db.execute(
            sa.select(CallAttempt.uuid, Lead.id, Lead.customer_name)
            .join(Lead, Lead.id == CallAttempt.lead_id)
            .where(CallAttempt.uuid.in_(uuids))
        )
        calls = {u: (lid, name) for u, lid, name in found}
    agents: list[LiveAgent] = []
    by_state: Counter[str] = Counter({s.value: 0 for s in AgentState})
    for user, live in rows:
        state = live.get("state") or AgentState.LOGGED_OUT.value
        since = live.get("since") or ""
        in_state = seconds_since(since, now) if since else None
        attempt = live.get("attempt") or None
        call = calls.get(attempt) if attempt else None
        talk = in_state if state == AgentState.IN_CALL.value else None
        by_state[state] += 1
        agents.append(
            LiveAgent(
                id=user.id,
                username=user.username,
                full_name=user.full_name,
                extension=live.get("extension") or user.extension,
                state=state,
                seconds_in_state=in_state,
                pause_code=live.get("pause_code") or None,
                attempt=attempt,
                customer=call[1] if call else None,
                lead_id=call[0] if call else None,
                talk_seconds=talk,
                on_hold_since=(live.get("on_hold_since") or None) if talk is not None else None,
                muted=talk is not None and live.get("muted") == "1",
                transfer_state=(live.get("transfer_state") or None) if talk is not None else None,
                transfer_label=(live.get("transfer_label") or None) if talk is not None else None,
                reconnecting=bool(live.get("rejoin_deadline"))
                and state != AgentState.LOGGED_OUT.value,
            )
        )
    return agents, dict(by_state)


def _int(raw: dict[str, str], name: str) -> int | None:
    value = raw.get(name, "")
    try:
        return int(float(value))
    except ValueError:
        return None


def _float(raw: dict[str, str], name: str) -> float | None:
    try:
        return float(raw.get(name, ""))
    except ValueError:
        return None


async def _calls(
    ctx: RequestContext, campaign: Campaign, by_state: dict[str, int], hash_: dict[str, str]
) -> LiveCalls:
    counters = {n: _int(hash_, n) for n in ("dialing", "ringing", "answered", "connected")}
    if all(v is not None for v in counters.values()):
        return LiveCalls(
            dialing=counters["dialing"] or 0,
            ringing=counters["ringing"] or 0,
            answered=counters["answered"] or 0,
            connected=counters["connected"] or 0,
            source="dialer",
        )
    rows = await ctx.db.execute(
        sa.select(CallAttempt.dialed_at.is_(None), sa.func.count())
        .where(CallAttempt.campaign_id == campaign.id, CallAttempt.outcome.is_(None))
        .group_by(CallAttempt.dialed_at.is_(None))
    )
    not_dialed = dialed = 0
    for pending, n in rows:
        if pending:
            not_dialed += int(n)
        else:
            dialed += int(n)
    connected = by_state.get(AgentState.IN_CALL.value, 0)
    answered = by_state.get(AgentState.RESERVED.value, 0)
    return LiveCalls(
        dialing=not_dialed,
        ringing=max(0, dialed - connected - answered),
        answered=answered,
        connected=connected,
        source="derived",
    )


def _dial_level(campaign: Campaign, hash_: dict[str, str]) -> float | None:
    """The dialer's published level; else what the mode implies (None for predictive)."""
    published = _float(hash_, "dial_level")
    if published is not None:
        return published
    if campaign.dial_mode is DialMode.PROGRESSIVE:
        return 1.0
    if campaign.dial_mode is DialMode.FIXED_RATIO:
        return campaign.dial_ratio
    return None


def _window(campaign: Campaign, now: datetime) -> LiveWindow:
    try:
        window = CallWindow.from_dict(dict(campaign.call_window or {}))
        tz = campaign.timezone
        if is_open(window, now, tz):
            return LiveWindow(open=True, closes_at=closes_at(window, now, tz), next_open_at=None)
        return LiveWindow(open=False, closes_at=None, next_open_at=next_open(window, now, tz))
    except (InvalidCallWindow, ValueError, KeyError):
        return LiveWindow(open=False, closes_at=None, next_open_at=None)


async def _recordings_today(
    ctx: RequestContext, campaign: Campaign, day_start: datetime
) -> LiveRecordings:
    out = LiveRecordings(enabled=campaign.record_calls)
    rows = await ctx.db.execute(
        sa.select(Recording.status, sa.func.count())
        .where(Recording.campaign_id == campaign.id, Recording.started_at >= day_start)
        .group_by(Recording.status)
    )
    for status, n in rows:
        setattr(out, str(getattr(status, "value", status)), int(n))
    if out.failed:
        out.last_failure = await ctx.db.scalar(
            sa.select(Recording.failure_reason)
            .where(
                Recording.campaign_id == campaign.id,
                Recording.status == RecordingStatus.FAILED,
                Recording.started_at >= day_start,
            )
            .order_by(Recording.id.desc())
            .limit(1)
        )
    return out


async def compute_live(ctx: RequestContext, campaign: Campaign) -> LiveOut:
    now = ctx.now()
    cid = campaign.id
    agents, by_state = await _agents(ctx, cid, now)
    hash_raw: dict[str, str] = await ctx.redis.hgetall(ctx.keys.campaign_live(cid))  # type: ignore[misc]
    hash_ = {str(k): str(v) for k, v in hash_raw.items()}
    calls = await _calls(ctx, campaign, by_state, hash_)
    ab_d, live_d, ab_m, live_m = await campaign_abandon_stats(ctx.db, cid, now, campaign.timezone)
    rate_d = ab_d / live_d if live_d else 0.0
    rate_m = ab_m / live_m if live_m else 0.0
    cap = min(ABANDON_CAP, campaign.abandon_target)
    day_start = _local_day_start(now, campaign.timezone)
    outcome_rows = await ctx.db.execute(
        sa.select(CallAttempt.outcome, sa.func.count())
        .where(CallAttempt.campaign_id == cid, CallAttempt.created_at >= day_start)
        .group_by(CallAttempt.outcome)
    )
    outcomes: Counter[CallOutcome | None] = Counter()
    for outcome, n in outcome_rows:
        outcomes[outcome] += int(n)
    attempts_today = sum(outcomes.values())
    finished = attempts_today - outcomes[None]
    answered = sum(outcomes[o] for o in _ANSWERED)
    connected = outcomes[CallOutcome.ANSWERED_CONNECTED]
    status_rows = await ctx.db.execute(
        sa.select(Lead.status, sa.func.count(), sa.func.coalesce(sa.func.sum(Lead.attempts), 0))
        .where(Lead.campaign_id == cid)
        .group_by(Lead.status)
    )
    by_status: dict[str, int] = {s.value: 0 for s in LeadStatus}
    attempts_used = 0
    for status, n, used in status_rows:
        by_status[str(getattr(status, "value", status))] = int(n)
        attempts_used += int(used or 0)
    ready = await ctx.db.scalar(
        sa.select(sa.func.count())
        .select_from(Lead)
        .where(
            Lead.campaign_id == cid,
            Lead.status.in_((LeadStatus.NEW, LeadStatus.PENDING)),
            sa.or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= now),
        )
    )
    total = sum(by_status.values())
    recordings = await _recordings_today(ctx, campaign, day_start)
    published_mode = hash_.get("mode") or None
    mode = published_mode or campaign.dial_mode.value
    return LiveOut(
        campaign=LiveCampaign(
            id=cid,
            name=campaign.name,
            type=campaign.type.value,
            status=campaign.status.value,
            dial_mode=campaign.dial_mode.value,
            dial_ratio=campaign.dial_ratio,
            abandon_target=campaign.abandon_target,
            max_attempts=campaign.max_attempts,
            wrap_up_seconds=campaign.wrap_up_seconds,
            timezone=campaign.timezone,
        ),
        now=now,
        agents=agents,
        agents_by_state=by_state,
        calls=calls,
        pacing=LivePacing(
            mode=mode,
            dial_level=_dial_level(campaign, hash_),
            dial_ratio=campaign.dial_ratio,
            reason=hash_.get("reason") or None,
            source="dialer" if published_mode else "campaign",
        ),
        abandon=LiveAbandon(
            today=ab_d,
            live_answers_today=live_d,
            rate_today=rate_d,
            d30=ab_m,
            live_answers_30d=live_m,
            rate_30d=rate_m,
            target=campaign.abandon_target,
            cap=cap,
            level=abandon_level(max(rate_d, rate_m), cap),
        ),
        rates=LiveRates(
            attempts_today=attempts_today,
            finished_today=finished,
            answered_today=answered,
            connected_today=connected,
            answer_rate=answered / finished if finished else 0.0,
            contact_rate=connected / finished if finished else 0.0,
        ),
        leads=LiveLeads(
            by_status=by_status,
            ready=int(ready or 0),
            remaining=sum(by_status.get(s.value, 0) for s in _ACTIVE),
            total=total,
            attempts_used=attempts_used,
            attempts_capacity=total * campaign.max_attempts,
        ),
        window=_window(campaign, now),
        recordings=recordings,
    )


async def compute_today(ctx: RequestContext, campaign: Campaign) -> TodayOut:
    now = ctx.now()
    start = _local_day_start(now, campaign.timezone)
    rows = await ctx.db.execute(
        sa.select(CallAttempt.created_at, CallAttempt.outcome).where(
            CallAttempt.campaign_id == campaign.id, CallAttempt.created_at >= start
        )
    )
    step = timedelta(minutes=BUCKET_MINUTES)
    count = max(1, int((now - start) / step) + 1)
    buckets = [
        Bucket(start=start + i * step, attempts=0, answered=0, connected=0, abandoned=0)
        for i in range(count)
    ]
    for created, outcome in rows:
        at = created if created.tzinfo else created.replace(tzinfo=UTC)
        i = min(count - 1, max(0, int((at - start) / step)))
        b = buckets[i]
        b.attempts += 1
        if outcome in _ANSWERED:
            b.answered += 1
        if outcome is CallOutcome.ANSWERED_CONNECTED:
            b.connected += 1
        elif outcome is CallOutcome.ABANDONED:
            b.abandoned += 1
    return TodayOut(
        campaign_id=campaign.id,
        timezone=campaign.timezone,
        day_start=start,
        now=now,
        bucket_minutes=BUCKET_MINUTES,
        buckets=buckets,
    )


async def _visible(ctx: RequestContext, campaign_id: int) -> None:
    """404 unless the caller may see the campaign (checked before any cache is used)."""
    if not await ctx.can_see_campaign(campaign_id):
        raise not_found("campaign", campaign_id)


@router.get(
    "/{campaign_id}/live",
    summary="Live dashboard picture of one campaign (agents, calls, pacing, abandon, leads)",
    dependencies=[Scoped(Scope.AGENTS_READ)],
    response_model=LiveOut,
)
async def campaign_live(campaign_id: PathId, ctx: Ctx) -> Response:
    await _visible(ctx, campaign_id)
    state = ctx.request.app.state

    async def compute() -> LiveOut:
        async with ctx.sessionmaker() as db:  # its own session: it may outlive the request
            own = replace(ctx, db=db)
            return await compute_live(own, await load_campaign(own, campaign_id))

    return (await cached(state, "live", campaign_id, cache_ttl(state), compute)).response()


@router.get(
    "/{campaign_id}/today",
    summary="The day so far in 15-minute buckets (dashboard charts)",
    dependencies=[Scoped(Scope.CAMPAIGNS_READ)],
    response_model=TodayOut,
)
async def campaign_today(campaign_id: PathId, ctx: Ctx) -> Response:
    await _visible(ctx, campaign_id)
    state = ctx.request.app.state
    ttl = cache_ttl(state)

    async def compute() -> TodayOut:
        async with ctx.sessionmaker() as db:
            own = replace(ctx, db=db)
            return await compute_today(own, await load_campaign(own, campaign_id))

    ttl = max(ttl, TODAY_CACHE_S) if ttl else 0
    return (await cached(state, "today", campaign_id, ttl, compute)).response()
