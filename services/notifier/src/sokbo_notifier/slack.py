"""Post to a Slack incoming webhook, classifying every failure as retryable or permanent.

Follows Slack's "Sending messages using incoming webhooks" → "Handling errors" (the
documented error bodies) and "Rate limits" (HTTP 429 with ``Retry-After`` in
seconds; RFC 9110 §10.2.3 also allows an HTTP-date).  A webhook URL is a secret:
error messages and logs show only its scheme and host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from sokbo.errors import PermanentError, RetryableError
from sokbo.logs import get_logger
from sokbo_notifier.backoff import backoff_delay

__all__ = ["PERMANENT_BODIES", "deliver_slack", "post_webhook", "redact_url",
           "retry_after_seconds"]


#: Error bodies of Slack's incoming webhooks that no retry can fix: the "Handling
#: errors" table of "Sending messages using incoming webhooks" and the 2016 changelog
#: "Improving error conditions for Incoming Webhooks", plus the Block Kit and
#: authentication errors the same endpoint returns (``rollup_error`` is a 500 that
#: may be retried, so it is not here).
PERMANENT_BODIES = frozenset({
    "invalid_payload", "user_not_found", "channel_not_found", "channel_is_archived",
    "action_prohibited", "posting_to_general_channel_denied", "too_many_attachments",
    "no_service", "no_service_id", "no_team", "team_disabled", "invalid_token", "no_text",
    "missing_text_or_fallback_or_attachments", "invalid_blocks", "invalid_blocks_format",
    "invalid_auth", "token_revoked", "account_inactive", "ekm_access_denied",
    "is_archived", "restricted_action",
})
DEFAULT_RETRY_AFTER = 1.0  # seconds, when a 429 carries no usable Retry-After
_DUPLICATE = " (the message may have been posted: a retry can duplicate it)"


def redact_url(url: str) -> str:
    """Return ``scheme://host/…``: the webhook path (its secret) removed."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float:
    """Parse a ``Retry-After`` value (delay-seconds or HTTP-date) into seconds ≥ 0.

    Returns :data:`DEFAULT_RETRY_AFTER` when *value* is missing or unparsable.
    """
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        return max(float(value.strip()), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its path from *text*, in case an exception quoted them."""
    path = urlsplit(url).path
    text = text.replace(url, redact_url(url))
    return text.replace(path, "/…") if len(path) > 1 else text


async def post_webhook(client: httpx.AsyncClient, url: str, payload: dict) -> None:
    """POST *payload* as JSON to the webhook *url* once.

    Returns on HTTP 200 (any 2xx).

    Raises:
        RetryableError: 429 (``retry_after`` from ``Retry-After``, default 1 s), 5xx,
            a timeout or any transport error; the body may have been delivered on a
            5xx or read timeout, so a retry can duplicate the message.
        PermanentError: 404, 410, any other 4xx, or one of Slack's documented error
            bodies (``invalid_token``, ``channel_not_found``, …).
    """
    where = f"slack webhook {redact_url(url)}"
    try:
        response = await client.post(url, json=payload)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        detail = _scrub(str(exc), url) or "no detail"
        raise RetryableError(f"{where}: {type(exc).__name__}: {detail}") from None
    except httpx.TransportError as exc:  # the body may have been sent
        detail = _scrub(str(exc), url) or "no detail"
        raise RetryableError(f"{where}: {type(exc).__name__}: {detail}{_DUPLICATE}") from None
    status, body = response.status_code, response.text.strip()[:200]
    if 200 <= status < 300:
        return
    said = f"{where}: HTTP {status} {body!r}"
    if status == 429:
        delay = retry_after_seconds(response.headers.get("retry-after"))
        raise RetryableError(f"{said}, retry after {delay:g} s", retry_after=delay)
    if status >= 500 and body not in PERMANENT_BODIES:
        raise RetryableError(said + _DUPLICATE)
    raise PermanentError(said)


async def deliver_slack(
    client: httpx.AsyncClient,
    url: str,
    payload: dict,
    *,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> int:
    """Post *payload* with :func:`post_webhook`, retrying retryable failures.

    Waits exactly ``retry_after`` when Slack gave one (a 429), otherwise a full-jitter
    exponential backoff (*base_delay* · 2ⁿ, capped at *max_delay* seconds).  When a
    429 asks for more than *max_delay* seconds, stops at once instead of retrying
    early (an early retry is how webhooks get disabled): the caller keeps the work
    pending and retries later.

    Returns:
        the number of attempts used (1 when the first post succeeded).

    Raises:
        RetryableError: the last one, after *attempts* tries or a long Retry-After.
        PermanentError: at once, never retried.
        ValueError: *attempts* < 1.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            await post_webhook(client, url, payload)
        except RetryableError as exc:
            if attempt >= attempts:
                raise
            if exc.retry_after is not None and exc.retry_after > max_delay:
                raise
            delay = (exc.retry_after if exc.retry_after is not None
                     else backoff_delay(attempt, base_delay, max_delay))
            get_logger(component="slack").warning(
                "slack_retry", webhook=redact_url(url), attempt=attempt,
                delay_s=round(delay, 3), error=str(exc))
            await sleep(delay)
        else:
            return attempt
    raise AssertionError("unreachable")  # pragma: no cover
