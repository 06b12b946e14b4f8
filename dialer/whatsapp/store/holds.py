"""Holds: a campaign or the whole account paused after Meta refused for a reason a retry cannot
fix (no template, account restricted...); held messages wait until a person releases it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import AuditLog, WhatsAppHold, WhatsAppMessage, WhatsAppStatus
from dialer.whatsapp.store.common import ACTOR, HELD_PREFIX


async def active_holds(s: AsyncSession, campaign_id: int | None) -> list[WhatsAppHold]:
    """The holds in force for a message of ``campaign_id`` (its campaign's and the account's)."""
    q = sa.select(WhatsAppHold).where(
        WhatsAppHold.released_at.is_(None),
        sa.or_(
            WhatsAppHold.scope == "account",
            sa.and_(WhatsAppHold.scope == "campaign", WhatsAppHold.campaign_id == campaign_id),
        ),
    )
    return list(await s.scalars(q))


class HoldStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sm = sessionmaker

    async def open_hold(
        self,
        s: AsyncSession,
        scope: str,
        campaign_id: int | None,
        code: int | None,
        reason: str,
        now: datetime,
    ) -> dict[str, Any]:
        """Create a hold unless the same one is active; returns the alert to publish."""
        existing = await s.scalar(
            sa.select(WhatsAppHold.id).where(
                WhatsAppHold.released_at.is_(None),
                WhatsAppHold.scope == scope,
                WhatsAppHold.campaign_id == campaign_id
                if campaign_id is not None
                else WhatsAppHold.campaign_id.is_(None),
            )
        )
        alert = {
            "scope": scope,
            "campaign_id": campaign_id,
            "code": code,
            "reason": reason,
            "new": existing is None,
        }
        if existing is None:
            s.add(
                WhatsAppHold(
                    scope=scope, campaign_id=campaign_id, code=code, reason=reason, created_at=now
                )
            )
            s.add(
                AuditLog(
                    at=now,
                    actor=ACTOR,
                    action=f"whatsapp.hold.{scope}",
                    target_type=scope,
                    target_id=str(campaign_id or ""),
                    detail={"code": code, "reason": reason},
                )
            )
        return alert

    async def holds(self, include_released: bool = False) -> list[WhatsAppHold]:
        async with self.sm() as s:
            q = sa.select(WhatsAppHold).order_by(WhatsAppHold.id)
            if not include_released:
                q = q.where(WhatsAppHold.released_at.is_(None))
            return list(await s.scalars(q))

    async def release_holds(
        self, by: str, now: datetime, campaign_id: int | None = None, account: bool = False
    ) -> int:
        """Release holds (a person fixed the template or the account); held messages resume
        at the next sweep. ``campaign_id`` None and ``account`` False: release every hold."""
        async with self.sm() as s, s.begin():
            q = sa.select(WhatsAppHold).where(WhatsAppHold.released_at.is_(None))
            if campaign_id is not None:
                q = q.where(WhatsAppHold.campaign_id == campaign_id)
            elif account:
                q = q.where(WhatsAppHold.scope == "account")
            rows = list(await s.scalars(q))
            for h in rows:
                h.released_at = now
                h.released_by = by[:80]
                s.add(
                    AuditLog(
                        at=now,
                        actor=by[:80],
                        action=f"whatsapp.release.{h.scope}",
                        target_type=h.scope,
                        target_id=str(h.campaign_id or ""),
                        detail={"hold_id": h.id, "code": h.code},
                    )
                )
            if rows:
                await s.execute(
                    sa.update(WhatsAppMessage)
                    .where(
                        WhatsAppMessage.status == WhatsAppStatus.SCHEDULED,
                        WhatsAppMessage.next_attempt_at > now,
                        WhatsAppMessage.error_detail.like(f"{HELD_PREFIX}%"),
                        *(
                            [WhatsAppMessage.campaign_id == campaign_id]
                            if campaign_id is not None
                            else []
                        ),
                    )
                    .values(next_attempt_at=now)
                    .execution_options(synchronize_session=False)
                )
            return len(rows)
