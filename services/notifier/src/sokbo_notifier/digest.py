"""E-mail digests: a period's alerts for a channel, sent as one message at the period's end.

Periods are aligned to Korea Standard Time: ``15m`` ends at :00, :15, :30 and :45,
``1h`` on the hour, ``1d`` at 00:00 KST (15:00 UTC).  The clock is injected, so
tests need not wait.

* :meth:`EmailDigests.add` (the ``sokbo.alerts`` handler) runs one Lua script: unless
  the alert's delivery mark exists, it sets the mark to ``queued:digest:<period>``,
  stores the alert in the period's hash and schedules the period in
  ``sokbo:digest:due`` (score: its end, Unix seconds).  The stream entry is acked
  only after that, so a restart during the period loses nothing; the mark puts an
  alert in at most one digest, however often its entry is redelivered.  A period
  whose digest is being sent or was sent is closed: an alert that arrives for it
  (a replica's clock running late) goes into the next period.
* :meth:`EmailDigests.send_due` (every replica, every second) sends each due period
  while holding its lock ``sokbo:digest:lock:<channel>:<start>`` (a lease), then in
  one MULTI/EXEC transaction marks the period ``sokbo:digest:closed:…`` and its alerts
  sent, deletes the hash and unschedules it.  So two replicas send one digest per
  (channel, period).  The duplicate window: the SMTP server accepted the message and
  the process died (or lost Redis) before that transaction; the lock expires and
  another replica sends the digest again, with the same ``Message-ID``.
* A 4yz reply or a network failure reschedules the period after an equal-jitter
  backoff (30 s doubling to 15 min), never dropping it; a 5yz reply dead-letters
  each alert with the channel id.

Keys (``<c>`` channel id, ``<s>`` period start in Unix seconds):
``sokbo:digest:alerts:<c>:<s>`` (hash alert id → AlertRaised JSON),
``sokbo:digest:due`` (sorted set of ``<c>:<s>:<period>``), ``sokbo:digest:lock:<c>:<s>``,
``sokbo:digest:closed:<c>:<s>`` (30 days), ``sokbo:digest:attempts:<c>:<s>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import ValidationError
from redis.exceptions import RedisError

from sokbo import streams
from sokbo.config import EmailChannel
from sokbo.context import ServiceContext
from sokbo.errors import PermanentError, RetryableError
from sokbo.logs import get_logger
from sokbo.messages import AlertRaised
from sokbo.observability import EMAIL_DIGESTS, NOTIFICATIONS_SENT, NOTIFIER_WAITING
from sokbo_notifier.backoff import equal_jitter_delay
from sokbo_notifier.leases import Lease, check_cancelled, shielded
from sokbo_notifier.outbox import DELIVERED_TTL, mark_key
from sokbo_notifier.render_digest import email_digest, period_label
from sokbo_notifier.smtp import send_email

__all__ = ["PERIOD_SECONDS", "EmailDigests", "period_bounds"]

#: length of each digest period, seconds
PERIOD_SECONDS = {"15m": 900, "1h": 3600, "1d": 86400}
KST_OFFSET = 9 * 3600  # seconds east of UTC; Korea has had no daylight saving since 1988
RETRY_BASE, RETRY_CAP = 30.0, 900.0  # seconds, after a 4yz or a network failure
CLOSED_TTL = 30 * 86400
Clock = Callable[[], datetime]

_ADD = """
local state = redis.call('get', KEYS[1])
if state then return {0, state} end
local alerts, member, due_at = KEYS[2], ARGV[4], ARGV[5]
if redis.call('exists', KEYS[3]) == 1 or redis.call('exists', KEYS[4]) == 1 then
  alerts, member, due_at = KEYS[5], ARGV[6], ARGV[7]
end
redis.call('set', KEYS[1], 'queued:digest:' .. member, 'EX', ARGV[3])
redis.call('hset', alerts, ARGV[1], ARGV[2])
redis.call('zadd', KEYS[6], 'NX', due_at, member)
return {1, member}
"""


def period_bounds(now: datetime, period: str) -> tuple[int, int]:
    """Return ``(start, end)`` in Unix seconds of the KST-aligned *period* holding *now*.

    A naive *now* is taken as UTC.  Raises KeyError for a period not in
    :data:`PERIOD_SECONDS`.
    """
    length = PERIOD_SECONDS[period]
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    seconds = int(moment.timestamp() // 1)
    start = (seconds + KST_OFFSET) // length * length - KST_OFFSET
    return start, start + length


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Period:
    """One (channel, period) digest: its member in the schedule and its keys."""

    def __init__(self, channel_id: str, start: int, period: str) -> None:
        self.channel_id, self.start, self.period = channel_id, start, period
        self.end = start + PERIOD_SECONDS.get(period, 0)
        self.member = f"{channel_id}:{start}:{period}"

    @classmethod
    def parse(cls, member: str) -> _Period:
        channel_id, start, period = member.rsplit(":", 2)
        return cls(channel_id, int(start), period)

    def key(self, what: str) -> str:
        return streams.key("digest", what, self.channel_id, str(self.start))


class EmailDigests:
    """Collects alerts into per-period digests in Redis and sends them when due.

    Args:
        ctx: the service context (settings, Redis, dead letters).
        clock: returns the current time (aware UTC); injected by tests.
        lease_ttl: seconds a period's send lock lasts unrenewed (renewed while sending).
        tick: seconds between looks at the schedule in :meth:`run`.
    """

    def __init__(self, ctx: ServiceContext, *, clock: Clock | None = None,
                 lease_ttl: float = 60.0, tick: float = 1.0) -> None:
        self.ctx = ctx
        self.redis = ctx.redis
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lease_ttl = lease_ttl
        self.tick = tick
        self.due_key = streams.key("digest", "due")
        self._add = ctx.redis.register_script(_ADD)
        self._gauged: set[str] = set()

    async def add(self, channel: EmailChannel, alert: AlertRaised) -> str:
        """Put *alert* in *channel*'s digest of the current period (by the clock).

        Returns:
            ``"queued"``, ``"duplicate"`` (its mark exists: already in a digest, sent
            or dead-lettered), or ``"in_flight"`` (an older notifier is sending it).

        Raises:
            ValueError: *channel* has no ``digest`` period.
        """
        if channel.digest is None:
            raise ValueError(f"channel {channel.id} sends no digest")
        start, end = period_bounds(self.clock(), channel.digest)
        now, later = (_Period(channel.id, start, channel.digest),
                      _Period(channel.id, end, channel.digest))
        keys = [mark_key(alert.alert_id, channel.id), now.key("alerts"), now.key("closed"),
                now.key("lock"), later.key("alerts"), self.due_key]
        args = [alert.alert_id, alert.model_dump_json(), DELIVERED_TTL, now.member, now.end,
                later.member, later.end]
        added, state = await self._add(keys=keys, args=args)
        if int(added):
            return "queued"
        return "in_flight" if _text(state).startswith("inflight:") else "duplicate"

    async def run(self) -> None:
        """Send due digests every *tick* seconds forever: a background task; cancel to stop."""
        log = get_logger(component="email-digests")
        while True:
            check_cancelled()
            try:
                await self.send_due()
                await self._gauge()
            except (RedisError, OSError) as exc:
                log.warning("email_digest_poll_failed", error=str(exc))
            await asyncio.sleep(self.tick)

    async def _gauge(self) -> None:
        """Set ``sokbo_notifier_waiting_alerts`` of each digest channel (0 once all sent)."""
        waiting = dict.fromkeys(self._gauged, 0)
        for member in await self.redis.zrange(self.due_key, 0, -1):
            period = _Period.parse(_text(member))
            count = int(await self.redis.hlen(period.key("alerts")))
            waiting[period.channel_id] = waiting.get(period.channel_id, 0) + count
        for channel_id, count in waiting.items():
            NOTIFIER_WAITING.labels(channel_id=channel_id).set(count)
        self._gauged = set(waiting)

    async def send_due(self) -> int:
        """Send every digest whose period has ended by the clock; return how many were sent."""
        now = self.clock()
        members = await self.redis.zrangebyscore(self.due_key, "-inf", now.timestamp(),
                                                 start=0, num=100)
        sent = 0
        for member in members:
            sent += await self._send(_Period.parse(_text(member)), now)
        return sent

    async def _send(self, period: _Period, now: datetime) -> int:
        lease = Lease(self.redis, period.key("lock"), self.lease_ttl)
        if not await lease.acquire():
            return 0  # another replica is sending it
        try:
            async with lease.kept():
                if await self.redis.exists(period.key("closed")):
                    await self.redis.zrem(self.due_key, period.member)
                    return 0
                alerts = await self._alerts(period)
                if not alerts:
                    await self.redis.zrem(self.due_key, period.member)
                    return 0
                return await shielded(self._deliver(period, alerts, now))
        finally:
            await lease.release()

    async def _alerts(self, period: _Period) -> list[AlertRaised]:
        alerts, broken = [], []
        for alert_id, body in (await self.redis.hgetall(period.key("alerts"))).items():
            try:
                alerts.append(AlertRaised.model_validate_json(body))
            except ValidationError as exc:
                broken.append(_text(alert_id))
                await self.ctx.dead_letter("notifier", streams.ALERTS, None, body, 1,
                                           f"channel {period.channel_id}: digest entry is "
                                           f"unreadable: {exc.errors()[:2]}",
                                           channel_id=period.channel_id)
        if broken:
            await self.redis.hdel(period.key("alerts"), *broken)
        return alerts

    async def _deliver(self, period: _Period, alerts: list[AlertRaised], now: datetime) -> int:
        log = get_logger(channel_id=period.channel_id, period=period.member)
        try:
            channel = self.ctx.settings.channel(period.channel_id)
        except KeyError:
            channel = None
        if not isinstance(channel, EmailChannel):
            await self._refused(period, alerts, "no longer an e-mail channel in the notifier's "
                                "config; define it under channels, reload, and replay")
            return 0
        message = email_digest(alerts, channel_id=channel.id, sender=channel.from_,
                               recipients=channel.to, start=_utc(period.start),
                               end=_utc(period.end), now=now)
        try:
            await send_email(channel, message)
        except RetryableError as exc:
            await self._later(period, now, str(exc))
            return 0
        except PermanentError as exc:
            await self._refused(period, alerts, str(exc))
            return 0
        await self._close(period, [a.alert_id for a in alerts],
                          f"sent:{datetime.now(UTC).isoformat()}")
        EMAIL_DIGESTS.labels(channel_id=channel.id, outcome="sent").inc()
        NOTIFICATIONS_SENT.labels(kind="email", outcome="sent").inc(len(alerts))
        log.info("email_digest_sent", alerts=len(alerts),
                 label=period_label(_utc(period.start), _utc(period.end)),
                 alert_ids=sorted(a.alert_id for a in alerts))
        return 1

    async def _close(self, period: _Period, alert_ids: list[str], state: str) -> None:
        """Mark the period closed and its alerts *state*, drop it: one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(period.key("closed"), state, ex=CLOSED_TTL)
            for alert_id in alert_ids:
                pipe.set(mark_key(alert_id, period.channel_id), state, ex=DELIVERED_TTL)
            pipe.delete(period.key("alerts"), period.key("attempts"))
            pipe.zrem(self.due_key, period.member)
            await pipe.execute()

    async def _later(self, period: _Period, now: datetime, error: str) -> None:
        attempts = int(await self.redis.incr(period.key("attempts")))
        await self.redis.expire(period.key("attempts"), 7 * 86400)
        delay = equal_jitter_delay(attempts, RETRY_BASE, RETRY_CAP)
        await self.redis.zadd(self.due_key, {period.member: now.timestamp() + delay}, xx=True)
        EMAIL_DIGESTS.labels(channel_id=period.channel_id, outcome="retryable_error").inc()
        log = get_logger(channel_id=period.channel_id, period=period.member)
        (log.error if attempts >= 5 else log.warning)(
            "email_digest_failed", error=error, attempts=attempts, retry_in_s=round(delay, 1),
            will_retry=True)

    async def _refused(self, period: _Period, alerts: list[AlertRaised], error: str) -> None:
        get_logger(channel_id=period.channel_id, period=period.member).error(
            "email_digest_refused", error=error, alerts=len(alerts))
        for alert in alerts:
            await self.ctx.dead_letter("notifier", streams.ALERTS, None,
                                       alert.model_dump_json().encode(), 1,
                                       f"channel {period.channel_id}: {error}",
                                       channel_id=period.channel_id)
        await self._close(period, [a.alert_id for a in alerts], "dead-lettered")
        EMAIL_DIGESTS.labels(channel_id=period.channel_id, outcome="permanent_error").inc()
        NOTIFICATIONS_SENT.labels(kind="email", outcome="permanent_error").inc(len(alerts))
