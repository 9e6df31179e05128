"""Extract the article (title, body text, byline, date) from a decoded news page.

trafilatura finds the main text; this module reads what the page says about itself
and corrects what trafilatura gets wrong on Korean news pages: site-name suffixes in
titles (trafilatura #71, :mod:`sokbo_parser.titles`), copyright, paywall and widget
lines and related-article lists left in the text (#584), reporters' bylines written
as ``[FETV=신동현 기자]`` (:mod:`sokbo_parser.bylines`), and dates, taken from the
page's metadata first and read as KST when naive (:mod:`sokbo_parser.published`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import urljoin, urlsplit

import trafilatura
from lxml.html import Element, HtmlElement

from sokbo.dates import KST, parse_korean_datetime
from sokbo.errors import PermanentError
from sokbo_parser.bylines import Byline, authors_of, byline_of_line, reporter_boxes
from sokbo_parser.published import metadata_date, text_date
from sokbo_parser.titles import (
    choose_title,
    clean_title,
    meta_content,
    one_line,
    outlet_names,
    page_metadata,
    title_key,
)
from sokbo_parser.urls import same_site

__all__ = [
    "KST",
    "ExtractedArticle",
    "clean_title",
    "extract_article",
    "guess_language",
    "parse_korean_datetime",
]

_LISTING_CHARS = 1000  # a section page's extracted headlines and ledes stay under this
_MIN_TEXT_CHARS = 15  # letters and digits; a one-sentence flash has more, a lone nav link less
#: fewer letters than this from the fast extraction: try the full one as well
_FULL_BELOW = 100
_LETTER = re.compile(r"\w")
_XML_DECL = re.compile(r"\A\s*<\?xml[^>]*\?>")
_COPYRIGHT = re.compile(
    r"copyright|all rights reserved|무단\s*전재|재배포\s*금지|무단\s*복제|저작권자|[ⓒ©]", re.I
)
_PAYWALL = re.compile(  # prompts to log in or pay, in the wording outlets use
    r"この記事は(?:有料)?会員限定|続きをお読みいただけます|有料会員(?:になると|の方のみ)"
    r"|(?:유료\s*)?회원\s*전용\s*(?:기사|콘텐츠)|회원용\s*콘텐츠입니다"
    r"|로그인\s*(?:후|하고|하시면)\s*(?:전체|계속|이용|확인|읽)|구독(?:하고|하시면)\s*(?:전체|계속|나머지)"
    r"|subscribe\s+(?:now\s+)?to\s+(?:continue|keep)\s+reading|(?:already|become)\s+a\s+subscriber",
    re.I,
)
_END_MARK = re.compile(r"[(\[<]?\s*(?:END|끝|終わり)\s*[)\]>]?|[-=]{2,}\s*(?:END|끝)?\s*[-=]{2,}")
_WIDGET = re.compile(
    r"(?:(?:맑음|흐림|구름\S*|비|눈|소나기|안개)?\s*[가-힣]{1,6}\s*-?\d{1,2}(?:\.\d)?\s*℃\s*)+"
    r"|기상청\s*제공|\d{4}\.\d{1,2}\.\d{1,2}\.?\s*\([월화수목금토일]\)"
    r"|사진\s*확대|기사\s*URL이\s*복사되었습니다\.?|AI\s*요약은\s.*(?:OpenAI|기술을\s*활용).*"
)
_LIST_LABEL = re.compile(
    r"(?:관련|추천|인기|주요|최신|실시간)\s*(?:기사|뉴스)|함께\s*(?:보면\s*좋은|볼만한)\s*(?:기사|뉴스)"
    r"|(?:가장\s*)?많이\s*본\s*(?:기사|뉴스)|이\s*시각\s*\S+\s*뉴스"
)
_SENTENCE_END = re.compile(r"(?:[.!?。]|다|요)[\"'”’)]?$")
_CHROME = ("nav", "aside", "footer", "script", "style", "noscript", "template", "svg", "iframe",
           "form", "select", "button")
_SCRIPTS = (  # language, its script, the share of letters that decides it, in order
    ("ko", r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]", 0.2),
    ("ja", r"[\u3040-\u30ff]", 0.1),
    ("zh", r"[\u4e00-\u9fff]", 0.3),
    ("en", r"[A-Za-z]", 0.5),
)
_LANG_TAG = re.compile(r"([a-z]{2,3})(?:[-_][A-Za-z0-9]+)*")  # BCP 47: ko-KR, en_US


@dataclass(frozen=True)
class ExtractedArticle:
    """The parts of a news page that sokbo keeps.

    Attributes:
        title: the headline, without the outlet's name or section.
        text: the body, one paragraph per line, without navigation, widgets,
            related/most-read lists, paywall prompts, byline-only or copyright lines.
        authors: reporters' names, e.g. ``["신동현"]``; empty when unknown.
        published_at: publication time, timezone-aware UTC; ``None`` when unknown.
        language: ISO 639-1 code (``"ko"``, ``"ja"``, ``"zh"``, ``"en"``, ``"fr"`` …)
            or ``None``.
        canonical_url: the page's own ``<link rel=canonical>`` (else ``og:url``),
            absolute and on the same site as the fetch URL, or ``None``.
        site_name: the outlet's name as the page gives it, or ``None``.
        author_emails: the reporters' e-mail addresses, lowercased.
        published_from: where ``published_at`` comes from: ``"metadata"`` (meta
            tags, JSON-LD: trusted over a feed entry's date), ``"text"`` (a visible
            ``입력`` stamp or htmldate's guess: a feed entry's date is trusted over
            it), or ``None``.
    """

    title: str
    text: str
    authors: list[str]
    published_at: datetime | None
    language: str | None
    canonical_url: str | None
    site_name: str | None
    author_emails: list[str] = field(default_factory=list)
    published_from: Literal["metadata", "text"] | None = None
    #: trafilatura's full extraction found the text, its fast mode too little
    full_extraction: bool = False


def extract_article(
    html: str, url: str | None = None, *, now: datetime | None = None
) -> ExtractedArticle:
    """Extract the article from one decoded HTML page.

    Args:
        html: the page as text (decode it first with :func:`decode_html`).
        url: the URL it was fetched from; resolves relative canonical links, and a
            canonical link to another site is ignored.
        now: the time the page was fetched (UTC); a publication time more than
            10 minutes after it is rejected. ``None``: no such check.

    Raises:
        PermanentError: the page is not HTML lxml can parse, has no extractable
            article text, or is a listing page; the message says which.
    """
    where = url or "page"
    with _failures_are_permanent(where):
        tree = trafilatura.load_html(_XML_DECL.sub("", html, count=1))
        if tree is None:
            raise PermanentError(f"no article text found: {where} is not HTML")
        # what the page says about itself, read before the page chrome is dropped
        meta, boxes = page_metadata(tree), reporter_boxes(tree)
        published, canonical = metadata_date(tree, now), _canonical_url(tree, url)
        _drop_page_chrome(tree)
    site_name, sites = outlet_names(tree, meta)
    title = choose_title(tree, meta.title, sites)
    with _failures_are_permanent(where):
        text, removed, full = _main_text(tree, url, title)
    if len(_LETTER.findall(text)) < _MIN_TEXT_CHARS:
        raise PermanentError(f"no article text found in {where}"
                             + (f" (only {text[:40]!r})" if text else ""))
    authors, emails = authors_of(meta.author, text, removed, boxes, sites)
    source: Literal["metadata", "text"] | None = "metadata" if published else None
    if published is None:
        with _failures_are_permanent(where):
            published = text_date(tree, url, now)
        source = "text" if published else None
    if published is None and _is_listing(tree, text):
        raise PermanentError(f"no article text found in {where}: a listing page "
                             "(og:type website, no publication date, headlines only)")
    return ExtractedArticle(
        title=title, text=text, authors=authors, published_at=published,
        language=_language(tree, text), canonical_url=canonical, site_name=site_name,
        author_emails=emails, published_from=source, full_extraction=full,
    )


def _main_text(tree: HtmlElement, url: str | None, title: str
               ) -> tuple[str, list[str], bool]:
    """Return the cleaned main text of *tree*, the lines cleaning removed, and whether
    the full extraction found it.

    trafilatura's fast mode (its main extractor alone) first: it finds the same text
    on the corpus pages in about half the time.  Where it finds little — under
    ``_FULL_BELOW`` letters — the full extraction (readability and jusText compared,
    trafilatura's default) runs too and the longer text wins: some layouts (the
    Seoul Shinmun page on Naver of the corpus) only the comparison finds.
    """
    def extract(fast: bool) -> tuple[str, list[str]]:
        doc = trafilatura.bare_extraction(
            tree, url=url, with_metadata=False, include_comments=False, include_tables=False,
            favor_precision=True, fast=fast)
        return _clean_text(doc.text if doc else "", title)

    found = extract(fast=True)
    letters = len(_LETTER.findall(found[0]))
    if letters < _FULL_BELOW:
        full = extract(fast=False)
        if len(_LETTER.findall(full[0])) > letters:
            return *full, True
    return *found, False


def guess_language(text: str) -> str | None:
    """Guess the language from the script its letters are written in.

    Returns ``"ko"`` when Hangul is a fifth of the letters, ``"ja"`` when kana is a
    tenth, ``"zh"`` when Han dominates, ``"en"`` for mostly Latin text, else ``None``.
    """
    counts = {lang: len(re.findall(script, text)) for lang, script, _ in _SCRIPTS}
    letters = sum(counts.values())
    for lang, _, share in _SCRIPTS:
        if letters and counts[lang] / letters >= share:
            return lang
    return None


@contextmanager
def _failures_are_permanent(where: str) -> Iterator[None]:
    """Turn a library's failure on a page into :class:`PermanentError`: it would fail again."""
    try:
        yield
    except PermanentError:
        raise
    except Exception as exc:  # noqa: BLE001  # lxml, trafilatura, htmldate: any of them
        raise PermanentError(f"malformed HTML in {where}: {type(exc).__name__}: {exc}") from exc


def _drop_page_chrome(tree: HtmlElement) -> None:
    """Remove what never holds article text, and start lines after inline blocks.

    Elements of :data:`_CHROME` (HTML5 ``nav``/``aside``/``footer``, scripts, forms,
    embedded frames) are dropped from the body: trafilatura discards them anyway, and
    its pruning passes cost time in proportion to the elements left (a third less on
    the corpus, same text). Portals put a summary in ``<strong>line<br>line</strong>``
    and a photo in ``<span><img><em>caption</em></span>`` with the first sentence
    right after: a ``<br>`` is added after such an element, or trafilatura glues that
    sentence to the summary or caption.
    """
    body = tree.find("body")
    if body is None:
        return
    for element in list(body.iter(*_CHROME)):
        if element.getparent() is not None:
            element.drop_tree()
    for element in list(body.iter("strong", "b", "em", "span")):
        if element.find(".//br") is None and element.find(".//img") is None:
            continue
        if (element.tail and element.tail.strip()) or element.getnext() is not None:
            line_break = Element("br")
            line_break.tail, element.tail = element.tail or "\n", None
            element.addnext(line_break)


def _clean_text(raw: str, title: str) -> tuple[str, Byline]:
    """Drop blank, title-repeating, boilerplate and related-list lines; take out bylines.

    Boilerplate is a copyright, paywall, widget or end-of-story (``(END)``) line.
    A line that is only a byline (``홍길동 기자 hong@example.kr``), among the first
    or last three, leaves the text; its names and addresses are returned.
    """
    lines = [line for line in (one_line(x) for x in raw.splitlines()) if line]
    if lines and title and title_key(lines[0]) == title_key(title):
        lines = lines[1:]
    kept: list[str] = []
    in_list = False
    for line in lines:
        if _LIST_LABEL.fullmatch(line):
            in_list = True
            continue
        if in_list and len(line) <= 80 and not _SENTENCE_END.search(line):
            continue  # a headline under a "related articles" label
        in_list = False
        short = len(line) <= 200
        if _WIDGET.fullmatch(line) or _END_MARK.fullmatch(line) or (
                short and (_COPYRIGHT.search(line) or _PAYWALL.search(line))):
            continue
        kept.append(line)
    byline = Byline()
    edges = set(range(min(3, len(kept)))) | set(range(max(0, len(kept) - 3), len(kept)))
    for index in sorted(edges):
        found = byline_of_line(kept[index])
        if found is not None and len(kept) > 1:
            byline.merge(found)
            kept[index] = ""
    return "\n".join(line for line in kept if line), byline


def _language(tree: HtmlElement, text: str) -> str | None:
    """Return the article's language: by script, refined by ``<html lang>`` for Latin text.

    The script tells Korean, Japanese and Chinese apart reliably, and templates often
    keep a wrong ``lang`` (``en`` on a Korean page). Latin script alone cannot tell
    English from French, so there a declared language (BCP 47 ``fr-FR`` → ``fr``)
    is trusted.
    """
    guessed = guess_language(text)
    declared = _LANG_TAG.fullmatch((tree.get("lang") or "").strip().lower())
    if declared and guessed in ("en", None) and declared.group(1) not in ("ko", "ja", "zh"):
        return declared.group(1)
    return guessed


def _is_listing(tree: HtmlElement, text: str) -> bool:
    """Tell a section or home page (headlines and ledes) from a short article.

    It calls itself ``og:type`` ``website`` (Open Graph; articles say ``article``) and
    what was extracted is under :data:`_LISTING_CHARS`. A short article of a site that
    marks every page ``website`` still has a publication date, so callers ask only
    when none was found.
    """
    kind = (meta_content(tree, "og:type") or "").strip().lower()
    return kind == "website" and len(text) < _LISTING_CHARS


def _canonical_url(tree: HtmlElement, url: str | None) -> str | None:
    """Return ``<link rel=canonical>``, else og:url, resolved against *url*.

    A link that stays relative, or that points to another site than *url* (a
    syndicated copy naming the original), is skipped.
    """
    links = tree.xpath("//link[@rel='canonical']/@href")
    for candidate in (links[0] if links else None, meta_content(tree, "og:url")):
        if not (candidate or "").strip():
            continue
        resolved = urljoin(url or "", candidate.strip())
        if urlsplit(resolved).netloc and (url is None or same_site(resolved, url)):
            return resolved
    return None
