"""The report builder: runs every indicator group for one filter, in order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.domain.windows import HolidayCalendar, default_calendar
from dialer.reports import definitions as d
from dialer.reports.filters import ReportFilter
from dialer.reports.queries.agents import agents
from dialer.reports.queries.appointments import appointments
from dialer.reports.queries.compliance import compliance
from dialer.reports.queries.effectiveness import contactability, effectiveness
from dialer.reports.queries.pqrs import pqrs
from dialer.reports.queries.recovery import recovery
from dialer.reports.queries.satisfaction import satisfaction
from dialer.reports.queries.scope import ReportScope
from dialer.reports.queries.whatsapp import whatsapp

__all__ = ["STEPS", "Progress", "build_report"]

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
    q = ReportScope(session, flt, now, calendar or default_calendar(), satisfaction_window_days)

    def step(name: str) -> None:
        if progress is not None:
            progress(name)

    await q.load_campaigns()
    step(STEPS[0])
    effective = await effectiveness(q)
    step(STEPS[1])
    contact = await contactability(q)
    step(STEPS[2])
    recovered = await recovery(q)
    step(STEPS[3])
    booked = await appointments(q)
    step(STEPS[4])
    satisfied = await satisfaction(q, contact)
    step(STEPS[5])
    requests = await pqrs(q)
    step(STEPS[6])
    compliant = await compliance(q)
    step(STEPS[7])
    staff = await agents(q)
    step(STEPS[8])
    messages = await whatsapp(q)
    step(STEPS[9])
    used = [d.CampaignRef(**q.camps[c].ref()) for c in sorted(q.used) if c in q.camps]
    meta = d.ReportMeta(
        title=title,
        period=flt.describe(),
        generated_at=now.astimezone(UTC),
        as_of=flt.as_of(now),
        campaigns=used,
    )
    return d.Report(
        meta=meta,
        effectiveness=effective,
        contactability=contact,
        recovery=recovered,
        appointments=booked,
        satisfaction=satisfied,
        pqrs=requests,
        compliance=compliant,
        agents=staff,
        whatsapp=messages,
    )
