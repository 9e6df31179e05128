"""keyword-alert raises a rule's alert once per story, against a real Redis.

Wire copy republished by other outlets (another byline and copyright line, a rewritten
lead sentence or headline) is a near-duplicate: counted and logged, not alerted; an
edited article (same URL) never alerts twice; a different story alerts; two replicas
evaluating two copies at once raise one alert.  Texts are real corpus articles.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker
from faststream.redis.parser.binary import BinaryMessageFormatV1
from structlog.testing import capture_logs

from sokbo import streams
from sokbo.config import Settings
from sokbo.context import ServiceContext
from sokbo.fingerprint import THRESHOLD, fingerprint_of, hamming
from sokbo.messages import AlertRaised, ArticleParsed, alert_id_for, article_id_for
from sokbo.observability import REGISTRY
from sokbo_keyword_alert.app import register
from sokbo_keyword_alert.stories import StoryIndex
from sokbo_parser.decode import decode_html
from sokbo_parser.extract import extract_article

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "html"
RULES = [{"id": "lee-jaemyung", "query": "이재명", "channels": ["console"]},
         {"id": "sovereign-ai", "query": "소버린AI", "channels": ["console"]}]


def corpus_article(name: str) -> tuple[str, str]:
    extracted = extract_article(decode_html((CORPUS / name).read_bytes()).text)
    return extracted.title, extracted.text


HONAM = corpus_article("hankookilbo-lee-jaemyung-honam-unity-2025.html")
PROFILE = corpus_article("mk-lee-jaemyung-profile-election-2025.html")


def wire_copy(outlet: int) -> tuple[str, str]:
    """The Honam story as Yonhap (0) and two other outlets (1, 2) ran it."""
    title, text = HONAM
    lead, rest = text.split("\n", 1)
    if outlet == 0:
        return title, f"(광주=연합뉴스) 김철수 기자 = {lead}\n{rest}\n" \
                      "<저작권자(c) 연합뉴스, 무단 전재-재배포, AI 학습 및 활용 금지>"
    if outlet == 1:
        lead = lead.replace("李", "이재명 후보,").replace("빗속 유세", "빗속 강행군")
        return f"[종합] {title}", f"[아시아경제 이영희 기자] {lead}\n{rest}\n" \
                                  "ⓒ 아시아경제 무단전재 및 재배포 금지"
    return title, f"[FETV=신동현 기자] 이재명 후보가 호남 유세에 나섰다. {lead}\n{rest}\n" \
                  "신동현 기자 shin@fetv.co.kr"


def article(url: str, title: str, text: str, *, fingerprint: bool = False) -> ArticleParsed:
    now = datetime.now(UTC)
    return ArticleParsed(
        article_id=article_id_for(url), url=url, canonical_url=url, source_id="test",
        title=title, text=text, content_hash=hashlib.sha256(f"{title}\n{text}".encode())
        .hexdigest(), fingerprint=fingerprint_of(title, text) if fingerprint else None,
        discovered_at=now, fetched_at=now, parsed_at=now)


@asynccontextmanager
async def keyword_alert(redis_url: str, instance: str = "a", **options: float
                        ) -> AsyncIterator[object]:
    """One keyword-alert replica; yields its handler (the subscription is not started)."""
    settings = Settings(redis_url=redis_url, rules=RULES,
                        channels=[{"id": "console", "kind": "console"}])
    broker = RedisBroker(redis_url)
    await broker.connect()
    ctx = ServiceContext(settings=settings, broker=broker, redis=aioredis.from_url(redis_url),
                         instance=instance)
    handlers: list = []
    ctx.subscribe = lambda stream, model, handler, service: handlers.append(handler)
    register(ctx, **options)
    try:
        yield handlers[0]
    finally:
        await ctx.redis.aclose()
        await broker.stop()


async def alerts(client: aioredis.Redis) -> list[AlertRaised]:
    """The alerts on ``sokbo.alerts``, oldest first."""
    entries = await client.xrange(streams.ALERTS)
    return [AlertRaised.model_validate_json(BinaryMessageFormatV1.parse(fields[b"__data__"])[0])
            for _, fields in entries]


def suppressed_total(rule_id: str) -> float:
    return REGISTRY.get_sample_value("sokbo_near_duplicates_suppressed_total",
                                     {"rule_id": rule_id}) or 0.0


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)


async def test_wire_copy_from_three_outlets_raises_one_alert(redis_url, redis_client) -> None:
    copies = [article(f"https://news{i}.example.kr/1", *wire_copy(i), fingerprint=i == 1)
              for i in range(3)]  # one parser filled the fingerprint, two did not
    assert all(hamming(fingerprint_of(c.title, c.text), fingerprint_of(copies[0].title,
               copies[0].text)) <= THRESHOLD for c in copies)
    before = suppressed_total("lee-jaemyung")
    async with keyword_alert(redis_url) as handle:
        with capture_logs() as logs:
            for copy in copies:
                await handle(copy)
            await handle(copies[2])  # a redelivery is not counted twice
    raised = await alerts(redis_client)
    assert [(a.rule_id, a.article.article_id) for a in raised] == [
        ("lee-jaemyung", copies[0].article_id)]
    assert suppressed_total("lee-jaemyung") - before == 2
    events = [e for e in logs if e["event"] == "near_duplicate_suppressed"]
    assert [(e["article_id"], e["original_article_id"], e["rule_id"], e["duplicates"])
            for e in events] == [(copies[1].article_id, copies[0].article_id, "lee-jaemyung", 1),
                                 (copies[2].article_id, copies[0].article_id, "lee-jaemyung", 2)]
    original = fingerprint_of(copies[0].title, copies[0].text)
    assert [e["hamming_distance"] for e in events] == [
        hamming(fingerprint_of(c.title, c.text), original) for c in copies[1:]]
    assert all(0 < e["hamming_distance"] <= THRESHOLD for e in events)
    assert "near_duplicate_already_counted" in [e["event"] for e in logs]


async def test_the_same_url_edited_raises_no_second_alert(redis_url, redis_client) -> None:
    title, text = HONAM
    url = "https://www.hankookilbo.com/News/Read/A2025051516330004328"
    edits = [
        article(url, title, f"{text}\n조회수 1,204 | 1분 전 업데이트"),  # B16: counters only
        article(url, title, f"{text}\n조회수 1,873 | 방금 전 업데이트\n많이 본 뉴스"),
        article(url, f"[수정] {title}", text),  # a new headline
        article(url, title, text[: len(text) // 2] + "\n" + PROFILE[1]),  # half the body new
    ]
    async with keyword_alert(redis_url) as handle:
        with capture_logs() as logs:
            for edit in edits:
                await handle(edit)
    assert len(await alerts(redis_client)) == 1
    assert [e["event"] for e in logs].count("alert_already_raised") == 3
    assert "near_duplicate_suppressed" not in [e["event"] for e in logs]


async def test_a_different_story_raises_its_own_alert(redis_url, redis_client) -> None:
    first = article("https://news.example.kr/honam", *HONAM)
    other = article("https://news.example.kr/profile", *PROFILE)
    assert hamming(fingerprint_of(*HONAM), fingerprint_of(*PROFILE)) > THRESHOLD
    async with keyword_alert(redis_url) as handle:
        await handle(first)
        await handle(other)
    raised = await alerts(redis_client)
    assert [a.article.article_id for a in raised] == [first.article_id, other.article_id]


async def test_a_copy_that_matches_another_rule_raises_that_rule(redis_url,
                                                                 redis_client) -> None:
    title, text = wire_copy(1)
    original = article("https://news0.example.kr/1", *wire_copy(0))
    copy = article("https://news1.example.kr/1", title, f"{text}\n정부는 소버린AI 투자도 약속했다.")
    async with keyword_alert(redis_url) as handle:
        with capture_logs() as logs:
            await handle(original)
            await handle(copy)
    assert [(a.rule_id, a.article.article_id) for a in await alerts(redis_client)] == [
        ("lee-jaemyung", original.article_id), ("sovereign-ai", copy.article_id)]
    assert [e["rule_id"] for e in logs if e["event"] == "near_duplicate_suppressed"] == [
        "lee-jaemyung"]


async def test_two_replicas_evaluating_two_copies_at_once_raise_one_alert(
        redis_url, redis_client) -> None:
    async with keyword_alert(redis_url, "a") as first, keyword_alert(redis_url, "b") as second:
        for round_ in range(10):
            await redis_client.flushdb()
            copies = [article(f"https://news{i}.example.kr/{round_}", *wire_copy(i))
                      for i in (0, 1)]
            await asyncio.gather(first(copies[0]), second(copies[1]))
            raised = await alerts(redis_client)
            assert len(raised) == 1, round_
            winner = raised[0].article.article_id
            loser = ({c.article_id for c in copies} - {winner}).pop()
            assert await redis_client.exists(streams.key("alerted", alert_id_for(
                winner, "lee-jaemyung")))
            assert not await redis_client.exists(streams.key("alerted", alert_id_for(
                loser, "lee-jaemyung")))


async def test_many_concurrent_claims_of_one_story_have_one_winner(redis_url) -> None:
    clients = [aioredis.from_url(redis_url) for _ in range(4)]  # four replicas
    replicas = [StoryIndex(client) for client in clients]
    base = int(fingerprint_of(*HONAM), 16)
    now = datetime.now(UTC)
    claims = [replicas[i % 4].claim(f"{i:016x}", f"{base ^ (1 << i) ^ (1 << 40):016x}",
                                    ["lee-jaemyung"], now=now) for i in range(16)]
    assignments = await asyncio.gather(*claims)
    decisions = [a.decisions[0] for a in assignments]
    assert sum(d.raise_alert for d in decisions) == 1
    assert len({a.story_id for a in assignments}) == 1
    assert sorted(d.duplicates for d in decisions if not d.raise_alert) == list(range(1, 16))
    for client in clients:
        await client.aclose()


async def test_a_copy_after_the_window_alerts_again(redis_client) -> None:
    index = StoryIndex(redis_client, window=72 * 3600)
    fingerprint = fingerprint_of(*wire_copy(0))
    copy = fingerprint_of(*wire_copy(1))
    now = datetime.now(UTC)
    first = await index.claim("a" * 16, fingerprint, ["lee-jaemyung"], now=now)
    assert first.how == "new" and first.decisions[0].raise_alert
    assert await index.confirm(first.decisions[0])
    ttl = await redis_client.ttl(first.decisions[0].claim_key)
    assert 72 * 3600 - 60 < ttl <= 72 * 3600
    later = await index.claim("b" * 16, copy, ["lee-jaemyung"], now=now + timedelta(hours=71))
    assert later.how == "near" and not later.decisions[0].raise_alert
    expired = await index.claim("c" * 16, copy, ["lee-jaemyung"],
                                now=now + timedelta(hours=71 + 73))
    assert expired.how == "new" and expired.decisions[0].raise_alert


async def test_an_unconfirmed_claim_runs_out_and_a_copy_raises_instead(redis_client) -> None:
    index = StoryIndex(redis_client, lease=0.3)
    now = datetime.now(UTC)
    first = await index.claim("a" * 16, fingerprint_of(*wire_copy(0)), ["lee-jaemyung"],
                              now=now)  # its entry is then dead-lettered: never confirmed
    assert first.decisions[0].raise_alert
    await asyncio.sleep(0.5)
    copy = await index.claim("b" * 16, fingerprint_of(*wire_copy(1)), ["lee-jaemyung"], now=now)
    assert copy.story_id == "a" * 16 and copy.decisions[0].raise_alert
    assert not await index.confirm(first.decisions[0])  # the first lost its claim
    assert await index.confirm(copy.decisions[0])
