"""The Slack webhook client against a real local HTTP/1.1 server (asyncio, 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from sokbo.config import SlackChannel, load_settings
from sokbo.errors import ConfigError, PermanentError, RetryableError
from sokbo_notifier.slack import deliver_slack, post_webhook, redact_url, retry_after_seconds

SECRET_PATH = "/services/T0000000/B0000000/XXXXsecretXXXX"
PAYLOAD = {"text": "[openai-korea] 제목", "blocks": []}


@dataclass
class Reply:
    status: int
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False  # read the request, never answer


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class SlackDouble:
    """A Slack-compatible webhook endpoint: plays *replies* in order, repeats the last."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.requests: list[Request] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{SECRET_PATH}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            start, *lines = head.strip().split("\r\n")
            method, path, _ = start.split(" ", 2)
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (line.partition(":") for line in lines)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(method, path, headers, body, time.monotonic()))
            index = min(len(self.requests), len(self.replies)) - 1
            reply = self.replies[index]
            if reply.stall:
                await reader.read()  # until the client gives up and closes
                return
            data = reply.body.encode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
            writer.write(f"HTTP/1.1 {reply.status} X\r\nContent-Type: text/html\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n{extra}\r\n"
                         .encode() + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def slack() -> AsyncIterator[Callable[..., SlackDouble]]:
    doubles: list[SlackDouble] = []

    async def start(*replies: Reply) -> SlackDouble:
        double = SlackDouble(list(replies))
        double.server = await asyncio.start_server(double.handle, "127.0.0.1", 0)
        doubles.append(double)
        return double

    yield start  # type: ignore[misc]
    for double in doubles:
        assert double.server is not None
        double.server.close()
        await double.server.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as c:
        yield c


class Sleeps(list):
    """An injected sleep that records the delays instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_no_secret(text: str) -> None:
    assert "XXXXsecretXXXX" not in text
    assert "/services/" not in text


# --- post_webhook ----------------------------------------------------------------------

async def test_200_ok_posts_json(slack, client) -> None:
    double = await slack(Reply(200, "ok"))
    await post_webhook(client, double.url, PAYLOAD)
    [request] = double.requests
    assert request.method == "POST" and request.path == SECRET_PATH
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == PAYLOAD


@pytest.mark.parametrize(("header", "expected"), [
    ({"Retry-After": "1"}, 1.0),
    ({"Retry-After": "30"}, 30.0),
    ({}, 1.0),
    ({"Retry-After": "soon"}, 1.0),
])
async def test_429_is_retryable_with_retry_after(slack, client, header, expected) -> None:
    double = await slack(Reply(429, "rate_limited", header))
    with pytest.raises(RetryableError) as caught:
        await post_webhook(client, double.url, PAYLOAD)
    assert caught.value.retry_after == expected
    assert "429" in str(caught.value)
    assert_no_secret(str(caught.value))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retryable_and_says_a_duplicate_is_possible(slack, client, status) -> None:
    double = await slack(Reply(status, "rollup_error"))
    with pytest.raises(RetryableError) as caught:
        await post_webhook(client, double.url, PAYLOAD)
    assert caught.value.retry_after is None
    assert str(status) in str(caught.value) and "duplicate" in str(caught.value)
    assert_no_secret(str(caught.value))


@pytest.mark.parametrize(("status", "body"), [
    (404, "no_service"),
    (410, "channel_is_archived"),
    (403, "invalid_token"),
    (403, "action_prohibited"),
    (403, "posting_to_general_channel_denied"),
    (404, "channel_not_found"),
    (400, "invalid_payload"),
    (400, "no_text"),
    (404, ""),
    (400, "something_new"),
    (401, "unauthorized"),
    (400, "too_many_attachments"),
    (400, "invalid_blocks"),
    (400, "missing_text_or_fallback_or_attachments"),
    (500, "invalid_token"),  # a documented refusal wrapped in a 5xx is still permanent
    (500, "no_service"),
])
async def test_documented_errors_are_permanent(slack, client, status, body) -> None:
    double = await slack(Reply(status, body))
    with pytest.raises(PermanentError) as caught:
        await post_webhook(client, double.url, PAYLOAD)
    assert f"HTTP {status}" in str(caught.value) and body in str(caught.value)
    assert_no_secret(str(caught.value))


async def test_connection_refused_is_retryable(client) -> None:
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    with pytest.raises(RetryableError) as caught:
        await post_webhook(client, url, PAYLOAD)
    assert "ConnectError" in str(caught.value)
    assert_no_secret(str(caught.value))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_read_timeout_is_retryable(slack) -> None:
    double = await slack(Reply(200, stall=True))
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as short:
        with pytest.raises(RetryableError) as caught:
            await post_webhook(short, double.url, PAYLOAD)
    assert "ReadTimeout" in str(caught.value) and "duplicate" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_redact_url() -> None:
    assert redact_url("https://hooks.slack.com/services/T0/B0/abc") == "https://hooks.slack.com/…"


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    (" 2 ", 2.0),
    ("0", 0.0),
    ("-5", 0.0),
    ("1.5", 1.5),
    ("Wed, 10 Sep 2025 05:31:00 GMT", 60.0),
    ("Wed, 10 Sep 2025 05:29:00 GMT", 0.0),
    (None, 1.0),
    ("", 1.0),
    ("garbage", 1.0),
])
def test_retry_after_seconds(value: str | None, expected: float) -> None:
    now = datetime(2025, 9, 10, 5, 30, tzinfo=UTC)
    assert retry_after_seconds(value, now=now) == expected


# --- deliver_slack -----------------------------------------------------------------------

async def test_deliver_first_try(slack, client) -> None:
    double = await slack(Reply(200))
    sleeps = Sleeps()
    assert await deliver_slack(client, double.url, PAYLOAD, sleep=sleeps) == 1
    assert sleeps == [] and len(double.requests) == 1


async def test_deliver_honours_retry_after(slack, client) -> None:
    double = await slack(Reply(429, "rate_limited", {"Retry-After": "1"}), Reply(200))
    sleeps = Sleeps()
    assert await deliver_slack(client, double.url, PAYLOAD, sleep=sleeps) == 2
    assert sleeps == [1.0]
    assert len(double.requests) == 2


async def test_deliver_waits_retry_after_in_real_time(slack, client) -> None:
    double = await slack(Reply(429, "rate_limited", {"Retry-After": "1"}), Reply(200))
    assert await deliver_slack(client, double.url, PAYLOAD) == 2
    first, second = double.requests
    assert second.at - first.at >= 1.0


async def test_deliver_does_not_retry_early_on_a_long_retry_after(slack, client) -> None:
    double = await slack(Reply(429, "rate_limited", {"Retry-After": "120"}), Reply(200))
    sleeps = Sleeps()
    with pytest.raises(RetryableError) as caught:
        await deliver_slack(client, double.url, PAYLOAD, max_delay=30.0, sleep=sleeps)
    assert caught.value.retry_after == 120.0
    assert sleeps == [] and len(double.requests) == 1


async def test_deliver_retries_5xx_with_jittered_backoff(slack, client) -> None:
    double = await slack(Reply(500, "rollup_error"), Reply(503, ""), Reply(200))
    sleeps = Sleeps()
    used = await deliver_slack(client, double.url, PAYLOAD, base_delay=0.5, sleep=sleeps)
    assert used == 3 and len(double.requests) == 3
    assert len(sleeps) == 2
    assert 0.0 <= sleeps[0] <= 0.5 and 0.0 <= sleeps[1] <= 1.0


async def test_deliver_backoff_is_capped(slack, client) -> None:
    double = await slack(Reply(500))
    sleeps = Sleeps()
    with pytest.raises(RetryableError):
        await deliver_slack(client, double.url, PAYLOAD, attempts=8, base_delay=1.0,
                            max_delay=2.0, sleep=sleeps)
    assert len(sleeps) == 7 and max(sleeps) <= 2.0


async def test_deliver_gives_up_after_attempts(slack, client) -> None:
    double = await slack(Reply(500, "rollup_error"))
    sleeps = Sleeps()
    with pytest.raises(RetryableError) as caught:
        await deliver_slack(client, double.url, PAYLOAD, attempts=3, sleep=sleeps)
    assert len(double.requests) == 3 and len(sleeps) == 2
    assert "500" in str(caught.value)


@pytest.mark.parametrize(("status", "body"), [(404, "no_service"), (403, "invalid_token")])
async def test_deliver_does_not_retry_permanent_errors(slack, client, status, body) -> None:
    double = await slack(Reply(status, body), Reply(200))
    sleeps = Sleeps()
    with pytest.raises(PermanentError):
        await deliver_slack(client, double.url, PAYLOAD, sleep=sleeps)
    assert len(double.requests) == 1 and sleeps == []


async def test_deliver_connection_refused_is_retried_then_raised(client) -> None:
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    sleeps = Sleeps()
    with capture_logs() as logs, pytest.raises(RetryableError) as caught:
        await deliver_slack(client, url, PAYLOAD, attempts=3, sleep=sleeps)
    assert len(sleeps) == 2
    assert_no_secret(str(caught.value))
    retries = [entry for entry in logs if entry["event"] == "slack_retry"]
    assert [entry["attempt"] for entry in retries] == [1, 2]
    for entry in retries:
        assert_no_secret(repr(entry))


async def test_deliver_rejects_zero_attempts(client) -> None:
    with pytest.raises(ValueError, match="attempts"):
        await deliver_slack(client, "http://127.0.0.1:9/x", PAYLOAD, attempts=0)


# --- SlackChannel settings -------------------------------------------------------------

def slack_channel(**options: object) -> SlackChannel:
    return SlackChannel.model_validate({"id": "pr-slack", "kind": "slack",
                                        "webhook_url": "https://hooks.slack.com/x", **options})


def test_slack_channel_defaults() -> None:
    channel = slack_channel()
    assert (channel.max_per_second, channel.burst) == (1.0, 5)


@pytest.mark.parametrize(("options", "expected"), [
    ({"max_per_second": 2}, (2.0, 5)),
    ({"max_per_second": 0.5, "burst": 0}, (0.5, 0)),
    ({"burst": 20}, (1.0, 20)),
])
def test_slack_channel_pacing_options(options: dict, expected: tuple[float, int]) -> None:
    channel = slack_channel(**options)
    assert (channel.max_per_second, channel.burst) == expected


@pytest.mark.parametrize(("options", "message"), [
    ({"max_per_second": 0}, "max_per_second 0 must be a number of messages per second above 0"),
    ({"max_per_second": -1}, "Slack allows about 1 per webhook"),
    ({"max_per_second": 500}, "at most 100"),
    ({"max_per_second": True}, "max_per_second True"),
    ({"max_per_second": "fast"}, "max_per_second 'fast'"),
    ({"burst": -1}, "burst -1 must be a whole number from 0 to 1000"),
    ({"burst": 2.5}, "burst 2.5 must be a whole number"),
    ({"burst": "5"}, "sent as one digest"),
])
def test_slack_channel_pacing_options_are_validated(options: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        slack_channel(**options)
    assert message in str(caught.value)


def test_a_bad_slack_option_names_the_file_key_and_fix(tmp_path) -> None:
    config = tmp_path / "sokbo.yaml"
    config.write_text("channels:\n  - {id: pr-slack, kind: slack, webhook_url: "
                      "'https://hooks.slack.com/x', max_per_second: 0}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == (
        f"{config}: channels[0].max_per_second: max_per_second 0 must be a number of "
        "messages per second above 0 and at most 100; Slack allows about 1 per webhook "
        "(write e.g. 1, or 0.5 for one every two seconds)")
