"""Typed domain errors.

Every error raised by the pure core derives from :class:`DomainError`. Each class carries a
stable machine-readable ``code`` (for the API's error mapping and for logs) and the error
instance keeps structured ``details`` next to its human message. Transport errors live in
``ami_bridge``; HTTP mapping lives only in ``api/``.

Add new error classes here (keep them small and general). Names read as domain facts
(``InvalidCallWindow``, ``NotEligible``), hence no ``Error`` suffix.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base class of every error raised by the domain core."""

    code: ClassVar[str] = "domain_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": dict(self.details)}


class NaiveDatetimeError(DomainError, ValueError):
    """A datetime without tzinfo reached the core; every instant must be timezone-aware."""

    code = "naive_datetime"


class InvalidTimeZone(DomainError, ValueError):
    """A time zone name that zoneinfo does not know."""

    code = "invalid_time_zone"


class InvalidCallWindow(DomainError):
    """A call window that is malformed or looser than the legal contact hours."""

    code = "invalid_call_window"


class InvalidRetryPolicy(DomainError):
    """Retry policy values that make no sense (negative delays, zero attempts...)."""

    code = "invalid_retry_policy"


class AttemptLimitExceeded(DomainError):
    """An attempt was requested beyond the per-lead or per-phone cap."""

    code = "attempt_limit_exceeded"


class NoDialablePhone(DomainError):
    """The lead has no phone that may be dialed."""

    code = "no_dialable_phone"


class AttemptLimitReached(DomainError):
    """The lead already used every attempt its campaign allows (checked before each dial)."""

    code = "attempt_limit"


class NotEligible(DomainError):
    """A lead was about to be dialed although a readiness rule fails."""

    code = "not_eligible"


class UnknownDisposition(DomainError):
    """A disposition code that the campaign type does not offer."""

    code = "unknown_disposition"


class InvalidDisposition(DomainError):
    """A disposition is missing required data (reason, date, branch...) or has bad data."""

    code = "invalid_disposition"


class DispositionRequired(DomainError):
    """An answered, connected call reached the retry policy without a disposition."""

    code = "disposition_required"
