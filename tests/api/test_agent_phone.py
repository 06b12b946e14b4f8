"""``GET /agent/phone`` (issue 15, browser phone): browser seats get their own SIP credentials,
everyone else is a hardware softphone; the pages allow the PBX's WebSocket origin (CSP)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from pydantic import SecretStr

from api.pages import CSP, page_csp
from dialer.db.models import Role
from dialer.settings import WebRtcSettings
from dialer.webrtc import ExtensionListError, is_browser_seat, parse_extensions, seat_password
from tests.api.helpers import ApiClient

PHONE = "/api/v1/agent/phone"
WS = "wss://pbx.example.co:8089/ws"


def _browser_phones(app: FastAPI) -> None:
    app.state.settings.webrtc = WebRtcSettings(
        ws_url=WS, secret=SecretStr("s3cret-for-tests"), extensions="1101-1110,2101"
    )


async def test_a_browser_seat_gets_only_its_own_credentials(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    _browser_phones(app)
    ana = await clients("ana", Role.AGENT, extension="1101")
    body = (await ana.get(PHONE)).json()
    assert body == {
        "kind": "browser",
        "extension": "1101",
        "ws_url": WS,
        "domain": "pbx.example.co",
        "password": seat_password("s3cret-for-tests", "1101"),
    }
    r = await ana.get(PHONE)
    assert r.headers["cache-control"] == "no-store"
    luis = await clients("luis", Role.AGENT, extension="1001")  # a hardware seat
    assert (await luis.get(PHONE)).json() == {
        "kind": "softphone",
        "extension": "1001",
        "ws_url": "",
        "domain": "",
        "password": "",
    }
    sup = await clients("sara", Role.SUPERVISOR, extension="2101")  # listens from the browser
    assert (await sup.get(PHONE)).json()["password"] == seat_password("s3cret-for-tests", "2101")


async def test_without_a_websocket_url_everyone_uses_a_softphone(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    ana = await clients("ana", Role.AGENT, extension="1101")
    assert (await ana.get(PHONE)).json()["kind"] == "softphone"


def test_extension_lists_and_passwords() -> None:
    assert parse_extensions(" 1101-1103 , 2101,") == [(1101, 1103), (2101, 2101)]
    assert is_browser_seat("1101-1103", "1102") and not is_browser_seat("1101-1103", "1104")
    assert not is_browser_seat("1101-1103", None) and not is_browser_seat("", "1101")
    for bad in ("11a", "1105-1101"):
        try:
            parse_extensions(bad)
        except ExtensionListError:
            continue
        raise AssertionError(f"accepted {bad!r}")
    assert seat_password("a", "1101") != seat_password("b", "1101")
    assert len(seat_password("a", "1101")) == 32


def test_the_pages_allow_the_pbx_websocket_origin_only() -> None:
    assert page_csp("") == CSP
    assert "connect-src 'self' wss://pbx.example.co:8089;" in page_csp(WS)
    assert page_csp("https://not-a-websocket/") == CSP
