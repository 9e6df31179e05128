"""The crawler's poller against a local news site and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sokbo import streams
from sokbo.config import CrawlerSettings, Source
from sokbo.messages import PageFetched
from sokbo_crawler.fetch import Fetcher
from sokbo_crawler.poller import Poller
from sokbo_crawler.schedule import read_status
from tests.servers import NewsSite, free_port

pytestmark = pytest.mark.integration

PAGE = "<html><head><meta charset='utf-8'><title>{0}</title></head><body><p>{0}</p></body></html>"


@pytest.fixture
def site(tmp_path: Path):
    news = NewsSite(tmp_path)
    for n in range(3):
        news.add_page(f"a{n}.html", PAGE.format(f"기사 {n}").encode())
    news.write_feed("feed.xml", "테스트일보", [(f"a{n}.html", f"기사 {n}") for n in range(3)]
                    + [("missing.html", "없는 기사")])
    news.write_feed("euckr.xml", "한글", [("a0.html", "똠방각하")], encoding="euc-kr")
    news.start()
    yield news
    news.stop()


class Recorder:
    def __init__(self) -> None:
        self.pages: list[PageFetched] = []
        self.dead: list[tuple] = []

    async def publish(self, page: PageFetched) -> None:
        self.pages.append(page)

    async def dead_letter(self, *args: object) -> None:
        self.dead.append(args)


async def make_poller(client: aioredis.Redis, recorder: Recorder, http) -> Poller:
    fetcher = Fetcher(http, max_body_bytes=5 * 1024 * 1024, per_host_delay=0)
    return Poller(client, fetcher, recorder.publish, recorder.dead_letter, CrawlerSettings())


async def test_new_entries_are_fetched_once_across_restarts(site, redis_client) -> None:
    source = Source(id="test", url=f"{site.base}/feeds/feed.xml", interval=1)
    first = Recorder()
    async with Fetcher.client(5) as http:
        assert await (await make_poller(redis_client, first, http)).poll(source) == 3
    assert sorted(p.url for p in first.pages) == [f"{site.base}/news/a{n}.html" for n in range(3)]
    page = first.pages[0]
    assert page.source_title == "테스트일보" and page.status == 200 and b"<p>" in page.body
    assert page.entry_title and page.discovered_at <= page.fetched_at
    assert len(first.dead) == 1 and "HTTP 404" in first.dead[0][-1]  # the missing page
    again = Recorder()  # a new process: state comes from Redis only
    async with Fetcher.client(5) as http:
        assert await (await make_poller(redis_client, again, http)).poll(source) == 0
    assert again.pages == [] and again.dead == []
    assert await redis_client.zcard(streams.key("seen", "test")) == 4


async def test_euc_kr_feed_entries_are_read(site, redis_client) -> None:
    recorder = Recorder()
    source = Source(id="euckr", url=f"{site.base}/feeds/euckr.xml")
    async with Fetcher.client(5) as http:
        await (await make_poller(redis_client, recorder, http)).poll(source)
    assert [p.entry_title for p in recorder.pages] == ["똠방각하"]


async def test_a_failing_source_does_not_stop_the_others(site, redis_client) -> None:
    recorder = Recorder()
    good = Source(id="good", url=f"{site.base}/feeds/feed.xml", interval=1)
    down = Source(id="down", url=f"http://127.0.0.1:{free_port()}/rss.xml", interval=1)
    malformed_site = site.root / "feeds" / "bad.xml"
    malformed_site.write_bytes(b"<rss><channel><item><title>broken")
    bad = Source(id="bad", url=f"{site.base}/feeds/bad.xml", interval=1)
    async with Fetcher.client(5) as http:
        poller = await make_poller(redis_client, recorder, http)
        task = asyncio.create_task(poller.run([down, bad, good]))
        for _ in range(100):
            if len(recorder.pages) == 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.2)  # more polls of all three
        assert not task.done(), "the poll loop died"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(recorder.pages) == 3
    statuses = {s.source_id: s for s in await read_status(redis_client, [down, bad, good])}
    assert statuses["good"].last_success is not None and statuses["good"].items_seen == 3
    assert statuses["down"].consecutive_failures >= 1 and "ConnectError" in (
        statuses["down"].last_error or "")
    assert statuses["bad"].last_success is None and statuses["bad"].last_error


@pytest.fixture
def bomb_server():
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # 50 MB that packs to ~50 KB
    bodies = {"/bomb": (bomb, "gzip"), "/double": (gzip.compress(bomb), "gzip, gzip"),
              "/ok": (gzip.compress(PAGE.format("소버린 AI").encode()), "gzip")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body, coding = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Encoding", coding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_decompression_bombs_are_refused_without_inflating_them(bomb_server) -> None:
    import resource

    from sokbo.errors import PermanentError
    from sokbo_crawler.fetch import TooLargeError

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with Fetcher.client(5) as http:
        fetcher = Fetcher(http, max_body_bytes=5 * 1024 * 1024, per_host_delay=0)
        assert "소버린 AI".encode() in (await fetcher.get(f"{bomb_server}/ok")).body
        with pytest.raises(TooLargeError):
            await fetcher.get(f"{bomb_server}/bomb")
        with pytest.raises(PermanentError, match="only one of gzip, deflate or br"):
            await fetcher.get(f"{bomb_server}/double")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 30, f"peak memory grew by {grown_mb:.0f} MB"


async def test_a_bad_link_does_not_block_the_rest_of_the_feed(tmp_path, redis_client) -> None:
    site = NewsSite(tmp_path)
    site.add_page("good.html", PAGE.format("기사").encode())
    feed = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            "<item><title>bad</title><link>http://[::1/x</link></item>"
            "<item><title>script</title><link>javascript:alert(1)</link></item>"
            "<item><title>good</title><link>{{BASE}}/news/good.html</link></item>"
            "</channel></rss>")
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "feed.xml").write_text(feed, encoding="utf-8")
    site.start()
    try:
        recorder = Recorder()
        async with Fetcher.client(5) as http:
            poller = await make_poller(redis_client, recorder, http)
            await poller.poll(Source(id="mixed", url=f"{site.base}/feeds/feed.xml"))
            assert [p.url for p in recorder.pages] == [f"{site.base}/news/good.html"]
            assert len(recorder.dead) == 1  # the malformed link, dead-lettered once, then seen
            assert "Invalid IPv6 URL" in recorder.dead[0][-1]  # (javascript: is no article)
            assert await poller.poll(Source(id="mixed", url=f"{site.base}/feeds/feed.xml")) == 0
            assert len(recorder.dead) == 1
    finally:
        site.stop()


async def test_private_addresses_are_refused_unless_allowed(site, redis_client) -> None:
    from sokbo_crawler.fetch import PrivateAddressError

    async with Fetcher.client(5, allow_private_networks=False) as http:
        fetcher = Fetcher(http, max_body_bytes=1 << 20, per_host_delay=0)
        with pytest.raises(PrivateAddressError, match="allow_private_networks"):
            await fetcher.get(f"{site.base}/feeds/feed.xml")
    async with Fetcher.client(5, allow_private_networks=True) as http:
        fetcher = Fetcher(http, max_body_bytes=1 << 20, per_host_delay=0)
        assert (await fetcher.get(f"{site.base}/feeds/feed.xml")).status == 200


async def test_a_page_that_keeps_failing_is_dead_lettered_after_max_attempts(
        tmp_path, redis_client) -> None:
    site = NewsSite(tmp_path)
    site.write_feed("feed.xml", "t", [("a0.html", "down")])
    site.start()
    port = site.port
    site.stop()  # the feed is served once below; the page host is then down
    recorder = Recorder()
    fetcher_calls = 0

    class Flaky(Fetcher):
        async def get(self, url: str, **conditional: str | None):
            nonlocal fetcher_calls
            fetcher_calls += 1
            if url.endswith("feed.xml"):
                return FetchResult(url=url, final_url=url, status=200, content_type=None,
                                   charset=None, body=feed, elapsed=0.0)
            raise RetryableError(f"connection refused: {url}")

    from sokbo.errors import RetryableError
    from sokbo_crawler.fetch import FetchResult

    feed = (tmp_path / "feeds" / "feed.xml").read_bytes().replace(
        b"{{BASE}}", f"http://127.0.0.1:{port}".encode())
    async with Fetcher.client(5) as http:
        poller = Poller(redis_client, Flaky(http, max_body_bytes=1 << 20, per_host_delay=0),
                        recorder.publish, recorder.dead_letter, CrawlerSettings(),
                        max_attempts=3)
        source = Source(id="down", url=f"http://127.0.0.1:{port}/feeds/feed.xml")
        for _ in range(5):
            await poller.poll(source)
    assert recorder.pages == [] and len(recorder.dead) == 1
    assert "gave up after 3 attempts" in recorder.dead[0][-1]
    assert fetcher_calls == 5 + 3  # five feed polls, three page attempts, then no more
