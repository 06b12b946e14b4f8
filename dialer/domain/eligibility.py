"""Lead readiness: may this lead be dialed now, and if not, why and from when?

:func:`evaluate_readiness` is what the hopper runs **at claim time** (not only at import) and
what ``marcador lead explain`` prints. It works on a pure :class:`LeadSnapshot` that the engine
assembles from SQL/Redis, and returns every rule with its verdict, a Spanish and an English
explanation, and the instant it would next pass, plus the overall verdict and the earliest
instant the lead could become ready. Every decision not to dial is explainable from it.

Rules (all always evaluated, in this order):

================== =========================================================================
lead_status        NEW or PENDING (not claimed, not final)
next_attempt_due   ``next_attempt_at`` has passed
campaign_start     satisfaction: from day N (2) after the purchase/service date;
                   recuperación: last workshop visit more than 365 days ago
call_window        the window is open in the lead's zone and the ring time fits before close
phone_available    at least one phone is not invalid
dnc                not on the DNC list (the person, or every valid phone)
rne                not on the RNE (every valid, non-DNC phone)
consent            a valid, unrevoked consent for the channel
frequency          Ley 2300 frequency caps, per person across campaigns and channels
open_complaint     satisfaction campaigns skip customers with an open complaint (PQRS)
abandon_cooldown   72 h since the last abandoned call to the lead
phone_daily        one call per phone number per local day across people: a number shared
                   with another lead (household landline) already called today for that
                   lead is skipped; when no other phone is left, the lead waits until tomorrow
================== =========================================================================

DNC and RNE are applied to every phone-based channel (voice, WhatsApp, SMS).

The WhatsApp worker reuses this with ``channel=Channel.WHATSAPP``: then an EXHAUSTED lead
passes ``lead_status``, and ``next_attempt_due``/``abandon_cooldown`` (call rules) pass as
not applicable; consent, DNC/RNE, window, frequency and complaint rules apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from dialer.domain.errors import NotEligible
from dialer.domain.frequency import ContactEvent, FrequencyPolicy, check_frequency
from dialer.domain.outcomes import CampaignType, Channel, LeadStatus
from dialer.domain.windows import (
    DEFAULT_TZ_NAME,
    MIN_RING_TIME,
    CallWindow,
    ClosedReason,
    HolidayCalendar,
    next_dialable,
    require_aware,
    resolve_tz,
    window_status,
)

__all__ = [
    "CampaignRules",
    "ConsentSnapshot",
    "LeadSnapshot",
    "PhoneSnapshot",
    "Readiness",
    "RuleCode",
    "RuleResult",
    "ensure_ready",
    "evaluate_readiness",
]


class RuleCode(StrEnum):
    LEAD_STATUS = "lead_status"
    NEXT_ATTEMPT_DUE = "next_attempt_due"
    CAMPAIGN_START = "campaign_start"
    CALL_WINDOW = "call_window"
    PHONE_AVAILABLE = "phone_available"
    DNC = "dnc"
    RNE = "rne"
    CONSENT = "consent"
    FREQUENCY = "frequency"
    OPEN_COMPLAINT = "open_complaint"
    ABANDON_COOLDOWN = "abandon_cooldown"
    PHONE_DAILY = "phone_daily"


@dataclass(frozen=True, slots=True)
class PhoneSnapshot:
    phone_id: str
    dnc: bool = False
    rne: bool = False
    invalid: bool = False  # invalid number, or known wrong number
    #: The last call to this number made for ANOTHER lead (any campaign): a number shared by
    #: two people (a household landline) is called at most once per local day.
    others_last_call_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsentSnapshot:
    channel: Channel
    granted_at: datetime | None  # None: never granted
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LeadSnapshot:
    """Everything the readiness rules need about one lead, read at claim time."""

    lead_id: str
    status: LeadStatus
    phones: tuple[PhoneSnapshot, ...]
    consents: tuple[ConsentSnapshot, ...] = ()
    next_attempt_at: datetime | None = None
    #: The person's contact history across every campaign and channel (Ley 2300).
    contact_history: tuple[ContactEvent, ...] = ()
    has_open_complaint: bool = False
    last_abandoned_at: datetime | None = None
    timezone: str | None = None  # the lead's zone; None -> the campaign's default
    person_dnc: bool = False  # the person (national id) is on the DNC list
    #: The next attempt honours a callback the customer asked for (frequency exemption).
    callback_requested: bool = False
    event_date: date | None = None  # purchase or service date (satisfaction)
    last_visit_date: date | None = None  # last workshop visit (recuperación)


class CampaignRules(BaseModel):
    """The campaign settings the readiness rules depend on (JSON-serialisable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    campaign_type: CampaignType
    window: CallWindow = Field(default_factory=CallWindow)
    default_tz: str = DEFAULT_TZ_NAME
    ring_time: timedelta = MIN_RING_TIME
    #: None -> true for satisfaction campaigns only.
    skip_open_complaints: bool | None = None
    satisfaction_first_call_day: int = Field(default=2, ge=0, le=60)
    recovery_min_days_since_visit: int = Field(default=365, ge=1)
    abandon_cooldown: timedelta = timedelta(hours=72)
    frequency: FrequencyPolicy = Field(default_factory=FrequencyPolicy)

    @property
    def skips_open_complaints(self) -> bool:
        if self.skip_open_complaints is None:
            return self.campaign_type is CampaignType.SATISFACCION
        return self.skip_open_complaints


@dataclass(frozen=True, slots=True)
class RuleResult:
    code: RuleCode
    passed: bool
    message_es: str
    message_en: str
    #: When a failing rule would pass (UTC); None when passed or only a person can fix it.
    next_pass_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "passed": self.passed,
            "message_es": self.message_es,
            "message_en": self.message_en,
            "next_pass_at": None if self.next_pass_at is None else self.next_pass_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Readiness:
    lead_id: str
    checked_at: datetime
    channel: Channel
    ready: bool
    rules: tuple[RuleResult, ...]
    #: Earliest instant the lead could be ready (== checked_at when ready); None when a
    #: failing rule cannot pass by itself (DNC, no consent, final status...).
    ready_at: datetime | None
    dialable_phone_ids: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if not r.passed)

    def rule(self, code: RuleCode) -> RuleResult:
        return next(r for r in self.rules if r.code is code)

    def summary_es(self) -> str:
        if self.ready:
            return "Lista para marcar."
        return " ".join(r.message_es for r in self.failed)

    def summary_en(self) -> str:
        if self.ready:
            return "Ready to dial."
        return " ".join(r.message_en for r in self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "checked_at": self.checked_at.isoformat(),
            "channel": self.channel.value,
            "ready": self.ready,
            "ready_at": None if self.ready_at is None else self.ready_at.isoformat(),
            "dialable_phone_ids": list(self.dialable_phone_ids),
            "rules": [r.to_dict() for r in self.rules],
        }


def _fmt(at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} ({zone.key})"


def _ok(code: RuleCode, es: str, en: str) -> RuleResult:
    return RuleResult(code, True, es, en)


def _no(code: RuleCode, es: str, en: str, next_pass_at: datetime | None = None) -> RuleResult:
    return RuleResult(code, False, es, en, next_pass_at)


_DAYS_ES = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")

_WINDOW_REASON = {
    ClosedReason.SUNDAY: ("es domingo", "it is Sunday"),
    ClosedReason.HOLIDAY: ("es festivo", "it is a public holiday"),
    ClosedReason.CLOSED_DATE: ("día cerrado por la campaña", "day closed by the campaign"),
    ClosedReason.NOT_A_CALLING_DAY: ("la campaña no llama este día", "no calls on this day"),
    ClosedReason.BEFORE_HOURS: ("antes del horario", "before hours"),
    ClosedReason.AFTER_HOURS: ("después del horario", "after hours"),
    ClosedReason.BETWEEN_RANGES: ("entre franjas horarias", "between time ranges"),
    ClosedReason.TOO_CLOSE_TO_CLOSE: (
        "muy cerca del cierre para timbrar",
        "too close to the close to ring",
    ),
}


def _status_rule(lead: LeadSnapshot, channel: Channel) -> RuleResult:
    code = RuleCode.LEAD_STATUS
    if lead.status in (LeadStatus.NEW, LeadStatus.PENDING):
        return _ok(code, f"Estado {lead.status.value}: marcable.", f"Status {lead.status.value}.")
    if channel is not Channel.VOICE and lead.status is LeadStatus.EXHAUSTED:
        return _ok(
            code,
            "Intentos agotados: corresponde el mensaje de respaldo.",
            "Attempts exhausted: the fallback message applies.",
        )
    if lead.status is LeadStatus.IN_PROGRESS:
        return _no(code, "El lead ya está reclamado o en llamada.", "Already claimed or in a call.")
    return _no(
        code,
        f"El lead está en estado final ({lead.status.value}).",
        f"The lead is final ({lead.status.value}).",
    )


def _due_rule(lead: LeadSnapshot, now: datetime, zone: ZoneInfo, channel: Channel) -> RuleResult:
    code = RuleCode.NEXT_ATTEMPT_DUE
    if channel is not Channel.VOICE:
        return _ok(code, "No aplica a mensajes.", "Does not apply to messages.")
    if lead.next_attempt_at is None:
        return _ok(code, "Sin intento programado: puede marcarse.", "No attempt scheduled.")
    due = require_aware(lead.next_attempt_at, "next_attempt_at").astimezone(UTC)
    if due <= now:
        return _ok(code, f"Intento programado para {_fmt(due, zone)}: vencido.", "Attempt due.")
    return _no(
        code,
        f"Próximo intento programado para {_fmt(due, zone)}.",
        f"Next attempt scheduled for {_fmt(due, zone)}.",
        due,
    )


def _start_rule(
    lead: LeadSnapshot, campaign: CampaignRules, now: datetime, zone: ZoneInfo
) -> RuleResult:
    code = RuleCode.CAMPAIGN_START
    today = now.astimezone(zone).date()
    if campaign.campaign_type is CampaignType.SATISFACCION:
        n = campaign.satisfaction_first_call_day
        if lead.event_date is None:
            return _no(
                code,
                "Falta la fecha de compra/servicio para el seguimiento de satisfacción.",
                "Missing the purchase/service date for the satisfaction follow-up.",
            )
        first_day = lead.event_date + timedelta(days=n)
        if today >= first_day:
            return _ok(
                code,
                f"Seguimiento desde el día {n} tras la compra/servicio ({lead.event_date}).",
                f"Follow-up from day {n} after the purchase/service ({lead.event_date}).",
            )
        start = datetime.combine(first_day, time(0), tzinfo=zone).astimezone(UTC)
        return _no(
            code,
            f"El seguimiento empieza el día {n} tras la compra/servicio: desde {first_day}.",
            f"Follow-up starts on day {n} after the purchase/service: from {first_day}.",
            start,
        )
    if campaign.campaign_type is CampaignType.RECUPERACION:
        min_days = campaign.recovery_min_days_since_visit
        if lead.last_visit_date is None:
            return _no(
                code,
                "Falta la fecha de última visita al taller.",
                "Missing the last workshop visit date.",
            )
        days = (today - lead.last_visit_date).days
        if days > min_days:
            return _ok(
                code,
                f"Última visita hace {days} días (> {min_days}).",
                f"Last visit {days} days ago (> {min_days}).",
            )
        eligible_day = lead.last_visit_date + timedelta(days=min_days + 1)
        start = datetime.combine(eligible_day, time(0), tzinfo=zone).astimezone(UTC)
        return _no(
            code,
            f"Última visita hace {days} días; se recupera solo tras {min_days} días "
            f"(desde {eligible_day}).",
            f"Last visit {days} days ago; recovery only after {min_days} days "
            f"(from {eligible_day}).",
            start,
        )
    return _ok(code, "Sin regla de inicio para este tipo de campaña.", "No start rule applies.")


def _phone_rules(lead: LeadSnapshot, channel: Channel) -> tuple[list[RuleResult], tuple[str, ...]]:
    valid = [p for p in lead.phones if not p.invalid]
    not_dnc = [p for p in valid if not p.dnc]
    dialable = tuple(p.phone_id for p in not_dnc if not p.rne)
    phone_based = channel in (Channel.VOICE, Channel.WHATSAPP, Channel.SMS)
    results: list[RuleResult] = []

    if valid:
        results.append(
            _ok(
                RuleCode.PHONE_AVAILABLE,
                f"{len(valid)} teléfono(s) válido(s).",
                f"{len(valid)} valid phone(s).",
            )
        )
    else:
        results.append(
            _no(
                RuleCode.PHONE_AVAILABLE,
                "No tiene teléfonos válidos.",
                "No valid phone numbers.",
            )
        )

    if not phone_based:
        results.append(_ok(RuleCode.DNC, "DNC no aplica al canal.", "DNC n/a for the channel."))
        results.append(_ok(RuleCode.RNE, "RNE no aplica al canal.", "RNE n/a for the channel."))
        return results, tuple(p.phone_id for p in lead.phones)

    if lead.person_dnc:
        results.append(
            _no(RuleCode.DNC, "La persona está en la lista DNC.", "The person is on the DNC list.")
        )
    elif valid and not not_dnc:
        results.append(
            _no(
                RuleCode.DNC,
                "Todos los teléfonos válidos están en la lista DNC.",
                "Every valid phone is on the DNC list.",
            )
        )
    else:
        results.append(_ok(RuleCode.DNC, "No está en la lista DNC.", "Not on the DNC list."))

    if not_dnc and not dialable:
        results.append(
            _no(
                RuleCode.RNE,
                "Los teléfonos están inscritos en el RNE (Registro de Números Excluidos).",
                "The phones are on the RNE (CRC do-not-call registry).",
            )
        )
    else:
        results.append(_ok(RuleCode.RNE, "No está en el RNE.", "Not on the RNE."))
    return results, () if lead.person_dnc else dialable


def _phone_daily_rule(
    lead: LeadSnapshot, dialable: tuple[str, ...], channel: Channel, now: datetime, zone: ZoneInfo
) -> tuple[RuleResult, tuple[str, ...]]:
    """One call per phone number per local day across people: a number another lead was
    called on today (a shared household or office landline) is not dialed again for this
    lead until tomorrow. The lead's own retries on its numbers follow the retry rules."""
    code = RuleCode.PHONE_DAILY
    if channel is not Channel.VOICE:
        return _ok(code, "No aplica a mensajes.", "Calls only."), dialable
    today = now.astimezone(zone).date()
    by_id = {p.phone_id: p for p in lead.phones}
    busy = {
        pid
        for pid in dialable
        if (at := by_id[pid].others_last_call_at) is not None
        and require_aware(at, "others_last_call_at").astimezone(zone).date() == today
    }
    if not busy:
        return _ok(
            code,
            "Ningún teléfono se llamó hoy por otra persona.",
            "No phone was called today for another person.",
        ), dialable
    left = tuple(pid for pid in dialable if pid not in busy)
    if left:
        return _ok(
            code,
            f"{len(busy)} teléfono(s) compartido(s) ya se llamaron hoy; se usan los demás.",
            f"{len(busy)} shared phone(s) already called today; the others are used.",
        ), left
    tomorrow = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return _no(
        code,
        "Su teléfono (compartido con otra persona) ya se llamó hoy: un número se llama como "
        f"máximo una vez al día. Desde {_fmt(tomorrow, zone)}.",
        "Its phone (shared with another person) was already called today: a number is called "
        f"at most once a day. From {_fmt(tomorrow, zone)}.",
        tomorrow,
    ), left


def _consent_rule(lead: LeadSnapshot, channel: Channel, now: datetime) -> RuleResult:
    code = RuleCode.CONSENT
    mine = [c for c in lead.consents if c.channel is channel]
    for c in mine:
        granted = c.granted_at is not None and require_aware(c.granted_at, "granted_at") <= now
        revoked = c.revoked_at is not None and require_aware(c.revoked_at, "revoked_at") <= now
        if granted and not revoked:
            return _ok(
                code,
                f"Autorización vigente para el canal {channel.value}.",
                f"Valid consent for the {channel.value} channel.",
            )
    if any(c.revoked_at is not None for c in mine):
        return _no(
            code,
            f"El cliente revocó la autorización para el canal {channel.value} (Ley 1581).",
            f"The customer revoked consent for the {channel.value} channel (Ley 1581).",
        )
    return _no(
        code,
        f"Sin autorización del cliente para el canal {channel.value} (Ley 1581).",
        f"No customer consent for the {channel.value} channel (Ley 1581).",
    )


def evaluate_readiness(
    lead: LeadSnapshot,
    campaign: CampaignRules,
    now: datetime,
    *,
    channel: Channel = Channel.VOICE,
    calendar: HolidayCalendar | None = None,
) -> Readiness:
    """Evaluate every readiness rule for ``lead`` at ``now``."""
    utc_now = require_aware(now).astimezone(UTC)
    zone = resolve_tz(lead.timezone or campaign.default_tz)
    rules: list[RuleResult] = [
        _status_rule(lead, channel),
        _due_rule(lead, utc_now, zone, channel),
        _start_rule(lead, campaign, utc_now, zone),
    ]

    ws = window_status(
        campaign.window, utc_now, zone, ring_time=campaign.ring_time, calendar=calendar
    )
    if ws.dialable:
        assert ws.closes_at is not None
        rules.append(
            _ok(
                RuleCode.CALL_WINDOW,
                f"Horario abierto hasta {_fmt(ws.closes_at, zone)}.",
                f"Window open until {_fmt(ws.closes_at, zone)}.",
            )
        )
    else:
        assert ws.reason is not None
        why_es, why_en = _WINDOW_REASON[ws.reason]
        if ws.reason is ClosedReason.HOLIDAY and ws.holiday_name:
            why_es = f"es festivo ({ws.holiday_name})"
            why_en = f"it is a public holiday ({ws.holiday_name})"
        rules.append(
            _no(
                RuleCode.CALL_WINDOW,
                f"Fuera del horario de llamadas: {why_es}; hora local "
                f"{_DAYS_ES[ws.local_time.weekday()]} {ws.local_time:%Y-%m-%d %H:%M}. "
                f"Abre {_fmt(ws.next_dialable_at, zone)}.",
                f"Outside the call window: {why_en}; local time "
                f"{ws.local_time:%a %Y-%m-%d %H:%M}. Opens {_fmt(ws.next_dialable_at, zone)}.",
                ws.next_dialable_at,
            )
        )

    phone_results, dialable = _phone_rules(lead, channel)
    rules.extend(phone_results)
    daily, dialable = _phone_daily_rule(lead, dialable, channel, utc_now, zone)
    rules.append(daily)
    rules.append(_consent_rule(lead, channel, utc_now))

    freq = check_frequency(
        lead.contact_history,
        channel,
        utc_now,
        zone,
        policy=campaign.frequency,
        customer_requested=lead.callback_requested,
    )
    rules.append(
        RuleResult(
            RuleCode.FREQUENCY,
            freq.allowed,
            freq.reason_es,
            freq.reason_en,
            None if freq.allowed else freq.next_allowed_at,
        )
    )

    if campaign.skips_open_complaints and lead.has_open_complaint:
        rules.append(
            _no(
                RuleCode.OPEN_COMPLAINT,
                "El cliente tiene una queja (PQRS) abierta: no se llama en seguimiento.",
                "The customer has an open complaint (PQRS): no follow-up call.",
            )
        )
    else:
        rules.append(_ok(RuleCode.OPEN_COMPLAINT, "Sin queja abierta que impida.", "No blocker."))

    if channel is not Channel.VOICE:
        rules.append(_ok(RuleCode.ABANDON_COOLDOWN, "No aplica a mensajes.", "Calls only."))
    elif lead.last_abandoned_at is not None:
        until = (
            require_aware(lead.last_abandoned_at, "last_abandoned_at").astimezone(UTC)
            + campaign.abandon_cooldown
        )
        hours = int(campaign.abandon_cooldown.total_seconds() // 3600)
        if until > utc_now:
            rules.append(
                _no(
                    RuleCode.ABANDON_COOLDOWN,
                    f"Llamada abandonada reciente: esperar {hours} h, hasta {_fmt(until, zone)}.",
                    f"Recent abandoned call: wait {hours} h, until {_fmt(until, zone)}.",
                    until,
                )
            )
        else:
            rules.append(
                _ok(
                    RuleCode.ABANDON_COOLDOWN,
                    f"Más de {hours} h desde la última llamada abandonada.",
                    f"More than {hours} h since the last abandoned call.",
                )
            )
    else:
        rules.append(
            _ok(RuleCode.ABANDON_COOLDOWN, "Sin llamadas abandonadas.", "No abandoned calls.")
        )

    failed = [r for r in rules if not r.passed]
    ready_at: datetime | None
    if not failed:
        ready_at = utc_now
    elif any(r.next_pass_at is None for r in failed):
        ready_at = None
    else:
        later = max([utc_now, *(r.next_pass_at for r in failed if r.next_pass_at is not None)])
        ready_at = next_dialable(
            campaign.window, later, zone, ring_time=campaign.ring_time, calendar=calendar
        )
    return Readiness(
        lead_id=lead.lead_id,
        checked_at=utc_now,
        channel=channel,
        ready=not failed,
        rules=tuple(rules),
        ready_at=ready_at,
        dialable_phone_ids=dialable,
    )


def ensure_ready(readiness: Readiness) -> None:
    """Raise :class:`NotEligible` unless the lead is ready (a last guard before dialing)."""
    if not readiness.ready:
        raise NotEligible(
            f"lead {readiness.lead_id} is not ready: {readiness.summary_en()}",
            lead_id=readiness.lead_id,
            failed=[r.code.value for r in readiness.failed],
        )
