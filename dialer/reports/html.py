"""The printable monthly report (HTML with inline SVG charts; prints to A4 from a browser).

Self-contained: no scripts, no fonts or stylesheets from the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from html import escape
from typing import Any

from dialer.reports import definitions as d
from dialer.reports.svg import hbar_chart, line_chart, pareto_chart

__all__ = ["render_html"]

_MONTHS = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)

CSS = """
@page { size: A4; margin: 14mm 12mm; }
body { font-family: 'DejaVu Sans', Arial, sans-serif; color: #1b1b1b; margin: 24px;
       font-size: 12px; max-width: 1180px; }
h1 { font-size: 22px; color: #1f3864; margin: 0 0 4px; }
h2 { font-size: 16px; color: #1f3864; border-bottom: 2px solid #1f3864; padding-bottom: 3px;
     margin: 26px 0 10px; }
h3 { font-size: 13px; margin: 14px 0 6px; }
.sub { color: #555; margin: 0 0 2px; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { border: 1px solid #c9c9c9; padding: 3px 7px; text-align: right; }
th { background: #1f3864; color: #fff; font-weight: 600; text-align: center; }
td:first-child, th:first-child { text-align: left; }
tr.total td { font-weight: bold; background: #eef2f8; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin: 14px 0; }
.kpi { border: 1px solid #c9c9c9; border-left: 5px solid #2e75b6; padding: 8px 10px; }
.kpi .v { font-size: 22px; font-weight: bold; color: #1f3864; }
.kpi .l { color: #444; }
.kpi .n { color: #777; font-size: 11px; }
.kpi.bad { border-left-color: #c00000; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
section { page-break-inside: avoid; }
.note { color: #555; font-size: 11px; }
footer { margin-top: 30px; color: #777; font-size: 10px; }
"""


def _date_es(value: date) -> str:
    return f"{value.day} de {_MONTHS[value.month - 1]} de {value.year}"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Sí" if value else "No"
    if isinstance(value, float):
        return f"{value:,.2f}".replace(",", "\u2009").replace(".", ",")
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return escape(str(value))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{_num(value)} %"


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    total: Sequence[Any] | None = None,
    pct_cols: Sequence[int] = (),
) -> str:
    if not rows and total is None:
        return "<p class='note'>Sin datos en el periodo.</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)

    def tr(values: Sequence[Any], cls: str = "") -> str:
        cells = "".join(
            f"<td>{_pct(v) if i in pct_cols else _num(v)}</td>" for i, v in enumerate(values)
        )
        return f"<tr class='{cls}'>{cells}</tr>" if cls else f"<tr>{cells}</tr>"

    body = "".join(tr(r) for r in rows) + (tr(total, "total") if total is not None else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kpi(label: str, value: str, note: str = "", bad: bool = False) -> str:
    cls = "kpi bad" if bad else "kpi"
    return (
        f"<div class='{cls}'><div class='v'>{value}</div><div class='l'>{escape(label)}</div>"
        f"<div class='n'>{escape(note)}</div></div>"
    )


def _type(value: str | None) -> str:
    return d.CAMPAIGN_TYPE_LABELS.get(value or "", value or "")


def render_html(report: d.Report) -> str:
    m = report.meta
    p = m.period
    start, last = date.fromisoformat(p["start"]), date.fromisoformat(p["last_day"])
    e, c, r = report.effectiveness, report.contactability, report.recovery
    a, s, q = report.appointments, report.satisfaction, report.pqrs
    cm, ag, wa = report.compliance, report.agents, report.whatsapp
    out: list[str] = [
        "<!DOCTYPE html><html lang='es-CO'><head><meta charset='utf-8'>",
        f"<title>{escape(m.title)} {escape(p['label'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(m.title)}</h1>",
        f"<p class='sub'>Periodo: {_date_es(start)} al {_date_es(last)} "
        f"(hora de {escape(p['timezone'])})</p>",
        f"<p class='sub'>Generado el {m.generated_at:%Y-%m-%d %H:%M} UTC · "
        f"Campañas: {escape(', '.join(x.campaign for x in m.campaigns) or 'ninguna')}</p>",
        "<div class='kpis'>",
        _kpi(
            "Efectividad de llamadas",
            _pct(e.total.effectiveness_pct),
            f"{e.total.effective_calls} efectivas de {e.total.total_calls} llamadas",
        ),
        _kpi(
            "Contactabilidad",
            _pct(c.total.contactability_pct),
            f"{c.total.leads_contacted} de {c.total.leads_worked} clientes gestionados",
        ),
        _kpi(
            "Clientes recuperados",
            _pct(r.total.recovered_pct),
            f"{r.total.recovered} de {r.total.leads_in_list} clientes en lista",
        ),
        _kpi(
            "Cumplimiento de citas",
            _pct(a.total.fulfilment_pct),
            f"{a.total.kept} cumplidas, {a.total.no_show} no asistió",
        ),
        _kpi(
            "Seguimientos en ventana",
            _pct(s.total.in_window_pct),
            f"{s.total.in_window} de {s.total.leads_worked} clientes",
        ),
        _kpi(
            "PQRS vencidas al corte",
            _num(q.total.overdue),
            f"{q.total.opened} abiertas en el periodo",
            bad=q.total.overdue > 0,
        ),
        _kpi(
            "Llamadas fuera de horario",
            _num(cm.total.outside_window),
            "Debe ser 0 (Ley 2300 de 2023)",
            bad=cm.total.outside_window > 0,
        ),
        _kpi(
            "Días sobre el tope de abandono",
            _num(cm.total.days_over_cap),
            f"Tope {_num(cm.cap_pct)} % de las contestadas",
            bad=cm.total.days_over_cap > 0,
        ),
        "</div>",
    ]

    # ---- efectividad
    out.append("<section><h2>1. Efectividad de llamadas</h2>")
    out.append(
        "<p class='note'>Llamadas efectivas / llamadas totales × 100. Efectiva: contestada, "
        "conectada con un asesor y tipificada con un contacto con el cliente (no «número "
        "equivocado»). Las fallas del sistema no cuentan como llamadas.</p>"
    )
    out.append(
        _table(
            ("Campaña", "Tipo", "Totales", "Efectivas", "Conectadas", "Equivocado", "Efectividad"),
            [
                [
                    x.campaign,
                    _type(x.campaign_type),
                    x.total_calls,
                    x.effective_calls,
                    x.connected_calls,
                    x.wrong_number_calls,
                    x.effectiveness_pct,
                ]
                for x in e.rows
            ],
            [
                "Total",
                "",
                e.total.total_calls,
                e.total.effective_calls,
                e.total.connected_calls,
                e.total.wrong_number_calls,
                e.total.effectiveness_pct,
            ],
            pct_cols=(6,),
        )
    )
    out.append(hbar_chart("Llamadas por resultado", [(x.label, x.count) for x in e.by_outcome]))
    out.append("</section>")

    # ---- contactabilidad
    out.append("<section><h2>2. Contactabilidad y motivos de no contacto</h2><div class='row'>")
    out.append(
        "<div>"
        + _table(
            ("Campaña", "Gestionados", "Contactados", "Contactabilidad"),
            [[x.campaign, x.leads_worked, x.leads_contacted, x.contactability_pct] for x in c.rows],
            ["Total", c.total.leads_worked, c.total.leads_contacted, c.total.contactability_pct],
            pct_cols=(3,),
        )
        + "</div>"
    )
    out.append(hbar_chart("Motivos de no contacto", [(x.label, x.count) for x in c.reasons]))
    out.append("</div></section>")

    # ---- recuperación y citas
    out.append("<section><h2>3. Clientes recuperados y citas</h2>")
    out.append(
        _table(
            ("Campaña", "En lista", "Recuperados", "% recuperados", "Cita cumplida", "% cumplida"),
            [
                [x.campaign, x.leads_in_list, x.recovered, x.recovered_pct, x.kept, x.kept_pct]
                for x in r.rows
            ],
            [
                "Total",
                r.total.leads_in_list,
                r.total.recovered,
                r.total.recovered_pct,
                r.total.kept,
                r.total.kept_pct,
            ],
            pct_cols=(3, 5),
        )
    )
    out.append("<div class='row'><div>")
    out.append(
        _table(
            (
                "Campaña",
                "Agendadas",
                "Cumplidas",
                "No asistió",
                "Canceladas",
                "Pendientes",
                "Cumplimiento",
            ),
            [
                [x.campaign, x.booked, x.kept, x.no_show, x.cancelled, x.pending, x.fulfilment_pct]
                for x in a.rows
            ],
            [
                "Total",
                a.total.booked,
                a.total.kept,
                a.total.no_show,
                a.total.cancelled,
                a.total.pending,
                a.total.fulfilment_pct,
            ],
            pct_cols=(6,),
        )
    )
    out.append(
        _table(
            ("Sede", "Agendadas", "Cumplidas", "No asistió", "Cumplimiento"),
            [[b.branch, b.booked, b.kept, b.no_show, b.fulfilment_pct] for b in a.by_branch],
            pct_cols=(4,),
        )
    )
    out.append("</div>")
    out.append(
        hbar_chart("Motivos de no agendamiento", [(x.label, x.count) for x in a.not_booked_reasons])
    )
    out.append("</div></section>")

    # ---- satisfacción
    out.append("<section><h2>4. Seguimiento de satisfacción</h2>")
    out.append(
        f"<p class='note'>Ventana: desde el día {s.window_first_day} tras la compra o el "
        f"servicio, durante {s.window_days} días. Áreas vitales: el menor grupo que acumula "
        "el 80 % de las menciones, entre 3 y 4 áreas.</p>"
    )
    out.append(
        _table(
            (
                "Campaña",
                "Gestionados",
                "Contactados",
                "En ventana",
                "Tardíos",
                "% en ventana",
                "Satisfechos",
                "No cumplidas",
                "Quejas",
            ),
            [
                [
                    x.campaign,
                    x.leads_worked,
                    x.leads_contacted,
                    x.in_window,
                    x.late,
                    x.in_window_pct,
                    x.satisfied,
                    x.not_met,
                    x.complaints,
                ]
                for x in s.rows
            ],
            [
                "Total",
                s.total.leads_worked,
                s.total.leads_contacted,
                s.total.in_window,
                s.total.late,
                s.total.in_window_pct,
                s.total.satisfied,
                s.total.not_met,
                s.total.complaints,
            ],
            pct_cols=(5,),
        )
    )
    out.append(
        pareto_chart(
            f"Pareto de áreas de oportunidad ({s.mentions} menciones)",
            [(x.label, x.count, x.cumulative_pct, x.vital) for x in s.pareto],
        )
    )
    out.append(
        _table(
            ("Área de oportunidad", "Incidencias", "%", "% acumulado", "Vital"),
            [[x.label, x.count, x.pct, x.cumulative_pct, x.vital] for x in s.pareto],
            pct_cols=(2, 3),
        )
    )
    out.append("</section>")

    # ---- PQRS
    out.append(f"<section><h2>5. PQRS (corte {_date_es(q.cutoff)})</h2>")
    out.append(
        _table(
            ("Tipo", "Abiertas", "Cerradas", "A tiempo", "Tarde", "Vencidas", "Abiertas al corte"),
            [
                [
                    x.label,
                    x.opened,
                    x.closed,
                    x.closed_on_time,
                    x.closed_late,
                    x.overdue,
                    x.open_at_cutoff,
                ]
                for x in q.rows
            ],
            [
                "Total",
                q.total.opened,
                q.total.closed,
                q.total.closed_on_time,
                q.total.closed_late,
                q.total.overdue,
                q.total.open_at_cutoff,
            ],
        )
    )
    out.append("</section>")

    # ---- cumplimiento
    out.append("<section><h2>6. Cumplimiento normativo</h2>")
    out.append(
        _table(
            (
                "Campaña",
                "Abandonadas",
                "Contestadas",
                "Abandono",
                "30 días al cierre",
                "Máx. diario",
                "Días sobre tope",
                "Fuera de horario",
                "DNC",
                "RNE",
            ),
            [
                [
                    x.campaign,
                    x.abandoned,
                    x.live,
                    x.abandon_rate_pct,
                    x.rolling30_rate_pct,
                    x.max_daily_rate_pct,
                    x.days_over_cap,
                    x.outside_window,
                    x.dnc_blocked,
                    x.rne_blocked,
                ]
                for x in cm.rows
            ],
            [
                "Total",
                cm.total.abandoned,
                cm.total.live,
                cm.total.abandon_rate_pct,
                None,
                cm.total.max_daily_rate_pct,
                cm.total.days_over_cap,
                cm.total.outside_window,
                cm.total.dnc_blocked,
                cm.total.rne_blocked,
            ],
            pct_cols=(3, 4, 5),
        )
    )
    days = sorted({x.day for x in cm.daily})
    names = {x.campaign_id: x.campaign for x in cm.rows}
    series = []
    for cid in sorted({x.campaign_id for x in cm.daily}):
        by_day = {x.day: x.rate_pct for x in cm.daily if x.campaign_id == cid}
        series.append((str(names.get(cid, cid)), [by_day.get(day) for day in days]))
    out.append(
        line_chart(
            "Tasa de abandono diaria por campaña",
            [f"{day.day:02d}" for day in days],
            series,
            cap=cm.cap_pct,
        )
    )
    if cm.outside_calls:
        out.append("<h3>Llamadas fuera de la ventana horaria</h3>")
        out.append(
            _table(
                ("Intento", "Campaña", "Hora local", "Motivo"),
                [
                    [
                        x.attempt_id,
                        names.get(x.campaign_id, x.campaign_id),
                        x.local_time.strftime("%Y-%m-%d %H:%M"),
                        d.CLOSED_REASON_LABELS.get(x.reason, x.reason),
                    ]
                    for x in cm.outside_calls[:50]
                ],
            )
        )
    out.append("</section>")

    # ---- agentes
    out.append("<section><h2>7. Productividad de los asesores</h2><div class='row'><div>")
    out.append(
        _table(
            (
                "Asesor",
                "Llamadas",
                "En llamada",
                "Conectado",
                "En pausa",
                "Ocupación",
                "Llamadas/hora",
            ),
            [
                [
                    x.agent,
                    x.calls,
                    _hms(x.talk_seconds),
                    _hms(x.logged_seconds),
                    _hms(x.paused_seconds),
                    x.occupancy_pct,
                    x.calls_per_hour,
                ]
                for x in ag.rows
            ],
            [
                "Total",
                ag.total.calls,
                _hms(ag.total.talk_seconds),
                _hms(ag.total.logged_seconds),
                _hms(ag.total.paused_seconds),
                ag.total.occupancy_pct,
                ag.total.calls_per_hour,
            ],
            pct_cols=(5,),
        )
    )
    agent_names = {x.agent_id: x.agent for x in ag.rows}
    out.append(
        _table(
            ("Asesor", "Pausa", "Tiempo"),
            [[agent_names.get(x.agent_id, x.agent_id), x.code, _hms(x.value)] for x in ag.pauses],
        )
    )
    out.append("</div>")
    out.append(
        hbar_chart(
            "Ocupación por asesor", [(x.agent, x.occupancy_pct or 0.0) for x in ag.rows], unit=" %"
        )
    )
    out.append("</div></section>")

    # ---- WhatsApp
    out.append("<section><h2>8. Embudo de WhatsApp</h2>")
    out.append(hbar_chart("Mensajes por etapa", [(x.label, x.count) for x in wa.funnel]))
    out.append("</section>")
    out.append(
        "<footer>Marcador · definiciones de cada indicador en docs/indicators.md · "
        f"datos hasta {m.as_of:%Y-%m-%d %H:%M} UTC</footer></body></html>"
    )
    return "".join(out)


def _hms(seconds: int) -> str:
    h, rest = divmod(int(seconds), 3600)
    mi, se = divmod(rest, 60)
    return f"{h}:{mi:02d}:{se:02d}"
