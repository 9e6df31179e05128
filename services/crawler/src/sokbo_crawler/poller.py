"""Poll each source on its interval and turn new feed entries into ``PageFetched``.

State lives in Redis so a restart neither re-fetches nor re-alerts:

* ``sokbo:seen:<source_id>`` — sorted set of entry URLs already published, scored by
  the time first seen (pruned after ``SEEN_TTL`` seconds);
* ``sokbo:fetching:<source_id>:<url>`` — a short-lived claim so two crawler replicas
  polling the same feed do not fetch the same page at once.

An entry is marked seen only after its page is on ``sokbo.pages``; a crash in
between means a re-fetch (the notifier's idempotency keys absorb the duplicate),
never a lost article.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis

from sokbo import streams
from sokbo.config import CrawlerSettings, Source
from sokbo.errors import PermanentError, RetryableError
from sokbo.logs import get_logger
from sokbo.messages import PageFetched
from sokbo.observability import FEED_POLLS, FETCH_DURATION, PAGE_BYTES, PAGES_FETCHED
from sokbo_crawler.feeds import FeedEntry, parse_feed
from sokbo_crawler.fetch import Fetcher, TooLargeError

__all__ = ["Poller", "SEEN_TTL"]

SEEN_TTL = 30 * 86400.0
CLAIM_TTL = 120


class Poller:
    """Poll sources and publish their new entries' pages."""

    def __init__(self, redis: aioredis.Redis, fetcher: Fetcher,
                 publish: Callable[[PageFetched], object],
                 dead_letter: Callable[..., object], settings: CrawlerSettings, *,
                 max_attempts: int = 5) -> None:
        self._redis = redis
        self._max_attempts = max_attempts
        self._fetcher = fetcher
        self._publish = publish
        self._dead_letter = dead_letter
        self._settings = settings

    async def run_forever(self, source: Source) -> None:
        """Poll *source* every ``source.interval`` seconds until cancelled; never raises."""
        log = get_logger(source_id=source.id)
        while True:
            started = time.monotonic()
            try:
                new = await self.poll(source)
                FEED_POLLS.labels(source_id=source.id, outcome="ok").inc()
                log.info("feed_polled", new_entries=new,
                         duration_s=round(time.monotonic() - started, 3))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one source's failure never stops the others
                FEED_POLLS.labels(source_id=source.id, outcome="error").inc()
                log.warning("feed_poll_failed", url=source.url,
                            error=f"{type(exc).__name__}: {exc}",
                            retry_in_s=source.interval)
            await asyncio.sleep(max(0.0, source.interval - (time.monotonic() - started)))

    async def poll(self, source: Source) -> int:
        """Fetch *source*'s feed once and publish pages of unseen entries; return how many.

        One entry's failure never stops the others: a retryable one is retried next
        poll (after a 429 or 503 the rest of that host waits for the next poll too),
        a permanent one is dead-lettered and marked seen.

        Raises:
            RetryableError, PermanentError: the feed itself could not be fetched or read.
        """
        with FETCH_DURATION.labels(kind="feed").time():
            result = await self._fetcher.get(source.url)
        feed = await asyncio.to_thread(parse_feed, result.body, url=result.final_url,
                                       http_charset=result.charset)
        seen_key = streams.key("seen", source.id)
        await self._redis.zremrangebyscore(seen_key, 0, time.time() - SEEN_TTL)
        published, throttled = 0, set()
        for entry in feed.entries:
            host = _host(entry.url)
            if host in throttled or await self._redis.zscore(seen_key, entry.url) is not None:
                continue
            claim = streams.key("fetching", source.id, entry.url)
            if not await self._redis.set(claim, "1", nx=True, ex=CLAIM_TTL):
                continue  # another replica is fetching it
            try:
                if await self._redis.zscore(seen_key, entry.url) is not None:
                    continue  # another replica finished it between our two looks
                if await self._fetch_entry(source, feed.title, entry):
                    published += 1
                await self._redis.zadd(seen_key, {entry.url: time.time()}, nx=True)
                await self._redis.hdel(streams.key("attempts", source.id), entry.url)
            except RetryableError as exc:
                if exc.retry_after is not None:
                    throttled.add(host)
                await self._retry_later(source, entry.url, exc)
            finally:
                await self._redis.delete(claim)
        return published

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

    async def _fetch_entry(self, source: Source, feed_title: str | None,
                           entry: FeedEntry) -> bool:
        discovered_at = datetime.now(UTC)
        log = get_logger(source_id=source.id, url=entry.url)
        try:
            with FETCH_DURATION.labels(kind="page").time():
                page = await self._fetcher.get(entry.url)
        except RetryableError:
            PAGES_FETCHED.labels(source_id=source.id, outcome="network_error").inc()
            raise
        except Exception as exc:  # PermanentError, or anything a bad link can raise
            outcome = ("too_large" if isinstance(exc, TooLargeError)
                       else "http_error" if isinstance(exc, PermanentError) else "error")
            PAGES_FETCHED.labels(source_id=source.id, outcome=outcome).inc()
            original = orjson.dumps({"url": entry.url, "source_id": source.id})
            await self._dead_letter("crawler", streams.PAGES, None, original, 1,
                                    f"{type(exc).__name__}: {exc}")
            return False
        PAGES_FETCHED.labels(source_id=source.id, outcome="ok").inc()
        PAGE_BYTES.observe(len(page.body))
        message = PageFetched(
            source_id=source.id, source_title=source.title or feed_title, url=entry.url,
            final_url=page.final_url, status=page.status, content_type=page.content_type,
            charset=page.charset, body=page.body, entry_title=entry.title,
            entry_published=entry.published, discovered_at=discovered_at,
            fetched_at=datetime.now(UTC))
        await self._publish(message)
        log.info("page_fetched", bytes=len(page.body), status=page.status,
                 final_url=page.final_url, fetch_s=round(page.elapsed, 3))
        return True


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:  # e.g. "http://[::1/x": the fetch reports it properly
        return None
