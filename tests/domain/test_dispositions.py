from __future__ import annotations

from datetime import datetime

import pytest

from dialer.domain.dispositions import (
    CATALOGUE,
    OPPORTUNITY_AREAS,
    CallbackScope,
    DispositionCode,
    DispositionDetails,
    DispositionEffect,
    catalogue_for,
    get_disposition,
    validate_disposition,
)
from dialer.domain.errors import InvalidDisposition, NaiveDatetimeError, UnknownDisposition
from dialer.domain.outcomes import CampaignType, LeadStatus
from tests.domain.helpers import bog

NOW = bog(2026, 3, 4, 10)
P = CampaignType.CONTACTO_PROACTIVO
S = CampaignType.SATISFACCION


def test_every_campaign_type_has_a_catalogue_with_spanish_labels() -> None:
    assert set(CATALOGUE) == set(CampaignType)
    for ctype, entries in CATALOGUE.items():
        codes = [d.code for d in entries]
        assert len(codes) == len(set(codes)), ctype
        assert all(d.label_es and d.label_en for d in entries)
        # every list lets the agent book a callback, report a complaint and opt the customer out
        assert {
            DispositionCode.VOLVER_A_LLAMAR,
            DispositionCode.QUEJA_RECLAMO,
            DispositionCode.NO_VOLVER_A_LLAMAR,
            DispositionCode.NUMERO_EQUIVOCADO,
        } <= set(codes)


def test_sales_and_satisfaction_lists() -> None:
    sales = {d.code for d in catalogue_for(CampaignType.RECUPERACION)}
    assert DispositionCode.CITA_AGENDADA in sales
    assert DispositionCode.SERVICIO_EN_OTRO_TALLER in sales
    assert DispositionCode.SATISFECHO not in sales
    satisfaction = {d.code for d in catalogue_for(S)}
    assert {DispositionCode.SATISFECHO, DispositionCode.EXPECTATIVAS_NO_CUMPLIDAS} <= satisfaction
    assert DispositionCode.CITA_AGENDADA not in satisfaction


def test_effects_are_declared_as_data() -> None:
    expected = {
        "cita_agendada": (DispositionEffect.APPOINTMENT, LeadStatus.CONTACTED),
        "volver_a_llamar": (DispositionEffect.CALLBACK, None),
        "no_interesado": (DispositionEffect.FINAL_CONTACT, LeadStatus.CONTACTED),
        "servicio_en_otro_taller": (DispositionEffect.FINAL_CONTACT, LeadStatus.CONTACTED),
        "numero_equivocado": (DispositionEffect.BAD_PHONE, None),
        "queja_reclamo": (DispositionEffect.PQRS, LeadStatus.CONTACTED),
        "no_volver_a_llamar": (DispositionEffect.DNC, LeadStatus.EXCLUDED),
    }
    for code, (effect, status) in expected.items():
        d = get_disposition(P, code)
        assert (d.effect, d.lead_status) == (effect, status)
    assert get_disposition(P, "no_interesado").requires_reason
    assert not get_disposition(P, "servicio_en_otro_taller").requires_reason
    assert not DispositionEffect.BAD_PHONE.is_direct_contact
    assert DispositionEffect.PQRS.is_direct_contact


def test_unknown_code_for_the_campaign_type() -> None:
    with pytest.raises(UnknownDisposition) as err:
        get_disposition(S, "cita_agendada")
    assert "satisfecho" in err.value.details["allowed"]
    with pytest.raises(UnknownDisposition):
        validate_disposition(P, "xyz", {}, NOW)


def test_appointment_requires_date_branch_and_service() -> None:
    with pytest.raises(InvalidDisposition) as err:
        validate_disposition(P, "cita_agendada", {"branch": "Tunja"}, NOW)
    assert set(err.value.details["missing"]) == {"appointment_at", "service"}
    record = validate_disposition(
        P,
        "cita_agendada",
        {"appointment_at": bog(2026, 3, 6, 9), "branch": "Duitama", "service": "Revisión"},
        NOW,
    )
    assert record.effect is DispositionEffect.APPOINTMENT
    assert record.details.branch == "Duitama"


def test_dates_must_be_future_and_aware() -> None:
    with pytest.raises(InvalidDisposition):
        validate_disposition(
            P,
            "volver_a_llamar",
            {"callback_at": bog(2026, 3, 4, 9), "callback_scope": "anyone"},
            NOW,
        )
    with pytest.raises(InvalidDisposition):
        validate_disposition(
            P,
            "volver_a_llamar",
            {"callback_at": datetime(2026, 3, 5, 9), "callback_scope": "anyone"},
            NOW,
        )
    with pytest.raises(NaiveDatetimeError):
        validate_disposition(P, "servicio_en_otro_taller", {}, datetime(2026, 3, 4))


def test_callback_requires_scope() -> None:
    with pytest.raises(InvalidDisposition) as err:
        validate_disposition(P, "volver_a_llamar", {"callback_at": bog(2026, 3, 5, 9)}, NOW)
    assert err.value.details["missing"] == ["callback_scope"]
    ok = validate_disposition(
        P,
        "volver_a_llamar",
        {"callback_at": bog(2026, 3, 5, 9), "callback_scope": "own_agent"},
        NOW,
    )
    assert ok.details.callback_scope is CallbackScope.OWN_AGENT


def test_not_interested_requires_a_known_reason() -> None:
    with pytest.raises(InvalidDisposition):
        validate_disposition(P, "no_interesado", {"reason": "  "}, NOW)
    with pytest.raises(InvalidDisposition):
        validate_disposition(P, "no_interesado", {"reason": "porque sí"}, NOW)
    assert validate_disposition(P, "no_interesado", {"reason": "precio"}, NOW).details.reason


def test_unmet_expectations_require_opportunity_areas() -> None:
    with pytest.raises(InvalidDisposition):
        validate_disposition(S, "expectativas_no_cumplidas", {}, NOW)
    with pytest.raises(InvalidDisposition) as err:
        validate_disposition(S, "expectativas_no_cumplidas", {"opportunity_areas": ["sabor"]}, NOW)
    assert err.value.details["invalid"] == ["sabor"]
    areas = [OPPORTUNITY_AREAS[0].code, "tiempo_entrega"]
    record = validate_disposition(S, "expectativas_no_cumplidas", {"opportunity_areas": areas}, NOW)
    assert record.details.opportunity_areas == tuple(areas)


def test_complaint_requires_a_description() -> None:
    with pytest.raises(InvalidDisposition):
        validate_disposition(S, "queja_reclamo", {}, NOW)
    record = validate_disposition(S, "queja_reclamo", {"description": "Ruido en frenos"}, NOW)
    assert record.effect is DispositionEffect.PQRS


def test_unknown_detail_fields_are_rejected() -> None:
    with pytest.raises(InvalidDisposition):
        validate_disposition(P, "servicio_en_otro_taller", {"colour": "red"}, NOW)


def test_details_object_is_accepted_as_is() -> None:
    details = DispositionDetails(notes="Cliente amable")
    assert validate_disposition(S, "satisfecho", details, NOW).details is details
