"""The agent screen's actions: log in with an extension, ready / pause / log out, disposition,
and ``GET /agent/me`` (live state, current call and the screen-pop data).

Agent actions go to the dialer as commands (``Keys.commands_stream``); the dialer owns the
agent state machine and answers on the event stream (``agent_state`` or ``command_rejected``).
The API answers 202 once the command is queued, after checking what it can check itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import sqlalchemy as sa
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Scope
from api.cache import CAMPAIGN_LIST, cache_ttl, cached
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.events import live_agent_state, publish_event, seconds_since, send_command
from api.routers.auth import UserOut, user_out
from api.routers.campaigns import DispositionOut, disposition_list
from api.routers.users import check_extension
from api.screen import (
    AttemptOut,
    HistoryOut,
    LeadOut,
    Named,
    attempt_out,
    lead_history,
    lead_out,
    script_values,
)
from api.types import BodyId
from dialer.db.models import (
    Appointment,
    CallAttempt,
    Campaign,
    Disposition,
    Lead,
    Pqrs,
    Role,
    TransferNumber,
    User,
)
from dialer.domain.agents import PAUSE_CODES
from dialer.domain.dispositions import validate_disposition
from dialer.domain.outcomes import AgentState, CampaignStatus
from dialer.domain.script import fill_script
from dialer.logging import get_logger
from dialer.redis_client import StreamEntry
from dialer.redis_keys import Keys
from dialer.store import EngineStore
from dialer.webrtc import is_browser_seat, seat_password

router = APIRouter(prefix="/agent", tags=["agent screen"])
log = get_logger(__name__)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: BodyId
    extension: str | None = Field(
        default=None, description="PJSIP endpoint of the softphone; default: the user's own"
    )

    @field_validator("extension")
    @classmethod
    def _extension(cls, value: str | None) -> str | None:
        return check_extension(value)


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="One of the pause codes (GET /agent/me lists them)")


class DispositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt: str = Field(min_length=1, max_length=64, description="The call's attempt uuid")
    code: str = Field(min_length=1, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict)
    pause_code: str | None = Field(
        default=None, description="Pause right after (instead of going ready)"
    )


class CommandResult(BaseModel):
    """What the dialer did with a command: ``pending`` (no answer yet), ``accepted`` (acted
    on) or ``rejected`` (with ``code`` and ``message``: why)."""

    command_id: str
    status: str
    code: str = ""
    message: str = ""


class Accepted(BaseModel):
    status: str = "accepted"
    command: str
    command_id: str
    result: CommandResult | None = None


class DispositionOutcome(BaseModel):
    attempt: str
    code: str
    lead_id: int
    lead_status: str | None
    next_attempt_at: datetime | None
    appointment_id: int | None = None
    pqrs_id: int | None = None
    pending: bool = Field(
        default=False,
        description="The call was transferred out and is still running: the disposition is "
        "kept and recorded when it ends",
    )


class LiveState(BaseModel):
    state: str
    since: str | None = None
    seconds_in_state: float | None = None
    extension: str | None = None
    campaign_id: int | None = None
    pause_code: str | None = None
    attempt: str | None = None
    preview_lead: int | None = None  # preview mode: the lead on the agent's screen
    preview_deadline: str | None = None  # when the call is placed by itself
    # call controls (POST /agent/call/...): the customer on hold since, the agent muted
    on_hold_since: str | None = None
    muted: bool = False
    hold_seconds: float | None = None  # closed holds of this call, in seconds
    # transfer out (supervisor / external): transferring, consult_ringing, consulting
    transfer_state: str | None = None
    transfer_label: str | None = None
    # A browser phone's session call ended mid-call (page reload): the call and the state are
    # kept until rejoin_deadline; POST /agent/login rejoins (issue 15).
    reconnecting: bool = False
    rejoin_deadline: str | None = None


class CampaignBrief(BaseModel):
    id: int
    name: str
    type: str
    status: str


class CampaignBriefs(BaseModel):
    items: list[CampaignBrief]


async def _campaign_briefs(ctx: RequestContext) -> list[CampaignBrief]:
    """The caller's campaigns, cached per scope like the dashboard (:mod:`api.cache`)."""
    scope = await ctx.campaign_scope()
    ids = "*" if scope is None else ",".join(str(c) for c in sorted(scope))
    state = ctx.request.app.state

    async def compute() -> CampaignBriefs:
        q = sa.select(Campaign).order_by(Campaign.id)
        if scope is not None:
            q = q.where(Campaign.id.in_(scope))
        async with ctx.sessionmaker() as db:
            return CampaignBriefs(
                items=[
                    CampaignBrief(id=c.id, name=c.name, type=c.type.value, status=c.status.value)
                    for c in await db.scalars(q)
                ]
            )

    entry = await cached(state, f"{CAMPAIGN_LIST}{ids}", 0, cache_ttl(state), compute)
    assert isinstance(entry.value, CampaignBriefs)
    return entry.value.items


class CurrentCall(BaseModel):
    attempt: AttemptOut
    lead: LeadOut
    campaign: CampaignBrief
    vehicle: str
    script: str
    dispositions: list[DispositionOut]
    history: HistoryOut
    recording: bool = False  # the campaign records: show the notice and "stop recording"


class PauseCode(BaseModel):
    code: str
    label_es: str


class PreviewCard(BaseModel):
    """Preview mode: who the agent will call, before dialing."""

    lead: LeadOut
    vehicle: str
    deadline: str | None
    history: HistoryOut


class AgentMe(BaseModel):
    user: UserOut
    state: LiveState
    pause_codes: list[PauseCode]
    campaigns: list[CampaignBrief]
    call: CurrentCall | None
    preview: PreviewCard | None = None


def _me(ctx: RequestContext) -> int:
    if ctx.principal.user_id is None:
        raise ApiError(403, "forbidden", "agent actions need a signed-in user")
    return ctx.principal.user_id


async def _state(ctx: RequestContext, agent_id: int) -> LiveState:
    raw = await live_agent_state(ctx.redis, ctx.keys, agent_id)
    if not raw:
        return LiveState(state=AgentState.LOGGED_OUT.value)
    since = raw.get("since") or None
    cid = raw.get("campaign_id") or ""
    return LiveState(
        state=raw.get("state") or AgentState.LOGGED_OUT.value,
        since=since,
        seconds_in_state=seconds_since(since, ctx.now()) if since else None,
        extension=raw.get("extension") or None,
        campaign_id=int(cid) if cid.isdigit() else None,
        pause_code=raw.get("pause_code") or None,
        attempt=raw.get("attempt") or None,
        preview_lead=int(raw["preview_lead"]) if raw.get("preview_lead", "").isdigit() else None,
        preview_deadline=raw.get("preview_deadline") or None,
        on_hold_since=raw.get("on_hold_since") or None,
        muted=raw.get("muted") == "1",
        hold_seconds=_float_or_none(raw.get("hold_seconds")),
        transfer_state=raw.get("transfer_state") or None,
        transfer_label=raw.get("transfer_label") or None,
        reconnecting=bool(raw.get("rejoin_deadline")),
        rejoin_deadline=raw.get("rejoin_deadline") or None,
    )


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


#: The screen-pop of a call (``/agent/me`` ``call``) is loaded once per call (attempt) and
#: agent: the lead, campaign, script and history. On each change of the agent's live state
#: (reserved -> in call -> wrap-up) only the attempt row is read again (its times and outcome,
#: also in the history); everything is reloaded when the entry is older than this. The agent's
#: own actions through this process (commands, disposition) drop it at once.
CALL_CACHE_S = 30.0
#: The agent's live state a screen-pop was read for: (state, since).
CallKey = tuple[str, str | None]


@dataclass(slots=True)
class _CallEntry:
    attempt: str  # the call's attempt uuid
    state: CallKey  # (state, since) the attempt row was read for
    at: float  # monotonic time the full load started
    call: CurrentCall | None
    body: bytes  # ``call`` as JSON


def _call_cache(ctx: RequestContext) -> dict[int, _CallEntry]:
    return _cache_of(ctx.request.app.state)


def _cache_of(state: Any) -> dict[int, _CallEntry]:
    cache: dict[int, _CallEntry] | None = getattr(state, "agent_call_cache", None)
    if cache is None:
        cache = state.agent_call_cache = {}
    return cache


def _loading_of(state: Any) -> dict[int, tuple[str, CallKey, asyncio.Task[bytes]]]:
    loading: dict[int, tuple[str, CallKey, asyncio.Task[bytes]]] | None = getattr(
        state, "agent_call_loading", None
    )
    if loading is None:
        loading = state.agent_call_loading = {}
    return loading


def _call_body(call: CurrentCall | None) -> bytes:
    return b"null" if call is None else call.model_dump_json().encode()


async def _refresh_attempt(
    db: AsyncSession, call: CurrentCall, agent_id: int
) -> CurrentCall | None:
    """The cached screen-pop with the attempt row read again (one query)."""
    row = await db.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == call.attempt.uuid))
    if row is None or row.agent_id not in (None, agent_id):
        return None
    fresh = attempt_out(row, masked=True)
    attempts = [fresh if a.id == fresh.id else a for a in call.history.attempts]
    history = call.history.model_copy(update={"attempts": attempts})
    return call.model_copy(update={"attempt": fresh, "history": history})


async def _load_call(
    app_state: Any,
    db: AsyncSession,
    attempt: str,
    key: CallKey,
    agent_id: int,
    agent: Named | None,
) -> bytes:
    """The encoded screen-pop for ``attempt`` in live state ``key``, from the cache, with the
    attempt row re-read, or loaded in full (see :data:`CALL_CACHE_S`); cached."""
    cache = _cache_of(app_state)
    hit = cache.get(agent_id)
    now = time.monotonic()
    if hit is not None and hit.attempt == attempt and now - hit.at < CALL_CACHE_S:
        if hit.state == key:
            return hit.body
        if hit.call is not None:
            call = await _refresh_attempt(db, hit.call, agent_id)
            cache[agent_id] = _CallEntry(attempt, key, hit.at, call, _call_body(call))
            return cache[agent_id].body
    call = await current_call(db, attempt, agent_id, agent)
    cache[agent_id] = _CallEntry(attempt, key, now, call, _call_body(call))
    return cache[agent_id].body


async def _current_call_json(
    ctx: RequestContext, state: LiveState, agent_id: int, agent: Named | None
) -> bytes:
    """The ``call`` part of ``/agent/me``, encoded (see :data:`CALL_CACHE_S`). A load the
    event feed already started for the same call and state (:func:`prefetch_screen_pops`) is
    awaited instead of repeated."""
    app_state = ctx.request.app.state
    cache = _cache_of(app_state)
    if not state.attempt:
        cache.pop(agent_id, None)
        return b"null"
    key = (state.state, state.since)
    loading = _loading_of(app_state).get(agent_id)
    if loading is not None and loading[0] == state.attempt and loading[1] == key:
        with contextlib.suppress(Exception):
            return await asyncio.shield(loading[2])
    return await _load_call(app_state, ctx.db, state.attempt, key, agent_id, agent)


#: Agent states whose event starts loading the screen-pop (:func:`prefetch_screen_pops`).
_PREFETCH_STATES = frozenset(
    {AgentState.RESERVED.value, AgentState.IN_CALL.value, AgentState.WRAP_UP.value}
)


def prefetch_screen_pops(app_state: Any) -> Callable[[StreamEntry], None]:
    """A listener for the process's event feed (:class:`api.events.Broadcaster`): when the
    dialer reports an agent on a call (``agent_state`` with an attempt), the screen-pop is
    loaded in the background, so the agent screen's next poll finds it ready (the call's
    customer is on screen without waiting for the database)."""

    def on_entry(entry: StreamEntry) -> None:
        if entry.type != "agent_state":
            return
        data = entry.data
        attempt = str(data.get("attempt") or "")
        state = str(data.get("state") or "")
        agent_id = data.get("agent_id")
        if not attempt or state not in _PREFETCH_STATES or not isinstance(agent_id, int):
            return
        key: CallKey = (state, str(data.get("since") or "") or None)
        hit = _cache_of(app_state).get(agent_id)
        if hit is not None and hit.attempt == attempt and hit.state == key:
            return
        loading = _loading_of(app_state)
        if agent_id in loading and not loading[agent_id][2].done():
            return

        async def load() -> bytes:
            try:
                async with app_state.sessionmaker() as db:
                    return await _load_call(app_state, db, attempt, key, agent_id, None)
            except Exception as exc:
                log.warning("screen_pop_prefetch_failed", agent=agent_id, error=repr(exc))
                raise
            finally:
                if loading.get(agent_id, (None, None, None))[2] is task:
                    del loading[agent_id]

        task = asyncio.create_task(load(), name="screen-pop-prefetch")
        loading[agent_id] = (attempt, key, task)
        background: set[asyncio.Task[Any]] | None = getattr(app_state, "background", None)
        if background is not None:
            background.add(task)
            task.add_done_callback(background.discard)
        task.add_done_callback(_retrieved)

    return on_entry


def _retrieved(task: asyncio.Task[bytes]) -> None:
    if not task.cancelled():
        task.exception()  # logged in the task; nobody else may await it


async def _command(ctx: RequestContext, type_: str, data: dict[str, Any]) -> Accepted:
    _call_cache(ctx).pop(_me(ctx), None)
    command_id = await send_command(ctx.redis, ctx.keys, type_, data)
    return Accepted(command=type_, command_id=command_id)


async def _command_result(ctx: RequestContext, command_id: str) -> dict[str, Any] | None:
    raw = await ctx.redis.get(ctx.keys.command_result(command_id))
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _await_result(ctx: RequestContext, command_id: str) -> dict[str, Any] | None:
    """The dialer's answer to a command, waiting up to ``api.command_wait_s``."""
    deadline = time.monotonic() + ctx.settings.api.command_wait_s
    while True:
        body = await _command_result(ctx, command_id)
        if body is not None or time.monotonic() >= deadline:
            return body
        await asyncio.sleep(0.05)


def _require_logged_in(state: LiveState, action: str) -> None:
    if state.state == AgentState.LOGGED_OUT.value:
        raise ApiError(409, "not_logged_in", f"log in with an extension before you {action}")


@router.post(
    "/login",
    status_code=202,
    summary="Log in to a campaign: the dialer calls the extension (nailed-up room)",
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_login(body: LoginIn, ctx: Ctx) -> Accepted:
    """Also the rejoin of a browser phone whose page reloaded mid-call (``reconnecting``):
    the dialer calls the seat back into the same room; state and call are kept."""
    me = _me(ctx)
    campaign = await ctx.db.get(Campaign, body.campaign_id)
    if campaign is None or not await ctx.can_see_campaign(campaign.id):
        raise not_found("campaign", body.campaign_id)
    if campaign.status not in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
        raise ApiError(
            409,
            "campaign_not_active",
            f"the campaign is {campaign.status.value}: agents join running or paused campaigns",
        )
    user = await ctx.db.get(User, me)
    extension = body.extension or (user.extension if user else None)
    if not extension:
        raise ApiError(422, "extension_required", "give the extension of your softphone")
    state = await _state(ctx, me)
    if state.state != AgentState.LOGGED_OUT.value and not state.reconnecting:
        raise ApiError(409, "already_logged_in", f"you are already logged in ({state.state})")
    accepted = await _command(
        ctx, "agent_login", {"agent_id": me, "extension": extension, "campaign_id": campaign.id}
    )
    answer = await _await_result(ctx, accepted.command_id)
    if answer is not None and answer.get("status") == "rejected":
        raise ApiError(
            409,
            "login_refused",
            str(answer.get("message") or "the dialer refused the login"),
            {"command_id": accepted.command_id, "reason": answer.get("code") or ""},
        )
    accepted.result = CommandResult(
        command_id=accepted.command_id,
        status=str(answer.get("status")) if answer else "pending",
    )
    return accepted


@router.get(
    "/commands/{command_id}",
    summary="What the dialer did with one of your commands (pending, accepted, rejected)",
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_command_result(command_id: str, ctx: Ctx) -> CommandResult:
    me = _me(ctx)
    body = await _command_result(ctx, command_id)
    if body is None:
        return CommandResult(command_id=command_id, status="pending")
    if str(body.get("agent_id")) != str(me):
        raise not_found("command", command_id)
    return CommandResult(
        command_id=command_id,
        status=str(body.get("status") or "pending"),
        code=str(body.get("code") or ""),
        message=str(body.get("message") or ""),
    )


@router.post(
    "/ready", status_code=202, summary="Ready for calls", dependencies=[Scoped(Scope.AGENT)]
)
async def agent_ready(ctx: Ctx) -> Accepted:
    me = _me(ctx)
    state = await _state(ctx, me)
    _require_logged_in(state, "go ready")
    if state.state == AgentState.WRAP_UP.value:
        raise ApiError(409, "disposition_required", "submit the call's disposition first")
    if state.state == AgentState.PAUSED.value and state.pause_code == "connecting":
        raise ApiError(
            409,
            "connecting",
            "your softphone is not in the room yet: answer the call, you go ready on joining",
        )
    return await _command(ctx, "agent_ready", {"agent_id": me})


@router.post(
    "/pause", status_code=202, summary="Pause with a code", dependencies=[Scoped(Scope.AGENT)]
)
async def agent_pause(body: PauseIn, ctx: Ctx) -> Accepted:
    me = _me(ctx)
    if body.code not in PAUSE_CODES:
        raise ApiError(
            422,
            "unknown_pause_code",
            f"unknown pause code {body.code!r}",
            {"allowed": sorted(PAUSE_CODES)},
        )
    _require_logged_in(await _state(ctx, me), "pause")
    return await _command(ctx, "agent_pause", {"agent_id": me, "code": body.code})


@router.post("/logout", status_code=202, summary="Log out", dependencies=[Scoped(Scope.AGENT)])
async def agent_logout(ctx: Ctx) -> Accepted:
    me = _me(ctx)
    return await _command(ctx, "agent_logout", {"agent_id": me})


@router.post(
    "/disposition",
    summary="Record the call's disposition (appointment, callback, complaint, DNC...)",
    responses={409: {"description": "The call does not take a disposition now"}},
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_disposition(body: DispositionIn, ctx: Ctx) -> DispositionOutcome:
    me = _me(ctx)
    _call_cache(ctx).pop(me, None)
    out = await record_disposition(
        ctx.db, ctx.sessionmaker, ctx.redis, ctx.keys, me, body, ctx.now()
    )
    if out.pending:  # a call transferred out: recorded when it ends (like a draft)
        app_state = ctx.request.app.state
        await app_state.broadcaster.start()  # this process sees the call end
        app_state.draft_clock = ctx.clock
    else:
        with contextlib.suppress(Exception):
            await drop_draft(ctx.redis, ctx.keys, me, body.attempt)  # recorded: no draft left
    return out


async def record_disposition(
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    keys: Keys,
    me: int,
    body: DispositionIn,
    now: datetime,
    *,
    notify: bool = True,
) -> DispositionOutcome:
    """Record agent ``me``'s disposition of a call (the agent's own request, or the draft
    saved during the call, applied when it ends): the store writes it, the dialer is told
    (``agent_dispositioned``, unless ``notify`` is off: a transferred call's disposition
    given earlier) and the events go out.

    A call the agent transferred out (to a supervisor or an external number) is still running
    while the agent wraps it up: the disposition is kept (as the call's draft, ``pending``),
    the agent is freed now, and it is recorded when the call ends."""
    if body.pause_code is not None and body.pause_code not in PAUSE_CODES:
        raise ApiError(422, "unknown_pause_code", f"unknown pause code {body.pause_code!r}")
    attempt = await db.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == body.attempt))
    if attempt is None or attempt.agent_id != me:
        raise not_found("call", body.attempt)
    campaign = await db.get_one(Campaign, attempt.campaign_id)
    attempt_id, campaign_id, campaign_type = attempt.id, campaign.id, campaign.type
    record = validate_disposition(campaign_type, body.code, body.details, now)
    command: dict[str, Any] = {"agent_id": me}
    if body.pause_code:
        command["pause_code"] = body.pause_code
    if attempt.outcome is None:
        live = await live_agent_state(redis, keys, me)
        if live.get("attempt") != body.attempt or live.get("state") != AgentState.WRAP_UP.value:
            raise ApiError(409, "call_in_progress", "the call has not ended yet")
        lead_id = attempt.lead_id
        await db.rollback()
        await redis.set(
            keys.disposition_draft(me, body.attempt), body.model_dump_json(), ex=DRAFT_TTL_S
        )
        if notify:
            await send_command(redis, keys, "agent_dispositioned", command)
        return DispositionOutcome(
            attempt=body.attempt,
            code=record.code.value,
            lead_id=lead_id,
            lead_status=None,
            next_attempt_at=None,
            pending=True,
        )
    await db.rollback()  # end the read transaction; the store writes in its own
    result = await EngineStore(sessionmaker).record_disposition(
        body.attempt, record, now, agent_id=me
    )
    if notify:
        await send_command(redis, keys, "agent_dispositioned", command)
    decision = result.decision
    out = DispositionOutcome(
        attempt=body.attempt,
        code=record.code.value,
        lead_id=result.lead_id,
        lead_status=decision.lead_status.value if decision else None,
        next_attempt_at=decision.next_attempt_at if decision else None,
    )
    base = {"attempt": body.attempt, "lead_id": result.lead_id, "campaign_id": campaign_id}
    disposition_id = await db.scalar(
        sa.select(Disposition.id).where(Disposition.attempt_id == attempt_id)
    )
    appointment = await db.scalar(
        sa.select(Appointment).where(Appointment.disposition_id == disposition_id)
    )
    if appointment is not None:
        out.appointment_id = appointment.id
        await publish_event(
            redis,
            keys,
            "appointment_booked",
            {
                **base,
                "appointment_id": appointment.id,
                "scheduled_for": appointment.scheduled_for.isoformat(),
                "branch": appointment.branch,
                "service": appointment.service,
            },
        )
    pqrs = await db.scalar(sa.select(Pqrs).where(Pqrs.disposition_id == disposition_id))
    if pqrs is not None:
        out.pqrs_id = pqrs.id
        await publish_event(
            redis,
            keys,
            "complaint_raised",
            {**base, "pqrs_id": pqrs.id, "deadline": pqrs.deadline.isoformat()},
        )
    await publish_event(
        redis, keys, "disposition_recorded", {**base, "agent_id": me, "code": out.code}
    )
    return out


async def current_call(
    db: AsyncSession, attempt_uuid: str, agent_id: int, agent: Named | None = None
) -> CurrentCall | None:
    row = (
        await db.execute(
            sa.select(CallAttempt, Lead, Campaign)
            .join(Lead, Lead.id == CallAttempt.lead_id)
            .join(Campaign, Campaign.id == CallAttempt.campaign_id)
            .where(CallAttempt.uuid == attempt_uuid)
            .options(sa.orm.selectinload(Lead.phones))
        )
    ).first()
    if row is None:
        return None
    attempt, lead, campaign = row._tuple()
    if attempt.agent_id not in (None, agent_id):
        return None
    if agent is None:
        agent = await db.get(User, agent_id)
    values = script_values(lead, campaign, agent)
    return CurrentCall(
        attempt=attempt_out(attempt, masked=True),
        lead=lead_out(lead, masked=True),
        campaign=CampaignBrief(
            id=campaign.id,
            name=campaign.name,
            type=campaign.type.value,
            status=campaign.status.value,
        ),
        vehicle=" ".join(
            x for x in (lead.brand, lead.model, str(lead.vehicle_year or ""), lead.plate) if x
        ),
        script=fill_script(campaign.script, values),
        dispositions=disposition_list(campaign.type),
        history=await lead_history(db, lead.id, masked=True),
        recording=campaign.record_calls,
    )


@functools.cache
def _pause_codes_json() -> bytes:
    """``/agent/me``'s pause codes, encoded once."""
    codes = [PauseCode(code=c, label_es=label) for c, label in PAUSE_CODES.items()]
    return TypeAdapter(list[PauseCode]).dump_json(codes)


@functools.cache
def _briefs_adapter() -> TypeAdapter[list[CampaignBrief]]:
    return TypeAdapter(list[CampaignBrief])


@router.get(
    "/me",
    summary="Live state, current call and screen-pop data for the agent screen",
    dependencies=[Scoped(Scope.AGENT)],
    response_model=AgentMe,
)
async def agent_me(ctx: Ctx) -> Response:
    """Polled by every agent screen: the parts are encoded separately and the screen-pop
    comes encoded from :func:`_current_call_json` (no database work while the call and the
    agent's state are unchanged)."""
    me = _me(ctx)
    cached = ctx.cached_user()
    user = (
        UserOut(
            id=cached.user_id,
            username=cached.username,
            full_name=cached.full_name,
            role=cached.role,
            extension=cached.extension,
            active=True,  # only active users are cached
        )
        if cached is not None
        else user_out(await ctx.db.get_one(User, me))
    )
    state = await _state(ctx, me)
    campaigns = await _campaign_briefs(ctx)
    call = await _current_call_json(ctx, state, me, cached)
    preview = None
    if state.preview_lead is not None and call == b"null":
        lead = await ctx.db.scalar(
            sa.select(Lead)
            .where(Lead.id == state.preview_lead)
            .options(sa.orm.selectinload(Lead.phones))
        )
        if lead is not None:
            preview = PreviewCard(
                lead=lead_out(lead, masked=True),
                vehicle=" ".join(x for x in (lead.brand, lead.model, lead.plate) if x),
                deadline=state.preview_deadline,
                history=await lead_history(ctx.db, lead.id, masked=True),
            )
    body = b"".join(
        (
            b'{"user":',
            user.model_dump_json().encode(),
            b',"state":',
            state.model_dump_json().encode(),
            b',"pause_codes":',
            _pause_codes_json(),
            b',"campaigns":',
            _briefs_adapter().dump_json(campaigns),
            b',"call":',
            call,
            b',"preview":',
            b"null" if preview is None else preview.model_dump_json().encode(),
            b"}",
        )
    )
    return Response(body, media_type="application/json")


@router.post(
    "/preview/call",
    status_code=202,
    summary="Preview mode: call the lead on screen now",
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_preview_call(ctx: Ctx) -> Accepted:
    me = _me(ctx)
    state = await _state(ctx, me)
    if state.preview_lead is None:
        raise ApiError(409, "no_preview", "there is no lead on your screen to call")
    return await _command(ctx, "preview_call", {"agent_id": me})


@router.post(
    "/preview/skip",
    status_code=202,
    summary="Preview mode: skip the lead on screen (it comes back later)",
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_preview_skip(ctx: Ctx) -> Accepted:
    me = _me(ctx)
    state = await _state(ctx, me)
    if state.preview_lead is None:
        raise ApiError(409, "no_preview", "there is no lead on your screen to skip")
    return await _command(ctx, "preview_skip", {"agent_id": me})


# --------------------------------------------------------------------------- drafts
#
# A disposition the agent submits while the customer is still on the line is kept in Redis
# (``Keys.disposition_draft``), not in the page: the API applies it when the dialer reports
# the call over (the ``agent_state`` event with state ``wrap_up``, seen by every API process's
# event feed, :func:`apply_disposition_drafts`), so closing or reloading the tab loses
# nothing, and the page restores the form from it (``GET /agent/disposition/draft``). Taking
# the draft is atomic (GET + DEL in one transaction): with several API processes, one applies
# it. Redis rather than SQL: a draft is live, short-lived state like the agent's own state
# hash, and losing Redis loses only drafts of calls in progress (the agent types it again).

#: A draft outlives any call and wrap-up; a stale one (the call never ended) expires.
DRAFT_TTL_S = 4 * 3600


class DraftOut(BaseModel):
    status: str = Field(description="saved: applied when the call ends; applied: recorded now")
    draft: DispositionIn
    outcome: DispositionOutcome | None = None


async def drop_draft(redis: aioredis.Redis, keys: Keys, agent_id: int, attempt: str) -> None:
    await redis.delete(keys.disposition_draft(agent_id, attempt))


async def take_draft(
    redis: aioredis.Redis, keys: Keys, agent_id: int, attempt: str
) -> DispositionIn | None:
    """Remove and return the agent's draft for ``attempt`` (None: none, or taken already)."""
    key = keys.disposition_draft(agent_id, attempt)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(key)
        pipe.delete(key)
        raw, deleted = await pipe.execute()
    if raw is None or not deleted:
        return None
    return DispositionIn.model_validate_json(raw)


async def _check_draft(ctx: RequestContext, me: int, body: DispositionIn) -> None:
    """Refuse now what would fail at hang-up: another agent's call, unknown codes, missing
    or invalid details."""
    if body.pause_code is not None and body.pause_code not in PAUSE_CODES:
        raise ApiError(422, "unknown_pause_code", f"unknown pause code {body.pause_code!r}")
    attempt = await ctx.db.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == body.attempt))
    # During the call the row may not name the agent yet: the agent's live state does.
    mine = attempt is not None and (
        attempt.agent_id == me
        or (attempt.agent_id is None and (await _state(ctx, me)).attempt == body.attempt)
    )
    if attempt is None or not mine:
        raise not_found("call", body.attempt)
    campaign = await ctx.db.get_one(Campaign, attempt.campaign_id)
    validate_disposition(campaign.type, body.code, body.details, ctx.now())


@router.put(
    "/disposition/draft",
    summary="Save the call's disposition during the call: recorded when the call ends",
    dependencies=[Scoped(Scope.AGENT)],
)
async def save_draft(body: DispositionIn, ctx: Ctx) -> DraftOut:
    me = _me(ctx)
    await _check_draft(ctx, me, body)
    app_state = ctx.request.app.state
    await app_state.broadcaster.start()  # this process sees the call end
    app_state.draft_clock = ctx.clock  # the requests' clock (a demo's scaled one), for then
    await ctx.redis.set(
        ctx.keys.disposition_draft(me, body.attempt), body.model_dump_json(), ex=DRAFT_TTL_S
    )
    state = await _state(ctx, me)
    if state.attempt == body.attempt and state.state == AgentState.WRAP_UP.value:
        # The call ended already (before the draft arrived): record it now.
        draft = await take_draft(ctx.redis, ctx.keys, me, body.attempt)
        if draft is not None:
            _call_cache(ctx).pop(me, None)
            outcome = await record_disposition(
                ctx.db, ctx.sessionmaker, ctx.redis, ctx.keys, me, draft, ctx.now()
            )
            return DraftOut(status="applied", draft=draft, outcome=outcome)
    return DraftOut(status="saved", draft=body)


@router.get(
    "/disposition/draft",
    summary="The disposition saved during a call (to restore the form)",
    responses={404: {"description": "No draft for this call"}},
    dependencies=[Scoped(Scope.AGENT)],
)
async def get_draft(attempt: str, ctx: Ctx) -> DraftOut:
    me = _me(ctx)
    raw = await ctx.redis.get(ctx.keys.disposition_draft(me, attempt))
    if raw is None:
        raise not_found("draft", attempt)
    return DraftOut(status="saved", draft=DispositionIn.model_validate_json(raw))


@router.delete(
    "/disposition/draft",
    status_code=204,
    summary="Drop the disposition saved during a call (the agent edits it again)",
    dependencies=[Scoped(Scope.AGENT)],
)
async def delete_draft(attempt: str, ctx: Ctx) -> Response:
    await drop_draft(ctx.redis, ctx.keys, _me(ctx), attempt)
    return Response(status_code=204)


def apply_disposition_drafts(app_state: Any) -> Callable[[StreamEntry], None]:
    """A listener for the process's event feed: when the dialer reports an agent's call over
    (``agent_state`` ``wrap_up`` with the attempt), the draft saved for that call, if any, is
    recorded in the background, as if the agent had submitted it then."""

    def on_entry(entry: StreamEntry) -> None:
        notify = True
        if entry.type == "call_ended" and isinstance(entry.data.get("transferred_by"), int):
            # a call transferred out ended: its agent's disposition, given meanwhile
            agent_id: Any = entry.data["transferred_by"]
            notify = False  # the agent was freed when they gave it
        elif entry.type == "agent_state" and entry.data.get("state") == AgentState.WRAP_UP.value:
            agent_id = entry.data.get("agent_id")
        else:
            return
        attempt = str(entry.data.get("attempt") or "")
        if not attempt or not isinstance(agent_id, int):
            return
        task = asyncio.create_task(
            apply_draft(app_state, agent_id, attempt, notify=notify), name="disposition-draft"
        )
        background: set[asyncio.Task[Any]] | None = getattr(app_state, "background", None)
        if background is not None:
            background.add(task)
            task.add_done_callback(background.discard)

    return on_entry


async def apply_draft(
    app_state: Any, agent_id: int, attempt: str, *, notify: bool = True
) -> DispositionOutcome | None:
    """Record the agent's draft for ``attempt`` if there is one (None: none, or failed: the
    failure is logged and published as ``command_rejected`` for the agent's screen, and the
    draft is kept so the page can show it again to be fixed)."""
    redis, keys = app_state.redis, app_state.keys
    draft: DispositionIn | None = None
    try:
        draft = await take_draft(redis, keys, agent_id, attempt)
        if draft is None:
            return None
        _cache_of(app_state).pop(agent_id, None)
        clock = getattr(app_state, "draft_clock", None) or getattr(app_state, "clock", None)
        now = clock.now() if clock is not None else datetime.now(UTC)
        async with app_state.sessionmaker() as db:
            return await record_disposition(
                db, app_state.sessionmaker, redis, keys, agent_id, draft, now, notify=notify
            )
    except Exception as exc:
        log.warning("disposition_draft_failed", agent=agent_id, error=repr(exc))
        with contextlib.suppress(Exception):
            if draft is not None:  # kept: the agent's page restores the form to fix it
                await redis.set(
                    keys.disposition_draft(agent_id, attempt),
                    draft.model_dump_json(),
                    ex=DRAFT_TTL_S,
                )
            await publish_event(
                redis,
                keys,
                "command_rejected",
                {"agent_id": agent_id, "command": "disposition_draft", "attempt": attempt},
            )
        return None


# --------------------------------------------------------------------------- call controls
# Hang up, mute / unmute, hold / resume and DTMF on the agent's connected call (issue 15).
# Each one is a ``call_control`` command the dialer holding the agent acts on through AMI
# (dialer.engine.Engine.call_control); it records the lead's history and the audit log. The
# API refuses what the live state already rules out (409 with a code) and waits for the
# dialer's answer like the login does: a refusal by the dialer is a 409 with its code too.


class DtmfIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digits: str = Field(
        min_length=1, max_length=32, pattern=r"^[0-9*#A-Da-d]+$", description="0-9 * # A-D"
    )


class CallControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt: str | None = Field(
        default=None, max_length=64, description="The call it is meant for (stale screens)"
    )


#: control -> (state check on the live state, or None; 409 code; message)
_CONTROL_RULES: dict[str, tuple[Callable[[LiveState], bool], str, str] | None] = {
    "hangup": None,
    "dtmf": None,
    "mute": (lambda st: not st.muted, "already_muted", "you are already muted"),
    "unmute": (lambda st: st.muted, "not_muted", "you are not muted"),
    "hold": (lambda st: st.on_hold_since is None, "already_on_hold", "the call is on hold"),
    "resume": (lambda st: st.on_hold_since is not None, "not_on_hold", "the call is not on hold"),
    "transfer": None,
    "transfer_out": (
        lambda st: st.transfer_state is None,
        "transfer_in_progress",
        "a transfer is already under way",
    ),
    "consult": (
        lambda st: st.transfer_state is None,
        "transfer_in_progress",
        "a transfer is already under way",
    ),
    "consult_complete": (
        lambda st: st.transfer_state in ("consulting", "consult_ringing"),
        "not_consulting",
        "no consult under way",
    ),
    "consult_cancel": (
        lambda st: st.transfer_state in ("consulting", "consult_ringing"),
        "not_consulting",
        "no consult under way",
    ),
}


async def _call_control(
    ctx: RequestContext, action: str, attempt: str | None, extra: dict[str, Any] | None = None
) -> Accepted:
    me = _me(ctx)
    state = await _state(ctx, me)
    _require_logged_in(state, "control a call")
    ringing = action == "hangup" and state.state == AgentState.RESERVED.value  # preview/manual
    if (state.state != AgentState.IN_CALL.value and not ringing) or not state.attempt:
        raise ApiError(409, "not_in_call", f"there is no call to control ({state.state})")
    if attempt and attempt != state.attempt:
        raise ApiError(409, "stale_call", "that call is no longer your call")
    rule = _CONTROL_RULES[action]
    if rule is not None and not rule[0](state):
        raise ApiError(409, rule[1], rule[2])
    data: dict[str, Any] = {"agent_id": me, "action": action, "attempt": state.attempt}
    accepted = await _command(ctx, "call_control", {**data, **(extra or {})})
    answer = await _await_result(ctx, accepted.command_id)
    if answer is not None and answer.get("status") == "rejected":
        raise ApiError(
            409,
            str(answer.get("code") or "call_control_refused"),
            str(answer.get("message") or "the dialer refused the call control"),
            {"command_id": accepted.command_id},
        )
    accepted.result = CommandResult(
        command_id=accepted.command_id,
        status=str(answer.get("status")) if answer else "pending",
    )
    return accepted


_CONTROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"description": "Not allowed in the agent's state (code: not_in_call, ...)"}
}


@router.post(
    "/call/hangup",
    status_code=202,
    summary="Hang up the customer (you stay in your room, then wrap up)",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_hangup(ctx: Ctx, body: CallControlIn | None = None) -> Accepted:
    return await _call_control(ctx, "hangup", body.attempt if body else None)


@router.post(
    "/call/mute",
    status_code=202,
    summary="Mute yourself toward the customer (ConfBridge mute)",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_mute(ctx: Ctx, body: CallControlIn | None = None) -> Accepted:
    return await _call_control(ctx, "mute", body.attempt if body else None)


@router.post(
    "/call/unmute",
    status_code=202,
    summary="Unmute yourself",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_unmute(ctx: Ctx, body: CallControlIn | None = None) -> Accepted:
    return await _call_control(ctx, "unmute", body.attempt if body else None)


@router.post(
    "/call/hold",
    status_code=202,
    summary="Put the customer on hold (music on hold; the hold time is recorded)",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_hold(ctx: Ctx, body: CallControlIn | None = None) -> Accepted:
    return await _call_control(ctx, "hold", body.attempt if body else None)


@router.post(
    "/call/resume",
    status_code=202,
    summary="Take the customer off hold (back into your room)",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_resume(ctx: Ctx, body: CallControlIn | None = None) -> Accepted:
    return await _call_control(ctx, "resume", body.attempt if body else None)


@router.post(
    "/call/dtmf",
    status_code=202,
    summary="Send DTMF digits to the customer's leg (a company's IVR)",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_dtmf(body: DtmfIn, ctx: Ctx) -> Accepted:
    return await _call_control(ctx, "dtmf", None, {"digits": body.digits.upper()})


class ManualDialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead_id: BodyId


@router.post(
    "/call/dial",
    status_code=202,
    summary="Dial a lead of your campaign by hand (a callback, a preview you chose)",
    responses={
        409: {"description": "Not allowed now, or the lead fails a rule (code not_eligible)"}
    },
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_dial(body: ManualDialIn, ctx: Ctx) -> Accepted:
    """Every rule of the dialer applies (``GET /leads/{id}/explain``): a refusal lists the
    failing rules with their Spanish explanation. The dialer claims the lead through the same
    check before it dials; the answered customer goes straight into your room."""
    me = _me(ctx)
    state = await _state(ctx, me)
    _require_logged_in(state, "dial")
    if state.state not in (AgentState.READY.value, AgentState.PAUSED.value) or (
        state.pause_code == "connecting"
    ):
        raise ApiError(409, "agent_busy", f"you cannot dial now ({state.state})")
    if state.preview_lead is not None:
        raise ApiError(409, "preview_pending", "call or skip the lead on your screen first")
    lead = await ctx.db.get(Lead, body.lead_id)
    if lead is None or not await ctx.can_see_campaign(lead.campaign_id):
        raise not_found("lead", body.lead_id)
    if lead.campaign_id != state.campaign_id:
        raise ApiError(409, "lead_not_in_campaign", "the lead is not in your current campaign")
    await ctx.db.rollback()
    readiness = await EngineStore(ctx.sessionmaker).readiness(body.lead_id, ctx.now())
    if not readiness.ready:
        raise ApiError(
            409,
            "not_eligible",
            readiness.summary_en(),
            {
                "summary_es": readiness.summary_es(),
                "ready_at": readiness.ready_at.isoformat() if readiness.ready_at else None,
                "rules": [r.to_dict() for r in readiness.failed],
            },
        )
    accepted = await _command(ctx, "manual_dial", {"agent_id": me, "lead_id": body.lead_id})
    answer = await _await_result(ctx, accepted.command_id)
    if answer is not None and answer.get("status") == "rejected":
        raise ApiError(
            409,
            str(answer.get("code") or "manual_dial_refused"),
            str(answer.get("message") or "the dialer refused the call"),
            {"command_id": accepted.command_id},
        )
    accepted.result = CommandResult(
        command_id=accepted.command_id,
        status=str(answer.get("status")) if answer else "pending",
    )
    return accepted


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_agent_id: BodyId = Field(description="A READY agent of your campaign")
    attempt: str | None = Field(default=None, max_length=64)


class TransferTarget(BaseModel):
    id: int
    full_name: str
    extension: str | None
    state: str


async def _transfer_targets(ctx: RequestContext, me: int, campaign_id: int) -> list[TransferTarget]:
    """The other agents logged in to ``campaign_id`` (with their live state)."""
    raw_online: set[str] = await ctx.redis.smembers(ctx.keys.agents_online)  # type: ignore[misc]
    online = sorted(int(x) for x in raw_online if str(x).isdigit() and int(x) != me)
    out: list[TransferTarget] = []
    for user_id in online:
        live = await live_agent_state(ctx.redis, ctx.keys, user_id)
        if live.get("campaign_id") != str(campaign_id):
            continue
        user = await ctx.db.get(User, user_id)
        if user is None:
            continue
        out.append(
            TransferTarget(
                id=user_id,
                full_name=user.full_name,
                extension=live.get("extension") or user.extension,
                state=live.get("state") or AgentState.LOGGED_OUT.value,
            )
        )
    return out


@router.get(
    "/transfer-targets",
    summary="Agents of your campaign you may transfer your call to (READY ones can take it)",
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_transfer_targets(ctx: Ctx) -> list[TransferTarget]:
    me = _me(ctx)
    state = await _state(ctx, me)
    if state.campaign_id is None:
        return []
    return await _transfer_targets(ctx, me, state.campaign_id)


@router.post(
    "/call/transfer",
    status_code=202,
    summary="Blind transfer of your call to a READY agent of your campaign",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_transfer(body: TransferIn, ctx: Ctx) -> Accepted:
    """The lead, its history and the disposition go with the call to the new agent; you are
    READY at once."""
    me = _me(ctx)
    state = await _state(ctx, me)
    if state.campaign_id is not None and state.state == AgentState.IN_CALL.value:
        targets = {t.id: t for t in await _transfer_targets(ctx, me, state.campaign_id)}
        target = targets.get(body.target_agent_id)
        if target is None or target.state != AgentState.READY.value:
            raise ApiError(409, "target_unavailable", "that agent is not ready in your campaign")
    return await _call_control(
        ctx, "transfer", body.attempt, {"target_agent_id": body.target_agent_id}
    )


# --------------------------------------------------------------------------- transfers out
# To a supervisor's seat or an allowed external number, blind or attended (docs/web.md "Call
# controls"). The API resolves the target (a supervisor with a seat; a number on the admin's
# allow list, ``/transfer-numbers``) and the dialer acts (dialer.engine.transfers).


class Destination(BaseModel):
    kind: Literal["supervisor", "external"]
    id: int = Field(description="The supervisor's user id, or the allowed number's id")
    label: str
    extension: str | None = Field(default=None, description="Supervisors: their seat")


class TransferDestinations(BaseModel):
    agents: list[TransferTarget] = Field(description="Agents of your campaign (blind only)")
    supervisors: list[Destination]
    external: list[Destination] = Field(description="The admin's allow list (labels)")


class TransferOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_kind: Literal["supervisor", "external"]
    target_id: BodyId = Field(description="Supervisor user id, or allowed number id")
    attempt: str | None = Field(default=None, max_length=64)


async def _supervisors(ctx: RequestContext) -> list[Destination]:
    rows = await ctx.db.scalars(
        sa.select(User)
        .where(User.role == Role.SUPERVISOR, User.active.is_(True), User.extension.is_not(None))
        .order_by(User.full_name, User.id)
    )
    return [
        Destination(
            kind="supervisor", id=u.id, label=u.full_name or u.username, extension=u.extension
        )
        for u in rows
    ]


async def _external(ctx: RequestContext) -> list[Destination]:
    rows = await ctx.db.scalars(sa.select(TransferNumber).order_by(TransferNumber.label))
    return [Destination(kind="external", id=r.id, label=r.label) for r in rows]


@router.get(
    "/transfer-destinations",
    summary="Where you may transfer your call: agents, supervisors, allowed external numbers",
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_transfer_destinations(ctx: Ctx) -> TransferDestinations:
    me = _me(ctx)
    state = await _state(ctx, me)
    campaign = state.campaign_id
    agents = [] if campaign is None else await _transfer_targets(ctx, me, campaign)
    return TransferDestinations(
        agents=agents, supervisors=await _supervisors(ctx), external=await _external(ctx)
    )


async def _transfer_out(ctx: RequestContext, action: str, body: TransferOutIn) -> Accepted:
    if body.target_kind == "supervisor":
        user = await ctx.db.get(User, body.target_id)
        if user is None or user.role != Role.SUPERVISOR or not user.active or not user.extension:
            raise ApiError(409, "target_unavailable", "no such supervisor with a seat")
        target, label = user.extension, user.full_name or user.username
    else:
        row = await ctx.db.get(TransferNumber, body.target_id)
        if row is None:
            raise ApiError(
                409, "number_not_allowed", "that number is not on the allowed transfer list"
            )
        target, label = row.e164, row.label
    return await _call_control(
        ctx,
        action,
        body.attempt,
        {"target_kind": body.target_kind, "target": target, "target_label": label},
    )


@router.post(
    "/call/transfer-out",
    status_code=202,
    summary="Blind transfer of your call to a supervisor or an allowed external number",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_transfer_out(body: TransferOutIn, ctx: Ctx) -> Accepted:
    """The customer waits on hold while the target rings; once it answers the customer is
    with them and you wrap up the call (your disposition, recorded when the call ends). No
    answer: the customer comes back to you."""
    return await _transfer_out(ctx, "transfer_out", body)


@router.post(
    "/call/consult",
    status_code=202,
    summary="Attended transfer, step 1: consult a supervisor or an allowed external number",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_consult(body: TransferOutIn, ctx: Ctx) -> Accepted:
    """The customer waits on hold; the target joins your room to talk with you. Then
    ``/call/consult/complete`` or ``/call/consult/cancel``."""
    return await _transfer_out(ctx, "consult", body)


@router.post(
    "/call/consult/complete",
    status_code=202,
    summary="Attended transfer, step 2: join the customer and the consulted party",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_consult_complete(ctx: Ctx, body: CallControlIn | None = None) -> Accepted:
    return await _call_control(ctx, "consult_complete", body.attempt if body else None)


@router.post(
    "/call/consult/cancel",
    status_code=202,
    summary="Attended transfer, step 2: hang up the consulted party, back to the customer",
    responses=_CONTROL_RESPONSES,
    dependencies=[Scoped(Scope.AGENT)],
)
async def agent_call_consult_cancel(ctx: Ctx, body: CallControlIn | None = None) -> Accepted:
    return await _call_control(ctx, "consult_cancel", body.attempt if body else None)


class PhoneOut(BaseModel):
    kind: str = Field(
        description="browser: the agent page registers the extension over WebSocket (WebRTC); "
        "softphone: a hardware/desktop softphone registers it (nothing to do in the page)"
    )
    extension: str | None
    ws_url: str = Field(default="", description="SIP over WebSocket URL (browser only)")
    domain: str = Field(default="", description="SIP domain of the REGISTER (browser only)")
    password: str = Field(default="", description="The seat's SIP password (browser only)")


@router.get(
    "/phone",
    summary="The user's phone: browser (WebRTC, with its SIP credentials) or softphone",
    response_model=PhoneOut,
    responses={403: {"description": "Neither an agent nor a supervisor who may spy"}},
)
async def agent_phone(ctx: Ctx, response: Response) -> PhoneOut:
    """Whether the signed-in user's profile extension is a browser-phone seat
    (``MARCADOR_WEBRTC__EXTENSIONS``) and, if so, what the page needs to register it: only the
    caller's own seat's password, never another's. Not cached by the browser. For agents (the
    agent screen) and for supervisors (listen / whisper / barge ring their own extension)."""
    if not (ctx.principal.has(Scope.AGENT) or ctx.principal.has(Scope.AGENTS_WRITE)):
        raise ApiError(403, "forbidden", "only agents and supervisors have a phone")
    me = _me(ctx)
    user = await ctx.db.get_one(User, me)
    response.headers["Cache-Control"] = "no-store"
    webrtc = ctx.settings.webrtc
    if not webrtc.ws_url or not is_browser_seat(webrtc.extensions, user.extension):
        return PhoneOut(kind="softphone", extension=user.extension)
    assert user.extension is not None
    host = urlsplit(webrtc.ws_url).hostname or ""
    return PhoneOut(
        kind="browser",
        extension=user.extension,
        ws_url=webrtc.ws_url,
        domain=host,
        password=seat_password(webrtc.secret.get_secret_value(), user.extension),
    )
