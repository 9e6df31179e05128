"""The poller with the Redis-shared host gate and robots.txt cache (B02, B05).

B05 of shared/cases/BUG-CASES.md: a 429 pauses the whole host, on every replica; the
other hosts go on; no link is dropped. B02: robots.txt is fetched once, with sokbo's
own User-Agent, and honoured.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate

import pytest

from sokbo import streams
from sokbo.config import CrawlerSettings, Source
from sokbo.messages import PageFetched
from sokbo_crawler.fetch import Fetcher, user_agent
from sokbo_crawler.hosts import HostGate
from sokbo_crawler.poller import Poller
from sokbo_crawler.robots import RobotsCache, http_fetch
from tests.http_stubs import StubServer

pytestmark = pytest.mark.integration

RSS = ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
       "{items}</channel></rss>")
ITEM = "<item><title>{0}</title><link>{0}</link></item>"
PAGE = b"<html><head><meta charset='utf-8'><title>t</title></head><body><p>x</p></body></html>"


class Recorder:
    def __init__(self) -> None:
        self.pages: list[PageFetched] = []

    async def publish(self, page: PageFetched) -> None:
        self.pages.append(page)

    async def dead_letter(self, *args: object) -> None:
        raise AssertionError(f"nothing may be dead-lettered here: {args}")


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_a_429_pauses_the_whole_host_and_no_link_is_dropped(redis_client, form) -> None:
    """B05: five links on a throttling host, three on another."""
    throttled_once: list[float] = []

    def news(path: str, headers: dict[str, str]):
        if path == "/a/1" and not throttled_once:
            throttled_once.append(time.time())
            # an HTTP-date has whole seconds: 3 s ahead is at least 2 s of pause
            value = "2" if form == "seconds" else formatdate(time.time() + 3, usegmt=True)
            return 429, {"Retry-After": value}, b"slow down"
        return 200, {"Content-Type": "text/html"}, PAGE

    other = StubServer(lambda path, headers: (200, {"Content-Type": "text/html"}, PAGE))
    server = StubServer(news)
    base, other_base = server.start(), other.start()
    links = [f"{base}/a/{n}" for n in range(1, 6)] + [f"{other_base}/b/{n}" for n in range(3)]
    feed = StubServer(lambda path, headers: (200, {}, RSS.format(
        items="".join(ITEM.format(link) for link in links)).encode()))
    source = Source(id="mixed", url=f"{feed.start()}/rss.xml")
    recorder = Recorder()
    gate = HostGate(redis_client, per_host_delay=0)
    async with Fetcher.client(5) as http:
        poller = Poller(redis_client, Fetcher(http, max_body_bytes=1 << 20, gate=gate),
                        recorder.publish, recorder.dead_letter, CrawlerSettings(),
                        throttles=gate)
        await poller.poll(source)
        assert sorted(p.url for p in recorder.pages) == sorted(links[5:])  # other host went on
        left = await gate.throttled_for(f"{base}/a/2")
        assert 0.5 < left <= 3.0
        await poller.poll(source)  # still paused: not one request to the host
        assert [seen.path for seen in server.requests] == ["/a/1"]
        await asyncio.sleep(await gate.throttled_for(f"{base}/a/2") + 0.1)
        await poller.poll(source)
    assert sorted(p.url for p in recorder.pages) == sorted(links)  # all five kept
    assert throttled_once[0] + 1.9 <= time.time()  # the host was left alone meanwhile
    attempts = await redis_client.hgetall(streams.key("attempts", "mixed"))
    assert attempts == {}  # fetched in the end: no attempt left on record


async def test_a_second_replica_sees_the_pause(redis_url) -> None:
    import redis.asyncio as aioredis

    first, second = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        await HostGate(first).throttle("https://news.example.kr/a/1", "120")
        left = await HostGate(second).throttled_for("https://news.example.kr/other")
        assert 119 <= left <= 120
        assert await HostGate(second).throttled_for("https://other.example.kr/x") == 0
    finally:
        await first.aclose()
        await second.aclose()


async def test_robots_txt_is_fetched_once_with_our_agent_and_obeyed(redis_client) -> None:
    """B02 through the poller: a WAF answers 403 to Python-urllib, rules to sokbo."""
    def site(path: str, headers: dict[str, str]):
        if path == "/robots.txt":
            if "Python-urllib" in headers.get("user-agent", ""):
                return 403, {}, b"forbidden"
            return 200, {"Content-Type": "text/plain"}, (
                b"User-agent: *\nDisallow: /private/\nCrawl-delay: 0\n")
        if path == "/rss.xml":
            items = "".join(ITEM.format(f"{base}/news/{n}") for n in range(20))
            return 200, {}, RSS.format(items=items + ITEM.format(f"{base}/private/x")).encode()
        return 200, {"Content-Type": "text/html"}, PAGE

    server = StubServer(site)
    base = server.start()
    recorder = Recorder()
    gate = HostGate(redis_client, per_host_delay=0)
    async with Fetcher.client(5) as http:
        robots = RobotsCache(redis_client, http_fetch(http), user_agent(),
                             on_fetched=gate.set_crawl_delay)
        poller = Poller(redis_client, Fetcher(http, max_body_bytes=1 << 20, gate=gate),
                        recorder.publish, recorder.dead_letter, CrawlerSettings(),
                        robots=robots, throttles=gate)
        assert await poller.poll(Source(id="polite", url=f"{base}/rss.xml")) == 20
    assert server.hits("/robots.txt") == 1
    assert all(seen.user_agent.startswith("sokbo/") for seen in server.requests)
    assert server.hits("/private/x") == 0
    assert await redis_client.zscore(streams.key("seen", "polite"), f"{base}/private/x")
