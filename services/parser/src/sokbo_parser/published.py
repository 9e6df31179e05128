"""Find when a news page was published: its metadata first, then its visible text.

:func:`metadata_date` reads what the page declares for machines: Open Graph
``article:published_time``, schema.org ``datePublished`` (JSON-LD or microdata),
Dublin Core and CMS meta names. A parser trusts it over a feed entry's date.
:func:`text_date` is the fallback after the feed entry: htmldate's answer, with the
time of a visible Korean ``입력 2021.10.04. 오후 4:26`` stamp when htmldate found only a
day. htmldate runs without its opportunistic text search, whose last resort is the
copyright year (``Copyright 2019`` would become 2019-01-01): a date is never invented.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time

from htmldate import find_date
from lxml.html import HtmlElement

from sokbo.dates import KST, MAX_FUTURE, parse_korean_datetime

__all__ = ["metadata_date", "text_date"]

_DATE_PARAMS = {  # htmldate: keep the time; trust page metadata over URL dates; no
    "original_date": True,  # opportunistic text search, whose last resort is the
    "extensive_search": False,  # copyright year ("Copyright 2019" → 2019-01-01)
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
    "deferred_url_extractor": True,
}
#: meta tags (property or name, lowercased) giving the publication time, in the order
#: trusted: Open Graph article, then schema.org (JSON-LD is read between these two
#: groups), then Dublin Core and the names CMSs and Parse.ly use
_PUBLISHED_META = ("article:published_time", "og:article:published_time")
_PUBLISHED_META_LATE = ("pubdate", "publishdate", "publish-date", "parsely-pub-date",
                        "dc.date.issued", "dcterms.issued", "dcterms.created", "dc.date",
                        "date")
_ARTICLE_TYPES = re.compile(r"Article$|^BlogPosting$|^Report$")
_STAMP_LABEL = re.compile(  # 입력 2024-03-05 오후 2:20 / 기사입력 2021.10.04. / 등록 : 2024.03.05
    r"(?:입력|등록|게재|송고|발행)(?:\s*(?:일시|일자|시간|일))?\s*[:：]?\s*(?=\d{4}\s*[.\-/년])"
)


def metadata_date(tree: HtmlElement, now: datetime | None) -> datetime | None:
    """Return the publication time the page's metadata declares, in UTC, or ``None``.

    Read in this order: ``article:published_time`` (Open Graph protocol, article
    namespace), JSON-LD ``datePublished`` (schema.org, article objects first),
    microdata ``itemprop=datePublished``, then Dublin Core and CMS meta names; each
    value with :func:`~sokbo.dates.parse_korean_datetime`.

    Args:
        tree: the parsed page, before scripts are dropped (JSON-LD lives in them).
        now: the fetch time (UTC); a value more than 10 minutes after it is skipped.
            ``None``: no such check.
    """
    metas: dict[str, str] = {}
    for meta in tree.xpath("//meta[@content][@property or @name or @itemprop]"):
        for attribute in ("property", "name", "itemprop"):
            metas.setdefault((meta.get(attribute) or "").strip().lower(), meta.get("content"))
    candidates = [metas.get(name) for name in _PUBLISHED_META]
    candidates += _json_ld_dates(tree)
    candidates += [str(v) for v in tree.xpath("//*[@itemprop='datePublished']/@datetime")]
    candidates += [metas.get(name) for name in ("datepublished", *_PUBLISHED_META_LATE)]
    for candidate in candidates:
        if candidate and (parsed := parse_korean_datetime(candidate, now=now)):
            return parsed
    return None


def _json_ld_dates(tree: HtmlElement) -> list[str]:
    """Return the ``datePublished`` values of the page's JSON-LD, article objects first."""
    articles: list[str] = []
    others: list[str] = []
    stack: list[object] = []
    for script in tree.xpath("//script[@type='application/ld+json']"):
        try:
            stack.append(json.loads(script.text_content()))
        except ValueError:  # broken JSON-LD is common; the next source is tried
            continue
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack[:0] = item
        elif isinstance(item, dict):
            value = item.get("datePublished")
            kinds = item.get("@type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if isinstance(value, str):
                is_article = any(_ARTICLE_TYPES.search(str(kind)) for kind in kinds)
                (articles if is_article else others).append(value)
            stack[:0] = [v for v in item.values() if isinstance(v, (list, dict))]
    return articles + others


def text_date(tree: HtmlElement, url: str | None, now: datetime | None) -> datetime | None:
    """Return the publication time found in the page's text, in UTC, or ``None``.

    htmldate's answer (a naive one is KST) is used; when it has only a day, a Korean
    ``입력 2021.10.04. 오후 4:26`` stamp of that day supplies the time. *url* lets
    htmldate read a date in the path (after the page's own); *now* as for
    :func:`metadata_date`.
    """
    found = find_date(tree, url=url, **_DATE_PARAMS)
    try:
        day = datetime.fromisoformat(found) if found else None  # _DATE_PARAMS' output format
    except ValueError:
        day = None
    if day is None or (day.tzinfo is None and day.time() == time.min):
        stamp = _input_stamp(tree, now)
        if stamp and (day is None or stamp.astimezone(KST).date() == day.date()):
            return stamp
    if day is None:
        return None
    parsed = (day if day.tzinfo else day.replace(tzinfo=KST)).astimezone(UTC)
    return None if now is not None and parsed > now + MAX_FUTURE else parsed


def _input_stamp(tree: HtmlElement, now: datetime | None) -> datetime | None:
    """Find a Korean ``입력``/``기사입력``/``등록`` time stamp in the visible text (UTC)."""
    visible = " ".join(tree.xpath("//body//text()[not(ancestor::script or ancestor::style)]"))
    for match in _STAMP_LABEL.finditer(visible):
        if parsed := parse_korean_datetime(visible[match.end(): match.end() + 40], now=now):
            return parsed
    return None
