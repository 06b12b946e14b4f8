"""Recovery: leads of recovery campaigns brought back with an appointment in the period."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from dialer.db.models import Appointment, AppointmentStatus, LeadEvent
from dialer.domain.outcomes import CampaignType, LeadStatus
from dialer.reports import definitions as d
from dialer.reports.queries.scope import FINAL_STATUSES, A, C, L, ReportScope
from dialer.reports.queries.sql import int_of


def _appointment_in_period(q: ReportScope, *extra: ColumnElement[bool]) -> sa.Exists:
    ap = Appointment
    conds = [ap.lead_id == L.id, ap.created_at >= q.start, ap.created_at < q.end]
    if q.f.agent_ids:
        conds.append(ap.disposition_id.in_(q.agent_dispositions()))
    return sa.exists().where(*conds, *extra)


async def recovery(q: ReportScope) -> d.Recovery:
    any_attempt = sa.exists().where(A.lead_id == L.id)
    cleaned = sa.and_(L.status == LeadStatus.EXCLUDED, ~any_attempt)
    active_since = sa.or_(
        sa.exists().where(A.lead_id == L.id, A.created_at >= q.start),
        sa.exists().where(LeadEvent.lead_id == L.id, LeadEvent.at >= q.start),
    )
    closed_before = sa.and_(L.status.in_(FINAL_STATUSES), ~active_since)
    recovered = _appointment_in_period(q)
    kept = _appointment_in_period(q, Appointment.status == AppointmentStatus.KEPT)
    inner = (
        sa.select(
            L.campaign_id.label("campaign_id"),
            sa.case((recovered, 1), else_=0).label("rec"),
            sa.case((kept, 1), else_=0).label("kept"),
        )
        .select_from(sa.join(L, C, C.id == L.campaign_id))
        .where(
            C.type == CampaignType.RECUPERACION,
            L.created_at < q.end,
            ~cleaned,
            ~closed_before,
            *q.lead_conds(),
        )
        .subquery()
    )
    rows = await q.s.execute(
        sa.select(
            inner.c.campaign_id,
            sa.func.count(),
            sa.func.sum(inner.c.rec),
            sa.func.sum(inner.c.kept),
        ).group_by(inner.c.campaign_id)
    )

    def row(ref: dict[str, Any], n: int, rec: int, kp: int) -> d.RecoveryRow:
        return d.RecoveryRow(
            **ref,
            leads_in_list=n,
            recovered=rec,
            recovered_pct=d.pct(rec, n),
            kept=kp,
            kept_pct=d.pct(kp, n),
        )

    out = [
        row(q.ref(cid), int_of(n), int_of(rec), int_of(kp))
        for cid, n, rec, kp in sorted(rows, key=lambda r: r[0])
    ]
    sums = d.sum_rows(out, ("leads_in_list", "recovered", "kept"))
    total = row(q.total_ref(), sums["leads_in_list"], sums["recovered"], sums["kept"])
    return d.Recovery(rows=out, total=total)
