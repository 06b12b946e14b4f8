"""The lab's WebRTC profile on the real Asterisk: SIP over WebSocket (RFC 7118) on the loopback
HTTP server, browser seats 1101-1110/2101 (``webrtc = yes``) with derived passwords.

A minimal SIP-over-WS client written here (REGISTER with digest auth, OPTIONS) checks the
transport, the seats and the password derivation without a browser; the browser's own
signalling module (api/static/sipws.js) is exercised by tests/pbx/test_browser_phone.py.
"""

from __future__ import annotations

import hashlib
import re
import secrets

import pytest
from websockets.sync.client import ClientConnection, connect

from dialer.pbx_lab import WEBRTC_SEATS, LabPbx
from dialer.webrtc import seat_password


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SIP digest is MD5


class WsSip:
    """Just enough SIP over a WebSocket to REGISTER and to send OPTIONS."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.host = f"{secrets.token_hex(4)}.invalid"
        self.cseq = 0
        self.call_id = secrets.token_hex(8)

    def request(self, method: str, uri: str, user: str, headers: list[str]) -> str:
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(6)
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/WS {self.host};branch={branch}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@127.0.0.1>;tag=t{self.cseq}",
            f"To: <sip:{user}@127.0.0.1>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            *headers,
            "Content-Length: 0",
        ]
        self.ws.send("\r\n".join(lines) + "\r\n\r\n")
        while True:
            reply = str(self.ws.recv(timeout=10))
            if reply.startswith("SIP/2.0 1"):
                continue
            if reply.startswith("SIP/2.0"):
                return reply

    def register(self, user: str, password: str, expires: int = 60) -> str:
        contact = f"Contact: <sip:{user}@{self.host};transport=ws>;expires={expires}"
        reply = self.request("REGISTER", "sip:127.0.0.1", user, [contact])
        if not reply.startswith("SIP/2.0 401"):
            return reply
        m = re.search(r"WWW-Authenticate: Digest (.*)", reply)
        assert m, reply
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', m.group(1)))
        uri = "sip:127.0.0.1"
        ha1 = _md5(f"{user}:{params['realm']}:{password}")
        ha2 = _md5(f"REGISTER:{uri}")
        cnonce, nc = secrets.token_hex(4), "00000001"
        response = _md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        auth = (
            f'Authorization: Digest username="{user}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", algorithm=MD5, '
            f'qop=auth, nc={nc}, cnonce="{cnonce}"'
            + (f', opaque="{params["opaque"]}"' if "opaque" in params else "")
        )
        return self.request("REGISTER", uri, user, [contact, auth])


def test_a_browser_seat_registers_over_websocket_with_its_derived_password(
    lab_pbx: LabPbx,
) -> None:
    assert "1101" in WEBRTC_SEATS and lab_pbx.ports.http
    assert "transport-ws" in lab_pbx.cli("pjsip show transports")
    with connect(lab_pbx.ws_url, subprotocols=["sip"], open_timeout=10) as ws:  # type: ignore[list-item]
        client = WsSip(ws)
        wrong = client.register("1101", "not-the-password")
        assert wrong.startswith("SIP/2.0 401") or wrong.startswith("SIP/2.0 403"), wrong
        ok = client.register("1101", seat_password(lab_pbx.secrets.webrtc, "1101"))
        assert ok.startswith("SIP/2.0 200"), ok
        assert "1101" in lab_pbx.cli("pjsip show contacts")
        options = client.request("OPTIONS", "sip:127.0.0.1", "1101", [])
        assert options.startswith("SIP/2.0 "), options
        gone = client.register("1101", seat_password(lab_pbx.secrets.webrtc, "1101"), expires=0)
        assert gone.startswith("SIP/2.0 200"), gone
    endpoint = lab_pbx.cli("pjsip show endpoint 1101")
    assert re.search(r"media_encryption\s+:\s+dtls", endpoint), endpoint[:400]
    assert re.search(r"ice_support\s+:\s+true", endpoint)


@pytest.mark.parametrize("seat", ["1001"])
def test_a_hardware_seat_is_not_a_webrtc_endpoint(lab_pbx: LabPbx, seat: str) -> None:
    endpoint = lab_pbx.cli(f"pjsip show endpoint {seat}")
    assert re.search(r"media_encryption\s+:\s+no", endpoint), endpoint[:400]
    assert re.search(r"transport\s+:\s+transport-udp", endpoint)
