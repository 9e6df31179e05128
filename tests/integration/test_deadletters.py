"""Dead letters: written as readable fields, listed, replayed where they failed, purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from sokbo import deadletters, streams
from sokbo.messages import DeadLettered

pytestmark = pytest.mark.integration

ALERT = {"alert_id": "a1b2c3d4e5f60718", "rule_id": "sovereign-ai", "channels": ["slack", "mail"],
         "article": {"article_id": "0011223344556677", "title": "소버린AI 예산"}}


def letter(stage: str, stream: str, original: dict | None, **extra) -> DeadLettered:
    return DeadLettered(stage=stage, stream=stream, error="boom", original=original,
                        failed_at=datetime.now(UTC), **extra)


class Published:
    def __init__(self) -> None:
        self.messages: list[tuple[dict, str]] = []

    async def __call__(self, body: bytes, stream: str) -> None:
        self.messages.append((orjson.loads(body), stream))


async def test_entries_are_plain_fields_that_redis_cli_can_read(redis_client) -> None:
    await deadletters.write(redis_client, letter("parser", streams.PAGES, {"url": "u"}),
                            maxlen=1000)
    [(_, fields)] = await redis_client.xrange(streams.DEAD_LETTER)
    assert (fields[b"stage"], fields[b"stream"], fields[b"error"]) == (
        b"parser", b"sokbo.pages", b"boom")
    assert orjson.loads(fields[b"data"])["original"] == {"url": "u"}


async def test_list_filters_by_stage_and_skips_foreign_entries(redis_client) -> None:
    await redis_client.xadd(streams.DEAD_LETTER, {"something": "else"})  # not ours
    for stage in ("parser", "notifier", "parser"):
        await deadletters.write(redis_client, letter(stage, streams.PAGES, {"url": stage}),
                                maxlen=1000)
    everything = await deadletters.read(redis_client)
    assert [d.record.stage for d in everything] == ["parser", "notifier", "parser"]
    assert len(await deadletters.read(redis_client, stage="parser")) == 2
    one = await deadletters.read(redis_client, entry_id=everything[1].entry_id)
    assert one[0].summary()["stage"] == "notifier"


async def test_replaying_a_crawler_page_makes_the_next_poll_fetch_it(redis_client) -> None:
    url = "https://news.example.kr/a/1"
    await redis_client.zadd(streams.key("seen", "fetv"), {url: 1.0})
    await redis_client.hset(streams.key("attempts", "fetv"), url, 5)
    await deadletters.write(redis_client, letter("crawler", streams.PAGES,
                                                 {"url": url, "source_id": "fetv"}), maxlen=1000)
    [dead] = await deadletters.read(redis_client)
    published = Published()
    done = await deadletters.replay(redis_client, dead, published)
    assert "fetched again" in done and published.messages == []
    assert await redis_client.zscore(streams.key("seen", "fetv"), url) is None
    assert await redis_client.hget(streams.key("attempts", "fetv"), url) is None
    assert await redis_client.xlen(streams.DEAD_LETTER) == 0


async def test_replaying_a_refused_alert_resends_it_to_that_channel_only(redis_client) -> None:
    guard = streams.key("delivered", ALERT["alert_id"], "mail")
    await redis_client.set(guard, "dead-lettered")
    await deadletters.write(redis_client, letter("notifier", streams.ALERTS, ALERT,
                                                 channel_id="mail"), maxlen=1000)
    [dead] = await deadletters.read(redis_client)
    published = Published()
    await deadletters.replay(redis_client, dead, published)
    [(alert, stream)] = published.messages
    assert stream == streams.ALERTS and alert["channels"] == ["mail"]
    assert alert["alert_id"] == ALERT["alert_id"]
    assert await redis_client.get(guard) is None  # the channel may be tried again


async def test_replaying_a_parser_failure_publishes_the_page_again(redis_client) -> None:
    page = {"url": "https://news.example.kr/a/2", "source_id": "fetv", "body": "PGh0bWw+"}
    await deadletters.write(redis_client, letter("parser", streams.PAGES, page), maxlen=1000)
    [dead] = await deadletters.read(redis_client)
    published = Published()
    await deadletters.replay(redis_client, dead, published)
    assert published.messages == [(page, streams.PAGES)]


async def test_an_entry_with_no_readable_original_is_refused_with_a_reason(redis_client) -> None:
    await deadletters.write(redis_client, letter("parser", streams.PAGES, {"raw": "garbage"}),
                            maxlen=1000)
    [dead] = await deadletters.read(redis_client)
    with pytest.raises(ValueError, match="no readable original"):
        await deadletters.replay(redis_client, dead, Published())
    assert await redis_client.xlen(streams.DEAD_LETTER) == 1  # kept


async def test_purge_one_old_or_all(redis_client) -> None:
    for n in range(3):
        await deadletters.write(redis_client, letter("parser", streams.PAGES, {"n": n}),
                                maxlen=1000)
    first = (await deadletters.read(redis_client))[0]
    assert await deadletters.purge(redis_client, entry_id=first.entry_id) == 1
    assert await deadletters.purge(redis_client,
                                   before=datetime.now(UTC) - timedelta(days=1)) == 0
    assert await deadletters.purge(redis_client) == 2
    assert await redis_client.xlen(streams.DEAD_LETTER) == 0


def test_the_dead_letter_command(redis_url, tmp_path, capsys) -> None:
    import asyncio

    import redis as sync_redis

    from sokbo.cli import main

    config = tmp_path / "sokbo.yaml"
    config.write_text(f"""
redis_url: {redis_url}
rules: [{{id: r, query: 소버린AI, channels: [c]}}]
channels: [{{id: c, kind: console}}]
""", encoding="utf-8")

    async def fill() -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(redis_url)
        await deadletters.write(client, letter("crawler", streams.PAGES, {
            "url": "https://news.example.kr/a/1", "source_id": "fetv"}), maxlen=1000)
        await deadletters.write(client, letter("notifier", streams.ALERTS, ALERT,
                                               channel_id="mail"), maxlen=1000)
        await client.aclose()

    asyncio.run(fill())
    assert main(["dead-letter", "list", "--config", str(config)]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert "crawler" in lines[0] and "url=https://news.example.kr/a/1" in lines[0]
    assert "channel=mail" in lines[2] and "2 dead letter(s)" in out.err
    entry_id = lines[2].split()[0]
    assert main(["dead-letter", "show", entry_id, "--config", str(config)]) == 0
    assert '"channel_id": "mail"' in capsys.readouterr().out
    assert main(["dead-letter", "replay", entry_id, "--config", str(config)]) == 0
    assert "sent back for channel mail" in capsys.readouterr().out
    client = sync_redis.Redis.from_url(redis_url)
    [(_, fields)] = client.xrange(streams.ALERTS)
    assert b"a1b2c3d4e5f60718" in fields[b"__data__"]  # FastStream's envelope, as services read
    assert main(["dead-letter", "purge", "--all", "--config", str(config)]) == 0
    assert "purged 1" in capsys.readouterr().out
    assert client.xlen(streams.DEAD_LETTER) == 0
    client.close()
    assert main(["dead-letter", "replay", "--config", str(config)]) == 2  # no target
    assert "needs an entry id or --all" in capsys.readouterr().err
