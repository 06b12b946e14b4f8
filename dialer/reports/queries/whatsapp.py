"""WhatsApp: the fallback funnel (queued, sent, delivered, read, replied, failed)."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from dialer.db.models import WhatsAppMessage, WhatsAppStatus
from dialer.reports import definitions as d
from dialer.reports.queries.scope import C, L, ReportScope
from dialer.reports.queries.sql import text_of


async def whatsapp(q: ReportScope) -> d.WhatsAppFunnel:
    m = WhatsAppMessage
    reply = aliased(WhatsAppMessage)
    replied = sa.exists().where(
        reply.direction == "in",
        reply.lead_id == m.lead_id,
        reply.created_at >= m.created_at,
    )
    conds: list[ColumnElement[bool]] = [
        m.direction == "out",
        m.created_at >= q.start,
        m.created_at < q.end,
        *q.lead_conds(),
    ]
    inner = (
        sa.select(
            m.campaign_id.label("campaign_id"),
            m.status.label("status"),
            sa.case((m.wamid.is_not(None), 1), else_=0).label("has_wamid"),
            sa.case((replied, 1), else_=0).label("replied"),
        )
        .select_from(sa.outerjoin(m, L, L.id == m.lead_id).outerjoin(C, C.id == m.campaign_id))
        .where(*conds)
        .subquery()
    )
    rows = await q.s.execute(
        sa.select(
            inner.c.campaign_id,
            inner.c.status,
            inner.c.has_wamid,
            inner.c.replied,
            sa.func.count(),
        ).group_by(inner.c.campaign_id, inner.c.status, inner.c.has_wamid, inner.c.replied)
    )
    keys = ("queued", "sent", "delivered", "read", "replied", "failed", "pending", "skipped")
    per: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(keys, 0))
    ws = WhatsAppStatus
    for cid, status, has_wamid, was_replied, n in rows:
        st = text_of(status)
        acc = per[cid or 0]
        acc["queued"] += n
        if has_wamid or st in (ws.SENT, ws.DELIVERED, ws.READ):
            acc["sent"] += n
        if st in (ws.DELIVERED, ws.READ):
            acc["delivered"] += n
        if st == ws.READ:
            acc["read"] += n
        if was_replied:
            acc["replied"] += n
        if st == ws.FAILED:
            acc["failed"] += n
        if st in (ws.QUEUED, ws.SCHEDULED, ws.SENDING):
            acc["pending"] += n
        if st == ws.SKIPPED:
            acc["skipped"] += n
    out = [d.WhatsAppRow(**q.ref(cid), **per[cid]) for cid in sorted(per)]
    total = d.WhatsAppRow(**q.total_ref(), **d.sum_rows(out, keys))
    funnel = [
        d.CountRow(code=k, label=d.WHATSAPP_STAGE_LABELS[k], count=getattr(total, k))
        for k in ("queued", "sent", "delivered", "read", "replied", "failed")
    ]
    return d.WhatsAppFunnel(rows=out, total=total, funnel=funnel)
