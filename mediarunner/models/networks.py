"""Network targets: which hosts a worker may connect to on a submitter's behalf.

A URL that makes a worker open a connection (a live input; later, webhooks) names a host that
must resolve only to public addresses: loopback, private (RFC 1918, ULA), link-local (and so
cloud metadata services such as 169.254.169.254), CGNAT (100.64.0.0/10), multicast, reserved and
unspecified addresses are refused unless they lie inside one of the operator's
``MEDIARUNNER_ALLOWED_NETWORKS``. Every address the name resolves to is checked (a name with one
public and one private address is refused). It is checked at submit and again on the worker
right before ffmpeg opens the URL; HTTP redirects are not followed (``-max_redirects 0``).

Pure: no Celery, no SQL; the resolver is a parameter so tests need no DNS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from mediarunner.errors import InvalidInputError

__all__ = ["NETWORK_SCHEMES", "IpNetwork", "check_network_target", "is_network_url", "refused_address"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int | None], Iterable[str]]

#: URL schemes that make a worker connect somewhere (the live inputs, and what may come).
NETWORK_SCHEMES = ("http", "https", "rtmp", "rtmps", "srt", "udp", "tcp", "rtp", "rtsp", "rtsps")


def is_network_url(url: str) -> bool:
    return "://" in url and urlsplit(url).scheme.lower() in NETWORK_SCHEMES


def refused_address(addr: IpAddress, allowed: Sequence[IpNetwork] = ()) -> str | None:
    """Why ``addr`` is not a public address (None: it is, or an allowed network holds it)."""
    if any(addr.version == net.version and addr in net for net in allowed):
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return refused_address(addr.ipv4_mapped, allowed)
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(addr, f"is_{kind}"):
            return kind.replace("_", "-")
    if not addr.is_global:  # CGNAT 100.64.0.0/10, documentation, benchmarking ranges...
        return "non-public"
    return None


def _resolve(host: str, port: int | None) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInputError(f"cannot resolve host {host!r}: {exc}") from None
    return [str(info[4][0]) for info in infos]


def check_network_target(url: str, allowed: Sequence[IpNetwork] = (), *, what: str = "input",
                         resolve: Resolver = _resolve) -> None:
    """Refuse (InvalidInputError, one line) a URL whose host is, or resolves to, an address that
    is not public and not in ``allowed``. The URL is never echoed with its query (stream keys)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise InvalidInputError(f"{what} URL is malformed: {exc}") from None
    if not host:
        raise InvalidInputError(f"{what} {scheme}:// URL has no host")
    try:
        addresses = [host]
        ipaddress.ip_address(host)
    except ValueError:
        addresses = list(resolve(host, port))
        if not addresses:
            raise InvalidInputError(f"host {host!r} of the {what} URL resolves to no address") from None
    for raw in addresses:
        addr = ipaddress.ip_address(raw.split("%", 1)[0])  # drop an IPv6 zone id
        why = refused_address(addr, allowed)
        if why is not None:
            raise InvalidInputError(f"{what} {scheme}:// host {host!r} is a {why} address ({addr}); "
                                    "list its network in MEDIARUNNER_ALLOWED_NETWORKS to allow it")
