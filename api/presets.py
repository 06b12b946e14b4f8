"""Campaign presets per type (from the seed procedures) and validation of campaign settings.

Every preset value is only a starting point: the campaign stays editable. Validation uses the
domain's own models, so the API accepts exactly what the engine will run:

- call windows: :class:`dialer.domain.windows.CallWindow` (never looser than Ley 2300 hours);
- retry rules: :class:`dialer.domain.retry.RetryPolicy` fields (durations as ISO 8601, e.g.
  ``"PT20M"``, or seconds);
- eligibility rules: :class:`dialer.domain.eligibility.CampaignRules` fields
  (``recovery_min_days_since_visit``, ``satisfaction_first_call_day``, ``skip_open_complaints``,
  ``abandon_cooldown``, ``frequency``).
"""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from dialer.domain.eligibility import CampaignRules
from dialer.domain.outcomes import CampaignType, DialMode
from dialer.domain.retry import RetryPolicy
from dialer.domain.windows import CallWindow, resolve_tz

#: Fields of the rules JSON that come from campaign columns instead.
_RULES_FROM_COLUMNS = frozenset({"campaign_type", "window", "default_tz", "ring_time"})
#: Retry fields that are campaign columns.
_RETRY_COLUMNS = ("max_attempts", "max_attempts_per_phone")

PRESETS: dict[CampaignType, dict[str, Any]] = {
    CampaignType.CONTACTO_PROACTIVO: {
        "max_attempts": 3,
        "whatsapp_enabled": True,
        "dial_mode": DialMode.PROGRESSIVE,
        "rules": {},
        "description": "Contacto proactivo: 3 intentos y mensaje de WhatsApp si no contesta.",
    },
    CampaignType.RECUPERACION: {
        "max_attempts": 3,
        "whatsapp_enabled": True,
        "dial_mode": DialMode.PROGRESSIVE,
        "rules": {"recovery_min_days_since_visit": 365},
        "description": (
            "Recuperación de clientes: más de un año sin visitar el taller; 3 intentos y WhatsApp."
        ),
    },
    CampaignType.SATISFACCION: {
        "max_attempts": 5,
        "max_attempts_per_phone": 5,
        "whatsapp_enabled": False,
        "record_calls": True,  # issue 16: follow-up calls are checked by supervisors
        "dial_mode": DialMode.PROGRESSIVE,
        "rules": {"satisfaction_first_call_day": 2, "skip_open_complaints": True},
        "description": (
            "Seguimiento de satisfacción: desde el día 2 tras la compra o servicio, hasta 5 "
            "intentos, sin llamar a quien tiene una queja abierta."
        ),
    },
    CampaignType.AGENDAMIENTO: {
        "max_attempts": 3,
        "whatsapp_enabled": False,
        "dial_mode": DialMode.PROGRESSIVE,
        "rules": {},
        "description": "Agendamiento de citas de taller.",
    },
    CampaignType.CUSTOM: {
        "max_attempts": 3,
        "whatsapp_enabled": False,
        "dial_mode": DialMode.PROGRESSIVE,
        "rules": {},
        "description": "Campaña personalizada: todos los valores son editables.",
    },
}


def preset_for(campaign_type: CampaignType) -> dict[str, Any]:
    """Column values of a new campaign of this type (without the description)."""
    preset = {k: v for k, v in PRESETS[campaign_type].items() if k != "description"}
    preset["rules"] = dict(preset["rules"])
    preset["call_window"] = CallWindow.legal_default().to_dict()
    return preset


def normalize_window(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a call window; raises InvalidCallWindow / ValidationError (-> 422)."""
    if not data:
        return CallWindow.legal_default().to_dict()
    return CallWindow.from_dict(data).to_dict()


def normalize_retry_rules(
    campaign_type: CampaignType, rules: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate retry overrides -> (stored overrides, column values taken out of them)."""
    base = RetryPolicy.for_campaign_type(campaign_type)
    policy = RetryPolicy.model_validate({**base.model_dump(), **rules})
    dumped = policy.model_dump(mode="json")
    columns = {k: rules[k] for k in _RETRY_COLUMNS if k in rules}
    stored = {k: dumped[k] for k in rules if k not in _RETRY_COLUMNS}
    return stored, columns


def normalize_rules(campaign_type: CampaignType, rules: dict[str, Any]) -> dict[str, Any]:
    bad = sorted(set(rules) & _RULES_FROM_COLUMNS)
    if bad:
        raise ApiError(
            422,
            "invalid_rules",
            f"rules may not set {', '.join(bad)}: use the campaign's own fields",
            {"fields": bad},
        )
    validated = CampaignRules(campaign_type=campaign_type, **rules)
    dumped = validated.model_dump(mode="json")
    return {k: dumped[k] for k in rules}


def check_timezone(tz: str) -> str:
    resolve_tz(tz)
    return tz
