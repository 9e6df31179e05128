"""One alert per story and rule: near-duplicate articles shared by all replicas in Redis.

A *story* is a set of articles whose fingerprints (:mod:`sokbo.fingerprint`) are
within :data:`~sokbo.fingerprint.THRESHOLD` bits of one already in it (single
linkage), seen within the window (72 h by default); its id is the article id of
the first of them.  Only articles that match a rule are put in stories.  For each
(story, rule) the first article to claim it raises the alert; every later one is
a near-duplicate, counted once and logged with the original's id.

One Lua script, atomic in Redis, assigns the story and claims the rules, so two
replicas evaluating two copies at once still raise exactly one alert.  Keys (all
expire; times are Unix milliseconds):

* ``sokbo:story:band:<i>:<hex>`` — sorted set of ``<fingerprint>:<story id>``
  scored by when it was added; band *i* of the fingerprint (:func:`sokbo.fingerprint.bands`)
  is ``<hex>``.  Members older than the window are removed on each lookup.
* ``sokbo:story:article:<article id>`` — the article's story, so an edited article
  (same URL, new text) stays in the story it joined first.
* ``sokbo:story:<story id>:rule:<rule id>`` — ``<article id>:<fingerprint>:<claimed at>``
  of the article that raises the rule's alert for the story.  Taken with ``SET NX``
  as a lease; :meth:`StoryIndex.confirm`, called once the alert is on the stream,
  makes it last the window from the claim.  A lease that runs out (the article was
  dead-lettered, its replica died) lets a later copy raise the alert instead.
* ``sokbo:story:<story id>:rule:<rule id>:duplicates`` — set of the article ids
  suppressed, so a redelivered duplicate is not counted twice.

The claim keys are named inside the script from the story found there, so the
script needs one Redis (not a Redis Cluster), as the rest of sokbo does.
Lookup follows Manku, Jain, Das Sarma, "Detecting near-duplicates for web
crawling", WWW 2007: candidates share a band; each is checked by Hamming distance.
With 13 bands of 5 bits about a third of the stories are candidates, so a lookup
is linear in the stories of the window: measured on Redis 7.0, 0.6 ms per article
with 1,000 stories, 5 ms with 10,000 (only articles matching a rule are indexed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis

from sokbo import streams
from sokbo.fingerprint import THRESHOLD, bands, fingerprint_of, hamming, is_fingerprint
from sokbo.messages import ArticleParsed

__all__ = ["DEFAULT_WINDOW", "Assignment", "Decision", "StoryIndex", "fingerprint_for"]

#: how long a story lasts after its last article, and a claim after it was taken (s)
DEFAULT_WINDOW = 72 * 3600.0

#: KEYS[1] article → story, KEYS[2..] band keys; ARGV: fingerprint, article id, now (ms),
#: window (ms), lease (ms), threshold, claim-key prefix, then the rule ids.
#: Returns {story, how, distance, then per rule: holder, newly counted (0/1), duplicates}.
_CLAIM = """
local fp, article, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local window, lease, threshold = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local band, bxor, rshift, sub = bit.band, bit.bxor, bit.rshift, string.sub
local function pop32(x)
  x = x - band(rshift(x, 1), 0x55555555)
  x = band(x, 0x33333333) + band(rshift(x, 2), 0x33333333)
  x = band(x + rshift(x, 4), 0x0F0F0F0F)
  x = x + rshift(x, 8)
  return band(x + rshift(x, 16), 0x3F)
end
local hi, lo = tonumber(sub(fp, 1, 8), 16), tonumber(sub(fp, 9, 16), 16)
local story, how, distance = redis.call('GET', KEYS[1]), 'article', -1
if not story then
  local best, best_d = nil, threshold + 1
  for i = 2, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
    for _, member in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do
      local d = pop32(bxor(hi, tonumber(sub(member, 1, 8), 16)))
      if d < best_d then
        d = d + pop32(bxor(lo, tonumber(sub(member, 9, 16), 16)))
        if d < best_d then best, best_d = member, d end
      end
    end
  end
  if best then
    story, how, distance = sub(best, 18), 'near', best_d
  else
    story, how = article, 'new'
  end
end
local member = fp .. ':' .. story
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[3], member)
  redis.call('PEXPIRE', KEYS[i], window)
end
redis.call('SET', KEYS[1], story, 'PX', window)
local out = {story, how, distance}
local mine = article .. ':' .. fp .. ':' .. ARGV[3]
for i = 8, #ARGV do
  local claim = ARGV[7] .. story .. ':rule:' .. ARGV[i]
  local holder = mine
  if not redis.call('SET', claim, mine, 'NX', 'PX', lease) then
    holder = redis.call('GET', claim)
  end
  local counted, count = 0, 0
  if sub(holder, 1, #article + 1) ~= article .. ':' then
    local duplicates = claim .. ':duplicates'
    counted = redis.call('SADD', duplicates, article)
    redis.call('PEXPIRE', duplicates, window)
    count = redis.call('SCARD', duplicates)
  end
  table.insert(out, holder)
  table.insert(out, counted)
  table.insert(out, count)
end
return out
"""

#: KEYS[1] a claim; ARGV: the claim value, its expiry (Unix ms). Extend it if still ours.
_CONFIRM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class Decision:
    """What an article does for one rule it matched.

    Attributes:
        rule_id: the rule.
        story_id: the story the article belongs to (the article id of its first article).
        raise_alert: True if this article holds the (story, rule) claim: raise the alert.
        original_article_id: the article holding the claim (this one when ``raise_alert``).
        distance: Hamming distance (bits) from this article's fingerprint to the holder's.
        newly_counted: False when this duplicate was already counted (a redelivery).
        duplicates: near-duplicates suppressed for the (story, rule) so far.
        claim_key: the Redis key of the claim; claim: its value.
    """

    rule_id: str
    story_id: str
    raise_alert: bool
    original_article_id: str
    distance: int
    newly_counted: bool
    duplicates: int
    claim_key: str
    claim: str


@dataclass(frozen=True)
class Assignment:
    """The story an article joined and how: ``article`` (seen before), ``near``, ``new``.

    ``distance`` is the Hamming distance to the nearest fingerprint found (``near``), or -1.
    """

    story_id: str
    how: str
    distance: int
    decisions: list[Decision]


class StoryIndex:
    """The shared story index (see the module docstring).

    Args:
        redis: the client; the index uses keys under ``sokbo:story:``.
        window: seconds a story and a claim last (72 h).
        lease: seconds a claim lasts until :meth:`confirm` (longer than all the
            deliveries of an entry: ``claim_idle × (max_deliveries + 1)``).
        threshold: largest Hamming distance, in bits, between two articles of a story.
    """

    def __init__(self, redis: aioredis.Redis, *, window: float = DEFAULT_WINDOW,
                 lease: float = 900.0, threshold: int = THRESHOLD) -> None:
        self._redis = redis
        self._window_ms = int(window * 1000)
        self._lease_ms = max(1, int(lease * 1000))
        self._threshold = threshold
        self._claim = redis.register_script(_CLAIM)
        self._confirm = redis.register_script(_CONFIRM)

    def _claim_key(self, story_id: str, rule_id: str) -> str:
        return streams.key("story", story_id, "rule", rule_id)

    async def claim(self, article_id: str, fingerprint: str, rule_ids: list[str], *,
                    now: datetime) -> Assignment:
        """Put the article in its story and claim each rule's alert for the story.

        Args:
            article_id: the article (see :func:`sokbo.messages.article_id_for`).
            fingerprint: its 16-hex-digit fingerprint (:func:`sokbo.fingerprint.fingerprint_of`).
            rule_ids: the rules it matched and has not raised yet.
            now: the current time (UTC); members older than ``now - window`` are dropped.

        Returns:
            The story and one :class:`Decision` per rule, in the order of *rule_ids*.

        Raises:
            ValueError: *fingerprint* is not 16 lowercase hex digits.
            redis.exceptions.RedisError: Redis failed (retryable).
        """
        keys = [streams.key("story", "article", article_id)]
        keys += [streams.key("story", "band", str(i), f"{value:x}")
                 for i, value in enumerate(bands(fingerprint, self._threshold))]
        now_ms = int(now.timestamp() * 1000)
        reply = await self._claim(keys=keys, args=[
            fingerprint, article_id, now_ms, self._window_ms, self._lease_ms,
            self._threshold, streams.key("story") + ":", *rule_ids])
        story = _text(reply[0])
        decisions = []
        for index, rule_id in enumerate(rule_ids):
            holder, counted, count = reply[3 + 3 * index: 6 + 3 * index]
            claim = _text(holder)
            original, original_fp, _ = claim.split(":")
            decisions.append(Decision(
                rule_id=rule_id, story_id=story, raise_alert=original == article_id,
                original_article_id=original, distance=hamming(fingerprint, original_fp),
                newly_counted=bool(counted), duplicates=int(count),
                claim_key=self._claim_key(story, rule_id), claim=claim))
        return Assignment(story_id=story, how=_text(reply[1]), distance=int(reply[2]),
                          decisions=decisions)

    async def confirm(self, decision: Decision) -> bool:
        """Make a claim this article holds last the window from when it was taken.

        Call it once the alert is on the stream.  Returns False if the claim is no
        longer this article's (its lease ran out and another copy took it).
        """
        claimed_ms = int(decision.claim.rsplit(":", 1)[1])
        return bool(await self._confirm(keys=[decision.claim_key],
                                        args=[decision.claim, claimed_ms + self._window_ms]))


def fingerprint_for(article: ArticleParsed) -> str:
    """Return the article's fingerprint: the parser's, or computed here when it sent none.

    CPU-bound on long articles (about 2 ms for 3,000 characters); callers run it off
    the event loop.
    """
    if is_fingerprint(article.fingerprint):
        return article.fingerprint
    return fingerprint_of(article.title, article.text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
