"""API keys (admin only). The full key is shown once, at creation; only its hash is stored."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.auth import API_KEY_SCOPES, Scope, generate_api_key, normalize_scopes
from api.deps import Ctx, Scoped
from api.errors import ApiError, not_found
from api.types import PathId
from dialer.db.models import ApiKey

router = APIRouter(prefix="/api-keys", tags=["api keys"])


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    scopes: list[str] = Field(min_length=1, max_length=50)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_by: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The full key. Shown only now: store it safely.")


def key_out(k: ApiKey) -> ApiKeyOut:
    scopes = k.scopes.get("scopes", []) if isinstance(k.scopes, dict) else []
    return ApiKeyOut(
        id=k.id,
        name=k.name,
        prefix=k.prefix,
        scopes=[str(s) for s in scopes],
        created_by=k.created_by,
        created_at=k.created_at,
        last_used_at=k.last_used_at,
        revoked_at=k.revoked_at,
    )


@router.get("", summary="API keys (without secrets)", dependencies=[Scoped(Scope.ADMIN)])
async def list_keys(ctx: Ctx) -> list[ApiKeyOut]:
    return [key_out(k) for k in await ctx.db.scalars(sa.select(ApiKey).order_by(ApiKey.id))]


@router.get("/scopes", summary="Scopes an API key may hold", dependencies=[Scoped(Scope.ADMIN)])
async def list_scopes() -> list[str]:
    return sorted(API_KEY_SCOPES)


@router.post("", status_code=201, summary="Create an API key", dependencies=[Scoped(Scope.ADMIN)])
async def create_key(body: ApiKeyIn, ctx: Ctx) -> ApiKeyCreated:
    try:
        scopes = normalize_scopes(body.scopes)
    except ValueError as exc:
        raise ApiError(422, "invalid_scopes", str(exc)) from exc
    new = generate_api_key()
    row = ApiKey(
        name=body.name,
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes={"scopes": scopes},
        created_by=ctx.principal.user_id,
        created_at=ctx.now(),
    )
    ctx.db.add(row)
    await ctx.db.flush()
    ctx.audit("apikey.create", "apikey", row.id, name=body.name, prefix=new.prefix, scopes=scopes)
    await ctx.commit()
    return ApiKeyCreated(**key_out(row).model_dump(), key=new.plaintext)


@router.delete(
    "/{key_id}", status_code=204, summary="Revoke an API key", dependencies=[Scoped(Scope.ADMIN)]
)
async def revoke_key(key_id: PathId, ctx: Ctx) -> None:
    row = await ctx.db.get(ApiKey, key_id)
    if row is None:
        raise not_found("API key", key_id)
    if row.revoked_at is None:
        row.revoked_at = ctx.now()
    ctx.audit("apikey.revoke", "apikey", row.id, prefix=row.prefix)
    await ctx.commit()
    await ctx.auth_changed()
