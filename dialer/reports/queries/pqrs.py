"""PQRS: requests opened, closed on time or late, and still open at the cutoff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from dialer.db.models import Pqrs
from dialer.reports import definitions as d
from dialer.reports.queries.scope import C, L, ReportScope
from dialer.reports.queries.sql import day_bucket, int_of, text_of


def _pqrs_from(q: ReportScope) -> tuple[Any, list[ColumnElement[bool]]]:
    p = Pqrs
    conds: list[ColumnElement[bool]] = []
    source: Any = p
    if q.f.has_lead_filters:
        source = sa.join(p, L, L.id == p.lead_id).join(C, C.id == L.campaign_id)
        conds.extend(q.lead_conds())
    if q.f.agent_ids:
        conds.append(p.disposition_id.in_(q.agent_dispositions()))
    return source, conds


async def pqrs(q: ReportScope) -> d.PqrsReport:
    p = Pqrs
    source, conds = _pqrs_from(q)
    as_of = q.f.as_of(q.now)
    cutoff = q.f.end if as_of >= q.end else as_of.astimezone(q.f.zone).date()
    keys = ("opened", "closed", "closed_on_time", "closed_late", "overdue", "open_at_cutoff")
    per: dict[str, dict[str, int]] = {t: dict.fromkeys(keys, 0) for t in d.PQRS_TYPE_LABELS}

    opened = await q.s.execute(
        sa.select(p.type, sa.func.count())
        .select_from(source)
        .where(*conds, p.created_at >= q.start, p.created_at < q.end)
        .group_by(p.type)
    )
    for ptype, n in opened:
        per[text_of(ptype)]["opened"] += n

    bounds = q.f.day_bounds()
    inner = (
        sa.select(
            p.type.label("type"),
            p.deadline.label("deadline"),
            day_bucket(p.closed_at, bounds).label("day"),
        )
        .select_from(source)
        .where(*conds, p.closed_at >= q.start, p.closed_at < q.end)
        .subquery()
    )
    closed = await q.s.execute(
        sa.select(inner.c.type, inner.c.deadline, inner.c.day, sa.func.count()).group_by(
            inner.c.type, inner.c.deadline, inner.c.day
        )
    )
    for ptype, deadline, day_index, n in closed:
        acc = per[text_of(ptype)]
        acc["closed"] += n
        closed_on = q.f.start + timedelta(days=int(day_index))
        acc["closed_on_time" if closed_on <= deadline else "closed_late"] += n

    open_inner = (
        sa.select(
            p.type.label("type"),
            sa.case((p.deadline < cutoff, 1), else_=0).label("over"),
        )
        .select_from(source)
        .where(
            *conds,
            p.created_at < as_of,
            sa.or_(p.closed_at.is_(None), p.closed_at >= as_of),
        )
        .subquery()
    )
    still_open = await q.s.execute(
        sa.select(open_inner.c.type, sa.func.count(), sa.func.sum(open_inner.c.over)).group_by(
            open_inner.c.type
        )
    )
    for ptype, n, over in still_open:
        per[text_of(ptype)]["open_at_cutoff"] += n
        per[text_of(ptype)]["overdue"] += int_of(over)

    rows = [d.PqrsTypeRow(type=t, label=d.PQRS_TYPE_LABELS[t], **acc) for t, acc in per.items()]
    total = d.PqrsTypeRow(type="total", label="Total", **d.sum_rows(rows, keys))
    return d.PqrsReport(cutoff=cutoff, rows=rows, total=total)
