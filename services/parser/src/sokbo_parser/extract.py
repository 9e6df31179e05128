"""Extract the article (title, body text, byline, date) from a decoded news page.

trafilatura finds the main text and the metadata; this module corrects what it gets
wrong on Korean news pages: site-name suffixes in titles (trafilatura #71), copyright
and widget lines left in the text (#584), reporters' bylines written as
``[FETV=신동현 기자]``, and naive dates, which are read as KST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urljoin, urlsplit

import trafilatura
from lxml.html import HtmlElement

from sokbo.errors import PermanentError

__all__ = ["ExtractedArticle", "extract_article", "guess_language"]

KST = timezone(timedelta(hours=9), "KST")

_DATE_PARAMS = {  # htmldate: keep the time, and trust page metadata over URL dates
    "original_date": True,
    "extensive_search": True,
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
    "deferred_url_extractor": True,
}
_MIN_TEXT_CHARS = 15  # letters and digits; a one-sentence flash has more, a lone nav link less
_XML_DECL = re.compile(r"\A\s*<\?xml[^>]*\?>")
_SEPARATORS = "-|–—:：ㅣ｜·•/"
_SECTION = re.compile(
    r"\s*[-|ㅣ｜·:]\s*(?:정치|경제|사회|국제|세계|문화|스포츠|연예|오피니언|사설|칼럼|IT|IT일반|"
    r"산업|금융|증권|부동산|전국|지역|라이프|생활|과학|피플|엔터)\s*$"
)
_PHOTO_CREDIT = re.compile(r"\s*[（(]\s*(?:写真|사진|photo)\s*[=＝:：][^）)]*[）)]\s*$", re.I)
_COPYRIGHT = re.compile(
    r"copyright|all rights reserved|무단\s*전재|재배포\s*금지|무단\s*복제|저작권자|[ⓒ©]", re.I
)
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
_NAME = r"[가-힣]{2,4}"
_NAMES = rf"{_NAME}(?:\s*[·,]\s*{_NAME})*"
_TITLE_WORD = r"(?:선임|수석|객원|인턴)?(?:기자|특파원)"
_BYLINE_ANYWHERE = (
    # [FETV=신동현 기자]
    re.compile(rf"\[[^\]=]{{1,20}}=\s*(?P<names>{_NAMES})\s*{_TITLE_WORD}\]"),
    # [이데일리 조민정 기자]
    re.compile(rf"\[[^\]\s=]{{1,20}}\s+(?P<names>{_NAMES})\s*{_TITLE_WORD}\]"),
    # (서울=연합뉴스) 홍길동 기자 =
    re.compile(rf"^\([^)=]{{1,20}}=[^)]{{1,20}}\)\s*(?P<names>{_NAMES})\s*{_TITLE_WORD}\s*="),
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_BYLINE_LINE = re.compile(  # 신동현 기자 shin@fetv.co.kr
    rf"^(?P<names>{_NAMES})\s*{_TITLE_WORD}(?:\s*=)?(?:\s*{_EMAIL.pattern})?$"
)
_NOT_A_PERSON = re.compile(
    r"(?:일보|신문|뉴스|경제|방송|미디어|데일리|닷컴|타임스|저널|통신|네이버|TV)$"
)
_PERSON = re.compile(rf"{_NAME}|[A-Z][\w.'-]*(?: [A-Z][\w.'-]*){{1,3}}")  # 홍길동, Kyle Wiggers
_AUTHOR_SUFFIX = re.compile(rf"\s*{_TITLE_WORD}?(?:\s+외(?:\s*\d+\s*명)?)?$")
_SCRIPTS = (  # language, its script, the share of letters that decides it, in order
    ("ko", r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]", 0.2),
    ("ja", r"[\u3040-\u30ff]", 0.1),
    ("zh", r"[\u4e00-\u9fff]", 0.3),
    ("en", r"[A-Za-z]", 0.5),
)
_INPUT_STAMP = re.compile(
    r"입력\s*[:：]?\s*(\d{4})\s*[.\-/년]\s*(\d{1,2})\s*[.\-/월]\s*(\d{1,2})\s*일?\.?\s*"
    r"(오전|오후)?\s*(\d{1,2}):(\d{2})(?::(\d{2}))?"
)


@dataclass(frozen=True)
class ExtractedArticle:
    """The parts of a news page that sokbo keeps.

    Attributes:
        title: the headline, without the outlet's name or section.
        text: the body, one paragraph per line, without navigation, widgets,
            related/most-read lists or copyright lines.
        authors: reporters' names, e.g. ``["신동현"]``; empty when unknown.
        published_at: publication time, timezone-aware UTC; ``None`` when unknown.
        language: ISO 639-1 code (``"ko"``, ``"ja"``, ``"zh"``, ``"en"``) or ``None``.
        canonical_url: the page's canonical URL, absolute, or ``None``.
        site_name: the outlet's name as the page gives it, or ``None``.
    """

    title: str
    text: str
    authors: list[str]
    published_at: datetime | None
    language: str | None
    canonical_url: str | None
    site_name: str | None


def extract_article(html: str, url: str | None = None) -> ExtractedArticle:
    """Extract the article from one decoded HTML page.

    Args:
        html: the page as text (decode it first with :func:`decode_html`).
        url: the URL it was fetched from; resolves relative canonical links.

    Raises:
        PermanentError: the page has no extractable article text.
    """
    tree = trafilatura.load_html(_XML_DECL.sub("", html, count=1))
    if tree is None:
        raise PermanentError(f"no article text found: {url or 'page'} is not HTML")
    doc = trafilatura.bare_extraction(
        tree, url=url, with_metadata=True, include_comments=False, include_tables=False,
        favor_precision=True, date_extraction_params=_DATE_PARAMS,
    )
    if doc is None or not (doc.text or "").strip():
        raise PermanentError(f"no article text found in {url or 'page'}")
    site_name = _one_line(doc.sitename or _meta(tree, "og:site_name")) or None
    sites = _site_names(tree, doc.title, site_name)
    title = _title(tree, doc.title, sites)
    text = _clean_text(doc.text, title)
    if len(re.findall(r"\w", text)) < _MIN_TEXT_CHARS:
        raise PermanentError(f"no article text found in {url or 'page'} (only {text[:40]!r})")
    if site_name is None and len(sites) == 1:
        site_name = next(iter(sites))
    return ExtractedArticle(
        title=title,
        text=text,
        authors=_authors(doc.author, text, sites),
        published_at=_published_at(doc.date, tree),
        language=doc.language or guess_language(text),
        canonical_url=_canonical_url(tree, doc.url, url),
        site_name=site_name,
    )


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


def _one_line(value: str | None) -> str:
    """Collapse all whitespace (NBSP, U+3000, newlines) to single spaces."""
    return " ".join((value or "").split())


def _meta(tree: HtmlElement, prop: str) -> str | None:
    """Return the content of ``<meta property=prop>`` (or ``name=prop``), if any."""
    found = tree.xpath("//meta[@property=$p or @name=$p]/@content", p=prop)
    return str(found[0]) if found else None


def _first_text(tree: HtmlElement, xpath: str) -> str:
    """Return the whitespace-collapsed text of the first element matching ``xpath``."""
    found = tree.xpath(xpath)
    return _one_line(found[0].text_content()) if found else ""


def _key(value: str) -> str:
    """Compare titles and names ignoring case, spaces and quotes."""
    return re.sub(r"[\s\"'“”‘’]", "", value).casefold()


def _site_names(tree: HtmlElement, found_title: str | None, site_name: str | None) -> set[str]:
    """Collect the outlet's names: declared ones, and a title tail repeated elsewhere.

    A tail after a separator that also ends another title source, or that equals
    the heading trafilatura chose (a logo ``<h1>``), names the site (trafilatura #71).
    """
    names = {n for n in (site_name, _one_line(_meta(tree, "application-name"))) if n}
    tails = [_tail(t) for t in (_first_text(tree, "//title"), _one_line(_meta(tree, "og:title")))]
    if tails[0] and tails[0] == tails[1]:
        names.add(tails[0])
    names.update(t for t in tails if t and _key(t) == _key(found_title or ""))
    return names


def _tail(title: str) -> str:
    """Return the part after the last separator of a title, or ``""``."""
    match = re.search(rf"(?:\s[{_SEPARATORS}]\s|[|ㅣ｜：])\s*([^{_SEPARATORS}]+?)\s*$", title)
    return match.group(1) if match else ""


def _title(tree: HtmlElement, found: str | None, sites: set[str]) -> str:
    """Choose the headline: trafilatura's, else og:title, ``<title>``, ``<h1>``.

    The outlet's name and section are stripped, and a candidate that is only the
    outlet's name is skipped. Returns ``""`` when no candidate is left.
    """
    site_keys = {_key(s) for s in sites}
    full = _first_text(tree, "//title")
    if found and sites and full.startswith(found) and _key(_tail(full)) not in site_keys:
        found = full  # trafilatura cut the <title> at its last " - ", which is not the outlet
    for candidate in (found, _meta(tree, "og:title"), full, _first_text(tree, "//h1")):
        title = _strip_site(_one_line(candidate), sites)
        if title and _key(title) not in site_keys:
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


def _clean_text(raw: str, title: str) -> str:
    """Drop blank, title-repeating, copyright, widget and related-list lines."""
    lines = [line for line in (_one_line(x) for x in raw.splitlines()) if line]
    if lines and title and _key(lines[0]) == _key(title):
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
        if _WIDGET.fullmatch(line) or (len(line) <= 200 and _COPYRIGHT.search(line)):
            continue
        kept.append(line)
    return "\n".join(kept)


def _authors(found: str | None, text: str, sites: set[str]) -> list[str]:
    """Return reporters' names from trafilatura's byline and the text's edges.

    ``"박준석 기자 외; 한국일보"`` gives ``["박준석"]``; a text opening with
    ``[FETV=신동현 기자]`` or closing with ``신동현 기자 shin@fetv.co.kr`` gives
    ``["신동현"]``. Outlet names are never returned as authors.
    """
    fragments = re.split(r"[;,·/]", found or "")
    names = [_AUTHOR_SUFFIX.sub("", _EMAIL.sub("", f).strip()) for f in fragments]
    lines = text.splitlines()
    for line in lines[:5]:
        for pattern in _BYLINE_ANYWHERE:
            if match := pattern.search(line):
                names.extend(re.split(r"\s*[·,]\s*", match.group("names")))
    for line in lines[:3] + lines[-3:]:
        if match := _BYLINE_LINE.match(line):
            names.extend(re.split(r"\s*[·,]\s*", match.group("names")))
    site_keys = {_key(s) for s in sites}
    people = (n for n in names if n and _key(n) not in site_keys and not _NOT_A_PERSON.search(n))
    return list(dict.fromkeys(n for n in people if _PERSON.fullmatch(n)))


def _published_at(found: str | None, tree: HtmlElement) -> datetime | None:
    """Return the publication time in UTC, reading a naive time as KST.

    When htmldate finds only a day, a Korean ``입력 2021.10.04. 오후 4:26`` stamp
    on the page supplies the time; otherwise the day starts at 00:00 KST.
    """
    try:
        parsed = datetime.fromisoformat(found) if found else None  # htmldate's output format
    except ValueError:
        parsed = None
    if parsed is None or (parsed.tzinfo is None and parsed.time() == datetime.min.time()):
        stamp = _input_stamp(tree)
        if stamp and (parsed is None or stamp.date() == parsed.date()):
            parsed = stamp
    if parsed is None:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=KST)).astimezone(UTC)


def _input_stamp(tree: HtmlElement) -> datetime | None:
    """Find a Korean ``입력``/``기사입력`` time stamp in the visible page text (naive KST)."""
    visible = " ".join(tree.xpath("//body//text()[not(ancestor::script or ancestor::style)]"))
    match = _INPUT_STAMP.search(visible)
    if not match:
        return None
    year, month, day, half, hour, minute, second = match.groups()
    hour_24 = int(hour) % 12 + (12 if half == "오후" else 0) if half else int(hour)
    try:
        return datetime(int(year), int(month), int(day), hour_24, int(minute), int(second or 0))
    except ValueError:
        return None


def _canonical_url(tree: HtmlElement, found: str | None, url: str | None) -> str | None:
    """Return ``<link rel=canonical>``, else og:url, else trafilatura's or the fetch URL.

    Relative links are resolved against ``url``; one that stays relative is skipped.
    """
    links = tree.xpath("//link[@rel='canonical']/@href")
    for candidate in (links[0] if links else None, _meta(tree, "og:url"), found, url):
        resolved = urljoin(url or "", (candidate or "").strip())
        if urlsplit(resolved).netloc:
            return resolved
    return None

