"""Headlines and outlet names: the title a news page gives, without the site's name.

Pages put the outlet's name in every title source: ``<title>반도체 수출 지원책 발표 -
예시일보</title>``, an ``og:title`` ending in `` | 예시일보``, a logo ``<h1>`` that is
the name alone (trafilatura #71, #144). The name is learnt from ``og:site_name`` and
``application-name``, from a title tail two sources share, or from a tail equal to
the heading trafilatura picked; it is then stripped (with a section such as
``-경제``), and a candidate that is only the name is skipped.
"""

from __future__ import annotations

import re

from lxml.html import HtmlElement
from trafilatura.metadata import examine_meta, extract_meta_json, extract_sitename, extract_title
from trafilatura.settings import Document

__all__ = ["choose_title", "clean_title", "meta_content", "one_line", "outlet_names",
           "page_metadata", "site_names", "title_key"]

_HOST_NAME = re.compile(r"(?:[\w-]+\.)+[A-Za-z]{2,}")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_SEPARATORS = "-|–—:：ㅣ｜·•/"
_SECTION = re.compile(
    r"\s*[-|ㅣ｜·:]\s*(?:정치|경제|사회|국제|세계|문화|스포츠|연예|오피니언|사설|칼럼|IT|IT일반|"
    r"산업|금융|증권|부동산|전국|지역|라이프|생활|과학|피플|엔터)\s*$"
)
_PHOTO_CREDIT = re.compile(r"\s*[（(]\s*(?:写真|사진|photo)\s*[=＝:：][^）)]*[）)]\s*$", re.I)


def one_line(value: str | None) -> str:
    """Collapse all whitespace (NBSP, U+3000, newlines) to single spaces; drop zero-widths."""
    return " ".join(_ZERO_WIDTH.sub("", value or "").split())


def meta_content(tree: HtmlElement, prop: str) -> str | None:
    """Return the content of ``<meta property=prop>`` (or ``name=prop``), if any."""
    found = tree.xpath("//meta[@property=$p or @name=$p]/@content", p=prop)
    return str(found[0]) if found else None


def _first_text(tree: HtmlElement, xpath: str) -> str:
    """Return the whitespace-collapsed text of the first element matching ``xpath``."""
    found = tree.xpath(xpath)
    return one_line(found[0].text_content()) if found else ""


def title_key(value: str) -> str:
    """Compare titles and names ignoring case, spaces and quotes."""
    return re.sub(r"[\s\"'“”‘’]", "", value).casefold()


def page_metadata(tree: HtmlElement) -> Document:
    """Read title, author and site name from meta tags and JSON-LD, as trafilatura does.

    These are the steps of ``trafilatura.metadata.extract_metadata`` sokbo keeps.
    The others, which cost more than half of trafilatura's time on a Korean news
    page, it leaves out or does itself: the byline search in the body (reporter
    boxes and byline lines here, :mod:`sokbo_parser.bylines`), the date (metadata
    first, htmldate only as the fallback, :mod:`sokbo_parser.published`), the URL,
    categories, tags and licence (not kept).
    """
    metadata = extract_meta_json(tree, examine_meta(tree))
    metadata.title = metadata.title or extract_title(tree)
    metadata.sitename = (metadata.sitename or extract_sitename(tree) or "").lstrip("@") or None
    return metadata


def outlet_names(tree: HtmlElement, metadata: Document) -> tuple[str | None, set[str]]:
    """Return the outlet's name as the page gives it (or ``None``) and all names to strip.

    The name is ``og:site_name`` (or what trafilatura read from JSON-LD), never the
    URL's host that trafilatura falls back to; when the page declares none, the one
    name learnt from its titles, if there is exactly one.
    """
    site_name = one_line(metadata.sitename or meta_content(tree, "og:site_name")) or None
    if site_name and _HOST_NAME.fullmatch(site_name):
        site_name = None
    sites = site_names(tree, metadata.title, site_name)
    if site_name is None and len(sites) == 1:
        site_name = next(iter(sites))
    return site_name, sites


def site_names(tree: HtmlElement, found_title: str | None, site_name: str | None) -> set[str]:
    """Collect the outlet's names: declared ones, and a title tail repeated elsewhere.

    A tail after a separator that also ends another title source, or that equals
    the heading trafilatura chose (a logo ``<h1>``), names the site (trafilatura #71).
    """
    names = {n for n in (site_name, one_line(meta_content(tree, "application-name"))) if n}
    sources = (_first_text(tree, "//title"), one_line(meta_content(tree, "og:title")))
    tails = [_tail(t) for t in sources]
    if tails[0] and tails[0] == tails[1]:
        names.add(tails[0])
    names.update(t for t in tails if t and title_key(t) == title_key(found_title or ""))
    return names


def _tail(title: str) -> str:
    """Return the part after the last separator of a title, or ``""``."""
    match = re.search(rf"(?:\s[{_SEPARATORS}]\s|[|ㅣ｜：])\s*([^{_SEPARATORS}]+?)\s*$", title)
    return match.group(1) if match else ""


def choose_title(tree: HtmlElement, found: str | None, sites: set[str]) -> str:
    """Choose the headline: trafilatura's, else og:title, ``<title>``, ``<h1>``.

    The outlet's name and section are stripped, and a candidate that is only the
    outlet's name is skipped. Returns ``""`` when no candidate is left.
    """
    site_keys = {title_key(s) for s in sites}
    full = _first_text(tree, "//title")
    if found and sites and full.startswith(found) and title_key(_tail(full)) not in site_keys:
        found = full  # trafilatura cut the <title> at its last " - ", which is not the outlet
    for candidate in (found, meta_content(tree, "og:title"), full, _first_text(tree, "//h1")):
        title = _strip_site(one_line(candidate), sites)
        if title and title_key(title) not in site_keys:
            return title
    return ""


def _strip_site(title: str, sites: set[str]) -> str:
    """Remove an outlet name (and a section before it) at either end, and a photo credit."""
    for site in sorted(sites, key=len, reverse=True):
        head = title[: -len(site)].rstrip() if title.endswith(site) else ""
        if head and head[-1] in _SEPARATORS:
            title = _SECTION.sub("", head.rstrip(_SEPARATORS + " "))
        rest = title[len(site):].lstrip() if title.startswith(site) else ""
        if rest and rest[0] in _SEPARATORS:
            title = rest.lstrip(_SEPARATORS + " ")
    return _PHOTO_CREDIT.sub("", title).strip()


def clean_title(title: str | None, sites: set[str] | frozenset[str] = frozenset()) -> str:
    """Return *title* on one line, without zero-width characters or an outlet name.

    *sites* are the outlet's names (``og:site_name``, the source's configured
    title): ``"반도체 수출 지원책 발표 | 예시일보"`` with ``{"예시일보"}`` gives
    ``"반도체 수출 지원책 발표"``. A title that is only the outlet's name gives ``""``.
    """
    cleaned = _strip_site(one_line(title), {s for s in sites if s})
    return "" if {title_key(cleaned)} & {title_key(s) for s in sites if s} else cleaned
