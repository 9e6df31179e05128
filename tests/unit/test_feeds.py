"""Unit tests for sokbo_crawler.feeds: RSS 0.9x/1.0/2.0 and Atom, UTF-8 and EUC-KR."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sokbo.errors import PermanentError
from sokbo_crawler.feeds import Feed, FeedEntry, FeedError, parse_feed

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "feeds"
CHOSUN = FEEDS / "chosun-national-rss-2026-07-31.xml"
ACN = FEEDS / "acnnewswire-korean-press-rss-2005-euckr.xml"
NAVER_BLOG = FEEDS / "naver-blog-rss-2004-euckr.xml"


def _rss(items: str, *, title: str = "테스트 신문", declaration: str = "") -> str:
    return (f"{declaration}<rss version=\"2.0\"><channel><title>{title}</title>"
            f"<link>https://news.example.kr/</link>{items}</channel></rss>")


# --- the real feeds ----------------------------------------------------------------------


def test_chosun_utf8_feed() -> None:
    feed = parse_feed(CHOSUN.read_bytes(),
                      url="https://www.chosun.com/arc/outboundfeeds/rss/category/national/")
    assert isinstance(feed, Feed)
    assert feed.title == "조선일보"
    assert len(feed.entries) == 100
    first = feed.entries[0]
    assert first == FeedEntry(
        url="https://www.chosun.com/national/regional/2026/07/31/MKHNSCIR7BENLMZHSPZJ5SNEKU/",
        title="버스기사에게 ‘욕설·운행 방해' 70대...2심서 징역형으로 형량 늘어",
        published=datetime(2026, 7, 31, 6, 1, 50, tzinfo=UTC),
    )
    assert first.published is not None and first.published.utcoffset().total_seconds() == 0
    assert all(e.url.startswith("https://www.chosun.com/") for e in feed.entries)
    assert all(e.published is not None for e in feed.entries)
    assert any("오픈AI와 앤스로픽" in (e.title or "") for e in feed.entries)


@pytest.mark.parametrize(
    ("path", "feed_title", "count", "first_title", "first_url", "first_published"),
    [
        (ACN, "Asia Corporate Press via ACNNewswire.net", 8,
         "JCB가 China UnionPay와 ATM 이용 계약을 체결; CUP 카드회원들은 이제 일본에서 "
         "최초의 ATM 네트워크를 사용할수 있게된다.",
         "http://www.acnnewswire.net/Article.Asp?lang=_k&Art_ID=29790",
         # "Tue, 27 Dec 2005 13:30:33+0900": no space before the offset
         datetime(2005, 12, 27, 4, 30, 33, tzinfo=UTC)),
        (NAVER_BLOG, "alphathinker님의 블로그", 10,
         "2003년 업 그레이드된 기본강의시리즈 수강 안내",
         "http://blog.naver.com/alphathinker/40002716789",
         datetime(2004, 5, 23, 10, 57, 35, tzinfo=UTC)),
    ],
    ids=["acnnewswire", "naver-blog"],
)
def test_euc_kr_feeds(path: Path, feed_title: str, count: int, first_title: str,
                      first_url: str, first_published: datetime) -> None:
    feed = parse_feed(path.read_bytes(), url="http://example.invalid/rss")
    assert feed.title == feed_title
    assert len(feed.entries) == count
    first = feed.entries[0]
    assert first.title == first_title
    assert first.url == first_url
    assert first.published == first_published
    for entry in feed.entries:
        assert entry.title and "\ufffd" not in entry.title
        # acnnewswire writes "Sept": a date may be missing, never naive
        assert entry.published is None or entry.published.utcoffset().total_seconds() == 0
    assert sum(e.published is not None for e in feed.entries) >= count - 2


@pytest.mark.parametrize("path", [CHOSUN, ACN, NAVER_BLOG], ids=lambda p: p.stem)
def test_http_charset_matching_the_declaration_changes_nothing(path: Path) -> None:
    body = path.read_bytes()
    charset = "utf-8" if path == CHOSUN else "euc-kr"
    assert parse_feed(body, http_charset=charset) == parse_feed(body)


# --- EUC-KR as browsers read it (windows-949) --------------------------------------------


@pytest.mark.parametrize("label", ["euc-kr", "EUC-KR", "ks_c_5601-1987", "x-windows-949", "cp949"])
def test_cp949_only_syllables_in_a_feed_declared_euc_kr(label: str) -> None:
    text = _rss(
        "<item><title>햏자 똠방각하, 뷁 사건</title><link>https://news.example.kr/1</link>"
        "<pubDate>Mon, 06 Jan 2025 09:00:00 +0900</pubDate></item>",
        title="똠양꿍 일보",
        declaration=f'<?xml version="1.0" encoding="{label}"?>\n',
    )
    body = text.encode("cp949")
    with pytest.raises(UnicodeDecodeError):
        body.decode("euc-kr")  # Python's strict EUC-KR rejects the CP949 extension bytes
    feed = parse_feed(body)
    assert feed.title == "똠양꿍 일보"
    assert feed.entries == [FeedEntry(url="https://news.example.kr/1",
                                      title="햏자 똠방각하, 뷁 사건",
                                      published=datetime(2025, 1, 6, 0, 0, tzinfo=UTC))]


@pytest.mark.parametrize("http_charset", ["euc-kr", "EUC-KR", "ks_c_5601-1987", "windows-949"])
def test_euc_kr_given_only_by_http_charset(http_charset: str) -> None:
    body = _rss("<item><title>한국어 제목 똠</title><link>https://a.example.kr/1</link></item>",
                title="한글 신문", declaration='<?xml version="1.0"?>\n').encode("cp949")
    feed = parse_feed(body, http_charset=http_charset)
    assert feed.title == "한글 신문"
    assert [e.title for e in feed.entries] == ["한국어 제목 똠"]


def test_euc_kr_without_declaration_or_charset_is_not_cp949() -> None:
    # with nothing declared, XML defaults to UTF-8: the Korean text must not come out as-is
    body = _rss("<item><title>한국어</title><link>https://a.example.kr/1</link></item>",
                declaration='<?xml version="1.0"?>\n').encode("cp949")
    try:
        feed = parse_feed(body)
    except FeedError:
        return
    assert feed.entries[0].title != "한국어"


def test_http_charset_beats_the_xml_declaration() -> None:
    # RFC 7303 §3.2: the charset parameter of the HTTP Content-Type is authoritative
    body = _rss("<item><title>경제 뉴스</title><link>https://a.example.kr/1</link></item>",
                declaration='<?xml version="1.0" encoding="utf-8"?>\n').encode("cp949")
    feed = parse_feed(body, http_charset="euc-kr")
    assert feed.entries[0].title == "경제 뉴스"


def test_utf8_feed_with_bom() -> None:
    body = b"\xef\xbb\xbf" + _rss(
        "<item><title>속보</title><link>https://a.example.kr/1</link></item>",
        declaration='<?xml version="1.0" encoding="utf-8"?>\n').encode("utf-8")
    assert parse_feed(body).entries[0].title == "속보"


# --- other feed formats ------------------------------------------------------------------


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>아톰 뉴스</title>
  <link href="https://atom.example.kr/"/>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2025-01-02T03:04:05Z</updated>
  <entry>
    <title>첫 기사</title>
    <link rel="alternate" href="https://atom.example.kr/news/1"/>
    <id>tag:atom.example.kr,2025:1</id>
    <published>2025-01-02T12:00:00+09:00</published>
    <updated>2025-01-02T13:00:00+09:00</updated>
  </entry>
  <entry>
    <title>상대 링크</title>
    <link href="/news/2"/>
    <id>tag:atom.example.kr,2025:2</id>
    <updated>2025-01-03T00:00:00Z</updated>
  </entry>
</feed>
"""

RDF = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://rdf.example.kr/">
    <title>RDF 신문</title>
    <link>https://rdf.example.kr/</link>
    <description>RSS 1.0</description>
    <items><rdf:Seq><rdf:li resource="https://rdf.example.kr/a/1"/></rdf:Seq></items>
  </channel>
  <item rdf:about="https://rdf.example.kr/a/1">
    <title>RDF 기사</title>
    <link>https://rdf.example.kr/a/1</link>
    <dc:date>2025-03-04T14:06:07+09:00</dc:date>
  </item>
  <item rdf:about="https://rdf.example.kr/a/2">
    <title>두 번째</title>
    <link>https://rdf.example.kr/a/2</link>
  </item>
</rdf:RDF>
"""


def test_atom_1_0_feed() -> None:
    feed = parse_feed(ATOM.encode(), url="https://atom.example.kr/feeds/all.atom")
    assert feed.title == "아톰 뉴스"
    assert feed.entries == [
        FeedEntry(url="https://atom.example.kr/news/1", title="첫 기사",
                  published=datetime(2025, 1, 2, 3, 0, tzinfo=UTC)),
        FeedEntry(url="https://atom.example.kr/news/2", title="상대 링크",
                  published=datetime(2025, 1, 3, 0, 0, tzinfo=UTC)),
    ]


def test_rss_1_0_rdf_feed() -> None:
    feed = parse_feed(RDF.encode(), url="https://rdf.example.kr/rss")
    assert feed.title == "RDF 신문"
    assert feed.entries == [
        FeedEntry(url="https://rdf.example.kr/a/1", title="RDF 기사",
                  published=datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)),
        FeedEntry(url="https://rdf.example.kr/a/2", title="두 번째", published=None),
    ]


# --- links, titles and dates -------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "feed_url", "expected"),
    [
        ("/news/articleView.html?idxno=1", "https://www.fetv.co.kr/rss/allArticle.xml",
         "https://www.fetv.co.kr/news/articleView.html?idxno=1"),
        ("article/2", "https://a.example.kr/rss/feed.xml", "https://a.example.kr/rss/article/2"),
        ("../a/3", "https://a.example.kr/rss/feed.xml", "https://a.example.kr/a/3"),
        ("//cdn.example.kr/a/4", "https://a.example.kr/rss", "https://cdn.example.kr/a/4"),
        ("  https://b.example.kr/a/5  ", "https://a.example.kr/rss", "https://b.example.kr/a/5"),
        ("https://b.example.kr/a/6?x=1&amp;y=2", "https://a.example.kr/rss",
         "https://b.example.kr/a/6?x=1&y=2"),
    ],
)
def test_links_resolved_against_the_feed_url(link: str, feed_url: str, expected: str) -> None:
    body = _rss(f"<item><title>t</title><link>{link}</link></item>").encode()
    assert [e.url for e in parse_feed(body, url=feed_url).entries] == [expected]


def test_entries_without_link_are_skipped() -> None:
    body = _rss(
        "<item><title>no link at all</title><description>x</description></item>"
        "<item><title>kept</title><link>https://a.example.kr/1</link></item>"
        "<item><title>guid not a permalink</title><guid isPermaLink=\"false\">id-77</guid></item>"
        "<item><title>empty link</title><link></link></item>"
    ).encode()
    feed = parse_feed(body, url="https://a.example.kr/rss")
    assert [e.title for e in feed.entries] == ["kept"]


def test_rss_guid_permalink_is_the_link() -> None:
    # RSS 2.0: <guid> is a permalink unless isPermaLink="false"
    body = _rss("<item><title>g</title><guid>https://a.example.kr/g/1</guid></item>").encode()
    assert [e.url for e in parse_feed(body).entries] == ["https://a.example.kr/g/1"]


def test_atom_entry_without_link_is_skipped() -> None:
    # an Atom <id> is an identifier, not a link (RFC 4287 §4.2.6): nothing to fetch
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
  <entry><title>no link</title><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
    <updated>2003-12-13T18:30:02Z</updated></entry>
  <entry><title>linked</title><link href="https://a.example.kr/2"/><id>tag:a,2003:2</id>
    <updated>2003-12-13T18:30:02Z</updated></entry>
</feed>"""
    feed = parse_feed(body, url="https://a.example.kr/atom")
    assert [e.url for e in feed.entries] == ["https://a.example.kr/2"]


@pytest.mark.parametrize(
    ("item", "title"),
    [
        ("<title>  공백 제목  </title>", "공백 제목"),
        ("<title></title>", None),
        ("", None),
        ("<title><![CDATA[CDATA 제목]]></title>", "CDATA 제목"),
        ("<title>A &amp; B</title>", "A & B"),
    ],
)
def test_entry_titles(item: str, title: str | None) -> None:
    body = _rss(f"<item>{item}<link>https://a.example.kr/1</link></item>").encode()
    assert parse_feed(body).entries[0].title == title


@pytest.mark.parametrize(
    ("date_xml", "published"),
    [
        ("<pubDate>Fri, 31 Jul 2026 06:01:50 +0000</pubDate>",
         datetime(2026, 7, 31, 6, 1, 50, tzinfo=UTC)),
        ("<pubDate>Tue, 27 Dec 2005 13:30:33+0900</pubDate>",
         datetime(2005, 12, 27, 4, 30, 33, tzinfo=UTC)),
        ("<pubDate>Mon, 06 Jan 2025 09:00:00 KST</pubDate>",
         datetime(2025, 1, 6, 0, 0, tzinfo=UTC)),
        ("<pubDate>Mon, 06 Jan 2025 09:00:00 GMT</pubDate>",
         datetime(2025, 1, 6, 9, 0, tzinfo=UTC)),
        ("<dc:date xmlns:dc=\"http://purl.org/dc/elements/1.1/\">2025-01-06T09:00:00+09:00"
         "</dc:date>", datetime(2025, 1, 6, 0, 0, tzinfo=UTC)),
        ("", None),
        ("<pubDate>어제 오후</pubDate>", None),
    ],
)
def test_entry_dates_in_utc(date_xml: str, published: datetime | None) -> None:
    body = _rss(f"<item><title>t</title><link>https://a.example.kr/1</link>{date_xml}"
                "</item>").encode()
    entry = parse_feed(body).entries[0]
    assert entry.published == published
    if published is not None:
        assert entry.published.utcoffset().total_seconds() == 0


def test_empty_channel_is_a_feed_with_no_entries() -> None:
    feed = parse_feed(_rss("", title="빈 피드").encode())
    assert feed == Feed(title="빈 피드", entries=[])


def test_slightly_malformed_feed_with_entries_still_parses() -> None:
    # an unescaped "&" makes the XML ill-formed; feedparser's lenient parser recovers
    body = _rss("<item><title>R&D 투자</title><link>https://a.example.kr/1</link></item>"
                ).encode()
    feed = parse_feed(body)
    assert [e.url for e in feed.entries] == ["https://a.example.kr/1"]
    assert feed.entries[0].title is not None and "투자" in feed.entries[0].title


# --- not a feed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   \n\t", id="whitespace"),
        pytest.param(b"\xef\xbb\xbf", id="bom-only"),
        pytest.param(b"this is not xml at all", id="plain-text"),
        pytest.param(b'{"items": [{"url": "https://a.example.kr/1"}]}', id="json"),
        pytest.param(b"<?xml version='1.0'?><rss version='2.0'><channel><title>x</title>"
                     b"<link>http://a/</link><desc", id="truncated-before-items"),
        pytest.param(b"<?xml version='1.0'?><rss version='2.0'><channel><title>x</title>"
                     b"<item><title>a</titl", id="truncated-inside-first-item"),
        pytest.param(b'<?xml version="1.0" encoding="UTF-8"?><urlset '
                     b'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url>'
                     b"<loc>https://a.example.kr/1</loc></url></urlset>", id="sitemap"),
    ],
)
def test_not_a_feed_raises(body: bytes) -> None:
    with pytest.raises(FeedError):
        parse_feed(body, url="https://a.example.kr/rss")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<!DOCTYPE html>\n<html lang='ko'><head><meta charset='utf-8'>"
                     b"<title>\xed\x95\x9c</title><link rel='stylesheet' href='/a.css'></head>"
                     b"<body><div><a href='/x'>x</a><br></div></body></html>",
                     id="html5-void-elements"),
        pytest.param(b"<!DOCTYPE html><html><head><title>Hi</title></head>"
                     b"<body><p>hello</p></body></html>", id="well-formed-html"),
        pytest.param(b"<html><body>hi</body></html>", id="minimal-html"),
        pytest.param(b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
                     b"<title>Page</title></head><body><p>Hi</p></body></html>", id="xhtml"),
    ],
)
def test_html_page_raises(body: bytes) -> None:
    with pytest.raises(FeedError):
        parse_feed(body, url="https://a.example.kr/")


@pytest.mark.parametrize(
    "name",
    ["mk-seoul-bus-strike-breaking-2025.html", "naver-seoulshinmun-gopchang-2021-euckr.html",
     "techcrunch-rpa-vs-ai-agents-2024-en.html"],
)
def test_real_article_pages_raise(name: str) -> None:
    body = (FEEDS.parent / "html" / name).read_bytes()
    with pytest.raises(FeedError):
        parse_feed(body, url="https://a.example.kr/")


def test_feed_error_is_permanent() -> None:
    assert issubclass(FeedError, PermanentError)


# --- B08: a UTF-8 feed served with a Latin-1-family charset ---------------------------------


def test_a_utf8_body_wins_over_a_windows_1252_header_and_keeps_its_last_character() -> None:
    """B08: '고' ends in 0xA0; read as windows-1252 it became NBSP and was stripped."""
    from sokbo.matching import match

    body = ('<rss version="2.0"><channel><title>t</title><item><title>소버린AI 예산 늘리고'
            '</title><link>https://news.example.kr/a/1</link></item></channel></rss>').encode()
    assert "고".encode() == b"\xea\xb3\xa0"
    feed = parse_feed(body, url="https://news.example.kr/rss", http_charset="windows-1252")
    assert feed.entries[0].title == "소버린AI 예산 늘리고"
    assert match("소버린AI", feed.entries[0].title)[0]


def test_a_real_windows_1252_feed_is_still_read_as_windows_1252() -> None:
    body = ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
            '<title>Café résumé</title><link>https://news.example.kr/a/2</link></item>'
            '</channel></rss>').encode("cp1252")
    feed = parse_feed(body, url="https://news.example.kr/rss", http_charset="windows-1252")
    assert feed.entries[0].title == "Café résumé"


def test_a_source_encoding_override_reads_an_undeclared_cp949_feed() -> None:
    body = ('<rss version="2.0"><channel><title>한글</title><item><title>똠방각하 소버린AI</title>'
            '<link>https://news.example.kr/a/3</link></item></channel></rss>').encode("cp949")
    feed = parse_feed(body, url="https://news.example.kr/rss", http_charset="euc-kr")
    assert (feed.title, feed.entries[0].title) == ("한글", "똠방각하 소버린AI")


# --- B09: Korean date forms in feeds ------------------------------------------------------


@pytest.mark.parametrize(("pub_date", "expected"), [
    ("2024/03/05 14:22:41", "2024-03-05T05:22:41+00:00"),
    ("2024년 03월 05일 14:22:41", "2024-03-05T05:22:41+00:00"),
    ("2024.03.05 14:22", "2024-03-05T05:22:00+00:00"),
    ("2004-05-25 오후 11:23:17", "2004-05-25T14:23:17+00:00"),
    ("Tue, 05 Mar 2024 14:22:41 KST", "2024-03-05T05:22:41+00:00"),
    ("2024-03-05 14:22:41", "2024-03-05T05:22:41+00:00"),
    ("Tue, 05 Mar 2024 05:22:41 GMT", "2024-03-05T05:22:41+00:00"),
    ("2024-03-05T14:22:41+09:00", "2024-03-05T05:22:41+00:00"),
    ("어제 오후", None),  # unreadable: no date, never an invented one
    ("2999-01-01 00:00:00", None),  # in the future: refused
])
def test_korean_feed_dates_read_in_kst_never_invented(pub_date: str, expected: str | None
                                                       ) -> None:
    body = (f'<rss version="2.0"><channel><title>t</title><item><title>x</title>'
            f"<link>https://news.example.kr/a/1</link><pubDate>{pub_date}</pubDate>"
            "</item></channel></rss>").encode()
    published = parse_feed(body, url="https://news.example.kr/rss").entries[0].published
    assert (published.isoformat() if published else None) == expected
