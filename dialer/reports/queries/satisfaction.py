"""Satisfaction: first-call timing against the event date, dispositions and the Pareto of
opportunity areas."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from dialer.domain.dispositions import DispositionCode
from dialer.domain.outcomes import CampaignType
from dialer.reports import definitions as d
from dialer.reports.queries.scope import AC, A, D, L, ReportScope
from dialer.reports.queries.sql import day_bucket


async def satisfaction(q: ReportScope, contact: d.Contactability) -> d.Satisfaction:
    bounds = q.f.day_bounds()
    first = (
        sa.select(A.lead_id.label("lead_id"), sa.func.min(A.created_at).label("first_at"))
        .select_from(sa.join(q.base(), D, D.attempt_id == A.id))
        .where(*q.effective(), A.campaign_id.in_(q.type_ids(CampaignType.SATISFACCION)))
        .group_by(A.lead_id)
        .subquery()
    )
    inner = (
        sa.select(
            L.campaign_id.label("campaign_id"),
            L.event_date.label("event_date"),
            day_bucket(first.c.first_at, bounds).label("day"),
        )
        .select_from(first.join(L, L.id == first.c.lead_id))
        .subquery()
    )
    rows = await q.s.execute(
        sa.select(inner.c.campaign_id, inner.c.event_date, inner.c.day, sa.func.count()).group_by(
            inner.c.campaign_id, inner.c.event_date, inner.c.day
        )
    )
    timing: dict[int, dict[str, int]] = defaultdict(
        lambda: {"in_window": 0, "late": 0, "early": 0, "no_event_date": 0}
    )
    for cid, event_date, day_index, n in rows:
        camp = q.camps.get(cid)
        first_day = int((camp.rules if camp else {}).get("satisfaction_first_call_day", 2))
        acc = timing[cid]
        if event_date is None or day_index < 0:
            acc["no_event_date"] += n
            continue
        offset = (q.f.start + timedelta(days=int(day_index)) - event_date).days
        if offset < first_day:
            acc["early"] += n
        elif offset <= first_day + q.window_days - 1:
            acc["in_window"] += n
        else:
            acc["late"] += n

    disp_rows = await q.s.execute(
        sa.select(A.campaign_id, D.code, sa.func.count())
        .select_from(sa.join(q.base(), D, D.attempt_id == A.id))
        .where(
            *q.counted(),
            A.outcome == AC,
            A.campaign_id.in_(q.type_ids(CampaignType.SATISFACCION)),
        )
        .group_by(A.campaign_id, D.code)
    )
    disp: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    all_disp: dict[str, int] = defaultdict(int)
    for cid, code, n in disp_rows:
        disp[cid][code] += n
        all_disp[code] += n

    area_rows = await q.s.execute(
        sa.select(D.opportunity_area, sa.func.count())
        .select_from(sa.join(q.base(), D, D.attempt_id == A.id))
        .where(
            *q.counted(),
            A.outcome == AC,
            D.code == DispositionCode.EXPECTATIVAS_NO_CUMPLIDAS.value,
        )
        .group_by(D.opportunity_area)
    )
    areas: dict[str, int] = defaultdict(int)
    for value, n in area_rows:
        for code in d.split_areas(value):
            areas[code] += n
    chart = d.pareto(areas)

    sat_ids = sorted(
        cid
        for cid, c in q.camps.items()
        if c.type == CampaignType.SATISFACCION.value
        and (cid in timing or cid in disp or any(r.campaign_id == cid for r in contact.rows))
    )
    contact_by = {r.campaign_id: r for r in contact.rows}

    def row(
        ref: dict[str, Any], w: int, c: int, t: dict[str, int], dc: dict[str, int]
    ) -> d.SatisfactionRow:
        return d.SatisfactionRow(
            **ref,
            leads_worked=w,
            leads_contacted=c,
            **t,
            in_window_pct=d.pct(t["in_window"], w),
            satisfied=dc.get(DispositionCode.SATISFECHO.value, 0),
            not_met=dc.get(DispositionCode.EXPECTATIVAS_NO_CUMPLIDAS.value, 0),
            complaints=dc.get(DispositionCode.QUEJA_RECLAMO.value, 0),
        )

    out = []
    for cid in sat_ids:
        cr = contact_by.get(cid)
        out.append(
            row(
                q.ref(cid),
                cr.leads_worked if cr else 0,
                cr.leads_contacted if cr else 0,
                timing[cid],
                disp[cid],
            )
        )
    tkeys = ("in_window", "late", "early", "no_event_date")
    total = row(
        q.total_ref(),
        sum(r.leads_worked for r in out),
        sum(r.leads_contacted for r in out),
        d.sum_rows(out, tkeys),
        {
            DispositionCode.SATISFECHO.value: sum(r.satisfied for r in out),
            DispositionCode.EXPECTATIVAS_NO_CUMPLIDAS.value: sum(r.not_met for r in out),
            DispositionCode.QUEJA_RECLAMO.value: sum(r.complaints for r in out),
        },
    )
    labels = {code: d.disposition_label(code) for code in all_disp}
    return d.Satisfaction(
        window_first_day=2,
        window_days=q.window_days,
        rows=out,
        total=total,
        dispositions=d.count_rows(all_disp, labels),
        pareto=chart,
        mentions=sum(areas.values()),
        vital_few=[r.code for r in chart if r.vital],
    )
