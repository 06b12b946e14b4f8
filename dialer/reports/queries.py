"""SQL aggregation of the indicators (SQLAlchemy Core, SQLite and PostgreSQL alike).

Every query groups in the database and returns a handful of rows per campaign; Python only
combines those grouped counts (:mod:`dialer.reports.definitions`). Period and day boundaries
are computed in Python (:class:`~dialer.reports.filters.ReportFilter`) and bound as
parameters; per-day buckets are ``CASE`` expressions over those bounds. The one
dialect-specific piece is :class:`seconds_between` (a duration in seconds), compiled for each
dialect below.

Expressions with bound parameters are never put in a ``GROUP BY`` directly (PostgreSQL cannot
tell two parameters are equal): they are computed in an inner select and grouped outside.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from dialer.db.models import (
    AgentStateLog,
    Appointment,
    AppointmentStatus,
    CallAttempt,
    Campaign,
    Disposition,
    Lead,
    LeadEvent,
    Pqrs,
    User,
    UTCDateTime,
    WhatsAppMessage,
    WhatsAppStatus,
)
from dialer.domain.dispositions import DispositionCode
from dialer.domain.outcomes import AgentState, CallOutcome, CampaignType, LeadStatus
from dialer.domain.windows import (
    CallWindow,
    HolidayCalendar,
    closes_at,
    default_calendar,
    is_open,
    next_open,
    resolve_tz,
    window_status,
)
from dialer.reports import definitions as d
from dialer.reports.filters import ReportFilter

__all__ = ["STEPS", "build_report", "open_intervals", "seconds_between"]

A = CallAttempt
L = Lead
C = Campaign
D = Disposition

AC = CallOutcome.ANSWERED_CONNECTED
LIVE = (CallOutcome.ANSWERED_CONNECTED, CallOutcome.ABANDONED)
WRONG = DispositionCode.NUMERO_EQUIVOCADO.value
FINAL_STATUSES = tuple(s for s in LeadStatus if s.is_final)
ROLLING_DAYS = 30
#: Outside-window calls listed one by one (the count itself is exact).
OUTSIDE_LIST_LIMIT = 1000

STEPS: tuple[str, ...] = (
    "Campañas",
    "Efectividad",
    "Contactabilidad",
    "Recuperación",
    "Citas",
    "Satisfacción",
    "PQRS",
    "Cumplimiento",
    "Agentes",
    "WhatsApp",
)

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- SQL helpers


class seconds_between(sa.sql.functions.FunctionElement[float]):  # noqa: N801 - SQL function
    """``end - start`` in seconds (float). NULL if either side is NULL."""

    type = sa.Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between)
def _seconds_pg(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(end, **kw)} - {compiler.process(start, **kw)}))"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = list(element.clauses)
    return (
        f"((julianday({compiler.process(end, **kw)}) - "
        f"julianday({compiler.process(start, **kw)})) * 86400.0)"
    )


def _ts(value: datetime) -> ColumnElement[datetime]:
    return sa.literal(value, UTCDateTime())


def _day_bucket(column: Any, bounds: Sequence[datetime]) -> ColumnElement[int]:
    """Index of the local day ``column`` falls in (bounds: day starts + end), else -1."""
    whens = [(column < b, i) for i, b in enumerate(bounds[1:])]
    return sa.case(*whens, else_=-1)


def _s(value: Any) -> str:
    return str(getattr(value, "value", value))


def _n(value: Any) -> int:
    return int(value or 0)


def _secs(value: Any) -> int:
    return round(float(value or 0))


@dataclass(frozen=True, slots=True)
class _Camp:
    id: int
    name: str
    type: str
    rules: dict[str, Any]
    call_window: dict[str, Any]
    timezone: str

    def ref(self) -> dict[str, Any]:
        return {"campaign_id": self.id, "campaign": self.name, "campaign_type": self.type}


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


# --------------------------------------------------------------------------- the builder


class _Builder:
    def __init__(
        self,
        s: AsyncSession,
        f: ReportFilter,
        now: datetime,
        calendar: HolidayCalendar,
        satisfaction_window_days: int,
    ) -> None:
        self.s = s
        self.f = f
        self.now = now.astimezone(UTC)
        self.cal = calendar
        self.window_days = satisfaction_window_days
        self.start = f.start_utc
        self.end = f.end_utc
        self.camps: dict[int, _Camp] = {}
        self.used: set[int] = set()

    # ------------------------------------------------------------------ conditions
    def campaign_conds(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.f.campaign_ids:
            conds.append(C.id.in_(self.f.campaign_ids))
        if self.f.campaign_types:
            conds.append(C.type.in_(self.f.campaign_types))
        return conds

    def campaign_id_conds(self, column: Any) -> list[ColumnElement[bool]]:
        """``column IN (matching campaigns)`` when campaigns are filtered (no join needed:
        :meth:`campaigns` loaded exactly the campaigns matching the id/type filters)."""
        if self.f.campaign_ids or self.f.campaign_types:
            return [column.in_(sorted(self.camps) or [0])]
        return []

    def brand_branch_conds(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.f.brands:
            conds.append(sa.func.lower(L.brand).in_([b.lower() for b in self.f.brands]))
        if self.f.branches:
            conds.append(sa.func.lower(L.branch).in_([b.lower() for b in self.f.branches]))
        return conds

    def lead_conds(self) -> list[ColumnElement[bool]]:
        """Conditions on a query that joins ``leads`` and ``campaigns``."""
        return [*self.campaign_conds(), *self.brand_branch_conds()]

    def attempt_conds(self) -> list[ColumnElement[bool]]:
        """Conditions on :meth:`base` (attempts, joined to leads only for brand/branch)."""
        conds = [
            A.created_at >= self.start,
            A.created_at < self.end,
            *self.campaign_id_conds(A.campaign_id),
            *self.brand_branch_conds(),
        ]
        if self.f.agent_ids:
            conds.append(A.agent_id.in_(self.f.agent_ids))
        return conds

    def counted(self) -> list[ColumnElement[bool]]:
        return [*self.attempt_conds(), A.outcome.is_not(None), A.counts_against_limit.is_(True)]

    def effective(self) -> list[ColumnElement[bool]]:
        return [*self.counted(), A.outcome == AC, D.code != WRONG]

    def base(self) -> Any:
        """Attempts, joined to their leads only when brand or branch is filtered."""
        if self.f.brands or self.f.branches:
            return sa.join(A, L, L.id == A.lead_id)
        return A

    def type_ids(self, *types: CampaignType, exclude: bool = False) -> list[int]:
        values = {t.value for t in types}
        return sorted(cid for cid, c in self.camps.items() if (c.type in values) != exclude) or [0]

    def agent_dispositions(self) -> sa.Select[tuple[int]]:
        return (
            sa.select(D.id)
            .select_from(sa.join(D, A, A.id == D.attempt_id))
            .where(A.agent_id.in_(self.f.agent_ids))
        )

    def _ref(self, campaign_id: int) -> dict[str, Any]:
        self.used.add(campaign_id)
        camp = self.camps.get(campaign_id)
        if camp is None:
            return {
                "campaign_id": campaign_id,
                "campaign": f"#{campaign_id}",
                "campaign_type": None,
            }
        return camp.ref()

    @staticmethod
    def _total_ref() -> dict[str, Any]:
        return {"campaign_id": None, "campaign": "Total", "campaign_type": None}

    # ------------------------------------------------------------------ campaigns
    async def campaigns(self) -> None:
        rows = await self.s.execute(
            sa.select(C.id, C.name, C.type, C.rules, C.call_window, C.timezone)
            .where(*self.campaign_conds())
            .order_by(C.id)
        )
        for cid, name, ctype, rules, window, tz in rows:
            self.camps[cid] = _Camp(cid, name, _s(ctype), rules or {}, window or {}, tz)

    # ------------------------------------------------------------------ effectiveness
    async def effectiveness(self) -> d.Effectiveness:
        rows = await self.s.execute(
            sa.select(A.campaign_id, A.outcome, A.counts_against_limit, D.code, sa.func.count())
            .select_from(sa.outerjoin(self.base(), D, D.attempt_id == A.id))
            .where(*self.attempt_conds(), A.outcome.is_not(None))
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
            by_outcome[_s(outcome)] += n
            if _s(outcome) != AC.value:
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

        out = [row(self._ref(cid), per[cid]) for cid in sorted(per)]
        total = row(self._total_ref(), d.sum_rows(out, keys))
        return d.Effectiveness(
            rows=out, total=total, by_outcome=d.count_rows(by_outcome, d.OUTCOME_LABELS)
        )

    # ------------------------------------------------------------------ contactability
    async def contactability(self) -> d.Contactability:
        last = (
            sa.select(A.lead_id.label("lead_id"), sa.func.max(A.attempt_number).label("n"))
            .select_from(self.base())
            .where(*self.counted())
            .group_by(A.lead_id)
            .subquery()
        )
        contacted = (
            sa.select(A.lead_id)
            .select_from(sa.join(self.base(), D, D.attempt_id == A.id))
            .where(*self.effective())
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
        rows = await self.s.execute(
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
                reasons[cid][d.no_contact_reason(_s(outcome), code)] += n

        def row(ref: dict[str, Any], w: int, c: int, why: dict[str, int]) -> d.ContactabilityRow:
            return d.ContactabilityRow(
                **ref,
                leads_worked=w,
                leads_contacted=c,
                leads_not_contacted=w - c,
                contactability_pct=d.pct(c, w),
                no_contact=dict(sorted(why.items())),
            )

        out = [
            row(self._ref(cid), worked[cid], reached[cid], reasons[cid]) for cid in sorted(worked)
        ]
        all_reasons: dict[str, int] = defaultdict(int)
        for why in reasons.values():
            for k, v in why.items():
                all_reasons[k] += v
        total = row(self._total_ref(), sum(worked.values()), sum(reached.values()), all_reasons)
        return d.Contactability(
            rows=out, total=total, reasons=d.count_rows(all_reasons, d.NO_CONTACT_LABELS)
        )

    # ------------------------------------------------------------------ recovery
    def _appointment_in_period(self, *extra: ColumnElement[bool]) -> sa.Exists:
        ap = Appointment
        conds = [ap.lead_id == L.id, ap.created_at >= self.start, ap.created_at < self.end]
        if self.f.agent_ids:
            conds.append(ap.disposition_id.in_(self.agent_dispositions()))
        return sa.exists().where(*conds, *extra)

    async def recovery(self) -> d.Recovery:
        any_attempt = sa.exists().where(A.lead_id == L.id)
        cleaned = sa.and_(L.status == LeadStatus.EXCLUDED, ~any_attempt)
        active_since = sa.or_(
            sa.exists().where(A.lead_id == L.id, A.created_at >= self.start),
            sa.exists().where(LeadEvent.lead_id == L.id, LeadEvent.at >= self.start),
        )
        closed_before = sa.and_(L.status.in_(FINAL_STATUSES), ~active_since)
        recovered = self._appointment_in_period()
        kept = self._appointment_in_period(Appointment.status == AppointmentStatus.KEPT)
        inner = (
            sa.select(
                L.campaign_id.label("campaign_id"),
                sa.case((recovered, 1), else_=0).label("rec"),
                sa.case((kept, 1), else_=0).label("kept"),
            )
            .select_from(sa.join(L, C, C.id == L.campaign_id))
            .where(
                C.type == CampaignType.RECUPERACION,
                L.created_at < self.end,
                ~cleaned,
                ~closed_before,
                *self.lead_conds(),
            )
            .subquery()
        )
        rows = await self.s.execute(
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
            row(self._ref(cid), _n(n), _n(rec), _n(kp))
            for cid, n, rec, kp in sorted(rows, key=lambda r: r[0])
        ]
        sums = d.sum_rows(out, ("leads_in_list", "recovered", "kept"))
        total = row(self._total_ref(), sums["leads_in_list"], sums["recovered"], sums["kept"])
        return d.Recovery(rows=out, total=total)

    # ------------------------------------------------------------------ appointments
    async def appointments(self) -> d.Appointments:
        ap = Appointment
        conds = [ap.created_at >= self.start, ap.created_at < self.end, *self.lead_conds()]
        if self.f.agent_ids:
            conds.append(ap.disposition_id.in_(self.agent_dispositions()))
        rows = await self.s.execute(
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
                acc[status_key[_s(status)]] += n

        def fulfil(acc: dict[str, int]) -> float | None:
            return d.pct(acc["kept"], acc["kept"] + acc["no_show"])

        out = [
            d.AppointmentRow(**self._ref(cid), **per[cid], fulfilment_pct=fulfil(per[cid]))
            for cid in sorted(per)
        ]
        sums = d.sum_rows(out, keys)
        total = d.AppointmentRow(**self._total_ref(), **sums, fulfilment_pct=fulfil(sums))
        by_branch = [
            d.BranchAppointments(branch=b, **acc, fulfilment_pct=fulfil(acc))
            for b, acc in sorted(branch.items())
        ]
        return d.Appointments(
            rows=out,
            total=total,
            by_branch=by_branch,
            not_booked_reasons=await self._not_booked(),
        )

    async def _not_booked(self) -> list[d.CountRow]:
        last = (
            sa.select(A.lead_id.label("lead_id"), sa.func.max(A.attempt_number).label("n"))
            .select_from(sa.join(self.base(), D, D.attempt_id == A.id))
            .where(
                *self.effective(),
                A.campaign_id.in_(self.type_ids(CampaignType.SATISFACCION, exclude=True)),
            )
            .group_by(A.lead_id)
            .subquery()
        )
        a2 = aliased(CallAttempt)
        d2 = aliased(Disposition)
        ap = Appointment
        booked = sa.exists().where(
            ap.lead_id == last.c.lead_id, ap.created_at >= self.start, ap.created_at < self.end
        )
        rows = await self.s.execute(
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

    # ------------------------------------------------------------------ satisfaction
    async def satisfaction(self, contact: d.Contactability) -> d.Satisfaction:
        bounds = self.f.day_bounds()
        first = (
            sa.select(A.lead_id.label("lead_id"), sa.func.min(A.created_at).label("first_at"))
            .select_from(sa.join(self.base(), D, D.attempt_id == A.id))
            .where(*self.effective(), A.campaign_id.in_(self.type_ids(CampaignType.SATISFACCION)))
            .group_by(A.lead_id)
            .subquery()
        )
        inner = (
            sa.select(
                L.campaign_id.label("campaign_id"),
                L.event_date.label("event_date"),
                _day_bucket(first.c.first_at, bounds).label("day"),
            )
            .select_from(first.join(L, L.id == first.c.lead_id))
            .subquery()
        )
        rows = await self.s.execute(
            sa.select(
                inner.c.campaign_id, inner.c.event_date, inner.c.day, sa.func.count()
            ).group_by(inner.c.campaign_id, inner.c.event_date, inner.c.day)
        )
        timing: dict[int, dict[str, int]] = defaultdict(
            lambda: {"in_window": 0, "late": 0, "early": 0, "no_event_date": 0}
        )
        for cid, event_date, day_index, n in rows:
            camp = self.camps.get(cid)
            first_day = int((camp.rules if camp else {}).get("satisfaction_first_call_day", 2))
            acc = timing[cid]
            if event_date is None or day_index < 0:
                acc["no_event_date"] += n
                continue
            offset = (self.f.start + timedelta(days=int(day_index)) - event_date).days
            if offset < first_day:
                acc["early"] += n
            elif offset <= first_day + self.window_days - 1:
                acc["in_window"] += n
            else:
                acc["late"] += n

        disp_rows = await self.s.execute(
            sa.select(A.campaign_id, D.code, sa.func.count())
            .select_from(sa.join(self.base(), D, D.attempt_id == A.id))
            .where(
                *self.counted(),
                A.outcome == AC,
                A.campaign_id.in_(self.type_ids(CampaignType.SATISFACCION)),
            )
            .group_by(A.campaign_id, D.code)
        )
        disp: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        all_disp: dict[str, int] = defaultdict(int)
        for cid, code, n in disp_rows:
            disp[cid][code] += n
            all_disp[code] += n

        area_rows = await self.s.execute(
            sa.select(D.opportunity_area, sa.func.count())
            .select_from(sa.join(self.base(), D, D.attempt_id == A.id))
            .where(
                *self.counted(),
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
            for cid, c in self.camps.items()
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
                    self._ref(cid),
                    cr.leads_worked if cr else 0,
                    cr.leads_contacted if cr else 0,
                    timing[cid],
                    disp[cid],
                )
            )
        tkeys = ("in_window", "late", "early", "no_event_date")
        total = row(
            self._total_ref(),
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
            window_days=self.window_days,
            rows=out,
            total=total,
            dispositions=d.count_rows(all_disp, labels),
            pareto=chart,
            mentions=sum(areas.values()),
            vital_few=[r.code for r in chart if r.vital],
        )

    # ------------------------------------------------------------------ PQRS
    def _pqrs_from(self) -> tuple[Any, list[ColumnElement[bool]]]:
        p = Pqrs
        conds: list[ColumnElement[bool]] = []
        source: Any = p
        if self.f.has_lead_filters:
            source = sa.join(p, L, L.id == p.lead_id).join(C, C.id == L.campaign_id)
            conds.extend(self.lead_conds())
        if self.f.agent_ids:
            conds.append(p.disposition_id.in_(self.agent_dispositions()))
        return source, conds

    async def pqrs(self) -> d.PqrsReport:
        p = Pqrs
        source, conds = self._pqrs_from()
        as_of = self.f.as_of(self.now)
        cutoff = self.f.end if as_of >= self.end else as_of.astimezone(self.f.zone).date()
        keys = ("opened", "closed", "closed_on_time", "closed_late", "overdue", "open_at_cutoff")
        per: dict[str, dict[str, int]] = {t: dict.fromkeys(keys, 0) for t in d.PQRS_TYPE_LABELS}

        opened = await self.s.execute(
            sa.select(p.type, sa.func.count())
            .select_from(source)
            .where(*conds, p.created_at >= self.start, p.created_at < self.end)
            .group_by(p.type)
        )
        for ptype, n in opened:
            per[_s(ptype)]["opened"] += n

        bounds = self.f.day_bounds()
        inner = (
            sa.select(
                p.type.label("type"),
                p.deadline.label("deadline"),
                _day_bucket(p.closed_at, bounds).label("day"),
            )
            .select_from(source)
            .where(*conds, p.closed_at >= self.start, p.closed_at < self.end)
            .subquery()
        )
        closed = await self.s.execute(
            sa.select(inner.c.type, inner.c.deadline, inner.c.day, sa.func.count()).group_by(
                inner.c.type, inner.c.deadline, inner.c.day
            )
        )
        for ptype, deadline, day_index, n in closed:
            acc = per[_s(ptype)]
            acc["closed"] += n
            closed_on = self.f.start + timedelta(days=int(day_index))
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
        still_open = await self.s.execute(
            sa.select(open_inner.c.type, sa.func.count(), sa.func.sum(open_inner.c.over)).group_by(
                open_inner.c.type
            )
        )
        for ptype, n, over in still_open:
            per[_s(ptype)]["open_at_cutoff"] += n
            per[_s(ptype)]["overdue"] += _n(over)

        rows = [d.PqrsTypeRow(type=t, label=d.PQRS_TYPE_LABELS[t], **acc) for t, acc in per.items()]
        total = d.PqrsTypeRow(type="total", label="Total", **d.sum_rows(rows, keys))
        return d.PqrsReport(cutoff=cutoff, rows=rows, total=total)

    # ------------------------------------------------------------------ compliance
    async def compliance(self) -> d.Compliance:
        cap = Decimal(str(d.ABANDON_CAP))
        first_day = self.f.start - timedelta(days=ROLLING_DAYS - 1)
        bounds = self.f.day_bounds(first_day)
        inner = (
            sa.select(
                A.campaign_id.label("campaign_id"),
                _day_bucket(A.created_at, bounds).label("day"),
                sa.case((A.outcome == CallOutcome.ABANDONED, 1), else_=0).label("ab"),
            )
            .where(
                A.created_at >= bounds[0],
                A.created_at < self.end,
                A.outcome.in_(LIVE),
                *self.campaign_id_conds(A.campaign_id),
            )
            .subquery()
        )
        rows = await self.s.execute(
            sa.select(
                inner.c.campaign_id, inner.c.day, sa.func.count(), sa.func.sum(inner.c.ab)
            ).group_by(inner.c.campaign_id, inner.c.day)
        )
        ndays = len(bounds) - 1
        live: dict[int, list[int]] = defaultdict(lambda: [0] * ndays)
        aband: dict[int, list[int]] = defaultdict(lambda: [0] * ndays)
        for cid, day_index, n, ab in rows:
            live[cid][day_index] += n
            aband[cid][day_index] += _n(ab)

        def over(ab: int, lv: int) -> bool:
            return lv > 0 and Decimal(ab) > cap * lv

        daily: list[d.AbandonDay] = []
        summary: dict[int, dict[str, Any]] = {}
        offset = ROLLING_DAYS - 1
        for cid in sorted(live):
            r_live = d.rolling_sums(live[cid], ROLLING_DAYS)
            r_ab = d.rolling_sums(aband[cid], ROLLING_DAYS)
            days = []
            for i, day in enumerate(self.f.days):
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

        outside, outside_calls = await self._outside_window()
        blocked = await self._dnc_blocked()
        ids = sorted(set(summary) | set(outside) | set(blocked))
        out: list[d.ComplianceRow] = []
        for cid in ids:
            sm = summary.get(cid, {})
            ab, lv = int(sm.get("abandoned", 0)), int(sm.get("live", 0))
            out.append(
                d.ComplianceRow(
                    **self._ref(cid),
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
            **self._total_ref(),
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

    async def _outside_window(self) -> tuple[dict[int, int], list[d.OutsideCall]]:
        """Calls started while the window was closed, per campaign.

        The open intervals come from the canonical window functions; their complement in the
        period (the closed gaps) is counted with index range scans on (campaign, created_at).
        Attempts of leads with their own time zone (rare) are re-checked one by one.
        """
        ids = [
            cid
            for (cid,) in await self.s.execute(
                sa.select(A.campaign_id)
                .where(
                    A.created_at >= self.start,
                    A.created_at < self.end,
                    *self.campaign_id_conds(A.campaign_id),
                )
                .distinct()
            )
        ]
        counts: dict[int, int] = defaultdict(int)
        calls: list[d.OutsideCall] = []
        for cid in sorted(ids):
            camp = self.camps.get(cid)
            window = self._window(camp)
            zone = camp.timezone if camp else self.f.timezone
            gaps = self._gaps(window, zone)
            per_gap = await self._gap_counts(cid, gaps)
            own_tz = await self._own_tz_attempts(cid, zone)
            skip = {attempt_id for attempt_id, _, _ in own_tz}
            n = 0
            for (g_start, g_end), k in zip(gaps, per_gap, strict=True):
                if not k:
                    continue
                n += k
                if len(calls) >= OUTSIDE_LIST_LIMIT:
                    continue
                rows = await self.s.execute(
                    sa.select(A.id, A.created_at)
                    .where(A.campaign_id == cid, A.created_at >= g_start, A.created_at < g_end)
                    .order_by(A.created_at, A.id)
                    .limit(OUTSIDE_LIST_LIMIT - len(calls) + len(skip))
                )
                for attempt_id, created_at in rows:
                    if attempt_id not in skip and len(calls) < OUTSIDE_LIST_LIMIT:
                        calls.append(self._outside(attempt_id, cid, created_at, window, zone))
            for attempt_id, created_at, lead_zone in own_tz:
                by_campaign = not is_open(window, created_at, zone, calendar=self.cal)
                by_lead = not is_open(window, created_at, lead_zone, calendar=self.cal)
                n += int(by_lead) - int(by_campaign)
                if by_lead and len(calls) < OUTSIDE_LIST_LIMIT:
                    calls.append(self._outside(attempt_id, cid, created_at, window, lead_zone))
            if n:
                counts[cid] = n
        calls.sort(key=lambda c: (c.campaign_id, c.local_time, c.attempt_id))
        return dict(counts), calls

    @staticmethod
    def _window(camp: _Camp | None) -> CallWindow:
        if camp is None or not camp.call_window:
            return CallWindow()
        return CallWindow.from_dict(camp.call_window)

    def _gaps(self, window: CallWindow, zone: str) -> list[tuple[datetime, datetime]]:
        """The closed stretches of the period: its complement of the open intervals."""
        gaps: list[tuple[datetime, datetime]] = []
        cursor = self.start
        for opened, closed in open_intervals(
            window, self.start - timedelta(days=1), self.end, zone, self.cal
        ):
            if opened > cursor:
                gaps.append((cursor, min(opened, self.end)))
            cursor = max(cursor, closed)
            if cursor >= self.end:
                break
        if cursor < self.end:
            gaps.append((cursor, self.end))
        return gaps

    async def _gap_counts(self, cid: int, gaps: list[tuple[datetime, datetime]]) -> list[int]:
        if not gaps:
            return []
        counts = [
            sa.select(sa.func.count())
            .select_from(A)
            .where(A.campaign_id == cid, A.created_at >= g0, A.created_at < g1)
            .scalar_subquery()
            for g0, g1 in gaps
        ]
        row = (await self.s.execute(sa.select(*counts))).one()
        return [_n(v) for v in row]

    async def _own_tz_attempts(self, cid: int, zone: str) -> list[tuple[int, datetime, str]]:
        """Attempts whose lead has its own time zone, different from the campaign's."""
        other = (
            sa.select(L.id)
            .where(L.campaign_id == cid, L.timezone.is_not(None), L.timezone != zone)
            .scalar_subquery()
        )
        has_any = await self.s.scalar(sa.select(sa.exists().where(L.id.in_(other))))
        if not has_any:
            return []
        rows = await self.s.execute(
            sa.select(A.id, A.created_at, L.timezone)
            .select_from(sa.join(A, L, L.id == A.lead_id))
            .where(
                A.campaign_id == cid,
                A.created_at >= self.start,
                A.created_at < self.end,
                L.timezone.is_not(None),
                L.timezone != zone,
            )
        )
        return [(i, at, str(tz)) for i, at, tz in rows]

    def _outside(
        self, attempt_id: int, cid: int, at: datetime, window: CallWindow, zone: str
    ) -> d.OutsideCall:
        status = window_status(window, at, zone, calendar=self.cal)
        return d.OutsideCall(
            attempt_id=attempt_id,
            campaign_id=cid,
            local_time=status.local_time,
            reason=status.reason.value if status.reason else "closed",
        )

    async def _dnc_blocked(self) -> dict[int, dict[str, int]]:
        e = LeadEvent
        rows = await self.s.execute(
            sa.select(L.campaign_id, e.reason, sa.func.count())
            .select_from(sa.join(e, L, L.id == e.lead_id).join(C, C.id == L.campaign_id))
            .where(
                e.at >= self.start,
                e.at < self.end,
                e.reason.in_(("dnc", "rne")),
                *self.campaign_conds(),
            )
            .group_by(L.campaign_id, e.reason)
        )
        out: dict[int, dict[str, int]] = defaultdict(dict)
        for cid, reason, n in rows:
            out[cid][reason] = n
        return dict(out)

    # ------------------------------------------------------------------ agents
    async def agents(self) -> d.Agents:
        calls = await self.s.execute(
            sa.select(
                A.agent_id,
                sa.func.count(),
                sa.func.sum(seconds_between(A.connected_at, A.ended_at)),
            )
            .select_from(self.base())
            .where(*self.attempt_conds(), A.outcome == AC, A.agent_id.is_not(None))
            .group_by(A.agent_id)
        )
        stats: dict[int, dict[str, int]] = defaultdict(
            lambda: {"calls": 0, "talk": 0, "logged": 0, "paused": 0}
        )
        for agent_id, n, talk in calls:
            stats[agent_id]["calls"] += n
            stats[agent_id]["talk"] += _secs(talk)

        s_ = AgentStateLog
        as_of = self.f.as_of(self.now)
        start_p, as_of_p = _ts(self.start), _ts(as_of)
        end_expr = sa.func.coalesce(s_.ended_at, as_of_p)
        clip_start = sa.case((s_.started_at < start_p, start_p), else_=s_.started_at)
        clip_end = sa.case((end_expr > as_of_p, as_of_p), else_=end_expr)
        conds: list[ColumnElement[bool]] = [
            s_.started_at < as_of,
            end_expr > start_p,
            s_.state != AgentState.LOGGED_OUT,
        ]
        source: Any = s_
        conds.extend(self.campaign_id_conds(s_.campaign_id))
        if self.f.agent_ids:
            conds.append(s_.user_id.in_(self.f.agent_ids))
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
        states = await self.s.execute(
            sa.select(
                inner.c.user_id, inner.c.state, inner.c.pause_code, sa.func.sum(inner.c.secs)
            ).group_by(inner.c.user_id, inner.c.state, inner.c.pause_code)
        )
        pauses: dict[tuple[int, str], int] = defaultdict(int)
        for user_id, state, code, secs in states:
            acc = stats[user_id]
            seconds = _secs(secs)
            acc["logged"] += seconds
            if _s(state) == AgentState.PAUSED.value:
                acc["paused"] += seconds
                pauses[(user_id, code or "sin_codigo")] += seconds

        disp_rows = await self.s.execute(
            sa.select(A.agent_id, D.code, sa.func.count())
            .select_from(sa.join(self.base(), D, D.attempt_id == A.id))
            .where(*self.attempt_conds(), A.agent_id.is_not(None))
            .group_by(A.agent_id, D.code)
        )
        dispositions = [
            d.AgentCount(agent_id=a, code=c, label=d.disposition_label(c), value=n)
            for a, c, n in sorted(disp_rows, key=lambda r: (r[0], r[1]))
        ]
        names: dict[int, str] = {}
        if stats:
            for uid, username, full_name in await self.s.execute(
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

    # ------------------------------------------------------------------ WhatsApp
    async def whatsapp(self) -> d.WhatsAppFunnel:
        m = WhatsAppMessage
        reply = aliased(WhatsAppMessage)
        replied = sa.exists().where(
            reply.direction == "in",
            reply.lead_id == m.lead_id,
            reply.created_at >= m.created_at,
        )
        conds: list[ColumnElement[bool]] = [
            m.direction == "out",
            m.created_at >= self.start,
            m.created_at < self.end,
            *self.lead_conds(),
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
        rows = await self.s.execute(
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
            st = _s(status)
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
        out = [d.WhatsAppRow(**self._ref(cid), **per[cid]) for cid in sorted(per)]
        total = d.WhatsAppRow(**self._total_ref(), **d.sum_rows(out, keys))
        funnel = [
            d.CountRow(code=k, label=d.WHATSAPP_STAGE_LABELS[k], count=getattr(total, k))
            for k in ("queued", "sent", "delivered", "read", "replied", "failed")
        ]
        return d.WhatsAppFunnel(rows=out, total=total, funnel=funnel)


async def build_report(
    session: AsyncSession,
    flt: ReportFilter,
    *,
    now: datetime,
    calendar: HolidayCalendar | None = None,
    satisfaction_window_days: int = 5,
    title: str = "Informe mensual de indicadores",
    progress: Progress | None = None,
) -> d.Report:
    """Compute every indicator group for ``flt``. ``now`` (aware) is when the report is made:
    open agent intervals and PQRS still open are measured up to ``min(now, period end)``."""
    b = _Builder(session, flt, now, calendar or default_calendar(), satisfaction_window_days)

    def step(name: str) -> None:
        if progress is not None:
            progress(name)

    await b.campaigns()
    step(STEPS[0])
    effectiveness = await b.effectiveness()
    step(STEPS[1])
    contactability = await b.contactability()
    step(STEPS[2])
    recovery = await b.recovery()
    step(STEPS[3])
    appointments = await b.appointments()
    step(STEPS[4])
    satisfaction = await b.satisfaction(contactability)
    step(STEPS[5])
    pqrs = await b.pqrs()
    step(STEPS[6])
    compliance = await b.compliance()
    step(STEPS[7])
    agents = await b.agents()
    step(STEPS[8])
    whatsapp = await b.whatsapp()
    step(STEPS[9])
    used = [d.CampaignRef(**b.camps[c].ref()) for c in sorted(b.used) if c in b.camps]
    meta = d.ReportMeta(
        title=title,
        period=flt.describe(),
        generated_at=now.astimezone(UTC),
        as_of=flt.as_of(now),
        campaigns=used,
    )
    return d.Report(
        meta=meta,
        effectiveness=effectiveness,
        contactability=contactability,
        recovery=recovery,
        appointments=appointments,
        satisfaction=satisfaction,
        pqrs=pqrs,
        compliance=compliance,
        agents=agents,
        whatsapp=whatsapp,
    )


def local_date(value: datetime, tz: str) -> date:
    return value.astimezone(resolve_tz(tz)).date()
