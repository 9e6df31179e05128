"""The keyword-alert service: ``sokbo.articles`` → every rule → ``sokbo.alerts``.

Two guards keep an alert from being raised twice:

* ``sokbo:alerted:<alert_id>`` (set after the alert is on the stream, 30-day TTL) keeps
  a re-parsed or edited article (same URL, new headline or text) from raising the same
  (article, rule) alert twice;
* the story index (:mod:`sokbo_keyword_alert.stories`) raises a rule's alert once per
  story within the window (72 h): a near-duplicate of an article that already raised
  it (wire copy republished by another outlet) is counted in
  ``sokbo_near_duplicates_suppressed_total`` and logged as ``near_duplicate_suppressed``
  with the original's article id.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from structlog.typing import FilteringBoundLogger

from sokbo import streams
from sokbo.config import Rule, Settings
from sokbo.context import ServiceContext
from sokbo.logs import get_logger
from sokbo.matching import RuleMatch, RuleSet
from sokbo.messages import ArticleParsed, alert_id_for
from sokbo.observability import (
    ALERTS_RAISED,
    MATCH_DURATION,
    NEAR_DUPLICATE_DISTANCE,
    NEAR_DUPLICATES_SUPPRESSED,
    RULES_LOADED,
    STAGE_LATENCY,
)
from sokbo_keyword_alert.alerts import build_alert
from sokbo_keyword_alert.stories import DEFAULT_WINDOW, Decision, StoryIndex, fingerprint_for

ALERTED_TTL = 30 * 86400


class CompiledRules:
    """The active rules and their compiled automaton, swapped whole on reload."""

    def __init__(self, settings: Settings) -> None:
        self.rules = {rule.id: rule for rule in settings.rules}
        self.ruleset = RuleSet([(r.id, r.query) for r in settings.rules], settings.synonyms)
        RULES_LOADED.set(len(self.rules))


def register(ctx: ServiceContext, *, window: float = DEFAULT_WINDOW) -> None:
    """Compile the config's rules and subscribe to ``sokbo.articles``.

    On a config reload the rules are recompiled off to the side and swapped in one
    assignment; an article being evaluated finishes with the rules it started with.
    *window* (seconds, 72 h) is how long a story raises each rule's alert only once.
    """
    active = CompiledRules(ctx.settings)
    delivery = ctx.settings.delivery
    stories = StoryIndex(ctx.redis, window=window,
                         lease=delivery.claim_idle * (delivery.max_deliveries + 1))

    def reload(settings: Settings) -> None:
        nonlocal active
        active = CompiledRules(settings)

    ctx.on_reload(reload)

    async def unraised(article: ArticleParsed, matches: list[RuleMatch],
                       log: FilteringBoundLogger) -> list[RuleMatch]:
        fresh = []
        for match in matches:
            alert_id = alert_id_for(article.article_id, match.rule_id)
            if await ctx.redis.exists(streams.key("alerted", alert_id)):
                log.info("alert_already_raised", alert_id=alert_id, rule_id=match.rule_id)
            else:
                fresh.append(match)
        return fresh

    async def raise_alert(article: ArticleParsed, rule: Rule, match: RuleMatch,
                          decision: Decision, log: FilteringBoundLogger) -> None:
        alert = build_alert(article, rule, match, now=datetime.now(UTC))
        await ctx.publish(alert, streams.ALERTS)
        if not await stories.confirm(decision):
            log.warning("story_claim_lost", alert_id=alert.alert_id, rule_id=rule.id,
                        story_id=decision.story_id)
        await ctx.redis.set(streams.key("alerted", alert.alert_id),
                            alert.raised_at.isoformat(), ex=ALERTED_TTL)
        ALERTS_RAISED.labels(rule_id=alert.rule_id).inc()
        STAGE_LATENCY.labels(stage="parse_to_match").observe(
            max(0.0, (alert.raised_at - article.parsed_at).total_seconds()))
        log.info("alert_raised", alert_id=alert.alert_id, rule_id=alert.rule_id,
                 terms=alert.matched_terms, title=article.title, story_id=decision.story_id)

    def suppressed(decision: Decision, log: FilteringBoundLogger) -> None:
        if not decision.newly_counted:  # a redelivery of a duplicate already counted
            log.debug("near_duplicate_already_counted", rule_id=decision.rule_id,
                      original_article_id=decision.original_article_id)
            return
        NEAR_DUPLICATES_SUPPRESSED.labels(rule_id=decision.rule_id).inc()
        NEAR_DUPLICATE_DISTANCE.observe(decision.distance)
        log.info("near_duplicate_suppressed", rule_id=decision.rule_id,
                 original_article_id=decision.original_article_id,
                 hamming_distance=decision.distance, story_id=decision.story_id,
                 duplicates=decision.duplicates)

    def timed_evaluate(ruleset: RuleSet, article: ArticleParsed) -> list[RuleMatch]:
        with MATCH_DURATION.time():
            return ruleset.evaluate(article.title, article.text)

    async def handle(article: ArticleParsed) -> None:
        log = get_logger(article_id=article.article_id, source_id=article.source_id)
        compiled = active
        rules, ruleset = compiled.rules, compiled.ruleset
        # CPU-bound on long articles: off the event loop, like the parser
        matches = await asyncio.to_thread(timed_evaluate, ruleset, article)
        fresh = await unraised(article, matches, log)
        if fresh:
            fingerprint = await asyncio.to_thread(fingerprint_for, article)
            story = await stories.claim(article.article_id, fingerprint,
                                        [match.rule_id for match in fresh],
                                        now=datetime.now(UTC))
            log.debug("story_assigned", story_id=story.story_id, how=story.how,
                      hamming_distance=story.distance, fingerprint=fingerprint)
            for match, decision in zip(fresh, story.decisions, strict=True):
                if decision.raise_alert:
                    await raise_alert(article, rules[match.rule_id], match, decision, log)
                else:
                    suppressed(decision, log)
        log.debug("article_evaluated", rules=len(rules), matched=len(matches))

    ctx.subscribe(streams.ARTICLES, ArticleParsed, handle, service="keyword-alert")
