"""Agent dispositions: per-campaign-type catalogues (labels in es-CO) and their effects.

An answered, connected call gets exactly one disposition from the agent. Each disposition
declares, as data, what it requires from the agent (a reason, a date, a branch...) and its
effect. The engine applies the effects (appointment row, callback, PQRS record, DNC entry and
consent revocation); the retry policy (:mod:`dialer.domain.retry`) turns the effect into the
lead's next state.

The catalogue follows the seed procedures (GSC-PRO-02 contacto proactivo, GSC-PRO-04
recuperación, the satisfaction-follow-up flow with "áreas de oportunidad", GSC-PRO-05 PQRS).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialer.domain.errors import InvalidDisposition, UnknownDisposition
from dialer.domain.outcomes import CampaignType, LeadStatus
from dialer.domain.windows import require_aware

__all__ = [
    "CATALOGUE",
    "NOT_INTERESTED_REASONS",
    "OPPORTUNITY_AREAS",
    "CallbackScope",
    "DispositionCode",
    "DispositionDef",
    "DispositionDetails",
    "DispositionEffect",
    "DispositionField",
    "DispositionRecord",
    "Option",
    "catalogue_for",
    "get_disposition",
    "validate_disposition",
]


class DispositionEffect(StrEnum):
    """What a disposition does to the lead (applied by the engine)."""

    APPOINTMENT = "appointment"  # final contact + appointment row
    FINAL_CONTACT = "final_contact"  # final contact, nothing else
    CALLBACK = "callback"  # schedule a callback (own agent or anyone)
    BAD_PHONE = "bad_phone"  # this phone is wrong: try the lead's other phones
    PQRS = "pqrs"  # final contact + PQRS record (15 business days deadline)
    DNC = "dnc"  # exclusion + DNC entry + consent revoked on every channel
    EXCLUSION = "exclusion"  # exclusion with the disposition as reason

    @property
    def lead_status(self) -> LeadStatus | None:
        """Final lead state this effect leads to; None when the lead goes on."""
        return {
            DispositionEffect.APPOINTMENT: LeadStatus.CONTACTED,
            DispositionEffect.FINAL_CONTACT: LeadStatus.CONTACTED,
            DispositionEffect.PQRS: LeadStatus.CONTACTED,
            DispositionEffect.DNC: LeadStatus.EXCLUDED,
            DispositionEffect.EXCLUSION: LeadStatus.EXCLUDED,
        }.get(self)

    @property
    def is_direct_contact(self) -> bool:
        """Did the agent speak with the customer (Ley 2300 frequency counting)?"""
        return self is not DispositionEffect.BAD_PHONE


class DispositionCode(StrEnum):
    CITA_AGENDADA = "cita_agendada"
    VOLVER_A_LLAMAR = "volver_a_llamar"
    NO_INTERESADO = "no_interesado"
    SERVICIO_EN_OTRO_TALLER = "servicio_en_otro_taller"
    NUMERO_EQUIVOCADO = "numero_equivocado"
    QUEJA_RECLAMO = "queja_reclamo"
    NO_VOLVER_A_LLAMAR = "no_volver_a_llamar"
    SATISFECHO = "satisfecho"
    EXPECTATIVAS_NO_CUMPLIDAS = "expectativas_no_cumplidas"


class DispositionField(StrEnum):
    """Data an agent may have to fill in (names of :class:`DispositionDetails` fields)."""

    REASON = "reason"
    APPOINTMENT_AT = "appointment_at"
    BRANCH = "branch"
    SERVICE = "service"
    CALLBACK_AT = "callback_at"
    CALLBACK_SCOPE = "callback_scope"
    OPPORTUNITY_AREAS = "opportunity_areas"
    DESCRIPTION = "description"


class CallbackScope(StrEnum):
    OWN_AGENT = "own_agent"  # "el mismo asesor"
    ANYONE = "anyone"  # "cualquier asesor"


class Option(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    label_es: str


NOT_INTERESTED_REASONS: tuple[Option, ...] = (
    Option(code="precio", label_es="Precio / costo del servicio"),
    Option(code="tiempo", label_es="No tiene tiempo"),
    Option(code="distancia", label_es="Distancia / ubicación del taller"),
    Option(code="vendio_vehiculo", label_es="Ya no tiene el vehículo"),
    Option(code="no_requiere", label_es="El vehículo no requiere servicio"),
    Option(code="mala_experiencia", label_es="Mala experiencia anterior"),
    Option(code="otro", label_es="Otro"),
)

#: "Áreas de oportunidad" for unmet expectations (satisfaction follow-up).
OPPORTUNITY_AREAS: tuple[Option, ...] = (
    Option(code="atencion_asesor", label_es="Atención del asesor"),
    Option(code="tiempo_entrega", label_es="Tiempo de entrega"),
    Option(code="calidad_trabajo", label_es="Calidad del trabajo / reparación"),
    Option(code="precio", label_es="Precio / cotización"),
    Option(code="comunicacion", label_es="Comunicación e información"),
    Option(code="repuestos", label_es="Disponibilidad de repuestos"),
    Option(code="instalaciones", label_es="Instalaciones"),
    Option(code="presentacion_vehiculo", label_es="Lavado / presentación del vehículo"),
    Option(code="agendamiento", label_es="Agendamiento de la cita"),
    Option(code="proceso_venta", label_es="Proceso de venta / entrega del vehículo"),
    Option(code="otro", label_es="Otro"),
)


class DispositionDef(BaseModel):
    """One entry of a campaign's disposition list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: DispositionCode
    label_es: str
    label_en: str
    effect: DispositionEffect
    required: tuple[DispositionField, ...] = ()
    #: When set, ``reason`` must be one of these codes.
    reason_options: tuple[Option, ...] = ()
    #: When set, every ``opportunity_areas`` entry must be one of these codes.
    area_options: tuple[Option, ...] = ()

    @property
    def requires_reason(self) -> bool:
        return DispositionField.REASON in self.required

    @property
    def lead_status(self) -> LeadStatus | None:
        return self.effect.lead_status


_F = DispositionField

_CITA = DispositionDef(
    code=DispositionCode.CITA_AGENDADA,
    label_es="Cita agendada",
    label_en="Appointment booked",
    effect=DispositionEffect.APPOINTMENT,
    required=(_F.APPOINTMENT_AT, _F.BRANCH, _F.SERVICE),
)
_VOLVER = DispositionDef(
    code=DispositionCode.VOLVER_A_LLAMAR,
    label_es="Volver a llamar",
    label_en="Call back",
    effect=DispositionEffect.CALLBACK,
    required=(_F.CALLBACK_AT, _F.CALLBACK_SCOPE),
)
_NO_INTERESADO = DispositionDef(
    code=DispositionCode.NO_INTERESADO,
    label_es="No interesado",
    label_en="Not interested",
    effect=DispositionEffect.FINAL_CONTACT,
    required=(_F.REASON,),
    reason_options=NOT_INTERESTED_REASONS,
)
_OTRO_TALLER = DispositionDef(
    code=DispositionCode.SERVICIO_EN_OTRO_TALLER,
    label_es="Ya realizó el servicio en otro taller",
    label_en="Already serviced elsewhere",
    effect=DispositionEffect.FINAL_CONTACT,
)
_EQUIVOCADO = DispositionDef(
    code=DispositionCode.NUMERO_EQUIVOCADO,
    label_es="Número equivocado",
    label_en="Wrong number",
    effect=DispositionEffect.BAD_PHONE,
)
_QUEJA = DispositionDef(
    code=DispositionCode.QUEJA_RECLAMO,
    label_es="Queja / reclamo (PQRS)",
    label_en="Complaint (PQRS)",
    effect=DispositionEffect.PQRS,
    required=(_F.DESCRIPTION,),
)
_NO_LLAMAR = DispositionDef(
    code=DispositionCode.NO_VOLVER_A_LLAMAR,
    label_es="No volver a llamar",
    label_en="Do not call",
    effect=DispositionEffect.DNC,
)
_SATISFECHO = DispositionDef(
    code=DispositionCode.SATISFECHO,
    label_es="Satisfecho (expectativas cumplidas)",
    label_en="Satisfied",
    effect=DispositionEffect.FINAL_CONTACT,
)
_NO_CUMPLIDAS = DispositionDef(
    code=DispositionCode.EXPECTATIVAS_NO_CUMPLIDAS,
    label_es="Expectativas no cumplidas",
    label_en="Expectations not met",
    effect=DispositionEffect.FINAL_CONTACT,
    required=(_F.OPPORTUNITY_AREAS,),
    area_options=OPPORTUNITY_AREAS,
)

_SALES = (_CITA, _VOLVER, _NO_INTERESADO, _OTRO_TALLER, _EQUIVOCADO, _QUEJA, _NO_LLAMAR)
_SATISFACTION = (_SATISFECHO, _NO_CUMPLIDAS, _VOLVER, _QUEJA, _EQUIVOCADO, _NO_LLAMAR)

#: Default disposition lists per campaign type (campaigns may later restrict them).
CATALOGUE: Mapping[CampaignType, tuple[DispositionDef, ...]] = {
    CampaignType.CONTACTO_PROACTIVO: _SALES,
    CampaignType.RECUPERACION: _SALES,
    CampaignType.AGENDAMIENTO: _SALES,
    CampaignType.SATISFACCION: _SATISFACTION,
    CampaignType.CUSTOM: (*_SALES, _SATISFECHO, _NO_CUMPLIDAS),
}


def catalogue_for(campaign_type: CampaignType) -> tuple[DispositionDef, ...]:
    return CATALOGUE[campaign_type]


def get_disposition(campaign_type: CampaignType, code: str) -> DispositionDef:
    for d in CATALOGUE[campaign_type]:
        if d.code.value == code:
            return d
    raise UnknownDisposition(
        f"disposition {code!r} is not offered by {campaign_type.value} campaigns",
        code=code,
        campaign_type=campaign_type.value,
        allowed=[d.code.value for d in CATALOGUE[campaign_type]],
    )


class DispositionDetails(BaseModel):
    """What the agent filled in. Only the fields the disposition requires are checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str | None = None
    appointment_at: datetime | None = None
    branch: str | None = None  # sede (Tunja, Duitama...)
    service: str | None = None
    callback_at: datetime | None = None
    callback_scope: CallbackScope | None = None
    opportunity_areas: tuple[str, ...] = ()
    description: str | None = None
    notes: str | None = Field(default=None, max_length=4000)


class DispositionRecord(BaseModel):
    """A validated disposition, ready for the engine and the retry policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: DispositionCode
    effect: DispositionEffect
    details: DispositionDetails


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, tuple):
        return len(value) == 0
    return False


def validate_disposition(
    campaign_type: CampaignType,
    code: str,
    details: Mapping[str, Any] | DispositionDetails | None,
    now: datetime,
) -> DispositionRecord:
    """Check an agent's disposition against the campaign's list; raise a typed error.

    Dates (appointment, callback) must be timezone-aware and in the future.
    """
    definition = get_disposition(campaign_type, code)
    utc_now = require_aware(now).astimezone(UTC)
    if isinstance(details, DispositionDetails):
        data = details
    else:
        try:
            data = DispositionDetails.model_validate(dict(details or {}))
        except ValidationError as exc:
            raise InvalidDisposition(
                f"invalid details for {code!r}: {exc.errors(include_url=False)}",
                code=code,
            ) from exc

    missing = [f.value for f in definition.required if _missing(getattr(data, f.value))]
    if missing:
        raise InvalidDisposition(
            f"{definition.label_es}: faltan datos obligatorios: {', '.join(missing)}",
            code=code,
            missing=missing,
        )
    if definition.reason_options and data.reason is not None:
        allowed = {o.code for o in definition.reason_options}
        if data.reason not in allowed:
            raise InvalidDisposition(
                f"{definition.label_es}: motivo {data.reason!r} no válido",
                code=code,
                reason=data.reason,
                allowed=sorted(allowed),
            )
    if definition.area_options:
        allowed = {o.code for o in definition.area_options}
        bad = [a for a in data.opportunity_areas if a not in allowed]
        if bad:
            raise InvalidDisposition(
                f"{definition.label_es}: área(s) de oportunidad no válida(s): {', '.join(bad)}",
                code=code,
                invalid=bad,
                allowed=sorted(allowed),
            )
    for name in (DispositionField.APPOINTMENT_AT, DispositionField.CALLBACK_AT):
        if name not in definition.required:
            continue
        when: datetime | None = getattr(data, name.value)
        if when is None:
            continue
        if when.tzinfo is None:
            raise InvalidDisposition(f"{name.value} must include a time zone", code=code)
        if when <= utc_now:
            raise InvalidDisposition(
                f"{definition.label_es}: la fecha ({name.value}) debe ser futura",
                code=code,
                field=name.value,
                value=when.isoformat(),
            )
    return DispositionRecord(code=definition.code, effect=definition.effect, details=data)
