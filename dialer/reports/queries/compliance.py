"""Compliance: abandonment (daily and rolling 30 days), calls outside the window and DNC/RNE
blocks."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from dialer.db.models import LeadEvent
from dialer.domain.outcomes import CallOutcome
from dialer.domain.windows import (
    CallWindow,
    HolidayCalendar,
    closes_at,
    is_open,
    next_open,
    resolve_tz,
    window_status,
)
from dialer.reports import definitions as d
from dialer.reports.queries.scope import LIVE, A, C, Camp, L, ReportScope
from dialer.reports.queries.sql import day_bucket, int_of

__all__ = ["OUTSIDE_LIST_LIMIT", "ROLLING_DAYS", "compliance", "open_intervals"]

ROLLING_DAYS = 30
#: Outside-window calls listed one by one (the count itself is exact).
OUTSIDE_LIST_LIMIT = 1000


def open_intervals(
    window: CallWindow,
    start: datetime,
    end: datetime,
    tz: str,
    calendar: HolidayCalendar,
) -> list[tuple[datetime, datetime]]:
    """UTC intervals ``[open, close)`` in which ``window`` is open between start and end,
    derived only from the canonical :func:`next_open` / :func:`closes_at`."""
    zone = resolve_tz(tz)
    out: list[tuple[datetime, datetime]] = []
    t = start
    while t < end:
        opened = next_open(window, t, zone, calendar=calendar)
        if opened >= end:
            break
        closed = closes_at(window, opened, zone, calendar=calendar)
        if closed is None:  # pragma: no cover - next_open returns an open instant
            break
        out.append((opened, closed))
        t = closed
    return out


async def compliance(q: ReportScope) -> d.Compliance:
    cap = Decimal(str(d.ABANDON_CAP))
    first_day = q.f.start - timedelta(days=ROLLING_DAYS - 1)
    bounds = q.f.day_bounds(first_day)
    inner = (
        sa.select(
            A.campaign_id.label("campaign_id"),
            day_bucket(A.created_at, bounds).label("day"),
            sa.case((A.outcome == CallOutcome.ABANDONED, 1), else_=0).label("ab"),
        )
        .where(
            A.created_at >= bounds[0],
            A.created_at < q.end,
            A.outcome.in_(LIVE),
            *q.campaign_id_conds(A.campaign_id),
        )
        .subquery()
    )
    rows = await q.s.execute(
        sa.select(
            inner.c.campaign_id, inner.c.day, sa.func.count(), sa.func.sum(inner.c.ab)
        ).group_by(inner.c.campaign_id, inner.c.day)
    )
    ndays = len(bounds) - 1
    live: dict[int, list[int]] = defaultdict(lambda: [0] * ndays)
    aband: dict[int, list[int]] = defaultdict(lambda: [0] * ndays)
    for cid, day_index, n, ab in rows:
        live[cid][day_index] += n
        aband[cid][day_index] += int_of(ab)

    def over(ab: int, lv: int) -> bool:
        return lv > 0 and Decimal(ab) > cap * lv

    daily: list[d.AbandonDay] = []
    summary: dict[int, dict[str, Any]] = {}
    offset = ROLLING_DAYS - 1
    for cid in sorted(live):
        r_live = d.rolling_sums(live[cid], ROLLING_DAYS)
        r_ab = d.rolling_sums(aband[cid], ROLLING_DAYS)
        days = []
        for i, day in enumerate(q.f.days):
            j = offset + i
            days.append(
                d.AbandonDay(
                    campaign_id=cid,
                    day=day,
                    abandoned=aband[cid][j],
                    live=live[cid][j],
                    rate_pct=d.pct(aband[cid][j], live[cid][j]),
                    rolling_abandoned=r_ab[j],
                    rolling_live=r_live[j],
                    rolling_rate_pct=d.pct(r_ab[j], r_live[j]),
                    over_cap=over(aband[cid][j], live[cid][j]),
                )
            )
        period_live = sum(x.live for x in days)
        if not period_live and not any(x.rolling_live for x in days):
            continue
        daily.extend(days)
        rates = [x.rate_pct for x in days if x.rate_pct is not None]
        summary[cid] = {
            "abandoned": sum(x.abandoned for x in days),
            "live": period_live,
            "rolling30_rate_pct": days[-1].rolling_rate_pct,
            "max_daily_rate_pct": max(rates) if rates else None,
            "days_over_cap": sum(1 for x in days if x.over_cap),
        }

    outside, outside_calls = await _outside_window(q)
    blocked = await _dnc_blocked(q)
    ids = sorted(set(summary) | set(outside) | set(blocked))
    out: list[d.ComplianceRow] = []
    for cid in ids:
        sm = summary.get(cid, {})
        ab, lv = int(sm.get("abandoned", 0)), int(sm.get("live", 0))
        out.append(
            d.ComplianceRow(
                **q.ref(cid),
                abandoned=ab,
                live=lv,
                abandon_rate_pct=d.pct(ab, lv),
                rolling30_rate_pct=sm.get("rolling30_rate_pct"),
                max_daily_rate_pct=sm.get("max_daily_rate_pct"),
                days_over_cap=int(sm.get("days_over_cap", 0)),
                outside_window=outside.get(cid, 0),
                dnc_blocked=blocked.get(cid, {}).get("dnc", 0),
                rne_blocked=blocked.get(cid, {}).get("rne", 0),
            )
        )
    sums = d.sum_rows(
        out,
        ("abandoned", "live", "days_over_cap", "outside_window", "dnc_blocked", "rne_blocked"),
    )
    rates = [r.max_daily_rate_pct for r in out if r.max_daily_rate_pct is not None]
    total = d.ComplianceRow(
        **q.total_ref(),
        **sums,
        abandon_rate_pct=d.pct(sums["abandoned"], sums["live"]),
        rolling30_rate_pct=None,
        max_daily_rate_pct=max(rates) if rates else None,
    )
    return d.Compliance(
        cap_pct=float(cap * 100),
        rows=out,
        total=total,
        daily=daily,
        outside_calls=outside_calls,
    )


async def _outside_window(q: ReportScope) -> tuple[dict[int, int], list[d.OutsideCall]]:
    """Calls started while the window was closed, per campaign.

    The open intervals come from the canonical window functions; their complement in the
    period (the closed gaps) is counted with index range scans on (campaign, created_at).
    Attempts of leads with their own time zone (rare) are re-checked one by one.
    """
    ids = [
        cid
        for (cid,) in await q.s.execute(
            sa.select(A.campaign_id)
            .where(
                A.created_at >= q.start,
                A.created_at < q.end,
                *q.campaign_id_conds(A.campaign_id),
            )
            .distinct()
        )
    ]
    counts: dict[int, int] = defaultdict(int)
    calls: list[d.OutsideCall] = []
    for cid in sorted(ids):
        camp = q.camps.get(cid)
        window = _window(camp)
        zone = camp.timezone if camp else q.f.timezone
        gaps = _gaps(q, window, zone)
        per_gap = await _gap_counts(q, cid, gaps)
        own_tz = await _own_tz_attempts(q, cid, zone)
        skip = {attempt_id for attempt_id, _, _ in own_tz}
        n = 0
        for (g_start, g_end), k in zip(gaps, per_gap, strict=True):
            if not k:
                continue
            n += k
            if len(calls) >= OUTSIDE_LIST_LIMIT:
                continue
            rows = await q.s.execute(
                sa.select(A.id, A.created_at)
                .where(A.campaign_id == cid, A.created_at >= g_start, A.created_at < g_end)
                .order_by(A.created_at, A.id)
                .limit(OUTSIDE_LIST_LIMIT - len(calls) + len(skip))
            )
            for attempt_id, created_at in rows:
                if attempt_id not in skip and len(calls) < OUTSIDE_LIST_LIMIT:
                    calls.append(_outside(q, attempt_id, cid, created_at, window, zone))
        for attempt_id, created_at, lead_zone in own_tz:
            by_campaign = not is_open(window, created_at, zone, calendar=q.cal)
            by_lead = not is_open(window, created_at, lead_zone, calendar=q.cal)
            n += int(by_lead) - int(by_campaign)
            if by_lead and len(calls) < OUTSIDE_LIST_LIMIT:
                calls.append(_outside(q, attempt_id, cid, created_at, window, lead_zone))
        if n:
            counts[cid] = n
    calls.sort(key=lambda c: (c.campaign_id, c.local_time, c.attempt_id))
    return dict(counts), calls


def _window(camp: Camp | None) -> CallWindow:
    if camp is None or not camp.call_window:
        return CallWindow()
    return CallWindow.from_dict(camp.call_window)


def _gaps(q: ReportScope, window: CallWindow, zone: str) -> list[tuple[datetime, datetime]]:
    """The closed stretches of the period: its complement of the open intervals."""
    gaps: list[tuple[datetime, datetime]] = []
    cursor = q.start
    for opened, closed in open_intervals(window, q.start - timedelta(days=1), q.end, zone, q.cal):
        if opened > cursor:
            gaps.append((cursor, min(opened, q.end)))
        cursor = max(cursor, closed)
        if cursor >= q.end:
            break
    if cursor < q.end:
        gaps.append((cursor, q.end))
    return gaps


async def _gap_counts(q: ReportScope, cid: int, gaps: list[tuple[datetime, datetime]]) -> list[int]:
    if not gaps:
        return []
    counts = [
        sa.select(sa.func.count())
        .select_from(A)
        .where(A.campaign_id == cid, A.created_at >= g0, A.created_at < g1)
        .scalar_subquery()
        for g0, g1 in gaps
    ]
    row = (await q.s.execute(sa.select(*counts))).one()
    return [int_of(v) for v in row]


async def _own_tz_attempts(q: ReportScope, cid: int, zone: str) -> list[tuple[int, datetime, str]]:
    """Attempts whose lead has its own time zone, different from the campaign's."""
    other = (
        sa.select(L.id)
        .where(L.campaign_id == cid, L.timezone.is_not(None), L.timezone != zone)
        .scalar_subquery()
    )
    has_any = await q.s.scalar(sa.select(sa.exists().where(L.id.in_(other))))
    if not has_any:
        return []
    rows = await q.s.execute(
        sa.select(A.id, A.created_at, L.timezone)
        .select_from(sa.join(A, L, L.id == A.lead_id))
        .where(
            A.campaign_id == cid,
            A.created_at >= q.start,
            A.created_at < q.end,
            L.timezone.is_not(None),
            L.timezone != zone,
        )
    )
    return [(i, at, str(tz)) for i, at, tz in rows]


def _outside(
    q: ReportScope, attempt_id: int, cid: int, at: datetime, window: CallWindow, zone: str
) -> d.OutsideCall:
    status = window_status(window, at, zone, calendar=q.cal)
    return d.OutsideCall(
        attempt_id=attempt_id,
        campaign_id=cid,
        local_time=status.local_time,
        reason=status.reason.value if status.reason else "closed",
    )


async def _dnc_blocked(q: ReportScope) -> dict[int, dict[str, int]]:
    e = LeadEvent
    rows = await q.s.execute(
        sa.select(L.campaign_id, e.reason, sa.func.count())
        .select_from(sa.join(e, L, L.id == e.lead_id).join(C, C.id == L.campaign_id))
        .where(
            e.at >= q.start,
            e.at < q.end,
            e.reason.in_(("dnc", "rne")),
            *q.campaign_conds(),
        )
        .group_by(L.campaign_id, e.reason)
    )
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for cid, reason, n in rows:
        out[cid][reason] = n
    return dict(out)
