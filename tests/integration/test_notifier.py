"""The notifier's once-per-(alert, channel) guarantee against a real Redis, webhook and SMTP."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker

from sokbo import deadletters, streams
from sokbo.config import Settings
from sokbo.context import ServiceContext
from sokbo.errors import RetryableError
from sokbo.messages import AlertRaised, ArticleSummary, Hit, Snippet, alert_id_for
from sokbo.observability import REGISTRY
from sokbo_notifier.app import Notifier
from tests.servers import RecordingSlackServer, RecordingSmtpServer

pytestmark = pytest.mark.integration

SENTENCE = "아시아 3번째 지사인 'OpenAI 코리아'의 출범을 공식 선언했다."
LINK = re.compile(r"<https://news\.example\.kr/a/(\d+)\|")


def make_alert(number: int = 1, *, rule_id: str = "openai-korea",
               channels: tuple[str, ...] = ("team-slack",), title: str | None = None,
               raised_at: datetime | None = None) -> AlertRaised:
    """Alert *number*: article ``https://news.example.kr/a/<number>``, titled ``기사 <number>``."""
    now = datetime.now(UTC)
    start, end = SENTENCE.index("OpenAI"), SENTENCE.index("'의")
    article_id = f"{number:016x}"
    return AlertRaised(
        alert_id=alert_id_for(article_id, rule_id), rule_id=rule_id, query='"OpenAI 코리아"',
        article=ArticleSummary(article_id=article_id, url=f"https://news.example.kr/a/{number}",
                               title=title or f"기사 {number} OpenAI 코리아", source_id="fetv",
                               source_title="FETV", published_at=now),
        matched_terms=["OpenAI 코리아"],
        hits=[Hit(field="text", term="OpenAI 코리아", start=start, end=end)],
        snippets=[Snippet(field="text", text=SENTENCE, highlights=[(start, end)])],
        channels=list(channels), discovered_at=now, fetched_at=now, parsed_at=now,
        raised_at=raised_at or now)


def listed(payload: dict) -> list[int]:
    """The article numbers a Slack message (single or digest) links to, in order."""
    texts = [block["text"]["text"] for block in payload["blocks"] if block["type"] == "section"]
    return [int(n) for text in texts for n in LINK.findall(text)]


def slack(webhook: str, **options: object) -> dict:
    return {"id": "team-slack", "kind": "slack", "webhook_url": webhook, **options}


def mail(port: int, **options: object) -> dict:
    return {"id": "team-mail", "kind": "email", "smtp_host": "127.0.0.1", "smtp_port": port,
            "from": "속보 알림 <alerts@example.com>", "to": ["pr@example.com"], "timeout": 5,
            **options}


class Replica:
    """One notifier process: its own Redis client, HTTP client and sender task."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def redis(self) -> aioredis.Redis:
        return self.notifier.ctx.redis

    async def handle(self, alert: AlertRaised) -> None:
        await self.notifier.handle(alert)

    def start_sending(self) -> None:
        self.tasks.append(asyncio.create_task(self.notifier.slack.run()))

    async def kill(self) -> None:
        """Cancel the sender, as a SIGTERM's shutdown does."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def close(self) -> None:
        await self.kill()
        await self.notifier.aclose()
        await self.redis.aclose()


MakeReplica = Callable[..., Awaitable[Replica]]


@pytest.fixture
async def replicas(redis_url: str, monkeypatch: pytest.MonkeyPatch
                   ) -> AsyncIterator[MakeReplica]:
    """``await replicas(channels, clock=..., lease=...)``: a notifier replica on the test Redis."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    made: list[Replica] = []

    async def make(channels: list[dict], *, clock=None, lease: float = 2.0,
                   claim_idle: float = 3.0) -> Replica:
        settings = Settings(redis_url=redis_url, channels=channels,
                            delivery={"claim_idle": claim_idle})
        ctx = ServiceContext(settings=settings, broker=RedisBroker(redis_url),
                             redis=aioredis.from_url(redis_url), instance=f"test-{len(made)}")
        notifier = Notifier(ctx, clock=clock, client=httpx.AsyncClient(timeout=3.0),
                            sender_lease=lease, poll_interval=0.05, digest_tick=0.05)
        made.append(Replica(notifier))
        return made[-1]

    yield make
    for replica in made:
        await replica.close()


@pytest.fixture
def slack_server() -> Iterator[RecordingSlackServer]:
    server = RecordingSlackServer()
    yield server
    server.stop()


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def dead_letters(redis: aioredis.Redis) -> list[deadletters.DeadLetter]:
    return await deadletters.read(redis, count=1000)


# --- Slack: queued once, posted once --------------------------------------------------

async def test_each_alert_reaches_slack_once_across_redeliveries_and_restarts(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:
    webhook = slack_server.start()
    alert = make_alert(1, title="<!channel> A&B사 OpenAI 코리아 출범")
    for _ in range(2):  # two processes, one after the other
        replica = await replicas([slack(webhook)])
        await replica.handle(alert)
        await replica.handle(alert)  # the entry redelivered
        replica.start_sending()
        await until(lambda: len(slack_server.posts) >= 1, 5, "the post")
        await asyncio.sleep(0.3)  # room for a second post to show up
        await replica.close()
    assert len(slack_server.requests) == 1
    payload = slack_server.posts[0].payload
    assert payload["blocks"][0]["text"]["text"] == (
        "<https://news.example.kr/a/1|&lt;!channel&gt; A&amp;B사 OpenAI 코리아 출범>")
    assert "<!channel>" not in str(payload)
    # the e2e contract: a fallback text with the title and the rule id
    assert payload["text"] == "[openai-korea] &lt;!channel&gt; A&amp;B사 OpenAI 코리아 출범 — FETV"
    client = aioredis.from_url(replica.notifier.ctx.settings.redis_url)
    state = await client.get(streams.key("delivered", alert.alert_id, "team-slack"))
    assert state is not None and state.startswith(b"sent:20")
    assert await client.zcard(streams.key("slack", "queue", "team-slack")) == 0
    assert await client.hlen(streams.key("slack", "alerts", "team-slack")) == 0
    await client.aclose()


async def test_the_stream_entry_is_acked_only_once_the_alert_is_queued(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:
    replica = await replicas([slack(slack_server.start())])
    alert = make_alert(7)
    await replica.handle(alert)  # returns (→ ack) with the alert durably in the queue
    queue = await replica.redis.zrange(streams.key("slack", "queue", "team-slack"), 0, -1)
    stored = await replica.redis.hget(streams.key("slack", "alerts", "team-slack"),
                                      alert.alert_id)
    assert queue == [alert.alert_id.encode()]
    assert AlertRaised.model_validate_json(stored) == alert
    assert await replica.redis.get(streams.key("delivered", alert.alert_id, "team-slack")) == (
        b"queued:slack")
    assert slack_server.requests == []  # nothing posted until a sender runs


@pytest.mark.parametrize(("status", "body"), [
    (404, b"no_service"), (410, b"channel_is_archived"), (403, b"invalid_token"),
    (404, b"channel_not_found"), (403, b"action_prohibited"), (400, b"invalid_blocks"),
])
async def test_a_permanent_slack_error_dead_letters_with_the_channel_id(
        replicas: MakeReplica, slack_server: RecordingSlackServer, status: int,
        body: bytes) -> None:
    slack_server.script = [(status, {}, body)]
    replica = await replicas([slack(slack_server.start())])
    labels = {"channel_id": "team-slack", "kind": "single", "outcome": "permanent_error"}
    refused = REGISTRY.get_sample_value("sokbo_slack_messages_total", labels) or 0.0
    alert = make_alert(3)
    await replica.handle(alert)
    replica.start_sending()
    await until(lambda: len(slack_server.requests) == 1, 5, "the refused post")
    await asyncio.sleep(0.5)  # a retry would show up here
    assert len(slack_server.requests) == 1 and slack_server.posts == []
    assert REGISTRY.get_sample_value("sokbo_slack_messages_total", labels) - refused == 1
    [letter] = await dead_letters(replica.redis)
    assert letter.record.channel_id == "team-slack"
    assert letter.record.stage == "notifier" and letter.record.stream == streams.ALERTS
    assert f"HTTP {status}" in letter.record.error and body.decode() in letter.record.error
    assert letter.record.original["alert_id"] == alert.alert_id
    mark = streams.key("delivered", alert.alert_id, "team-slack")
    assert await replica.redis.get(mark) == b"dead-lettered"
    assert await replica.redis.zcard(streams.key("slack", "queue", "team-slack")) == 0
    await replica.handle(alert)  # redelivered: not queued again
    await asyncio.sleep(0.3)
    assert len(slack_server.requests) == 1


async def test_5xx_is_retried_with_backoff_and_delivered_once(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:
    """B16: Slack answers 500 twice, then 200: one post, after two growing pauses."""
    slack_server.script = [(500, {}, b"rollup_error"), (503, {}, b"")]
    replica = await replicas([slack(slack_server.start())])
    await replica.handle(make_alert(4))
    replica.start_sending()
    await until(lambda: len(slack_server.posts) == 1, 10, "the post after two 5xx")
    first, second, third = (r.at for r in slack_server.requests)
    assert 0.45 <= second - first <= 1.3  # equal jitter: between half of 1 s and 1 s
    assert 0.95 <= third - second <= 2.3  # then between half of 2 s and 2 s
    assert [r.status for r in slack_server.requests] == [500, 503, 200]
    assert await dead_letters(replica.redis) == []


async def test_an_unknown_channel_is_dead_lettered(replicas: MakeReplica,
                                                  slack_server: RecordingSlackServer) -> None:
    replica = await replicas([slack(slack_server.start())])
    alert = make_alert(5, channels=("gone",))
    await replica.handle(alert)
    [letter] = await dead_letters(replica.redis)
    assert letter.record.channel_id == "gone"
    assert "add it under channels" in letter.record.error


async def test_a_channel_removed_from_the_config_dead_letters_its_queue(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:
    replica = await replicas([slack(slack_server.start())])
    alerts = [make_alert(n) for n in (1, 2, 3)]
    for alert in alerts:
        await replica.handle(alert)
    replica.notifier.ctx.settings = Settings(channels=[])  # a reload dropped it
    replica.start_sending()
    for _ in range(100):
        if len(await dead_letters(replica.redis)) == 3:
            break
        await asyncio.sleep(0.02)
    letters = await dead_letters(replica.redis)
    assert sorted(letter.record.original["alert_id"] for letter in letters) == sorted(
        a.alert_id for a in alerts)
    assert {letter.record.channel_id for letter in letters} == {"team-slack"}
    assert slack_server.requests == []


# --- immediate e-mail ------------------------------------------------------------------

async def test_an_immediate_email_is_sent_once_while_a_claimer_waits(
        replicas: MakeReplica) -> None:
    smtp = RecordingSmtpServer(delay=0.6)  # DATA answered slowly: the claimer comes meanwhile
    smtp.start()
    try:
        first = await replicas([mail(smtp.port)])
        second = await replicas([mail(smtp.port)])
        alert = make_alert(8, channels=("team-mail",))
        in_flight = asyncio.create_task(first.handle(alert))
        await asyncio.sleep(0.2)
        with pytest.raises(RetryableError):  # the claimer backs off: left pending
            await second.handle(alert)
        await in_flight
        await second.handle(alert)  # the claimer's later retry sees it sent
        assert len(smtp.messages) == 1
        assert smtp.messages[0]["subject"] == "[sokbo] openai-korea: 기사 8 OpenAI 코리아"
    finally:
        smtp.stop()


async def test_a_5xx_smtp_reply_dead_letters_an_immediate_email(replicas: MakeReplica) -> None:
    smtp = RecordingSmtpServer(replies=["550 5.7.1 refused"])
    smtp.start()
    try:
        replica = await replicas([mail(smtp.port)])
        alert = make_alert(9, channels=("team-mail",))
        await replica.handle(alert)
        [letter] = await dead_letters(replica.redis)
        assert letter.record.channel_id == "team-mail" and "550" in letter.record.error
        await replica.handle(alert)  # not retried
        assert smtp.messages == [] and len(await dead_letters(replica.redis)) == 1
    finally:
        smtp.stop()


async def test_one_alert_for_slack_and_mail_reaches_each_once(
        replicas: MakeReplica, slack_server: RecordingSlackServer) -> None:
    smtp = RecordingSmtpServer()
    smtp.start()
    try:
        replica = await replicas([slack(slack_server.start()), mail(smtp.port)])
        alert = make_alert(11, channels=("team-slack", "team-mail"))
        for _ in range(3):
            await replica.handle(alert)
        replica.start_sending()
        await until(lambda: len(slack_server.posts) == 1, 5, "the Slack post")
        await asyncio.sleep(0.2)
        assert len(slack_server.requests) == 1 and len(smtp.messages) == 1
        assert Counter(listed(p.payload)[0] for p in slack_server.posts) == {11: 1}
    finally:
        smtp.stop()
