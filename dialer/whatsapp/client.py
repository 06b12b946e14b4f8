"""WhatsApp Business Platform (Cloud API) client on ``httpx.AsyncClient``.

Requests go to ``{graph_base_url}/{api_version}/{phone_number_id}/messages`` (and ``/media``)
with ``Authorization: Bearer <access token>``. ``graph_base_url`` is a setting, so tests and
the demo talk to :mod:`dialer.whatsapp.fake_graph` and never reach the internet; a transport
can also be injected (``httpx.ASGITransport`` / ``MockTransport``).

The request and response shapes are Meta's documented ones:

* send a template message (``type: template``) in ``es_CO`` with an image header (``link``
  or uploaded media ``id``) and positional body parameters;
* success: ``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}],
  "messages": [{"id": "wamid...", "message_status": "accepted"}]}``;
* error: ``{"error": {"message", "type", "code", "error_subcode", "error_data": {"details"},
  "fbtrace_id"}}`` -> :class:`~dialer.whatsapp.errors.GraphApiError`.

The access token and full phone numbers are never logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from dialer.logging import get_logger, mask_digits
from dialer.settings import WhatsAppSettings
from dialer.whatsapp.errors import (
    GraphApiError,
    GraphProtocolError,
    GraphTransportError,
    TemplateParameterError,
)

log = get_logger(__name__)

_PHONE = re.compile(r"^\+?[1-9]\d{6,14}$")
_SPACES = re.compile(r"\s+")
#: Meta refuses text parameters with new lines, tabs or more than 4 consecutive spaces
#: (error 132018), and empty ones; longer than this is refused too.
MAX_PARAM_CHARS = 1024
MAX_OPAQUE_CHARS = 512


@dataclass(frozen=True, slots=True)
class ImageRef:
    """The header image: a public ``link`` or an uploaded media ``id`` (exactly one)."""

    link: str | None = None
    media_id: str | None = None

    def __post_init__(self) -> None:
        if (self.link is None) == (self.media_id is None):
            raise TemplateParameterError("an image needs exactly one of link or media id")

    def to_json(self) -> dict[str, str]:
        return {"link": self.link} if self.link is not None else {"id": str(self.media_id)}


@dataclass(frozen=True, slots=True)
class TemplateMessage:
    to: str  # E.164, with or without '+'
    template: str
    language: str = "es_CO"
    header_image: ImageRef | None = None
    body_params: tuple[str, ...] = ()
    #: Echoed back by Meta in every status webhook of this message (reconciliation).
    biz_opaque_callback_data: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """Meta's documented success response, parsed."""

    wamid: str
    wa_id: str
    input: str
    message_status: str | None = None  # "accepted" (or "held_for_quality_assessment")
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def clean_param(value: str, default: str) -> str:
    """A template text parameter Meta accepts: one line, no runs of spaces, not empty."""
    text = _SPACES.sub(" ", value or "").strip()
    return (text or default)[:MAX_PARAM_CHARS]


def normalise_to(number: str) -> str:
    """The ``to`` field: digits of the E.164 number (Meta's wa_id form, no '+')."""
    raw = number.strip().replace(" ", "")
    if not _PHONE.match(raw):
        raise TemplateParameterError("recipient is not an E.164 phone number")
    return raw.lstrip("+")


def build_template_request(msg: TemplateMessage) -> dict[str, Any]:
    """The JSON body of ``POST /{version}/{phone_number_id}/messages`` (pure)."""
    if not msg.template:
        raise TemplateParameterError("no template name configured")
    components: list[dict[str, Any]] = []
    if msg.header_image is not None:
        components.append(
            {
                "type": "header",
                "parameters": [{"type": "image", "image": msg.header_image.to_json()}],
            }
        )
    if msg.body_params:
        components.append(
            {
                "type": "body",
                "parameters": [{"type": "text", "text": p} for p in msg.body_params],
            }
        )
    template: dict[str, Any] = {"name": msg.template, "language": {"code": msg.language}}
    if components:
        template["components"] = components
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": normalise_to(msg.to),
        "type": "template",
        "template": template,
    }
    if msg.biz_opaque_callback_data:
        body["biz_opaque_callback_data"] = msg.biz_opaque_callback_data[:MAX_OPAQUE_CHARS]
    return body


def parse_send_response(http_status: int, body: Any) -> SendResult:
    """Parse the documented success shape; anything else is a :class:`GraphProtocolError`."""
    if not isinstance(body, dict):
        raise GraphProtocolError(http_status, "response body is not a JSON object")
    messages = body.get("messages")
    contacts = body.get("contacts")
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        raise GraphProtocolError(http_status, "success response without messages[0]")
    wamid = messages[0].get("id")
    if not isinstance(wamid, str) or not wamid:
        raise GraphProtocolError(http_status, "success response without messages[0].id")
    contact = contacts[0] if isinstance(contacts, list) and contacts else {}
    contact = contact if isinstance(contact, dict) else {}
    status = messages[0].get("message_status")
    return SendResult(
        wamid=wamid,
        wa_id=str(contact.get("wa_id", "")),
        input=str(contact.get("input", "")),
        message_status=status if isinstance(status, str) else None,
        raw=body,
    )


class CloudApiClient:
    """Async Cloud API client. Build it with :meth:`create` (owns its httpx client)."""

    def __init__(self, http: httpx.AsyncClient, settings: WhatsAppSettings) -> None:
        self._http = http
        self._settings = settings
        self._owns_http = False

    @classmethod
    def create(
        cls,
        settings: WhatsAppSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
    ) -> CloudApiClient:
        http = httpx.AsyncClient(
            base_url=settings.graph_base_url.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=5.0),
            follow_redirects=False,
        )
        client = cls(http, settings)
        client._owns_http = True
        return client

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    @property
    def _prefix(self) -> str:
        return f"/{self._settings.api_version}/{self._settings.phone_number_id}"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._settings.access_token.get_secret_value()}"}

    async def _post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            resp = await self._http.post(f"{self._prefix}{path}", headers=self._auth(), **kwargs)
        except httpx.TransportError as exc:  # connect errors, timeouts, resets
            raise GraphTransportError(f"{type(exc).__name__} calling the Graph API") from None
        try:
            body = resp.json()
        except ValueError:
            raise GraphProtocolError(resp.status_code, "response is not JSON") from None
        if resp.status_code >= 400:
            raise GraphApiError.from_response(resp.status_code, body)
        return resp.status_code, body

    async def send_template(self, msg: TemplateMessage) -> SendResult:
        """Send one template message; raises a :class:`WhatsAppError` subclass on failure."""
        payload = build_template_request(msg)
        try:
            status, body = await self._post("/messages", json=payload)
        except GraphApiError as exc:
            log.warning(
                "whatsapp.send_error",
                to=mask_digits(payload["to"]),
                template=msg.template,
                code=exc.code,
                http_status=exc.http_status,
            )
            raise
        result = parse_send_response(status, body)
        log.info(
            "whatsapp.sent",
            to=mask_digits(payload["to"]),
            template=msg.template,
            wamid=result.wamid,
            message_status=result.message_status,
        )
        return result

    async def upload_media(self, content: bytes, mime_type: str, filename: str) -> str:
        """Upload a media file (``POST /{phone_number_id}/media``, multipart); its id."""
        _, body = await self._post(
            "/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        media_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise GraphProtocolError(200, "media upload response without id")
        log.info("whatsapp.media_uploaded", media_id=media_id, bytes=len(content))
        return media_id
