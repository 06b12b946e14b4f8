"""Effectiveness and contactability: calls by outcome and disposition, and leads reached."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from dialer.db.models import CallAttempt, Disposition
from dialer.reports import definitions as d
from dialer.reports.queries.scope import AC, WRONG, A, D, ReportScope
from dialer.reports.queries.sql import text_of


async def effectiveness(q: ReportScope) -> d.Effectiveness:
    rows = await q.s.execute(
        sa.select(A.campaign_id, A.outcome, A.counts_against_limit, D.code, sa.func.count())
        .select_from(sa.outerjoin(q.base(), D, D.attempt_id == A.id))
        .where(*q.attempt_conds(), A.outcome.is_not(None))
        .group_by(A.campaign_id, A.outcome, A.counts_against_limit, D.code)
    )
    keys = (
        "total_calls",
        "effective_calls",
        "connected_calls",
        "wrong_number_calls",
        "undispositioned_calls",
        "system_failures",
    )
    per: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(keys, 0))
    by_outcome: dict[str, int] = defaultdict(int)
    for cid, outcome, counts, code, n in rows:
        acc = per[cid]
        if not counts:
            acc["system_failures"] += n
            continue
        acc["total_calls"] += n
        by_outcome[text_of(outcome)] += n
        if text_of(outcome) != AC.value:
            continue
        acc["connected_calls"] += n
        if code is None:
            acc["undispositioned_calls"] += n
        elif code == WRONG:
            acc["wrong_number_calls"] += n
        else:
            acc["effective_calls"] += n

    def row(ref: dict[str, Any], acc: dict[str, int]) -> d.EffectivenessRow:
        return d.EffectivenessRow(
            **ref,
            **acc,
            effectiveness_pct=d.pct(acc["effective_calls"], acc["total_calls"]),
        )

    out = [row(q.ref(cid), per[cid]) for cid in sorted(per)]
    total = row(q.total_ref(), d.sum_rows(out, keys))
    return d.Effectiveness(
        rows=out, total=total, by_outcome=d.count_rows(by_outcome, d.OUTCOME_LABELS)
    )


async def contactability(q: ReportScope) -> d.Contactability:
    last = (
        sa.select(A.lead_id.label("lead_id"), sa.func.max(A.attempt_number).label("n"))
        .select_from(q.base())
        .where(*q.counted())
        .group_by(A.lead_id)
        .subquery()
    )
    contacted = (
        sa.select(A.lead_id)
        .select_from(sa.join(q.base(), D, D.attempt_id == A.id))
        .where(*q.effective())
    )
    a2 = aliased(CallAttempt)
    d2 = aliased(Disposition)
    inner = (
        sa.select(
            a2.campaign_id.label("campaign_id"),
            a2.outcome.label("outcome"),
            d2.code.label("code"),
            sa.case((last.c.lead_id.in_(contacted), 1), else_=0).label("contacted"),
        )
        .select_from(
            last.join(
                a2, sa.and_(a2.lead_id == last.c.lead_id, a2.attempt_number == last.c.n)
            ).outerjoin(d2, d2.attempt_id == a2.id)
        )
        .subquery()
    )
    rows = await q.s.execute(
        sa.select(
            inner.c.campaign_id,
            inner.c.outcome,
            inner.c.code,
            inner.c.contacted,
            sa.func.count(),
        ).group_by(inner.c.campaign_id, inner.c.outcome, inner.c.code, inner.c.contacted)
    )
    worked: dict[int, int] = defaultdict(int)
    reached: dict[int, int] = defaultdict(int)
    reasons: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cid, outcome, code, is_contacted, n in rows:
        worked[cid] += n
        if is_contacted:
            reached[cid] += n
        else:
            reasons[cid][d.no_contact_reason(text_of(outcome), code)] += n

    def row(ref: dict[str, Any], w: int, c: int, why: dict[str, int]) -> d.ContactabilityRow:
        return d.ContactabilityRow(
            **ref,
            leads_worked=w,
            leads_contacted=c,
            leads_not_contacted=w - c,
            contactability_pct=d.pct(c, w),
            no_contact=dict(sorted(why.items())),
        )

    out = [row(q.ref(cid), worked[cid], reached[cid], reasons[cid]) for cid in sorted(worked)]
    all_reasons: dict[str, int] = defaultdict(int)
    for why in reasons.values():
        for k, v in why.items():
            all_reasons[k] += v
    total = row(q.total_ref(), sum(worked.values()), sum(reached.values()), all_reasons)
    return d.Contactability(
        rows=out, total=total, reasons=d.count_rows(all_reasons, d.NO_CONTACT_LABELS)
    )
