"""What to do about a failed send: the Cloud API error-code policy (pure, no IO).

=====================  ==============================  ========================================
code                   meaning                         action
=====================  ==============================  ========================================
131026                 message undeliverable           mark the phone not on WhatsApp; the
                                                       message fails, no more WhatsApp to it
131049                 per-user marketing limit        retry after 24 h
131056                 pair rate limit                 exponential back-off
130429, 80007, 4       throughput / rate limit         back-off, and slow every send down
131050                 user stopped marketing          revoke WhatsApp marketing consent
132001, 132015, 132016 template missing/paused/off     hold the campaign's WhatsApp + alert
368, 131031            account restricted / locked     hold ALL sending + alert
190, 131042, 131005,   token expired, payment,         hold ALL sending + alert (only a
10, 200                permission                      person can fix these)
131000, 131016,        transient Meta errors           exponential back-off
133004, 1, 2
network error, 5xx     no usable answer                exponential back-off
anything else (4xx)    malformed request / data        the message fails (no retry)
=====================  ==============================  ========================================

Back-offs stop after ``RetryConfig.max_attempts`` sends; the message then fails. Held messages
(campaign or account) are not failed: they wait, scheduled, until a person releases the hold.
The same table is applied to a ``failed`` status webhook (asynchronous errors such as
131026, 131049 and 131050 usually arrive that way).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from dialer.whatsapp.errors import GraphApiError, GraphProtocolError, WhatsAppError


class Action(StrEnum):
    MARK_NOT_ON_WHATSAPP = "mark_not_on_whatsapp"
    RETRY_LATER = "retry_later"  # fixed delay (131049: 24 h)
    BACKOFF = "backoff"  # exponential back-off
    REVOKE_MARKETING_CONSENT = "revoke_marketing_consent"
    PAUSE_CAMPAIGN = "pause_campaign"  # hold the campaign's WhatsApp + alert
    HALT_ALL = "halt_all"  # hold every send + alert
    FAIL = "fail"  # permanent: the message fails


class Outcome(StrEnum):
    """What becomes of the message row."""

    FAILED = "failed"
    SCHEDULED = "scheduled"  # retried at ``retry_at``
    HELD = "held"  # scheduled, waits for a person to release a hold


MARKETING_LIMIT_DELAY = timedelta(hours=24)

CODE_ACTIONS: dict[int, Action] = {
    131026: Action.MARK_NOT_ON_WHATSAPP,
    131049: Action.RETRY_LATER,
    131056: Action.BACKOFF,
    130429: Action.BACKOFF,
    80007: Action.BACKOFF,
    4: Action.BACKOFF,
    131050: Action.REVOKE_MARKETING_CONSENT,
    132001: Action.PAUSE_CAMPAIGN,
    132015: Action.PAUSE_CAMPAIGN,
    132016: Action.PAUSE_CAMPAIGN,
    368: Action.HALT_ALL,
    131031: Action.HALT_ALL,
    190: Action.HALT_ALL,
    131042: Action.HALT_ALL,
    131005: Action.HALT_ALL,
    10: Action.HALT_ALL,
    200: Action.HALT_ALL,
    131000: Action.BACKOFF,
    131016: Action.BACKOFF,
    133004: Action.BACKOFF,
    1: Action.BACKOFF,
    2: Action.BACKOFF,
}

#: Throughput errors: every send of this worker slows down, not only this message.
THROTTLE_CODES = frozenset({130429, 80007, 4})

REASONS: dict[Action, str] = {
    Action.MARK_NOT_ON_WHATSAPP: "El número no tiene WhatsApp o no es entregable.",
    Action.RETRY_LATER: "Límite de mensajes de marketing por usuario: reintento en 24 h.",
    Action.BACKOFF: "Límite de envío o error temporal: reintento con espera creciente.",
    Action.REVOKE_MARKETING_CONSENT: "El cliente dejó de recibir marketing: "
    "consentimiento revocado.",
    Action.PAUSE_CAMPAIGN: "Plantilla inexistente, pausada o deshabilitada: WhatsApp de la "
    "campaña en pausa.",
    Action.HALT_ALL: "Cuenta bloqueada o sin permisos: todo envío detenido.",
    Action.FAIL: "Solicitud rechazada por la API: el mensaje falla.",
}


class RetryConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_delay: timedelta = timedelta(seconds=30)
    factor: float = Field(default=2.0, ge=1.0)
    max_delay: timedelta = timedelta(hours=1)
    #: Sends of one message (every API call counts) before a retryable error fails it.
    max_attempts: int = Field(default=8, ge=1)
    #: Up to this fraction of the delay is added as jitter (``jitter`` in [0, 1)).
    jitter_fraction: float = Field(default=0.2, ge=0.0, le=1.0)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A send failure, as the policy sees it."""

    #: "api" (Meta error JSON), "transport" (network), "protocol" (bad answer),
    #: "config" (our campaign configuration cannot be used, e.g. a missing image file)
    kind: str
    code: int | None = None
    http_status: int | None = None
    detail: str = ""

    @classmethod
    def from_exception(cls, exc: WhatsAppError) -> ErrorInfo:
        if isinstance(exc, GraphApiError):
            return cls("api", exc.code, exc.http_status, str(exc)[:300])
        if isinstance(exc, GraphProtocolError):
            return cls("protocol", None, exc.http_status, str(exc)[:300])
        return cls("transport", None, None, str(exc)[:300])


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    outcome: Outcome
    code: int | None
    reason_es: str
    retry_at: datetime | None = None  # SCHEDULED/HELD: when to look at it again
    throttle_until: datetime | None = None  # slow every send down until then
    alert: bool = False

    @property
    def retry(self) -> bool:
        return self.outcome is not Outcome.FAILED


def backoff_delay(attempt: int, config: RetryConfig, jitter: float = 0.0) -> timedelta:
    """Exponential delay after the ``attempt``-th send (1-based), capped, plus jitter."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    raw = config.base_delay * (config.factor ** (attempt - 1))
    delay = min(raw, config.max_delay)
    return delay + delay * (config.jitter_fraction * jitter)


def action_for(error: ErrorInfo) -> Action:
    if error.kind == "transport":
        return Action.BACKOFF
    if error.kind == "config":  # our side: e.g. the campaign's image file is missing
        return Action.PAUSE_CAMPAIGN
    if error.code is not None and error.code in CODE_ACTIONS:
        return CODE_ACTIONS[error.code]
    if error.http_status is not None and error.http_status >= 500:
        return Action.BACKOFF
    if error.http_status == 429:
        return Action.BACKOFF
    return Action.FAIL


#: How long a held message sleeps before the sweep looks at its hold again.
HOLD_RECHECK = timedelta(minutes=15)


def decide(
    error: ErrorInfo,
    *,
    attempt: int,
    now: datetime,
    config: RetryConfig | None = None,
    jitter: float = 0.0,
) -> Decision:
    """The policy for one failed send (``attempt`` = sends of this message so far, >= 1)."""
    cfg = config or RetryConfig()
    action = action_for(error)
    reason = REASONS[action]
    if error.kind == "transport":
        reason = "Error de red al llamar a la API: reintento con espera creciente."
    match action:
        case Action.MARK_NOT_ON_WHATSAPP | Action.REVOKE_MARKETING_CONSENT | Action.FAIL:
            return Decision(action, Outcome.FAILED, error.code, reason)
        case Action.PAUSE_CAMPAIGN | Action.HALT_ALL:
            return Decision(
                action, Outcome.HELD, error.code, reason, retry_at=now + HOLD_RECHECK, alert=True
            )
        case Action.RETRY_LATER | Action.BACKOFF:
            if attempt >= cfg.max_attempts:
                return Decision(
                    Action.FAIL,
                    Outcome.FAILED,
                    error.code,
                    f"{reason} Se agotaron {cfg.max_attempts} intentos de envío.",
                )
            delay = (
                MARKETING_LIMIT_DELAY
                if action is Action.RETRY_LATER
                else backoff_delay(attempt, cfg, jitter)
            )
            throttle = now + delay if error.code in THROTTLE_CODES else None
            return Decision(
                action,
                Outcome.SCHEDULED,
                error.code,
                reason,
                retry_at=now + delay,
                throttle_until=throttle,
            )
    raise AssertionError(f"unhandled action {action}")  # pragma: no cover
