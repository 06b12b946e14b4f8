"""Cloud API webhooks: ``GET``/``POST /webhooks/whatsapp`` (a FastAPI router).

The API app includes :data:`router` and sets, on ``app.state``: ``sessionmaker``,
``settings``, ``redis`` and ``keys`` (optionally ``clock``, for tests).

* ``GET``: Meta's verification handshake. ``hub.mode=subscribe`` and ``hub.verify_token``
  equal to ``settings.whatsapp.verify_token`` -> 200 with ``hub.challenge`` as plain text;
  anything else -> 403.
* ``POST``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app
  secret>``; a missing or bad signature -> 403 (nothing is read). Then every change of every
  entry is processed, in any order:

  - ``statuses`` (sent, delivered, read, failed): stored in the message's history; the
    message's status never moves backwards; a ``failed`` one goes through the error policy;
  - ``messages`` (customer replies): stored (direction ``in``, status ``received``);
    ``STOP``/``no más``/``baja``/``cancelar``... revoke the WhatsApp marketing consent; any
    other reply puts the lead back in its campaign as a callback due now, and a
    ``whatsapp_reply`` event goes to ``Keys.events_stream`` for the agent screen.

  Each item is idempotent (Meta retries deliveries), so on a storage error the endpoint
  answers 500 and Meta's retry is safe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from dialer.domain.clock import Clock, SystemClock
from dialer.logging import get_logger
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from dialer.settings import Settings
from dialer.whatsapp.store import Applied, InboundResult, WhatsAppStore

log = get_logger(__name__)

router = APIRouter(tags=["whatsapp"])

SIGNATURE_HEADER = "X-Hub-Signature-256"


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_ok(body: bytes, header: str | None, app_secret: str) -> bool:
    if not header or not header.startswith("sha256=") or not app_secret:
        return False
    return hmac.compare_digest(sign(body, app_secret), header.strip())


@router.get("/webhooks/whatsapp", response_class=PlainTextResponse)
async def verify(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    q = request.query_params
    expected = settings.whatsapp.verify_token.get_secret_value()
    token = q.get("hub.verify_token", "")
    if (
        q.get("hub.mode") == "subscribe"
        and expected
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        return PlainTextResponse(q.get("hub.challenge", ""))
    return _error(403, "verification_failed", "hub.mode or hub.verify_token does not match")


@router.post("/webhooks/whatsapp")
async def receive(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await request.body()
    secret = settings.whatsapp.app_secret.get_secret_value()
    if not signature_ok(body, request.headers.get(SIGNATURE_HEADER), secret):
        log.warning("whatsapp.webhook_bad_signature", bytes=len(body))
        return _error(403, "invalid_signature", "missing or invalid X-Hub-Signature-256")
    try:
        payload = json.loads(body)
    except ValueError:
        return _error(400, "malformed_json", "the body is not JSON")
    if not isinstance(payload, dict):
        return _error(400, "malformed_json", "the body is not a JSON object")
    processor = WebhookProcessor(
        WhatsAppStore(request.app.state.sessionmaker),
        Streams(request.app.state.redis),
        request.app.state.keys,
        getattr(request.app.state, "clock", None) or SystemClock(),
    )
    result = await processor.process(payload)
    return JSONResponse(result, status_code=500 if result["errors"] else 200)


class WebhookProcessor:
    """Applies one verified webhook payload (usable without HTTP, e.g. from tests)."""

    def __init__(self, store: WhatsAppStore, streams: Streams, keys: Keys, clock: Clock) -> None:
        self.store = store
        self.streams = streams
        self.keys = keys
        self.clock = clock

    async def process(self, payload: dict[str, Any]) -> dict[str, int]:
        counts = {"statuses": 0, "messages": 0, "ignored": 0, "errors": 0}
        for entry in payload.get("entry") or []:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            for change in changes or []:
                value = change.get("value") if isinstance(change, dict) else None
                if not isinstance(value, dict):
                    counts["ignored"] += 1
                    continue
                for st in value.get("statuses") or []:
                    await self._one(counts, "statuses", self._status, st)
                for m in value.get("messages") or []:
                    await self._one(counts, "messages", self._message, m)
        return counts

    async def _one(self, counts: dict[str, int], kind: str, fn: Any, item: Any) -> None:
        if not isinstance(item, dict):
            counts["ignored"] += 1
            return
        try:
            handled = await fn(item)
        except Exception as exc:  # one bad item must not hide the others; Meta retries
            counts["errors"] += 1
            log.error("whatsapp.webhook_item_failed", kind=kind, error=type(exc).__name__)
            return
        counts[kind if handled else "ignored"] += 1

    async def _status(self, st: dict[str, Any]) -> bool:
        applied = await self.store.apply_status(st, self.clock.now())
        if applied is None:
            return False
        if applied.changed:
            await self._publish("whatsapp_status", _applied_data(applied))
        if applied.alert is not None and applied.alert.get("new"):
            log.error("whatsapp.alert", **{k: v for k, v in applied.alert.items() if k != "new"})
            await self._publish("whatsapp_alert", applied.alert)
        return True

    async def _message(self, m: dict[str, Any]) -> bool:
        res = await self.store.store_inbound(m, self.clock.now())
        if res is None:
            return False
        if res.duplicate:
            return True
        log.info(
            "whatsapp.inbound",
            message_id=res.message_id,
            lead_id=res.lead_id,
            opt_out=res.opt_out,
            callback=res.callback,
        )
        await self._publish("whatsapp_opt_out" if res.opt_out else "whatsapp_reply", _reply(res))
        return True

    async def _publish(self, type_: str, data: dict[str, Any]) -> None:
        try:
            await self.streams.add(self.keys.events_stream, type_, data)
        except Exception as exc:  # SQL is the truth; the event is the live view
            log.warning("whatsapp.event_publish_failed", error=type(exc).__name__)


def _error(status: int, code: str, message: str) -> JSONResponse:
    """The API's error shape: ``{"error": {"code", "message", "details"}}``."""
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": {}}}, status_code=status
    )


def _applied_data(a: Applied) -> dict[str, Any]:
    return {
        "message_id": a.message_id,
        "lead_id": a.lead_id,
        "campaign_id": a.campaign_id,
        "status": a.status,
    }


def _reply(r: InboundResult) -> dict[str, Any]:
    return {
        "message_id": r.message_id,
        "reply_to": r.reply_to,
        "lead_id": r.lead_id,
        "campaign_id": r.campaign_id,
        "text": r.text,
        "at": r.at.isoformat() if r.at else None,
        "callback": r.callback,
        "opt_out": r.opt_out,
    }
