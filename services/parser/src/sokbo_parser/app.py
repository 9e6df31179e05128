"""The parser service: ``sokbo.pages`` → decode → extract → ``sokbo.articles``."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

from sokbo import streams
from sokbo.context import ServiceContext
from sokbo.errors import PermanentError
from sokbo.logs import get_logger, quiet_extraction_libraries
from sokbo.messages import ArticleParsed, PageFetched
from sokbo.observability import (
    ARTICLES_PARSED,
    EXTRACTION_DURATION,
    EXTRACTION_FULL,
    EXTRACTION_WORKER_RESTARTS,
    STAGE_LATENCY,
)
from sokbo_parser.article import parse_page


class WorkerCrashed(RuntimeError):
    """An extraction process died (killed, out of memory, a crash in lxml) on a page.

    Not permanent: the entry stays pending and is retried, and dead-lettered after
    ``delivery.max_deliveries`` like any failure; a new pool is started.
    """


def timed_parse(page: PageFetched) -> tuple[ArticleParsed, str, str, bool, float]:
    """Parse *page* (in a worker process or thread): article, encoding, its source,
    whether the full extraction ran, seconds taken.  Module-level: it is pickled."""
    started = time.perf_counter()
    article, decoded, full = parse_page(page, now=datetime.now(UTC))
    return article, decoded.encoding, decoded.source, full, time.perf_counter() - started


class Extractors:
    """Where pages are parsed: a thread of this process (``workers`` 1) or a pool of
    ``workers`` processes, started on first use (spawned: no copy of the event loop)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    async def parse(self, page: PageFetched) -> tuple[ArticleParsed, str, str, bool, float]:
        """Run :func:`timed_parse` off the event loop.

        Raises:
            PermanentError: from :func:`parse_page`.
            WorkerCrashed: the process parsing *page* died.
        """
        if self.workers == 1:
            return await asyncio.to_thread(timed_parse, page)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=quiet_extraction_libraries)
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, timed_parse, page)
        except BrokenProcessPool as exc:
            if self._pool is pool:  # the first to see it starts a new pool
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                EXTRACTION_WORKER_RESTARTS.inc()
            raise WorkerCrashed(f"an extraction process died parsing {page.final_url}; "
                                "the page is retried, then dead-lettered") from exc

    async def aclose(self) -> None:
        """Stop the worker processes (in-flight pages are left pending)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def register(ctx: ServiceContext) -> None:
    """Subscribe the parser to ``sokbo.pages`` in the ``parser`` group.

    ``parser.workers`` pages are parsed at once (see :class:`Extractors`).  Parsed
    pages are deleted from the stream once their article is published: raw bodies
    are large and nothing reads them again.
    """
    extractors = Extractors(ctx.settings.parser.workers)
    ctx.cleanup.append(extractors.aclose)

    async def handle(page: PageFetched) -> None:
        try:  # CPU-bound: keep the event loop (and other services in `run all`) responsive
            article, encoding, source, full, seconds = await extractors.parse(page)
        except PermanentError:
            ARTICLES_PARSED.labels(outcome="no_text").inc()
            raise
        EXTRACTION_DURATION.observe(seconds)
        if full:
            EXTRACTION_FULL.inc()
        await ctx.publish(article, streams.ARTICLES)
        ARTICLES_PARSED.labels(outcome="ok").inc()
        STAGE_LATENCY.labels(stage="fetch_to_parse").observe(
            max(0.0, (article.parsed_at - article.fetched_at).total_seconds()))
        get_logger(url=page.final_url).info(
            "article_parsed", article_id=article.article_id, title=article.title,
            encoding=encoding, encoding_source=source, chars=len(article.text),
            language=article.language, full_extraction=full)

    ctx.subscribe(streams.PAGES, PageFetched, handle, service="parser", delete_done=True,
                  concurrency=extractors.workers)
