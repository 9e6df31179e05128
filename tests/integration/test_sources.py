"""Source kinds, conditional GET and the shared schedule, against local servers and real Redis.

B03 (conditional GET a server half ignores) and B04 (gzipped sitemaps the HTTP layer
already inflated) of shared/cases/BUG-CASES.md are tests here.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis.asyncio as aioredis

from sokbo import streams
from sokbo.config import CrawlerSettings, Source
from sokbo.messages import PageFetched
from sokbo_crawler.fetch import Fetcher
from sokbo_crawler.poller import Poller
from sokbo_crawler.schedule import SCHEDULE, Scheduler, read_status, render_status
from tests.http_stubs import StubServer

pytestmark = pytest.mark.integration

ARTICLE = ("<html><head><meta charset='utf-8'><title>{0}</title></head>"
           "<body><article><p>{0} 소버린AI 정책을 발표했다.</p></article></body></html>")
RSS = ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
       "{items}</channel></rss>")
ITEM = "<item><title>{0}</title><link>{1}</link><guid>{0}</guid></item>"
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
NEWS_NS = 'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"'


class Recorder:
    def __init__(self) -> None:
        self.pages: list[PageFetched] = []
        self.dead: list[tuple] = []

    async def publish(self, page: PageFetched) -> None:
        self.pages.append(page)

    async def dead_letter(self, *args: object) -> None:
        self.dead.append(args)


def poller(redis: aioredis.Redis, recorder: Recorder, http, **settings) -> Poller:
    fetcher = Fetcher(http, max_body_bytes=1 << 20, per_host_delay=0, backoff=0.001)
    return Poller(redis, fetcher, recorder.publish, recorder.dead_letter,
                  CrawlerSettings(**settings))


def article(path: str) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/html; charset=utf-8"}, ARTICLE.format(path).encode()


# --- B03: conditional GET ------------------------------------------------------------------


async def test_conditional_get_with_a_server_that_ignores_validators(redis_client) -> None:
    """B03: 200 (v1), 200 ignoring validators with the same body (v2), then 304."""
    feed_requests: list[dict[str, str]] = []
    body = RSS.format(items="".join(ITEM.format(g, f"/a/{g}") for g in ("a1", "a2"))).encode()

    def answer(path: str, headers: dict[str, str]):
        if path != "/rss.xml":
            return article(path)
        feed_requests.append(headers)
        lm = {"Last-Modified": "Tue, 05 Mar 2024 05:00:00 GMT",
              "Content-Type": "application/rss+xml"}
        if len(feed_requests) == 1:
            return 200, {"ETag": '"v1"', **lm}, body
        if len(feed_requests) == 2:
            return 200, {"ETag": '"v2"', **lm}, body  # ignores If-None-Match
        if headers.get("if-none-match") == '"v2"':
            return 304, {"ETag": '"v2"'}, b""
        return 200, {"ETag": '"v3"', **lm}, body

    server = StubServer(answer)
    base = server.start()
    source = Source(id="cg", url=f"{base}/rss.xml")
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        p = poller(redis_client, recorder, http)
        assert await p.poll(source) == 2
        assert await p.poll(source) == 0  # same body: no parse, nothing new
        assert await p.poll(source) == 0  # 304
    assert len(recorder.pages) == 2
    assert "if-none-match" not in feed_requests[0]
    assert feed_requests[1]["if-none-match"] == '"v1"'
    assert feed_requests[1]["if-modified-since"] == "Tue, 05 Mar 2024 05:00:00 GMT"
    assert feed_requests[2]["if-none-match"] == '"v2"'  # the new ETag was stored
    assert server.hits("/a/a1") == 1 and server.hits("/a/a2") == 1


async def test_a_permanently_moved_feed_is_polled_at_its_new_url(redis_client) -> None:
    body = RSS.format(items=ITEM.format("m1", "/a/m1")).encode()

    def answer(path: str, headers: dict[str, str]):
        if path == "/old.xml":
            return 301, {"Location": "/new.xml"}, b""
        if path == "/new.xml":
            return 200, {"Content-Type": "application/rss+xml"}, body
        return article(path)

    server = StubServer(answer)
    base = server.start()
    source = Source(id="moved", url=f"{base}/old.xml")
    async with Fetcher.client(5) as http:
        p = poller(redis_client, Recorder(), http)
        assert await p.poll(source) == 1
        await p.poll(source)
    assert server.hits("/old.xml") == 1 and server.hits("/new.xml") == 2


async def test_validators_are_not_stored_while_links_wait_for_a_later_poll(
        redis_client) -> None:
    """Links beyond max_entries_per_poll must not hide behind a 304 next time."""
    body = RSS.format(items="".join(ITEM.format(f"x{n}", f"/a/x{n}") for n in range(5)))

    def answer(path: str, headers: dict[str, str]):
        if path == "/rss.xml":
            if headers.get("if-none-match") == '"e"':
                return 304, {}, b""
            return 200, {"ETag": '"e"', "Content-Type": "application/rss+xml"}, body.encode()
        return article(path)

    server = StubServer(answer)
    source = Source(id="capped", url=f"{server.start()}/rss.xml")
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        p = poller(redis_client, recorder, http, max_entries_per_poll=2)
        assert [await p.poll(source) for _ in range(4)] == [2, 2, 1, 0]
    assert sorted(page.url.rsplit("/", 1)[1] for page in recorder.pages) == [
        f"x{n}" for n in range(5)]


# --- B04: sitemaps ---------------------------------------------------------------------------


def urlset(*paths: str, base: str) -> bytes:
    now = datetime.now(UTC).isoformat()
    urls = "".join(f"<url><loc>{base}{p}</loc><news:news><news:publication_date>{now}"
                   f"</news:publication_date><news:title>제목 {p}</news:title></news:news></url>"
                   for p in paths)
    return f"<?xml version='1.0' encoding='UTF-8'?><urlset {NS} {NEWS_NS}>{urls}</urlset>".encode()


async def test_gzipped_sitemaps_are_read_whatever_the_http_layer_did(redis_client) -> None:
    """B04: (a) gzip already inflated by HTTP, (b) plain, (c) real gzip, (d) truncated."""
    state: dict[str, bytes] = {}

    def answer(path: str, headers: dict[str, str]):
        plain = state["urlset"]
        if path == "/sitemap.xml":
            children = "".join(f"<sitemap><loc>{base}/news-{n}.xml.gz</loc></sitemap>"
                               for n in (1, 2, 3, 4))
            return 200, {"Content-Type": "application/xml"}, (
                f"<?xml version='1.0'?><sitemapindex {NS}>{children}</sitemapindex>".encode())
        if path == "/news-1.xml.gz":  # (a) Content-Encoding: the client sees plain XML
            return 200, {"Content-Encoding": "gzip", "Content-Type": "application/xml"}, \
                gzip.compress(plain)
        if path == "/news-2.xml.gz":  # (b) plain XML despite the name
            return 200, {"Content-Type": "application/xml"}, plain
        if path == "/news-3.xml.gz":  # (c) a real gzip file
            return 200, {"Content-Type": "application/gzip"}, gzip.compress(plain)
        if path == "/news-4.xml.gz":  # (d) truncated gzip stream
            return 200, {"Content-Type": "application/gzip"}, gzip.compress(plain)[:60]
        return article(path)

    server = StubServer(answer)
    base = server.start()
    state["urlset"] = urlset("/news/1", "/news/2", base=base)
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        p = poller(redis_client, recorder, http)
        assert await p.poll(Source(id="maps", url=f"{base}/sitemap.xml", kind="sitemap")) == 2
    assert sorted(page.url for page in recorder.pages) == [f"{base}/news/1", f"{base}/news/2"]
    assert recorder.pages[0].entry_title.startswith("제목 ")
    assert recorder.pages[0].entry_published is not None
    for n in (1, 2, 3, 4):
        assert server.hits(f"/news-{n}.xml.gz") == 1  # (d) failed, the rest went on


async def test_old_sitemap_entries_are_not_fetched(redis_client) -> None:
    old = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()

    def answer(path: str, headers: dict[str, str]):
        if path == "/sitemap.xml":
            return 200, {}, (f"<urlset {NS}><url><loc>{base}/old</loc><lastmod>{old}</lastmod>"
                             f"</url><url><loc>{base}/new</loc><lastmod>"
                             f"{datetime.now(UTC).isoformat()}</lastmod></url></urlset>").encode()
        return article(path)

    server = StubServer(answer)
    base = server.start()
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        await poller(redis_client, recorder, http).poll(
            Source(id="age", url=f"{base}/sitemap.xml", kind="sitemap"))
    assert [page.url for page in recorder.pages] == [f"{base}/new"]


# --- listing pages ---------------------------------------------------------------------------


async def test_a_listing_page_yields_the_links_that_match_its_pattern(redis_client) -> None:
    listing = ("<html><head><meta charset='euc-kr'></head><body><nav><a href='/'>홈</a>"
               "<a href='/news/articleList.html?sc=S1'>경제</a></nav><ul>"
               "<li><a href='/news/articleView.html?idxno=101'>똠방각하 기사</a></li>"
               "<li><a href='/news/articleView.html?idxno=102#comments'>둘째</a></li>"
               "<li><a href='https://other.example/news/articleView.html?idxno=9'>외부</a></li>"
               "<li><a href='/news/articleView.html?idxno=101'>중복</a></li></ul></body></html>")

    def answer(path: str, headers: dict[str, str]):
        if path.startswith("/news/articleList.html"):
            return 200, {"Content-Type": "text/html"}, listing.encode("cp949")
        return article(path)

    server = StubServer(answer)
    base = server.start()
    recorder = Recorder()
    source = Source(id="fetv-list", url=f"{base}/news/articleList.html?view_type=sm",
                    kind="page", link_pattern=r"^http://127\.0\.0\.1:\d+/news/articleView\.html")
    async with Fetcher.client(5) as http:
        assert await poller(redis_client, recorder, http).poll(source) == 2
    assert [page.url for page in recorder.pages] == [
        f"{base}/news/articleView.html?idxno=101", f"{base}/news/articleView.html?idxno=102"]
    assert recorder.pages[0].entry_title is None  # anchor texts are not headlines


# --- the shared schedule -----------------------------------------------------------------------


async def test_two_replicas_never_claim_one_source_and_a_dead_lease_comes_back(
        redis_url) -> None:
    first, second = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        a, b = Scheduler(first, lease=1.0), Scheduler(second, lease=1.0)
        await a.sync([Source(id="only", url="https://news.example.kr/rss")])
        claims = await asyncio.gather(a.claim(), b.claim(), a.claim(), b.claim())
        assert sorted(c for c in claims if c) == ["only"]
        await asyncio.sleep(1.1)  # the claiming replica "died": its lease ran out
        assert await b.claim() == "only"
    finally:
        await first.aclose()
        await second.aclose()


async def test_sync_adds_new_sources_due_now_and_drops_removed_ones(redis_client) -> None:
    scheduler = Scheduler(redis_client)
    keep = Source(id="keep", url="https://a.example.kr/rss")
    await scheduler.sync([keep, Source(id="gone", url="https://b.example.kr/rss")])
    await redis_client.zadd(SCHEDULE, {"keep": time.time() + 500})
    await scheduler.sync([keep, Source(id="off", url="https://c.example.kr/rss", enabled=False),
                          Source(id="new", url="https://d.example.kr/rss")])
    members = dict(await redis_client.zrange(SCHEDULE, 0, -1, withscores=True))
    assert set(members) == {b"keep", b"new"}
    assert members[b"keep"] > time.time() + 400  # kept its due time
    assert members[b"new"] <= time.time()


async def test_the_period_doubles_while_nothing_is_new_and_resets_on_news(redis_client) -> None:
    scheduler = Scheduler(redis_client)
    source = Source(id="adaptive", url="https://a.example.kr/rss", interval=60,
                    max_interval=300)
    await scheduler.sync([source])
    delays = [await scheduler.done(source, new_items=n) for n in (0, 0, 0, 0, 3, 0)]
    assert delays == [120, 240, 300, 300, 60, 120]
    assert await scheduler.done(source, new_items=None, wait=900) == 900  # Retry-After


async def test_the_poll_loop_records_status_for_sokbo_sources(redis_client) -> None:
    body = RSS.format(items=ITEM.format("s1", "/a/s1")).encode()
    server = StubServer(lambda path, headers: (200, {}, body) if path == "/rss.xml"
                        else article(path))
    base = server.start()
    good = Source(id="good", url=f"{base}/rss.xml", interval=1)
    broken = Source(id="broken", url=f"{base}/missing.xml", interval=1)
    server.answer = lambda path, headers: ((200, {}, body) if path == "/rss.xml" else
                                           (404, {}, b"") if path == "/missing.xml"
                                           else article(path))
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        p = poller(redis_client, recorder, http, concurrency=2)
        task = asyncio.create_task(p.run([good, broken]))
        for _ in range(100):
            statuses = {s.source_id: s for s in await read_status(redis_client, [good, broken])}
            if statuses["good"].last_success and statuses["broken"].last_error:
                break
            await asyncio.sleep(0.05)
        task.cancel()
    assert statuses["good"].items_seen == 1 and statuses["good"].consecutive_failures == 0
    assert statuses["good"].next_poll is not None
    assert "HTTP 404" in statuses["broken"].last_error
    table = render_status(list(statuses.values()), time.time())
    assert "good" in table.splitlines()[1] and "HTTP 404" in table
    assert await redis_client.exists(streams.key("validators", "good"))


def test_sokbo_sources_prints_each_source(redis_url, tmp_path, capsys) -> None:
    import redis

    from sokbo.cli import main
    from sokbo_crawler.schedule import status_key

    config = tmp_path / "sokbo.yaml"
    config.write_text(f"""
redis_url: {redis_url}
sources:
  - {{id: fetv, url: "https://www.fetv.co.kr/rss/allArticle.xml"}}
  - {{id: fetv-list, url: "https://www.fetv.co.kr/news/articleList.html", kind: page,
      link_pattern: "articleView", enabled: false}}
rules: [{{id: r, query: 소버린AI, channels: [c]}}]
channels: [{{id: c, kind: console}}]
""", encoding="utf-8")
    client = redis.Redis.from_url(redis_url)
    client.hset(status_key("fetv"), mapping={"last_success": time.time() - 30,
                                             "items_seen": 7, "period": 60})
    client.zadd(SCHEDULE, {"fetv": time.time() + 30})
    client.close()
    assert main(["sources", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["SOURCE", "KIND", "LAST"]
    assert lines[1].split()[0:2] == ["fetv", "feed"] and " 7 " in lines[1]
    assert "in 3" in lines[1]  # next poll in ~30 s
    assert "disabled" in lines[2]
    assert main(["sources", "--config", str(config), "--json"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert '"items_seen":7' in first


async def test_a_reloaded_config_adds_and_removes_sources_while_running(redis_client) -> None:
    feeds = {"/one.xml": RSS.format(items=ITEM.format("o1", "/a/o1")).encode(),
             "/two.xml": RSS.format(items=ITEM.format("t1", "/a/t1")).encode()}
    server = StubServer(lambda path, headers: (200, {}, feeds[path]) if path in feeds
                        else article(path))
    base = server.start()
    one = Source(id="one", url=f"{base}/one.xml", interval=1)
    two = Source(id="two", url=f"{base}/two.xml", interval=1)
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        p = poller(redis_client, recorder, http)
        scheduler = Scheduler(redis_client)
        task = asyncio.create_task(p.run([one], scheduler))
        for _ in range(100):
            if recorder.pages:
                break
            await asyncio.sleep(0.05)
        await p.update([two], scheduler)  # what the crawler does on a config reload
        for _ in range(100):
            if len(recorder.pages) == 2:
                break
            await asyncio.sleep(0.05)
        polls_of_one = server.hits("/one.xml")
        await asyncio.sleep(1.5)
        task.cancel()
    assert [page.source_id for page in recorder.pages] == ["one", "two"]
    assert server.hits("/one.xml") == polls_of_one  # removed: no longer polled
    assert await redis_client.zrange(SCHEDULE, 0, -1) == [b"two"]


async def test_entity_bombs_and_external_entities_are_refused_not_expanded(redis_client) -> None:
    laughs = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
              + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
              + ']><rss version="2.0"><channel><title>&i;</title><item><title>x</title>'
              '<link>/a/x</link></item></channel></rss>')
    xxe = ('<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           f'<urlset {NS}><url><loc>&x;</loc></url></urlset>')
    server = StubServer(lambda path, headers: (200, {}, (
        laughs if path == "/rss.xml" else xxe).encode()))
    base = server.start()
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        p = poller(redis_client, recorder, http)
        for source in (Source(id="bomb", url=f"{base}/rss.xml"),
                       Source(id="xxe", url=f"{base}/sitemap.xml", kind="sitemap")):
            await p.poll_and_schedule(source, Scheduler(redis_client))
    statuses = {s.source_id: s for s in await read_status(redis_client, [
        Source(id="bomb", url=f"{base}/rss.xml"),
        Source(id="xxe", url=f"{base}/sitemap.xml", kind="sitemap")])}
    assert "UnsafeXMLError" in statuses["bomb"].last_error
    assert "UnsafeXMLError" in statuses["xxe"].last_error
    assert recorder.pages == []


# --- regressions found by review ---------------------------------------------------------------


async def test_an_unchanged_sitemap_index_still_has_its_changing_child_read(redis_client) -> None:
    state = {"paths": ["/news/1"]}

    def answer(path: str, headers: dict[str, str]):
        if path == "/sitemap.xml":  # static index, honours conditional GET
            if headers.get("if-none-match") == '"i"':
                return 304, {}, b""
            return 200, {"ETag": '"i"'}, (
                f"<sitemapindex {NS}><sitemap><loc>{base}/news.xml</loc></sitemap>"
                "</sitemapindex>").encode()
        if path == "/news.xml":
            return 200, {}, urlset(*state["paths"], base=base)
        return article(path)

    server = StubServer(answer)
    base = server.start()
    source = Source(id="idx", url=f"{base}/sitemap.xml", kind="sitemap")
    async with Fetcher.client(5) as http:
        p = poller(redis_client, Recorder(), http)
        assert await p.poll(source) == 1
        state["paths"] = ["/news/1", "/news/2"]
        assert await p.poll(source) == 1  # the index answered 304; its child changed
    assert server.hits("/news/2") == 1


async def test_a_year_one_lastmod_does_not_break_the_sitemap(redis_client) -> None:
    def answer(path: str, headers: dict[str, str]):
        if path == "/sitemap.xml":
            return 200, {}, (f"<urlset {NS}><url><loc>{base}/old</loc><lastmod>"
                             "0001-01-01T00:00:00</lastmod></url></urlset>").encode()
        return article(path)

    server = StubServer(answer)
    base = server.start()
    async with Fetcher.client(5) as http:
        assert await poller(redis_client, Recorder(), http).poll(
            Source(id="y1", url=f"{base}/sitemap.xml", kind="sitemap")) == 1


async def test_a_link_that_failed_and_left_the_feed_is_still_retried(redis_client) -> None:
    state = {"items": ITEM.format("r1", "/a/r1"), "fail": True}

    def answer(path: str, headers: dict[str, str]):
        if path == "/rss.xml":
            return 200, {}, RSS.format(items=state["items"]).encode()
        if path == "/a/r1" and state["fail"]:
            return 503, {}, b"busy"
        return article(path)

    server = StubServer(answer)
    source = Source(id="rot", url=f"{server.start()}/rss.xml")
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        p = poller(redis_client, recorder, http)
        assert await p.poll(source) == 0
        state.update(items=ITEM.format("r2", "/a/r2"), fail=False)  # r1 rotated out
        assert await p.poll(source) == 2
    assert sorted(page.url.rsplit("/", 1)[1] for page in recorder.pages) == ["r1", "r2"]
    assert await redis_client.hlen(streams.key("pending-links", "rot")) == 0
    assert await redis_client.hlen(streams.key("attempts", "rot")) == 0


async def test_a_replayed_dead_letter_is_fetched_even_if_the_feed_is_unchanged(
        redis_client) -> None:
    from sokbo import deadletters

    state = {"status": 404}

    def answer(path: str, headers: dict[str, str]):
        if path == "/rss.xml":
            if headers.get("if-none-match") == '"f"':
                return 304, {}, b""
            return 200, {"ETag": '"f"'}, RSS.format(items=ITEM.format("d1", "/a/d1")).encode()
        return (state["status"], {}, b"gone") if state["status"] != 200 else article(path)

    server = StubServer(answer)
    source = Source(id="dl", url=f"{server.start()}/rss.xml")

    async def dead_letter(*args: object) -> None:
        from datetime import UTC, datetime

        from sokbo.messages import DeadLettered
        stage, stream, _, body, deliveries, error = args[:6]
        await deadletters.write(redis_client, DeadLettered(
            stage=stage, stream=stream, error=error, deliveries=deliveries,
            original=orjson.loads(body), failed_at=datetime.now(UTC)), maxlen=1000)

    recorder = Recorder()
    recorder.dead_letter = dead_letter  # type: ignore[method-assign]
    async with Fetcher.client(5) as http:
        p = poller(redis_client, recorder, http)
        assert await p.poll(source) == 0  # 404: dead-lettered
        [dead] = await deadletters.read(redis_client)
        state["status"] = 200
        await deadletters.replay(redis_client, dead, publish=None)  # type: ignore[arg-type]
        assert await p.poll(source) == 1  # the feed answered 304, the link came back
    assert [page.url.rsplit("/", 1)[1] for page in recorder.pages] == ["d1"]


async def test_robots_txt_that_cannot_be_read_leaves_links_for_later(redis_client) -> None:
    from sokbo_crawler.fetch import user_agent
    from sokbo_crawler.robots import RobotsCache, http_fetch

    state = {"robots": 503}

    def answer(path: str, headers: dict[str, str]):
        if path == "/robots.txt":
            return state["robots"], {}, b"User-agent: *\nAllow: /\n"
        if path == "/rss.xml":
            return 200, {}, RSS.format(items=ITEM.format("k1", "/a/k1")).encode()
        return article(path)

    feed = StubServer(answer)
    source = Source(id="rob", url=f"{feed.start()}/rss.xml")
    robots_site = StubServer(answer)
    other = robots_site.start()
    body = RSS.format(items=ITEM.format("k2", f"{other}/a/k2")).encode()
    feed.answer = lambda path, headers: ((200, {}, body) if path == "/rss.xml" else
                                         (200, {}, b"User-agent: *\nAllow: /\n")
                                         if path == "/robots.txt" else article(path))
    recorder = Recorder()
    async with Fetcher.client(5) as http:
        robots = RobotsCache(redis_client, http_fetch(http), user_agent(), ttl=60,
                             retry_after_error=0.5)
        p = Poller(redis_client, Fetcher(http, max_body_bytes=1 << 20, per_host_delay=0),
                   recorder.publish, recorder.dead_letter, CrawlerSettings(), robots=robots)
        assert await p.poll(source) == 0  # the article's site: robots.txt 503
        assert await redis_client.zscore(streams.key("seen", "rob"), f"{other}/a/k2") is None
        state["robots"] = 200
        await asyncio.sleep(0.6)
        assert await p.poll(source) == 1
    assert robots_site.hits("/a/k2") == 1 and recorder.dead == []


async def test_a_moved_feed_follows_only_the_permanent_hop(redis_client) -> None:
    body = RSS.format(items=ITEM.format("p1", "/a/p1")).encode()

    def answer(path: str, headers: dict[str, str]):
        if path == "/old.xml":
            return 301, {"Location": "/new.xml"}, b""
        if path == "/new.xml":
            return 302, {"Location": "/maintenance.xml"}, b""
        if path == "/maintenance.xml":
            return 200, {}, body
        return article(path)

    server = StubServer(answer)
    source = Source(id="hop", url=f"{server.start()}/old.xml")
    async with Fetcher.client(5) as http:
        p = poller(redis_client, Recorder(), http)
        await p.poll(source)
        await p.poll(source)
    assert server.hits("/old.xml") == 1 and server.hits("/new.xml") == 2


async def test_a_304_to_a_request_without_validators_is_an_error(redis_client) -> None:
    server = StubServer(lambda path, headers: (304, {}, b""))
    source = Source(id="cdn", url=f"{server.start()}/rss.xml")
    async with Fetcher.client(5) as http:
        with pytest.raises(Exception, match="304 Not Modified to a request without"):
            await poller(redis_client, Recorder(), http).poll(source)


async def test_a_listing_page_whose_pattern_matches_nothing_is_an_error(redis_client) -> None:
    server = StubServer(lambda path, headers: (
        200, {}, b"<html><body><a href='/section/2'>2</a></body></html>"))
    source = Source(id="redesign", url=f"{server.start()}/list.html", kind="page",
                    link_pattern="articleView")
    async with Fetcher.client(5) as http:
        with pytest.raises(Exception, match="no link on the listing page matches"):
            await poller(redis_client, Recorder(), http).poll(source)


async def test_a_lost_schedule_is_rebuilt_and_polling_goes_on(redis_client) -> None:
    body = RSS.format(items="").encode()
    server = StubServer(lambda path, headers: (200, {}, body))
    source = Source(id="kept", url=f"{server.start()}/rss.xml", interval=1)
    async with Fetcher.client(5) as http:
        fetcher = Fetcher(http, max_body_bytes=1 << 20, per_host_delay=0)
        p = Poller(redis_client, fetcher, Recorder().publish, Recorder().dead_letter,
                   CrawlerSettings(), maintenance_every=0.3)
        task = asyncio.create_task(p.run([source]))
        await asyncio.sleep(1.2)
        await redis_client.delete(SCHEDULE)  # an operator's FLUSHDB, an eviction...
        before = server.hits("/rss.xml")
        await asyncio.sleep(2.5)
        task.cancel()
    assert server.hits("/rss.xml") > before
