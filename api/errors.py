"""HTTP mapping of every error (the only place where domain errors become status codes).

Every error response of the API has one shape::

    {"error": {"code": "invalid_call_window", "message": "...", "details": {...}}}

Messages are English; the UI pages translate codes to Spanish. Request bodies are never echoed
back (a wrong-typed password must not appear in an error or a log).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dialer.domain.agents import InvalidAgentTransition
from dialer.domain.errors import DomainError
from dialer.logging import get_logger
from dialer.store import DispositionConflict

log = get_logger(__name__)

#: Domain error codes that mean "this does not exist" rather than "this is invalid".
NOT_FOUND_CODES = frozenset({"campaign_not_found"})


class ApiError(Exception):
    """An error raised by the API layer itself, with its status code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | Sequence[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.headers = dict(headers or {})


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident} does not exist")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": jsonable_encoder(details if details is not None else {}),
        }
    }
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def _clean_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without the offending input (it may be a password)."""
    out: list[dict[str, Any]] = []
    for err in errors:
        if not isinstance(err, Mapping):
            continue
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:3]:
        loc = ".".join(p for p in err["loc"] if p not in ("body",)) or "request"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and message == "Not Found":
        message = "no such endpoint"
    return error_response(exc.status_code, code, message, None, exc.headers)


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_errors(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        return error_response(
            400, "malformed_json", "the request body is not valid JSON", {"errors": errors}
        )
    return error_response(
        422, "validation_error", f"invalid request: {_summary(errors)}", {"errors": errors}
    )


async def _pydantic_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    errors = _clean_errors(exc.errors(include_url=False, include_input=False))
    return error_response(
        422, "validation_error", f"invalid data: {_summary(errors)}", {"errors": errors}
    )


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = 404 if exc.code in NOT_FOUND_CODES else 422
    if exc.code == "import_too_large":  # a decompression bomb: the payload, unpacked
        status = 413
    message = str(getattr(exc, "message_en", "") or exc.message)
    return error_response(status, exc.code, message, exc.details)


async def _agent_transition(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidAgentTransition)
    return error_response(
        409, "agent_state_conflict", str(exc), {"state": exc.state.value, "action": exc.action}
    )


async def _disposition_conflict(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DispositionConflict)
    status = 404 if exc.code == "unknown_attempt" else 409
    return error_response(status, exc.code, str(exc))


async def _lookup_error(request: Request, exc: Exception) -> JSONResponse:
    if type(exc) is not LookupError:  # KeyError / IndexError are bugs, not "not found"
        return await _unexpected(request, exc)
    return error_response(404, "not_found", str(exc))


async def _integrity_error(_request: Request, _exc: Exception) -> JSONResponse:
    return error_response(
        409,
        "conflict",
        "the change conflicts with existing data (a duplicate, or a record still in use)",
    )


async def _data_error(_request: Request, _exc: Exception) -> JSONResponse:
    return error_response(
        422, "invalid_value", "a value is out of range or holds characters that cannot be stored"
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "api_unhandled_error",
        path=request.url.path,
        method=request.method,
        error=type(exc).__name__,
    )
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _pydantic_validation)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(InvalidAgentTransition, _agent_transition)
    app.add_exception_handler(DispositionConflict, _disposition_conflict)
    app.add_exception_handler(LookupError, _lookup_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected)
