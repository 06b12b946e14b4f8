"""Shared pieces of the WhatsApp store: statuses, the opaque callback tag, the verdicts its
operations return, and the writes every part uses (a status event, a conditional transition)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.db.models import WhatsAppMessage, WhatsAppStatus, WhatsAppStatusEvent

OPEN = (WhatsAppStatus.QUEUED, WhatsAppStatus.SCHEDULED)
ACTOR = "whatsapp-worker"
OPAQUE_PREFIX = "marcador"
HELD_PREFIX = "hold:"  # error_detail of a message waiting for a hold to be released

#: Status order for webhooks: a status never moves backwards. ``failed`` beats ``sent`` but
#: not ``delivered``/``read`` (those prove the message arrived).
RANK: dict[WhatsAppStatus, int] = {
    WhatsAppStatus.QUEUED: 0,
    WhatsAppStatus.SCHEDULED: 0,
    WhatsAppStatus.SENDING: 0,
    WhatsAppStatus.SENT: 1,
    WhatsAppStatus.FAILED: 2,
    WhatsAppStatus.DELIVERED: 3,
    WhatsAppStatus.READ: 4,
}
WEBHOOK_STATUSES = {
    "sent": WhatsAppStatus.SENT,
    "delivered": WhatsAppStatus.DELIVERED,
    "read": WhatsAppStatus.READ,
    "failed": WhatsAppStatus.FAILED,
}


def opaque_for(message_id: int, attempt: int) -> str:
    return f"{OPAQUE_PREFIX}:{message_id}:{attempt}"


def parse_opaque(value: object) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != OPAQUE_PREFIX:
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class SendJob:
    """A claimed message: everything needed for one API call."""

    message_id: int
    attempt: int
    lead_id: int | None
    campaign_id: int | None
    phone: str
    template: str
    language: str
    image: str  # link, media id or local file (resolved by the worker)
    body_params: tuple[str, ...]

    @property
    def opaque(self) -> str:
        return opaque_for(self.message_id, self.attempt)


@dataclass(frozen=True, slots=True)
class Prepared:
    """The verdict of :meth:`WhatsAppStore.prepare`."""

    kind: str  # claimed, deferred, skipped, held, gone
    message_id: int
    job: SendJob | None = None
    until: datetime | None = None
    reason: str = ""
    alert: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What a result/webhook did, for events and alerts."""

    message_id: int
    lead_id: int | None
    campaign_id: int | None
    status: str
    changed: bool = True
    alert: dict[str, Any] | None = None
    wamid: str | None = None


@dataclass(frozen=True, slots=True)
class InboundResult:
    message_id: int | None  # the stored inbound row (None: duplicate delivery)
    reply_to: int | None
    lead_id: int | None
    campaign_id: int | None
    opt_out: bool
    callback: bool
    duplicate: bool = False
    text: str = ""
    at: datetime | None = None


def rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def status_of(value: Any) -> WhatsAppStatus:
    return value if isinstance(value, WhatsAppStatus) else WhatsAppStatus(str(value))


def add_event(
    s: AsyncSession,
    message_id: int,
    status: str,
    at: datetime,
    raw: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Append to the message's status history."""
    data = {**(raw or {}), **extra}
    s.add(WhatsAppStatusEvent(message_id=message_id, status=status[:20], at=at, raw=data))


async def transition(
    s: AsyncSession,
    message_id: int,
    from_: Iterable[WhatsAppStatus],
    values: dict[str, Any],
    *extra: Any,
) -> bool:
    """Conditional UPDATE of an outbound row on its current status (and ``extra``)."""
    res = await s.execute(
        sa.update(WhatsAppMessage)
        .where(WhatsAppMessage.id == message_id, WhatsAppMessage.status.in_(list(from_)), *extra)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(res) == 1


def event_time(value: object, default: datetime) -> datetime:
    """A webhook's Unix ``timestamp`` as UTC, else ``default``."""
    try:
        return datetime.fromtimestamp(int(str(value)), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return default
