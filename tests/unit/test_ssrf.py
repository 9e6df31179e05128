"""Unit tests for sokbo_crawler.ssrf: the address classifier and the guarded connection.

The connection tests use a real HTTP server on 127.0.0.1.  To play an allowed
origin without the internet, a fake resolver answers public addresses for
``*.test`` names and a small "NAT" backend routes those addresses to the local
server; the guard itself runs unchanged in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import httpx
import pytest

from sokbo.errors import PermanentError
from sokbo_crawler.fetch import Fetcher
from sokbo_crawler.ssrf import (
    GuardedBackend,
    GuardedTransport,
    PrivateAddressError,
    UnsafeURLError,
    check_url,
    embedded_ipv4,
    guarded_transport,
    is_public_address,
)
from tests.servers import free_port

# --- the address classifier --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1", "172.16.0.1", "192.168.1.1",  # RFC 1918
        "127.0.0.1", "127.8.9.10",  # loopback
        "169.254.169.254",  # link-local: cloud metadata
        "100.64.0.1",  # shared address space (CGNAT), RFC 6598
        "0.0.0.0", "0.1.2.3",  # "this network"
        "224.0.0.1", "239.255.255.250",  # multicast
        "240.0.0.1", "255.255.255.255",  # reserved, broadcast
        "192.0.2.1", "198.18.0.1", "192.0.0.8",  # documentation, benchmarking, IETF
        "::1", "::",  # loopback, unspecified
        "fe80::1", "fe80::1%eth0",  # link-local
        "fc00::1", "fd12:3456::1",  # unique local
        "fec0::1",  # site-local (deprecated, still routed inside some networks)
        "ff02::1", "ff05::2",  # multicast
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "64:ff9b::7f00:1", "64:ff9b::a00:1",  # NAT64 of 127.0.0.1, 10.0.0.1
        "64:ff9b:1::808:808",  # NAT64 local-use prefix (RFC 8215)
        "2002:7f00:1::", "2002:a00:1::1",  # 6to4 of 127.0.0.1, 10.0.0.1
        "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001:db8::1", "100::1",  # documentation, discard-only
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8", "1.1.1.1", "211.234.100.1",  # a Korean ISP's range
        "2606:4700::1111", "2001:4860:4860::8888",
        "::ffff:8.8.8.8",  # IPv4-mapped public
        "64:ff9b::808:808",  # DNS64/NAT64 of a public address (IPv6-only clusters)
        "2002:808:808::1",  # 6to4 of a public address
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("2002:7f00:1::", "127.0.0.1"),
        ("2606:4700::1111", None),
        ("::1", None),
    ],
)
def test_embedded_ipv4(address: str, embedded: str | None) -> None:
    found = embedded_ipv4(ipaddress.IPv6Address(address))
    assert (str(found) if found else None) == embedded


# --- URL checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://news.example.kr/a", "file:///etc/passwd", "gopher://news.example.kr:70/",
        "http://user@news.example.kr/", "https://user:secret@news.example.kr/",
        "http://news.example.kr@127.0.0.1/",  # looks like news.example.kr, is 127.0.0.1
        "http:///path-only",
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(UnsafeURLError) as info:
        check_url(url)
    assert isinstance(info.value, PermanentError)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("url", ["http://news.example.kr/a?b=1", "https://[2606:4700::1111]/"])
def test_check_url_allows(url: str) -> None:
    check_url(url)


# --- test doubles: a local site, a resolver, a NAT ---------------------------------------


@dataclass
class Site:
    """A real HTTP server on 127.0.0.1: ``/start`` redirects to ``redirect_to``."""

    port: int = 0
    paths: list[str] = field(default_factory=list)
    redirect_to: str = ""


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            state.paths.append(self.path)
            if self.path == "/start":
                self.send_response(302)
                self.send_header("Location", state.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


class FakeDNS:
    """Answers from a table; a list of answer lists is served in turn (DNS rebinding)."""

    def __init__(self, table: dict[str, list[str] | list[list[str]]]) -> None:
        self.table = table
        self.queries: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.queries.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = self.table[host]
        if answers and isinstance(answers[0], list):
            return answers.pop(0) if len(answers) > 1 else answers[0]
        return answers


class Nat(httpcore.AsyncNetworkBackend):
    """The tests' "internet": routes public test addresses to local ports; records hosts."""

    def __init__(self, routes: dict[str, tuple[str, int]]) -> None:
        self.routes = routes
        self.connected: list[str] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None,
                          socket_options=None):
        self.connected.append(host)
        host, port = self.routes.get(host, (host, port))
        return await self._real.connect_tcp(host, port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _client(transport: httpx.AsyncBaseTransport, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=True,
                             max_redirects=5, timeout=5.0, **kwargs)


def _guarded(dns: FakeDNS, nat: Nat) -> GuardedTransport:
    return GuardedTransport(network_backend=GuardedBackend(nat, resolve=dns))


# --- the guarded connection, against a real local server ---------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "127.1",
                                  "2130706433"])
async def test_local_server_is_refused(site: Site, host: str) -> None:
    url = f"http://{host}:{site.port}/feed.xml"
    async with _client(guarded_transport()) as client:
        with pytest.raises(PrivateAddressError) as info:
            await client.get(url)
    message = str(info.value)
    assert url in message
    assert "crawler.allow_private_networks: true only for intranet sources" in message
    assert ipaddress.ip_address(info.value.address).is_loopback or \
        embedded_ipv4(ipaddress.IPv6Address(info.value.address)).is_loopback
    assert site.paths == []  # refused before connecting


async def test_allow_private_networks_lifts_the_address_guard(site: Site) -> None:
    async with _client(guarded_transport(allow_private_networks=True)) as client:
        response = await client.get(f"http://127.0.0.1:{site.port}/feed.xml")
        assert response.text == "ok"
        with pytest.raises(UnsafeURLError):  # URL checks stay
            await client.get(f"http://user:pw@127.0.0.1:{site.port}/feed.xml")


async def test_fetcher_reports_the_refusal_as_permanent(site: Site) -> None:
    async with _client(guarded_transport()) as client:
        fetcher = Fetcher(client, max_body_bytes=1 << 20, per_host_delay=0)
        with pytest.raises(PrivateAddressError, match="allow_private_networks"):
            await fetcher.get(f"http://localhost:{site.port}/feed.xml")


async def test_allowed_origin_is_fetched(site: Site) -> None:
    dns, nat = FakeDNS({"public.test": ["8.8.8.8"]}), Nat({"8.8.8.8": ("127.0.0.1", site.port)})
    async with _client(_guarded(dns, nat)) as client:
        response = await client.get(f"http://public.test:{site.port}/feed.xml")
    assert response.text == "ok"
    assert nat.connected == ["8.8.8.8"]  # the checked IP literal, not the name


@pytest.mark.parametrize(
    "hop",
    [
        "http://127.0.0.1:{port}/secret",
        "http://localhost:{port}/secret",
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://169.254.169.254/latest/meta-data/",
        "http://intranet.test:{port}/secret",  # a name resolving to 10.0.0.5
    ],
)
async def test_redirect_to_a_private_address_is_refused_at_the_hop(site: Site, hop: str) -> None:
    site.redirect_to = hop.format(port=site.port)
    dns = FakeDNS({"public.test": ["8.8.8.8"], "intranet.test": ["10.0.0.5"],
                   "localhost": ["127.0.0.1"]})
    nat = Nat({"8.8.8.8": ("127.0.0.1", site.port)})
    async with _client(_guarded(dns, nat)) as client:
        with pytest.raises(PrivateAddressError) as info:
            await client.get(f"http://public.test:{site.port}/start")
    assert site.redirect_to in str(info.value)  # names the hop's URL
    assert site.paths == ["/start"]
    assert nat.connected == ["8.8.8.8"]


async def test_redirect_to_another_public_origin_is_followed(site: Site) -> None:
    site.redirect_to = f"http://other.test:{site.port}/landed"
    dns = FakeDNS({"public.test": ["8.8.8.8"], "other.test": ["1.1.1.1"]})
    nat = Nat({"8.8.8.8": ("127.0.0.1", site.port), "1.1.1.1": ("127.0.0.1", site.port)})
    async with _client(_guarded(dns, nat)) as client:
        response = await client.get(f"http://public.test:{site.port}/start")
    assert str(response.url) == site.redirect_to
    assert site.paths == ["/start", "/landed"]
    assert dns.queries == ["public.test", "other.test"]


@pytest.mark.parametrize("hop", ["http://user:pw@public.test:{port}/x", "ftp://public.test/x"])
async def test_redirect_to_a_forbidden_url_is_refused(site: Site, hop: str) -> None:
    site.redirect_to = hop.format(port=site.port)
    dns, nat = FakeDNS({"public.test": ["8.8.8.8"]}), Nat({"8.8.8.8": ("127.0.0.1", site.port)})
    async with _client(_guarded(dns, nat)) as client:
        with pytest.raises(UnsafeURLError, match="only http and https|user name"):
            await client.get(f"http://public.test:{site.port}/start")
    assert site.paths == ["/start"]


async def test_dns_rebinding_uses_the_checked_answer_only(site: Site) -> None:
    # First answer public, every later one private: the guard resolves once per
    # connection and connects to what it checked, so nothing resolves again.
    dns = FakeDNS({"rebind.test": [["8.8.8.8"], ["127.0.0.1"]]})
    nat = Nat({"8.8.8.8": ("127.0.0.1", site.port)})
    async with _client(_guarded(dns, nat)) as client:
        assert (await client.get(f"http://rebind.test:{site.port}/a")).text == "ok"
    assert dns.queries == ["rebind.test"]
    assert nat.connected == ["8.8.8.8"]
    async with _client(_guarded(dns, nat)) as client:  # a new connection sees the new answer
        with pytest.raises(PrivateAddressError, match="127.0.0.1"):
            await client.get(f"http://rebind.test:{site.port}/b")
    assert site.paths == ["/a"]


async def test_any_private_answer_refuses_the_host(site: Site) -> None:
    dns = FakeDNS({"mixed.test": ["8.8.8.8", "10.0.0.1"]})
    nat = Nat({"8.8.8.8": ("127.0.0.1", site.port)})
    async with _client(_guarded(dns, nat)) as client:
        with pytest.raises(PrivateAddressError, match="10.0.0.1"):
            await client.get(f"http://mixed.test:{site.port}/")
    assert nat.connected == []


async def test_next_checked_address_is_tried_when_one_does_not_answer(site: Site) -> None:
    dns = FakeDNS({"two.test": ["8.8.8.8", "1.1.1.1"]})
    nat = Nat({"8.8.8.8": ("127.0.0.1", free_port()), "1.1.1.1": ("127.0.0.1", site.port)})
    async with _client(_guarded(dns, nat)) as client:
        assert (await client.get(f"http://two.test:{site.port}/")).text == "ok"
    assert nat.connected == ["8.8.8.8", "1.1.1.1"]


async def test_unresolvable_name_is_a_connect_error() -> None:
    dns, nat = FakeDNS({}), Nat({})
    async with _client(_guarded(dns, nat)) as client:
        with pytest.raises(httpx.ConnectError, match="cannot resolve nowhere.test"):
            await client.get("http://nowhere.test/")


async def test_slow_resolution_is_a_connect_timeout() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["8.8.8.8"]

    transport = GuardedTransport(network_backend=GuardedBackend(Nat({}), resolve=slow))
    async with httpx.AsyncClient(transport=transport, timeout=0.1) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.get("http://slow.test/")


async def test_tls_uses_the_host_name_for_sni_and_verification() -> None:
    class Stream(httpcore.AsyncNetworkStream):
        async def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            seen["server_hostname"] = server_hostname
            raise httpcore.ConnectError("stop here")

        async def aclose(self) -> None:
            pass

    class Backend(httpcore.AsyncNetworkBackend):
        async def connect_tcp(self, host, port, timeout=None, local_address=None,
                              socket_options=None):
            seen["host"], seen["port"] = host, port
            return Stream()

    seen: dict[str, object] = {}
    dns = FakeDNS({"news.example.kr": ["211.234.100.1"]})
    transport = GuardedTransport(network_backend=GuardedBackend(Backend(), resolve=dns))
    async with _client(transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("https://news.example.kr/rss.xml")
    assert seen == {"host": "211.234.100.1", "port": 443, "server_hostname": "news.example.kr"}


async def test_environment_proxies_do_not_bypass_the_guard(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    # If httpx used this proxy (the local site, which answers anything), the request
    # would succeed through it instead of being refused.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{site.port}")
    async with httpx.AsyncClient(transport=guarded_transport(), trust_env=True) as client:
        with pytest.raises(PrivateAddressError):
            await client.get(f"http://127.0.0.1:{site.port}/feed.xml")
    assert site.paths == []


async def test_unix_sockets_are_refused() -> None:
    with pytest.raises(UnsafeURLError):
        await GuardedBackend().connect_unix_socket("/var/run/docker.sock")
