"""Poll sources when they are due and turn their new article links into ``PageFetched``.

A source is a feed (RSS/Atom), a sitemap (an index and its children, gzip or not,
Google News sitemaps) or a listing page whose article links match a regex.  Its
document is fetched with a conditional GET (RFC 9110 §13.1): a 304, or a 200 whose
body hashes the same as last time (servers that ignore validators, rss2email #268),
costs no parse.  The validators are stored only after a poll that handled every
link, so a link left for later (a retry, the per-poll cap) is never hidden behind a
304.

State lives in Redis so a restart neither re-fetches nor re-alerts, and so that any
number of crawler replicas share the work (see :mod:`sokbo_crawler.schedule`):

* ``sokbo:seen:<source_id>`` — sorted set of link URLs already published, scored by
  the time first seen (pruned after ``SEEN_TTL`` seconds);
* ``sokbo:fetching:<source_id>:<url>`` — a short-lived claim so two replicas that
  meet the same link (two sources listing one article) do not fetch it at once;
* ``sokbo:attempts:<source_id>`` — failed attempts per link, dead-lettered after
  ``max_attempts``;
* ``sokbo:validators:<source_id>`` — per document URL: ``ETag``, ``Last-Modified``
  and the SHA-256 of the last body.

A link is marked seen only after its page is on ``sokbo.pages``; a crash in between
means a re-fetch (the notifier's idempotency keys absorb the duplicate), never a
lost article.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis

from sokbo import streams
from sokbo.config import CrawlerSettings, Source
from sokbo.errors import PermanentError, RetryableError
from sokbo.logs import get_logger
from sokbo.messages import PageFetched
from sokbo.observability import (
    FETCH_DURATION,
    PAGE_BYTES,
    PAGES_FETCHED,
    SITEMAPS_FAILED,
    SOURCE_LAST_NEW,
    SOURCE_POLLS,
    STAGE_LATENCY,
)
from sokbo_crawler.feeds import FeedEntry, parse_feed
from sokbo_crawler.fetch import Fetcher, FetchResult, TooLargeError, UnsafeURLError
from sokbo_crawler.hosts import host_of
from sokbo_crawler.listing import parse_listing
from sokbo_crawler.schedule import Scheduler, read_status, status_key
from sokbo_crawler.sitemaps import parse_sitemap

__all__ = ["SEEN_TTL", "Poller"]

SEEN_TTL = 30 * 86400.0
CLAIM_TTL = 120
#: child sitemaps read per poll of a sitemap index (news indexes list a few; archives
#: list thousands, most of them old and unchanged)
MAX_CHILD_SITEMAPS = 50
_DOCUMENT_KINDS = {"feed": "feed", "sitemap": "sitemap", "page": "listing"}


class Robots(Protocol):
    """What the poller asks of a robots.txt cache (:class:`sokbo_crawler.robots.RobotsCache`):
    whether sokbo may fetch *url*; a refusal is logged and counted by it."""

    async def check(self, url: str, *, source_id: str) -> bool: ...


class Throttles(Protocol):
    """Which hosts asked to be left alone (429/503 with Retry-After), for how long."""

    async def throttled_for(self, url: str) -> float: ...


class Poller:
    """Poll sources and publish their new links' pages."""

    def __init__(self, redis: aioredis.Redis, fetcher: Fetcher,
                 publish: Callable[[PageFetched], Awaitable[object]],
                 dead_letter: Callable[..., Awaitable[object]], settings: CrawlerSettings, *,
                 max_attempts: int = 5, robots: Robots | None = None,
                 throttles: Throttles | None = None) -> None:
        self._redis = redis
        self._max_attempts = max_attempts
        self._fetcher = fetcher
        self._publish = publish
        self._dead_letter = dead_letter
        self._settings = settings
        self._robots = robots
        self._throttles = throttles
        self._sources: dict[str, Source] = {}
        self._feed_titles: dict[str, str | None] = {}

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, sources: Iterable[Source], scheduler: Scheduler | None = None) -> None:
        """Poll due sources until cancelled, ``crawler.concurrency`` at a time; never raises.

        Call :meth:`update` to change the sources while running (config reload).
        """
        scheduler = scheduler or Scheduler(self._redis)
        await self.update(sources, scheduler)
        await asyncio.gather(self._export_freshness(),
                             *(self._worker(scheduler) for _ in range(self._settings.concurrency)))

    async def _export_freshness(self, every: float = 30.0) -> None:
        """Keep ``sokbo_source_last_new_article_timestamp_seconds`` in step with Redis.

        Read from the shared status, so every replica reports when the source last
        yielded something new to *any* replica.
        """
        while True:
            with contextlib.suppress(Exception):
                for status in await read_status(self._redis, self._sources.values()):
                    if status.last_new_at is not None:
                        SOURCE_LAST_NEW.labels(source_id=status.source_id).set(
                            status.last_new_at)
            await asyncio.sleep(every)

    async def update(self, sources: Iterable[Source], scheduler: Scheduler) -> None:
        """Replace the polled sources (a reloaded config) and resynchronise the schedule."""
        sources = list(sources)
        self._sources = {s.id: s for s in sources if s.enabled}
        await scheduler.sync(sources)

    async def _worker(self, scheduler: Scheduler) -> None:
        while True:
            try:
                source_id = await scheduler.claim()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: wait and try again, never exit
                get_logger().warning("schedule_unavailable", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                continue
            if source_id is None:
                wait = await scheduler.seconds_until_due()
                await asyncio.sleep(min(max(wait if wait is not None else 1.0, 0.05), 1.0))
                continue
            source = self._sources.get(source_id)
            if source is None:  # removed from the config by a reload on another replica
                continue
            await self.poll_and_schedule(source, scheduler)

    async def poll_and_schedule(self, source: Source, scheduler: Scheduler) -> None:
        """Poll *source* once, record the outcome and schedule its next poll; never raises."""
        log = get_logger(source_id=source.id)
        started = time.monotonic()
        keepalive = asyncio.create_task(self._keep_lease(source, scheduler))
        new: int | None = None
        wait: float | None = None
        try:
            new = await self.poll(source)
            SOURCE_POLLS.labels(source_id=source.id, outcome="ok").inc()
            await self._record(source, error=None, new=new)
            log.info("source_polled", kind=source.kind, new_entries=new,
                     duration_s=round(time.monotonic() - started, 3))
        except asyncio.CancelledError:
            raise  # the lease runs out and another replica polls it
        except Exception as exc:  # one source's failure never stops the others
            SOURCE_POLLS.labels(source_id=source.id, outcome="error").inc()
            wait = exc.retry_after if isinstance(exc, RetryableError) else None
            error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                await self._record(source, error=error, new=None)
            log.warning("source_poll_failed", kind=source.kind, url=source.url, error=error)
        finally:
            keepalive.cancel()
        with contextlib.suppress(Exception):
            delay = await scheduler.done(source, new_items=new, wait=wait)
            log.debug("source_scheduled", next_poll_in_s=round(delay, 1))

    async def _keep_lease(self, source: Source, scheduler: Scheduler) -> None:
        while True:
            await asyncio.sleep(60)
            with contextlib.suppress(Exception):
                await scheduler.extend(source.id)

    async def _record(self, source: Source, *, error: str | None, new: int | None) -> None:
        key, now = status_key(source.id), time.time()
        if error is None:
            fields: dict[str, float | int] = {"last_success": now, "consecutive_failures": 0}
            if new:
                fields["last_new_at"] = now
                await self._redis.hincrby(key, "items_seen", new)
                SOURCE_LAST_NEW.labels(source_id=source.id).set(now)
            await self._redis.hset(key, mapping=fields)
        else:
            await self._redis.hset(key, mapping={"last_error": error[:500], "last_error_at": now})
            await self._redis.hincrby(key, "consecutive_failures", 1)

    # --- one poll ---------------------------------------------------------------------------

    async def poll(self, source: Source) -> int:
        """Fetch *source*'s document(s) once and publish pages of unseen links.

        One link's failure never stops the others: a retryable one is retried next
        poll (after a 429 or 503 the rest of that host waits for the next poll too),
        a permanent one is dead-lettered and marked seen.

        Returns:
            how many new pages were published.

        Raises:
            RetryableError, PermanentError: the source's document could not be
                fetched or read.
        """
        validators: dict[str, bytes] = {}
        entries = await self._discover(source, validators)
        published, complete = await self._process(source, entries)
        if complete and validators:
            await self._redis.hset(streams.key("validators", source.id), mapping=validators)
        return published

    async def _discover(self, source: Source, validators: dict[str, bytes]) -> list[FeedEntry]:
        """Return the links *source* lists now (empty when its document is unchanged)."""
        url = await self._effective_url(source)
        document = await self._fetch_document(source, url, validators)
        if document is None:
            return []
        charset = source.encoding or document.charset
        if source.kind == "feed":
            feed = await asyncio.to_thread(parse_feed, document.body, url=document.final_url,
                                           http_charset=charset)
            self._feed_titles[source.id] = feed.title
            return feed.entries
        if source.kind == "page":
            return await asyncio.to_thread(
                parse_listing, document.body, url=document.final_url,
                link_pattern=source.link_pattern or "", http_charset=charset,
                encoding=source.encoding)
        return await self._sitemap_entries(source, document, validators)

    async def _sitemap_entries(self, source: Source, document: FetchResult,
                               validators: dict[str, bytes]) -> list[FeedEntry]:
        cap = self._settings.max_body_bytes
        sitemap = await asyncio.to_thread(parse_sitemap, document.body,
                                          url=document.final_url, max_bytes=cap)
        entries = list(sitemap.entries)
        log = get_logger(source_id=source.id)
        for child in sitemap.children[:MAX_CHILD_SITEMAPS]:
            try:
                fetched = await self._fetch_document(source, child, validators)
                if fetched is not None:
                    part = await asyncio.to_thread(parse_sitemap, fetched.body,
                                                   url=fetched.final_url, max_bytes=cap)
                    entries += part.entries
            except (PermanentError, RetryableError) as exc:  # the other children go on
                SITEMAPS_FAILED.labels(source_id=source.id).inc()
                log.warning("sitemap_failed", url=child, error=f"{type(exc).__name__}: {exc}")
        oldest = time.time() - self._settings.sitemap_max_age
        return [e for e in entries if e.published is None or e.published.timestamp() >= oldest]

    async def _effective_url(self, source: Source) -> str:
        """Return the URL to poll: the configured one, or where it permanently moved."""
        moved = await self._redis.hmget(status_key(source.id), "configured_url",
                                        "effective_url")
        if moved[0] and moved[1] and moved[0].decode() == source.url:
            return moved[1].decode()
        return source.url

    async def _fetch_document(self, source: Source, url: str,
                              validators: dict[str, bytes]) -> FetchResult | None:
        """Conditionally GET a source document; ``None`` when it has not changed.

        The new validators go into *validators* (stored by :meth:`poll` when the
        poll completes); a permanent redirect of the source URL is remembered.
        """
        if not await self._allowed(source, url):
            raise PermanentError(f"robots.txt of {_origin(url)} disallows {url} for sokbo")
        paused = await self._paused(url)
        if paused:
            raise RetryableError(f"{_origin(url)} asked to wait (Retry-After); "
                                 f"{paused:.0f} s left", retry_after=paused)
        stored = await self._redis.hget(streams.key("validators", source.id), url)
        last = orjson.loads(stored) if stored else {}
        with FETCH_DURATION.labels(kind=_DOCUMENT_KINDS[source.kind]).time():
            result = await self._fetcher.get(url, etag=last.get("etag"),
                                             last_modified=last.get("last_modified"))
        log = get_logger(source_id=source.id)
        if result.moved_to and url == source.url:
            await self._redis.hset(status_key(source.id), mapping={
                "configured_url": source.url, "effective_url": result.moved_to})
            log.info("source_moved", url=url, moved_to=result.moved_to)
        if result.not_modified:
            SOURCE_POLLS.labels(source_id=source.id, outcome="not_modified").inc()
            return None
        digest = hashlib.sha256(result.body).hexdigest()
        validators[url] = orjson.dumps({"etag": result.etag,
                                        "last_modified": result.last_modified,
                                        "sha256": digest})
        if last.get("sha256") == digest:  # a server that ignores validators: same body
            SOURCE_POLLS.labels(source_id=source.id, outcome="unchanged").inc()
            return None
        return result

    async def _allowed(self, source: Source, url: str) -> bool:
        if self._robots is None or await self._robots.check(url, source_id=source.id):
            return True
        PAGES_FETCHED.labels(source_id=source.id, outcome="robots_disallowed").inc()
        return False

    async def _paused(self, url: str) -> float:
        return await self._throttles.throttled_for(url) if self._throttles else 0.0

    async def _process(self, source: Source, entries: list[FeedEntry]) -> tuple[int, bool]:
        """Fetch and publish unseen *entries*; return (published, every link handled)."""
        seen_key = streams.key("seen", source.id)
        await self._redis.zremrangebyscore(seen_key, 0, time.time() - SEEN_TTL)
        published, attempted, complete = 0, 0, True
        throttled: set[str | None] = set()
        seen_hosts: set[str | None] = set()  # hosts already checked for a pause this poll
        for entry in entries:
            host = _host(entry.url)
            if host in throttled or (host not in seen_hosts and await self._paused(entry.url)):
                throttled.add(host)  # the host asked to wait: not an attempt, kept for later
                complete = False
                continue
            seen_hosts.add(host)
            if await self._redis.zscore(seen_key, entry.url) is not None:
                continue
            if attempted >= self._settings.max_entries_per_poll:
                complete = False  # the rest wait for the next poll
                break
            claim = streams.key("fetching", source.id, entry.url)
            if not await self._redis.set(claim, "1", nx=True, ex=CLAIM_TTL):
                complete = False  # another replica is fetching it
                continue
            attempted += 1
            try:
                if await self._redis.zscore(seen_key, entry.url) is not None:
                    continue  # another replica finished it between our two looks
                if await self._fetch_entry(source, entry):
                    published += 1
                await self._redis.zadd(seen_key, {entry.url: time.time()}, nx=True)
                await self._redis.hdel(streams.key("attempts", source.id), entry.url)
            except RetryableError as exc:
                complete = False
                if exc.retry_after is not None:
                    throttled.add(host)
                await self._retry_later(source, entry.url, exc)
            finally:
                await self._redis.delete(claim)
        return published, complete

    async def _retry_later(self, source: Source, url: str, exc: RetryableError) -> None:
        """Count a failed attempt at *url*; after ``max_attempts`` dead-letter it as seen."""
        attempts_key = streams.key("attempts", source.id)
        attempts = await self._redis.hincrby(attempts_key, url, 1)
        log = get_logger(source_id=source.id)
        if attempts < self._max_attempts:
            log.warning("page_fetch_failed", url=url, error=str(exc), attempts=attempts,
                        will_retry=True)
            return
        await self._dead_letter("crawler", streams.PAGES, None,
                                orjson.dumps({"url": url, "source_id": source.id}), attempts,
                                f"gave up after {attempts} attempts: {exc}")
        await self._redis.zadd(streams.key("seen", source.id), {url: time.time()}, nx=True)
        await self._redis.hdel(attempts_key, url)

    async def _fetch_entry(self, source: Source, entry: FeedEntry) -> bool:
        discovered_at = datetime.now(UTC)
        log = get_logger(source_id=source.id, url=entry.url)
        if not await self._allowed(source, entry.url):
            return False  # skipped, logged, counted; marked seen by the caller
        try:
            with FETCH_DURATION.labels(kind="article").time():
                page = await self._fetcher.get(entry.url)
        except RetryableError:
            PAGES_FETCHED.labels(source_id=source.id, outcome="network_error").inc()
            raise
        except Exception as exc:  # PermanentError, or anything a bad link can raise
            outcome = ("too_large" if isinstance(exc, TooLargeError)
                       else "ssrf_refused" if isinstance(exc, UnsafeURLError)
                       else "http_error" if isinstance(exc, PermanentError) else "error")
            PAGES_FETCHED.labels(source_id=source.id, outcome=outcome).inc()
            original = orjson.dumps({"url": entry.url, "source_id": source.id})
            await self._dead_letter("crawler", streams.PAGES, None, original, 1,
                                    f"{type(exc).__name__}: {exc}")
            log.warning("page_dead_lettered", outcome=outcome, error=str(exc))
            return False
        PAGES_FETCHED.labels(source_id=source.id, outcome="ok").inc()
        PAGE_BYTES.observe(len(page.body))
        fetched_at = datetime.now(UTC)
        if entry.published is not None and entry.published <= discovered_at:
            STAGE_LATENCY.labels(stage="publication_to_discovery").observe(
                (discovered_at - entry.published).total_seconds())
        STAGE_LATENCY.labels(stage="discovery_to_fetch").observe(
            (fetched_at - discovered_at).total_seconds())
        message = PageFetched(
            source_id=source.id,
            source_title=source.title or self._feed_titles.get(source.id),
            url=entry.url, final_url=page.final_url, status=page.status,
            content_type=page.content_type, charset=source.encoding or page.charset,
            body=page.body, entry_title=entry.title, entry_published=entry.published,
            discovered_at=discovered_at, fetched_at=fetched_at)
        await self._publish(message)
        log.info("page_fetched", bytes=len(page.body), status=page.status,
                 final_url=page.final_url, fetch_s=round(page.elapsed, 3))
        return True


def _host(url: str) -> str | None:
    """The politeness key of *url* (host and non-default port), as the host gate uses."""
    return host_of(url)  # None for a malformed URL: the fetch reports it properly


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
