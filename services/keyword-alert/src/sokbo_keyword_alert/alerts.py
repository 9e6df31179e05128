"""Turn an article and a rule match into an ``AlertRaised`` (pure)."""

from __future__ import annotations

from datetime import datetime

from sokbo.config import Rule
from sokbo.matching import RuleMatch, make_snippets
from sokbo.messages import AlertRaised, ArticleParsed, ArticleSummary, alert_id_for

__all__ = ["build_alert"]


def build_alert(article: ArticleParsed, rule: Rule, match: RuleMatch, *,
                now: datetime) -> AlertRaised:
    """Return the alert for *article* × *rule*: summary, matched terms, hits and snippets."""
    summary = ArticleSummary(
        article_id=article.article_id, url=article.canonical_url, title=article.title,
        source_id=article.source_id, source_title=article.source_title,
        published_at=article.published_at)
    return AlertRaised(
        alert_id=alert_id_for(article.article_id, rule.id), rule_id=rule.id, query=rule.query,
        article=summary, matched_terms=match.matched_terms,
        hits=[hit.message() for hit in match.hits],
        snippets=make_snippets(article.title, article.text, match.hits),
        channels=list(rule.channels), discovered_at=article.discovered_at,
        fetched_at=article.fetched_at, parsed_at=article.parsed_at, raised_at=now)
