"""Indicator definitions (pure): classifications, Spanish labels, percentages, Pareto, rolling
abandon rates, and the typed result of a report.

The exact definitions are written in ``docs/indicators.md``; this module is their executable
form. Nothing here does IO: :mod:`dialer.reports.queries` aggregates in SQL and hands the
grouped counts to these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from dialer.db.models import AppointmentStatus, PqrsType
from dialer.domain.dispositions import (
    CATALOGUE,
    NOT_INTERESTED_REASONS,
    OPPORTUNITY_AREAS,
    DispositionCode,
)
from dialer.domain.outcomes import CallOutcome, CampaignType

__all__ = [
    "ABANDON_CAP",
    "NOT_BOOKED_SKIP",
    "OUTCOME_LABELS",
    "PARETO_MAX_VITAL",
    "PARETO_MIN_VITAL",
    "PARETO_THRESHOLD",
    "Report",
    "count_rows",
    "disposition_label",
    "no_contact_reason",
    "not_booked_reason",
    "pareto",
    "pct",
    "rolling_sums",
    "split_areas",
]

#: Legal cap on abandoned calls: 3 % of live answers, per campaign, per day and per 30 days.
ABANDON_CAP = 0.03
#: Pareto: the "vital few" are the smallest prefix reaching this cumulative share...
PARETO_THRESHOLD = 0.80
#: ...bounded to 3-4 areas, as seed 002 says ("de 3 a 4 áreas de oportunidad vitales").
PARETO_MIN_VITAL = 3
PARETO_MAX_VITAL = 4

NOT_BOOKED_SKIP = frozenset({DispositionCode.CITA_AGENDADA.value})

OUTCOME_LABELS: Mapping[str, str] = {
    CallOutcome.ANSWERED_CONNECTED.value: "Contestada y conectada",
    CallOutcome.ABANDONED.value: "Abandonada",
    CallOutcome.MACHINE.value: "Contestador / buzón de voz",
    CallOutcome.EARLY_HANGUP.value: "Colgó al contestar (antes de pasar a un asesor)",
    CallOutcome.BUSY.value: "Ocupado",
    CallOutcome.NO_ANSWER.value: "No contesta",
    CallOutcome.CONGESTION.value: "Congestión de red",
    CallOutcome.REJECTED.value: "Rechazada",
    CallOutcome.INVALID_NUMBER.value: "Número inválido",
    CallOutcome.FAILED.value: "Falla de la central o troncal",
    CallOutcome.CANCELLED.value: "Cancelada por el marcador",
}

#: Reasons for no contact (per lead, from its last counted attempt in the period).
NO_CONTACT_LABELS: Mapping[str, str] = {
    "no_contesta": "No contesta",
    "ocupado": "Ocupado",
    "numero_equivocado": "Número equivocado",
    "contestador": "Contestador / buzón de voz",
    "abandonada": "Llamada abandonada",
    "colgo_al_contestar": "Colgó al contestar",
    "inalcanzable": "Inalcanzable / número inválido",
    "rechazada": "Rechazada por el cliente",
    "sin_tipificar": "Conectada sin tipificar",
}

_OUTCOME_TO_NO_CONTACT: Mapping[str, str] = {
    CallOutcome.NO_ANSWER.value: "no_contesta",
    CallOutcome.BUSY.value: "ocupado",
    CallOutcome.MACHINE.value: "contestador",
    CallOutcome.ABANDONED.value: "abandonada",
    CallOutcome.EARLY_HANGUP.value: "colgo_al_contestar",
    CallOutcome.INVALID_NUMBER.value: "inalcanzable",
    CallOutcome.CONGESTION.value: "inalcanzable",
    CallOutcome.REJECTED.value: "rechazada",
}

CAMPAIGN_TYPE_LABELS: Mapping[str, str] = {
    CampaignType.CONTACTO_PROACTIVO.value: "Contacto proactivo",
    CampaignType.RECUPERACION.value: "Recuperación de clientes",
    CampaignType.SATISFACCION.value: "Seguimiento de satisfacción",
    CampaignType.AGENDAMIENTO.value: "Agendamiento de citas",
    CampaignType.CUSTOM.value: "Personalizada",
}

APPOINTMENT_LABELS: Mapping[str, str] = {
    AppointmentStatus.BOOKED.value: "Pendiente",
    AppointmentStatus.KEPT.value: "Cumplida",
    AppointmentStatus.NO_SHOW.value: "No asistió",
    AppointmentStatus.CANCELLED.value: "Cancelada",
}

PQRS_TYPE_LABELS: Mapping[str, str] = {
    PqrsType.PETICION.value: "Petición",
    PqrsType.QUEJA.value: "Queja",
    PqrsType.RECLAMO.value: "Reclamo",
    PqrsType.SUGERENCIA.value: "Sugerencia",
}

WHATSAPP_STAGE_LABELS: Mapping[str, str] = {
    "queued": "Encolados",
    "sent": "Enviados",
    "delivered": "Entregados",
    "read": "Leídos",
    "replied": "Respondidos",
    "failed": "Fallidos",
}

#: Why the window was closed when an outside-window call started (es-CO).
CLOSED_REASON_LABELS: Mapping[str, str] = {
    "sunday": "Domingo",
    "holiday": "Festivo",
    "closed_date": "Día cerrado",
    "not_a_calling_day": "Día sin horario",
    "before_hours": "Antes del horario",
    "after_hours": "Después del horario",
    "between_ranges": "Entre franjas",
    "too_close_to_close": "Muy cerca del cierre",
}

AGENT_STATE_LABELS: Mapping[str, str] = {
    "ready": "Disponible",
    "paused": "En pausa",
    "reserved": "Reservado",
    "in_call": "En llamada",
    "wrap_up": "Tipificación",
}

_DISPOSITION_LABELS: dict[str, str] = {
    d.code.value: d.label_es for defs in CATALOGUE.values() for d in defs
}
_REASON_LABELS: dict[str, str] = {o.code: o.label_es for o in NOT_INTERESTED_REASONS}
AREA_LABELS: dict[str, str] = {o.code: o.label_es for o in OPPORTUNITY_AREAS}
_AREA_ORDER: dict[str, int] = {o.code: i for i, o in enumerate(OPPORTUNITY_AREAS)}


# --------------------------------------------------------------------------- arithmetic


def pct(numerator: int | float, denominator: int | float) -> float | None:
    """``numerator / denominator × 100`` rounded half-up to 2 decimals; None when the
    denominator is 0 (an indicator without data is not 0 %)."""
    if not denominator:
        return None
    value = Decimal(str(numerator)) * 100 / Decimal(str(denominator))
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def ratio2(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` rounded half-up to 2 decimals (calls per hour...)."""
    if not denominator:
        return None
    value = Decimal(str(numerator)) / Decimal(str(denominator))
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def rolling_sums(values: Sequence[int], window: int) -> list[int]:
    """Sum of the last ``window`` values ending at each index (shorter at the start)."""
    out: list[int] = []
    acc = 0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc)
    return out


# --------------------------------------------------------------------------- classification


def disposition_label(code: str | None) -> str:
    if code is None:
        return "Sin tipificar"
    return _DISPOSITION_LABELS.get(code, code)


def no_contact_reason(outcome: str, disposition_code: str | None) -> str:
    """Why a worked lead was not contacted, from its last counted attempt."""
    if outcome == CallOutcome.ANSWERED_CONNECTED.value:
        if disposition_code == DispositionCode.NUMERO_EQUIVOCADO.value:
            return "numero_equivocado"
        return "sin_tipificar"
    return _OUTCOME_TO_NO_CONTACT.get(outcome, outcome)


def not_booked_reason(code: str, reason: str | None) -> tuple[str, str]:
    """(key, Spanish label) of a reason for not booking, from the lead's last effective
    disposition. "No interesado" is split by its reason."""
    if code == DispositionCode.NO_INTERESADO.value:
        sub = reason or "sin_motivo"
        return f"{code}:{sub}", f"No interesado: {_REASON_LABELS.get(sub, sub)}"
    return code, disposition_label(code)


def split_areas(value: str | None) -> list[str]:
    """Opportunity areas of one disposition (stored comma-separated), without repeats."""
    if not value:
        return []
    seen: list[str] = []
    for part in value.split(","):
        code = part.strip()
        if code and code not in seen:
            seen.append(code)
    return seen


# --------------------------------------------------------------------------- result model


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class CountRow(_Model):
    code: str
    label: str
    count: int


def count_rows(counts: Mapping[str, int], labels: Mapping[str, str]) -> list[CountRow]:
    """Rows sorted by count (desc), then by code; zero counts dropped."""
    items = sorted(((c, n) for c, n in counts.items() if n), key=lambda cn: (-cn[1], cn[0]))
    return [CountRow(code=c, label=labels.get(c, c), count=n) for c, n in items]


class ParetoRow(_Model):
    code: str
    label: str
    count: int
    pct: float
    cumulative_pct: float
    vital: bool


def pareto(counts: Mapping[str, int]) -> list[ParetoRow]:
    """Pareto of opportunity areas: by count desc (ties: catalogue order, then code);
    percentages over all mentions; the vital few are the smallest prefix whose cumulative
    share reaches 80 %, but at least 3 and at most 4 areas (fewer if fewer have incidents)."""
    items = sorted(
        ((c, n) for c, n in counts.items() if n > 0),
        key=lambda cn: (-cn[1], _AREA_ORDER.get(cn[0], len(_AREA_ORDER)), cn[0]),
    )
    total = sum(n for _, n in items)
    if not total:
        return []
    reach = len(items)
    running = 0
    for i, (_, n) in enumerate(items):
        running += n
        if Decimal(running) / Decimal(total) >= Decimal(str(PARETO_THRESHOLD)):
            reach = i + 1
            break
    vital = min(max(reach, PARETO_MIN_VITAL), PARETO_MAX_VITAL, len(items))
    rows: list[ParetoRow] = []
    running = 0
    for i, (code, n) in enumerate(items):
        running += n
        rows.append(
            ParetoRow(
                code=code,
                label=AREA_LABELS.get(code, code),
                count=n,
                pct=pct(n, total) or 0.0,
                cumulative_pct=pct(running, total) or 0.0,
                vital=i < vital,
            )
        )
    return rows


class CampaignRef(_Model):
    campaign_id: int | None  # None: the total row
    campaign: str
    campaign_type: str | None


class EffectivenessRow(CampaignRef):
    total_calls: int
    effective_calls: int
    connected_calls: int
    wrong_number_calls: int
    undispositioned_calls: int
    system_failures: int
    effectiveness_pct: float | None


class Effectiveness(_Model):
    rows: list[EffectivenessRow]
    total: EffectivenessRow
    by_outcome: list[CountRow]


class ContactabilityRow(CampaignRef):
    leads_worked: int
    leads_contacted: int
    leads_not_contacted: int
    contactability_pct: float | None
    no_contact: dict[str, int]


class Contactability(_Model):
    rows: list[ContactabilityRow]
    total: ContactabilityRow
    reasons: list[CountRow]


class RecoveryRow(CampaignRef):
    leads_in_list: int
    recovered: int
    recovered_pct: float | None
    kept: int
    kept_pct: float | None


class Recovery(_Model):
    rows: list[RecoveryRow]
    total: RecoveryRow


class AppointmentRow(CampaignRef):
    booked: int
    kept: int
    no_show: int
    cancelled: int
    pending: int
    fulfilment_pct: float | None


class BranchAppointments(_Model):
    branch: str
    booked: int
    kept: int
    no_show: int
    cancelled: int
    pending: int
    fulfilment_pct: float | None


class Appointments(_Model):
    rows: list[AppointmentRow]
    total: AppointmentRow
    by_branch: list[BranchAppointments]
    not_booked_reasons: list[CountRow]


class SatisfactionRow(CampaignRef):
    leads_worked: int
    leads_contacted: int
    in_window: int
    late: int
    early: int
    no_event_date: int
    in_window_pct: float | None
    satisfied: int
    not_met: int
    complaints: int


class Satisfaction(_Model):
    window_first_day: int
    window_days: int
    rows: list[SatisfactionRow]
    total: SatisfactionRow
    dispositions: list[CountRow]
    pareto: list[ParetoRow]
    mentions: int
    vital_few: list[str]


class PqrsTypeRow(_Model):
    type: str
    label: str
    opened: int
    closed: int
    closed_on_time: int
    closed_late: int
    overdue: int
    open_at_cutoff: int


class PqrsReport(_Model):
    cutoff: date
    rows: list[PqrsTypeRow]
    total: PqrsTypeRow


class AbandonDay(_Model):
    campaign_id: int
    day: date
    abandoned: int
    live: int
    rate_pct: float | None
    rolling_abandoned: int
    rolling_live: int
    rolling_rate_pct: float | None
    over_cap: bool


class ComplianceRow(CampaignRef):
    abandoned: int
    live: int
    abandon_rate_pct: float | None
    rolling30_rate_pct: float | None
    max_daily_rate_pct: float | None
    days_over_cap: int
    outside_window: int
    dnc_blocked: int
    rne_blocked: int


class OutsideCall(_Model):
    attempt_id: int
    campaign_id: int
    local_time: datetime
    reason: str


class Compliance(_Model):
    cap_pct: float
    rows: list[ComplianceRow]
    total: ComplianceRow
    daily: list[AbandonDay]
    outside_calls: list[OutsideCall]


class AgentRow(_Model):
    agent_id: int | None  # None: the total row
    agent: str
    calls: int
    talk_seconds: int
    logged_seconds: int
    paused_seconds: int
    available_seconds: int
    occupancy_pct: float | None
    calls_per_hour: float | None
    avg_talk_seconds: float | None


class AgentCount(_Model):
    agent_id: int
    code: str
    label: str
    value: int


class Agents(_Model):
    rows: list[AgentRow]
    total: AgentRow
    pauses: list[AgentCount]
    dispositions: list[AgentCount]


class WhatsAppRow(CampaignRef):
    queued: int
    sent: int
    delivered: int
    read: int
    replied: int
    failed: int
    pending: int
    skipped: int


class WhatsAppFunnel(_Model):
    rows: list[WhatsAppRow]
    total: WhatsAppRow
    funnel: list[CountRow]


class ReportMeta(_Model):
    title: str
    period: dict[str, Any]
    generated_at: datetime
    as_of: datetime
    campaigns: list[CampaignRef]


class Report(_Model):
    meta: ReportMeta
    effectiveness: Effectiveness
    contactability: Contactability
    recovery: Recovery
    appointments: Appointments
    satisfaction: Satisfaction
    pqrs: PqrsReport
    compliance: Compliance
    agents: Agents
    whatsapp: WhatsAppFunnel

    def headline(self) -> dict[str, Any]:
        """The numbers stored with a report run (and shown on its summary)."""
        return {
            "effectiveness_pct": self.effectiveness.total.effectiveness_pct,
            "total_calls": self.effectiveness.total.total_calls,
            "effective_calls": self.effectiveness.total.effective_calls,
            "contactability_pct": self.contactability.total.contactability_pct,
            "recovered_pct": self.recovery.total.recovered_pct,
            "appointments_booked": self.appointments.total.booked,
            "fulfilment_pct": self.appointments.total.fulfilment_pct,
            "satisfaction_in_window_pct": self.satisfaction.total.in_window_pct,
            "vital_few": self.satisfaction.vital_few,
            "pqrs_opened": self.pqrs.total.opened,
            "pqrs_overdue": self.pqrs.total.overdue,
            "outside_window": self.compliance.total.outside_window,
            "days_over_cap": self.compliance.total.days_over_cap,
        }


def sum_rows(rows: Iterable[BaseModel], fields: Sequence[str]) -> dict[str, int]:
    out = dict.fromkeys(fields, 0)
    for row in rows:
        for f in fields:
            out[f] += int(getattr(row, f))
    return out
