"""The notifier service: ``sokbo.alerts`` → each of the rule's channels, once.

``sokbo:delivered:<alert_id>:<channel_id>`` guards each (alert, channel); whatever
holds it, a redelivered entry, a claimer or a restarted replica sees it and does not
deliver again (B15).  Its values:

* ``queued:slack`` / ``queued:digest:<channel>:<start>:<period>`` — the alert waits in a
  Slack channel's outbox (:mod:`sokbo_notifier.outbox`, drained by
  :mod:`sokbo_notifier.sender`: paced, bursts coalesced) or in an e-mail digest
  (:mod:`sokbo_notifier.digest`).  Set in the same Lua script that queues the alert,
  before the stream entry is acked;
* ``inflight:<token>`` — an immediate e-mail or console delivery in progress: a lease
  (:class:`~sokbo_notifier.leases.Lease`) taken with ``SET NX`` for
  ``delivery.claim_idle`` seconds and renewed while the delivery and its retries run,
  so a claimer that picks up the same entry meanwhile leaves it pending instead of
  sending too; released (if still ours) after a retryable failure;
* ``sent:<UTC time>`` — written right after the channel accepted the message, before
  anything else; kept 30 days;
* ``dead-lettered`` — the channel refused it for good; the dead letter carries the
  channel id (``sokbo dead-letter replay`` clears the mark and sends it again).

The duplicate windows are the time between a channel accepting a message and the
``sent`` write (see :mod:`sokbo_notifier.sender` and :mod:`sokbo_notifier.digest`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from redis.exceptions import RedisError

from sokbo import streams
from sokbo.config import ConsoleChannel, EmailChannel, SlackChannel
from sokbo.context import ServiceContext
from sokbo.errors import PermanentError, RetryableError
from sokbo.logs import get_logger
from sokbo.messages import AlertRaised
from sokbo.observability import END_TO_END_LATENCY, NOTIFICATIONS_SENT, STAGE_LATENCY
from sokbo_notifier.digest import EmailDigests
from sokbo_notifier.leases import Lease, shielded
from sokbo_notifier.outbox import DELIVERED_TTL, SlackOutbox, mark_key
from sokbo_notifier.render import console_line, email_message
from sokbo_notifier.sender import SlackSender
from sokbo_notifier.smtp import deliver_email

__all__ = ["Notifier", "register"]

#: a Slack sender's lease, seconds: well above the webhook client's timeouts
SENDER_LEASE_FLOOR = 30.0


class Notifier:
    """The notifier's state: the alert handler, the Slack senders and the e-mail digests.

    Args:
        ctx: the service context.
        clock: the time the digests go by (aware UTC); injected by tests.
        client: the HTTP client for webhooks (default: 10 s timeouts, closed by
            :meth:`aclose`).
        sender_lease: seconds a Slack sender's lease lasts (default: ``claim_idle``,
            at least 30 s).
        poll_interval: seconds between a replica's looks at the Slack queues.
        digest_tick: seconds between looks at the digest schedule.
    """

    def __init__(self, ctx: ServiceContext, *, clock: Callable[[], datetime] | None = None,
                 client: httpx.AsyncClient | None = None, sender_lease: float | None = None,
                 poll_interval: float = 0.5, digest_tick: float = 1.0) -> None:
        self.ctx = ctx
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        self.outbox = SlackOutbox(ctx.redis)
        lease = sender_lease or max(ctx.settings.delivery.claim_idle, SENDER_LEASE_FLOOR)
        self.slack = SlackSender(ctx, self.client, outbox=self.outbox, lease_ttl=lease,
                                 poll_interval=poll_interval)
        self.digests = EmailDigests(ctx, clock=clock, tick=digest_tick)
        self._lease_s = ctx.settings.delivery.claim_idle

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    async def handle(self, alert: AlertRaised) -> None:
        """Deliver or queue *alert* for each of its channels.

        Raises:
            RetryableError: a channel did not take it; the entry stays pending and the
                channels that did take it skip it next time.
        """
        # each channel on its own: a slow or failing channel does not hold up the others
        done = await asyncio.gather(*(self.notify(alert, c) for c in alert.channels))
        pending = [channel for channel, ok in zip(alert.channels, done, strict=True) if not ok]
        if pending:
            raise RetryableError(f"channels {pending} did not accept alert {alert.alert_id}; "
                                 "left pending for retry")

    async def notify(self, alert: AlertRaised, channel_id: str) -> bool:
        """Hand *alert* to one channel once; return False if it should be retried."""
        log = get_logger(channel_id=channel_id, rule_id=alert.rule_id)
        try:
            channel = self.ctx.settings.channel(channel_id)  # follows config reloads
        except KeyError:
            await self._give_up(alert, channel_id, "unknown", "not in the notifier's config; "
                                "add it under channels and reload")
            return True
        if isinstance(channel, SlackChannel):
            outcome = await self.outbox.put(channel_id, alert)
            self.slack.wake()
        elif isinstance(channel, EmailChannel) and channel.digest:
            outcome = await self.digests.add(channel, alert)
        else:
            return await self._now(channel, alert)
        if outcome == "in_flight":
            log.info("notification_in_flight_elsewhere", will_retry=True)
            return False
        if outcome == "duplicate":
            NOTIFICATIONS_SENT.labels(kind=channel.kind, outcome="duplicate").inc()
        else:
            log.info("notification_queued", kind=channel.kind,
                     digest=getattr(channel, "digest", None))
        return True

    async def _give_up(self, alert: AlertRaised, channel_id: str, kind: str,
                       reason: str) -> None:
        await self.ctx.dead_letter("notifier", streams.ALERTS, None,
                                   alert.model_dump_json().encode(), 1,
                                   f"channel {channel_id}: {reason}", channel_id=channel_id)
        await self.ctx.redis.set(mark_key(alert.alert_id, channel_id), "dead-lettered",
                                 ex=DELIVERED_TTL)
        NOTIFICATIONS_SENT.labels(kind=kind, outcome="permanent_error").inc()

    async def _deliver(self, channel: EmailChannel | ConsoleChannel, alert: AlertRaised) -> None:
        if isinstance(channel, EmailChannel):
            message = email_message(alert, sender=channel.from_, recipients=channel.to)
            await deliver_email(channel, message, attempts=3)
        else:
            print(console_line(alert), flush=True)

    async def _now(self, channel: EmailChannel | ConsoleChannel, alert: AlertRaised) -> bool:
        """Deliver at once under the in-flight lease (immediate e-mail, console)."""
        log = get_logger(channel_id=channel.id, rule_id=alert.rule_id)
        guard = mark_key(alert.alert_id, channel.id)
        lease = Lease(self.ctx.redis, guard, self._lease_s)
        lease.token = f"inflight:{lease.token}"
        if not await lease.acquire():
            state = (await self.ctx.redis.get(guard) or b"").decode()
            if state.startswith("inflight:"):
                log.info("notification_in_flight_elsewhere", will_retry=True)
                return False
            NOTIFICATIONS_SENT.labels(kind=channel.kind, outcome="duplicate").inc()
            return True
        try:
            async with lease.kept():  # renewed while SMTP retries run
                await shielded(self._deliver(channel, alert))
        except RetryableError as exc:
            await lease.release()
            NOTIFICATIONS_SENT.labels(kind=channel.kind, outcome="retryable_error").inc()
            log.warning("notification_failed", error=str(exc), will_retry=True)
            return False
        except PermanentError as exc:
            await self._give_up(alert, channel.id, channel.kind, str(exc))
            return True
        now = datetime.now(UTC)
        await self._record_sent(guard, f"sent:{now.isoformat()}")  # first
        latency = (now - alert.discovered_at).total_seconds()
        NOTIFICATIONS_SENT.labels(kind=channel.kind, outcome="sent").inc()
        END_TO_END_LATENCY.labels(kind=channel.kind).observe(latency)
        STAGE_LATENCY.labels(stage="match_to_delivery").observe(
            max(0.0, (now - alert.raised_at).total_seconds()))
        log.info("notification_sent", kind=channel.kind, latency_s=round(latency, 3),
                 title=alert.article.title)
        return True

    async def _record_sent(self, guard: str, state: str, attempts: int = 5) -> None:
        """Write the delivery mark, retried: the message is out, so it must be recorded
        (a Redis restart or failover right after the send must not cause a resend)."""
        for attempt in range(1, attempts + 1):
            try:
                await self.ctx.redis.set(guard, state, ex=DELIVERED_TTL)
                return
            except (RedisError, OSError):
                if attempt >= attempts:
                    raise
                await asyncio.sleep(min(0.2 * 2 ** attempt, 5.0))


def register(ctx: ServiceContext) -> None:
    """Subscribe the notifier to ``sokbo.alerts`` and start its Slack and digest senders."""
    notifier = Notifier(ctx)
    ctx.cleanup.append(notifier.aclose)
    ctx.on_reload(lambda settings: None)  # channels are looked up in ctx.settings
    ctx.background.extend([notifier.slack.run, notifier.digests.run])
    ctx.subscribe(streams.ALERTS, AlertRaised, notifier.handle, service="notifier")
