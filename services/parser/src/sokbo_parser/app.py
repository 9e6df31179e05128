"""The parser service: ``sokbo.pages`` → decode → extract → ``sokbo.articles``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sokbo import streams
from sokbo.context import ServiceContext
from sokbo.errors import PermanentError
from sokbo.logs import get_logger
from sokbo.messages import ArticleParsed, PageFetched
from sokbo.observability import ARTICLES_PARSED, EXTRACTION_DURATION, STAGE_LATENCY
from sokbo_parser.article import parse_page
from sokbo_parser.decode import DecodedPage


def register(ctx: ServiceContext) -> None:
    """Subscribe the parser to ``sokbo.pages`` in the ``parser`` group.

    Parsed pages are deleted from the stream once their article is published: raw
    bodies are large and nothing reads them again.
    """

    def timed_parse(page: PageFetched) -> tuple[ArticleParsed, DecodedPage]:
        with EXTRACTION_DURATION.time():
            return parse_page(page, now=datetime.now(UTC))

    async def handle(page: PageFetched) -> None:
        try:  # CPU-bound: keep the event loop (and other services in `run all`) responsive
            article, decoded = await asyncio.to_thread(timed_parse, page)
        except PermanentError:
            ARTICLES_PARSED.labels(outcome="no_text").inc()
            raise
        await ctx.publish(article, streams.ARTICLES)
        ARTICLES_PARSED.labels(outcome="ok").inc()
        STAGE_LATENCY.labels(stage="fetch_to_parse").observe(
            max(0.0, (article.parsed_at - article.fetched_at).total_seconds()))
        get_logger(url=page.final_url).info(
            "article_parsed", article_id=article.article_id, title=article.title,
            encoding=decoded.encoding, encoding_source=decoded.source, chars=len(article.text),
            language=article.language)

    ctx.subscribe(streams.PAGES, PageFetched, handle, service="parser", delete_done=True)
