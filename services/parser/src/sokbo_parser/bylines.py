"""Reporters' names and e-mail addresses from the bylines of Korean news pages.

Korean bylines name the reporter with the title word 기자 (reporter) or 특파원
(correspondent), often with the outlet and an address, in a handful of shapes:

* ``[FETV=신동현 기자]``, ``[이데일리 조민정 기자]``, ``(서울=연합뉴스) 홍길동 기자 =``
  at the start of the first paragraph;
* a line of its own: ``홍길동 기자``, ``홍길동 기자 hong@example.kr``,
  ``홍길동 기자 (hong@example.kr)``, ``박준석 기자 외 1명``, ``조민정(jjung@edaily.co.kr)``,
  or only the address, ``kokobj@yna.co.kr``;
* a reporter box outside the text (``<div class="byline">``, ``<dl class="author">``),
  which may put the place first: ``순천, 광양 구현모 기자 ninek@hankookilbo.com``.

Names and addresses are kept apart: ``ArticleParsed.authors`` holds ``["홍길동"]``,
``author_emails`` holds ``["hong@example.kr"]``. Outlet names are never authors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml.html import HtmlElement

from sokbo_parser.titles import one_line, title_key

__all__ = ["Byline", "authors_of", "byline_of_box", "byline_of_line", "bylines_in_lead",
           "emails_in", "reporter_boxes"]

_NAME = r"[가-힣]{2,4}"
_NAMES = rf"{_NAME}(?:\s*[·,]\s*{_NAME})*"
_TITLE_WORD = r"(?:선임|수석|객원|인턴)?(?:기자|특파원)"
_OTHERS = r"(?:\s*외(?:\s*\d+\s*명)?)?"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
_ADDRESS = rf"[(<\[]?\s*{EMAIL.pattern}\s*[)>\]]?"
_IN_LEAD = (
    # [FETV=신동현 기자]
    re.compile(rf"\[[^\]=]{{1,20}}=\s*(?P<names>{_NAMES})\s*{_TITLE_WORD}\]"),
    # [이데일리 조민정 기자]
    re.compile(rf"\[[^\]\s=]{{1,20}}\s+(?P<names>{_NAMES})\s*{_TITLE_WORD}\]"),
    # (서울=연합뉴스) 홍길동 기자 =
    re.compile(rf"^\([^)=]{{1,20}}=[^)]{{1,20}}\)\s*(?P<names>{_NAMES})\s*{_TITLE_WORD}\s*="),
)
_LINE = (
    # 홍길동 기자 | 홍길동 기자 hong@x.kr | 홍길동 기자 (hong@x.kr) | 박준석 기자 외 1명
    re.compile(rf"^(?P<names>{_NAMES})\s*{_TITLE_WORD}{_OTHERS}(?:\s*=)?(?:\s*{_ADDRESS})*$"),
    # 조민정(jjung@edaily.co.kr)
    re.compile(rf"^(?P<names>{_NAME})\s*\(\s*{EMAIL.pattern}\s*\)$"),
    # kokobj@yna.co.kr
    re.compile(rf"^(?P<names>){_ADDRESS}$"),
)
#: a reporter box may put the places first: 순천, 광양 구현모 기자 ninek@…
_BOX = re.compile(rf"^(?:[가-힣]{{2,6}}(?:\s*[,·]\s*[가-힣]{{2,6}})*\s)?(?P<names>{_NAMES})"
                  rf"\s*{_TITLE_WORD}{_OTHERS}(?:\s*{_ADDRESS})*$")
_SPLIT = re.compile(r"\s*[·,]\s*")
_BOX_CLASS = re.compile("byline|reporter|writer|journalist|author", re.I)
_NOT_AN_OUTLET = re.compile(
    r"(?:일보|신문|뉴스|경제|방송|미디어|데일리|닷컴|타임스|저널|통신|네이버|TV)$")
#: words that stand before 기자 without being a name (사진 기자: a photographer)
_NOT_A_NAME = frozenset({"사진", "영상", "취재", "담당", "전문", "수습", "경력", "인턴", "객원",
                         "선임", "수석", "현장", "외신", "현지", "일선", "많은", "모든", "여러"})
_PERSON = re.compile(r"[가-힣]{2,4}|[A-Z][\w.'-]*(?: [A-Z][\w.'-]*){1,3}")  # 홍길동, Kyle Wiggers
_AUTHOR_SUFFIX = re.compile(
    rf"\s*{_TITLE_WORD}?(?:\s+외(?:\s*\d+\s*명)?)?$")


@dataclass
class Byline:
    """Names and e-mail addresses collected from one page, in order, without repeats."""

    names: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)

    def add(self, names: str = "", text: str = "") -> None:
        """Add the names of one byline (``"배윤경·이상현"``) and the addresses in *text*."""
        self.names.extend(n for n in _SPLIT.split(names.strip()) if n)
        self.emails.extend(emails_in(text))

    def merge(self, other: Byline | None) -> None:
        """Add what *other* found (``None``: nothing)."""
        if other is not None:
            self.names.extend(other.names)
            self.emails.extend(other.emails)


def byline_of_line(line: str) -> Byline | None:
    """Return the byline a whole text line consists of, or ``None`` if it is not one.

    ``"홍길동 기자 (hong@example.kr)"`` gives names ``["홍길동"]`` and emails
    ``["hong@example.kr"]``; ``"kokobj@yna.co.kr"`` gives only the address.
    """
    for pattern in _LINE:
        if match := pattern.match(line.strip()):
            found = Byline()
            found.add(match.group("names"), line)
            return found
    return None


def byline_of_box(text: str) -> Byline | None:
    """Return the byline a reporter box's text (place first allowed) consists of, or ``None``."""
    text = " ".join(text.split())
    if len(text) > 150:
        return None
    found = byline_of_line(text)
    if found is None and (match := _BOX.match(text)):
        found = Byline()
        found.add(match.group("names"), text)
    return found


def bylines_in_lead(line: str) -> Byline | None:
    """Return the byline that opens a paragraph (``[FETV=신동현 기자] 오픈AI가…``), if any."""
    for pattern in _IN_LEAD:
        if match := pattern.search(line):
            found = Byline()
            found.add(match.group("names"))
            return found
    return None


def emails_in(text: str) -> list[str]:
    """Return the e-mail addresses in *text*, lowercased, in order."""
    return [address.lower() for address in EMAIL.findall(text or "")]


def reporter_boxes(tree: HtmlElement) -> list[tuple[str, Byline]]:
    """Return the text (whitespace collapsed) and byline of each reporter box read as one.

    Reporter boxes are elements whose class or id says ``byline``, ``reporter``,
    ``writer``, ``journalist`` or ``author`` (matched in Python: an XPath test of two
    attributes on every element costs three times as much).
    """
    boxes = []
    for element in tree.iter():
        names = f"{element.get('class') or ''} {element.get('id') or ''}"
        if len(names) > 1 and _BOX_CLASS.search(names):
            text = one_line(element.text_content())
            if (byline := byline_of_box(text)) is not None:
                boxes.append((text, byline))
    return boxes


def authors_of(found: str | None, text: str, removed: Byline,
               boxes: list[tuple[str, Byline]], sites: set[str]) -> tuple[list[str], list[str]]:
    """Return reporters' names and e-mail addresses, each in order, without repeats.

    Names come from trafilatura's byline (``"박준석 기자 외; 한국일보"`` gives
    ``["박준석"]``), a byline opening the text (``[FETV=신동현 기자]``), the byline
    lines taken out of it and the page's reporter boxes. Outlet names, words such as
    사진 (photo) and the places a box puts first (순천 in ``순천, 광양 구현모 기자``,
    which trafilatura splits off as a name) are never returned as authors.

    Args:
        found: trafilatura's byline from meta tags and JSON-LD, ``;``-separated.
        text: the article text, whose first lines may open with a byline.
        removed: the byline lines taken out of the text.
        boxes: the page's :func:`reporter_boxes`.
        sites: the outlet's names, which are never authors.
    """
    byline = Byline()
    for fragment in re.split(r"[;,·/]", found or ""):
        name = _AUTHOR_SUFFIX.sub("", EMAIL.sub("", fragment).strip())
        if not any(name in box_text and name not in box.names for box_text, box in boxes):
            byline.add(name, fragment)
    for line in text.splitlines()[:5]:
        byline.merge(bylines_in_lead(line))
    byline.merge(removed)
    for _, box in boxes:
        byline.merge(box)
    site_keys = {title_key(s) for s in sites}
    people = (n for n in byline.names if n and title_key(n) not in site_keys
              and n not in _NOT_A_NAME and not _NOT_AN_OUTLET.search(n))
    names = list(dict.fromkeys(n for n in people if _PERSON.fullmatch(n)))
    return names, list(dict.fromkeys(byline.emails))
