"""The Cloud API client against the fake Graph API: Meta's request and response shapes."""

from __future__ import annotations

import json

import httpx
import pytest
import structlog
from pydantic import SecretStr

from dialer.settings import WhatsAppSettings
from dialer.whatsapp.client import (
    CloudApiClient,
    ImageRef,
    TemplateMessage,
    build_template_request,
    parse_send_response,
)
from dialer.whatsapp.errors import (
    GraphApiError,
    GraphProtocolError,
    GraphTransportError,
    TemplateParameterError,
)
from dialer.whatsapp.fake_graph import FakeGraph

SETTINGS = WhatsAppSettings(
    graph_base_url="http://graph.test",
    api_version="v21.0",
    phone_number_id="123456789012345",
    access_token=SecretStr("tok-123"),
)
MSG = TemplateMessage(
    to="+573001234567",
    template="promo_mantenimiento",
    header_image=ImageRef(link="https://cdn.example.test/promo.jpg"),
    body_params=("María", "Renault Duster ABC123", "Tunja", "608 7401234"),
    biz_opaque_callback_data="marcador:1:1",
)


def _fake() -> FakeGraph:
    return FakeGraph(app_secret="s", access_token="tok-123", phone_number_id="123456789012345")


def _client(fake: FakeGraph) -> CloudApiClient:
    return CloudApiClient.create(SETTINGS, transport=httpx.ASGITransport(app=fake.app))


def test_request_shape_is_metas_template_message() -> None:
    body = build_template_request(MSG)
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "573001234567",
        "type": "template",
        "template": {
            "name": "promo_mantenimiento",
            "language": {"code": "es_CO"},
            "components": [
                {
                    "type": "header",
                    "parameters": [
                        {"type": "image", "image": {"link": "https://cdn.example.test/promo.jpg"}}
                    ],
                },
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "María"},
                        {"type": "text", "text": "Renault Duster ABC123"},
                        {"type": "text", "text": "Tunja"},
                        {"type": "text", "text": "608 7401234"},
                    ],
                },
            ],
        },
        "biz_opaque_callback_data": "marcador:1:1",
    }
    with_id = build_template_request(
        TemplateMessage(to="573001234567", template="t", header_image=ImageRef(media_id="99"))
    )
    assert with_id["template"]["components"][0]["parameters"][0]["image"] == {"id": "99"}


def test_bad_inputs_are_typed_errors() -> None:
    with pytest.raises(TemplateParameterError):
        build_template_request(TemplateMessage(to="3001234567x", template="t"))
    with pytest.raises(TemplateParameterError):
        build_template_request(TemplateMessage(to="+573001234567", template=""))
    with pytest.raises(TemplateParameterError):
        ImageRef(link="https://x", media_id="1")
    with pytest.raises(GraphProtocolError):
        parse_send_response(200, {"messaging_product": "whatsapp", "messages": []})


async def test_send_parses_documented_success() -> None:
    fake = _fake()
    client = _client(fake)
    result = await client.send_template(MSG)
    await client.aclose()
    assert result.wamid.startswith("wamid.") and result.message_status == "accepted"
    assert result.wa_id == "573001234567" and result.input == "573001234567"
    [sent] = fake.messages
    assert sent.body_params[0] == "María" and sent.opaque == "marcador:1:1"
    assert sent.request["template"]["language"] == {"code": "es_CO"}


async def test_error_response_parsed_into_graph_api_error() -> None:
    fake = _fake()
    fake.fail("+573001234567", 131026)
    client = _client(fake)
    with pytest.raises(GraphApiError) as info:
        await client.send_template(MSG)
    await client.aclose()
    err = info.value
    assert err.code == 131026 and err.http_status == 400
    assert err.type == "OAuthException" and err.fbtrace_id and err.details
    assert err.to_dict()["code"] == 131026


@pytest.mark.parametrize(
    ("template", "language", "code"),
    [("no_existe", "es_CO", 132001), ("promo_mantenimiento", "en_US", 132001)],
)
async def test_unknown_template_or_language_is_132001(
    template: str, language: str, code: int
) -> None:
    client = _client(_fake())
    msg = TemplateMessage(
        to=MSG.to,
        template=template,
        language=language,
        header_image=MSG.header_image,
        body_params=MSG.body_params,
    )
    with pytest.raises(GraphApiError) as info:
        await client.send_template(msg)
    await client.aclose()
    assert info.value.code == code


async def test_fake_validates_like_meta() -> None:
    fake = _fake()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake.app), base_url="http://graph.test"
    ) as http:
        url = "/v21.0/123456789012345/messages"
        auth = {"Authorization": "Bearer tok-123"}
        no_auth = await http.post(url, json=build_template_request(MSG))
        assert no_auth.status_code == 401 and no_auth.json()["error"]["code"] == 190
        malformed = await http.post(url, content=b"{nope", headers=auth)
        assert malformed.status_code == 400 and malformed.json()["error"]["code"] == 100
        body = build_template_request(MSG)
        body.pop("messaging_product")
        missing = await http.post(url, json=body, headers=auth)
        assert missing.json()["error"]["code"] == 100
        body = build_template_request(MSG)
        body["template"]["components"][1]["parameters"].pop()
        count = await http.post(url, json=body, headers=auth)
        assert count.json()["error"]["code"] == 132000
        body = build_template_request(MSG)
        body["template"]["components"].pop(0)
        no_header = await http.post(url, json=body, headers=auth)
        assert no_header.json()["error"]["code"] == 132012
        err = no_header.json()["error"]
        assert set(err) >= {"message", "type", "code", "error_data", "fbtrace_id"}
    assert fake.messages == []


async def test_paused_and_disabled_templates() -> None:
    fake = _fake()
    client = _client(fake)
    fake.set_template_status("promo_mantenimiento", "PAUSED")
    with pytest.raises(GraphApiError) as paused:
        await client.send_template(MSG)
    fake.set_template_status("promo_mantenimiento", "DISABLED")
    with pytest.raises(GraphApiError) as disabled:
        await client.send_template(MSG)
    await client.aclose()
    assert (paused.value.code, disabled.value.code) == (132015, 132016)


async def test_media_upload_then_send_by_media_id() -> None:
    fake = _fake()
    client = _client(fake)
    media_id = await client.upload_media(b"\xff\xd8\xff fake jpeg", "image/jpeg", "promo.jpg")
    assert fake.media[media_id] == ("image/jpeg", 13)
    msg = TemplateMessage(
        to=MSG.to,
        template=MSG.template,
        header_image=ImageRef(media_id=media_id),
        body_params=MSG.body_params,
    )
    await client.send_template(msg)
    with pytest.raises(GraphApiError) as unknown:
        await client.send_template(
            TemplateMessage(
                to=MSG.to,
                template=MSG.template,
                header_image=ImageRef(media_id="404"),
                body_params=MSG.body_params,
            )
        )
    await client.aclose()
    assert fake.messages[0].header == {"type": "image", "image": {"id": media_id}}
    assert unknown.value.code == 131053


async def test_network_error_and_non_json_are_typed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = CloudApiClient.create(SETTINGS, transport=httpx.MockTransport(refuse))
    with pytest.raises(GraphTransportError):
        await client.send_template(MSG)
    await client.aclose()

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    client = CloudApiClient.create(SETTINGS, transport=httpx.MockTransport(html))
    with pytest.raises(GraphProtocolError) as info:
        await client.send_template(MSG)
    await client.aclose()
    assert info.value.http_status == 502


async def test_token_sent_as_bearer_and_never_logged(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": "573001234567", "wa_id": "573001234567"}],
                "messages": [{"id": "wamid.X", "message_status": "accepted"}],
            },
        )

    from dialer.logging import configure_logging

    configure_logging("debug")
    try:
        client = CloudApiClient.create(SETTINGS, transport=httpx.MockTransport(ok))
        await client.send_template(MSG)
        await client.aclose()
        out = capsys.readouterr()
    finally:
        structlog.reset_defaults()  # the logger was bound to capsys' stream
    assert seen[0].headers["authorization"] == "Bearer tok-123"
    assert seen[0].url.path == "/v21.0/123456789012345/messages"
    assert json.loads(seen[0].content)["to"] == "573001234567"
    logs = out.err + out.out
    assert "whatsapp.sent" in logs
    assert "tok-123" not in logs and "573001234567" not in logs
