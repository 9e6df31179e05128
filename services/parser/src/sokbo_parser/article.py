"""Assemble an ``ArticleParsed`` from a fetched page and what was extracted from it (pure)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sokbo.messages import ArticleParsed, PageFetched, article_id_for
from sokbo_parser.decode import DecodedPage, decode_html
from sokbo_parser.extract import ExtractedArticle, extract_article

__all__ = ["build_article", "canonical_url", "parse_page"]


def canonical_url(url: str) -> str:
    """Return *url* with the host lowercased and the fragment and default port dropped."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal (RFC 3986 §3.2.2)
        host = f"[{host}]"
    port = parts.port
    if port and not ((parts.scheme == "http" and port == 80)
                     or (parts.scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", parts.query, ""))


def build_article(page: PageFetched, decoded: DecodedPage, extracted: ExtractedArticle,
                  *, now: datetime) -> ArticleParsed:
    """Combine *page* (hints, timestamps) and *extracted* into the article message.

    The title falls back to the feed entry's title and the published time to the
    feed entry's date; ``article_id`` hashes the canonical URL (``<link
    rel=canonical>`` if the page gives one, else the final URL).
    """
    canonical = canonical_url(extracted.canonical_url or page.final_url)
    title = extracted.title or page.entry_title or ""
    content_hash = hashlib.sha256(f"{title}\n{extracted.text}".encode()).hexdigest()
    return ArticleParsed(
        article_id=article_id_for(canonical), url=page.url, canonical_url=canonical,
        source_id=page.source_id, source_title=page.source_title or extracted.site_name,
        title=title, text=extracted.text, authors=extracted.authors,
        language=extracted.language,
        published_at=extracted.published_at or page.entry_published,
        encoding=decoded.encoding, content_hash=content_hash,
        discovered_at=page.discovered_at, fetched_at=page.fetched_at, parsed_at=now)


def parse_page(page: PageFetched, *, now: datetime) -> tuple[ArticleParsed, DecodedPage]:
    """Decode, extract and assemble *page* (CPU-bound: callers run it off the event loop).

    Raises:
        PermanentError: the page holds no article text (empty, binary, a listing).
    """
    decoded = decode_html(page.body, page.charset)
    extracted = extract_article(decoded.text, page.final_url)
    return build_article(page, decoded, extracted, now=now), decoded
