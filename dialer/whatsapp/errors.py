"""Typed errors of the WhatsApp Cloud API client.

Meta's documented error response::

    {"error": {"message": "(#131026) Message Undeliverable.", "type": "OAuthException",
               "code": 131026, "error_subcode": 2494010,
               "error_data": {"messaging_product": "whatsapp", "details": "..."},
               "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}

:class:`GraphApiError` carries those fields; :class:`GraphTransportError` is a network
failure (connect/read timeout, connection reset) where no response was parsed; and
:class:`GraphProtocolError` is a response that is neither the documented success nor the
documented error shape. The error *policy* (what to do about each code) is pure and lives in
:mod:`dialer.whatsapp.policy`.
"""

from __future__ import annotations

from typing import Any


class WhatsAppError(Exception):
    """Base class of every WhatsApp client error."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "message": str(self)}


class GraphApiError(WhatsAppError):
    """The Graph API answered with its documented ``{"error": {...}}`` body."""

    def __init__(
        self,
        *,
        http_status: int,
        code: int,
        message: str,
        type_: str = "",
        error_subcode: int | None = None,
        details: str = "",
        fbtrace_id: str = "",
    ) -> None:
        head = message if message.startswith(f"(#{code})") else f"(#{code}) {message}"
        super().__init__(head + (f": {details}" if details else ""))
        self.http_status = http_status
        self.code = code
        self.message = message
        self.type = type_
        self.error_subcode = error_subcode
        self.details = details
        self.fbtrace_id = fbtrace_id

    @classmethod
    def from_response(cls, http_status: int, body: Any) -> GraphApiError:
        """Parse Meta's error JSON; raise :class:`GraphProtocolError` if it is not one."""
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict) or not isinstance(err.get("code"), int):
            raise GraphProtocolError(http_status, "error response without error.code")
        data = err.get("error_data")
        details = data.get("details", "") if isinstance(data, dict) else ""
        sub = err.get("error_subcode")
        return cls(
            http_status=http_status,
            code=int(err["code"]),
            message=str(err.get("message", "")),
            type_=str(err.get("type", "")),
            error_subcode=sub if isinstance(sub, int) else None,
            details=str(details or ""),
            fbtrace_id=str(err.get("fbtrace_id", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "graph_api",
            "http_status": self.http_status,
            "code": self.code,
            "message": self.message,
            "type": self.type,
            "error_subcode": self.error_subcode,
            "details": self.details,
            "fbtrace_id": self.fbtrace_id,
        }


class GraphTransportError(WhatsAppError):
    """No usable answer: connection refused/reset, timeout, TLS error."""


class GraphProtocolError(WhatsAppError):
    """An answer that matches neither the documented success nor the error shape."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(f"HTTP {http_status}: {message}")
        self.http_status = http_status

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "protocol", "http_status": self.http_status, "message": str(self)}


class TemplateParameterError(WhatsAppError, ValueError):
    """A template message cannot be built from the data given (bad phone, no template)."""
