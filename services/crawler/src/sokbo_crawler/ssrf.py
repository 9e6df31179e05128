"""Refuse to connect to private networks: the SSRF guard, checked inside the connection.

A feed or a redirect can point the crawler at ``http://169.254.169.254/`` or at a
name that resolves to ``10.0.0.5``.  Checking the URL's host in an httpx request
hook is not enough: the connection resolves the name again, and a host whose DNS
answer changes in between (DNS rebinding) gets through.  So the check lives in the
network backend httpcore connects with (:class:`GuardedBackend`): it resolves the
host once, refuses if *any* answer is non-public (:func:`is_public_address`), and
connects to the checked IP literal, which no layer below resolves again.  TLS is
unaffected: httpcore starts it on that stream with ``server_hostname`` set to the
URL's host, so SNI and certificate verification use the name, not the IP
(``httpcore/_async/connection.py``, ``AsyncHTTPConnection._connect``).  Every
redirect hop is a new request, hence a new connection or one to an origin already
checked, so every hop is checked.

:class:`GuardedTransport` also refuses, before any connection, URLs that are not
``http``/``https`` or that carry userinfo (``http://news.example.kr@10.0.0.5/``).

Checked against httpx 0.28.1 and httpcore 1.0.9: ``httpx.AsyncHTTPTransport`` has no
``network_backend`` parameter, so :class:`GuardedTransport` builds its own
``httpcore.AsyncConnectionPool`` and reuses the rest of the httpx transport.

Proxies would bypass the guard (the proxy, not us, connects to the target):
:class:`GuardedTransport` takes no ``proxy``; give the client ``transport=`` and
``trust_env=False``, and neither ``proxy=`` nor ``mounts=``.  (With ``transport=``
httpx 0.28 ignores ``HTTP_PROXY``/``ALL_PROXY`` anyway: ``allow_env_proxies =
trust_env and transport is None``.)

Addresses follow the IANA special-purpose registries (RFC 6890) as Python's
``ipaddress`` encodes them, plus explicit checks where its answer varies between
Python versions or misses an embedded IPv4 address (RFC 4291 §2.5.5.2, RFC 3056,
RFC 4380, RFC 6052).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

from sokbo.errors import PermanentError

__all__ = [
    "GuardedBackend",
    "GuardedTransport",
    "PrivateAddressError",
    "UnsafeURLError",
    "check_url",
    "embedded_ipv4",
    "guarded_transport",
    "is_public_address",
    "system_resolve",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolve(host, port)`` returns the host's addresses as IP literals, best first.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use prefix
#: non-global ranges that Python 3.11's ``is_global`` misses (later versions know some)
_NOT_GLOBAL = (ipaddress.IPv4Network("192.0.0.0/24"),  # IETF protocol assignments
               _NAT64_LOCAL,
               ipaddress.IPv6Network("3fff::/20"),  # documentation, RFC 9637
               ipaddress.IPv6Network("5f00::/16"))  # SRv6 SIDs, RFC 9602
_HINT = "set crawler.allow_private_networks: true only for intranet sources"


class UnsafeURLError(PermanentError):
    """The URL is not one the crawler fetches: not http(s), or it carries userinfo."""


class PrivateAddressError(UnsafeURLError):
    """The URL's host resolves to a non-public address and the config does not allow it.

    Attributes:
        target: the URL (or ``host:port`` when raised below the transport).
        address: the refused IP address, as text.
    """

    def __init__(self, target: str, address: str) -> None:
        self.target = target
        self.address = address
        super().__init__(f"{target} resolves to {address}, a non-public address; {_HINT}")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address carries, if it is one that routes to it.

    IPv4-mapped ``::ffff:a.b.c.d`` (RFC 4291 §2.5.5.2), NAT64 ``64:ff9b::a.b.c.d``
    (RFC 6052) and 6to4 ``2002:AABB:CCDD::/48`` (RFC 3056); ``None`` otherwise.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip.sixtofour


def is_public_address(ip: IPAddress) -> bool:
    """Return whether *ip* is a public unicast address the crawler may connect to.

    False for private (RFC 1918, ``fc00::/7``), loopback, link-local (cloud metadata
    ``169.254.169.254``), shared/CGNAT ``100.64.0.0/10``, unspecified, multicast,
    reserved, documentation and benchmarking ranges, IETF protocol assignments
    ``192.0.0.0/24``, site-local ``fec0::/10``, Teredo ``2001::/32`` and NAT64
    local-use ``64:ff9b:1::/48``.  An IPv6 address embedding
    an IPv4 one (mapped, NAT64 well-known prefix, 6to4) is judged by that IPv4
    address, so ``64:ff9b::8.8.8.8`` (DNS64 on an IPv6-only cluster) is public and
    ``::ffff:127.0.0.1`` is not.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        v4 = embedded_ipv4(ip)
        if v4 is not None:
            return is_public_address(v4)
        if ip.teredo is not None or ip.is_site_local:
            return False
    if any(ip in network for network in _NOT_GLOBAL if network.version == ip.version):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified
                                 or ip.is_loopback or ip.is_link_local or ip.is_private)


def check_url(url: httpx.URL | str) -> None:
    """Raise :class:`UnsafeURLError` unless *url* is ``http``/``https`` with a host and no
    userinfo (RFC 3986 §3.2.1: ``user:password@`` is also a trick to disguise the host).
    """
    url = httpx.URL(url) if isinstance(url, str) else url
    if url.scheme not in ("http", "https"):
        raise UnsafeURLError(f"{url}: only http and https URLs are fetched")
    if url.userinfo:
        raise UnsafeURLError(f"{url.copy_with(userinfo=None)}: URLs with a user name or "
                             "password (user@host) are not fetched")
    if not url.host:
        raise UnsafeURLError(f"{url}: no host")


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolve *host* with the system resolver (``getaddrinfo``); IP literals, in its order.

    Raises:
        OSError: (``socket.gaierror``) the name does not resolve.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses *is_allowed* accepts.

    ``connect_tcp(host, port)`` resolves *host* once with *resolve* (an IP literal is
    taken as is; ``127.1`` or ``2130706433`` are names to ``getaddrinfo``), refuses with
    :class:`PrivateAddressError` if any answer is not allowed, then asks *inner*
    (httpcore's AnyIO backend unless given) to connect to the checked IP literals
    in order until one answers.  Resolving and connecting share the connect timeout.

    Raises (from ``connect_tcp``):
        PrivateAddressError: an answer is not allowed.
        httpcore.ConnectError: the name does not resolve, or no address answers.
        httpcore.ConnectTimeout: resolving and connecting took longer than the timeout.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None, *,
                 resolve: Resolver = system_resolve,
                 is_allowed: Callable[[IPAddress], bool] = is_public_address) -> None:
        self._inner = inner or httpcore.AnyIOBackend()
        self._resolve = resolve
        self._is_allowed = is_allowed

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[typing.Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        addresses = await self._checked_addresses(host, port, timeout)
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host}:{port} took longer "
                                              f"than {timeout:g} s")
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=left, local_address=local_address,
                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def _checked_addresses(self, host: str, port: int,
                                 timeout: float | None) -> list[IPAddress]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            return self._checked([literal], host, port)
        try:
            async with asyncio.timeout(timeout):
                answers = await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than "
                                          f"{timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        return self._checked([ipaddress.ip_address(answer) for answer in answers], host, port)

    def _checked(self, addresses: list[IPAddress], host: str, port: int) -> list[IPAddress]:
        for address in addresses:
            if not self._is_allowed(address):
                raise PrivateAddressError(f"{host}:{port}", str(address))
        return addresses

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[typing.Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise UnsafeURLError(f"unix socket {path}: only TCP connections are guarded")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that checks every request's URL and connects through a backend.

    Each request (so each redirect hop) must pass :func:`check_url`; connections are
    made by *network_backend*, normally a :class:`GuardedBackend`.  The arguments are
    those of ``httpx.AsyncHTTPTransport`` minus ``proxy`` and ``uds``, which would
    bypass the backend; ``trust_env`` here only lets ``SSL_CERT_FILE``/``SSL_CERT_DIR``
    choose the CA certificates.  A :class:`PrivateAddressError` from the backend is
    raised again naming the request's URL.
    """

    def __init__(self, *, network_backend: httpcore.AsyncNetworkBackend | None = None,
                 verify: typing.Any = True, cert: typing.Any = None, trust_env: bool = True,
                 http1: bool = True, http2: bool = False, limits: httpx.Limits | None = None,
                 local_address: str | None = None, retries: int = 0,
                 socket_options: Iterable[typing.Any] | None = None) -> None:
        # AsyncHTTPTransport.__init__ only builds self._pool, without a way to pass
        # network_backend (httpx 0.28.1); its other methods only use self._pool.
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, http1=http1, http2=http2,
            local_address=local_address, retries=retries, socket_options=socket_options,
            network_backend=network_backend)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(request.url)
        try:
            return await super().handle_async_request(request)
        except PrivateAddressError as exc:
            raise PrivateAddressError(str(request.url), exc.address) from None


def guarded_transport(*, allow_private_networks: bool = False,
                      **transport_kwargs: typing.Any) -> GuardedTransport:
    """Return the transport for the crawler's ``httpx.AsyncClient(transport=...)``.

    Args:
        allow_private_networks: ``crawler.allow_private_networks``; when true, hosts
            on private networks are fetched (the URL checks stay).
        transport_kwargs: passed to :class:`GuardedTransport` (``verify``, ``http2``,
            ``limits``, ``retries``, ...).

    Create the client with ``trust_env=False`` and without ``proxy=`` or ``mounts=``.
    """
    backend = None if allow_private_networks else GuardedBackend()
    return GuardedTransport(network_backend=backend, **transport_kwargs)
