"""RobotsCache against a local HTTP server and a real Redis (bug case B02)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from sokbo.observability import REGISTRY
from sokbo_crawler.fetch import Fetcher, user_agent
from sokbo_crawler.robots import RobotsCache, http_fetch
from tests.http_stubs import StubServer
from tests.servers import free_port

pytestmark = pytest.mark.integration

PRIVATE = b"User-agent: *\nDisallow: /private/\n"


def _b02(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """robots.txt as a WAF serves it: 403 to Python-urllib, the real file to others."""
    if path != "/robots.txt":
        return 200, {}, b"<html></html>"
    if "Python-urllib" in headers.get("user-agent", ""):
        return 403, {}, b"Forbidden"
    return 200, {"Content-Type": "text/plain"}, PRIVATE


@pytest.fixture
def b02_server() -> Iterator[StubServer]:
    server = StubServer(_b02)
    server.start()
    yield server
    server.stop()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_b02_own_user_agent_once_per_host(b02_server, redis_client) -> None:
    base = b02_server.base
    async with Fetcher.client(5) as http:
        robots = RobotsCache(redis_client, http_fetch(http), user_agent())
        urls = [f"{base}/news/2024/{n}.html" for n in range(20)]
        answers = await asyncio.gather(*(robots.allowed(url) for url in urls))
        assert answers == [True] * 20
        assert not await robots.allowed(f"{base}/private/memo.html")
    assert b02_server.hits("/robots.txt") == 1
    assert b02_server.requests[0].user_agent == user_agent()
    ttl = await redis_client.pttl(f"sokbo:robots:{base}")
    assert 3_500_000 < ttl <= 3_600_000
    # the bug the fake reproduces: the stdlib asks with its own UA and is refused
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, f"{base}/robots.txt", timeout=5)
    assert refused.value.code == 403
    refused.value.close()


async def test_replicas_share_the_cached_file(b02_server, redis_url) -> None:
    base = b02_server.base
    clients = [aioredis.from_url(redis_url) for _ in range(3)]
    try:
        async with Fetcher.client(5) as http:
            replicas = [RobotsCache(c, http_fetch(http), user_agent()) for c in clients]
            # all three miss the cache at once: one fetches, the others wait for it
            answers = await asyncio.gather(*(r.allowed(f"{base}/news/{n}") for n, r in
                                             enumerate(replicas * 5)))
            assert answers == [True] * 15
            late = RobotsCache(clients[0], http_fetch(http), user_agent())
            assert not await late.allowed(f"{base}/private/x")
    finally:
        for client in clients:
            await client.aclose()
    assert b02_server.hits("/robots.txt") == 1


@pytest.mark.parametrize(("status", "allowed"), [
    (404, True), (410, True), (401, True), (403, True), (429, False), (500, False),
    (503, False),
])
async def test_status_of_robots_txt(status: int, allowed: bool, redis_client) -> None:
    server = StubServer(lambda path, headers: (status, {}, b"User-agent: *\nDisallow: /\n"))
    server.start()
    try:
        async with Fetcher.client(5) as http:
            robots = RobotsCache(redis_client, http_fetch(http), user_agent(), ttl=60,
                                 retry_after_error=7)
            assert await robots.allowed(f"{server.base}/news/1") is allowed
            assert await robots.allowed(f"{server.base}/news/2") is allowed
    finally:
        server.stop()
    assert server.hits("/robots.txt") == 1
    ttl = await redis_client.pttl(f"sokbo:robots:{server.base}")
    assert (6_000 < ttl <= 7_000) if not allowed else (50_000 < ttl <= 60_000)


async def test_server_error_is_retried_after_the_error_ttl(redis_client) -> None:
    answers = [(500, {}, b"oops"), (200, {}, PRIVATE)]
    server = StubServer(lambda path, headers: answers[0] if len(server.requests) == 1
                        else answers[1])
    server.start()
    try:
        async with Fetcher.client(5) as http:
            robots = RobotsCache(redis_client, http_fetch(http), user_agent(), ttl=60,
                                 retry_after_error=0.5)
            assert not await robots.allowed(f"{server.base}/news/1")
            assert not await robots.allowed(f"{server.base}/news/2")  # cached error
            assert server.hits("/robots.txt") == 1
            await asyncio.sleep(0.6)
            assert await robots.allowed(f"{server.base}/news/3")
            assert not await robots.allowed(f"{server.base}/private/3")
    finally:
        server.stop()
    assert server.hits("/robots.txt") == 2


async def test_network_error_disallows_for_now(redis_client) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    before = _sample("sokbo_robots_fetches_total", outcome="unreachable")
    async with Fetcher.client(2) as http:
        robots = RobotsCache(redis_client, http_fetch(http), user_agent(), retry_after_error=5)
        assert not await robots.allowed(f"{base}/news/1")
    assert _sample("sokbo_robots_fetches_total", outcome="unreachable") == before + 1
    assert 4_000 < await redis_client.pttl(f"sokbo:robots:{base}") <= 5_000


async def test_redirects_are_followed_up_to_five(redis_client) -> None:
    def answer(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path == "/robots.txt":
            return 301, {"Location": "/r1"}, b""
        if path.startswith("/r") and int(path[2:]) < 5:
            return 302, {"Location": f"/r{int(path[2:]) + 1}"}, b""
        if path == "/r5":
            return 200, {}, PRIVATE
        return 404, {}, b""

    server = StubServer(answer)
    server.start()
    try:
        async with Fetcher.client(5) as http:
            robots = RobotsCache(redis_client, http_fetch(http), user_agent())
            assert not await robots.allowed(f"{server.base}/private/1")  # 5 redirects
            assert server.hits("/r5") == 1
            endless = StubServer(lambda path, headers: (302, {"Location": path + "x"}, b""))
            endless.start()
            try:  # a sixth redirect: unavailable, so allowed (RFC 9309 §2.3.1.2)
                assert await robots.allowed(f"{endless.base}/private/1")
                assert len(endless.requests) == 6
            finally:
                endless.stop()
    finally:
        server.stop()


async def test_a_large_file_is_read_up_to_500_kib(redis_client) -> None:
    body = (b"User-agent: *\nDisallow: /early/\n" + b"# padding\n" * 60_000
            + b"Disallow: /late/\n")
    server = StubServer(lambda path, headers: (200, {}, body))
    server.start()
    try:
        async with Fetcher.client(5) as http:
            robots = RobotsCache(redis_client, http_fetch(http), user_agent())
            assert not await robots.allowed(f"{server.base}/early/1")
            assert await robots.allowed(f"{server.base}/late/1")
    finally:
        server.stop()
    assert len(await redis_client.get(f"sokbo:robots:{server.base}")) <= 500 * 1024 + 4


async def test_check_logs_and_counts_a_disallowed_url(b02_server, redis_client) -> None:
    before = _sample("sokbo_robots_disallowed_total", source_id="yna")
    url = f"{b02_server.base}/private/1"
    async with Fetcher.client(5) as http:
        robots = RobotsCache(redis_client, http_fetch(http), user_agent())
        with capture_logs() as logs:
            assert await robots.check(f"{b02_server.base}/news/1", source_id="yna")
            assert not await robots.check(url, source_id="yna")
    assert _sample("sokbo_robots_disallowed_total", source_id="yna") == before + 1
    disallowed = [e for e in logs if e["event"] == "robots_disallowed"]
    assert disallowed == [{"event": "robots_disallowed", "source_id": "yna", "url": url,
                           "log_level": "info"}]


async def test_crawl_delay_is_read_and_reported(redis_client) -> None:
    body = b"User-agent: *\nCrawl-delay: 10\n\nUser-agent: sokbo\nCrawl-delay: 3\n"
    server = StubServer(lambda path, headers: (200, {}, body))
    server.start()
    reported: list[tuple[str, float | None]] = []

    async def on_fetched(origin: str, delay: float | None) -> None:
        reported.append((origin, delay))

    try:
        async with Fetcher.client(5) as http:
            robots = RobotsCache(redis_client, http_fetch(http), user_agent(),
                                 on_fetched=on_fetched)
            assert await robots.crawl_delay(f"{server.base}/news/1") == 3.0
            assert await robots.allowed(f"{server.base}/news/1")
    finally:
        server.stop()
    assert reported == [(server.base, 3.0)]


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(redis_client) -> None:
    gate = asyncio.Event()

    async def slow(url: str) -> tuple[int, bytes]:
        await gate.wait()
        return 200, PRIVATE

    robots = RobotsCache(redis_client, slow, user_agent())
    first = asyncio.create_task(robots.allowed("https://x.example.kr/private/1"))
    second = asyncio.create_task(robots.allowed("https://x.example.kr/news/1"))
    await asyncio.sleep(0.05)
    first.cancel()
    gate.set()
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first
