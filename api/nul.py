"""Refuse NUL characters in request text (query strings and JSON bodies) on every backend.

PostgreSQL cannot store U+0000 in text and refuses it (422 ``invalid_value``); SQLite stores
it silently, so the same request behaved differently per backend. This middleware answers 422
``invalid_value`` for a NUL anywhere in the query string or in a JSON body's keys and strings,
before any handler runs. Uploaded files are not touched (the importer reads them as data).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(k) or holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_nul(v) for v in value)
    return False


def _query_has_nul(raw: bytes) -> bool:
    return b"\x00" in raw or b"%00" in raw.lower()


class RefuseNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _query_has_nul(scope.get("query_string", b"")) or _query_has_nul(
            scope.get("raw_path") or b""
        ):
            await self._reject(scope, receive, send)
            return
        if scope["method"] not in _UNSAFE or not self._is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"\\u0000" in body or b"\x00" in body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None  # malformed JSON: the handler's own error
            if parsed is not None and holds_nul(parsed):
                await self._reject(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def _is_json(scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                return b"json" in value.lower()
        return False

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            422,
            "invalid_value",
            "the request holds a NUL character (U+0000), which text fields cannot store",
        )
        await response(scope, receive, send)
