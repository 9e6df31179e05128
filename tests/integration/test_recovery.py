"""Recovery of consumer groups against a real Redis: claims, trimming, NOGROUP, poison,
SIGTERM, stable consumer names and idle consumers (B21, B22, B23, B25, B26)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker
from structlog.testing import capture_logs

from sokbo import groups, runtime, streams
from sokbo.config import Settings
from sokbo.context import ServiceContext
from sokbo.messages import PageFetched, encode
from sokbo.observability import REGISTRY
from tests.recovery_worker import EntryPoint
from tests.servers import ROOT

pytestmark = pytest.mark.integration

PAGES, GROUP = streams.PAGES, streams.GROUPS[streams.PAGES]


def page(n: int) -> PageFetched:
    now = datetime.now(UTC)
    return PageFetched(source_id="test", url=f"http://x/{n}", final_url=f"http://x/{n}",
                       status=200, body=f"<p>{n}</p>".encode(), discovered_at=now,
                       fetched_at=now)


async def publish(redis_url: str, *numbers: int) -> None:
    """Append pages the way services do (FastStream's message format)."""
    async with RedisBroker(redis_url) as broker:
        for n in numbers:
            await broker.publish(encode(page(n)), stream=PAGES)


@asynccontextmanager
async def service(redis_url: str, handler: Callable[[PageFetched], Awaitable[None]],
                  monkeypatch: pytest.MonkeyPatch, *, instance: str, **delivery: float
                  ) -> AsyncIterator[None]:
    """One replica built by :func:`sokbo.runtime.build_app`, started and stopped as by uvicorn."""

    def register(ctx: ServiceContext) -> None:
        ctx.subscribe(PAGES, PageFetched, handler, service="parser")

    monkeypatch.setattr(runtime, "available_services", lambda: {"parser": EntryPoint(register)})
    settings = Settings(redis_url=redis_url, metrics_port=0,
                        delivery={"claim_idle": 60, **delivery})
    app = runtime.build_app(settings, ["parser"], instance=instance, upkeep_period=0.2)
    async with app.start_lifespan_context():
        yield


async def wait_for(predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0
                   ) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = predicate()
        if await result if asyncio.iscoroutine(result) else result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def dead_consumer_reads(client: aioredis.Redis, consumer: str, count: int,
                              *, again: int = 0) -> list[bytes]:
    """Read *count* entries as *consumer* and never ack them (a replica that then died);
    *again* re-reads its pending entries that many more times (deliveries counted)."""
    await client.xgroup_create(PAGES, GROUP, id="0", mkstream=True)
    reply = await client.xreadgroup(GROUP, consumer, {PAGES: ">"}, count=count)
    for _ in range(again):
        await client.xreadgroup(GROUP, consumer, {PAGES: "0"})
    return [entry_id for entry_id, _ in reply[0][1]]


async def pending(client: aioredis.Redis) -> int:
    return (await client.xpending(PAGES, GROUP))["pending"]


async def drained(client: aioredis.Redis) -> bool:
    return await pending(client) == 0


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)


# --- claiming --------------------------------------------------------------------------


async def test_a_dead_consumers_pending_entry_is_claimed_after_claim_idle(
        redis_url, redis_client, monkeypatch) -> None:
    await publish(redis_url, 1)
    await dead_consumer_reads(redis_client, "parser@gone", 1)
    handled: list[tuple[str, float]] = []
    started = asyncio.get_running_loop().time()

    async def handle(message: PageFetched) -> None:
        handled.append((message.url, asyncio.get_running_loop().time() - started))

    async with service(redis_url, handle, monkeypatch, instance="b", claim_idle=1.0):
        await wait_for(lambda: handled, timeout=10)
        await wait_for(lambda: drained(redis_client))  # acked: nothing pending
        assert await pending(redis_client) == 0
    assert [url for url, _ in handled] == ["http://x/1"]
    assert handled[0][1] >= 0.9  # not before claim_idle


async def test_a_slow_live_handler_keeps_its_entry(redis_url, redis_client, monkeypatch) -> None:
    calls: Counter[str] = Counter()

    async def slow(message: PageFetched) -> None:
        calls[message.url] += 1
        await asyncio.sleep(2.5)  # four times claim_idle

    async with service(redis_url, slow, monkeypatch, instance="a", claim_idle=0.6):
        await publish(redis_url, 1)
        await wait_for(lambda: calls)
        async with service(redis_url, slow, monkeypatch, instance="b", claim_idle=0.6):
            await wait_for(lambda: drained(redis_client), timeout=10)
            assert await pending(redis_client) == 0
    assert calls == {"http://x/1": 1}  # b's claimer never took it from a


async def test_a_crashed_consumer_is_deleted_only_after_its_entries_are_claimed(
        redis_url, redis_client, monkeypatch) -> None:
    """B23: alert-7f9c read 10, acked 3, was killed; a new replica and cleanup run."""
    await publish(redis_url, *range(10))
    ids = await dead_consumer_reads(redis_client, "parser@alert-7f9c", 10)
    await redis_client.xack(PAGES, GROUP, *ids[:3])
    calls: Counter[str] = Counter()

    async def handle(message: PageFetched) -> None:
        calls[message.url] += 1

    async with service(redis_url, handle, monkeypatch, instance="alert-2b1d",
                       claim_idle=0.5, consumer_expiry=2.0):
        await wait_for(lambda: sum(calls.values()) == 7, timeout=15)
        await wait_for(lambda: drained(redis_client))
        await wait_for(lambda: _consumer_gone(redis_client, b"parser@alert-7f9c"), timeout=10)
    assert calls == {f"http://x/{n}": 1 for n in range(3, 10)}


async def _consumer_gone(client: aioredis.Redis, name: bytes) -> bool:
    return name not in {c["name"] for c in await client.xinfo_consumers(PAGES, GROUP)}


async def test_idle_consumer_cleanup_never_deletes_one_with_pending_entries(
        redis_url, redis_client) -> None:
    await publish(redis_url, 1, 2, 3)
    await redis_client.xgroup_create(PAGES, GROUP, id="0")

    async def read(consumer: str, *, ack: bool) -> None:
        ((_, ((entry_id, _),)),) = await redis_client.xreadgroup(GROUP, consumer, {PAGES: ">"},
                                                                 count=1)
        if ack:
            await redis_client.xack(PAGES, GROUP, entry_id)

    await read("parser@busy", ack=False)  # died holding an entry
    await read("parser@done", ack=True)  # died with nothing pending
    await asyncio.sleep(0.3)
    await read("parser@live", ack=True)  # just read: not idle
    removed = await groups.forget_idle_consumers(redis_client, PAGES, GROUP, idle=0.25)
    assert removed == ["parser@done"]
    left = {c["name"]: c["pending"] for c in await redis_client.xinfo_consumers(PAGES, GROUP)}
    assert left == {b"parser@busy": 1, b"parser@live": 0}


# --- stable names: a restarted replica resumes its own work ------------------------------


def test_consumer_names_are_stable_where_the_platform_names_the_replica() -> None:
    assert streams.default_instance({"HOSTNAME": "notifier-7c9d-x2"}) == "notifier-7c9d-x2"
    assert streams.default_instance({"HOSTNAME": "box", "SOKBO_INSTANCE": "n2"}) == "n2"
    assert streams.default_instance({}).endswith(f":{os.getpid()}")
    assert streams.consumer_name("notifier", "notifier-7c9d-x2") == "notifier@notifier-7c9d-x2"


async def test_a_restarted_replica_resumes_its_own_pending_entries_at_once(
        redis_url, redis_client, monkeypatch) -> None:
    await publish(redis_url, 1, 2, 3)
    await dead_consumer_reads(redis_client, "parser@pod-1", 2)  # died with 1 and 2
    handled: list[str] = []

    async def handle(message: PageFetched) -> None:
        handled.append(message.url)

    before = metric("sokbo_pending_entries_resumed_total", stream=PAGES)
    async with service(redis_url, handle, monkeypatch, instance="pod-1", claim_idle=60):
        await wait_for(lambda: len(handled) == 3, timeout=5)  # far less than claim_idle
        await wait_for(lambda: drained(redis_client))
    assert sorted(handled) == ["http://x/1", "http://x/2", "http://x/3"]
    assert metric("sokbo_pending_entries_resumed_total", stream=PAGES) - before == 2


# --- poison messages ------------------------------------------------------------------------


async def test_a_poison_entry_is_dead_lettered_after_max_deliveries(
        redis_url, redis_client, monkeypatch) -> None:
    attempts: list[str] = []

    async def always_fails(message: PageFetched) -> None:
        attempts.append(message.url)
        raise ValueError("cannot parse this page")

    async with service(redis_url, always_fails, monkeypatch, instance="a", claim_idle=0.3,
                       max_deliveries=5):
        await publish(redis_url, 9)
        await wait_for(lambda: redis_client.xlen(streams.DEAD_LETTER), timeout=20)
        await wait_for(lambda: drained(redis_client))
    assert attempts == ["http://x/9"] * 5
    ((_, fields),) = await redis_client.xrange(streams.DEAD_LETTER)
    record = orjson.loads(fields[b"data"])
    assert fields[b"stage"] == b"parser" and record["stream"] == PAGES
    assert record["deliveries"] == 6
    assert record["error"].endswith("last error: ValueError: cannot parse this page")
    assert record["original"]["url"] == "http://x/9"


async def test_an_entry_that_keeps_killing_its_replica_is_dead_lettered_on_restart(
        redis_url, redis_client, monkeypatch) -> None:
    """Five runs of pod-1 died on the entry; the sixth must not try it again."""
    await publish(redis_url, 4)
    await dead_consumer_reads(redis_client, "parser@pod-1", 1, again=4)
    handled: list[str] = []

    async def handle(message: PageFetched) -> None:
        handled.append(message.url)

    async with service(redis_url, handle, monkeypatch, instance="pod-1", max_deliveries=5):
        await wait_for(lambda: redis_client.xlen(streams.DEAD_LETTER))
        await wait_for(lambda: drained(redis_client))
    assert handled == []
    ((_, fields),) = await redis_client.xrange(streams.DEAD_LETTER)
    assert orjson.loads(fields[b"data"])["deliveries"] == 6


# --- trimming -------------------------------------------------------------------------------


async def test_pending_entries_trimmed_away_are_logged_and_counted(redis_url, redis_client
                                                                   ) -> None:
    async with RedisBroker(redis_url) as broker:
        for n in range(300):  # three radix-tree nodes of 100: MAXLEN ~ trims whole nodes
            await broker.publish(encode(page(n)), stream=PAGES)
    ids = await dead_consumer_reads(redis_client, "parser@slow", 5)
    before = metric("sokbo_pending_entries_lost_total", stream=PAGES, group=GROUP)
    with capture_logs() as logs:
        upkeep = asyncio.create_task(groups.upkeep(redis_client, [PAGES], maxlen=100,
                                                   consumer_expiry=3600, period=0.1))
        await wait_for(lambda: any(e["event"] == "pending_entries_lost" for e in logs))
        await asyncio.sleep(0.3)  # more rounds: each loss is counted once
        upkeep.cancel()
    assert await redis_client.xlen(PAGES) <= 200
    assert await pending(redis_client) == 0  # dropped from the PEL, not left to confuse
    assert metric("sokbo_pending_entries_lost_total", stream=PAGES, group=GROUP) - before == 5
    (event,) = [e for e in logs if e["event"] == "pending_entries_lost"]
    assert event["count"] == 5 and event["entry_ids"] == [i.decode() for i in ids]
    assert metric("sokbo_consumer_group_lag", stream=PAGES, group=GROUP) == 295


async def test_a_replica_survives_its_own_pending_entries_being_trimmed(
        redis_url, redis_client, monkeypatch) -> None:
    await publish(redis_url, 1, 2)
    gone = await dead_consumer_reads(redis_client, "parser@pod-1", 1)
    await redis_client.xdel(PAGES, *gone)  # as an operator's XTRIM or XDEL would
    handled: list[str] = []

    async def handle(message: PageFetched) -> None:
        handled.append(message.url)

    before = metric("sokbo_pending_entries_lost_total", stream=PAGES, group=GROUP)
    async with service(redis_url, handle, monkeypatch, instance="pod-1"):
        await wait_for(lambda: handled == ["http://x/2"])
        await wait_for(lambda: drained(redis_client))
    assert metric("sokbo_pending_entries_lost_total", stream=PAGES, group=GROUP) - before == 1


async def test_lag_near_the_cap_is_warned(redis_url, redis_client) -> None:
    await redis_client.xgroup_create(PAGES, GROUP, id="$", mkstream=True)
    for n in range(900):
        await redis_client.xadd(PAGES, {"n": n})
    with capture_logs() as logs:
        upkeep = asyncio.create_task(groups.upkeep(redis_client, [PAGES], maxlen=1000,
                                                   consumer_expiry=3600, period=0.1))
        await wait_for(lambda: any(e["event"] == "consumer_group_lag_near_cap" for e in logs))
        await asyncio.sleep(0.3)
        upkeep.cancel()
    warnings = [e for e in logs if e["event"] == "consumer_group_lag_near_cap"]
    assert len(warnings) == 1 and warnings[0]["lag"] == 900  # once, not every round
    assert metric("sokbo_consumer_group_lag", stream=PAGES, group=GROUP) == 900


# --- NOGROUP: Redis flushed ------------------------------------------------------------------


async def test_groups_lost_to_a_flush_are_recreated_with_backoff(redis_url, redis_client
                                                                 ) -> None:
    """B21: FLUSHDB drops the group; while it cannot be recreated, attempts back off."""
    got: list[str] = []

    async def handle(message: PageFetched) -> None:
        got.append(message.url)

    settings = Settings(redis_url=redis_url, delivery={"claim_idle": 60})
    ctx = ServiceContext(settings=settings, broker=RedisBroker(redis_url),
                         redis=aioredis.from_url(redis_url), instance="a")
    ctx.subscribe(PAGES, PageFetched, handle, service="parser")
    await runtime.ensure_groups(ctx.redis, [PAGES])
    await ctx.broker.start()
    nogroup = metric("sokbo_stream_errors_total", stream=PAGES, error="NOGROUP")
    try:
        await publish(redis_url, 1)
        await wait_for(lambda: got == ["http://x/1"])
        await redis_client.flushdb()
        await wait_for(lambda: not any(s.running for s in ctx.broker.subscribers))
        await redis_client.set(PAGES, "not a stream")  # the group cannot be recreated yet
        with capture_logs() as logs:
            watchdog = asyncio.create_task(runtime.supervise(ctx, period=0.1, max_delay=0.8))
            await asyncio.sleep(3.0)
            failed = [e for e in logs if e["event"] == "subscriber_restart_failed"]
            await redis_client.delete(PAGES)
            await wait_for(lambda: all(s.running for s in ctx.broker.subscribers), timeout=5)
        await publish(redis_url, 2)
        await wait_for(lambda: got == ["http://x/1", "http://x/2"])
        watchdog.cancel()
    finally:
        await ctx.broker.stop()
        await ctx.redis.aclose()
    per_subscriber = Counter(e["stream"] for e in failed)
    assert per_subscriber[PAGES] <= 2 * 7  # ≤ 7 tries each in 3 s (a hot loop: hundreds)
    assert max(e["attempt"] for e in failed) >= 3 and "WRONGTYPE" in failed[0]["error"]
    assert any(e["event"] == "subscriber_restarted" for e in logs)
    assert metric("sokbo_stream_errors_total", stream=PAGES, error="NOGROUP") - nogroup == 2


# --- graceful shutdown -----------------------------------------------------------------------


async def test_sigterm_finishes_the_entry_in_flight_and_leaves_the_rest(
        redis_url, redis_client, monkeypatch, tmp_path: Path) -> None:
    """B26: SIGTERM while a handler runs: it finishes and is acked, nothing else was taken,
    the process exits 0, and another replica handles the rest."""
    await publish(redis_url, *range(5))
    journal = tmp_path / "journal.txt"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.recovery_worker", redis_url, "pod-1", "1.5",
         str(journal)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_for(lambda: journal.exists() and "start" in journal.read_text(), 20)
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 15)
    finally:
        worker.kill()
    output = worker.stdout.read().decode(errors="replace") if worker.stdout else ""
    assert code == 0, output
    assert journal.read_text() == "start http://x/0\ndone http://x/0\n", output
    assert await pending(redis_client) == 0  # the one done is acked, no other was read
    handled: list[str] = []

    async def handle(message: PageFetched) -> None:
        handled.append(message.url)

    async with service(redis_url, handle, monkeypatch, instance="pod-2"):
        await wait_for(lambda: len(handled) == 4)
        await wait_for(lambda: drained(redis_client))
    assert handled == [f"http://x/{n}" for n in range(1, 5)]


async def test_sigterm_exits_even_when_a_background_task_ignores_cancellation(
        redis_url, redis_client, tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.recovery_worker", redis_url, "pod-1", "0", str(journal),
         "stubborn"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_for(lambda: _group_exists(redis_client), timeout=20)  # it has started
        await asyncio.sleep(1.0)
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 20)  # not for ever
    finally:
        worker.kill()
    output = worker.stdout.read().decode(errors="replace") if worker.stdout else ""
    assert code == 0, output
    assert '"event":"task_did_not_stop"' in output and "stubborn" in output, output


async def _group_exists(client: aioredis.Redis) -> bool:
    return bool(await client.exists(PAGES)) and bool(await client.xinfo_groups(PAGES))


async def test_an_entry_abandoned_at_the_shutdown_deadline_is_handed_to_a_replica(
        redis_url, redis_client, monkeypatch) -> None:
    calls: list[str] = []

    async def stuck(message: PageFetched) -> None:
        calls.append("stuck")
        await asyncio.sleep(30)

    async def handle(message: PageFetched) -> None:
        calls.append("replica")

    async with service(redis_url, stuck, monkeypatch, instance="a", shutdown_grace=0.3):
        await publish(redis_url, 1)
        await wait_for(lambda: calls == ["stuck"])
    assert await pending(redis_client) == 1  # cancelled, not acked
    async with service(redis_url, handle, monkeypatch, instance="b", claim_idle=60):
        await wait_for(lambda: calls == ["stuck", "replica"], timeout=5)  # not 60 s
        await wait_for(lambda: drained(redis_client))
