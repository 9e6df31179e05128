"""HTTP fetching for the crawler: one place for limits, politeness and error classes.

httpx does the HTTP (https://www.python-httpx.org).  Bodies are read raw and
decompressed here, chunk by chunk with an output limit, so a response is refused
as soon as it passes ``max_body_bytes`` *after* decompression: a gzip bomb is an
error, not an out-of-memory (httpx's own decoding inflates a whole network chunk
first).  Only gzip and deflate are asked for (RFC 9110 §8.4), and a single coding
is accepted.  Each request has an overall deadline of twice the read timeout, so
a server trickling bytes cannot hold a host forever.  Requests to one host are
serialised in this process and spaced by ``per_host_delay`` seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass
from importlib.metadata import version
from urllib.parse import urlsplit

import httpx

from sokbo.errors import PermanentError, RetryableError

__all__ = ["FetchResult", "Fetcher", "TooLargeError", "user_agent"]


def user_agent() -> str:
    """Return sokbo's User-Agent, naming the product and version."""
    return f"sokbo/{version('sokbo')} (+https://github.com/sokbo/sokbo; news monitor)"


class TooLargeError(PermanentError):
    """The body exceeded the size cap."""


@dataclass(frozen=True)
class FetchResult:
    """A successful (2xx) response: final URL after redirects, headers that matter, body."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    charset: str | None
    body: bytes
    elapsed: float


class Fetcher:
    """GET URLs with a size cap, timeouts, redirects and per-host serialisation."""

    def __init__(self, client: httpx.AsyncClient, *, max_body_bytes: int,
                 per_host_delay: float, deadline: float = 30.0) -> None:
        self._client = client
        self._max = max_body_bytes
        self._delay = per_host_delay
        self._deadline = deadline
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last: dict[str, float] = {}

    @staticmethod
    def client(timeout: float, agent: str | None = None, *,
               allow_private_networks: bool = True) -> httpx.AsyncClient:
        """Return an httpx client with sokbo's User-Agent, redirects (≤5) and timeouts.

        With ``allow_private_networks=False`` every request, each redirect hop
        included, is refused when its host resolves to a private, loopback,
        link-local, multicast or reserved address (see :func:`refuse_private`).
        """
        hooks = {} if allow_private_networks else {"request": [refuse_private]}
        return httpx.AsyncClient(
            headers={"User-Agent": agent or user_agent(), "Accept-Language": "ko,en;q=0.5",
                     "Accept-Encoding": "gzip, deflate"},
            follow_redirects=True, max_redirects=5, event_hooks=hooks,
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)))

    async def get(self, url: str) -> FetchResult:
        """Fetch *url*.

        Raises:
            RetryableError: network failure, timeout, HTTP 429 or 5xx.
            PermanentError: any other non-2xx status, a non-HTTP URL.
            TooLargeError: the decompressed body exceeds the cap.
        """
        try:
            host = urlsplit(url).hostname or ""
        except ValueError as exc:
            raise PermanentError(f"invalid URL {url!r}: {exc}") from None
        async with self._locks[host]:
            wait = self._last.get(host, 0.0) + self._delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                async with asyncio.timeout(self._deadline):
                    return await self._get(url)
            except TimeoutError:
                raise RetryableError(f"{url} took longer than {self._deadline:g} s") from None
            finally:
                self._last[host] = time.monotonic()

    async def _get(self, url: str) -> FetchResult:
        started = time.monotonic()
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    retry_after = response.headers.get("retry-after")
                    raise RetryableError(
                        f"HTTP {response.status_code} from {url}",
                        retry_after=float(retry_after) if retry_after
                        and retry_after.isdigit() else None)
                if response.status_code >= 300:
                    raise PermanentError(f"HTTP {response.status_code} from {url}")
                body = await self._read_capped(response, url)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise PermanentError(f"cannot fetch {url}: {exc}") from None
        except httpx.TooManyRedirects:
            raise PermanentError(f"more than 5 redirects from {url}") from None
        except httpx.HTTPError as exc:
            raise RetryableError(f"{type(exc).__name__} fetching {url}: {exc}") from None
        content_type = response.headers.get("content-type")
        return FetchResult(url=url, final_url=str(response.url), status=response.status_code,
                           content_type=content_type, charset=response.charset_encoding,
                           body=body, elapsed=time.monotonic() - started)

    async def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max:
            raise TooLargeError(f"{url} declares {declared} bytes, over the "
                                f"{self._max}-byte cap")
        if response.is_stream_consumed:  # already in memory (httpx.MockTransport, tests)
            if len(response.content) > self._max:
                raise TooLargeError(f"{url} is over the {self._max}-byte cap")
            return response.content
        inflate = _decompressor(response.headers.get("content-encoding", ""), url)
        chunks, size = [], 0
        async for raw in response.aiter_raw():
            for chunk in inflate(raw, self._max - size + 1):
                size += len(chunk)
                if size > self._max:
                    raise TooLargeError(f"{url} is over the {self._max}-byte cap "
                                        "(after decompression)")
                chunks.append(chunk)
        return b"".join(chunks)


class PrivateAddressError(PermanentError):
    """The URL's host is on a private network and the config does not allow it."""


async def refuse_private(request: httpx.Request) -> None:
    """Raise :class:`PrivateAddressError` if *request*'s host resolves to a non-public address.

    Checked on every request httpx sends, so on every redirect hop. (A host whose
    DNS answer changes between this look-up and the connection is not caught.)
    """
    host = request.url.host
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
    for *_, address in infos:
        ip = ipaddress.ip_address(address[0])
        if not ip.is_global or ip.is_multicast:
            raise PrivateAddressError(
                f"{request.url} resolves to {ip}, a non-public address; set "
                "crawler.allow_private_networks: true only for intranet sources")


def _decompressor(coding: str, url: str):
    """Return ``inflate(data, limit)`` yielding decoded chunks, each at most *limit* long."""
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return lambda data, limit: [data]
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise PermanentError(f"{url} sent Content-Encoding {coding!r}; only one of gzip "
                             "or deflate is accepted")
    # 47: gzip or zlib header, auto-detected; deflate is zlib-wrapped (RFC 9110 §8.4.1.2)
    engine = zlib.decompressobj(47 if coding != "deflate" else 15)

    def inflate(data: bytes, limit: int) -> list[bytes]:
        out = []
        try:
            while data:
                piece = engine.decompress(data, max(1, limit))
                out.append(piece)
                limit -= len(piece)
                if limit <= 0:
                    break
                data = engine.unconsumed_tail
        except zlib.error as exc:
            raise PermanentError(f"{url}: corrupt {coding} body ({exc})") from None
        return out

    return inflate
