"""The notifier service: ``sokbo.alerts`` → each of the rule's channels, once.

``sokbo:delivered:<alert_id>:<channel_id>`` guards each (alert, channel):

* before delivering, it is taken with ``SET NX`` as an in-flight lease (as long as
  ``delivery.claim_idle``), so a claimer that picks up the same entry while this
  replica is still posting waits instead of posting too;
* right after the channel accepts the message (before anything else) it becomes
  ``sent:<time>`` for 30 days, so a retry, a replica or a restart skips it; the
  window for a duplicate is the time between the channel's answer and that write;
* a retryable failure releases the lease (if still ours); a permanent one is
  dead-lettered first, then marked ``dead-lettered``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx

from sokbo import streams
from sokbo.config import ConsoleChannel, EmailChannel, SlackChannel
from sokbo.context import ServiceContext
from sokbo.errors import PermanentError, RetryableError
from sokbo.logs import get_logger
from sokbo.messages import AlertRaised
from sokbo.observability import END_TO_END_LATENCY, NOTIFICATIONS_SENT
from sokbo_notifier.render import console_line, email_message, slack_payload
from sokbo_notifier.slack import deliver_slack
from sokbo_notifier.smtp import send_email

DELIVERED_TTL = 30 * 86400
#: delete the in-flight lease only if it is still the one this delivery took
RELEASE_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def register(ctx: ServiceContext) -> None:
    """Subscribe the notifier to ``sokbo.alerts`` in the ``notifier`` group."""
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
    ctx.cleanup.append(client.aclose)
    ctx.on_reload(lambda settings: None)  # channels are looked up in ctx.settings

    async def deliver(channel: SlackChannel | EmailChannel | ConsoleChannel,
                      alert: AlertRaised) -> None:
        if isinstance(channel, SlackChannel):
            await deliver_slack(client, channel.webhook_url, slack_payload(alert), attempts=3)
        elif isinstance(channel, EmailChannel):
            await send_email(channel, email_message(alert, sender=channel.from_,
                                                    recipients=channel.to))
        else:
            print(console_line(alert), flush=True)

    lease_ms = int(ctx.settings.delivery.claim_idle * 1000)
    release = ctx.redis.register_script(RELEASE_LEASE)

    async def give_up(alert: AlertRaised, channel_id: str, kind: str, reason: str) -> None:
        await ctx.dead_letter("notifier", streams.ALERTS, None, alert.model_dump_json().encode(),
                              1, f"channel {channel_id}: {reason}", channel_id=channel_id)
        guard = streams.key("delivered", alert.alert_id, channel_id)
        await ctx.redis.set(guard, "dead-lettered", ex=DELIVERED_TTL)
        NOTIFICATIONS_SENT.labels(kind=kind, outcome="permanent_error").inc()

    async def notify(alert: AlertRaised, channel_id: str) -> bool:
        """Deliver *alert* to one channel once; return False if it should be retried."""
        log = get_logger(channel_id=channel_id, rule_id=alert.rule_id)
        try:
            channel = ctx.settings.channel(channel_id)  # follows config reloads
        except KeyError:
            await give_up(alert, channel_id, "unknown", "not in the notifier's config; add it "
                          "under channels and reload")
            return True
        guard = streams.key("delivered", alert.alert_id, channel_id)
        lease = f"inflight:{uuid.uuid4().hex}"
        if not await ctx.redis.set(guard, lease, nx=True, px=lease_ms):
            state = (await ctx.redis.get(guard) or b"").decode()
            if state.startswith("inflight:"):
                log.info("notification_in_flight_elsewhere", will_retry=True)
                return False
            NOTIFICATIONS_SENT.labels(kind=channel.kind, outcome="duplicate").inc()
            return True
        try:
            await deliver(channel, alert)
        except RetryableError as exc:
            await release(keys=[guard], args=[lease])
            NOTIFICATIONS_SENT.labels(kind=channel.kind, outcome="retryable_error").inc()
            log.warning("notification_failed", error=str(exc), will_retry=True)
            return False
        except PermanentError as exc:
            await give_up(alert, channel_id, channel.kind, str(exc))
            return True
        now = datetime.now(UTC)
        await ctx.redis.set(guard, f"sent:{now.isoformat()}", ex=DELIVERED_TTL)  # first
        latency = (now - alert.discovered_at).total_seconds()
        NOTIFICATIONS_SENT.labels(kind=channel.kind, outcome="sent").inc()
        END_TO_END_LATENCY.labels(kind=channel.kind).observe(latency)
        log.info("notification_sent", kind=channel.kind, latency_s=round(latency, 3),
                 title=alert.article.title)
        return True

    async def handle(alert: AlertRaised) -> None:
        # each channel on its own: a slow or failing webhook does not hold up the others
        done = await asyncio.gather(*(notify(alert, channel) for channel in alert.channels))
        pending = [channel for channel, ok in zip(alert.channels, done, strict=True) if not ok]
        if pending:
            raise RetryableError(f"channels {pending} did not accept alert {alert.alert_id}; "
                                 "left pending for retry")

    ctx.subscribe(streams.ALERTS, AlertRaised, handle, service="notifier")
