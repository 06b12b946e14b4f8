"""Outbound webhook targets: refuse internal addresses (server-side request forgery).

A webhook URL is checked when a subscription is created or changed (:func:`check_url`) and
again at every delivery (:class:`GuardedResolver`), after resolving the host name afresh, so a
name that later resolves to an internal address (DNS rebinding) is refused too. Redirects are
never followed (the delivery client is built with ``follow_redirects=False``).

Refused: loopback, private (RFC 1918), carrier-grade NAT, link-local (the cloud metadata
service at 169.254.169.254), unique-local IPv6, multicast, unspecified, reserved and
documentation ranges: anything :attr:`ipaddress.IPv4Address.is_global` says is not global,
plus multicast. IPv4 embedded in IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64) is unwrapped first,
and numeric host forms (``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are read as the address
they mean. ``MARCADOR_WEBHOOKS__ALLOWED_NETWORKS`` lists CIDRs an operator opts in to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolve(host, port) -> addresses``; raises OSError when the name does not resolve.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedTarget(Exception):
    """The URL points at an address webhooks may not reach."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def networks(cidrs: Iterable[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs]


def numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host means (any IPv4 spelling inet_aton accepts, or IPv6)."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    if not text or not all(c.isalnum() or c == "." for c in text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _unwrap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def refused_reason(ip: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``ip`` may not be a webhook target (None: it may)."""
    if any(ip in net for net in allowed):
        return None
    inner = _unwrap(ip)
    if inner is not ip and any(inner in net for net in allowed):
        return None
    for candidate in (ip, inner):
        if candidate.is_unspecified:
            return "unspecified"
        if candidate.is_loopback:
            return "loopback"
        if candidate.is_link_local:
            return "link-local"
        if candidate.is_multicast:
            return "multicast"
        if candidate.is_private:
            return "private"
        if not candidate.is_global:
            return "reserved"
    return None


def _refuse(host: str, reason: str) -> RefusedTarget:
    return RefusedTarget(
        "webhook_target_refused",
        f"the webhook URL points at a {reason} address ({host}); "
        "list its network in MARCADOR_WEBHOOKS__ALLOWED_NETWORKS to allow it",
    )


def check_url(url: str, allowed: Sequence[IPNetwork] = ()) -> None:
    """Refuse credentials in the URL, local names and internal numeric hosts.

    Names are resolved (and checked) at delivery, by :class:`GuardedResolver`.
    """
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget(
            "webhook_url_credentials",
            "the webhook URL must not hold a user name or password: authenticate receivers "
            "with the signature header",
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise RefusedTarget("webhook_target_refused", "the webhook URL has no host")
    ip = numeric_host(host)
    if ip is None:
        local = host in _LOCAL_NAMES or host.endswith(".localhost")
        if local and not any(ipaddress.ip_address("127.0.0.1") in n for n in allowed):
            raise _refuse(host, "loopback")
        return
    reason = refused_reason(ip, allowed)
    if reason is not None:
        raise _refuse(host, reason)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class GuardedResolver:
    """Resolves a webhook host at delivery and refuses it when any address is internal."""

    def __init__(self, allowed: Sequence[IPNetwork] = (), resolve: Resolver | None = None):
        self.allowed = list(allowed)
        self.resolve: Resolver = resolve or system_resolver

    async def check(self, url: str) -> str | None:
        """The checked address to connect to (None: the host is already an address)."""
        check_url(url, self.allowed)
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        if numeric_host(host) is not None:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await self.resolve(host, port)
        except OSError as exc:
            raise RefusedTarget("webhook_dns_failed", f"cannot resolve {host}") from exc
        if not addresses:
            raise RefusedTarget("webhook_dns_failed", f"cannot resolve {host}")
        for address in addresses:
            ip = numeric_host(address)
            reason = "unparsable" if ip is None else refused_reason(ip, self.allowed)
            if reason is not None:
                raise _refuse(host, reason)
        return addresses[0]


def pinned(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL to request, extra headers, httpx extensions) that connect to the checked address.

    The Host header and the TLS server name (certificate check) stay the URL's own name, so
    a second resolution by the HTTP client cannot swap in another address.
    """
    if address is None:
        return url, {}, {}
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    headers = {"Host": parts.netloc.rpartition("@")[2]}
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return parts._replace(netloc=netloc).geturl(), headers, extensions


def mask_credentials(url: str) -> str:
    """The URL without any ``user:password@`` part (for stored legacy rows)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{netloc}").geturl()
