"""Campaigns: CRUD, presets, lifecycle (start / pause / stop), dispositions and live stats.

Lifecycle: ``draft -> running <-> paused -> finished`` (``stop`` also ends a running
campaign). The API only writes ``Campaign.status``; the dialer re-reads it every tick.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.auth import Scope
from api.cache import STATS_CACHE_S, cache_ttl, cached, forget
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.presets import (
    PRESETS,
    check_timezone,
    normalize_retry_rules,
    normalize_rules,
    normalize_window,
    preset_for,
)
from api.types import PathId
from dialer.db.models import Campaign, UserCampaign
from dialer.domain.dispositions import catalogue_for
from dialer.domain.outcomes import CampaignStatus, CampaignType, DialMode
from dialer.domain.script import PLACEHOLDERS, unknown_placeholders
from dialer.store import EngineStore, campaign_abandon_stats, reschedule_deferred

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

#: Surrounding spaces are dropped; a name of spaces only is refused (422).
CampaignName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
]


class CampaignFields(BaseModel):
    """Editable campaign settings (every field optional on update)."""

    model_config = ConfigDict(extra="forbid")

    dial_mode: DialMode | None = None
    dial_ratio: float | None = Field(default=None, ge=1.0, le=10.0)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    max_attempts_per_phone: int | None = Field(default=None, ge=1, le=20)
    retry_rules: dict[str, Any] | None = Field(
        default=None, description="RetryPolicy overrides, e.g. {'busy': 'PT30M'}"
    )
    call_window: dict[str, Any] | None = Field(
        default=None,
        description="Weekly window: {'mon': [{'start': '08:00', 'end': '18:00'}], ...}",
    )
    rules: dict[str, Any] | None = Field(default=None, description="CampaignRules fields")
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    caller_id: str | None = Field(default=None, max_length=64)
    script: str | None = Field(
        default=None,
        max_length=20_000,
        description="Guion shown to the agent. Placeholders filled from the lead: "
        + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        + ". Any other {name} is refused (422 unknown_placeholder).",
    )
    amd_enabled: bool | None = None
    abandon_target: float | None = Field(default=None, gt=0, le=0.03)
    connect_timeout: float | None = Field(default=None, gt=0, le=2.0)
    ring_timeout: int | None = Field(default=None, ge=15, le=120)
    wrap_up_seconds: int | None = Field(default=None, ge=0, le=3600)
    whatsapp_enabled: bool | None = None
    whatsapp_template: str | None = Field(default=None, max_length=120)
    whatsapp_language: str | None = Field(default=None, max_length=16)
    whatsapp_image: str | None = Field(default=None, max_length=500)
    dealer_phones: str | None = Field(default=None, max_length=200)
    servers: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = None
    trunk: str | None = Field(default=None, max_length=200)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    record_calls: bool | None = Field(
        default=None, description="Record connected calls (stereo WAV, docs/recording.md)."
    )
    recording_retention_days: int | None = Field(
        default=None, ge=1, le=3650, description="Days a recording is kept, then purged."
    )
    recording_consent_prompt: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_/.-]*$",
        description="Sound file played to the customer on connect; empty: no prompt.",
    )

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone offset")
        return value


class CampaignCreate(CampaignFields):
    name: CampaignName
    type: CampaignType


class CampaignUpdate(CampaignFields):
    name: CampaignName | None = None


class CampaignOut(BaseModel):
    id: int
    name: str
    type: CampaignType
    status: CampaignStatus
    dial_mode: DialMode
    dial_ratio: float
    max_attempts: int
    max_attempts_per_phone: int
    retry_rules: dict[str, Any]
    call_window: dict[str, Any]
    rules: dict[str, Any]
    timezone: str
    caller_id: str
    script: str
    amd_enabled: bool
    abandon_target: float
    connect_timeout: float
    ring_timeout: int
    wrap_up_seconds: int
    whatsapp_enabled: bool
    whatsapp_template: str
    whatsapp_language: str
    whatsapp_image: str
    dealer_phones: str
    servers: list[str]
    trunk: str
    starts_at: datetime | None
    ends_at: datetime | None
    record_calls: bool
    recording_retention_days: int
    recording_consent_prompt: str
    created_at: datetime
    updated_at: datetime


class PresetOut(BaseModel):
    type: CampaignType
    description: str
    values: dict[str, Any]


class DispositionOut(BaseModel):
    code: str
    label_es: str
    label_en: str
    effect: str
    required: list[str]
    reason_options: list[dict[str, str]]
    area_options: list[dict[str, str]]


class StatsOut(BaseModel):
    campaign_id: int
    status: CampaignStatus
    leads: dict[str, int]
    abandoned_today: int
    live_answers_today: int
    abandon_rate_today: float
    abandoned_30d: int
    live_answers_30d: int
    abandon_rate_30d: float
    abandon_target: float
    live: dict[str, str]


def campaign_out(c: Campaign) -> CampaignOut:
    servers = c.servers.get("names", []) if isinstance(c.servers, dict) else []
    return CampaignOut(
        id=c.id,
        name=c.name,
        type=c.type,
        status=c.status,
        dial_mode=c.dial_mode,
        dial_ratio=c.dial_ratio,
        max_attempts=c.max_attempts,
        max_attempts_per_phone=c.max_attempts_per_phone,
        retry_rules=dict(c.retry_rules or {}),
        call_window=dict(c.call_window or {}),
        rules=dict(c.rules or {}),
        timezone=c.timezone,
        caller_id=c.caller_id,
        script=c.script,
        amd_enabled=c.amd_enabled,
        abandon_target=c.abandon_target,
        connect_timeout=c.connect_timeout,
        ring_timeout=c.ring_timeout,
        wrap_up_seconds=c.wrap_up_seconds,
        whatsapp_enabled=c.whatsapp_enabled,
        whatsapp_template=c.whatsapp_template,
        whatsapp_language=c.whatsapp_language,
        whatsapp_image=c.whatsapp_image,
        dealer_phones=c.dealer_phones,
        servers=[str(s) for s in servers],
        trunk=c.trunk,
        starts_at=c.starts_at,
        ends_at=c.ends_at,
        record_calls=c.record_calls,
        recording_retention_days=c.recording_retention_days,
        recording_consent_prompt=c.recording_consent_prompt,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


async def load_campaign(ctx: RequestContext, campaign_id: int) -> Campaign:
    """The campaign, or 404 when it does not exist or the caller may not see it."""
    campaign = await ctx.db.get(Campaign, campaign_id)
    if campaign is None or not await ctx.can_see_campaign(campaign_id):
        raise not_found("campaign", campaign_id)
    return campaign


def _apply(campaign: Campaign, values: dict[str, Any], campaign_type: CampaignType) -> list[str]:
    """Validate and set fields; returns the names of the fields changed."""
    if "call_window" in values:
        values["call_window"] = normalize_window(values["call_window"] or {})
    if "rules" in values:
        values["rules"] = normalize_rules(campaign_type, values["rules"] or {})
    if "retry_rules" in values:
        stored, columns = normalize_retry_rules(campaign_type, values["retry_rules"] or {})
        values["retry_rules"] = stored
        for key, value in columns.items():
            values.setdefault(key, value)
    if "timezone" in values and values["timezone"] is not None:
        check_timezone(values["timezone"])
    if "servers" in values:
        values["servers"] = {"names": list(values["servers"] or [])}
    if values.get("script"):
        unknown = unknown_placeholders(values["script"])
        if unknown:
            valid = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
            raise ApiError(
                422,
                "unknown_placeholder",
                f"the script uses unknown placeholders: "
                f"{', '.join(f'{{{u}}}' for u in unknown)}. Valid: {valid}",
                {"unknown": unknown, "valid": dict(PLACEHOLDERS)},
            )
    changed = []
    for key, value in values.items():
        if value is None and key not in ("starts_at", "ends_at"):
            continue
        setattr(campaign, key, value)
        changed.append(key)
    starts, ends = campaign.starts_at, campaign.ends_at
    if starts is not None and ends is not None and ends <= starts:
        raise ApiError(422, "invalid_dates", "ends_at must be after starts_at")
    return sorted(changed)


@router.get("", summary="Campaigns the caller may see", dependencies=[Scoped(Scope.CAMPAIGNS_READ)])
async def list_campaigns(
    ctx: Ctx,
    status: CampaignStatus | None = None,
    type: CampaignType | None = None,
) -> list[CampaignOut]:
    q = sa.select(Campaign).order_by(Campaign.id)
    scope = await ctx.campaign_scope()
    if scope is not None:
        q = q.where(Campaign.id.in_(scope))
    if status is not None:
        q = q.where(Campaign.status == status)
    if type is not None:
        q = q.where(Campaign.type == type)
    return [campaign_out(c) for c in await ctx.db.scalars(q)]


@router.get(
    "/script-placeholders",
    summary="Placeholders a campaign script (guion) may use, with what fills each",
    dependencies=[Scoped(Scope.CAMPAIGNS_READ)],
)
async def script_placeholders() -> dict[str, str]:
    return dict(PLACEHOLDERS)


@router.get(
    "/presets",
    summary="Default settings per campaign type (from the seed procedures)",
    dependencies=[Scoped(Scope.CAMPAIGNS_READ)],
)
async def presets() -> list[PresetOut]:
    return [
        PresetOut(type=t, description=str(PRESETS[t]["description"]), values=preset_for(t))
        for t in CampaignType
    ]


@router.post(
    "",
    status_code=201,
    summary="Create a campaign (preset of its type + the given fields)",
    dependencies=[Scoped(Scope.CAMPAIGNS_WRITE)],
)
async def create_campaign(body: CampaignCreate, ctx: Ctx) -> CampaignOut:
    exists = await ctx.db.scalar(sa.select(Campaign.id).where(Campaign.name == body.name))
    if exists is not None:
        raise ApiError(409, "duplicate_name", f"a campaign named {body.name!r} already exists")
    values = preset_for(body.type)
    values.update(body.model_dump(exclude_unset=True, exclude={"name", "type"}))
    values.setdefault("call_window", {})
    campaign = Campaign(name=body.name, type=body.type, status=CampaignStatus.DRAFT)
    _apply(campaign, values, body.type)
    ctx.db.add(campaign)
    await ctx.db.flush()
    if ctx.principal.is_supervisor and ctx.principal.user_id is not None:
        ctx.db.add(UserCampaign(user_id=ctx.principal.user_id, campaign_id=campaign.id))
    ctx.audit("campaign.create", "campaign", campaign.id, name=body.name, type=body.type.value)
    await ctx.commit()
    if ctx.principal.is_supervisor:
        await ctx.auth_changed()  # the creator's campaign scope grew
    await ctx.db.refresh(campaign)
    return campaign_out(campaign)


@router.get("/{campaign_id}", summary="One campaign", dependencies=[Scoped(Scope.CAMPAIGNS_READ)])
async def get_campaign(campaign_id: PathId, ctx: Ctx) -> CampaignOut:
    return campaign_out(await load_campaign(ctx, campaign_id))


@router.patch(
    "/{campaign_id}",
    summary="Edit a campaign (not once finished)",
    dependencies=[Scoped(Scope.CAMPAIGNS_WRITE)],
)
async def update_campaign(campaign_id: PathId, body: CampaignUpdate, ctx: Ctx) -> CampaignOut:
    campaign = await load_campaign(ctx, campaign_id)
    if campaign.status is CampaignStatus.FINISHED:
        raise ApiError(409, "campaign_finished", "a finished campaign cannot be edited")
    values = body.model_dump(exclude_unset=True)
    if values.get("name") and values["name"] != campaign.name:
        dup = await ctx.db.scalar(sa.select(Campaign.id).where(Campaign.name == values["name"]))
        if dup is not None:
            raise ApiError(409, "duplicate_name", f"a campaign named {values['name']!r} exists")
    before = (campaign.timezone, campaign.call_window)
    changed = _apply(campaign, values, campaign.type)
    if (campaign.timezone, campaign.call_window) != before:
        # Leads deferred by the old zone/window are re-evaluated under the new one.
        await ctx.db.flush()
        await reschedule_deferred(ctx.db, campaign.id, ctx.now(), "campaign_zone_or_window_changed")
    ctx.audit("campaign.update", "campaign", campaign.id, fields=changed)
    await ctx.commit()
    forget(ctx.request.app.state, campaign.id)
    await ctx.db.refresh(campaign)
    return campaign_out(campaign)


@router.delete(
    "/{campaign_id}",
    status_code=204,
    summary="Delete a draft campaign (with its leads)",
    dependencies=[Scoped(Scope.CAMPAIGNS_WRITE)],
)
async def delete_campaign(campaign_id: PathId, ctx: Ctx) -> None:
    campaign = await load_campaign(ctx, campaign_id)
    if campaign.status is not CampaignStatus.DRAFT:
        raise ApiError(
            409,
            "campaign_not_draft",
            f"only draft campaigns can be deleted; this one is {campaign.status.value} "
            "(stop it instead)",
        )
    ctx.audit("campaign.delete", "campaign", campaign.id, name=campaign.name)
    await ctx.db.delete(campaign)
    await ctx.commit()
    forget(ctx.request.app.state, campaign_id)


TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "start": (frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED}), CampaignStatus.RUNNING),
    "pause": (frozenset({CampaignStatus.RUNNING}), CampaignStatus.PAUSED),
    "stop": (frozenset({CampaignStatus.RUNNING, CampaignStatus.PAUSED}), CampaignStatus.FINISHED),
}


async def _transition(ctx: RequestContext, campaign_id: int, action: str) -> CampaignOut:
    campaign = await load_campaign(ctx, campaign_id)
    allowed, target = TRANSITIONS[action]
    if campaign.status not in allowed:
        raise ApiError(
            409,
            "invalid_transition",
            f"cannot {action} a {campaign.status.value} campaign",
            {"status": campaign.status.value, "allowed_from": sorted(s.value for s in allowed)},
        )
    if action == "start" and campaign.ends_at is not None and campaign.ends_at <= ctx.now():
        raise ApiError(409, "campaign_ended", "the campaign's end date has passed")
    before = campaign.status
    campaign.status = target
    ctx.audit(
        f"campaign.{action}", "campaign", campaign.id, before=before.value, after=target.value
    )
    await ctx.commit()
    forget(ctx.request.app.state, campaign.id)
    await ctx.db.refresh(campaign)
    return campaign_out(campaign)


@router.post(
    "/{campaign_id}/start",
    summary="Start or resume dialing",
    dependencies=[Scoped(Scope.CAMPAIGNS_WRITE)],
)
async def start_campaign(campaign_id: PathId, ctx: Ctx) -> CampaignOut:
    return await _transition(ctx, campaign_id, "start")


@router.post(
    "/{campaign_id}/pause", summary="Pause dialing", dependencies=[Scoped(Scope.CAMPAIGNS_WRITE)]
)
async def pause_campaign(campaign_id: PathId, ctx: Ctx) -> CampaignOut:
    return await _transition(ctx, campaign_id, "pause")


@router.post(
    "/{campaign_id}/stop",
    summary="Finish the campaign (final)",
    dependencies=[Scoped(Scope.CAMPAIGNS_WRITE)],
)
async def stop_campaign(campaign_id: PathId, ctx: Ctx) -> CampaignOut:
    return await _transition(ctx, campaign_id, "stop")


@router.get(
    "/{campaign_id}/dispositions",
    summary="The campaign's disposition list (labels, required fields, options)",
    dependencies=[Scoped(Scope.CAMPAIGNS_READ)],
)
async def dispositions(campaign_id: PathId, ctx: Ctx) -> list[DispositionOut]:
    campaign = await load_campaign(ctx, campaign_id)
    return disposition_list(campaign.type)


def disposition_list(campaign_type: CampaignType) -> list[DispositionOut]:
    return [
        DispositionOut(
            code=d.code.value,
            label_es=d.label_es,
            label_en=d.label_en,
            effect=d.effect.value,
            required=[f.value for f in d.required],
            reason_options=[o.model_dump() for o in d.reason_options],
            area_options=[o.model_dump() for o in d.area_options],
        )
        for d in catalogue_for(campaign_type)
    ]


@router.get(
    "/{campaign_id}/stats",
    summary="Leads by status, abandon rate today and over 30 days, live counters",
    dependencies=[Scoped(Scope.CAMPAIGNS_READ)],
    response_model=StatsOut,
)
async def stats(campaign_id: PathId, ctx: Ctx) -> Response:
    """Cached per campaign like ``/live`` (:mod:`api.cache`); access is checked first."""
    if not await ctx.can_see_campaign(campaign_id):
        raise not_found("campaign", campaign_id)
    state = ctx.request.app.state

    async def compute() -> StatsOut:
        async with ctx.sessionmaker() as db:  # its own session: it may outlive the request
            return await _stats(replace(ctx, db=db), campaign_id)

    ttl = cache_ttl(state)
    ttl = max(ttl, STATS_CACHE_S) if ttl else 0
    return (await cached(state, "stats", campaign_id, ttl, compute)).response()


async def _stats(ctx: RequestContext, campaign_id: int) -> StatsOut:
    campaign = await load_campaign(ctx, campaign_id)
    now = ctx.now()
    counts = await EngineStore(ctx.sessionmaker).counts(campaign_id, now)
    ab_d, live_d, ab_m, live_m = await campaign_abandon_stats(
        ctx.db, campaign_id, now, campaign.timezone
    )
    live: dict[str, str] = await ctx.redis.hgetall(ctx.keys.campaign_live(campaign_id))  # type: ignore[misc]
    return StatsOut(
        campaign_id=campaign_id,
        status=campaign.status,
        leads=counts,
        abandoned_today=ab_d,
        live_answers_today=live_d,
        abandon_rate_today=ab_d / live_d if live_d else 0.0,
        abandoned_30d=ab_m,
        live_answers_30d=live_m,
        abandon_rate_30d=ab_m / live_m if live_m else 0.0,
        abandon_target=campaign.abandon_target,
        live={str(k): str(v) for k, v in live.items()},
    )
