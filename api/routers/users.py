"""Users (admin): create, edit, deactivate, assign campaigns. Passwords are argon2 hashes.

Changing a password, the role or deactivating a user signs them out everywhere. Creating or
editing an admin needs the ``admin`` scope itself (a ``users:write`` API key cannot mint
admins).
"""

from __future__ import annotations

import re
from typing import Annotated

import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import (
    Scope,
    SessionStore,
    check_password_strength,
    hash_password,
)
from api.deps import Ctx, RequestContext, Scoped
from api.errors import ApiError, not_found
from api.routers.auth import UserOut, user_out
from api.types import BodyId, PathId
from dialer.db.models import Campaign, Role, User, UserCampaign

router = APIRouter(prefix="/users", tags=["users"])

USERNAME = re.compile(r"^[a-zA-Z0-9_.@-]{3,64}$")
EXTENSION = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def check_extension(value: str | None) -> str | None:
    if value is not None and not EXTENSION.fullmatch(value):
        raise ValueError("extension: 1-32 letters, digits, '_', '.', '-' (a PJSIP endpoint)")
    return value


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    role: Role
    full_name: str = Field(default="", max_length=120)
    extension: str | None = None
    campaign_ids: list[BodyId] = Field(default_factory=list, max_length=500)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not USERNAME.fullmatch(value):
            raise ValueError("username: 3-64 letters, digits, '_', '.', '@', '-'")
        return value

    @field_validator("extension")
    @classmethod
    def _extension(cls, value: str | None) -> str | None:
        return check_extension(value)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: str | None = Field(default=None, max_length=120)
    role: Role | None = None
    extension: str | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("extension")
    @classmethod
    def _extension(cls, value: str | None) -> str | None:
        return check_extension(value)


class CampaignsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_ids: list[BodyId] = Field(max_length=500)


class UserDetail(UserOut):
    campaign_ids: list[int]


def _needs_admin(ctx: RequestContext, role: Role | None) -> None:
    if role is Role.ADMIN and not ctx.principal.is_admin:
        raise ApiError(403, "forbidden", "only an admin can create or edit admins")


def _password(ctx: RequestContext, password: str) -> str:
    problem = check_password_strength(password)
    if problem is not None:
        raise ApiError(422, "weak_password", problem)
    hasher: PasswordHasher = ctx.request.app.state.password_hasher
    return hash_password(hasher, password)


async def _campaign_ids(ctx: RequestContext, user_id: int) -> list[int]:
    rows = await ctx.db.scalars(
        sa.select(UserCampaign.campaign_id)
        .where(UserCampaign.user_id == user_id)
        .order_by(UserCampaign.campaign_id)
    )
    return list(rows)


async def _set_campaigns(ctx: RequestContext, user_id: int, campaign_ids: list[int]) -> None:
    wanted = sorted(set(campaign_ids))
    if wanted:
        found = set(await ctx.db.scalars(sa.select(Campaign.id).where(Campaign.id.in_(wanted))))
        missing = [c for c in wanted if c not in found]
        if missing:
            raise ApiError(404, "not_found", f"campaign(s) {missing} do not exist")
    await ctx.db.execute(sa.delete(UserCampaign).where(UserCampaign.user_id == user_id))
    for cid in wanted:
        ctx.db.add(UserCampaign(user_id=user_id, campaign_id=cid))


async def _detail(ctx: RequestContext, user: User) -> UserDetail:
    return UserDetail(**user_out(user).model_dump(), campaign_ids=await _campaign_ids(ctx, user.id))


@router.get("", summary="Users", dependencies=[Scoped(Scope.USERS_READ)])
async def list_users(
    ctx: Ctx,
    role: Role | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[UserOut]:
    q = sa.select(User).order_by(User.id).limit(limit)
    if role is not None:
        q = q.where(User.role == role)
    if active is not None:
        q = q.where(User.active.is_(active))
    return [user_out(u) for u in await ctx.db.scalars(q)]


@router.post("", status_code=201, summary="Create a user", dependencies=[Scoped(Scope.USERS_WRITE)])
async def create_user(body: UserCreate, ctx: Ctx) -> UserDetail:
    _needs_admin(ctx, body.role)
    if await ctx.db.scalar(sa.select(User.id).where(User.username == body.username)):
        raise ApiError(409, "duplicate_username", f"username {body.username!r} is taken")
    user = User(
        username=body.username,
        full_name=body.full_name,
        role=body.role,
        password_hash=_password(ctx, body.password),
        extension=body.extension,
    )
    ctx.db.add(user)
    await ctx.db.flush()
    await _set_campaigns(ctx, user.id, body.campaign_ids)
    ctx.audit("user.create", "user", user.id, username=user.username, role=user.role.value)
    await ctx.commit()
    return await _detail(ctx, user)


async def _load(ctx: RequestContext, user_id: int) -> User:
    user = await ctx.db.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


@router.get("/{user_id}", summary="One user", dependencies=[Scoped(Scope.USERS_READ)])
async def get_user(user_id: PathId, ctx: Ctx) -> UserDetail:
    return await _detail(ctx, await _load(ctx, user_id))


@router.patch("/{user_id}", summary="Edit a user", dependencies=[Scoped(Scope.USERS_WRITE)])
async def update_user(user_id: PathId, body: UserUpdate, ctx: Ctx) -> UserDetail:
    user = await _load(ctx, user_id)
    _needs_admin(ctx, user.role)
    _needs_admin(ctx, body.role)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise ApiError(422, "empty_update", "nothing to change")
    if user.id == ctx.principal.user_id and (
        changes.get("active") is False or changes.get("role", Role.ADMIN) is not Role.ADMIN
    ):
        raise ApiError(409, "self_lockout", "you cannot deactivate or demote yourself")
    sign_out = False
    if "password" in changes:
        user.password_hash = _password(ctx, changes.pop("password"))
        sign_out = True
    if "role" in changes and changes["role"] is not user.role:
        sign_out = True
    if changes.get("active") is False:
        sign_out = True
    for key, value in changes.items():
        setattr(user, key, value)
    fields = sorted(body.model_dump(exclude_unset=True, exclude_none=True))
    ctx.audit("user.update", "user", user.id, fields=fields)
    await ctx.commit()
    await ctx.auth_changed()
    if sign_out:
        await SessionStore(ctx.redis, ctx.keys).delete_all(user.id)
    return await _detail(ctx, user)


@router.delete(
    "/{user_id}",
    status_code=204,
    summary="Deactivate a user (rows that mention them are kept)",
    dependencies=[Scoped(Scope.USERS_WRITE)],
)
async def deactivate_user(user_id: PathId, ctx: Ctx) -> None:
    user = await _load(ctx, user_id)
    _needs_admin(ctx, user.role)
    if user.id == ctx.principal.user_id:
        raise ApiError(409, "self_lockout", "you cannot deactivate yourself")
    user.active = False
    ctx.audit("user.deactivate", "user", user.id)
    await ctx.commit()
    await ctx.auth_changed()
    await SessionStore(ctx.redis, ctx.keys).delete_all(user.id)


@router.put(
    "/{user_id}/campaigns",
    summary="Set the campaigns a supervisor or agent works on",
    dependencies=[Scoped(Scope.USERS_WRITE)],
)
async def set_user_campaigns(user_id: PathId, body: CampaignsIn, ctx: Ctx) -> UserDetail:
    user = await _load(ctx, user_id)
    await _set_campaigns(ctx, user.id, body.campaign_ids)
    ctx.audit("user.campaigns", "user", user.id, campaign_ids=sorted(set(body.campaign_ids)))
    await ctx.commit()
    await ctx.auth_changed()
    return await _detail(ctx, user)
