"""Status webhooks (``value.statuses``): idempotent, a status never moves backwards; a webhook
for an attempt whose answer was lost reconciles the row (so it is never sent twice)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import WhatsAppMessage, WhatsAppStatus, WhatsAppStatusEvent
from dialer.whatsapp.policy import ErrorInfo, decide
from dialer.whatsapp.store.common import (
    OPEN,
    RANK,
    WEBHOOK_STATUSES,
    Applied,
    add_event,
    event_time,
    parse_opaque,
    status_of,
)
from dialer.whatsapp.store.results import SendResults, log_contact


class StatusWebhooks:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], results: SendResults
    ) -> None:
        self.sm = sessionmaker
        self.results = results

    async def apply_status(self, st: dict[str, Any], now: datetime) -> Applied | None:
        """One entry of ``value.statuses``. Idempotent; never moves a status backwards."""
        wamid = st.get("id")
        new = WEBHOOK_STATUSES.get(str(st.get("status", "")))
        if not isinstance(wamid, str) or new is None:
            return None
        at = event_time(st.get("timestamp"), now)
        opaque = parse_opaque(st.get("biz_opaque_callback_data"))
        async with self.sm() as s, s.begin():
            msg = await s.scalar(
                sa.select(WhatsAppMessage).where(WhatsAppMessage.wamid == wamid).with_for_update()
            )
            current_attempt = True
            if msg is None and opaque is not None:
                msg = await s.scalar(
                    sa.select(WhatsAppMessage)
                    .where(WhatsAppMessage.id == opaque[0])
                    .with_for_update()
                )
                if msg is not None:
                    current_attempt = msg.send_attempts == opaque[1] and msg.wamid is None
            if msg is None or msg.direction != "out":
                return None
            if opaque is not None and opaque[0] == msg.id and opaque[1] != msg.send_attempts:
                current_attempt = False
            dup = await s.scalar(
                sa.select(WhatsAppStatusEvent.id).where(
                    WhatsAppStatusEvent.message_id == msg.id,
                    WhatsAppStatusEvent.status == new.value,
                    WhatsAppStatusEvent.at == at,
                )
            )
            if dup is not None:
                return Applied(msg.id, msg.lead_id, msg.campaign_id, str(msg.status), False)
            add_event(s, msg.id, new.value, at, _safe_status(st))
            if not current_attempt:
                return Applied(msg.id, msg.lead_id, msg.campaign_id, str(msg.status), False)
            cur = status_of(msg.status)
            if (cur is WhatsAppStatus.SENDING or cur in OPEN) and msg.wamid is None:
                # Reconciliation: Meta accepted this very attempt, but the worker died (or is
                # slow) before storing the answer, or the row was already requeued. Take the
                # wamid from the webhook so the message is never sent again.
                msg.wamid = wamid
                msg.claimed_by = None
                msg.claimed_until = None
                msg.next_attempt_at = None
                await log_contact(s, msg.lead_id, msg.campaign_id, wamid, at)
                cur = WhatsAppStatus.SENT
                msg.status = cur
                add_event(s, msg.id, "reconciled", now, attempt=msg.send_attempts)
            if cur not in RANK or RANK[new] <= RANK[cur]:
                return Applied(msg.id, msg.lead_id, msg.campaign_id, cur.value, False)
            if new is WhatsAppStatus.FAILED:
                err = (st.get("errors") or [{}])[0]
                code = err.get("code") if isinstance(err, dict) else None
                info = ErrorInfo(
                    "api",
                    code if isinstance(code, int) else None,
                    None,
                    str(err.get("title", "") if isinstance(err, dict) else "")[:200],
                )
                decision = decide(
                    info, attempt=max(msg.send_attempts, 1), now=now, config=self.results.retry
                )
                return await self.results.apply_decision(s, msg, decision, info, now)
            msg.status = new
            return Applied(msg.id, msg.lead_id, msg.campaign_id, new.value, wamid=wamid)


def _safe_status(st: dict[str, Any]) -> dict[str, Any]:
    """The status entry for the history, without the recipient's number."""
    return {k: v for k, v in st.items() if k not in ("recipient_id", "recipient_participant_id")}
