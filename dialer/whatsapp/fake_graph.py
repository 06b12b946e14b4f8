"""A local fake of the WhatsApp Cloud API (Graph API), for tests and the demo.

It speaks Meta's documented shapes:

* ``POST /{version}/{phone_number_id}/messages``: validates the request like Meta (Bearer
  token, ``messaging_product``, ``to``, ``type``, template name/language/components) and
  answers the documented success JSON, or a 4xx/5xx with the documented error JSON
  (``{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"},
  "fbtrace_id"}}``): unknown template or language -> 132001, paused -> 132015, disabled ->
  132016, parameter count -> 132000, header format -> 132012, malformed -> 100, token -> 190.
* ``POST /{version}/{phone_number_id}/media`` (multipart ``file``, ``type``,
  ``messaging_product``) -> ``{"id": "<media id>"}``.
* Failure injection per recipient number (any error code, synchronous as an HTTP error or
  asynchronous as a ``failed`` status webhook, for N sends or for ever).
* Status webhooks (``sent``/``delivered``/``read``/``failed``, batched, in any order) and
  inbound replies, POSTed to a callback URL and signed with ``X-Hub-Signature-256``.

In-process (tests): ``FakeGraph(...).app`` is an ASGI app for ``httpx.ASGITransport``, and
``webhook_transport`` can point the webhooks at the API app the same way (no sockets).
Standalone: ``python -m dialer.whatsapp.fake_graph --port 8790``; control endpoints under
``/_fake/`` (``GET /_fake/messages``, ``POST /_fake/fail``, ``POST /_fake/status``,
``POST /_fake/inbound``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dialer.domain.clock import Clock, SystemClock
from dialer.whatsapp.webhooks import SIGNATURE_HEADER, sign

TITLES: dict[int, str] = {
    1: "API Unknown",
    2: "API Service",
    4: "API Too Many Calls",
    10: "Permission Denied",
    100: "Invalid parameter",
    190: "Invalid OAuth access token",
    368: "Temporarily blocked for policies violations",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131005: "Access denied",
    131008: "Required parameter is missing",
    131026: "Message Undeliverable.",
    131031: "Account has been locked",
    131042: "Business eligibility payment issue",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "Unable to deliver the message. This recipient has chosen to stop receiving "
    "marketing messages on WhatsApp from your business.",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132012: "Parameter format does not match format in the created template",
    132015: "Template is Paused",
    132016: "Template is Disabled",
    133004: "Server temporarily unavailable",
}
HTTP_STATUS: dict[int, int] = {190: 401, 131000: 500, 133004: 503, 1: 500, 2: 503}
_PHONE = re.compile(r"^\+?[1-9]\d{6,14}$")


def error_body(
    code: int, details: str = "", subcode: int | None = None, title: str | None = None
) -> dict[str, Any]:
    """Meta's documented error response."""
    err: dict[str, Any] = {
        "message": f"(#{code}) {title or TITLES.get(code, 'Error')}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or TITLES.get(code, "")},
        "fbtrace_id": "Fake" + uuid.uuid4().hex[:20],
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    return {"error": err}


@dataclass(frozen=True, slots=True)
class FakeTemplate:
    name: str
    languages: frozenset[str] = frozenset({"es_CO"})
    header: str | None = "image"  # image / None
    body_params: int = 4
    status: str = "APPROVED"  # APPROVED, PAUSED, DISABLED


DEFAULT_TEMPLATES = (
    FakeTemplate("promo_mantenimiento"),
    FakeTemplate("recuperacion_clientes"),
    FakeTemplate("contacto_proactivo"),
)


@dataclass(slots=True)
class Failure:
    code: int
    mode: str = "sync"  # sync: HTTP error; async: accepted, then a "failed" status webhook
    times: int | None = None  # None: every send


@dataclass(slots=True)
class FakeMessage:
    wamid: str
    to: str
    template: str
    language: str
    body_params: list[str]
    header: dict[str, Any] | None
    opaque: str | None
    request: dict[str, Any] = field(repr=False, default_factory=dict)


class FakeGraph:
    """State and ASGI app of the fake Graph API."""

    def __init__(
        self,
        *,
        app_secret: str,
        access_token: str | None = None,
        phone_number_id: str | None = None,
        templates: Sequence[FakeTemplate] = DEFAULT_TEMPLATES,
        webhook_url: str | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        auto_statuses: Sequence[str] = (),
        auto_reply: str | None = None,
        auto_reply_ratio: float = 0.0,
        status_delay: float = 0.5,
        clock: Clock | None = None,
        seed: int = 7,
    ) -> None:
        self.app_secret = app_secret
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.templates = {t.name: t for t in templates}
        self.webhook_url = webhook_url
        self.webhook_transport = webhook_transport
        self.auto_statuses = tuple(auto_statuses)
        self.auto_reply = auto_reply
        self.auto_reply_ratio = auto_reply_ratio
        self.status_delay = status_delay
        self.clock: Clock = clock or SystemClock()
        self.rng = random.Random(seed)
        self.failures: dict[str, Failure] = {}
        self.messages: list[FakeMessage] = []
        self.media: dict[str, tuple[str, int]] = {}
        self.deliveries: list[tuple[dict[str, Any], int]] = []  # (payload, http status)
        self.requests = 0
        self.request_arrived = asyncio.Event()
        #: When set (tests), each send waits for this event before answering.
        self.gate: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = self._build_app()

    # ------------------------------------------------------------------ control
    def fail(self, number: str, code: int, mode: str = "sync", times: int | None = None) -> None:
        """Make sends to ``number`` fail with ``code`` (``"*"``: every number)."""
        self.failures[_digits(number)] = Failure(code, mode, times)

    def clear_failures(self) -> None:
        self.failures.clear()

    def set_template_status(self, name: str, status: str) -> None:
        t = self.templates[name]
        self.templates[name] = FakeTemplate(t.name, t.languages, t.header, t.body_params, status)

    def sent_to(self, number: str) -> list[FakeMessage]:
        return [m for m in self.messages if m.to == _digits(number)]

    def find(self, wamid: str) -> FakeMessage:
        return next(m for m in self.messages if m.wamid == wamid)

    # ------------------------------------------------------------------ webhooks out
    def status_payload(
        self, items: Sequence[tuple[str, str]], errors: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """A batched status webhook: ``items`` = [(wamid, status)], in the order given."""
        ts = int(self.clock.now().timestamp())
        statuses = []
        for i, (wamid, status) in enumerate(items):
            msg = self.find(wamid)
            st: dict[str, Any] = {
                "id": wamid,
                "status": status,
                "timestamp": str(ts + i),
                "recipient_id": msg.to,
            }
            if msg.opaque:
                st["biz_opaque_callback_data"] = msg.opaque
            if status in ("sent", "delivered"):
                st["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
            if status == "failed":
                code = (errors or {}).get(wamid, 131026)
                st["errors"] = [
                    {
                        "code": code,
                        "title": TITLES.get(code, "Error"),
                        "message": TITLES.get(code, "Error"),
                        "error_data": {"details": TITLES.get(code, "")},
                    }
                ]
            statuses.append(st)
        return self._envelope({"statuses": statuses})

    def inbound_payload(
        self, sender: str, text: str, context_wamid: str | None = None, name: str = "Cliente"
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "from": _digits(sender),
            "id": "wamid.IN" + uuid.uuid4().hex,
            "timestamp": str(int(self.clock.now().timestamp())),
            "type": "text",
            "text": {"body": text},
        }
        if context_wamid:
            msg["context"] = {"from": "573000000000", "id": context_wamid}
        return self._envelope(
            {"contacts": [{"profile": {"name": name}, "wa_id": _digits(sender)}], "messages": [msg]}
        )

    def _envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "100000000000001",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "573000000000",
                                    "phone_number_id": self.phone_number_id or "000000000000000",
                                },
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    async def deliver(self, payload: dict[str, Any], *, secret: str | None = None) -> int:
        """POST a webhook payload to ``webhook_url``, signed; returns the HTTP status."""
        if not self.webhook_url:
            raise RuntimeError("no webhook_url configured on the fake Graph API")
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self.app_secret if secret is None else secret),
        }
        async with httpx.AsyncClient(transport=self.webhook_transport, timeout=10.0) as http:
            resp = await http.post(self.webhook_url, content=body, headers=headers)
        self.deliveries.append((payload, resp.status_code))
        return resp.status_code

    async def deliver_statuses(
        self, items: Sequence[tuple[str, str]], errors: dict[str, int] | None = None
    ) -> int:
        return await self.deliver(self.status_payload(items, errors))

    async def deliver_inbound(
        self, sender: str, text: str, context_wamid: str | None = None
    ) -> int:
        return await self.deliver(self.inbound_payload(sender, text, context_wamid))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto(self, msg: FakeMessage, failure: Failure | None) -> None:
        try:
            await asyncio.sleep(self.status_delay)
            if failure is not None:
                await self.deliver_statuses([(msg.wamid, "failed")], {msg.wamid: failure.code})
                return
            for status in self.auto_statuses:
                await self.deliver_statuses([(msg.wamid, status)])
                await asyncio.sleep(self.status_delay)
            if self.auto_reply and self.rng.random() < self.auto_reply_ratio:
                await self.deliver_inbound(msg.to, self.auto_reply, msg.wamid)
        except (httpx.HTTPError, RuntimeError):
            return  # the API is not up (demo): statuses are best effort

    # ------------------------------------------------------------------ HTTP
    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Fake WhatsApp Cloud API (Marcador)", docs_url=None, redoc_url=None)

        @app.post("/{version}/{phone_number_id}/messages")
        async def messages(version: str, phone_number_id: str, request: Request) -> JSONResponse:
            self.requests += 1
            self.request_arrived.set()
            if self.gate is not None:
                await self.gate.wait()
            return await self._messages(phone_number_id, request)

        @app.post("/{version}/{phone_number_id}/media")
        async def media(version: str, phone_number_id: str, request: Request) -> JSONResponse:
            denied = self._auth(request, phone_number_id)
            if denied is not None:
                return denied
            form = await request.form()
            upload = form.get("file")
            if form.get("messaging_product") != "whatsapp":
                return _err(100, "The parameter messaging_product is required.")
            if upload is None or isinstance(upload, str):
                return _err(100, "The parameter file is required.")
            content = await upload.read()
            mime = str(form.get("type") or upload.content_type or "")
            if not mime.startswith("image/"):
                return _err(131053, "Media upload error: unsupported type", title="Media upload")
            media_id = str(self.rng.randrange(10**15, 10**16))
            self.media[media_id] = (mime, len(content))
            return JSONResponse({"id": media_id})

        @app.get("/_fake/messages")
        async def list_messages() -> JSONResponse:
            return JSONResponse(
                [
                    {"wamid": m.wamid, "to": m.to, "template": m.template, "opaque": m.opaque}
                    for m in self.messages
                ]
            )

        @app.post("/_fake/fail")
        async def set_failure(request: Request) -> JSONResponse:
            data = await request.json()
            self.fail(str(data["to"]), int(data["code"]), str(data.get("mode", "sync")))
            return JSONResponse({"ok": True})

        @app.post("/_fake/status")
        async def push_status(request: Request) -> JSONResponse:
            data = await request.json()
            items = [(str(data["wamid"]), str(s)) for s in data.get("statuses", ["delivered"])]
            return JSONResponse({"http_status": await self.deliver_statuses(items)})

        @app.post("/_fake/inbound")
        async def push_inbound(request: Request) -> JSONResponse:
            data = await request.json()
            status = await self.deliver_inbound(
                str(data["from"]), str(data["text"]), data.get("context")
            )
            return JSONResponse({"http_status": status})

        return app

    def _auth(self, request: Request, phone_number_id: str) -> JSONResponse | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not token or (self.access_token is not None and token != self.access_token):
            return _err(190, "Invalid OAuth access token - Cannot parse access token", status=401)
        if self.phone_number_id is not None and phone_number_id != self.phone_number_id:
            return _err(100, f"Unsupported post request. Object with ID '{phone_number_id}'")
        return None

    async def _messages(self, phone_number_id: str, request: Request) -> JSONResponse:
        denied = self._auth(request, phone_number_id)
        if denied is not None:
            return denied
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _err(100, "Request body is not valid JSON")
        if not isinstance(body, dict):
            return _err(100, "Request body must be a JSON object")
        if body.get("messaging_product") != "whatsapp":
            return _err(100, "The parameter messaging_product is required.")
        to = body.get("to")
        if not isinstance(to, str) or not _PHONE.match(to):
            return _err(100, "The parameter to is required and must be a phone number.")
        if body.get("type") != "template":
            return _err(100, "Only template messages are supported by this fake.")
        problem = self._check_template(body.get("template"))
        if problem is not None:
            return problem
        opaque = body.get("biz_opaque_callback_data")
        if opaque is not None and (not isinstance(opaque, str) or len(opaque) > 512):
            return _err(100, "biz_opaque_callback_data must be a string of at most 512 chars")
        digits = _digits(to)
        failure = self.failures.get(digits) or self.failures.get("*")
        remaining = failure.times if failure is not None else None
        if failure is not None and remaining is not None:
            if remaining <= 0:
                failure = None
            else:
                failure.times = remaining - 1
        if failure is not None and failure.mode == "sync":
            code = failure.code
            return _err(code, TITLES.get(code, ""), status=HTTP_STATUS.get(code, 400))
        tpl = body["template"]
        comps = {c.get("type"): c for c in tpl.get("components") or []}
        header = comps.get("header")
        msg = FakeMessage(
            wamid="wamid.FAKE" + uuid.uuid4().hex,
            to=digits,
            template=tpl["name"],
            language=tpl["language"]["code"],
            body_params=[
                p.get("text", "") for p in (comps.get("body") or {}).get("parameters", [])
            ],
            header=header["parameters"][0] if header else None,
            opaque=opaque,
            request=body,
        )
        self.messages.append(msg)
        if self.webhook_url and (self.auto_statuses or failure is not None or self.auto_reply):
            self._spawn(self._auto(msg, failure))
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": digits}],
                "messages": [{"id": msg.wamid, "message_status": "accepted"}],
            }
        )

    def _check_template(self, tpl: Any) -> JSONResponse | None:
        if not isinstance(tpl, dict) or not isinstance(tpl.get("name"), str):
            return _err(100, "The parameter template['name'] is required.")
        lang = tpl.get("language")
        if not isinstance(lang, dict) or not isinstance(lang.get("code"), str):
            return _err(100, "The parameter template['language']['code'] is required.")
        spec = self.templates.get(tpl["name"])
        if spec is None or lang["code"] not in spec.languages:
            return _err(132001, f"template name ({tpl['name']}) does not exist in {lang['code']}")
        if spec.status == "PAUSED":
            return _err(132015, f"template {spec.name} is paused due to low quality")
        if spec.status == "DISABLED":
            return _err(132016, f"template {spec.name} has been disabled")
        comps = tpl.get("components") or []
        if not isinstance(comps, list) or not all(isinstance(c, dict) for c in comps):
            return _err(100, "template['components'] must be a list of objects")
        by_type = {str(c.get("type", "")).lower(): c for c in comps}
        header = by_type.get("header")
        if spec.header == "image":
            params = header.get("parameters") if header else None
            if not params or not isinstance(params, list) or not isinstance(params[0], dict):
                return _err(132012, "header: expected IMAGE, received nothing")
            p = params[0]
            image = p.get("image")
            if p.get("type") != "image" or not isinstance(image, dict):
                return _err(132012, "header: expected IMAGE")
            link, media_id = image.get("link"), image.get("id")
            if (link is None) == (media_id is None):
                return _err(100, "image must have exactly one of link or id")
            if media_id is not None and str(media_id) not in self.media:
                return _err(131053, "Media upload error: unknown media id", title="Media")
            if link is not None and not str(link).startswith(("https://", "http://")):
                return _err(100, "image link must be an http(s) URL")
        elif header is not None:
            return _err(132000, "this template has no header")
        body = by_type.get("body")
        params = (body or {}).get("parameters") or []
        if len(params) != spec.body_params:
            return _err(
                132000,
                f"body: number of localizable_params ({len(params)}) does not match the "
                f"expected number of params ({spec.body_params})",
            )
        for p in params:
            text = p.get("text") if isinstance(p, dict) else None
            if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(text, str):
                return _err(132012, "body parameters must be text")
            if not text.strip():
                return _err(131008, "Parameter text is empty")
            if "\n" in text or "\t" in text or "     " in text:
                return _err(
                    132018,
                    "Param text cannot have new-line/tab characters or more than 4 spaces",
                    title="There was an issue with the parameters in your template.",
                )
        return None


def _digits(number: str) -> str:
    return number if number == "*" else number.strip().lstrip("+")


def _err(code: int, details: str, status: int = 400, title: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, details, title=title), status_code=status)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dialer.whatsapp.fake_graph --port 8790``."""
    import uvicorn

    from dialer.settings import load_settings

    parser = argparse.ArgumentParser(description="Fake WhatsApp Cloud API for Marcador")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument(
        "--webhook-url", default=None, help="default: <api.public_url>/webhooks/whatsapp"
    )
    parser.add_argument("--statuses", default="sent,delivered,read", help="auto statuses")
    parser.add_argument("--reply", default="Sí, quiero agendar", help="auto reply text")
    parser.add_argument("--reply-ratio", type=float, default=0.3)
    args = parser.parse_args(argv)
    settings = load_settings()
    fake = build_from_settings(
        settings,
        webhook_url=args.webhook_url,
        auto_statuses=[s for s in args.statuses.split(",") if s],
        auto_reply=args.reply or None,
        auto_reply_ratio=args.reply_ratio,
    )
    uvicorn.run(fake.app, host=args.host, port=args.port, log_level="warning")


def build_from_settings(settings: Any, webhook_url: str | None = None, **kwargs: Any) -> FakeGraph:
    """A fake wired to the configured app secret and the API's webhook URL."""
    wa = settings.whatsapp
    return FakeGraph(
        app_secret=wa.app_secret.get_secret_value(),
        phone_number_id=wa.phone_number_id,
        webhook_url=webhook_url or settings.api.public_url.rstrip("/") + "/webhooks/whatsapp",
        **kwargs,
    )


if __name__ == "__main__":
    main()
