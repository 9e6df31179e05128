"""Assemble an ``ArticleParsed`` from a fetched page and what was extracted from it (pure)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import NamedTuple

from sokbo.dates import MAX_FUTURE
from sokbo.errors import PermanentError
from sokbo.fingerprint import fingerprint_of
from sokbo.messages import ArticleParsed, PageFetched, article_id_for
from sokbo_parser.decode import DecodedPage, decode_html, sniff_binary
from sokbo_parser.extract import ExtractedArticle, clean_title, extract_article
from sokbo_parser.urls import canonical_url, same_site

__all__ = ["ParsedPage", "build_article", "canonical_url", "parse_page"]


def build_article(page: PageFetched, decoded: DecodedPage, extracted: ExtractedArticle,
                  *, now: datetime) -> ArticleParsed:
    """Combine *page* (feed-entry hints, timestamps) and *extracted* into the article message.

    * ``canonical_url``: the page's ``<link rel=canonical>`` (or ``og:url``) when it
      is on the same site as the final URL, else the final URL; normalised by
      :func:`canonical_url` (tracking parameters, AMP and mobile variants), and
      ``article_id`` hashes it.
    * ``title``: the feed entry's title when the page came from a feed (the outlet's
      name stripped from it), else the page's headline.
    * ``published_at``: the page's metadata, else the feed entry's date, else the
      date found in the page's text; a time more than 10 minutes after
      ``page.fetched_at`` is never used.
    * ``fingerprint``: the near-duplicate SimHash of title and text
      (:func:`sokbo.fingerprint.fingerprint_of`), for one alert per story.

    Args:
        now: the parse time (UTC), stored as ``parsed_at``.
    """
    declared = extracted.canonical_url
    canonical = canonical_url(declared if same_site(declared, page.final_url) else page.final_url)
    sites = {name for name in (extracted.site_name, page.source_title) if name}
    title = clean_title(page.entry_title, sites) or extracted.title
    content_hash = hashlib.sha256(f"{title}\n{extracted.text}".encode()).hexdigest()
    return ArticleParsed(
        article_id=article_id_for(canonical), url=page.url, canonical_url=canonical,
        source_id=page.source_id, source_title=page.source_title or extracted.site_name,
        title=title, text=extracted.text, authors=extracted.authors,
        author_emails=extracted.author_emails, language=extracted.language,
        published_at=_published_at(page, extracted), encoding=decoded.encoding,
        content_hash=content_hash, fingerprint=fingerprint_of(title, extracted.text),
        discovered_at=page.discovered_at, fetched_at=page.fetched_at, parsed_at=now)


class ParsedPage(NamedTuple):
    """What :func:`parse_page` returns: the article message and how it was read."""

    article: ArticleParsed
    decoded: DecodedPage
    #: trafilatura's fast mode found too little; its full extraction found the text
    full_extraction: bool


def parse_page(page: PageFetched, *, now: datetime,
               encoding: str | None = None) -> ParsedPage:
    """Decode, extract and assemble *page* (CPU-bound: callers run it off the event loop).

    Args:
        now: the parse time (UTC).
        encoding: a charset label that overrides the page's (an operator's setting
            for a source that declares the wrong one), e.g. ``"euc-kr"``.

    Raises:
        PermanentError: the body is empty or binary (an image, an archive), the
            HTML cannot be parsed, or the page holds no article text (a listing);
            the message names the URL and the reason.
    """
    if not page.body.strip():
        raise PermanentError(f"empty body: {page.final_url} returned no content")
    if kind := sniff_binary(page.body, page.charset):
        raise PermanentError(f"not HTML: {page.final_url} returned {kind}")
    decoded = decode_html(page.body, page.charset, override=encoding)
    extracted = extract_article(decoded.text, page.final_url, now=_aware(page.fetched_at))
    return ParsedPage(build_article(page, decoded, extracted, now=now), decoded,
                      extracted.full_extraction)


def _published_at(page: PageFetched, extracted: ExtractedArticle) -> datetime | None:
    """Return the first of metadata date, feed entry date, text date not in the future.

    A date whose source is not known (``published_from`` unset) is trusted like
    metadata: only a date read from the text ranks below the feed entry's.
    """
    found = extracted.published_at
    trusted = None if extracted.published_from == "text" else found
    guessed = found if extracted.published_from == "text" else None
    entry = _aware(page.entry_published) if page.entry_published else None
    latest = _aware(page.fetched_at) + MAX_FUTURE
    return next((d for d in (trusted, entry, guessed) if d is not None and d <= latest), None)


def _aware(moment: datetime) -> datetime:
    """Read a naive timestamp of the message contract as UTC, which it is documented to be."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
