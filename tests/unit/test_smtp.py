"""The SMTP client against a real aiosmtpd server on 127.0.0.1 (its own thread)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope
from pydantic import ValidationError

from sokbo.config import EmailChannel
from sokbo.errors import PermanentError, RetryableError
from sokbo.messages import AlertRaised, ArticleSummary, Snippet
from sokbo_notifier.render import email_message
from sokbo_notifier.smtp import deliver_email, send_email

NOW = datetime(2025, 9, 10, 5, 30, tzinfo=UTC)
TITLE = "[알림] OpenAI 코리아 관련 기사 3건"
# folded by CPython 3.11's own encoder, this subject loses a space (python/cpython#92081)
LONG_TITLE = ("[속보] OpenAI A&B사 A&B사 서울에서 확대 코리아 서울에서 \"소버린AI\" 확대 [속보] "
              "기자간담회 >> >> 출범 10일 <!channel> 기자간담회 확대 >> "
              "서울에서 오픈AI 서울에서 코리아")
SENDER = "속보 <alerts@example.com>"
PASSWORD = "hunter2-very-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_alert(title: str = TITLE) -> AlertRaised:
    text = "오픈AI가 10일 'OpenAI 코리아'의 출범을 공식 선언했다."
    start = text.index("OpenAI 코리아")
    return AlertRaised(
        alert_id="0123456789abcdef", rule_id="openai-korea", query='"OpenAI 코리아"',
        article=ArticleSummary(article_id="a1", url="https://news.example.kr/a?idxno=1&sc=rss",
                               title=title, source_id="fetv", source_title="FETV",
                               published_at=NOW),
        matched_terms=["OpenAI 코리아"], hits=[],
        snippets=[Snippet(field="text", text=text, highlights=[(start, start + 11)])],
        channels=["pr-mail"], discovered_at=NOW, fetched_at=NOW, parsed_at=NOW, raised_at=NOW,
    )


def make_channel(port: int, **overrides: object) -> EmailChannel:
    fields: dict[str, object] = {
        "id": "pr-mail", "kind": "email", "smtp_host": "127.0.0.1", "smtp_port": port,
        "from": SENDER, "to": ["pr@example.com", "ceo@example.com"], "timeout": 5,
    }
    return EmailChannel.model_validate({**fields, **overrides})


def make_message(channel: EmailChannel, title: str = TITLE) -> email.message.EmailMessage:
    return email_message(make_alert(title), sender=channel.from_, recipients=channel.to)


class Mailbox:
    """An aiosmtpd handler that keeps envelopes and answers as told."""

    def __init__(self, *, data_reply: str = "250 OK", rcpt_reply: str | None = None,
                 drop_extensions: tuple[str, ...] = ()) -> None:
        self.data_reply = data_reply
        self.rcpt_reply = rcpt_reply
        self.drop_extensions = drop_extensions
        self.envelopes: list[Envelope] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        return [r for r in responses
                if not any(r[4:].upper().startswith(ext) for ext in self.drop_extensions)]

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append(envelope)
        return self.data_reply


def refuse_everyone(server, session, envelope, mechanism, auth_data) -> AuthResult:
    return AuthResult(success=False, handled=False)


@pytest.fixture
def smtpd() -> Iterator[Callable[..., tuple[Mailbox, int]]]:
    """Start an aiosmtpd Controller: ``smtpd(mailbox, **smtp_parameters) -> (mailbox, port)``."""
    controllers: list[Controller] = []

    def start(mailbox: Mailbox | None = None, **parameters: object) -> tuple[Mailbox, int]:
        mailbox = mailbox or Mailbox()
        port = free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, **parameters)
        controller.start()
        controllers.append(controller)
        return mailbox, port

    yield start
    for controller in controllers:
        controller.stop()


def received(mailbox: Mailbox) -> email.message.EmailMessage:
    [envelope] = mailbox.envelopes
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


# --- delivery ------------------------------------------------------------------------

@pytest.mark.parametrize("title", [TITLE, LONG_TITLE])
async def test_delivered_with_the_korean_subject(smtpd, title: str) -> None:
    mailbox, port = smtpd(enable_SMTPUTF8=True)
    channel = make_channel(port)
    await send_email(channel, make_message(channel, title))
    [envelope] = mailbox.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["pr@example.com", "ceo@example.com"]
    msg = received(mailbox)
    assert msg["subject"] == f"[sokbo] openai-korea: {title}"
    assert msg["message-id"] == "<sokbo.0123456789abcdef@example.com>"
    assert "OpenAI 코리아" in msg.get_body(("plain",)).get_content()


@pytest.mark.parametrize("dropped", [("SMTPUTF8",), ("SMTPUTF8", "8BITMIME")])
async def test_server_without_smtputf8_or_8bitmime_accepts_it(smtpd, dropped) -> None:
    mailbox, port = smtpd(Mailbox(drop_extensions=dropped), enable_SMTPUTF8=False)
    channel = make_channel(port)
    await send_email(channel, make_message(channel, LONG_TITLE))
    [envelope] = mailbox.envelopes
    assert not any("SMTPUTF8" in option.upper() for option in envelope.mail_options)
    if "8BITMIME" in dropped:
        assert not any("8BITMIME" in option.upper() for option in envelope.mail_options)
    assert envelope.content.isascii()  # headers as RFC 2047 encoded-words, bodies base64/QP
    assert re.search(rb"(?m)^Subject: =\?utf-8\?b\?", envelope.content)
    assert received(mailbox)["subject"] == f"[sokbo] openai-korea: {LONG_TITLE}"


# --- failures --------------------------------------------------------------------------

@pytest.mark.parametrize(("reply", "error"), [
    ("550 5.7.1 Message rejected", PermanentError),
    ("554 5.6.0 Invalid characters", PermanentError),
    ("451 4.3.0 Try again later", RetryableError),
    ("452 4.3.1 Insufficient system storage", RetryableError),
])
async def test_data_replies_are_classified(smtpd, reply: str, error: type[Exception]) -> None:
    _, port = smtpd(Mailbox(data_reply=reply))
    channel = make_channel(port)
    with pytest.raises(error) as caught:
        await send_email(channel, make_message(channel))
    assert reply.split()[0] in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)


@pytest.mark.parametrize(("reply", "error"), [
    ("550 5.1.1 No such user", PermanentError),
    ("450 4.2.1 Mailbox busy", RetryableError),
])
async def test_refused_recipients_are_classified(smtpd, reply: str, error: type) -> None:
    _, port = smtpd(Mailbox(rcpt_reply=reply))
    channel = make_channel(port)
    with pytest.raises(error, match=reply.split()[0]):
        await send_email(channel, make_message(channel))


async def test_authentication_failure_is_permanent_and_hides_the_password(smtpd) -> None:
    _, port = smtpd(auth_require_tls=False, authenticator=refuse_everyone)
    channel = make_channel(port, username="alerts@example.com", password=PASSWORD)
    with pytest.raises(PermanentError) as caught:
        await send_email(channel, make_message(channel))
    assert "535" in str(caught.value)
    assert PASSWORD not in str(caught.value)


async def test_starttls_required_but_not_offered_is_permanent(smtpd) -> None:
    mailbox, port = smtpd()
    channel = make_channel(port, starttls=True)
    with pytest.raises(PermanentError, match="STARTTLS"):
        await send_email(channel, make_message(channel))
    assert mailbox.envelopes == []


async def test_nothing_listening_is_retryable() -> None:
    port = free_port()
    channel = make_channel(port, username="alerts@example.com", password=PASSWORD)
    with pytest.raises(RetryableError) as caught:
        await send_email(channel, make_message(channel))
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert PASSWORD not in str(caught.value)


async def test_server_that_hangs_up_is_retryable() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        channel = make_channel(port)
        with pytest.raises(RetryableError, match=f"127.0.0.1:{port}"):
            await send_email(channel, make_message(channel))
    finally:
        server.close()
        await server.wait_closed()


async def test_silent_server_times_out_as_retryable() -> None:
    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        channel = make_channel(port, timeout=0.3)
        with pytest.raises(RetryableError, match="Timeout"):
            await send_email(channel, make_message(channel))
    finally:
        server.close()
        await server.wait_closed()


# --- retries (deliver_email) -------------------------------------------------------------

class Sleeps(list):
    """An injected sleep that records the delays instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Scripted(Mailbox):
    """Answers DATA with *replies* in order, then 250."""

    def __init__(self, *replies: str) -> None:
        super().__init__()
        self.replies = list(replies)
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.attempts += 1
        reply = self.replies.pop(0) if self.replies else "250 OK"
        if reply.startswith("250"):
            self.envelopes.append(envelope)
        return reply


async def test_deliver_email_retries_4xx_with_growing_backoff(smtpd) -> None:
    mailbox, port = smtpd(Scripted("451 4.3.0 Try again later", "421 4.3.2 Busy"))
    channel = make_channel(port)
    sleeps = Sleeps()
    used = await deliver_email(channel, make_message(channel), attempts=3, base_delay=2.0,
                               sleep=sleeps)
    assert used == 3 and mailbox.attempts == 3 and len(mailbox.envelopes) == 1
    assert 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 4.0  # equal jitter, doubling


async def test_deliver_email_gives_up_after_attempts_with_a_retryable_error(smtpd) -> None:
    mailbox, port = smtpd(Scripted(*["451 4.3.0 Try again later"] * 5))
    channel = make_channel(port)
    sleeps = Sleeps()
    with pytest.raises(RetryableError, match="451"):
        await deliver_email(channel, make_message(channel), attempts=2, sleep=sleeps)
    assert mailbox.attempts == 2 and len(sleeps) == 1 and mailbox.envelopes == []


async def test_deliver_email_does_not_retry_a_5xx(smtpd) -> None:
    mailbox, port = smtpd(Scripted("554 5.6.0 Invalid characters"))
    channel = make_channel(port)
    sleeps = Sleeps()
    with pytest.raises(PermanentError, match="554"):
        await deliver_email(channel, make_message(channel), sleep=sleeps)
    assert mailbox.attempts == 1 and sleeps == []


async def test_deliver_email_rejects_zero_attempts() -> None:
    channel = make_channel(25)
    with pytest.raises(ValueError, match="attempts"):
        await deliver_email(channel, make_message(channel), attempts=0)


async def test_b30_sender_name_and_subject_on_the_wire_without_smtputf8(smtpd) -> None:
    mailbox, port = smtpd(Mailbox(drop_extensions=("SMTPUTF8", "8BITMIME")),
                          enable_SMTPUTF8=False)
    channel = make_channel(port)
    await send_email(channel, make_message(channel))
    [envelope] = mailbox.envelopes
    raw = envelope.original_content
    assert raw.isascii()
    assert re.search(rb"(?m)^From: =\?utf-8\?[bq]\?[^?]+\?= <alerts@example\.com>\r?$", raw)
    sender = received(mailbox)["from"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("속보", "alerts@example.com")
    assert received(mailbox)["subject"] == f"[sokbo] openai-korea: {TITLE}"


# --- EmailChannel.digest -----------------------------------------------------------------

@pytest.mark.parametrize("period", ["15m", "1h", "1d", None])
def test_email_channel_digest_periods(period: str | None) -> None:
    assert make_channel(25, digest=period).digest == period


@pytest.mark.parametrize("period", ["30m", "daily", "2h", 15, ""])
def test_email_channel_digest_names_the_fix(period: object) -> None:
    with pytest.raises(ValidationError) as caught:
        make_channel(25, digest=period)
    assert (f"digest {period!r} is not a digest period: write 15m, 1h or 1d, or leave digest "
            "out to send one e-mail per alert") in str(caught.value)
