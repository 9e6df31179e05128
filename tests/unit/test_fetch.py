"""Unit tests for sokbo_crawler.fetch over httpx.MockTransport (no network)."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Callable
from importlib.metadata import version

import httpx
import pytest

from sokbo.errors import PermanentError, RetryableError
from sokbo_crawler.fetch import Fetcher, FetchResult, TooLargeError, user_agent

Handler = Callable[[httpx.Request], httpx.Response]

CAP = 64 * 1024


def _client(handler: Handler) -> httpx.AsyncClient:
    """An AsyncClient configured like Fetcher.client, over a mock transport."""
    return httpx.AsyncClient(
        transport=httpx.MockTransport(handler),
        headers={"User-Agent": user_agent(), "Accept-Language": "ko,en;q=0.5"},
        follow_redirects=True, max_redirects=5, timeout=httpx.Timeout(5.0))


async def _get(handler: Handler, url: str = "https://news.example.kr/a/1", *,
               cap: int = CAP, delay: float = 0.0) -> FetchResult:
    async with _client(handler) as client:
        return await Fetcher(client, max_body_bytes=cap, per_host_delay=delay,
                             backoff=0.001).get(url)


# --- success -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [
        ("text/html; charset=utf-8", "utf-8"),
        ("text/html; charset=EUC-KR", "EUC-KR"),
        ("application/rss+xml;charset=\"ks_c_5601-1987\"", "ks_c_5601-1987"),
        ("text/html", None),
    ],
)
async def test_200_with_charset(content_type: str, charset: str | None) -> None:
    body = "<html><body>속보</body></html>".encode("cp949")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": content_type})

    result = await _get(handler)
    assert result.status == 200
    assert result.body == body
    assert result.content_type == content_type
    assert (result.charset or "").lower() == (charset or "").lower()
    assert result.url == result.final_url == "https://news.example.kr/a/1"
    assert result.elapsed >= 0


async def test_200_without_content_type() -> None:
    result = await _get(lambda request: httpx.Response(200, content=b"raw"))
    assert result.body == b"raw"
    assert result.content_type is None
    assert result.charset is None


@pytest.mark.parametrize("status", [200, 203])
async def test_2xx_statuses_succeed(status: int) -> None:
    result = await _get(lambda request: httpx.Response(status, content=b"ok"))
    assert result.status == status


async def test_empty_body() -> None:
    assert (await _get(lambda request: httpx.Response(204))).body == b""


async def test_user_agent_sent_and_names_sokbo_and_version() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"ok")

    await _get(handler)
    sent = seen[0].headers["User-Agent"]
    assert sent == user_agent()
    assert "sokbo" in sent.lower()
    assert version("sokbo") in sent
    assert sent.startswith(f"sokbo/{version('sokbo')}")


async def test_fetcher_client_configuration() -> None:
    client = Fetcher.client(15.0)
    try:
        assert client.headers["User-Agent"] == user_agent()
        assert client.follow_redirects is True
        assert client.max_redirects == 5
        assert client.timeout.read == 15.0
        assert client.timeout.connect == 5.0
    finally:
        await client.aclose()


async def test_fetcher_client_short_timeout_caps_connect() -> None:
    client = Fetcher.client(2.0)
    try:
        assert client.timeout.connect == 2.0
    finally:
        await client.aclose()


@pytest.mark.parametrize("hops", [1, 5])
async def test_redirects_followed_up_to_five(hops: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        step = int(request.url.params.get("step", "0"))
        if step < hops:
            return httpx.Response(302, headers={"Location": f"/r?step={step + 1}"})
        return httpx.Response(200, content=b"landed")

    result = await _get(handler, "https://news.example.kr/r?step=0")
    assert result.body == b"landed"
    assert result.url == "https://news.example.kr/r?step=0"
    assert result.final_url == f"https://news.example.kr/r?step={hops}"


# --- errors by status --------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
async def test_client_errors_are_permanent(status: int) -> None:
    with pytest.raises(PermanentError) as info:
        await _get(lambda request: httpx.Response(status))
    assert str(status) in str(info.value)
    assert not isinstance(info.value, RetryableError)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retryable(status: int) -> None:
    with pytest.raises(RetryableError) as info:
        await _get(lambda request: httpx.Response(status))
    assert str(status) in str(info.value)
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    ("status", "header", "retry_after"),
    [
        (429, "7", 7),
        (429, "120", 120),
        (503, "30", 30),
        (429, None, 60.0),  # no Retry-After: the host waits the default backoff
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # an HTTP-date in the past
        (503, "soon", 60.0),  # unreadable: the default
    ],
)
async def test_retry_after(status: int, header: str | None, retry_after: float | None) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    with pytest.raises(RetryableError) as info:
        await _get(lambda request: httpx.Response(status, headers=headers))
    assert info.value.retry_after == retry_after


async def test_redirect_without_location_is_permanent() -> None:
    with pytest.raises(PermanentError):
        await _get(lambda request: httpx.Response(302))


async def test_more_than_five_redirects_is_permanent() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(302, headers={"Location": f"/loop/{calls}"})

    with pytest.raises(PermanentError) as info:
        await _get(handler, "https://news.example.kr/loop/0")
    assert not isinstance(info.value, RetryableError)
    assert calls == 6  # the first request and five redirects


# --- network errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError,
     httpx.ReadError],
)
async def test_network_errors_are_retryable(error: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("boom", request=request)

    with pytest.raises(RetryableError) as info:
        await _get(handler)
    assert error.__name__ in str(info.value)


@pytest.mark.parametrize("url", ["ftp://news.example.kr/a", "file:///etc/passwd"])
async def test_non_http_url_is_permanent(url: str) -> None:
    async with httpx.AsyncClient(headers={"User-Agent": user_agent()}) as client:
        with pytest.raises(PermanentError):
            await Fetcher(client, max_body_bytes=CAP, per_host_delay=0).get(url)


# --- size cap ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [CAP - 1, CAP])
async def test_body_at_or_under_the_cap(size: int) -> None:
    result = await _get(lambda request: httpx.Response(200, content=b"x" * size))
    assert len(result.body) == size


async def test_body_over_cap_with_content_length() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * (CAP + 1))

    with pytest.raises(TooLargeError) as info:
        await _get(handler)
    assert isinstance(info.value, PermanentError)


async def test_declared_content_length_over_cap_refused_before_reading() -> None:
    read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(10):
            read += 1
            yield b"x" * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks(),
                              headers={"Content-Length": str(10 * CAP)})

    with pytest.raises(TooLargeError):
        await _get(handler)
    assert read <= 1


async def test_streamed_body_over_cap_without_content_length() -> None:
    produced = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(1000):
            produced += 1
            yield b"y" * 4096

    def handler(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, content=chunks())
        assert "content-length" not in response.headers
        return response

    with pytest.raises(TooLargeError):
        await _get(handler)
    assert produced < 1000  # stopped reading soon after the cap, not at the end


async def test_gzip_bomb_refused_after_decompression() -> None:
    bomb = gzip.compress(b"\0" * (6 * 1024 * 1024))
    assert len(bomb) < 64 * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bomb,
                              headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})

    with pytest.raises(TooLargeError):
        await _get(handler, cap=5 * 1024 * 1024)


async def test_gzip_under_cap_is_decompressed() -> None:
    page = "<html>한국어 본문</html>".encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=gzip.compress(page),
                              headers={"Content-Encoding": "gzip"})

    assert (await _get(handler)).body == page


# --- per-host politeness -----------------------------------------------------------------


def _recording(stamps: list[tuple[str, float]]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        stamps.append((request.url.host, time.monotonic()))
        return httpx.Response(200, content=b"ok")

    return handler


@pytest.mark.parametrize("concurrent", [False, True])
async def test_same_host_requests_are_spaced(concurrent: bool) -> None:
    stamps: list[tuple[str, float]] = []
    async with _client(_recording(stamps)) as client:
        fetcher = Fetcher(client, max_body_bytes=CAP, per_host_delay=0.2)
        urls = ["https://a.example.kr/1", "https://a.example.kr/2"]
        if concurrent:
            await asyncio.gather(*(fetcher.get(u) for u in urls))
        else:
            for url in urls:
                await fetcher.get(url)
    assert len(stamps) == 2
    assert stamps[1][1] - stamps[0][1] >= 0.2 - 0.005


async def test_different_hosts_are_not_delayed() -> None:
    stamps: list[tuple[str, float]] = []
    async with _client(_recording(stamps)) as client:
        fetcher = Fetcher(client, max_body_bytes=CAP, per_host_delay=0.2)
        started = time.monotonic()
        await fetcher.get("https://a.example.kr/1")
        await fetcher.get("https://b.example.kr/1")
        await asyncio.gather(fetcher.get("https://c.example.kr/1"),
                             fetcher.get("https://d.example.kr/1"))
        assert time.monotonic() - started < 0.15
    assert {host for host, _ in stamps} == {"a.example.kr", "b.example.kr", "c.example.kr",
                                            "d.example.kr"}


async def test_delay_applies_after_a_failure_too() -> None:
    stamps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        stamps.append(time.monotonic())
        return httpx.Response(503)

    async with _client(handler) as client:
        fetcher = Fetcher(client, max_body_bytes=CAP, per_host_delay=0.2)
        for _ in range(2):
            with pytest.raises(RetryableError):
                await fetcher.get("https://a.example.kr/1")
    assert stamps[1] - stamps[0] >= 0.2 - 0.005


async def test_zero_delay_does_not_wait() -> None:
    stamps: list[tuple[str, float]] = []
    async with _client(_recording(stamps)) as client:
        fetcher = Fetcher(client, max_body_bytes=CAP, per_host_delay=0.0)
        started = time.monotonic()
        for i in range(5):
            await fetcher.get(f"https://a.example.kr/{i}")
        assert time.monotonic() - started < 0.15


# --- retries, conditional GET, brotli, permanent redirects -------------------------------


async def test_a_server_error_is_retried_with_backoff_then_succeeds() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(502) if len(calls) < 3 else httpx.Response(200, content=b"ok")

    result = await _get(handler)
    assert (result.status, result.body, len(calls)) == (200, b"ok", 3)


async def test_retries_stop_after_three_attempts() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    with pytest.raises(RetryableError):
        await _get(handler)
    assert len(calls) == 3


async def test_a_429_with_retry_after_is_not_retried_here_but_handed_to_the_caller() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, headers={"Retry-After": "120"})

    with pytest.raises(RetryableError) as info:
        await _get(handler)
    assert (len(calls), info.value.retry_after) == (1, 120)


def test_retry_after_accepts_an_http_date_in_the_future() -> None:
    from sokbo_crawler.fetch import parse_retry_after

    now = 1709614800.0  # Tue, 05 Mar 2024 05:00:00 GMT
    assert parse_retry_after("Tue, 05 Mar 2024 05:02:00 GMT", now) == 120.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("", now) is None


async def test_conditional_get_sends_validators_and_returns_304_with_no_body() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        return httpx.Response(304, headers={"ETag": '"v2"'})

    async with _client(handler) as client:
        result = await Fetcher(client, max_body_bytes=CAP, per_host_delay=0).get(
            "https://news.example.kr/rss", etag='"v1"',
            last_modified="Tue, 05 Mar 2024 05:00:00 GMT")
    assert result.not_modified and result.body == b""
    assert seen["if-none-match"] == '"v1"'
    assert seen["if-modified-since"] == "Tue, 05 Mar 2024 05:00:00 GMT"


async def test_validators_of_a_200_are_returned() -> None:
    result = await _get(lambda request: httpx.Response(
        200, content=b"x", headers={"ETag": '"v1"',
                                    "Last-Modified": "Tue, 05 Mar 2024 05:00:00 GMT"}))
    assert (result.etag, result.last_modified) == ('"v1"', "Tue, 05 Mar 2024 05:00:00 GMT")


async def test_brotli_bodies_are_decoded_and_brotli_bombs_refused() -> None:
    import brotli

    def serve(body: bytes):
        return lambda request: httpx.Response(
            200, content=body, headers={"Content-Encoding": "br", "Content-Type": "text/html"})

    text = "소버린AI 예산".encode() * 100
    assert (await _get(serve(brotli.compress(text)))).body == text
    bomb = brotli.compress(b"\0" * (6 * 1024 * 1024))
    assert len(bomb) < 1024
    with pytest.raises(TooLargeError):
        await _get(serve(bomb), cap=5 * 1024 * 1024)


async def test_a_permanent_redirect_reports_the_new_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old.xml":
            return httpx.Response(301, headers={"Location": "https://news.example.kr/new.xml"})
        return httpx.Response(200, content=b"<rss/>")

    result = await _get(handler, "https://news.example.kr/old.xml")
    assert result.moved_to == "https://news.example.kr/new.xml"
    temporary = await _get(lambda r: httpx.Response(302, headers={"Location": "/x"})
                           if r.url.path == "/a/1" else httpx.Response(200, content=b"x"))
    assert temporary.moved_to is None
