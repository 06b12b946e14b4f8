"""The hand-built October 2026 (tests/reports/fixture.py) against hand-computed indicators.

Every literal below was computed by hand from the fixture tables; the comment next to it shows
the arithmetic. The query layer, the XLSX workbook (read back with openpyxl) and the API
(tests/reports/test_api.py) must all produce exactly these values.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.reports.definitions import Report
from dialer.reports.filters import ReportFilter
from dialer.reports.html import render_html
from dialer.reports.queries import build_report
from dialer.reports.xlsx import SHEETS, workbook_bytes
from tests.reports.fixture import NOW, FixtureIds, load_fixture

# --------------------------------------------------------------------------- expected values
# Efectividad = efectivas / totales x 100. Totales: attempts with an outcome that count
# against the limit (R9#2 CANCELLED and R11#1 FAILED are system failures; R19#1 has no outcome).
#   C1: 22 attempts with outcome - 2 failures = 20 calls; connected: R1#2 R2#2 R3 R4 R5 R7
#       R11#2 R12#1 R12#2 = 9; R7 is "número equivocado" -> 8 effective; 8/20 = 40.00 %
#   C2: 15 calls (S1 1, S2 2, S3 1, S4 1, S5 1, S6 5, S7 1, S8 1, S9 1, S10 1); 8 connected,
#       all with a customer disposition -> 8/15 = 53.33 %
#   Total: 16/35 = 45.714 -> 45.71 %
EFFECTIVENESS = {
    "C1": (20, 8, 40.0),  # (total calls, effective calls, %)
    "C2": (15, 8, 53.33),
    "total": (35, 16, 45.71),
}
SYSTEM_FAILURES = 2  # R9#2 cancelled + R11#1 failed

# Contactabilidad = contacted leads / worked leads x 100 (worked: >= 1 counted call).
#   C1 worked: R1-R12 + R16 = 13; contacted: R1 R2 R3 R4 R5 R11 R12 = 7 -> 53.85 %
#   C2 worked: S1-S10 = 10; contacted: all but S6, S10 = 8 -> 80.00 %
#   Total 15/23 = 65.217 -> 65.22 %
CONTACTABILITY = {"C1": (13, 7, 53.85), "C2": (10, 8, 80.0), "total": (23, 15, 65.22)}
# Reasons (last counted call of each lead not contacted): R6 machine, R7 wrong number,
# R8 busy (#2), R9 abandoned (#1; #2 was cancelled, not counted), R10 invalid number,
# R16 no answer, S6 no answer, S10 rejected -> 8 = 23 - 15
NO_CONTACT = {
    "no_contesta": 2,
    "contestador": 1,
    "numero_equivocado": 1,
    "ocupado": 1,
    "abandonada": 1,
    "inalcanzable": 1,
    "rechazada": 1,
}

# Recuperación (C1 only). In the list: leads imported before 1 Nov, minus cleaned leads
# (excluded without any call: R14 corporate, R17 DNC, R18 RNE) and leads closed before the
# period (R15, recovered in September) -> R1-R13, R16, R19 = 15.
# Recovered (appointment booked in October): R1 R2 R3 R12 = 4 -> 4/15 = 26.67 %
# Kept: R1 -> 1/15 = 6.67 %
RECOVERY = (15, 4, 26.67, 1, 6.67)

# Citas booked in October: R1 kept, R2 no-show, R3 pending, R12 cancelled (R15's is September).
# Cumplimiento = kept / (kept + no-show) = 1/2 = 50.00 %. By branch: Tunja R1 R2 R12, Duitama R3.
APPOINTMENTS = (4, 1, 1, 1, 1, 50.0)  # booked, kept, no-show, cancelled, pending, %
# Not booked: C1 contacted leads without an appointment in October, by their last effective
# disposition: R4 no interesado/precio, R5 no interesado/tiempo, R11 otro taller -> 3 = 7 - 4
NOT_BOOKED = {"no_interesado:precio": 1, "no_interesado:tiempo": 1, "servicio_en_otro_taller": 1}

# Satisfacción (C2). Window: days 2..6 after the event date. First effective call:
#   S1 1->3 Oct d2, S2 1->5 d4, S3 2->5 d3, S5 6->8 d2, S7 7->9 d2, S8 7->9 d2, S9 20->22 d2
#   = 7 in window; S4 2->13 d11 = late. In window / worked = 7/10 = 70.00 %
SATISFACTION = (10, 8, 7, 1, 70.0)  # worked, contacted, in window, late, %
# Opportunity areas (mentions): S2 TE CO, S3 TE PR, S4 TE, S7 CA TE AA, S8 CO IN, S9 PR
#   tiempo_entrega 4, precio 2, comunicacion 2, atencion_asesor 1, calidad_trabajo 1,
#   instalaciones 1 = 11. Ties in catalogue order (precio before comunicacion; atencion before
#   calidad before instalaciones). Cumulative: 4/11 36.36, 6/11 54.55, 8/11 72.73,
#   9/11 81.82 (>= 80 % with 4 areas -> vital few), 10/11 90.91, 11/11 100.00
PARETO = [
    ("tiempo_entrega", 4, 36.36, 36.36, True),
    ("precio", 2, 18.18, 54.55, True),
    ("comunicacion", 2, 18.18, 72.73, True),
    ("atencion_asesor", 1, 9.09, 81.82, True),
    ("calidad_trabajo", 1, 9.09, 90.91, False),
    ("instalaciones", 1, 9.09, 100.0, False),
]

# PQRS (cutoff 1 Nov): opened in October: S5 queja, R4 petición, R5 reclamo, sugerencia = 4.
# Closed in October: S5 queja on 20 Oct (deadline 30 Oct: on time), R2 queja (September, deadline
# 22 Sep) on 2 Oct: late, sugerencia on 16 Oct (deadline 5 Nov): on time -> 3 (2 on time, 1 late).
# Open at the cutoff: R4 petición (deadline 27 Oct < 1 Nov: overdue), R5 reclamo (10 Nov) -> 2.
PQRS_TOTAL = (4, 3, 2, 1, 1, 2)  # opened, closed, on time, late, overdue, open at cutoff
PQRS_BY_TYPE = {  # opened, closed, overdue
    "peticion": (1, 0, 1),
    "queja": (1, 2, 0),
    "reclamo": (1, 0, 0),
    "sugerencia": (1, 1, 0),
}

# Cumplimiento. C1 live answers in October: 9 connected + 2 abandoned (R8 8 Oct, R9 9 Oct) = 11
#   -> 2/11 = 18.18 %; daily rate 1/1 = 100 % on 8 and 9 Oct -> 2 days over the 3 % cap.
#   30 days at 1 Oct: [2 Sep, 1 Oct] holds R15's abandoned (19 Sep) and connected (23 Sep): 1/2
#   = 50.00 %; at 31 Oct: [2 Oct, 31 Oct]: 2 abandoned / 11 live = 18.18 %.
#   C2: 8 live answers, 0 abandoned.
# Outside the window: R16#1 (12 Oct, holiday) and R16#2 (13 Oct 19:30, after 19:00) = 2.
# DNC hits: R17 (dnc) 1, R18 (rne) 1 ("call_window" deferrals do not count).
COMPLIANCE_C1 = (2, 11, 18.18, 18.18, 100.0, 2, 2, 1, 1)
COMPLIANCE_C2 = (0, 8, 0.0, 0.0, 0.0, 0, 0, 0, 0)

# Agents. Talk = sum(ended - connected) of their connected calls:
#   ana: R1 180 + R3 240 + R5 90 + R11 150 + S1 120 + S3 200 + S4 100 + S8 80 = 1160 s, 8 calls
#   beto: R2 120 + R4 60 + R7 30 + R12 200 + 100 + S2 300 + S5 150 + S7 250 + S9 90 = 1300 s, 9
# Logged (state intervals clipped to October) and paused:
#   ana: 7200 + 900 (break) + 7200 + 3600 (almuerzo) = 18900, paused 4500, available 14400
#   beto: 3600 (30 Sep 23:00 - 1 Oct 01:00, clipped to 00:00-01:00) + 1800 (capacitación)
#         + 28800 (31 Oct 16:00 - open, clipped at 1 Nov 00:00) = 34200, paused 1800, avail 32400
# Occupancy = talk / available: ana 1160/14400 = 8.06 %, beto 1300/32400 = 4.01 %,
#   total 2460/46800 = 5.26 %. Calls per hour: ana 8/4 h = 2.00, beto 9/9 h = 1.00,
#   total 17/13 h = 1.31.
AGENTS = {
    "ana": (8, 1160, 18900, 4500, 14400, 8.06, 2.0),
    "beto": (9, 1300, 34200, 1800, 32400, 4.01, 1.0),
    "total": (17, 2460, 53100, 6300, 46800, 5.26, 1.31),
}
PAUSES = {("ana", "almuerzo"): 3600, ("ana", "break"): 900, ("beto", "capacitacion"): 1800}

# WhatsApp (outbound created in October): R6 read + replied (R6 wrote on 9 Oct), S6 delivered,
# R8 failed (no wamid), R16 queued, R10 sent -> queued 5, sent 3, delivered 2, read 1,
# replied 1, failed 1.
WHATSAPP = {"queued": 5, "sent": 3, "delivered": 2, "read": 1, "replied": 1, "failed": 1}


# --------------------------------------------------------------------------- helpers


async def _report(sm: async_sessionmaker[AsyncSession], **kwargs: Any) -> Report:
    async with sm() as s:
        return await build_report(s, ReportFilter.for_month("2026-10", **kwargs), now=NOW)


@pytest.fixture
async def fx(sessionmaker: async_sessionmaker[AsyncSession]) -> FixtureIds:
    return await load_fixture(sessionmaker)


def check_report(report: Report, fx: FixtureIds) -> None:
    """The query layer (or anything parsed back into a Report) against the literals."""
    c1, c2 = fx.campaigns["C1"], fx.campaigns["C2"]
    eff = {r.campaign_id: r for r in report.effectiveness.rows}
    for key, cid in (("C1", c1), ("C2", c2)):
        r = eff[cid]
        assert (r.total_calls, r.effective_calls, r.effectiveness_pct) == EFFECTIVENESS[key]
    t = report.effectiveness.total
    assert (t.total_calls, t.effective_calls, t.effectiveness_pct) == EFFECTIVENESS["total"]
    assert t.system_failures == SYSTEM_FAILURES
    assert t.wrong_number_calls == 1

    con = {r.campaign_id: r for r in report.contactability.rows}
    for key, cid in (("C1", c1), ("C2", c2)):
        cr = con[cid]
        assert (cr.leads_worked, cr.leads_contacted, cr.contactability_pct) == CONTACTABILITY[key]
    ct = report.contactability.total
    assert (ct.leads_worked, ct.leads_contacted, ct.contactability_pct) == CONTACTABILITY["total"]
    assert {x.code: x.count for x in report.contactability.reasons} == NO_CONTACT

    rec = report.recovery.total
    assert (rec.leads_in_list, rec.recovered, rec.recovered_pct, rec.kept, rec.kept_pct) == (
        RECOVERY
    )
    assert [r.campaign_id for r in report.recovery.rows] == [c1]

    ap = report.appointments.total
    assert (ap.booked, ap.kept, ap.no_show, ap.cancelled, ap.pending, ap.fulfilment_pct) == (
        APPOINTMENTS
    )
    assert {b.branch: b.booked for b in report.appointments.by_branch} == {"Tunja": 3, "Duitama": 1}
    assert {x.code: x.count for x in report.appointments.not_booked_reasons} == NOT_BOOKED

    sat = report.satisfaction.total
    assert (
        sat.leads_worked,
        sat.leads_contacted,
        sat.in_window,
        sat.late,
        sat.in_window_pct,
    ) == SATISFACTION
    assert (sat.satisfied, sat.not_met, sat.complaints) == (1, 6, 1)
    assert report.satisfaction.mentions == 11
    assert [
        (p.code, p.count, p.pct, p.cumulative_pct, p.vital) for p in report.satisfaction.pareto
    ] == PARETO
    assert report.satisfaction.vital_few == [
        "tiempo_entrega",
        "precio",
        "comunicacion",
        "atencion_asesor",
    ]

    q = report.pqrs.total
    assert (
        q.opened,
        q.closed,
        q.closed_on_time,
        q.closed_late,
        q.overdue,
        q.open_at_cutoff,
    ) == PQRS_TOTAL
    assert {r.type: (r.opened, r.closed, r.overdue) for r in report.pqrs.rows} == PQRS_BY_TYPE
    assert report.pqrs.cutoff == date(2026, 11, 1)

    comp = {r.campaign_id: r for r in report.compliance.rows}
    for cid, expected in ((c1, COMPLIANCE_C1), (c2, COMPLIANCE_C2)):
        kr = comp[cid]
        assert (
            kr.abandoned,
            kr.live,
            kr.abandon_rate_pct,
            kr.rolling30_rate_pct,
            kr.max_daily_rate_pct,
            kr.days_over_cap,
            kr.outside_window,
            kr.dnc_blocked,
            kr.rne_blocked,
        ) == expected
    daily = {(x.campaign_id, x.day): x for x in report.compliance.daily}
    first = daily[(c1, date(2026, 10, 1))]
    assert (first.rolling_abandoned, first.rolling_live, first.rolling_rate_pct) == (1, 2, 50.0)
    assert daily[(c1, date(2026, 10, 8))].rate_pct == 100.0
    assert daily[(c1, date(2026, 10, 8))].over_cap is True
    assert sorted((x.local_time.day, x.reason) for x in report.compliance.outside_calls) == [
        (12, "holiday"),
        (13, "after_hours"),
    ]

    names = {fx.agents["ana"]: "ana", fx.agents["beto"]: "beto"}
    for row in [*report.agents.rows, report.agents.total]:
        key = names.get(row.agent_id or 0, "total")
        assert (
            row.calls,
            row.talk_seconds,
            row.logged_seconds,
            row.paused_seconds,
            row.available_seconds,
            row.occupancy_pct,
            row.calls_per_hour,
        ) == AGENTS[key]
    assert {(names[p.agent_id], p.code): p.value for p in report.agents.pauses} == PAUSES

    assert {x.code: x.count for x in report.whatsapp.funnel} == WHATSAPP


# --------------------------------------------------------------------------- query layer


async def test_query_layer_reproduces_the_hand_computed_month(
    sessionmaker: async_sessionmaker[AsyncSession], fx: FixtureIds
) -> None:
    report = await _report(sessionmaker)
    check_report(report, fx)
    # JSON round trip (what the API returns) keeps every value.
    check_report(Report.model_validate_json(report.model_dump_json()), fx)


async def test_cli_summary_of_an_empty_and_a_full_month(
    sessionmaker: async_sessionmaker[AsyncSession], fx: FixtureIds
) -> None:
    """No calls: a dash, never ``None %``; otherwise es-CO percentages."""
    from dialer.reports.cli import summary_line

    async with sessionmaker() as s:
        empty = await build_report(s, ReportFilter.for_month("2025-01"), now=NOW)
    line = summary_line(empty)
    assert "None" not in line and "Sin llamadas" in line and "efectividad –" in line
    full = summary_line(await _report(sessionmaker))
    assert full.startswith("Efectividad ") and " %" in full and "None" not in full


async def test_filters_by_branch_agent_brand_and_campaign(
    sessionmaker: async_sessionmaker[AsyncSession], fx: FixtureIds
) -> None:
    # Duitama: C1 R3 1 + R4 1 + R5 1 + R9 1 (abandoned) + R11 1 + R16 2 = 7 calls, 4 effective;
    # C2 S1 1 + S2 2 + S3 1 + S6 5 + S7 1 + S8 1 = 11 calls, 5 effective -> 9/18 = 50.00 %
    duitama = await _report(sessionmaker, branches=("duitama",))
    e = duitama.effectiveness.total
    assert (e.total_calls, e.effective_calls, e.effectiveness_pct) == (18, 9, 50.0)
    # beto handled 9 connected calls; R7 was a wrong number -> 8/9 = 88.89 %
    beto = await _report(sessionmaker, agent_ids=(fx.agents["beto"],))
    e = beto.effectiveness.total
    assert (e.total_calls, e.effective_calls, e.effectiveness_pct) == (9, 8, 88.89)
    assert [r.agent_id for r in beto.agents.rows] == [fx.agents["beto"]]
    # Renault in the recovery list: R1 R2 R5 R6 R9 R10 R12 R13 R19 = 9 (R15 closed, R17
    # cleaned); recovered R1 R2 R12 = 3 -> 33.33 %
    renault = await _report(sessionmaker, brands=("Renault",))
    r = renault.recovery.total
    assert (r.leads_in_list, r.recovered, r.recovered_pct) == (9, 3, 33.33)
    # Only C2: 8/15; no recovery rows, no appointments.
    only_c2 = await _report(sessionmaker, campaign_ids=(fx.campaigns["C2"],))
    e = only_c2.effectiveness.total
    assert (e.total_calls, e.effective_calls, e.effectiveness_pct) == (15, 8, 53.33)
    assert only_c2.recovery.rows == []
    assert only_c2.appointments.total.booked == 0
    # A date range, 1-7 October. C1: R1 2, R2 2, R3 1, R4 1, R5 1, R6 2, R7 1 = 10 calls,
    # effective R1#2 R2#2 R3 R4 R5 = 5 (R7: wrong number); C2: S1 1, S2 2, S3 1 = 4 calls,
    # 3 effective -> 8/14 = 57.14 %
    async with sessionmaker() as s:
        week = await build_report(
            s, ReportFilter.for_dates(date(2026, 10, 1), date(2026, 10, 7)), now=NOW
        )
    e = week.effectiveness.total
    assert (e.total_calls, e.effective_calls, e.effectiveness_pct) == (14, 8, 57.14)


# --------------------------------------------------------------------------- XLSX


def _table(ws: Worksheet, title: str) -> list[dict[str, Any]]:
    """Rows of the table titled ``title`` (column A), as dicts keyed by header."""
    start = next(
        (c.row for c in ws["A"] if c.value == title),
        None,
    )
    assert start is not None, f"no table {title!r} in sheet {ws.title!r}"
    headers: list[str] = []
    col = 1
    while ws.cell(row=start + 1, column=col).value is not None:
        headers.append(str(ws.cell(row=start + 1, column=col).value))
        col += 1
    rows = []
    r = start + 2
    while ws.cell(row=r, column=1).value is not None:
        rows.append({h: ws.cell(row=r, column=j + 1).value for j, h in enumerate(headers)})
        r += 1
    return rows


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows}


async def test_xlsx_reproduces_the_hand_computed_month(
    sessionmaker: async_sessionmaker[AsyncSession], fx: FixtureIds
) -> None:
    report = await _report(sessionmaker)
    wb = openpyxl.load_workbook(io.BytesIO(workbook_bytes(report)))
    assert wb.sheetnames == list(SHEETS)

    eff = _by(_table(wb["Efectividad"], "Efectividad de llamadas por campaña"), "Campaña")
    for key, name in (
        ("C1", "Recuperación Tunja-Duitama"),
        ("C2", "Satisfacción posventa"),
        ("total", "Total"),
    ):
        row = eff[name]
        assert (
            row["Llamadas totales"],
            row["Llamadas efectivas"],
            row["Efectividad (%)"],
        ) == EFFECTIVENESS[key]
    assert eff["Total"]["Fallas del sistema (no cuentan)"] == SYSTEM_FAILURES

    con = _by(_table(wb["Contactabilidad"], "Contactabilidad por campaña"), "Campaña")
    t = con["Total"]
    assert (t["Clientes gestionados"], t["Clientes contactados"], t["Contactabilidad (%)"]) == (
        CONTACTABILITY["total"]
    )
    reasons = _by(_table(wb["Contactabilidad"], "Motivos de no contacto"), "Motivo")
    assert reasons["No contesta"]["Clientes"] == NO_CONTACT["no_contesta"]
    assert sum(r["Clientes"] for r in reasons.values()) == sum(NO_CONTACT.values())

    rec = _by(
        _table(wb["Recuperación"], "Clientes recuperados (recuperación de clientes)"), "Campaña"
    )["Total"]
    assert (
        rec["Clientes en lista"],
        rec["Clientes recuperados"],
        rec["Recuperados (%)"],
        rec["Con cita cumplida"],
        rec["Cita cumplida (%)"],
    ) == RECOVERY

    ap = _by(_table(wb["Citas"], "Agendamiento y cumplimiento de citas"), "Campaña")["Total"]
    assert (
        ap["Citas agendadas"],
        ap["Cumplidas"],
        ap["No asistió"],
        ap["Canceladas"],
        ap["Pendientes"],
        ap["Cumplimiento (%)"],
    ) == APPOINTMENTS
    not_booked = _table(wb["Citas"], "Motivos de no agendamiento")
    assert sorted(r["Clientes"] for r in not_booked) == [1, 1, 1]

    sat = _by(_table(wb["Satisfacción"], "Seguimiento de satisfacción"), "Campaña")["Total"]
    assert (
        sat["Clientes gestionados"],
        sat["Contactados"],
        sat["En ventana"],
        sat["Tardíos"],
        sat["En ventana (%)"],
    ) == SATISFACTION
    pareto = _table(wb["Satisfacción"], "Pareto de áreas de oportunidad")
    assert [
        (r["Incidencias"], r["% del total"], r["% acumulado"], r["Vital"] == "Sí") for r in pareto
    ] == [(p[1], p[2], p[3], p[4]) for p in PARETO]
    assert pareto[0]["Área de oportunidad"] == "Tiempo de entrega"

    pq = _by(_table(wb["PQRS"], "PQRS por tipo"), "Tipo")["Total"]
    assert (
        pq["Abiertas en el periodo"],
        pq["Cerradas en el periodo"],
        pq["Cerradas a tiempo"],
        pq["Cerradas tarde"],
        pq["Vencidas al corte"],
        pq["Abiertas al corte"],
    ) == PQRS_TOTAL

    comp = _by(_table(wb["Cumplimiento"], "Cumplimiento normativo por campaña"), "Campaña")
    c1 = comp["Recuperación Tunja-Duitama"]
    assert (
        c1["Abandonadas"],
        c1["Contestadas (vivas)"],
        c1["Abandono del periodo (%)"],
        c1["Abandono 30 días al cierre (%)"],
        c1["Máximo diario (%)"],
        c1["Días sobre el tope"],
        c1["Llamadas fuera de horario"],
        c1["Bloqueos DNC"],
        c1["Bloqueos RNE"],
    ) == COMPLIANCE_C1
    assert len(_table(wb["Cumplimiento"], "Llamadas fuera de la ventana horaria")) == 2

    agents = _by(_table(wb["Agentes"], "Productividad por asesor"), "Asesor")
    for key, name in (("ana", "Ana Gómez"), ("beto", "Beto Ruiz"), ("total", "Total")):
        a = agents[name]
        assert (
            a["Llamadas atendidas"],
            a["Tiempo en llamada (s)"],
            a["Tiempo conectado (s)"],
            a["Tiempo en pausa (s)"],
            a["Tiempo disponible (s)"],
            a["Ocupación (%)"],
            a["Llamadas por hora"],
        ) == AGENTS[key]

    funnel = _by(_table(wb["WhatsApp"], "Embudo de WhatsApp"), "Etapa")
    assert [funnel[label]["Mensajes"] for label in ("Encolados", "Enviados", "Entregados")] == [
        WHATSAPP["queued"],
        WHATSAPP["sent"],
        WHATSAPP["delivered"],
    ]

    # Native charts: reasons (bars), the Pareto (bars + line), the daily abandon rate (line).
    charts = {name: len(wb[name]._charts) for name in SHEETS}
    assert charts["Contactabilidad"] == 1
    assert charts["Satisfacción"] == 1
    assert charts["Cumplimiento"] == 1
    assert charts["Citas"] == 1


async def test_html_report_is_self_contained_with_charts(
    sessionmaker: async_sessionmaker[AsyncSession], fx: FixtureIds
) -> None:
    html = render_html(await _report(sessionmaker))
    assert html.count("<svg") >= 7
    assert "45,71 %" in html  # the effectiveness headline, es-CO decimal comma
    assert "Pareto de áreas de oportunidad (11 menciones)" in html
    assert "<script" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
