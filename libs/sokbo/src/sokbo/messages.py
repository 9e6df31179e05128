"""The message contract between sokbo's services: one model per stream entry.

Every model carries ``schema_version`` and the UTC timestamps that let latency be
measured end to end (``discovered_at`` → ``fetched_at`` → ``parsed_at`` →
``raised_at`` → delivery).  Consumers ignore unknown fields (``extra="ignore"``)
so a rolling upgrade works in either order.  Entries are serialised with orjson
(:func:`encode`); ``bytes`` fields travel as base64.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertRaised",
    "ArticleParsed",
    "ArticleSummary",
    "DeadLettered",
    "Hit",
    "Message",
    "PageFetched",
    "Snippet",
    "alert_id_for",
    "article_id_for",
    "encode",
]


class Message(BaseModel):
    """Base of every stream entry: ignores unknown fields, bytes as base64."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    schema_version: int = 1


def encode(message: Message) -> bytes:
    """Serialise *message* to JSON bytes (orjson; datetimes as RFC 3339, bytes base64)."""
    return orjson.dumps(message.model_dump(mode="json"))


class PageFetched(Message):
    """A fetched article page (stream ``sokbo.pages``, crawler → parser)."""

    source_id: str
    source_title: str | None = None
    url: str
    final_url: str
    status: int
    content_type: str | None = None
    charset: str | None = Field(None, description="charset parameter of the HTTP Content-Type")
    body: bytes
    entry_title: str | None = Field(None, description="feed entry's title, a hint")
    entry_published: datetime | None = Field(None, description="feed entry's date, UTC")
    discovered_at: datetime
    fetched_at: datetime


class ArticleParsed(Message):
    """An extracted article (stream ``sokbo.articles``, parser → keyword-alert)."""

    article_id: str = Field(description="stable hash of the canonical URL, see article_id_for")
    url: str
    canonical_url: str
    source_id: str
    source_title: str | None = None
    title: str
    text: str
    authors: list[str] = Field(default_factory=list)
    author_emails: list[str] = Field(default_factory=list)
    language: str | None = None
    published_at: datetime | None = None
    encoding: str | None = Field(None, description="the encoding the page was decoded with")
    content_hash: str = Field(description="sha256 hex of title + text")
    fingerprint: str | None = Field(
        None, description="near-duplicate fingerprint: 64-bit SimHash of title + text as "
        "16 hex digits, see sokbo.fingerprint.fingerprint_of; None: not computed")
    discovered_at: datetime
    fetched_at: datetime
    parsed_at: datetime


class Hit(BaseModel):
    """One place where a query term matched: offsets into the original field text.

    ``start``/``end`` are Python string indices (Unicode code points) into the
    unnormalised ``title`` or ``text`` of the article; ``term`` is the query term
    or phrase as written in the rule, ``synonym`` the synonym spelling that fired
    when it was not the term itself.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    field: Literal["title", "text"]
    term: str
    start: int
    end: int
    synonym: str | None = None


class Snippet(BaseModel):
    """A sentence (or a few) around hits; ``highlights`` are [start, end) into ``text``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    field: Literal["title", "text"]
    text: str
    highlights: list[tuple[int, int]]


class ArticleSummary(BaseModel):
    """What a notification needs to say about an article."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    article_id: str
    url: str
    title: str
    source_id: str
    source_title: str | None = None
    published_at: datetime | None = None


class AlertRaised(Message):
    """One (article, rule) match (stream ``sokbo.alerts``, keyword-alert → notifier)."""

    alert_id: str = Field(description="stable hash of article_id × rule_id, see alert_id_for")
    rule_id: str
    query: str
    article: ArticleSummary
    matched_terms: list[str]
    hits: list[Hit]
    snippets: list[Snippet]
    channels: list[str]
    discovered_at: datetime
    fetched_at: datetime
    parsed_at: datetime
    raised_at: datetime


class DeadLettered(Message):
    """An entry a stage gave up on (stream ``sokbo.dead-letter``, any → operator)."""

    stage: str
    stream: str
    entry_id: str | None = None
    channel_id: str | None = Field(None, description="the channel that refused an alert")
    error: str
    deliveries: int = 1
    original: dict[str, Any] | None = None
    failed_at: datetime


def article_id_for(canonical_url: str) -> str:
    """Return the stable article id: the first 16 hex digits of sha256(canonical URL)."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:16]


def alert_id_for(article_id: str, rule_id: str) -> str:
    """Return the stable alert id for (article, rule): 16 hex digits of sha256."""
    return hashlib.sha256(f"{article_id}\x1f{rule_id}".encode()).hexdigest()[:16]
