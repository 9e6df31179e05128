"""The keyword-alert service: ``sokbo.articles`` → every rule → ``sokbo.alerts``.

``sokbo:alerted:<alert_id>`` (set after the alert is on the stream, 30-day TTL) keeps a
re-parsed article from raising the same (article, rule) alert twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sokbo import streams
from sokbo.config import Settings
from sokbo.context import ServiceContext
from sokbo.logs import get_logger
from sokbo.matching import RuleSet
from sokbo.messages import ArticleParsed
from sokbo.observability import ALERTS_RAISED, RULES_LOADED
from sokbo_keyword_alert.alerts import build_alert

ALERTED_TTL = 30 * 86400


class CompiledRules:
    """The active rules and their compiled automaton, swapped whole on reload."""

    def __init__(self, settings: Settings) -> None:
        self.rules = {rule.id: rule for rule in settings.rules}
        self.ruleset = RuleSet([(r.id, r.query) for r in settings.rules], settings.synonyms)
        RULES_LOADED.set(len(self.rules))


def register(ctx: ServiceContext) -> None:
    """Compile the config's rules and subscribe to ``sokbo.articles``.

    On a config reload the rules are recompiled off to the side and swapped in one
    assignment; an article being evaluated finishes with the rules it started with.
    """
    active = CompiledRules(ctx.settings)

    def reload(settings: Settings) -> None:
        nonlocal active
        active = CompiledRules(settings)

    ctx.on_reload(reload)

    async def handle(article: ArticleParsed) -> None:
        log = get_logger(article_id=article.article_id, source_id=article.source_id)
        compiled = active
        rules, ruleset = compiled.rules, compiled.ruleset
        # CPU-bound on long articles: off the event loop, like the parser
        matches = await asyncio.to_thread(ruleset.evaluate, article.title, article.text)
        for match in matches:
            alert = build_alert(article, rules[match.rule_id], match, now=datetime.now(UTC))
            guard = streams.key("alerted", alert.alert_id)
            if await ctx.redis.exists(guard):
                log.info("alert_already_raised", alert_id=alert.alert_id, rule_id=alert.rule_id)
                continue
            await ctx.publish(alert, streams.ALERTS)
            await ctx.redis.set(guard, alert.raised_at.isoformat(), ex=ALERTED_TTL)
            ALERTS_RAISED.labels(rule_id=alert.rule_id).inc()
            log.info("alert_raised", alert_id=alert.alert_id, rule_id=alert.rule_id,
                     terms=alert.matched_terms, title=article.title)
        log.debug("article_evaluated", rules=len(rules), matched=len(matches))

    ctx.subscribe(streams.ARTICLES, ArticleParsed, handle, service="keyword-alert")
