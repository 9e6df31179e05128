"""E-mail digests against a real Redis and an aiosmtpd server, with an injected clock."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sokbo import deadletters, streams
from sokbo.observability import REGISTRY
from sokbo_notifier.digest import period_bounds
from tests.integration.test_notifier import (
    MakeReplica,
    mail,
    make_alert,
    replicas,  # noqa: F401  (fixture)
    until,
)
from tests.servers import RecordingSmtpServer

pytestmark = pytest.mark.integration

KST = timedelta(hours=9)
#: 2025-09-10 14:03 KST
START = datetime(2025, 9, 10, 5, 3, tzinfo=UTC)


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at_kst(self, hour: int, minute: int, second: int = 0) -> None:
        self.now = datetime(2025, 9, 10, hour, minute, second, tzinfo=UTC) - KST


@pytest.fixture
def smtp() -> Iterator[RecordingSmtpServer]:
    server = RecordingSmtpServer(drop=("8BITMIME",))  # no SMTPUTF8 and no 8BITMIME (B30)
    server.start()
    yield server
    server.stop()


def digest_mail(port: int, period: str = "15m") -> dict:
    return mail(port, digest=period)


# --- periods (pure) ---------------------------------------------------------------------

@pytest.mark.parametrize(("kst", "period", "expected"), [
    ((14, 3, 0), "15m", ((14, 0), (14, 15))),
    ((14, 15, 0), "15m", ((14, 15), (14, 30))),
    ((14, 59, 59), "15m", ((14, 45), (15, 0))),
    ((14, 59, 59), "1h", ((14, 0), (15, 0))),
    ((0, 0, 0), "1h", ((0, 0), (1, 0))),
    ((23, 30, 0), "1d", ((0, 0), (24, 0))),  # the KST day, not the UTC one
    ((8, 59, 0), "1d", ((0, 0), (24, 0))),  # 23:59 UTC the day before
])
def test_periods_are_aligned_to_kst(kst: tuple[int, int, int], period: str,
                                    expected: tuple[tuple[int, int], tuple[int, int]]) -> None:
    day = datetime(2025, 9, 10, tzinfo=UTC) - KST  # 00:00 KST
    now = day + timedelta(hours=kst[0], minutes=kst[1], seconds=kst[2])
    (sh, sm), (eh, em) = expected
    start, end = period_bounds(now, period)
    assert start == (day + timedelta(hours=sh, minutes=sm)).timestamp()
    assert end == (day + timedelta(hours=eh, minutes=em)).timestamp()


def test_a_day_starts_at_midnight_kst() -> None:
    start, end = period_bounds(datetime(2025, 9, 10, 15, 0, tzinfo=UTC), "1d")
    assert datetime.fromtimestamp(start, UTC) == datetime(2025, 9, 10, 15, 0, tzinfo=UTC)
    assert end - start == 86400


# --- one digest at the boundary ------------------------------------------------------------

async def test_a_periods_alerts_arrive_as_one_digest_at_the_boundary_grouped_by_rule(
        replicas: MakeReplica, smtp: RecordingSmtpServer) -> None:  # noqa: F811
    clock = Clock(START)
    replica = await replicas([digest_mail(smtp.port)], clock=clock)
    for n, rule in [(1, "sovereign-ai"), (2, "openai-korea"), (3, "openai-korea"),
                    (4, "sovereign-ai"), (5, "openai-korea")]:
        clock.at_kst(14, 3 + n)
        await replica.handle(make_alert(n, rule_id=rule, channels=("team-mail",),
                                        raised_at=clock.now))
    clock.at_kst(14, 14, 59)
    assert await replica.notifier.digests.send_due() == 0 and smtp.raw == []
    clock.at_kst(14, 15)
    assert await replica.notifier.digests.send_due() == 1
    assert await replica.notifier.digests.send_due() == 0
    [raw] = smtp.raw
    [message] = smtp.messages
    assert message["subject"] == "[sokbo] 알림 5건 · 2025-09-10 14:00–14:15 KST"
    assert message["message-id"] == "<sokbo.digest.team-mail.202509101400@example.com>"
    assert message["from"].addresses[0].display_name == "속보 알림"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    order = [line for line in text.splitlines() if line.startswith(("■ ", "- "))]
    assert order == ["■ openai-korea (3건)", "- 기사 2 OpenAI 코리아", "- 기사 3 OpenAI 코리아",
                     "- 기사 5 OpenAI 코리아", "■ sovereign-ai (2건)", "- 기사 1 OpenAI 코리아",
                     "- 기사 4 OpenAI 코리아"]
    assert "https://news.example.kr/a/4" in text and "**OpenAI 코리아**" in text
    rich = message.get_body(("html",)).get_content()
    assert rich.count("<li") == 5 and '<a href="https://news.example.kr/a/1">' in rich
    assert raw.isascii()  # B30: 7-bit on the wire to a server without SMTPUTF8/8BITMIME
    assert re.search(rb"(?m)^From: =\?utf-8\?[bq]\?[^?]+\?= <alerts@example\.com>\r$", raw)
    mark = await replica.redis.get(streams.key("delivered", make_alert(
        1, rule_id="sovereign-ai").alert_id, "team-mail"))
    assert mark is not None and mark.startswith(b"sent:")


async def test_nothing_is_sent_for_an_empty_period(
        replicas: MakeReplica, smtp: RecordingSmtpServer) -> None:  # noqa: F811
    clock = Clock(START)
    replica = await replicas([digest_mail(smtp.port)], clock=clock)
    clock.at_kst(23, 0)
    assert await replica.notifier.digests.send_due() == 0 and smtp.raw == []


async def test_a_restart_between_enqueue_and_boundary_still_sends_once(
        replicas: MakeReplica, smtp: RecordingSmtpServer) -> None:  # noqa: F811
    clock = Clock(START)
    before = await replicas([digest_mail(smtp.port, "1h")], clock=clock)
    for n in (1, 2, 3):
        await before.handle(make_alert(n, channels=("team-mail",)))
    await before.close()  # the process stops during the period
    after = await replicas([digest_mail(smtp.port, "1h")], clock=clock)
    await after.handle(make_alert(2, channels=("team-mail",)))  # a redelivered entry
    clock.at_kst(15, 0)
    assert await after.notifier.digests.send_due() == 1
    again = await replicas([digest_mail(smtp.port, "1h")], clock=clock)
    assert await again.notifier.digests.send_due() == 0
    [message] = smtp.messages
    assert message["subject"] == "[sokbo] 알림 3건 · 2025-09-10 14:00–15:00 KST"


async def test_two_replicas_send_one_digest(replicas: MakeReplica) -> None:  # noqa: F811
    slow = RecordingSmtpServer(delay=0.5)  # both replicas try while the first is sending
    slow.start()
    try:
        clock = Clock(START)
        first = await replicas([digest_mail(slow.port)], clock=clock)
        second = await replicas([digest_mail(slow.port)], clock=clock)
        for n in range(1, 7):
            await (first if n % 2 else second).handle(make_alert(n, channels=("team-mail",)))
        clock.at_kst(14, 15)
        sent = await asyncio.gather(first.notifier.digests.send_due(),
                                    second.notifier.digests.send_due())
        assert sorted(sent) == [0, 1]
        await asyncio.sleep(0.2)
        assert await first.notifier.digests.send_due() == 0
        assert await second.notifier.digests.send_due() == 0
        [message] = slow.messages
        assert message["subject"] == "[sokbo] 알림 6건 · 2025-09-10 14:00–14:15 KST"
    finally:
        slow.stop()


async def test_two_running_replicas_send_one_digest_per_period(
        replicas: MakeReplica, smtp: RecordingSmtpServer) -> None:  # noqa: F811
    clock = Clock(START)
    first = await replicas([digest_mail(smtp.port)], clock=clock)
    second = await replicas([digest_mail(smtp.port)], clock=clock)
    tasks = [asyncio.create_task(r.notifier.digests.run()) for r in (first, second)]

    def waiting() -> float | None:
        return REGISTRY.get_sample_value("sokbo_notifier_waiting_alerts",
                                         {"channel_id": "team-mail"})

    try:
        await first.handle(make_alert(1, channels=("team-mail",)))
        await until(lambda: waiting() == 1, 3, "the gauge to show one alert waiting")
        clock.at_kst(14, 16)  # the next period
        await second.handle(make_alert(2, channels=("team-mail",)))
        await until(lambda: len(smtp.raw) == 1, 3, "the 14:00 digest")
        clock.at_kst(14, 30)
        await until(lambda: len(smtp.raw) == 2, 3, "the 14:15 digest")
        await until(lambda: waiting() == 0, 3, "the gauge back at 0")
        await asyncio.sleep(0.3)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    subjects = [m["subject"] for m in smtp.messages]
    assert subjects == ["[sokbo] 알림 1건 · 2025-09-10 14:00–14:15 KST",
                        "[sokbo] 알림 1건 · 2025-09-10 14:15–14:30 KST"]


async def test_an_alert_is_in_a_digest_at_most_once(
        replicas: MakeReplica, smtp: RecordingSmtpServer) -> None:  # noqa: F811
    clock = Clock(START)
    replica = await replicas([digest_mail(smtp.port)], clock=clock)
    alert = make_alert(1, channels=("team-mail",))
    await replica.handle(alert)
    await replica.handle(alert)
    clock.at_kst(14, 20)  # redelivered in the next period: not added there
    await replica.handle(alert)
    clock.at_kst(14, 45)
    assert await replica.notifier.digests.send_due() == 1
    [message] = smtp.messages
    assert message["subject"] == "[sokbo] 알림 1건 · 2025-09-10 14:00–14:15 KST"
    await replica.handle(alert)  # after it was sent: still nothing new
    clock.at_kst(15, 30)
    assert await replica.notifier.digests.send_due() == 0 and len(smtp.raw) == 1


async def test_an_alert_for_a_period_being_sent_goes_into_the_next(
        replicas: MakeReplica, smtp: RecordingSmtpServer) -> None:  # noqa: F811
    clock = Clock(START)
    replica = await replicas([digest_mail(smtp.port)], clock=clock)
    await replica.handle(make_alert(1, channels=("team-mail",)))
    start, _ = period_bounds(clock.now, "15m")
    lock = streams.key("digest", "lock", "team-mail", str(start))
    await replica.redis.set(lock, "another replica", px=5000)  # it is being sent
    await replica.handle(make_alert(2, channels=("team-mail",)))  # a replica running late
    await replica.redis.delete(lock)
    clock.at_kst(14, 15)
    assert await replica.notifier.digests.send_due() == 1
    clock.at_kst(14, 30)
    assert await replica.notifier.digests.send_due() == 1
    assert [m["subject"] for m in smtp.messages] == [
        "[sokbo] 알림 1건 · 2025-09-10 14:00–14:15 KST",
        "[sokbo] 알림 1건 · 2025-09-10 14:15–14:30 KST"]
    assert "기사 2" in smtp.messages[1].get_body(("plain",)).get_content()


# --- failures ----------------------------------------------------------------------------

async def test_a_4xx_reply_is_retried_with_backoff(replicas: MakeReplica) -> None:  # noqa: F811
    busy = RecordingSmtpServer(replies=["451 4.3.0 try again later", "452 4.3.1 full"])
    busy.start()
    try:
        clock = Clock(START)
        replica = await replicas([digest_mail(busy.port)], clock=clock)
        await replica.handle(make_alert(1, channels=("team-mail",)))
        due = streams.key("digest", "due")
        clock.at_kst(14, 15)
        assert await replica.notifier.digests.send_due() == 0
        [(_, first_retry)] = await replica.redis.zrange(due, 0, -1, withscores=True)
        assert 15 <= first_retry - clock.now.timestamp() <= 30  # equal jitter of 30 s
        assert await replica.notifier.digests.send_due() == 0  # not due yet
        clock.now += timedelta(seconds=31)
        assert await replica.notifier.digests.send_due() == 0  # 452: again later
        [(_, second_retry)] = await replica.redis.zrange(due, 0, -1, withscores=True)
        assert 30 <= second_retry - clock.now.timestamp() <= 60
        clock.now += timedelta(seconds=61)
        assert await replica.notifier.digests.send_due() == 1
        assert len(busy.raw) == 1 and await replica.redis.zcard(due) == 0
        assert await deadletters.read(replica.redis) == []
    finally:
        busy.stop()


async def test_a_5xx_reply_dead_letters_each_alert_with_the_channel(
        replicas: MakeReplica) -> None:  # noqa: F811
    refusing = RecordingSmtpServer(replies=["550 5.7.1 relaying denied"])
    refusing.start()
    try:
        clock = Clock(START)
        replica = await replicas([digest_mail(refusing.port)], clock=clock)
        alerts = [make_alert(n, channels=("team-mail",)) for n in (1, 2)]
        for alert in alerts:
            await replica.handle(alert)
        clock.at_kst(14, 15)
        assert await replica.notifier.digests.send_due() == 0
        letters = await deadletters.read(replica.redis)
        assert sorted(letter.record.original["alert_id"] for letter in letters) == sorted(
            a.alert_id for a in alerts)
        assert {letter.record.channel_id for letter in letters} == {"team-mail"}
        assert all("550" in letter.record.error for letter in letters)
        clock.at_kst(15, 0)
        assert await replica.notifier.digests.send_due() == 0  # not retried
        assert refusing.raw == [] and len(await deadletters.read(replica.redis)) == 2
        mark = streams.key("delivered", alerts[0].alert_id, "team-mail")
        assert await replica.redis.get(mark) == b"dead-lettered"
    finally:
        refusing.stop()


async def test_b30_non_ascii_subject_and_sender_reach_a_server_without_smtputf8(
        replicas: MakeReplica, smtp: RecordingSmtpServer) -> None:  # noqa: F811
    clock = Clock(START)
    replica = await replicas([mail(smtp.port)], clock=clock)  # immediate, no digest
    title = "[알림] OpenAI 코리아 관련 기사 3건"
    await replica.handle(make_alert(1, channels=("team-mail",), title=title))
    [raw] = smtp.raw
    assert raw.isascii()
    headers = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert re.search(r"(?m)^Subject: =\?utf-8\?b\?", headers)
    assert re.search(r"(?m)^From: =\?utf-8\?[bq]\?[^?]+\?= <alerts@example\.com>\r?$", headers)
    [message] = smtp.messages
    assert message["subject"] == f"[sokbo] openai-korea: {title}"
    assert message["from"].addresses[0].display_name == "속보 알림"
    assert message["from"].addresses[0].addr_spec == "alerts@example.com"
    assert "OpenAI 코리아" in message.get_body(("plain",)).get_content()
