"""The notifier's once-per-(alert, channel) guarantee against a real Redis and webhook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker

from sokbo import streams
from sokbo.config import Settings
from sokbo.context import ServiceContext
from sokbo.errors import RetryableError
from sokbo.messages import AlertRaised, ArticleSummary, Hit, Snippet
from sokbo_notifier.app import register
from tests.servers import SlackServer

pytestmark = pytest.mark.integration


def alert() -> AlertRaised:
    now = datetime.now(UTC)
    text = "아시아 3번째 지사인 'OpenAI 코리아'의 출범을 공식 선언했다."
    start = text.index("OpenAI")
    return AlertRaised(
        alert_id="a1b2c3d4e5f60718", rule_id="openai-korea", query='"OpenAI 코리아"',
        article=ArticleSummary(article_id="0123456789abcdef", url="https://news.example.kr/1",
                               title="<!channel> OpenAI 코리아 출범", source_id="fetv"),
        matched_terms=["OpenAI 코리아"],
        hits=[Hit(field="text", term="OpenAI 코리아", start=start, end=start + 11)],
        snippets=[Snippet(field="text", text=text, highlights=[(start, start + 11)])],
        channels=["team-slack"], discovered_at=now, fetched_at=now, parsed_at=now, raised_at=now)


async def notifier(redis_url: str, webhook: str) -> tuple[ServiceContext, object]:
    settings = Settings(redis_url=redis_url, channels=[
        {"id": "team-slack", "kind": "slack", "webhook_url": webhook}])
    ctx = ServiceContext(settings=settings, broker=RedisBroker(redis_url),
                         redis=aioredis.from_url(redis_url), instance="test")
    handlers: list = []
    ctx.subscribe = lambda stream, model, handler, service: handlers.append(handler)
    register(ctx)
    return ctx, handlers[0]


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)


async def test_each_alert_reaches_a_channel_once_across_retries_and_restarts(redis_url) -> None:
    slack = SlackServer()
    webhook = slack.start()
    try:
        for _ in range(2):  # two processes, one after the other
            ctx, handle = await notifier(redis_url, webhook)
            await handle(alert())
            await handle(alert())  # redelivered entry
            for close in ctx.cleanup:
                await close()
            await ctx.redis.aclose()
    finally:
        slack.stop()
    assert len(slack.posts) == 1
    text = str(slack.posts[0].payload)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    client = aioredis.from_url(redis_url)
    assert await client.exists(streams.key("delivered", "a1b2c3d4e5f60718", "team-slack"))
    await client.aclose()


async def test_a_channel_that_keeps_failing_leaves_the_alert_pending(redis_url) -> None:
    slack = SlackServer(script=[(503, {}, b"unavailable")] * 3)
    webhook = slack.start()
    ctx, handle = await notifier(redis_url, webhook)
    try:
        with pytest.raises(RetryableError):
            await asyncio.wait_for(handle(alert()), 30)
        assert slack.posts == [] and slack.rejected == 3
        await handle(alert())  # the claimer's retry, once Slack is back
        assert len(slack.posts) == 1
    finally:
        slack.stop()
        for close in ctx.cleanup:
            await close()
        await ctx.redis.aclose()


async def test_a_claimer_does_not_post_while_another_delivery_is_in_flight(redis_url) -> None:
    import threading

    gate = threading.Event()
    slack = SlackServer()
    webhook = slack.start()
    original = slack._server.RequestHandlerClass.do_POST

    def slow_post(handler) -> None:  # the webhook answers only once the claimer has tried
        gate.wait(10)
        original(handler)

    slack._server.RequestHandlerClass.do_POST = slow_post
    first_ctx, first = await notifier(redis_url, webhook)
    second_ctx, second = await notifier(redis_url, webhook)
    try:
        in_flight = asyncio.create_task(first(alert()))
        await asyncio.sleep(0.3)
        with pytest.raises(RetryableError):  # the claimer backs off: left pending
            await second(alert())
        gate.set()
        await in_flight
        await second(alert())  # the claimer's later retry sees it sent
    finally:
        gate.set()
        slack.stop()
        for ctx in (first_ctx, second_ctx):
            for close in ctx.cleanup:
                await close()
            await ctx.redis.aclose()
    assert len(slack.posts) == 1
