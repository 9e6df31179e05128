"""Parse RSS 0.9x/1.0/2.0 and Atom feeds into entries (pure: bytes in, entries out).

feedparser does the parsing (https://feedparser.readthedocs.io).  Before it, a feed
declared as EUC-KR (in the HTTP charset or the XML declaration) is transcoded from
windows-949 to UTF-8, as the WHATWG Encoding Standard says, because feedparser's
strict ``euc_kr`` codec rejects the CP949-only syllables real Korean feeds carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin

import feedparser

from sokbo.charsets import codec_for_label
from sokbo.dates import parse_korean_datetime
from sokbo.errors import PermanentError
from sokbo_crawler.safexml import check_xml

__all__ = ["Feed", "FeedEntry", "FeedError", "parse_feed"]

_XML_DECL = re.compile(rb"^(\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding=[\"']([A-Za-z0-9_.:-]+)[\"']")


class FeedError(PermanentError):
    """The body is not a feed feedparser can read (malformed XML with no entries, HTML)."""


@dataclass(frozen=True)
class FeedEntry:
    """One feed entry: the article link, its title and date (UTC) if the feed gives them."""

    url: str
    title: str | None
    published: datetime | None


@dataclass(frozen=True)
class Feed:
    """A parsed feed: its title and entries in document order."""

    title: str | None
    entries: list[FeedEntry]


def _as_utf8(body: bytes, http_charset: str | None) -> bytes:
    declared = http_charset
    match = _XML_DECL.match(body[:512])
    if match:
        declared = declared or match.group(2).decode("ascii")
    codec = codec_for_label(declared)
    if codec != "cp949":
        return body
    text = body.decode("cp949", errors="replace")
    return re.sub(r"^(\ufeff)?(\s*<\?xml[^>]*?encoding=)[\"'][^\"']+[\"']",
                  r'\2"utf-8"', text, count=1).encode("utf-8")


def _entry_date(entry: feedparser.FeedParserDict, now: datetime) -> datetime | None:
    """Return an entry's publication time in UTC, or ``None`` if it cannot be read.

    The raw string is read with :func:`sokbo.dates.parse_korean_datetime` (RFC 822,
    RFC 3339 and the Korean forms; a time without zone is KST; ``KST`` is +09:00),
    not with feedparser's own parse, which turns ``2024/03/05`` into this month's
    first day (feedparser #75, B09).  A date more than 10 minutes after *now* is
    refused: a date is never invented or taken from the future.
    """
    for key in ("published", "updated", "created"):
        raw = entry.get(key) if key in entry else None
        if raw and (value := parse_korean_datetime(str(raw), now=now)):
            return value
    return None


def parse_feed(body: bytes, *, url: str = "", http_charset: str | None = None) -> Feed:
    """Parse a feed document.

    Args:
        body: the raw bytes as served.
        url: the feed's URL, to resolve relative entry links.
        http_charset: the charset parameter of the HTTP Content-Type, if any.

    Returns:
        the feed's title and its entries that have a link.

    Raises:
        FeedError: the document is not a feed or is too malformed to yield entries.
        UnsafeXMLError: it declares entities or refers to external ones (feedparser's
            lenient fallback would expand them: see :mod:`sokbo_crawler.safexml`).
    """
    check_xml(body, what="feed", url=url)
    parsed = feedparser.parse(_as_utf8(body, http_charset),
                              response_headers={"content-type": "application/xml"})
    if not parsed.get("version"):
        reason = parsed.get("bozo_exception")
        detail = f" ({type(reason).__name__}: {reason})" if reason else ""
        raise FeedError(f"no RSS or Atom feed element found{detail}; is the URL an HTML "
                        "page or a sitemap?")
    entries = []
    now = datetime.now(UTC)
    for entry in parsed.entries:
        link = _entry_link(entry, url)
        if link is None:
            continue
        title = (entry.get("title") or "").strip() or None
        entries.append(FeedEntry(url=link, title=title, published=_entry_date(entry, now)))
    if parsed.bozo and not entries:
        reason = parsed.get("bozo_exception")
        raise FeedError(f"malformed feed, no entry with a link could be read: "
                        f"{type(reason).__name__}: {reason}")
    return Feed(title=(parsed.feed.get("title") or "").strip() or None, entries=entries)


def _entry_link(entry: feedparser.FeedParserDict, base: str) -> str | None:
    """Return the entry's article URL: the alternate link (Atom), else ``link``/permalink.

    An Atom ``<id>`` is an identifier, not a link (RFC 4287 §4.2.6), so an entry
    with only an id has no URL; neither has one whose link is not http(s).
    """
    links = [link.get("href") for link in entry.get("links", [])
             if link.get("rel", "alternate") == "alternate" and link.get("href")]
    if not links and entry.get("link") and entry.get("link") != entry.get("id"):
        links = [entry["link"]]
    if not links and entry.get("guidislink") and entry.get("link"):
        links = [entry["link"]]
    if not links:
        return None
    try:
        absolute = urljoin(base, links[0].strip())
    except ValueError:  # malformed (e.g. "http://[::1/x"): the fetch reports and records it
        absolute = links[0].strip()
    return absolute if absolute.startswith(("http://", "https://")) else None
