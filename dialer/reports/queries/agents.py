"""Agents: calls, talk, logged and paused time, pauses by code and dispositions."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from dialer.db.models import AgentStateLog, User
from dialer.domain.outcomes import AgentState
from dialer.reports import definitions as d
from dialer.reports.queries.scope import AC, A, D, ReportScope
from dialer.reports.queries.sql import seconds_between, secs_of, text_of, ts_param


async def agents(q: ReportScope) -> d.Agents:
    calls = await q.s.execute(
        sa.select(
            A.agent_id,
            sa.func.count(),
            sa.func.sum(seconds_between(A.connected_at, A.ended_at)),
        )
        .select_from(q.base())
        .where(*q.attempt_conds(), A.outcome == AC, A.agent_id.is_not(None))
        .group_by(A.agent_id)
    )
    stats: dict[int, dict[str, int]] = defaultdict(
        lambda: {"calls": 0, "talk": 0, "logged": 0, "paused": 0}
    )
    for agent_id, n, talk in calls:
        stats[agent_id]["calls"] += n
        stats[agent_id]["talk"] += secs_of(talk)

    s_ = AgentStateLog
    as_of = q.f.as_of(q.now)
    start_p, as_of_p = ts_param(q.start), ts_param(as_of)
    end_expr = sa.func.coalesce(s_.ended_at, as_of_p)
    clip_start = sa.case((s_.started_at < start_p, start_p), else_=s_.started_at)
    clip_end = sa.case((end_expr > as_of_p, as_of_p), else_=end_expr)
    conds: list[ColumnElement[bool]] = [
        s_.started_at < as_of,
        end_expr > start_p,
        s_.state != AgentState.LOGGED_OUT,
    ]
    source: Any = s_
    conds.extend(q.campaign_id_conds(s_.campaign_id))
    if q.f.agent_ids:
        conds.append(s_.user_id.in_(q.f.agent_ids))
    inner = (
        sa.select(
            s_.user_id.label("user_id"),
            s_.state.label("state"),
            s_.pause_code.label("pause_code"),
            seconds_between(clip_start, clip_end).label("secs"),
        )
        .select_from(source)
        .where(*conds)
        .subquery()
    )
    states = await q.s.execute(
        sa.select(
            inner.c.user_id, inner.c.state, inner.c.pause_code, sa.func.sum(inner.c.secs)
        ).group_by(inner.c.user_id, inner.c.state, inner.c.pause_code)
    )
    pauses: dict[tuple[int, str], int] = defaultdict(int)
    for user_id, state, code, secs in states:
        acc = stats[user_id]
        seconds = secs_of(secs)
        acc["logged"] += seconds
        if text_of(state) == AgentState.PAUSED.value:
            acc["paused"] += seconds
            pauses[(user_id, code or "sin_codigo")] += seconds

    disp_rows = await q.s.execute(
        sa.select(A.agent_id, D.code, sa.func.count())
        .select_from(sa.join(q.base(), D, D.attempt_id == A.id))
        .where(*q.attempt_conds(), A.agent_id.is_not(None))
        .group_by(A.agent_id, D.code)
    )
    dispositions = [
        d.AgentCount(agent_id=a, code=c, label=d.disposition_label(c), value=n)
        for a, c, n in sorted(disp_rows, key=lambda r: (r[0], r[1]))
    ]
    names: dict[int, str] = {}
    if stats:
        for uid, username, full_name in await q.s.execute(
            sa.select(User.id, User.username, User.full_name).where(User.id.in_(list(stats)))
        ):
            names[uid] = full_name or username

    def row(agent_id: int | None, name: str, acc: dict[str, int]) -> d.AgentRow:
        available = acc["logged"] - acc["paused"]
        return d.AgentRow(
            agent_id=agent_id,
            agent=name,
            calls=acc["calls"],
            talk_seconds=acc["talk"],
            logged_seconds=acc["logged"],
            paused_seconds=acc["paused"],
            available_seconds=available,
            occupancy_pct=d.pct(acc["talk"], available) if available > 0 else None,
            calls_per_hour=d.ratio2(acc["calls"] * 3600, available) if available > 0 else None,
            avg_talk_seconds=d.ratio2(acc["talk"], acc["calls"]),
        )

    out = [row(a, names.get(a, f"#{a}"), stats[a]) for a in sorted(stats)]
    totals = {
        "calls": sum(r.calls for r in out),
        "talk": sum(r.talk_seconds for r in out),
        "logged": sum(r.logged_seconds for r in out),
        "paused": sum(r.paused_seconds for r in out),
    }
    return d.Agents(
        rows=out,
        total=row(None, "Total", totals),
        pauses=[
            d.AgentCount(agent_id=a, code=c, label=c, value=v)
            for (a, c), v in sorted(pauses.items())
        ],
        dispositions=dispositions,
    )
