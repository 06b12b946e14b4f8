"""Appointments: booked, kept, no-show and cancelled, per campaign and branch, and why
the effective contacts did not book."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from dialer.db.models import Appointment, AppointmentStatus, CallAttempt, Disposition
from dialer.domain.outcomes import CampaignType
from dialer.reports import definitions as d
from dialer.reports.queries.scope import A, C, D, L, ReportScope
from dialer.reports.queries.sql import text_of


async def appointments(q: ReportScope) -> d.Appointments:
    ap = Appointment
    conds = [ap.created_at >= q.start, ap.created_at < q.end, *q.lead_conds()]
    if q.f.agent_ids:
        conds.append(ap.disposition_id.in_(q.agent_dispositions()))
    rows = await q.s.execute(
        sa.select(L.campaign_id, ap.branch, ap.status, sa.func.count())
        .select_from(sa.join(ap, L, L.id == ap.lead_id).join(C, C.id == L.campaign_id))
        .where(*conds)
        .group_by(L.campaign_id, ap.branch, ap.status)
    )
    keys = ("booked", "kept", "no_show", "cancelled", "pending")
    status_key = {
        AppointmentStatus.KEPT.value: "kept",
        AppointmentStatus.NO_SHOW.value: "no_show",
        AppointmentStatus.CANCELLED.value: "cancelled",
        AppointmentStatus.BOOKED.value: "pending",
    }
    per: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(keys, 0))
    branch: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(keys, 0))
    for cid, br, status, n in rows:
        for acc in (per[cid], branch[br or "(sin sede)"]):
            acc["booked"] += n
            acc[status_key[text_of(status)]] += n

    def fulfil(acc: dict[str, int]) -> float | None:
        return d.pct(acc["kept"], acc["kept"] + acc["no_show"])

    out = [
        d.AppointmentRow(**q.ref(cid), **per[cid], fulfilment_pct=fulfil(per[cid]))
        for cid in sorted(per)
    ]
    sums = d.sum_rows(out, keys)
    total = d.AppointmentRow(**q.total_ref(), **sums, fulfilment_pct=fulfil(sums))
    by_branch = [
        d.BranchAppointments(branch=b, **acc, fulfilment_pct=fulfil(acc))
        for b, acc in sorted(branch.items())
    ]
    return d.Appointments(
        rows=out,
        total=total,
        by_branch=by_branch,
        not_booked_reasons=await _not_booked(q),
    )


async def _not_booked(q: ReportScope) -> list[d.CountRow]:
    last = (
        sa.select(A.lead_id.label("lead_id"), sa.func.max(A.attempt_number).label("n"))
        .select_from(sa.join(q.base(), D, D.attempt_id == A.id))
        .where(
            *q.effective(),
            A.campaign_id.in_(q.type_ids(CampaignType.SATISFACCION, exclude=True)),
        )
        .group_by(A.lead_id)
        .subquery()
    )
    a2 = aliased(CallAttempt)
    d2 = aliased(Disposition)
    ap = Appointment
    booked = sa.exists().where(
        ap.lead_id == last.c.lead_id, ap.created_at >= q.start, ap.created_at < q.end
    )
    rows = await q.s.execute(
        sa.select(d2.code, d2.reason, sa.func.count())
        .select_from(
            last.join(
                a2, sa.and_(a2.lead_id == last.c.lead_id, a2.attempt_number == last.c.n)
            ).join(d2, d2.attempt_id == a2.id)
        )
        .where(~booked)
        .group_by(d2.code, d2.reason)
    )
    counts: dict[str, int] = defaultdict(int)
    labels: dict[str, str] = {}
    for code, reason, n in rows:
        if code in d.NOT_BOOKED_SKIP:
            continue
        key, label = d.not_booked_reason(code, reason)
        counts[key] += n
        labels[key] = label
    return d.count_rows(counts, labels)
