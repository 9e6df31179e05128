"""The parser service: ``sokbo.pages`` → decode → extract → ``sokbo.articles``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sokbo import streams
from sokbo.context import ServiceContext
from sokbo.errors import PermanentError
from sokbo.logs import get_logger
from sokbo.messages import PageFetched
from sokbo.observability import ARTICLES_PARSED
from sokbo_parser.article import build_article
from sokbo_parser.decode import decode_html
from sokbo_parser.extract import extract_article


def register(ctx: ServiceContext) -> None:
    """Subscribe the parser to ``sokbo.pages`` in the ``parser`` group."""

    async def handle(page: PageFetched) -> None:
        log = get_logger(source_id=page.source_id, url=page.final_url)
        decoded = decode_html(page.body, page.charset)
        try:  # CPU-bound: keep the event loop (and other services in `run all`) responsive
            extracted = await asyncio.to_thread(extract_article, decoded.text, page.final_url)
        except PermanentError:
            ARTICLES_PARSED.labels(outcome="no_text").inc()
            raise
        article = build_article(page, decoded, extracted, now=datetime.now(UTC))
        await ctx.publish(article, streams.ARTICLES)
        ARTICLES_PARSED.labels(outcome="ok").inc()
        log.info("article_parsed", article_id=article.article_id, title=article.title,
                 encoding=decoded.encoding, encoding_source=decoded.source,
                 chars=len(article.text), language=article.language)

    ctx.subscribe(streams.PAGES, PageFetched, handle, service="parser")
