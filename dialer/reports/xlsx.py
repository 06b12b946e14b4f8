"""The monthly report as an Excel workbook (openpyxl): one sheet per indicator group, Spanish
(es-CO) sheet names and headers, native Excel charts.

Every table starts with a bold title in column A, then a header row, then data rows, then an
empty row; readers (and the tests) find a table by its title. Percentages are written as
numbers with two decimals (``45.71`` means 45,71 %), exactly the value of the JSON API.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from dialer.cells import text_cell
from dialer.reports import definitions as d

__all__ = ["SHEETS", "workbook_bytes", "write_xlsx"]

SHEETS: tuple[str, ...] = (
    "Resumen",
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

_TITLE = Font(bold=True, size=12, color="1F3864")
_HEAD = Font(bold=True, color="FFFFFF")
_HEAD_FILL = PatternFill("solid", fgColor="1F3864")
_TOTAL = Font(bold=True)
_PCT_FORMAT = "0.00"
_CAMPAIGN_HEAD = ("Campaña", "Tipo")


def _type_label(value: str | None) -> str:
    return d.CAMPAIGN_TYPE_LABELS.get(value or "", value or "")


class _Sheet:
    """Writes titled tables top to bottom; remembers where each one is."""

    def __init__(self, ws: Worksheet) -> None:
        self.ws = ws
        self.row = 1
        self.widths: dict[int, int] = {}

    def note(self, text: str, bold: bool = False) -> None:
        cell = text_cell(self.ws, self.row, 1, text)
        if bold:
            cell.font = _TITLE
        self.row += 1

    def table(
        self,
        title: str,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        pct_cols: Sequence[int] = (),
        total: Sequence[Any] | None = None,
    ) -> tuple[int, int, int]:
        """Write a table; returns (header row, first data row, last data row)."""
        ws = self.ws
        text_cell(ws, self.row, 1, title).font = _TITLE
        header_row = self.row + 1
        for j, h in enumerate(headers, start=1):
            cell = text_cell(ws, header_row, j, h)
            cell.font = _HEAD
            cell.fill = _HEAD_FILL
            cell.alignment = Alignment(wrap_text=True, vertical="center")
            self.widths[j] = max(self.widths.get(j, 8), min(len(h) + 2, 28))
        r = header_row
        all_rows = [*rows, *([total] if total is not None else [])]
        for i, values in enumerate(all_rows):
            r = header_row + 1 + i
            for j, value in enumerate(values, start=1):
                cell = text_cell(ws, r, j, _cell(value))
                if j - 1 in pct_cols:
                    cell.number_format = _PCT_FORMAT
                if total is not None and i == len(all_rows) - 1:
                    cell.font = _TOTAL
                if isinstance(value, str):
                    self.widths[j] = max(self.widths.get(j, 8), min(len(value) + 2, 45))
        self.row = r + 2
        return header_row, header_row + 1, max(r, header_row)

    def finish(self) -> None:
        for j, w in self.widths.items():
            self.ws.column_dimensions[get_column_letter(j)].width = w
        self.ws.freeze_panes = None


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, bool):
        return "Sí" if value else "No"
    return value


def _campaign_cells(row: d.CampaignRef) -> list[Any]:
    return [row.campaign, _type_label(row.campaign_type)]


def _bar_chart(
    ws: Worksheet,
    title: str,
    header_row: int,
    last_row: int,
    value_col: int,
    anchor: str,
    *,
    cat_col: int = 1,
    horizontal: bool = True,
) -> None:
    if last_row <= header_row:
        return
    chart = BarChart()
    chart.type = "bar" if horizontal else "col"
    chart.title = title
    chart.style = 10
    chart.legend = None
    data = Reference(ws, min_col=value_col, min_row=header_row, max_row=last_row)
    cats = Reference(ws, min_col=cat_col, min_row=header_row + 1, max_row=last_row)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(cats)
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.height = 7.5
    chart.width = 16
    ws.add_chart(chart, anchor)


# --------------------------------------------------------------------------- sheets


def _summary(sh: _Sheet, report: d.Report) -> None:
    m = report.meta
    p = m.period
    sh.note(m.title, bold=True)
    sh.note(f"Periodo: {p['start']} a {p['last_day']} ({p['timezone']})")
    sh.note(
        f"Generado: {m.generated_at:%Y-%m-%d %H:%M} UTC; datos hasta {m.as_of:%Y-%m-%d %H:%M} UTC"
    )
    filters = _describe_filters(p)
    sh.note(f"Filtros: {filters}")
    sh.row += 1
    e, c, r = report.effectiveness.total, report.contactability.total, report.recovery.total
    a, s, q = report.appointments.total, report.satisfaction.total, report.pqrs.total
    cm = report.compliance.total
    rows: list[list[Any]] = [
        ["Efectividad de llamadas (%)", e.effectiveness_pct, e.effective_calls, e.total_calls],
        ["Contactabilidad (%)", c.contactability_pct, c.leads_contacted, c.leads_worked],
        ["Clientes recuperados (%)", r.recovered_pct, r.recovered, r.leads_in_list],
        ["Recuperados con cita cumplida (%)", r.kept_pct, r.kept, r.leads_in_list],
        ["Cumplimiento de citas (%)", a.fulfilment_pct, a.kept, a.kept + a.no_show],
        ["Seguimientos en ventana (%)", s.in_window_pct, s.in_window, s.leads_worked],
        ["Tasa de abandono del periodo (%)", cm.abandon_rate_pct, cm.abandoned, cm.live],
        ["Llamadas fuera de horario", cm.outside_window, None, None],
        ["Días sobre el tope de abandono", cm.days_over_cap, None, None],
        ["PQRS abiertas en el periodo", q.opened, None, None],
        ["PQRS vencidas al corte", q.overdue, None, None],
        ["Áreas de oportunidad vitales", ", ".join(
            next((x.label for x in report.satisfaction.pareto if x.code == code), code)
            for code in report.satisfaction.vital_few
        ), None, None],
    ]  # fmt: skip
    sh.table("Indicadores principales", ("Indicador", "Valor", "Numerador", "Denominador"), rows)
    sh.widths[1] = 36
    sh.widths[2] = 40


def _describe_filters(period: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("campaign_ids", "campañas"),
        ("campaign_types", "tipos"),
        ("brands", "marcas"),
        ("branches", "sedes"),
        ("agent_ids", "asesores"),
    ):
        values = period.get(key) or []
        if values:
            parts.append(f"{label}: {', '.join(str(v) for v in values)}")
    return "; ".join(parts) or "ninguno (todas las campañas)"


def _effectiveness(sh: _Sheet, g: d.Effectiveness) -> None:
    headers = (
        *_CAMPAIGN_HEAD,
        "Llamadas totales",
        "Llamadas efectivas",
        "Conectadas",
        "Número equivocado",
        "Sin tipificar",
        "Fallas del sistema (no cuentan)",
        "Efectividad (%)",
    )

    def cells(r: d.EffectivenessRow) -> list[Any]:
        return [
            *_campaign_cells(r),
            r.total_calls,
            r.effective_calls,
            r.connected_calls,
            r.wrong_number_calls,
            r.undispositioned_calls,
            r.system_failures,
            r.effectiveness_pct,
        ]

    sh.table(
        "Efectividad de llamadas por campaña",
        headers,
        [cells(r) for r in g.rows],
        pct_cols=(8,),
        total=cells(g.total),
    )
    h, _, last = sh.table(
        "Llamadas totales por resultado",
        ("Resultado", "Llamadas"),
        [[x.label, x.count] for x in g.by_outcome],
    )
    _bar_chart(sh.ws, "Llamadas por resultado", h, last, 2, f"K{h}")


def _contactability(sh: _Sheet, g: d.Contactability) -> None:
    headers = (
        *_CAMPAIGN_HEAD,
        "Clientes gestionados",
        "Clientes contactados",
        "No contactados",
        "Contactabilidad (%)",
    )

    def cells(r: d.ContactabilityRow) -> list[Any]:
        return [
            *_campaign_cells(r),
            r.leads_worked,
            r.leads_contacted,
            r.leads_not_contacted,
            r.contactability_pct,
        ]

    sh.table(
        "Contactabilidad por campaña",
        headers,
        [cells(r) for r in g.rows],
        pct_cols=(5,),
        total=cells(g.total),
    )
    h, _, last = sh.table(
        "Motivos de no contacto",
        ("Motivo", "Clientes"),
        [[x.label, x.count] for x in g.reasons],
    )
    _bar_chart(sh.ws, "Motivos de no contacto", h, last, 2, f"H{h}")


def _recovery(sh: _Sheet, g: d.Recovery) -> None:
    headers = (
        *_CAMPAIGN_HEAD,
        "Clientes en lista",
        "Clientes recuperados",
        "Recuperados (%)",
        "Con cita cumplida",
        "Cita cumplida (%)",
    )

    def cells(r: d.RecoveryRow) -> list[Any]:
        return [
            *_campaign_cells(r),
            r.leads_in_list,
            r.recovered,
            r.recovered_pct,
            r.kept,
            r.kept_pct,
        ]

    sh.table(
        "Clientes recuperados (recuperación de clientes)",
        headers,
        [cells(r) for r in g.rows],
        pct_cols=(4, 6),
        total=cells(g.total),
    )


def _appointments(sh: _Sheet, g: d.Appointments) -> None:
    headers = (
        *_CAMPAIGN_HEAD,
        "Citas agendadas",
        "Cumplidas",
        "No asistió",
        "Canceladas",
        "Pendientes",
        "Cumplimiento (%)",
    )

    def cells(r: d.AppointmentRow) -> list[Any]:
        return [
            *_campaign_cells(r),
            r.booked,
            r.kept,
            r.no_show,
            r.cancelled,
            r.pending,
            r.fulfilment_pct,
        ]

    sh.table(
        "Agendamiento y cumplimiento de citas",
        headers,
        [cells(r) for r in g.rows],
        pct_cols=(7,),
        total=cells(g.total),
    )
    sh.table(
        "Citas por sede",
        (
            "Sede",
            "Citas agendadas",
            "Cumplidas",
            "No asistió",
            "Canceladas",
            "Pendientes",
            "Cumplimiento (%)",
        ),
        [
            [b.branch, b.booked, b.kept, b.no_show, b.cancelled, b.pending, b.fulfilment_pct]
            for b in g.by_branch
        ],
        pct_cols=(6,),
    )
    h, _, last = sh.table(
        "Motivos de no agendamiento",
        ("Motivo", "Clientes"),
        [[x.label, x.count] for x in g.not_booked_reasons],
    )
    _bar_chart(sh.ws, "Motivos de no agendamiento", h, last, 2, f"J{h}")


def _satisfaction(sh: _Sheet, g: d.Satisfaction) -> None:
    headers = (
        *_CAMPAIGN_HEAD,
        "Clientes gestionados",
        "Contactados",
        "En ventana",
        "Tardíos",
        "Antes del día 2",
        "Sin fecha de evento",
        "En ventana (%)",
        "Satisfechos",
        "Expectativas no cumplidas",
        "Quejas",
    )

    def cells(r: d.SatisfactionRow) -> list[Any]:
        return [
            *_campaign_cells(r),
            r.leads_worked,
            r.leads_contacted,
            r.in_window,
            r.late,
            r.early,
            r.no_event_date,
            r.in_window_pct,
            r.satisfied,
            r.not_met,
            r.complaints,
        ]

    sh.note(
        f"Ventana de seguimiento: desde el día {g.window_first_day} tras la compra o el "
        f"servicio, durante {g.window_days} días."
    )
    sh.table(
        "Seguimiento de satisfacción",
        headers,
        [cells(r) for r in g.rows],
        pct_cols=(8,),
        total=cells(g.total),
    )
    sh.table(
        "Tipificaciones del seguimiento",
        ("Tipificación", "Llamadas"),
        [[x.label, x.count] for x in g.dispositions],
    )
    h, first, last = sh.table(
        "Pareto de áreas de oportunidad",
        ("Área de oportunidad", "Incidencias", "% del total", "% acumulado", "Vital"),
        [[x.label, x.count, x.pct, x.cumulative_pct, x.vital] for x in g.pareto],
        pct_cols=(2, 3),
    )
    sh.note(f"Total de menciones: {g.mentions}")
    if last >= first and g.pareto:
        bar = BarChart()
        bar.type = "col"
        bar.title = "Pareto de áreas de oportunidad"
        bar.style = 10
        bar.add_data(Reference(sh.ws, min_col=2, min_row=h, max_row=last), titles_from_data=True)
        bar.set_categories(Reference(sh.ws, min_col=1, min_row=first, max_row=last))
        bar.y_axis.title = "Incidencias"
        bar.y_axis.majorGridlines = None
        line = LineChart()
        line.add_data(Reference(sh.ws, min_col=4, min_row=h, max_row=last), titles_from_data=True)
        line.y_axis.axId = 200
        line.y_axis.title = "% acumulado"
        line.y_axis.crosses = "max"
        line.y_axis.scaling.min = 0
        line.y_axis.scaling.max = 100
        for axis in (bar.x_axis, bar.y_axis, line.y_axis):
            axis.delete = False
        bar += line
        bar.height = 9
        bar.width = 20
        sh.ws.add_chart(bar, f"H{h}")


def _pqrs(sh: _Sheet, g: d.PqrsReport) -> None:
    headers = (
        "Tipo",
        "Abiertas en el periodo",
        "Cerradas en el periodo",
        "Cerradas a tiempo",
        "Cerradas tarde",
        "Vencidas al corte",
        "Abiertas al corte",
    )

    def cells(r: d.PqrsTypeRow) -> list[Any]:
        return [
            r.label,
            r.opened,
            r.closed,
            r.closed_on_time,
            r.closed_late,
            r.overdue,
            r.open_at_cutoff,
        ]

    sh.note(f"Corte: {g.cutoff.isoformat()} (plazo: 15 días hábiles)")
    h, _, last = sh.table(
        "PQRS por tipo", headers, [cells(r) for r in g.rows], total=cells(g.total)
    )
    _bar_chart(sh.ws, "PQRS abiertas por tipo", h, last - 1, 2, f"J{h}")


def _compliance(sh: _Sheet, g: d.Compliance) -> None:
    headers = (
        *_CAMPAIGN_HEAD,
        "Abandonadas",
        "Contestadas (vivas)",
        "Abandono del periodo (%)",
        "Abandono 30 días al cierre (%)",
        "Máximo diario (%)",
        "Días sobre el tope",
        "Llamadas fuera de horario",
        "Bloqueos DNC",
        "Bloqueos RNE",
    )

    def cells(r: d.ComplianceRow) -> list[Any]:
        return [
            *_campaign_cells(r),
            r.abandoned,
            r.live,
            r.abandon_rate_pct,
            r.rolling30_rate_pct,
            r.max_daily_rate_pct,
            r.days_over_cap,
            r.outside_window,
            r.dnc_blocked,
            r.rne_blocked,
        ]

    sh.note(
        f"Tope legal de abandono: {g.cap_pct:.2f} % de las llamadas contestadas, "
        "por día y por 30 días."
    )
    sh.table(
        "Cumplimiento normativo por campaña",
        headers,
        [cells(r) for r in g.rows],
        pct_cols=(4, 5, 6),
        total=cells(g.total),
    )
    names = {r.campaign_id: r.campaign for r in g.rows}
    campaigns = sorted({x.campaign_id for x in g.daily})
    by_day: dict[date, dict[int, d.AbandonDay]] = {}
    for x in g.daily:
        by_day.setdefault(x.day, {})[x.campaign_id] = x
    wide_headers = [
        "Día",
        *[f"Abandono diario (%) {names.get(c, c)}" for c in campaigns],
        f"Tope {g.cap_pct:.0f} %",
    ]
    wide_rows = [
        [
            day,
            *[by_day[day][c].rate_pct if c in by_day[day] else None for c in campaigns],
            g.cap_pct,
        ]
        for day in sorted(by_day)
    ]
    h, first, last = sh.table(
        "Abandono diario frente al tope",
        wide_headers,
        wide_rows,
        pct_cols=tuple(range(1, len(campaigns) + 2)),
    )
    for r in range(first, last + 1):
        sh.ws.cell(row=r, column=1).number_format = "yyyy-mm-dd"
    if campaigns and last >= first:
        chart = LineChart()
        chart.title = "Tasa de abandono diaria frente al tope"
        chart.style = 12
        chart.y_axis.title = "%"
        chart.add_data(
            Reference(sh.ws, min_col=2, max_col=len(campaigns) + 2, min_row=h, max_row=last),
            titles_from_data=True,
        )
        chart.set_categories(Reference(sh.ws, min_col=1, min_row=first, max_row=last))
        chart.x_axis.number_format = "dd"
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        chart.height = 8
        chart.width = 22
        sh.ws.add_chart(chart, f"{get_column_letter(len(campaigns) + 4)}{h}")
    sh.table(
        "Abandono diario y 30 días por campaña",
        (
            "Campaña",
            "Día",
            "Abandonadas",
            "Contestadas",
            "Tasa diaria (%)",
            "Abandonadas 30 d",
            "Contestadas 30 d",
            "Tasa 30 días (%)",
            "Sobre el tope",
        ),
        [
            [
                names.get(x.campaign_id, x.campaign_id),
                x.day,
                x.abandoned,
                x.live,
                x.rate_pct,
                x.rolling_abandoned,
                x.rolling_live,
                x.rolling_rate_pct,
                x.over_cap,
            ]
            for x in g.daily
        ],
        pct_cols=(4, 7),
    )
    sh.table(
        "Llamadas fuera de la ventana horaria",
        ("Intento", "Campaña", "Hora local", "Motivo"),
        [
            [
                x.attempt_id,
                names.get(x.campaign_id, x.campaign_id),
                x.local_time,
                d.CLOSED_REASON_LABELS.get(x.reason, x.reason),
            ]
            for x in g.outside_calls
        ],
    )


def _agents(sh: _Sheet, g: d.Agents) -> None:
    headers = (
        "Asesor",
        "Llamadas atendidas",
        "Tiempo en llamada (s)",
        "Tiempo conectado (s)",
        "Tiempo en pausa (s)",
        "Tiempo disponible (s)",
        "Ocupación (%)",
        "Llamadas por hora",
        "Duración media (s)",
    )

    def cells(r: d.AgentRow) -> list[Any]:
        return [
            r.agent,
            r.calls,
            r.talk_seconds,
            r.logged_seconds,
            r.paused_seconds,
            r.available_seconds,
            r.occupancy_pct,
            r.calls_per_hour,
            r.avg_talk_seconds,
        ]

    h, _, last = sh.table(
        "Productividad por asesor",
        headers,
        [cells(r) for r in g.rows],
        pct_cols=(6, 7, 8),
        total=cells(g.total),
    )
    names = {r.agent_id: r.agent for r in g.rows}
    sh.table(
        "Pausas por código",
        ("Asesor", "Código de pausa", "Segundos"),
        [[names.get(x.agent_id, x.agent_id), x.code, x.value] for x in g.pauses],
    )
    sh.table(
        "Tipificaciones por asesor",
        ("Asesor", "Tipificación", "Llamadas"),
        [[names.get(x.agent_id, x.agent_id), x.label, x.value] for x in g.dispositions],
    )
    _bar_chart(sh.ws, "Ocupación por asesor (%)", h, last - 1, 7, f"L{h}", horizontal=False)


def _whatsapp(sh: _Sheet, g: d.WhatsAppFunnel) -> None:
    h, _, last = sh.table(
        "Embudo de WhatsApp", ("Etapa", "Mensajes"), [[x.label, x.count] for x in g.funnel]
    )
    _bar_chart(sh.ws, "Embudo de WhatsApp", h, last, 2, f"E{h}")
    headers = (
        *_CAMPAIGN_HEAD,
        "Encolados",
        "Enviados",
        "Entregados",
        "Leídos",
        "Respondidos",
        "Fallidos",
        "Pendientes",
        "Omitidos",
    )

    def cells(r: d.WhatsAppRow) -> list[Any]:
        return [
            *_campaign_cells(r),
            r.queued,
            r.sent,
            r.delivered,
            r.read,
            r.replied,
            r.failed,
            r.pending,
            r.skipped,
        ]

    sh.row = max(sh.row, h + 16)
    sh.table("WhatsApp por campaña", headers, [cells(r) for r in g.rows], total=cells(g.total))


def build_workbook(report: d.Report) -> Workbook:
    wb = Workbook()
    first = wb.active
    assert first is not None
    first.title = SHEETS[0]
    sheets = [first, *(wb.create_sheet(name) for name in SHEETS[1:])]
    writers: tuple[Callable[[_Sheet], None], ...] = (
        lambda sh: _summary(sh, report),
        lambda sh: _effectiveness(sh, report.effectiveness),
        lambda sh: _contactability(sh, report.contactability),
        lambda sh: _recovery(sh, report.recovery),
        lambda sh: _appointments(sh, report.appointments),
        lambda sh: _satisfaction(sh, report.satisfaction),
        lambda sh: _pqrs(sh, report.pqrs),
        lambda sh: _compliance(sh, report.compliance),
        lambda sh: _agents(sh, report.agents),
        lambda sh: _whatsapp(sh, report.whatsapp),
    )
    for ws, write in zip(sheets, writers, strict=True):
        sh = _Sheet(ws)
        write(sh)
        sh.finish()
    wb.properties.title = report.meta.title
    wb.properties.creator = "Marcador"
    return wb


def workbook_bytes(report: d.Report) -> bytes:
    buf = io.BytesIO()
    build_workbook(report).save(buf)
    return buf.getvalue()


def write_xlsx(report: d.Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(workbook_bytes(report))
    return path
