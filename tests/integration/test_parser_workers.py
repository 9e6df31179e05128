"""The parser service with ``parser.workers`` extraction processes, against a real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker
from faststream.redis.parser.binary import BinaryMessageFormatV1

from sokbo import streams
from sokbo.config import Settings
from sokbo.context import ServiceContext, ensure_groups
from sokbo.messages import ArticleParsed, PageFetched, encode
from sokbo.observability import EXTRACTION_WORKER_RESTARTS
from sokbo_parser.app import Extractors, WorkerCrashed, register

pytestmark = pytest.mark.integration

PAGES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "pages").glob("*.html"))


def page(path: Path, n: int) -> PageFetched:
    now = datetime.now(UTC)
    url = f"http://news.example/{n}/{path.stem}"
    return PageFetched(source_id="test", url=url, final_url=url, status=200,
                       body=path.read_bytes(), discovered_at=now, fetched_at=now)


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)


async def test_two_workers_parse_every_page_once_and_leave_nothing_pending(
        redis_url: str, redis_client: aioredis.Redis) -> None:
    settings = Settings(redis_url=redis_url, parser={"workers": 2})
    broker = RedisBroker(redis_url, graceful_timeout=5.0)
    ctx = ServiceContext(settings=settings, broker=broker, redis=aioredis.from_url(redis_url),
                         instance="w")
    register(ctx)
    await ensure_groups(ctx.redis, [streams.PAGES])
    messages = [page(path, n) for n in range(3) for path in PAGES]
    await broker.start()
    try:
        for message in messages:
            await broker.publish(encode(message), stream=streams.PAGES)
        deadline = asyncio.get_running_loop().time() + 60  # includes spawning two processes
        while await redis_client.xlen(streams.ARTICLES) < len(messages):
            assert asyncio.get_running_loop().time() < deadline, "articles not all parsed"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)  # the last ack
    finally:
        await broker.stop()
        for close in ctx.cleanup:
            await close()
        await ctx.redis.aclose()
    entries = await redis_client.xrange(streams.ARTICLES)
    urls = [ArticleParsed.model_validate_json(
        BinaryMessageFormatV1.parse(fields[b"__data__"])[0]).url for _, fields in entries]
    assert sorted(urls) == sorted(message.url for message in messages)  # each once
    pending = await redis_client.xpending(streams.PAGES, streams.GROUPS[streams.PAGES])
    assert pending["pending"] == 0
    assert await redis_client.xlen(streams.PAGES) == 0  # parsed pages are deleted


async def test_a_dead_extraction_process_fails_one_page_and_the_pool_comes_back() -> None:
    extractors = Extractors(2)
    try:
        article = (await extractors.parse(page(PAGES[0], 0)))[0]
        assert article.title
        pool = extractors._pool
        assert pool is not None
        before = EXTRACTION_WORKER_RESTARTS._value.get()
        for process in list(pool._processes.values()):  # what an OOM kill does
            os.kill(process.pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashed, match="extraction process died"):
            for _ in range(3):  # the pool notices the death on its next use
                await extractors.parse(page(PAGES[1], 1))
                await asyncio.sleep(0.2)
        assert EXTRACTION_WORKER_RESTARTS._value.get() == before + 1
        article = (await extractors.parse(page(PAGES[1], 2)))[0]  # a new pool
        assert article.text
    finally:
        await extractors.aclose()
