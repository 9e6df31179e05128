"""Poll sources when they are due and turn their new article links into ``PageFetched``.

A source is a feed (RSS/Atom), a sitemap (an index and its children, gzip or not,
Google News sitemaps) or a listing page whose article links match a regex.  Its
document is fetched with a conditional GET (RFC 9110 §13.1): a 304, or a 200 whose
body hashes the same as last time (servers that ignore validators, rss2email #268),
costs no parse.  A link left for later (a retry, the per-poll cap) goes into the
source's pending set first, so it is never hidden behind a 304.

State lives in Redis so a restart neither re-fetches nor re-alerts, and so that any
number of crawler replicas share the work (see :mod:`sokbo_crawler.schedule`):

* ``sokbo:seen:<source_id>`` — sorted set of link URLs already handled, scored by the
  last poll that listed them (pruned ``SEEN_TTL`` seconds after they leave the
  source, so a link a feed keeps listing for months is never published twice);
* ``sokbo:fetching:<source_id>:<url>`` — a short-lived claim so that a source's link is
  fetched by one replica at a time (the same article listed by two sources is fetched
  once per source; its ``article_id`` makes the alerts one);
* ``sokbo:pending-links:<source_id>`` — links not handled yet (a retryable failure, a
  host that asked to wait, robots.txt not readable yet, the per-poll cap), tried on
  every poll whether or not the source's document changed;
* ``sokbo:attempts:<source_id>`` — failed attempts per link, dead-lettered after
  ``max_attempts``;
* ``sokbo:validators:<source_id>`` — per document URL: ``ETag``, ``Last-Modified``
  and the SHA-256 of the last body; ``sokbo:sitemap-children:<source_id>`` — the
  child list of an unchanged sitemap index.

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
from redis.exceptions import RedisError

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
#: seconds a replica's claim on one link lasts (the crawler passes delivery.claim_idle,
#: but at least the longest a fetch may take: a killed replica's links come back then)
CLAIM_TTL = 120.0
#: child sitemaps read per poll of a sitemap index (news indexes list a few; archives
#: list thousands, most of them old and unchanged)
MAX_CHILD_SITEMAPS = 50
#: consecutive failed polls after which a source's remembered permanent redirect is dropped
MOVED_GIVE_UP = 3
#: seconds before links whose robots.txt could not be read are tried again
ROBOTS_RETRY = 300.0
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
                 throttles: Throttles | None = None, maintenance_every: float = 30.0,
                 claim_ttl: float = CLAIM_TTL) -> None:
        self._redis = redis
        self._max_attempts = max_attempts
        self._fetcher = fetcher
        self._publish = publish
        self._dead_letter = dead_letter
        self._settings = settings
        self._robots = robots
        self._throttles = throttles
        self._maintenance_every = maintenance_every
        self._claim_ttl = claim_ttl
        self._sources: dict[str, Source] = {}
        self._feed_titles: dict[str, str | None] = {}

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, sources: Iterable[Source], scheduler: Scheduler | None = None) -> None:
        """Poll due sources until cancelled, ``crawler.concurrency`` at a time; never raises.

        Call :meth:`update` to change the sources while running (config reload).
        """
        scheduler = scheduler or Scheduler(self._redis)
        self._sources = {s.id: s for s in sources if s.enabled}
        await asyncio.gather(self._maintain(scheduler),
                             *(self._worker(scheduler) for _ in range(self._settings.concurrency)))

    async def _maintain(self, scheduler: Scheduler) -> None:
        """Every ``maintenance_every`` seconds: resynchronise the schedule, export freshness.

        The schedule lives in Redis; if it is lost (a restart without persistence, an
        eviction, a FLUSHDB) the sources are put back, due at once, instead of never
        being polled again.  Freshness is read from the shared status, so every replica
        reports when a source last yielded something new to *any* replica.
        """
        while True:
            try:
                await scheduler.sync(list(self._sources.values()))
                for status in await read_status(self._redis, self._sources.values()):
                    if status.last_new_at is not None:
                        SOURCE_LAST_NEW.labels(source_id=status.source_id).set(
                            status.last_new_at)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: try again next round
                get_logger().warning("schedule_sync_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                continue
            await asyncio.sleep(self._maintenance_every)

    async def update(self, sources: Iterable[Source], scheduler: Scheduler) -> None:
        """Replace the polled sources (a reloaded config) and resynchronise the schedule."""
        sources = list(sources)
        self._sources = {s.id: s for s in sources if s.enabled}
        await scheduler.sync(sources)

    async def _worker(self, scheduler: Scheduler) -> None:
        while True:
            try:
                source_id = await scheduler.claim()
                if source_id is None:
                    wait = await scheduler.seconds_until_due()
                    await asyncio.sleep(min(max(wait if wait is not None else 1.0, 0.05), 1.0))
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: wait and try again, never exit
                _reraise_if_cancelling()
                get_logger().warning("schedule_unavailable", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
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
            _reraise_if_cancelling()
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
            await asyncio.sleep(scheduler.lease / 3)
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
            return
        await self._redis.hset(key, mapping={"last_error": error[:500], "last_error_at": now})
        failures = await self._redis.hincrby(key, "consecutive_failures", 1)
        if failures >= MOVED_GIVE_UP and await self._redis.hdel(key, "effective_url"):
            get_logger(source_id=source.id).warning(
                "source_move_abandoned", url=source.url, failures=failures,
                detail="the URL the source moved to keeps failing; back to the configured one")

    # --- one poll ---------------------------------------------------------------------------

    async def poll(self, source: Source) -> int:
        """Fetch *source*'s document(s) once and publish pages of unseen links.

        One link's failure never stops the others: a retryable one (or one whose host
        asked to wait, or whose robots.txt could not be read) is kept in the source's
        pending set and tried again on every later poll, whatever the document says
        then; after ``max_attempts`` failed fetches it is dead-lettered.  A permanent
        failure is dead-lettered at once.  Links beyond ``max_entries_per_poll`` wait
        in the pending set too.

        Returns:
            how many new pages were published.

        Raises:
            RetryableError, PermanentError: the source's document could not be
                fetched or read.
        """
        validators: dict[str, bytes] = {}
        entries = await self._discover(source, validators)
        published = await self._process(source, entries)
        if validators:  # every link of the documents is now seen, dead-lettered or pending
            await self._redis.hset(streams.key("validators", source.id), mapping=validators)
        return published

    async def _discover(self, source: Source, validators: dict[str, bytes]) -> list[FeedEntry]:
        """Return the links *source* lists now (none from a document that is unchanged)."""
        url = await self._effective_url(source)
        document = await self._fetch_document(source, url, validators)
        if source.kind == "sitemap":
            return await self._sitemap_entries(source, url, document, validators)
        if document is None:
            return []
        charset = source.encoding or document.charset
        if source.kind == "feed":
            feed = await asyncio.to_thread(parse_feed, document.body, url=document.final_url,
                                           http_charset=charset)
            self._feed_titles[source.id] = feed.title
            entries = feed.entries
        else:
            entries = await asyncio.to_thread(
                parse_listing, document.body, url=document.final_url,
                link_pattern=source.link_pattern or "", http_charset=charset,
                encoding=source.encoding)
        await self._adopt_move(source, url, document)
        return entries

    async def _sitemap_entries(self, source: Source, url: str, document: FetchResult | None,
                               validators: dict[str, bytes]) -> list[FeedEntry]:
        """Read a sitemap: a urlset's entries, or an index's children (each conditionally).

        An unchanged index still has its children read (from the list kept in Redis):
        a static index often points at a news sitemap that changes every minute.
        Children are read newest ``lastmod`` first, those older than
        ``sitemap_max_age`` skipped, at most ``MAX_CHILD_SITEMAPS``; an index listed
        in an index is followed one level.  A child that fails is logged and counted
        and the others go on.
        """
        cap = self._settings.max_body_bytes
        children_key = streams.key("sitemap-children", source.id)
        if document is None:
            cached = await self._redis.hget(children_key, url)
            if cached is None:
                return []  # an unchanged urlset: its links were handled last time
            children = [FeedEntry(url=u, title=None, published=datetime.fromisoformat(d)
                                  if d else None) for u, d in orjson.loads(cached)]
        else:
            sitemap = await asyncio.to_thread(parse_sitemap, document.body,
                                              url=document.final_url, max_bytes=cap)
            await self._adopt_move(source, url, document)
            if not sitemap.children:
                await self._redis.hdel(children_key, url)
                return self._recent(sitemap.entries)
            children = sitemap.children
            await self._redis.hset(children_key, url, orjson.dumps(
                [[c.url, c.published.isoformat() if c.published else None] for c in children]))
        entries: list[FeedEntry] = []
        queue, nested, read = self._newest(children), 0, 0
        log = get_logger(source_id=source.id)
        while queue and read < MAX_CHILD_SITEMAPS:
            child = queue.pop(0)
            read += 1
            try:
                fetched = await self._fetch_document(source, child.url, validators)
                if fetched is None:
                    continue
                part = await asyncio.to_thread(parse_sitemap, fetched.body,
                                               url=fetched.final_url, max_bytes=cap)
                entries += part.entries
                if part.children and not nested:  # an index in an index: one level more
                    nested += 1
                    queue = self._newest(part.children) + queue
            except (PermanentError, RetryableError) as exc:  # the other children go on
                validators.pop(child.url, None)
                SITEMAPS_FAILED.labels(source_id=source.id).inc()
                log.warning("sitemap_failed", url=child.url,
                            error=f"{type(exc).__name__}: {exc}")
        return self._recent(entries)

    def _newest(self, children: list[FeedEntry]) -> list[FeedEntry]:
        """Children dated within ``sitemap_max_age`` (or undated), newest first."""
        recent = self._recent(children)
        return sorted(recent, key=lambda c: c.published.timestamp() if c.published else 0.0,
                      reverse=True)

    def _recent(self, entries: list[FeedEntry]) -> list[FeedEntry]:
        oldest = time.time() - self._settings.sitemap_max_age
        return [e for e in entries if e.published is None or e.published.timestamp() >= oldest]

    async def _effective_url(self, source: Source) -> str:
        """Return the URL to poll: the configured one, or where it permanently moved."""
        moved = await self._redis.hmget(status_key(source.id), "configured_url",
                                        "effective_url")
        if moved[0] and moved[1] and moved[0].decode() == source.url:
            return moved[1].decode()
        return source.url

    async def _adopt_move(self, source: Source, url: str, document: FetchResult) -> None:
        """After a document parsed: remember a permanent redirect of the source's URL."""
        if document.moved_to and url == source.url:
            await self._redis.hset(status_key(source.id), mapping={
                "configured_url": source.url, "effective_url": document.moved_to})
            get_logger(source_id=source.id).info("source_moved", url=url,
                                                 moved_to=document.moved_to)

    async def _fetch_document(self, source: Source, url: str,
                              validators: dict[str, bytes]) -> FetchResult | None:
        """Conditionally GET a source document; ``None`` when it has not changed.

        The new validators go into *validators* (stored by :meth:`poll` once the
        document's links are handled).

        Raises:
            RetryableError: robots.txt could not be read yet, the host asked to wait,
                a 304 to a request that carried no validators, or the fetch failed.
            PermanentError: robots.txt disallows it, or the fetch failed for good.
        """
        verdict = await self._robots_verdict(source, url)
        if verdict is None:
            raise RetryableError(f"robots.txt of {_origin(url)} could not be read; "
                                 "trying again later", retry_after=ROBOTS_RETRY)
        if not verdict:
            raise PermanentError(f"robots.txt of {_origin(url)} disallows {url} for sokbo; "
                                 "remove the source or ask the site")
        paused = await self._paused(url)
        if paused:
            raise RetryableError(f"{_origin(url)} asked to wait (Retry-After); "
                                 f"{paused:.0f} s left", retry_after=paused)
        stored = await self._redis.hget(streams.key("validators", source.id), url)
        last = orjson.loads(stored) if stored else {}
        etag, modified = last.get("etag"), last.get("last_modified")
        with FETCH_DURATION.labels(kind=_DOCUMENT_KINDS[source.kind]).time():
            result = await self._fetcher.get(url, etag=etag, last_modified=modified)
        if result.not_modified:
            if not (etag or modified):  # a broken server or CDN: not "unchanged"
                raise RetryableError(f"{url} answered 304 Not Modified to a request without "
                                     "validators")
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

    async def _robots_verdict(self, source: Source, url: str) -> bool | None:
        """True: allowed; False: disallowed (logged, counted); None: robots.txt unknown."""
        if self._robots is None:
            return True
        verdict = await self._robots.check(url, source_id=source.id)
        if verdict is False:
            PAGES_FETCHED.labels(source_id=source.id, outcome="robots_disallowed").inc()
        return verdict

    async def _paused(self, url: str) -> float:
        return await self._throttles.throttled_for(url) if self._throttles else 0.0

    async def _process(self, source: Source, entries: list[FeedEntry]) -> int:
        """Fetch and publish the unseen ones of the pending links and *entries*.

        Returns:
            how many pages were published.
        """
        seen_key = streams.key("seen", source.id)
        pending_key = streams.key("pending-links", source.id)
        now = time.time()
        await self._redis.zremrangebyscore(seen_key, 0, now - SEEN_TTL)
        pending = [_entry_from_json(url, raw) for url, raw in
                   (await self._redis.hgetall(pending_key)).items()]
        candidates = list({e.url: e for e in [*pending, *entries]}.values())
        if not candidates:
            return 0
        scores = await self._redis.zmscore(seen_key, [e.url for e in candidates])
        listed_again = [e.url for e, score in zip(candidates, scores, strict=True)
                        if score is not None]
        if listed_again:  # still listed: keep them seen for SEEN_TTL after the last listing
            await self._redis.zadd(seen_key, dict.fromkeys(listed_again, now), xx=True, gt=True)
            await self._redis.hdel(pending_key, *listed_again)
        unseen = [e for e, score in zip(candidates, scores, strict=True) if score is None]
        published, attempted = 0, 0
        deferred: dict[str, bytes] = {}
        throttled: set[str | None] = set()
        checked_hosts: set[str | None] = set()
        for entry in unseen:
            host = _host(entry.url)
            if attempted >= self._settings.max_entries_per_poll or host in throttled:
                deferred[entry.url] = _entry_to_json(entry)
                continue
            if host not in checked_hosts:
                checked_hosts.add(host)
                if await self._paused(entry.url):
                    throttled.add(host)  # the host asked to wait: not an attempt
                    deferred[entry.url] = _entry_to_json(entry)
                    continue
            claim = streams.key("fetching", source.id, entry.url)
            if not await self._redis.set(claim, "1", nx=True, px=int(self._claim_ttl * 1000)):
                deferred[entry.url] = _entry_to_json(entry)  # another replica has it now
                continue
            attempted += 1
            try:
                if await self._redis.zscore(seen_key, entry.url) is not None:
                    continue  # another replica finished it between our two looks
                outcome = await self._fetch_entry(source, entry)
                if outcome is None:  # robots.txt not readable yet: later, not an attempt
                    throttled.add(host)
                    deferred[entry.url] = _entry_to_json(entry)
                    continue
                published += outcome
                await self._redis.zadd(seen_key, {entry.url: time.time()}, nx=True)
                await self._redis.hdel(streams.key("attempts", source.id), entry.url)
                await self._redis.hdel(pending_key, entry.url)
            except RetryableError as exc:
                if exc.retry_after is not None:
                    throttled.add(host)
                if await self._retry_later(source, entry.url, exc):
                    await self._redis.hdel(pending_key, entry.url)
                else:
                    deferred[entry.url] = _entry_to_json(entry)
            finally:
                await self._redis.delete(claim)
        if deferred:
            await self._redis.hset(pending_key, mapping=deferred)
        return published

    async def _retry_later(self, source: Source, url: str, exc: RetryableError) -> bool:
        """Count a failed attempt at *url*; after ``max_attempts`` dead-letter it as seen.

        Returns:
            True if it was given up (dead-lettered), False if it will be tried again.
        """
        attempts_key = streams.key("attempts", source.id)
        attempts = await self._redis.hincrby(attempts_key, url, 1)
        log = get_logger(source_id=source.id)
        if attempts < self._max_attempts:
            log.warning("page_fetch_failed", url=url, error=str(exc), attempts=attempts,
                        will_retry=True)
            return False
        await self._dead_letter("crawler", streams.PAGES, None,
                                orjson.dumps({"url": url, "source_id": source.id}), attempts,
                                f"gave up after {attempts} attempts: {exc}")
        await self._redis.zadd(streams.key("seen", source.id), {url: time.time()}, nx=True)
        await self._redis.hdel(attempts_key, url)
        return True

    async def _fetch_entry(self, source: Source, entry: FeedEntry) -> int | None:
        """Fetch one article page and publish it.

        Returns:
            1 if published, 0 if given up for good (disallowed by robots.txt, or
            dead-lettered), None if robots.txt could not be read yet.

        Raises:
            RetryableError: try again later (counts as an attempt).
            RedisError: Redis failed; the poll fails and the link stays unseen.
        """
        discovered_at = datetime.now(UTC)
        log = get_logger(source_id=source.id, url=entry.url)
        verdict = await self._robots_verdict(source, entry.url)
        if verdict is None:
            return None
        if not verdict:
            return 0  # skipped, logged, counted; marked seen by the caller
        try:
            with FETCH_DURATION.labels(kind="article").time():
                page = await self._fetcher.get(entry.url)
        except RetryableError:
            PAGES_FETCHED.labels(source_id=source.id, outcome="network_error").inc()
            raise
        except RedisError:
            raise  # the host gate's Redis: not the article's fault
        except PermanentError as exc:
            outcome = ("too_large" if isinstance(exc, TooLargeError)
                       else "ssrf_refused" if isinstance(exc, UnsafeURLError)
                       else "http_error")
            PAGES_FETCHED.labels(source_id=source.id, outcome=outcome).inc()
            original = orjson.dumps({"url": entry.url, "source_id": source.id})
            await self._dead_letter("crawler", streams.PAGES, None, original, 1,
                                    f"{type(exc).__name__}: {exc}")
            log.warning("page_dead_lettered", outcome=outcome, error=str(exc))
            return 0
        except Exception as exc:  # unexpected: an attempt, tried again, never lost
            PAGES_FETCHED.labels(source_id=source.id, outcome="error").inc()
            raise RetryableError(f"{type(exc).__name__} fetching {entry.url}: {exc}") from exc
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
        return 1


def _entry_to_json(entry: FeedEntry) -> bytes:
    return orjson.dumps({"title": entry.title, "published":
                         entry.published.isoformat() if entry.published else None})


def _entry_from_json(url: bytes, raw: bytes) -> FeedEntry:
    data = orjson.loads(raw)
    published = data.get("published")
    return FeedEntry(url=url.decode(), title=data.get("title"),
                     published=datetime.fromisoformat(published) if published else None)


def _reraise_if_cancelling() -> None:
    """Raise CancelledError if this task is being cancelled: a Redis or HTTP call cut
    short by the cancellation can surface as ConnectionError or RuntimeError, and a
    worker that logged it and went on would never stop (SIGTERM would hang)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _host(url: str) -> str | None:
    """The politeness key of *url* (host and non-default port), as the host gate uses."""
    return host_of(url)  # None for a malformed URL: the fetch reports it properly


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
