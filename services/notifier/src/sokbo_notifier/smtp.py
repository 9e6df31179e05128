"""Send an e-mail through an :class:`~sokbo.config.EmailChannel` with aiosmtplib.

Failures are classified by RFC 5321 §4.2.1 reply codes: 4yz is a transient negative
completion (retry later), 5yz a permanent one (retrying cannot help).  Connection
failures and timeouts are transient.  Messages name ``host:port``, never the password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

import aiosmtplib

from sokbo.config import EmailChannel
from sokbo.errors import PermanentError, RetryableError
from sokbo.logs import get_logger
from sokbo_notifier.backoff import equal_jitter_delay

__all__ = ["deliver_email", "send_email"]


def _classify(where: str, code: int, text: str) -> RetryableError | PermanentError:
    """Map an SMTP reply *code* to our error: 4yz retryable, anything else permanent."""
    said = f"{where}: SMTP {code} {text}".rstrip()
    return RetryableError(said) if 400 <= code < 500 else PermanentError(said)


def _refused(where: str, exc: aiosmtplib.SMTPRecipientsRefused) -> Exception:
    """All recipients refused: retryable if any refusal was transient (4yz)."""
    detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
    said = f"{where}: every recipient refused ({detail})"
    transient = any(400 <= r.code < 500 for r in exc.recipients)
    return RetryableError(said) if transient else PermanentError(said)


async def send_email(channel: EmailChannel, message: EmailMessage) -> None:
    """Deliver *message* to ``channel.smtp_host:smtp_port`` in one SMTP session.

    Uses implicit TLS when ``use_tls``, requires STARTTLS when ``starttls`` and
    otherwise lets aiosmtplib upgrade opportunistically when the server offers it;
    logs in when ``username`` is set; ``timeout`` is in seconds.  The envelope comes
    from the message's From/To headers.  A message built by
    :func:`sokbo_notifier.render.email_message` is 7-bit, so a server without
    SMTPUTF8 or 8BITMIME accepts it (RFC 6531 is needed only for non-ASCII addresses).
    Recipients refused while others were accepted are logged, not raised: the
    message was delivered, and a retry would duplicate it for the others.

    Raises:
        RetryableError: connection refused or dropped, a timeout, a 4yz reply, or all
            recipients refused with at least one 4yz.
        PermanentError: a 5yz reply (550 mailbox refused, 535 authentication failed, …),
            or an extension the session needs (STARTTLS, AUTH, SMTPUTF8) is missing.
    """
    where = f"smtp {channel.smtp_host}:{channel.smtp_port}"
    try:
        refused, _ = await aiosmtplib.send(
            message,
            hostname=channel.smtp_host,
            port=channel.smtp_port,
            use_tls=channel.use_tls,
            start_tls=True if channel.starttls else (False if channel.use_tls else None),
            username=channel.username,
            password=channel.password,
            timeout=channel.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise _refused(where, exc) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _classify(where, exc.code, exc.message) from None
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError,
            aiosmtplib.SMTPServerDisconnected, OSError, TimeoutError) as exc:
        raise RetryableError(f"{where}: {type(exc).__name__}: {exc}") from None
    except (aiosmtplib.SMTPException, ValueError) as exc:
        raise PermanentError(f"{where}: {type(exc).__name__}: {exc}") from None
    if refused:  # accepted for someone: a retry would duplicate it for them
        get_logger(component="smtp").warning(
            "smtp_recipients_refused", server=where,
            refused={rcpt: f"{r.code} {r.message}" for rcpt, r in refused.items()})


async def deliver_email(
    channel: EmailChannel,
    message: EmailMessage,
    *,
    attempts: int = 3,
    base_delay: float = 2.0,
    max_delay: float = 30.0,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> int:
    """Send *message* with :func:`send_email`, retrying transient failures.

    A 4yz reply, a refused or dropped connection or a timeout is retried after an
    equal-jitter exponential backoff (*base_delay* · 2ⁿ seconds, capped at
    *max_delay*); a 5yz reply is not (RFC 5321 §4.2.1).

    Returns:
        the number of attempts used (1 when the first one succeeded).

    Raises:
        RetryableError: the last one, after *attempts* tries; the caller keeps the work
            and tries again later.
        PermanentError: at once, never retried.
        ValueError: *attempts* < 1.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            await send_email(channel, message)
        except RetryableError as exc:
            if attempt >= attempts:
                raise
            delay = equal_jitter_delay(attempt, base_delay, max_delay)
            get_logger(component="smtp", channel_id=channel.id).warning(
                "smtp_retry", attempt=attempt, delay_s=round(delay, 3), error=str(exc))
            await sleep(delay)
        else:
            return attempt
    raise AssertionError("unreachable")  # pragma: no cover
