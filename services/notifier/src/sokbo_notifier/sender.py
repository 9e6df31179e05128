"""Drain Slack outboxes: one sender per channel across replicas, paced, coalescing bursts.

Every notifier replica runs :meth:`SlackSender.run`.  It looks at each Slack
channel's queue (:mod:`sokbo_notifier.outbox`) when the local handler queues an alert
and every ``poll_interval`` seconds, and drains a non-empty one while it holds the
channel's lease ``sokbo:slack:sender:<channel_id>`` (:mod:`sokbo_notifier.leases`):

* each message first takes a token from the channel's bucket (:mod:`.pacing`:
  ``max_per_second``, shared by all replicas, counted from Slack's previous answer,
  paused by a 429's ``Retry-After``);
* then looks at the queue: when at most ``burst`` alerts wait behind the oldest one,
  the oldest goes alone (:func:`~sokbo_notifier.render.slack_payload`); when more
  wait, one digest lists the oldest 40
  (:func:`~sokbo_notifier.render_digest.slack_digest_payload`);
* Slack's 200 → the alerts are recorded as sent and leave the queue (one
  transaction, before anything else); 429 → the bucket is paused for
  ``Retry-After`` (at most an hour); a 5xx or network error → paused for an
  equal-jitter backoff (1 s doubling to 60 s); either way the alerts stay queued
  and are never dropped; a permanent refusal (404, 410, ``no_service``,
  ``invalid_token``, …) → each alert is dead-lettered with the channel id and
  recorded as ``dead-lettered``, with an error log and a metric.

The one duplicate window: between Slack accepting a post and the transaction that
records it reaching Redis.  If the sending process dies there (SIGKILL, OOM, a lost
node) or Redis cannot be reached to record it, the alerts are still queued and not
marked, and the next holder of the lease (after the lease expires) posts them again:
that one message repeats.  A graceful shutdown does not open it: the post in flight
and its record are shielded from cancellation.  Two related cases are logged: Slack
may have posted a message whose answer was a 5xx or a timeout (B29), and a sender
frozen longer than the lease right before a post could overlap with the next holder
(the lease is renewed every ttl/3 and once more, checked, just before each post).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
from pydantic import ValidationError
from redis.exceptions import RedisError

from sokbo import streams
from sokbo.config import SlackChannel
from sokbo.context import ServiceContext
from sokbo.errors import PermanentError, RetryableError
from sokbo.logs import get_logger
from sokbo.messages import AlertRaised
from sokbo.observability import (
    END_TO_END_LATENCY,
    NOTIFICATIONS_SENT,
    NOTIFIER_WAITING,
    SLACK_MESSAGES,
    SLACK_PACING_WAIT,
    STAGE_LATENCY,
)
from sokbo_notifier.backoff import equal_jitter_delay
from sokbo_notifier.leases import Lease, check_cancelled, shielded
from sokbo_notifier.outbox import SlackOutbox
from sokbo_notifier.pacing import TokenBucket
from sokbo_notifier.render import slack_payload
from sokbo_notifier.render_digest import DIGEST_LIMIT, slack_digest_payload
from sokbo_notifier.slack import post_webhook

__all__ = ["SlackSender"]

MAX_RETRY_AFTER = 3600.0  # seconds: a longer Retry-After is taken as this (and logged)
FAILURE_BASE, FAILURE_CAP = 1.0, 60.0  # backoff after a 5xx or network error, seconds
Post = Callable[[httpx.AsyncClient, str, dict], Awaitable[None]]


class SlackSender:
    """Drains every Slack channel's outbox from this replica (see the module docstring).

    Args:
        ctx: the service context (settings, Redis, dead letters).
        client: the HTTP client for webhook posts; its timeouts must be well under
            *lease_ttl*.
        lease_ttl: seconds a channel's sender lease lasts unrenewed: how long a dead
            replica's channels wait before another replica takes them over.
        poll_interval: seconds between looks at the queues (the local handler also
            wakes the sender at once).
        post: :func:`~sokbo_notifier.slack.post_webhook` or a stand-in.
    """

    def __init__(self, ctx: ServiceContext, client: httpx.AsyncClient, *,
                 outbox: SlackOutbox | None = None, lease_ttl: float = 30.0,
                 poll_interval: float = 0.5, post: Post = post_webhook) -> None:
        self.ctx = ctx
        self.redis = ctx.redis
        self.client = client
        self.outbox = outbox or SlackOutbox(ctx.redis)
        self.bucket = TokenBucket(ctx.redis)
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.post = post
        self._wake = asyncio.Event()
        self.record_attempts = 5

    def wake(self) -> None:
        """Look at the queues now (called by the handler after queueing an alert)."""
        self._wake.set()

    def _channel(self, channel_id: str) -> SlackChannel | None:
        try:
            channel = self.ctx.settings.channel(channel_id)  # follows config reloads
        except KeyError:
            return None
        return channel if isinstance(channel, SlackChannel) else None

    async def run(self) -> None:
        """Drain queues forever: the notifier's background task; cancel to stop."""
        tasks: dict[str, asyncio.Task[None]] = {}
        log = get_logger(component="slack-sender")
        try:
            while True:
                check_cancelled()
                self._wake.clear()
                try:
                    await self._start_drains(tasks)
                except (RedisError, OSError) as exc:
                    log.warning("slack_poll_failed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _start_drains(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        configured = {c.id for c in self.ctx.settings.channels if isinstance(c, SlackChannel)}
        for channel_id in sorted(configured | await self.outbox.channel_ids()):
            waiting = await self.outbox.size(channel_id)
            NOTIFIER_WAITING.labels(channel_id=channel_id).set(waiting)
            task = tasks.get(channel_id)
            if waiting and (task is None or task.done()):
                tasks[channel_id] = asyncio.create_task(self._drain_logged(channel_id),
                                                        name=f"slack-sender-{channel_id}")

    async def _drain_logged(self, channel_id: str) -> None:
        try:
            await self.drain(channel_id)
        except (RedisError, OSError) as exc:
            get_logger(channel_id=channel_id).error("slack_sender_failed", error=str(exc),
                                                    will_retry=True)

    async def drain(self, channel_id: str) -> None:
        """Send what waits for *channel_id* while holding its lease; return when empty.

        Returns at once when another replica holds the lease.
        """
        lease = Lease(self.redis, streams.key("slack", "sender", channel_id), self.lease_ttl)
        if not await lease.acquire():
            return
        try:
            async with lease.kept():
                while lease.held and await self.outbox.size(channel_id):
                    check_cancelled()
                    await self._next_message(channel_id, lease)
        finally:
            await lease.release()

    async def _next_message(self, channel_id: str, lease: Lease) -> None:
        channel = self._channel(channel_id)
        if channel is None:
            await self._orphaned(channel_id)
            return
        waited = await self.bucket.wait(channel_id, channel.max_per_second)
        if waited:
            SLACK_PACING_WAIT.labels(channel_id=channel_id).inc(waited)
        ids, total = await self.outbox.peek(channel_id, DIGEST_LIMIT)
        single = total - 1 <= channel.burst  # one message, or a digest of the queue's head
        # read (and validate) only what this message carries: a long queue is not re-read
        # for every single message sent from it
        alerts = await self._readable(channel_id, await self.outbox.entries(
            channel_id, ids[:1] if single else ids))
        check_cancelled()
        if not alerts or not await lease.renew():  # still ours, for a full ttl, right now
            return
        batch = alerts[:1] if single else alerts
        await shielded(self._send(channel, batch, waiting=max(total - len(batch), 0)))

    async def _readable(self, channel_id: str,
                        entries: list[tuple[str, bytes | None]]) -> list[AlertRaised]:
        """Parse queued alerts; dead-letter (and unqueue) any that cannot be read."""
        alerts, broken = [], []
        for alert_id, body in entries:
            try:
                alerts.append(AlertRaised.model_validate_json(body or b""))
            except ValidationError as exc:
                broken.append(alert_id)
                await self.ctx.dead_letter(
                    "notifier", streams.ALERTS, None, body or b"{}", 1,
                    f"channel {channel_id}: queued alert {alert_id} is unreadable: "
                    f"{exc.errors()[:2]}", channel_id=channel_id)
        await self.outbox.done(channel_id, broken, "dead-lettered")
        return alerts

    async def _send(self, channel: SlackChannel, alerts: list[AlertRaised],
                    waiting: int) -> None:
        kind = "digest" if len(alerts) > 1 else "single"
        payload = (slack_digest_payload(alerts, waiting=waiting) if kind == "digest"
                   else slack_payload(alerts[0]))
        try:
            await self.post(self.client, channel.webhook_url, payload)
        except RetryableError as exc:
            await self._later(channel, kind, len(alerts), exc)
            return
        except PermanentError as exc:
            await self._refused(channel, kind, alerts, str(exc))
            return
        now = datetime.now(UTC)
        await self._record(channel.id, [a.alert_id for a in alerts], f"sent:{now.isoformat()}")
        await self.bucket.settle(channel.id, channel.max_per_second)
        SLACK_MESSAGES.labels(channel_id=channel.id, kind=kind, outcome="sent").inc()
        for alert in alerts:
            latency = (now - alert.discovered_at).total_seconds()
            NOTIFICATIONS_SENT.labels(kind="slack", outcome="sent").inc()
            END_TO_END_LATENCY.labels(kind="slack").observe(latency)
            STAGE_LATENCY.labels(stage="match_to_delivery").observe(
                max(0.0, (now - alert.raised_at).total_seconds()))
            get_logger(channel_id=channel.id, alert_id=alert.alert_id,
                       rule_id=alert.rule_id).info(
                "notification_sent", kind="slack", sent_as=kind, latency_s=round(latency, 3),
                title=alert.article.title)

    async def _record(self, channel_id: str, alert_ids: list[str], state: str) -> None:
        """:meth:`SlackOutbox.done`, retried: the message is out, so it must be recorded."""
        for attempt in range(1, self.record_attempts + 1):
            try:
                await self.outbox.done(channel_id, alert_ids, state)
                return
            except (RedisError, OSError) as exc:
                if attempt >= self.record_attempts:
                    get_logger(channel_id=channel_id).error(
                        "slack_record_failed", error=str(exc), alert_ids=alert_ids,
                        state=state, detail="the next sender posts these again (duplicate)")
                    raise
                await asyncio.sleep(min(0.2 * 2 ** attempt, 5.0))

    async def _later(self, channel: SlackChannel, kind: str, count: int,
                     exc: RetryableError) -> None:
        """Keep the alerts queued and pause the channel for every replica."""
        log = get_logger(channel_id=channel.id, sent_as=kind, alerts=count)
        if exc.retry_after is not None:
            delay, outcome = min(exc.retry_after, MAX_RETRY_AFTER), "rate_limited"
            log.warning("slack_rate_limited", retry_after_s=exc.retry_after,
                        pause_s=round(delay, 3))
        else:
            key = self.outbox.failures_key(channel.id)
            failures = int(await self.redis.incr(key))
            await self.redis.expire(key, 3600)
            delay, outcome = equal_jitter_delay(failures, FAILURE_BASE, FAILURE_CAP), \
                "retryable_error"
            log_at = log.error if failures >= 5 else log.warning
            log_at("slack_post_failed", error=str(exc), failures=failures,
                   retry_in_s=round(delay, 3), will_retry=True)
        await self.bucket.settle(channel.id, channel.max_per_second)
        await self.bucket.pause(channel.id, delay)
        SLACK_MESSAGES.labels(channel_id=channel.id, kind=kind, outcome=outcome).inc()
        NOTIFICATIONS_SENT.labels(kind="slack", outcome="retryable_error").inc(count)

    async def _refused(self, channel: SlackChannel, kind: str, alerts: list[AlertRaised],
                       error: str) -> None:
        """Dead-letter each alert with the channel id, then record them as dead-lettered."""
        get_logger(channel_id=channel.id, sent_as=kind).error(
            "slack_refused", error=error, alerts=len(alerts),
            fix="check the webhook and its Slack channel, then `sokbo dead-letter replay`")
        await self._dead_letter(channel.id, alerts, f"channel {channel.id}: {error}")
        SLACK_MESSAGES.labels(channel_id=channel.id, kind=kind, outcome="permanent_error").inc()
        NOTIFICATIONS_SENT.labels(kind="slack", outcome="permanent_error").inc(len(alerts))

    async def _dead_letter(self, channel_id: str, alerts: list[AlertRaised],
                           error: str) -> None:
        for alert in alerts:
            await self.ctx.dead_letter("notifier", streams.ALERTS, None,
                                       alert.model_dump_json().encode(), 1, error,
                                       channel_id=channel_id)
        await self._record(channel_id, [a.alert_id for a in alerts], "dead-lettered")

    async def _orphaned(self, channel_id: str) -> None:
        """Dead-letter what waits for a channel that is gone from the config (or not Slack)."""
        entries, _ = await self.outbox.head(channel_id, DIGEST_LIMIT)
        alerts = await self._readable(channel_id, entries)
        get_logger(channel_id=channel_id).error(
            "slack_channel_gone", alerts=len(alerts),
            fix="define the channel again (kind: slack) and replay the dead letters")
        await self._dead_letter(channel_id, alerts, f"channel {channel_id}: no longer a Slack "
                                "channel in the notifier's config; define it under channels, "
                                "reload, and replay")
