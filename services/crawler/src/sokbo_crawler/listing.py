"""Read article links off a listing page (a section list) for outlets with no feed.

Pure: bytes in, links out.  The page is decoded as browsers do (WHATWG Encoding
Standard: a BOM, the configured override, the HTTP charset, a ``<meta charset>``
in the first 4 KB, else UTF-8 with a windows-949 fallback — "euc-kr" means
windows-949), parsed with lxml, every ``<a href>`` made absolute against the page
URL (and its ``<base href>``), and kept when the source's ``link_pattern`` regex
matches the absolute URL.  Links come back in page order, each once, without a
title: anchor texts on listing pages are cut ("…") or are section names, so the
parser takes the headline from the article page itself.
"""

from __future__ import annotations

import re
from urllib.parse import urldefrag, urljoin

import lxml.html
from lxml.etree import ParserError

from sokbo.charsets import codec_for_label
from sokbo.errors import PermanentError
from sokbo_crawler.feeds import FeedEntry

__all__ = ["ListingError", "decode_listing", "parse_listing"]

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


class ListingError(PermanentError):
    """The listing page could not be read, or no link on it matches ``link_pattern``."""


def decode_listing(body: bytes, *, http_charset: str | None = None,
                   override: str | None = None) -> str:
    """Decode a listing page to text (see the module docstring for the order)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(codec, errors="replace")
    meta = _META_CHARSET.search(body[:4096])
    for label in (override, http_charset, meta.group(1).decode("ascii") if meta else None):
        codec = codec_for_label(label)
        if codec:
            return body.decode(codec, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp949", errors="replace")


def parse_listing(body: bytes, *, url: str, link_pattern: str,
                  http_charset: str | None = None, encoding: str | None = None
                  ) -> list[FeedEntry]:
    """Return the article links of a listing page that match *link_pattern*.

    Args:
        body: the page as fetched.
        url: the page URL (relative links are resolved against it).
        link_pattern: a regex searched in each absolute link URL.
        http_charset: the charset of the HTTP ``Content-Type``.
        encoding: the source's configured encoding override.

    Returns:
        matching links (fragment dropped), each once, in page order.

    Raises:
        ListingError: the body is not HTML, or no link matches *link_pattern*.
    """
    text = decode_listing(body, http_charset=http_charset, override=encoding)
    if not text.strip():
        raise ListingError(f"{url}: the listing page is empty")
    try:
        tree = lxml.html.document_fromstring(text, base_url=url)
    except (ParserError, ValueError) as exc:
        raise ListingError(f"{url} is not an HTML page ({exc})") from None
    base = next(iter(tree.xpath("//base/@href")), None)
    base = urljoin(url, str(base)) if base else url
    pattern = re.compile(link_pattern)
    found: dict[str, None] = {}
    for href in tree.xpath("//a/@href"):
        try:
            link = urldefrag(urljoin(base, str(href).strip()))[0]
        except ValueError:
            continue
        if link.startswith(("http://", "https://")) and pattern.search(link):
            found.setdefault(link)
    if not found:  # a redesign broke the pattern: an error to see, not a quiet success
        raise ListingError(f"{url}: no link on the listing page matches link_pattern "
                           f"{link_pattern!r}; check the page and fix the pattern")
    return [FeedEntry(url=link, title=None, published=None) for link in found]
