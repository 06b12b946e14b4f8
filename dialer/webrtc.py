"""Browser phones (WebRTC): which extensions are browser seats, and their SIP passwords.

A browser-phone seat is an ordinary PJSIP endpoint on the ``marcador-webrtc-endpoint``
template (deploy/asterisk/pjsip.conf): the agent page registers it over SIP-over-WebSocket
(api/static/sipws.js) and auto-answers the dialer's nailed-up login call, exactly as a hardware
softphone would; the dialer's agent channel (``PJSIP/{extension}``) does not change. Which
agents use the browser is decided by their profile's extension: one in
``MARCADOR_WEBRTC__EXTENSIONS`` is a browser seat, any other a hardware softphone.

The seat's SIP password is derived (HMAC-SHA256 of the extension under
``MARCADOR_WEBRTC__SECRET``), so no SIP secret is stored in the database: the admin writes the
derived password into pjsip.conf (``marcador webrtc-password``), and the API hands it only to
the signed-in agent whose extension it is. Pure: no IO.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

_RANGE: Final = re.compile(r"^\s*(\d{1,32})\s*(?:-\s*(\d{1,32})\s*)?$")


class ExtensionListError(ValueError):
    """``MARCADOR_WEBRTC__EXTENSIONS`` is not a list of extensions and ranges."""


def seat_password(secret: str, extension: str) -> str:
    """The SIP digest password of a browser seat: 32 URL-safe characters."""
    mac = hmac.new(secret.encode(), f"marcador-webrtc:{extension}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode()[:32]


def parse_extensions(spec: str) -> list[tuple[int, int]]:
    """``"1101-1199,2101"`` -> inclusive ranges; empty -> none."""
    out: list[tuple[int, int]] = []
    for part in spec.split(","):
        if not part.strip():
            continue
        m = _RANGE.match(part)
        if not m:
            raise ExtensionListError(f"not an extension or a range: {part.strip()!r}")
        low = int(m.group(1))
        high = int(m.group(2) or low)
        if high < low:
            raise ExtensionListError(f"empty range: {part.strip()!r}")
        out.append((low, high))
    return out


def is_browser_seat(spec: str, extension: str | None) -> bool:
    """Whether ``extension`` (an agent profile's) is a browser-phone seat under ``spec``."""
    if not extension or not extension.isdigit():
        return False
    n = int(extension)
    return any(low <= n <= high for low, high in parse_extensions(spec))
