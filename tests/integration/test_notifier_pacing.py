"""Slack pacing across replicas, Retry-After, burst digests and sender hand-over (real Redis)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import redis.asyncio as aioredis

from sokbo import streams
from sokbo.observability import REGISTRY
from sokbo_notifier.pacing import TokenBucket
from sokbo_notifier.slack import post_webhook
from tests.integration.test_notifier import (
    MakeReplica,
    listed,
    make_alert,
    replicas,  # noqa: F401  (fixture)
    slack,
    slack_server,  # noqa: F401  (fixture)
    until,
)
from tests.servers import RecordingSlackServer

pytestmark = pytest.mark.integration

JITTER = 0.05  # seconds: how much earlier than its slot a post may arrive at the server


def slack_messages(kind: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("sokbo_slack_messages_total", {
        "channel_id": "team-slack", "kind": kind, "outcome": outcome}) or 0.0


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


def each_listed_once(server: RecordingSlackServer) -> Counter[int]:
    return Counter(n for post in server.posts for n in listed(post.payload))


# --- the bucket itself -------------------------------------------------------------------

async def test_the_token_bucket_is_shared_by_two_clients(redis_url: str) -> None:
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    buckets = [TokenBucket(client) for client in clients]
    granted: list[float] = []

    async def hammer(bucket: TokenBucket) -> None:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if await bucket.take("team-slack", 5.0) == 0:
                granted.append(time.monotonic())
            await asyncio.sleep(0.005)

    try:
        await asyncio.gather(*(hammer(b) for b in buckets))
    finally:
        for client in clients:
            await client.aclose()
    assert 9 <= len(granted) <= 11  # 5 per second for 2 s, whichever client asks
    assert min(gaps(sorted(granted))) >= 0.2 - 0.02


async def test_a_pause_holds_every_client(redis_url: str) -> None:
    first, second = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        assert await TokenBucket(first).pause("team-slack", 1.0) == 1.0
        wait = await TokenBucket(second).take("team-slack", 100.0)
        assert 0.9 <= wait <= 1.0
        assert await TokenBucket(second).pause("team-slack", 0.2) > 0.8  # the longer one stays
        assert await TokenBucket(second).take("other-channel", 100.0) == 0.0
    finally:
        await first.aclose()
        await second.aclose()


# --- two notifier replicas -------------------------------------------------------------

async def test_two_replicas_post_at_most_max_per_second(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:  # noqa: F811
    webhook = slack_server.start()
    first = await replicas([slack(webhook, max_per_second=2, burst=100)])
    second = await replicas([slack(webhook, max_per_second=2, burst=100)])
    alerts = [make_alert(n) for n in range(1, 9)]
    for n, alert in enumerate(alerts):
        await (first if n % 2 else second).handle(alert)  # each replica queues half
    first.start_sending()
    await until(lambda: len(slack_server.posts) >= 3, 5, "three posts")
    second.start_sending()
    await first.kill()  # the sender dies: the other replica takes over, on the same bucket
    await until(lambda: len(slack_server.posts) == 8, 10, "all eight posts")
    await asyncio.sleep(0.6)
    times = [post.at for post in slack_server.posts]
    # 2 per second: half a second apart, within JITTER (a new connection's set-up delays
    # one post's arrival, not its token); no three within a second
    assert min(gaps(times)) >= 0.5 - JITTER
    assert all(times[i + 2] - times[i] >= 1.0 - JITTER for i in range(len(times) - 2))
    assert (times[-1] - times[0]) >= 3.5 - JITTER  # 8 posts at 2/s take 3.5 s at least
    assert each_listed_once(slack_server) == Counter(range(1, 9))
    assert len(slack_server.requests) == 8


@pytest.mark.parametrize("killed", [True, False])
async def test_a_429_pauses_both_replicas_and_nothing_is_dropped(
        replicas: MakeReplica, slack_server: RecordingSlackServer,  # noqa: F811
        killed: bool) -> None:
    """B29: 429 with Retry-After 1 (seconds), then 2 (an HTTP-date); all four delivered once."""
    retry_at = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    slack_server.script = [(429, {"Retry-After": "1"}, b"rate_limited"),
                           (429, {"Retry-After": retry_at}, b"rate_limited")]
    webhook = slack_server.start()
    first = await replicas([slack(webhook, max_per_second=20, burst=100)])
    second = await replicas([slack(webhook, max_per_second=20, burst=100)])
    limited = slack_messages("single", "rate_limited")
    for n in range(1, 5):
        await first.handle(make_alert(n))
    first.start_sending()
    await until(lambda: len(slack_server.requests) == 1, 5, "the first 429")
    second.start_sending()
    if killed:  # the replica that got the 429 dies: the other must honour the pause too
        await first.kill()
    await until(lambda: len(slack_server.posts) == 4, 15, "all four posts")
    await asyncio.sleep(0.3)
    statuses = [request.status for request in slack_server.requests]
    assert statuses == [429, 429, 200, 200, 200, 200]
    at = [request.at for request in slack_server.requests]
    assert at[1] - at[0] >= 1.0 - 0.03  # Retry-After: 1
    assert at[2] - at[1] >= 1.5  # the HTTP-date: 4 s after the start, whole seconds
    assert min(gaps(at[2:])) >= 0.05 - 0.01  # then max_per_second = 20
    assert each_listed_once(slack_server) == Counter(range(1, 5))
    assert slack_messages("single", "rate_limited") - limited == 2


async def test_a_burst_becomes_one_digest_listing_every_alert_once(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:  # noqa: F811
    replica = await replicas([slack(slack_server.start(), max_per_second=1, burst=5)])
    digests = slack_messages("digest", "sent")
    for n in range(1, 13):
        await replica.handle(make_alert(n, rule_id="openai-korea" if n % 3 else "sovereign-ai"))
    replica.start_sending()
    await until(lambda: len(slack_server.posts) == 1, 5, "the digest")
    await asyncio.sleep(1.3)  # a second message would be allowed by now
    [post] = slack_server.posts
    assert listed(post.payload) == list(range(1, 13))
    blocks = post.payload["blocks"]
    assert blocks[0]["text"]["text"] == "*새 알림 12건*"
    assert blocks[1]["elements"][0]["text"] == "openai-korea 8건 · sovereign-ai 4건"
    assert len(blocks) == 14 and post.payload["text"].startswith("새 알림 12건: [openai-korea]")
    assert slack_messages("digest", "sent") - digests == 1


async def test_alerts_arriving_while_sending_are_coalesced_beyond_burst(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:  # noqa: F811
    replica = await replicas([slack(slack_server.start(), max_per_second=1, burst=5)])
    replica.start_sending()
    for n in range(1, 13):
        await replica.handle(make_alert(n))
        await asyncio.sleep(0.01)
    await until(lambda: sum(len(listed(p.payload)) for p in slack_server.posts) >= 12, 8,
                "all twelve listed")
    await asyncio.sleep(1.2)
    assert 1 <= len(slack_server.posts) <= 3  # e.g. the first alone, then a digest of 11
    assert each_listed_once(slack_server) == Counter(range(1, 13))
    assert len(listed(slack_server.posts[-1].payload)) > 5


async def test_up_to_burst_waiting_alerts_still_go_one_by_one(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:  # noqa: F811
    """Six alerts at once with burst 5: the oldest goes, five wait behind it: no digest."""
    replica = await replicas([slack(slack_server.start(), max_per_second=10, burst=5)])
    for n in range(1, 7):
        await replica.handle(make_alert(n))
    replica.start_sending()
    await until(lambda: len(slack_server.posts) == 6, 5, "six posts")
    assert [listed(p.payload) for p in slack_server.posts] == [[n] for n in range(1, 7)]
    assert all(p.payload["text"].startswith("[openai-korea] 기사 ") for p in slack_server.posts)


async def test_a_digest_is_capped_and_the_rest_follows(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:  # noqa: F811
    replica = await replicas([slack(slack_server.start(), max_per_second=10, burst=0)])
    for n in range(1, 51):
        await replica.handle(make_alert(n))
    replica.start_sending()
    await until(lambda: len(slack_server.posts) == 2, 5, "two digests")
    first, second = (post.payload for post in slack_server.posts)
    assert listed(first) == list(range(1, 41)) and listed(second) == list(range(41, 51))
    assert len(first["blocks"]) == 43 <= 50
    assert first["blocks"][-1]["elements"][0]["text"] == "…이어서 10건 더"


# --- a replica dies mid-drain ------------------------------------------------------------

async def test_a_replica_cancelled_mid_post_hands_over_without_loss_or_duplicate(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:  # noqa: F811
    slack_server.delay = 0.3  # each post is in flight for 0.3 s
    webhook = slack_server.start()
    first = await replicas([slack(webhook, max_per_second=4, burst=100)])
    second = await replicas([slack(webhook, max_per_second=4, burst=100)])
    for n in range(1, 11):
        await first.handle(make_alert(n))
    first.start_sending()
    await until(lambda: len(slack_server.requests) == 3, 5, "the third post in flight")
    second.start_sending()
    await first.kill()  # cancelled while the third post is in flight: it completes
    await until(lambda: len(slack_server.posts) == 10, 15, "all ten posts")
    await asyncio.sleep(0.5)
    assert len(slack_server.requests) == 10
    assert each_listed_once(slack_server) == Counter(range(1, 11))


async def test_the_documented_duplicate_window(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:  # noqa: F811
    """A sender dies after Slack's 200 but before recording it: that one message repeats."""
    webhook = slack_server.start()
    first = await replicas([slack(webhook, max_per_second=10, burst=100)], lease=1.0)
    second = await replicas([slack(webhook, max_per_second=10, burst=100)], lease=1.0)
    for n in range(1, 5):
        await first.handle(make_alert(n))
    died = asyncio.Event()
    lease = streams.key("slack", "sender", "team-slack")

    async def post_then_die(client, url, payload) -> None:
        await post_webhook(client, url, payload)
        if len(slack_server.posts) == 2 and not died.is_set():
            await first.redis.delete(lease)  # as if the lease had run out: nobody renews it
            died.set()
            raise ConnectionResetError("the process died before recording the post")

    first.notifier.slack.post = post_then_die
    first.start_sending()
    await asyncio.wait_for(died.wait(), 5)
    await first.kill()
    second.start_sending()
    await until(lambda: len(slack_server.posts) == 5, 10, "the rest, and the repeat")
    await asyncio.sleep(0.3)
    assert each_listed_once(slack_server) == Counter({1: 1, 2: 2, 3: 1, 4: 1})
    assert len(slack_server.posts) == 5
