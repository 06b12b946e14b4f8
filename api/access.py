"""Who may see what (row-level filters), shared by the routers.

- admins and API keys: everything;
- supervisors: the campaigns they are assigned to (``user_campaigns``);
- agents: their own calls (``call_attempts.agent_id``) and the leads of those calls, plus
  callbacks assigned to them. Anything else answers 404, as if it did not exist.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from api.deps import RequestContext
from api.errors import not_found
from dialer.db.models import CallAttempt, Lead


async def lead_filter(ctx: RequestContext) -> ColumnElement[bool] | None:
    p = ctx.principal
    if p.is_agent:
        own_calls = sa.select(CallAttempt.lead_id).where(CallAttempt.agent_id == p.user_id)
        return sa.or_(Lead.callback_agent_id == p.user_id, Lead.id.in_(own_calls))
    scope = await ctx.campaign_scope()
    if scope is None:
        return None
    return Lead.campaign_id.in_(scope)


async def attempt_filter(ctx: RequestContext) -> ColumnElement[bool] | None:
    p = ctx.principal
    if p.is_agent:
        return CallAttempt.agent_id == p.user_id
    scope = await ctx.campaign_scope()
    if scope is None:
        return None
    return CallAttempt.campaign_id.in_(scope)


async def load_lead(ctx: RequestContext, lead_id: int) -> Lead:
    q = sa.select(Lead).where(Lead.id == lead_id)
    cond = await lead_filter(ctx)
    if cond is not None:
        q = q.where(cond)
    lead = await ctx.db.scalar(q.options(sa.orm.selectinload(Lead.phones)))
    if lead is None:
        raise not_found("lead", lead_id)
    return lead


def mask_national_id(value: str | None) -> str | None:
    """``1049601234`` -> ``******1234``: agents confirm identity with the last four digits."""
    if not value:
        return value
    if len(value) <= 4:
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


def mask_phone(e164: str) -> str:
    """``+573001234567`` -> ``+57*******4567`` (agents see only the last four digits)."""
    if len(e164) <= 7:
        return "*" * len(e164)
    return e164[:3] + "*" * (len(e164) - 7) + e164[-4:]
