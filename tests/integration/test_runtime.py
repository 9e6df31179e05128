"""Consumer groups, pending entries, claiming and dead letters against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import orjson
import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker

from sokbo import streams
from sokbo.config import Settings
from sokbo.context import ServiceContext, ensure_groups
from sokbo.errors import PermanentError
from sokbo.messages import PageFetched, encode

pytestmark = pytest.mark.integration


def page(n: int) -> PageFetched:
    now = datetime.now(UTC)
    return PageFetched(source_id="test", url=f"http://x/{n}", final_url=f"http://x/{n}",
                       status=200, body=f"<p>{n}</p>".encode(), discovered_at=now,
                       fetched_at=now)


@asynccontextmanager
async def replica(redis_url: str, handler: Callable[[PageFetched], Awaitable[None]], *,
                  instance: str, claim_idle: float = 60.0, max_deliveries: int = 5
                  ) -> AsyncIterator[ServiceContext]:
    settings = Settings(redis_url=redis_url,
                        delivery={"claim_idle": claim_idle, "max_deliveries": max_deliveries})
    broker = RedisBroker(redis_url, graceful_timeout=2.0)
    ctx = ServiceContext(settings=settings, broker=broker, redis=aioredis.from_url(redis_url),
                         instance=instance)
    ctx.subscribe(streams.PAGES, PageFetched, handler, service="parser")
    await ensure_groups(ctx.redis, [streams.PAGES])
    await broker.start()
    try:
        yield ctx
    finally:
        await broker.stop()
        await ctx.redis.aclose()


async def wait_for(predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0
                   ) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = predicate()
        if await result if asyncio.iscoroutine(result) else result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def publish(redis_url: str, message: PageFetched) -> None:
    """Append *message* the way services do (FastStream's message format)."""
    async with RedisBroker(redis_url) as broker:
        await broker.publish(encode(message), stream=streams.PAGES)


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)


async def test_two_consumers_in_one_group_share_the_work(redis_url, redis_client) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def handler(name: str):
        async def handle(message: PageFetched) -> None:
            seen[name].append(message.url)
            await asyncio.sleep(0.02)
        return handle

    async with replica(redis_url, handler("a"), instance="a"), \
            replica(redis_url, handler("b"), instance="b"):
        for n in range(40):
            await publish(redis_url, page(n))
        await wait_for(lambda: len(seen["a"]) + len(seen["b"]) == 40)
    urls = seen["a"] + seen["b"]
    assert sorted(urls) == sorted(f"http://x/{n}" for n in range(40))  # each exactly once
    assert seen["a"] and seen["b"], "both replicas should have taken part"
    pending = await redis_client.xpending(streams.PAGES, "parser")
    assert pending["pending"] == 0


async def test_entry_published_before_the_group_exists_is_not_skipped(redis_url, redis_client
                                                                     ) -> None:
    got: list[str] = []
    await publish(redis_url, page(1))

    async def handle(message: PageFetched) -> None:
        got.append(message.url)

    async with replica(redis_url, handle, instance="late"):
        await wait_for(lambda: got == ["http://x/1"])


async def test_failed_entry_stays_pending_then_is_claimed_and_retried(redis_url, redis_client
                                                                     ) -> None:
    attempts: list[str] = []

    async def flaky(message: PageFetched) -> None:
        attempts.append(message.url)
        if len(attempts) == 1:
            raise ConnectionError("downstream unavailable")

    async with replica(redis_url, flaky, instance="a", claim_idle=0.5):
        await publish(redis_url, page(7))
        await wait_for(lambda: len(attempts) == 1)
        await asyncio.sleep(0.1)
        pending = await redis_client.xpending(streams.PAGES, "parser")
        assert pending["pending"] == 1  # left pending, not acked, not lost
        await wait_for(lambda: len(attempts) == 2)
        await wait_for(lambda: _pending_count(redis_client))
    assert attempts == ["http://x/7", "http://x/7"]


async def _pending_count(client: aioredis.Redis) -> bool:
    return (await client.xpending(streams.PAGES, "parser"))["pending"] == 0


async def test_poison_entry_is_dead_lettered_after_max_deliveries(redis_url, redis_client
                                                                 ) -> None:
    attempts: list[int] = []

    async def always_fails(message: PageFetched) -> None:
        attempts.append(1)
        raise RuntimeError("boom")

    async with replica(redis_url, always_fails, instance="a", claim_idle=0.2,
                       max_deliveries=2):
        await publish(redis_url, page(9))
        await wait_for(lambda: _dead_letters(redis_client), timeout=15)
        await wait_for(lambda: _pending_count(redis_client))
    assert len(attempts) == 2
    entry = await _dead_letters(redis_client)
    assert entry["stage"] == "parser" and entry["deliveries"] == 3
    assert entry["error"].endswith("last error: RuntimeError: boom")
    assert entry["original"]["url"] == "http://x/9"


async def test_permanent_error_is_dead_lettered_at_once(redis_url, redis_client) -> None:
    async def bad_page(message: PageFetched) -> None:
        raise PermanentError("no article text found")

    async with replica(redis_url, bad_page, instance="a"):
        await publish(redis_url, page(3))
        await wait_for(lambda: _dead_letters(redis_client))
        await wait_for(lambda: _pending_count(redis_client))
    entry = await _dead_letters(redis_client)
    assert entry["error"] == "no article text found" and entry["deliveries"] == 1


async def test_invalid_message_is_dead_lettered_not_crashing(redis_url, redis_client) -> None:
    handled: list[PageFetched] = []

    async def handle(message: PageFetched) -> None:
        handled.append(message)

    async with replica(redis_url, handle, instance="a"):
        await redis_client.xadd(streams.PAGES, {"__data__": b'{"not": "a page"}'})
        await publish(redis_url, page(4))
        await wait_for(lambda: len(handled) == 1)
        await wait_for(lambda: _dead_letters(redis_client))
    assert "invalid PageFetched" in (await _dead_letters(redis_client))["error"]


async def _dead_letters(client: aioredis.Redis) -> dict | None:
    entries = await client.xrange(streams.DEAD_LETTER)
    if not entries:
        return None
    assert entries[0][1][b"stage"]  # plain fields, readable with redis-cli
    return orjson.loads(entries[0][1][b"data"])


def test_a_taken_metrics_port_is_a_clear_start_up_error(tmp_path, redis_url) -> None:
    import socket

    from sokbo.cli import main

    config = tmp_path / "sokbo.yaml"
    config.write_text(f"redis_url: {redis_url}\n")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", "parser", "--config", str(config), "--metrics-port", str(port)]) == 1


def test_unreachable_redis_is_a_clear_start_up_error(tmp_path, capsys) -> None:
    from sokbo.cli import main
    from tests.servers import free_port

    config = tmp_path / "sokbo.yaml"
    config.write_text(f"redis_url: redis://:hunter2@127.0.0.1:{free_port()}/0\n")
    assert main(["run", "parser", "--config", str(config), "--metrics-port", "0"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach Redis at redis://127.0.0.1/0" in err and "hunter2" not in err


async def test_a_vanished_consumer_group_is_recreated(redis_url, redis_client) -> None:
    from sokbo.runtime import supervise

    got: list[str] = []

    async def handle(message: PageFetched) -> None:
        got.append(message.url)

    async with replica(redis_url, handle, instance="a") as ctx:
        watchdog = asyncio.create_task(supervise(ctx, period=0.2))
        await publish(redis_url, page(1))
        await wait_for(lambda: got == ["http://x/1"])
        await redis_client.delete(streams.PAGES)  # as a Redis restart without persistence
        await asyncio.sleep(1.0)
        await publish(redis_url, page(2))
        await wait_for(lambda: got == ["http://x/1", "http://x/2"], timeout=15)
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
