"""Parse XML sitemaps into article links (pure: bytes in, links out).

Follows the sitemaps.org protocol 0.9 (https://www.sitemaps.org/protocol.html): a
``<sitemapindex>`` lists child sitemaps, a ``<urlset>`` lists pages with an
optional ``<lastmod>`` (W3C Datetime).  Google News sitemaps
(https://developers.google.com/search/docs/crawling-indexing/sitemaps/news-sitemap)
add ``<news:news>`` with ``<news:publication_date>`` and ``<news:title>``.

A sitemap may arrive gzip-compressed whatever its name says: the HTTP layer may
already have inflated a ``.xml.gz`` served with ``Content-Encoding: gzip``, or a
plain ``.xml`` may be a gzip file.  The decision is made on the gzip magic bytes
``1f 8b`` (RFC 1952 §2.3.1), never on the file name (ultimate-sitemap-parser #6),
and inflation stops at the body cap, so a gzip bomb is an error.

XML is parsed with :func:`sokbo_crawler.safexml.parse_xml` (defusedxml): a DTD with
entity declarations or an external entity is refused, not expanded.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urljoin
from xml.etree.ElementTree import Element

from sokbo.errors import PermanentError
from sokbo_crawler.feeds import FeedEntry
from sokbo_crawler.safexml import parse_xml

__all__ = ["Sitemap", "SitemapError", "gunzip_capped", "parse_sitemap"]

KST = timezone(timedelta(hours=9), "KST")
_GZIP_MAGIC = b"\x1f\x8b"


class SitemapError(PermanentError):
    """The body is not a sitemap sokbo can read (not XML, truncated gzip, unsafe XML)."""


@dataclass(frozen=True)
class Sitemap:
    """A parsed sitemap: child sitemaps (an index; ``published`` is the child's
    ``lastmod``) and page entries (a urlset)."""

    children: list[FeedEntry]
    entries: list[FeedEntry]


def gunzip_capped(body: bytes, *, url: str, max_bytes: int) -> bytes:
    """Inflate *body* if it starts with the gzip magic bytes, else return it unchanged.

    Raises:
        SitemapError: a truncated or corrupt gzip stream, or more than *max_bytes*
            once inflated.
    """
    if not body.startswith(_GZIP_MAGIC):
        return body
    engine = zlib.decompressobj(31)  # 31: gzip header and trailer
    try:
        data = engine.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise SitemapError(f"{url}: corrupt gzip ({exc}); the sitemap is skipped") from None
    if len(data) > max_bytes:
        raise SitemapError(f"{url} inflates to more than the {max_bytes}-byte cap")
    if not engine.eof:
        raise SitemapError(f"{url}: truncated gzip stream (ended after {len(data)} "
                           "inflated bytes); the sitemap is skipped")
    return data


def parse_sitemap(body: bytes, *, url: str, max_bytes: int = 5 * 1024 * 1024) -> Sitemap:
    """Parse a sitemap index or urlset.

    Args:
        body: the body as fetched (plain XML or gzip).
        url: the sitemap's URL, to resolve relative locations and name it in errors.
        max_bytes: the cap on the inflated size.

    Returns:
        child sitemap URLs and page entries, in document order, http(s) only; an
        entry's ``published`` is its ``news:publication_date``, else ``lastmod``,
        in UTC (a time without zone is KST).

    Raises:
        SitemapError: not a sitemap, bad gzip.
        UnsafeXMLError: entity declarations or external references (not expanded).
        XMLSyntaxError: malformed XML (names the line and column).
    """
    data = gunzip_capped(body, url=url, max_bytes=max_bytes)
    root = parse_xml(data, what="sitemap", url=url)
    kind = _local(root.tag)
    if kind == "sitemapindex":
        children = [FeedEntry(url=loc, title=None,
                              published=_w3c_datetime(_child_text(item, "lastmod")))
                    for item in root if _local(item.tag) == "sitemap"
                    if (loc := _absolute(_child_text(item, "loc"), url))]
        return Sitemap(children=children, entries=[])
    if kind != "urlset":
        raise SitemapError(f"{url}: root element <{kind}> is neither <urlset> nor "
                           "<sitemapindex>; is the URL a feed or a page?")
    entries = []
    for item in root:
        if _local(item.tag) != "url" or not (loc := _absolute(_child_text(item, "loc"), url)):
            continue
        news = next((child for child in item if _local(child.tag) == "news"), None)
        published = _w3c_datetime(_child_text(news, "publication_date")) if news is not None \
            else None
        title = _child_text(news, "title") if news is not None else None
        entries.append(FeedEntry(url=loc, title=title or None,
                                 published=published or _w3c_datetime(
                                     _child_text(item, "lastmod"))))
    return Sitemap(children=[], entries=entries)


def _local(tag: str) -> str:
    """Return an element's local name: ``{namespace}name`` → ``name``."""
    return tag.rsplit("}", 1)[-1]


def _child_text(parent: Element, name: str) -> str | None:
    for child in parent:
        if _local(child.tag) == name:
            return (child.text or "").strip() or None
    return None


def _absolute(loc: str | None, base: str) -> str | None:
    if not loc:
        return None
    try:
        absolute = urljoin(base, loc)
    except ValueError:
        return None
    return absolute if absolute.startswith(("http://", "https://")) else None


def _w3c_datetime(value: str | None) -> datetime | None:
    """Parse a W3C Datetime (``2024-03-05``, ``2024-03-05T14:20:00+09:00``) to UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=KST)).astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. .NET's DateTime.MinValue, 0001-01-01
        return None
