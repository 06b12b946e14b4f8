"""Agents as supervisors see them: live state, and force pause / log out."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Scope
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.events import (
    last_event_id,
    live_agent_state,
    seconds_since,
    send_command,
    wait_for_event,
)
from api.routers.agent import Accepted
from api.types import PathId
from dialer.db.models import Role, User, UserCampaign
from dialer.domain.agents import PAUSE_CODES
from dialer.domain.outcomes import AgentState

router = APIRouter(prefix="/agents", tags=["agents"])


class AgentOut(BaseModel):
    id: int
    username: str
    full_name: str
    extension: str | None
    active: bool
    campaign_ids: list[int]
    state: str
    seconds_in_state: float | None
    live_campaign_id: int | None
    pause_code: str | None
    attempt: str | None


class ForcePauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(default="supervisor")


async def _visible_agents(ctx: RequestContext) -> list[User]:
    q = sa.select(User).where(User.role == Role.AGENT).order_by(User.id)
    scope = await ctx.campaign_scope()
    if scope is not None:
        q = q.where(
            User.id.in_(sa.select(UserCampaign.user_id).where(UserCampaign.campaign_id.in_(scope)))
        )
    return list(await ctx.db.scalars(q))


async def _agent_out(ctx: RequestContext, user: User, campaigns: list[int]) -> AgentOut:
    raw = await live_agent_state(ctx.redis, ctx.keys, user.id)
    since = raw.get("since") or ""
    cid = raw.get("campaign_id") or ""
    return AgentOut(
        id=user.id,
        username=user.username,
        full_name=user.full_name,
        extension=user.extension,
        active=user.active,
        campaign_ids=campaigns,
        state=raw.get("state") or AgentState.LOGGED_OUT.value,
        seconds_in_state=seconds_since(since, ctx.now()) if since else None,
        live_campaign_id=int(cid) if cid.isdigit() else None,
        pause_code=raw.get("pause_code") or None,
        attempt=raw.get("attempt") or None,
    )


@router.get("", summary="Agents with their live state", dependencies=[Scoped(Scope.AGENTS_READ)])
async def list_agents(ctx: Ctx) -> list[AgentOut]:
    users = await _visible_agents(ctx)
    links = await ctx.db.execute(
        sa.select(UserCampaign.user_id, UserCampaign.campaign_id).where(
            UserCampaign.user_id.in_([u.id for u in users])
        )
    )
    by_user: dict[int, list[int]] = {}
    for uid, cid in links:
        by_user.setdefault(uid, []).append(cid)
    return [await _agent_out(ctx, u, sorted(by_user.get(u.id, []))) for u in users]


async def _load_agent(ctx: RequestContext, agent_id: int) -> User:
    for user in await _visible_agents(ctx):
        if user.id == agent_id:
            return user
    raise not_found("agent", agent_id)


@router.post(
    "/{agent_id}/pause",
    status_code=202,
    summary="Force an agent into pause",
    dependencies=[Scoped(Scope.AGENTS_WRITE)],
)
async def force_pause(agent_id: PathId, body: ForcePauseIn, ctx: Ctx) -> Accepted:
    user = await _load_agent(ctx, agent_id)
    if body.code not in PAUSE_CODES:
        raise ApiError(422, "unknown_pause_code", f"unknown pause code {body.code!r}")
    command_id = await send_command(
        ctx.redis, ctx.keys, "agent_pause", {"agent_id": user.id, "code": body.code}
    )
    ctx.audit("agent.force_pause", "user", user.id, code=body.code)
    await ctx.commit()
    return Accepted(command="agent_pause", command_id=command_id)


@router.post(
    "/{agent_id}/logout",
    status_code=202,
    summary="Force an agent to log out",
    dependencies=[Scoped(Scope.AGENTS_WRITE)],
)
async def force_logout(agent_id: PathId, ctx: Ctx) -> Accepted:
    user = await _load_agent(ctx, agent_id)
    command_id = await send_command(ctx.redis, ctx.keys, "agent_logout", {"agent_id": user.id})
    ctx.audit("agent.force_logout", "user", user.id)
    await ctx.commit()
    return Accepted(command="agent_logout", command_id=command_id)


class SpyIn(BaseModel):
    mode: Literal["listen", "whisper", "barge"]


class SpyOut(BaseModel):
    status: Literal["ringing", "pending"]
    command: str = "spy"
    command_id: str
    #: ChannelId of the supervisor's spy call (``spy_*`` events carry it); None while pending.
    spy: str | None = None


#: How long ``POST /agents/{id}/spy`` waits for the dialer's verdict on the Originate (Asterisk
#: refuses or queues it within milliseconds). Without a verdict by then: 202 ``pending``, and
#: the outcome follows on the event stream (``spy_ringing`` / ``spy_failed``).
SPY_REPLY_S = 3.0
_SPY_REPLIES = ("spy_ringing", "spy_failed", "command_rejected")


@router.post(
    "/{agent_id}/spy",
    status_code=202,
    summary="Listen, whisper or barge on an agent's call (rings the supervisor's softphone)",
    description=(
        "Rings the supervisor's own extension; once answered they hear the agent's current "
        "call (whisper: only the agent hears them; barge: both do). The spy ends with that "
        "call, with `DELETE /agents/{id}/spy`, or when the supervisor starts another one. "
        "409 `agent_not_in_call` / `spy_failed` (with the dialer's reason, e.g. the PBX "
        "refused the call) instead of a silent 202. 202 `ringing`: the supervisor's phone is "
        "being called; then events `spy_started`, `spy_failed` (phone not answered or not "
        "registered) and `spy_ended`."
    ),
    responses={409: {"description": "The agent is not on a call, or the PBX refused the spy"}},
    dependencies=[Scoped(Scope.AGENTS_WRITE)],
)
async def spy_agent(agent_id: PathId, body: SpyIn, ctx: Ctx) -> SpyOut:
    user = await _load_agent(ctx, agent_id)
    me = await ctx.db.get(User, ctx.principal.user_id) if ctx.principal.user_id else None
    if me is None or not me.extension:
        raise ApiError(
            409, "no_extension", "set your own extension (softphone) before listening to calls"
        )
    live = await live_agent_state(ctx.redis, ctx.keys, user.id)
    if live.get("state") != AgentState.IN_CALL.value:
        raise ApiError(409, "agent_not_in_call", "the agent is not on a call")
    after = await last_event_id(ctx.redis, ctx.keys)
    command_id = await send_command(
        ctx.redis,
        ctx.keys,
        "spy",
        {
            "agent_id": user.id,
            "supervisor_id": me.id,
            "supervisor_extension": me.extension,
            "mode": body.mode,
        },
    )
    ctx.audit("agent.spy", "user", user.id, mode=body.mode)
    await ctx.commit()
    reply = await wait_for_event(
        ctx.redis,
        ctx.keys,
        after,
        lambda e: e.type in _SPY_REPLIES and e.data.get("command_id") == command_id,
        SPY_REPLY_S,
    )
    if reply is None:
        return SpyOut(status="pending", command_id=command_id)
    if reply.type != "spy_ringing":
        code = str(reply.data.get("code") or "spy_failed")
        reason = str(reply.data.get("reason") or reply.data.get("error") or "")
        raise ApiError(
            409,
            "agent_not_in_call" if code == "agent_not_in_call" else "spy_failed",
            f"the call to your extension could not be placed: {reason or code}",
            {"reason": reason, "dialer_code": code},
        )
    return SpyOut(status="ringing", command_id=command_id, spy=str(reply.data.get("spy") or ""))


@router.delete(
    "/{agent_id}/spy",
    status_code=202,
    summary="Stop listening (hangs up your spy call on this agent)",
    dependencies=[Scoped(Scope.AGENTS_WRITE)],
)
async def stop_spy(agent_id: PathId, ctx: Ctx) -> Accepted:
    user = await _load_agent(ctx, agent_id)
    me = await ctx.db.get(User, ctx.principal.user_id) if ctx.principal.user_id else None
    command_id = await send_command(
        ctx.redis,
        ctx.keys,
        "spy_stop",
        {
            "agent_id": user.id,
            "supervisor_id": ctx.principal.user_id,
            "supervisor_extension": me.extension if me and me.extension else "",
        },
    )
    ctx.audit("agent.spy_stop", "user", user.id)
    await ctx.commit()
    return Accepted(command="spy_stop", command_id=command_id)
