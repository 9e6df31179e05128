"""HostGate: per-host politeness shared by replicas through a real Redis (bug case B05)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import redis.asyncio as aioredis

from sokbo.observability import REGISTRY
from sokbo_crawler.hosts import HostGate, host_of, parse_retry_after, throttle_delay

pytestmark = pytest.mark.integration

NEWS = "https://news.example.kr/news/{}"
OTHER = "https://other.example.kr/news/{}"
NOW = datetime(2024, 3, 5, 5, 0, 0, tzinfo=UTC)
SLACK = 0.02  # scheduling and clock jitter allowed in timings, seconds


# --- pure parts (no Redis) ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0),
    (" 2 ", 2.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("Tue, 05 Mar 2024 05:02:00 GMT", 120.0),  # IMF-fixdate
    ("Tuesday, 05-Mar-24 05:02:00 GMT", 120.0),  # RFC 850
    ("Tue Mar  5 05:02:00 2024", 120.0),  # asctime
    ("Tue, 05 Mar 2024 04:00:00 GMT", 0.0),  # in the past
    ("-1", None),
    ("soon", None),
    ("", None),
    ("1e3", None),
    ("9" * 400, float("inf")),
    ("Tue, 05 Mar 2024 25:61:00 GMT", None),
])
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_parse_retry_after_reads_a_naive_now_as_utc() -> None:
    assert parse_retry_after("Tue, 05 Mar 2024 05:00:30 GMT", NOW.replace(tzinfo=None)) == 30


@pytest.mark.parametrize(("retry_after", "expected"), [
    ("120", (120.0, "retry_after")),
    ("Tue, 05 Mar 2024 05:02:00 GMT", (120.0, "retry_after")),
    (30.0, (30.0, "retry_after")),
    ("86400", (3600.0, "capped")),
    (None, (60.0, "default")),
    ("garbage", (60.0, "default")),
    (float("nan"), (60.0, "default")),
    (float("inf"), (3600.0, "capped")),
    ("9" * 400, (3600.0, "capped")),
    (-5.0, (60.0, "default")),
])
def test_throttle_delay(retry_after, expected: tuple[float, str]) -> None:
    assert throttle_delay(retry_after, NOW, default=60.0, cap=3600.0) == expected


@pytest.mark.parametrize(("url", "host"), [
    ("https://News.Example.kr/a", "news.example.kr"),
    ("http://news.example.kr:80/a", "news.example.kr"),
    ("https://news.example.kr:8443/a", "news.example.kr:8443"),
    ("http://127.0.0.1:8080/", "127.0.0.1:8080"),
    ("javascript:alert(1)", None),
    ("http://[::1/x", None),
])
def test_host_of(url: str, host: str | None) -> None:
    assert host_of(url) == host


# --- against Redis -------------------------------------------------------------------------


@pytest.fixture
async def two_clients(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    """Two separate connections, as two replicas would have."""
    first, second = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    yield first, second
    await first.aclose()
    await second.aclose()


async def _visit(gate: HostGate, url: str, log: list[tuple[float, float, str]],
                 hold: float = 0.05, name: str = "") -> None:
    async with gate.slot(url):
        start = time.monotonic()
        await asyncio.sleep(hold)
        log.append((start, time.monotonic(), name or url))


def _assert_spaced(log: list[tuple[float, float, str]], delay: float) -> None:
    log = sorted(log)
    for (start, end, _), (next_start, _, _) in zip(log, log[1:], strict=False):
        assert next_start >= end, "two requests to one host overlapped"
        assert next_start - start >= delay - SLACK, f"{next_start - start:.3f} s < {delay}"


async def test_two_replicas_never_overlap_on_one_host(two_clients) -> None:
    gates = [HostGate(client, per_host_delay=0.2) for client in two_clients]
    log: list[tuple[float, float, str]] = []

    async def replica(gate: HostGate, name: str) -> None:
        for n in range(4):
            await _visit(gate, NEWS.format(n), log, name=name)

    started = time.monotonic()
    await asyncio.gather(replica(gates[0], "a"), replica(gates[1], "b"))
    assert len(log) == 8 and {name for *_, name in log} == {"a", "b"}
    _assert_spaced(log, 0.2)
    assert time.monotonic() - started >= 7 * 0.2 - SLACK


async def test_tasks_of_one_replica_queue_for_the_host(redis_client) -> None:
    gate = HostGate(redis_client, per_host_delay=0.1)
    log: list[tuple[float, float, str]] = []
    await asyncio.gather(*(_visit(gate, NEWS.format(n), log) for n in range(5)))
    _assert_spaced(log, 0.1)
    assert gate._local == {}  # no per-host state left behind in the process


async def test_different_hosts_proceed_in_parallel(two_clients) -> None:
    first, second = (HostGate(client, per_host_delay=5.0) for client in two_clients)
    log: list[tuple[float, float, str]] = []
    started = time.monotonic()
    await asyncio.gather(_visit(first, NEWS.format(1), log, hold=0.3),
                         _visit(second, OTHER.format(1), log, hold=0.3),
                         _visit(first, "http://127.0.0.1:8080/x", log, hold=0.3))
    assert time.monotonic() - started < 0.5
    assert max(start for start, *_ in log) < min(end for _, end, _ in log)  # all overlapped


@pytest.mark.parametrize("form", ["delay-seconds", "HTTP-date"])
async def test_retry_after_pauses_the_whole_host_for_every_replica(two_clients,
                                                                   form: str) -> None:
    header = "2" if form == "delay-seconds" else format_datetime(
        datetime.now(UTC) + timedelta(seconds=2.5), usegmt=True)  # whole seconds: 1.5–2.5 s
    throttler, other = (HostGate(client, per_host_delay=0.05) for client in two_clients)
    before = REGISTRY.get_sample_value("sokbo_host_throttled_total",
                                       {"outcome": "retry_after"}) or 0.0
    async with throttler.slot(NEWS.format(1)):  # GET → 429 with Retry-After
        paused = await throttler.throttle(NEWS.format(1), header)
    assert 1.0 < paused <= 2.5
    assert REGISTRY.get_sample_value("sokbo_host_throttled_total",
                                     {"outcome": "retry_after"}) == before + 1
    assert await other.throttled_for(NEWS.format(2)) > 1.0
    assert await other.throttled_for(OTHER.format(1)) == 0.0
    log: list[tuple[float, float, str]] = []
    throttled_at = time.monotonic()

    async def serve_other_host() -> None:
        for n in range(5):
            await _visit(other, OTHER.format(n), log, hold=0.01)

    await asyncio.gather(_visit(other, NEWS.format(2), log, hold=0.01), serve_other_host())
    news = [start for start, _, url in log if "news.example" in url]
    others = [start for start, _, url in log if "other.example" in url]
    assert news[0] - throttled_at >= paused - SLACK - 0.01
    assert max(others) < news[0], "the other host waited for the throttled one"
    assert await other.throttled_for(NEWS.format(2)) == 0.0


async def test_a_longer_pause_is_kept_and_garbage_gets_the_default(redis_client) -> None:
    gate = HostGate(redis_client, default_backoff=3.0, max_backoff=10.0)
    assert 2.9 < await gate.throttle(NEWS.format(1), "Soon, please") <= 3.0
    assert 2.9 < await gate.throttle(NEWS.format(1), "1") <= 3.0  # shorter: kept at ~3
    assert 9.9 < await gate.throttle(OTHER.format(1), "999999") <= 10.0  # capped
    assert 9.9 < await gate.throttled_for(OTHER.format(2)) <= 10.0


async def test_crawl_delay_is_honoured_across_replicas(two_clients) -> None:
    first, second = (HostGate(client, per_host_delay=0.05) for client in two_clients)
    await first.set_crawl_delay("https://news.example.kr", 0.4)
    log: list[tuple[float, float, str]] = []
    await asyncio.gather(*(_visit(gate, NEWS.format(n), log, hold=0.01)
                           for n in range(2) for gate in (first, second)))
    _assert_spaced(log, 0.4)
    await second.set_crawl_delay("https://news.example.kr", None)  # robots.txt dropped it
    log.clear()
    await asyncio.gather(*(_visit(first, NEWS.format(n), log, hold=0.01) for n in range(3)))
    spans = [b[0] - a[0] for a, b in zip(sorted(log), sorted(log)[1:], strict=False)]
    assert max(spans) < 0.3


async def test_a_dead_replicas_lock_expires(two_clients) -> None:
    dying, survivor = (HostGate(client, per_host_delay=0.0, lock_ttl=0.6)
                       for client in two_clients)

    abandoned = []  # kept referenced: a collected context manager would be closed

    async def crash_while_holding() -> None:
        # enter the slot and never leave it, as a replica killed mid-request would
        abandoned.append(dying.slot(NEWS.format(1)))
        await abandoned[-1].__aenter__()

    await asyncio.create_task(crash_while_holding())
    started = time.monotonic()
    async with survivor.slot(NEWS.format(2)):
        waited = time.monotonic() - started
    assert 0.3 < waited < 0.6 + 0.2 + 0.3  # the TTL, plus one renewal round at most


async def test_a_lock_left_by_a_killed_process_expires(redis_client) -> None:
    await redis_client.set("sokbo:host-lock:news.example.kr", "gone", px=500)
    gate = HostGate(redis_client, per_host_delay=0.0)
    started = time.monotonic()
    async with gate.slot(NEWS.format(1)):
        assert 0.4 < time.monotonic() - started < 0.8
    assert await redis_client.get("sokbo:host-lock:news.example.kr") is None


async def test_a_long_request_keeps_its_lock(two_clients) -> None:
    holder, other = (HostGate(client, per_host_delay=0.0, lock_ttl=0.3)
                     for client in two_clients)
    log: list[tuple[float, float, str]] = []
    first = asyncio.create_task(_visit(holder, NEWS.format(1), log, hold=1.0))
    await asyncio.sleep(0.05)
    await _visit(other, NEWS.format(2), log, hold=0.01)
    await first
    _assert_spaced(log, 0.0)  # no overlap although the hold outlasted the lock TTL thrice


async def test_a_waiter_can_be_cancelled_and_the_host_is_released(two_clients) -> None:
    first, second = (HostGate(client, per_host_delay=0.0) for client in two_clients)
    await first.throttle(NEWS.format(1), "30")
    waiter = asyncio.create_task(_visit(second, NEWS.format(2), []))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert time.monotonic() - started < 0.1
    assert second._local == {}
    # a holder cancelled mid-request gives the host back at once
    holder = asyncio.create_task(_visit(first, OTHER.format(1), [], hold=10))
    await asyncio.sleep(0.1)
    holder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await holder
    started = time.monotonic()
    async with second.slot(OTHER.format(2)):
        assert time.monotonic() - started < 0.2
