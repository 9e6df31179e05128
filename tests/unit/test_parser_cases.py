"""Regression tests for the parser cases of the bug-case list: B07, B09, B11, B12, B13.

Each case is a public bug report from a project that does sokbo's job, reproduced with
a small synthetic input (tests/fixtures/parser/) and run through the parser's public
entry points: ``parse_page`` (bytes in, ``ArticleParsed`` out), ``parse_korean_datetime``
and ``canonical_url``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sokbo.matching import match
from sokbo.messages import ArticleParsed, PageFetched, article_id_for
from sokbo_parser.article import canonical_url, parse_page
from sokbo_parser.decode import decode_html
from sokbo_parser.extract import parse_korean_datetime

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parser"
T0 = datetime(2024, 3, 5, 6, 0, tzinfo=UTC)
URL = "https://news.example.kr/article/20240305/123"
RULES = ['"OpenAI 코리아"', "소버린AI"]


def _parse(name: str, *, url: str = URL, charset: str | None = None,
           entry_title: str | None = None) -> ArticleParsed:
    page = PageFetched(source_id="example", url=url, final_url=url, status=200,
                       charset=charset, body=(FIXTURES / name).read_bytes(),
                       entry_title=entry_title, discovered_at=T0, fetched_at=T0)
    article = parse_page(page, now=T0 + timedelta(seconds=1)).article
    return article


# --- B07: encoding learnt from the wrong part of the page (trafilatura #541) ---------------

B07 = "b07-cp949-long-script-head.html"
B07_SENTENCES = [
    "오픈AI 코리아가 소버린AI 정책을 발표했다.",
    "OpenAI 코리아는 국내 기업과의 협력을 넓히겠다고 밝혔다.",
    "한 참석자는 똠방각하 같은 옛말까지 학습시켜야 한다며 웃었다.",  # 똠: CP949 only
    "햏자라는 신조어를 아는 모델이 있는지도 화제가 됐다.",  # 햏: CP949 only
    "다음 설명회는 다음 달 서울에서 열린다.",
]


def test_b07_fixture_is_what_the_case_describes() -> None:
    body = (FIXTURES / B07).read_bytes()
    meta = body.index(b'<meta charset="euc-kr">')
    assert meta > 20_000 and not any(byte > 0x7F for byte in body[:meta])  # ASCII head
    with pytest.raises(UnicodeDecodeError):
        body.decode("euc_kr")  # strict EUC-KR: the page needs windows-949


@pytest.mark.parametrize("charset", [None, "euc-kr", "ks_c_5601-1987", "utf-8"])
def test_b07_cp949_page_with_a_long_ascii_head_decodes(charset: str | None) -> None:
    """The meta tag after 20 KB of script is found; a wrong UTF-8 header loses to it."""
    decoded = decode_html((FIXTURES / B07).read_bytes(), charset)
    assert decoded.encoding == "cp949"
    assert decoded.source == ("http" if charset not in (None, "utf-8") else "meta")
    article = _parse(B07, charset=charset)
    assert article.encoding == "cp949"
    assert len(article.text.splitlines()) == 10
    assert [s for s in B07_SENTENCES if s in article.text] == B07_SENTENCES
    assert "\ufffd" not in article.text


@pytest.mark.parametrize("query", RULES + ['"오픈AI 코리아"'])
def test_b07_keywords_match_the_decoded_text(query: str) -> None:
    matched, hits = match(query, _parse(B07).text)
    assert matched
    assert hits[0].start == _parse(B07).text.index(query.strip('"'))


# --- B09: Korean date formats (feedparser #75) ----------------------------------------------


@pytest.mark.parametrize(
    ("pub_date", "expected"),
    [
        ("2024/03/05 14:22:41", "2024-03-05T05:22:41"),
        ("2024년 03월 05일 14:22:41", "2024-03-05T05:22:41"),
        ("2024.03.05 14:22", "2024-03-05T05:22:00"),
        ("2004-05-25 오후 11:23:17", "2004-05-25T14:23:17"),
        ("Tue, 05 Mar 2024 14:22:41 KST", "2024-03-05T05:22:41"),
        ("2024-03-05 14:22:41", "2024-03-05T05:22:41"),  # no zone: KST
    ],
)
def test_b09_korean_dates_parse_to_the_right_utc_time(pub_date: str, expected: str) -> None:
    parsed = parse_korean_datetime(pub_date)
    assert parsed is not None
    assert parsed.isoformat() == expected + "+00:00"
    assert parsed.utcoffset() == timedelta(0)


def test_b09_unparsable_or_future_dates_give_none() -> None:
    assert parse_korean_datetime("2024년 어느 날") is None
    assert parse_korean_datetime("Tue, 05 Mar 2024 14:22:41 XST") is None  # never "UTC"
    assert parse_korean_datetime("2024-03-05 15:20", now=T0) is None  # 06:20 UTC, T0 06:00
    assert parse_korean_datetime("2024-03-05 15:05", now=T0) == T0 + timedelta(minutes=5)


# --- B11: related articles and comments kept in the body (trafilatura #584) -----------------

B11_BODY = [
    "정부가 반도체 수출 지원책을 발표했다.",
    "산업통상자원부는 5일 세부 방안을 공개했다.",
    "수출 보험 한도는 30% 늘어난다.",
    "중소 협력사에는 저금리 대출이 지원된다.",
    "업계는 환영의 뜻을 밝혔다.",
    "정부는 다음 달 추가 대책을 내놓는다.",
]


def test_b11_text_holds_only_the_six_body_sentences() -> None:
    article = _parse("b11-related-and-comments.html")
    assert article.text.splitlines() == B11_BODY
    assert "함께 보면 좋은 기사" not in article.text
    assert "얘기는 왜 없나요" not in article.text


@pytest.mark.parametrize("query", RULES)
def test_b11_rules_do_not_fire_on_related_links_or_comments(query: str) -> None:
    article = _parse("b11-related-and-comments.html")
    assert match(query, article.text, title=article.title) == (False, [])


# --- B12: the site name as title, or a suffixed og:title (trafilatura #71) ------------------


@pytest.mark.parametrize("name", ["b12-a-logo-h1.html", "b12-b-og-title-suffix.html"])
def test_b12_title_is_the_headline(name: str) -> None:
    assert _parse(name).title == "반도체 수출 지원책 발표"


@pytest.mark.parametrize(
    ("entry_title", "expected"),
    [
        ("반도체 수출 지원책에 저금리 대출", "반도체 수출 지원책에 저금리 대출"),
        ("반도체 수출 지원책 발표 - 예시일보", "반도체 수출 지원책 발표"),
    ],
)
def test_b12_feed_entry_title_wins(entry_title: str, expected: str) -> None:
    assert _parse("b12-b-og-title-suffix.html", entry_title=entry_title).title == expected


# --- B13: tracking parameters make one article several (jfroelich/rss-reader #215) ----------

SAME = [
    "https://news.example.kr/article/20240305/123?utm_source=rss&utm_medium=feed&utm_campaign=x",
    "https://news.example.kr/article/20240305/123?ncid=rss",
    "https://news.example.kr/article/20240305/123#comments",
]


@pytest.mark.parametrize("url", SAME)
def test_b13_tracking_variants_share_one_canonical_url_and_id(url: str) -> None:
    assert canonical_url(url) == URL
    article = _parse("b12-a-logo-h1.html", url=url)
    assert (article.canonical_url, article.article_id) == (URL, article_id_for(URL))
    assert article.url == url


def test_b13_document_parameters_are_kept() -> None:
    idxno_123 = canonical_url("https://news.example.kr/news/articleView.html?idxno=123&ref=naver")
    idxno_124 = canonical_url("https://news.example.kr/news/articleView.html?idxno=124")
    assert idxno_123 == "https://news.example.kr/news/articleView.html?idxno=123"
    assert idxno_124 == "https://news.example.kr/news/articleView.html?idxno=124"
    assert article_id_for(idxno_123) != article_id_for(idxno_124)


def test_b13_same_site_canonical_link_overrides_the_url() -> None:
    canonical = '<link rel="canonical" href="https://www.example.kr/news/articleView.html?idxno=9">'
    html = (FIXTURES / "b12-a-logo-h1.html").read_text(encoding="utf-8")
    page = PageFetched(
        source_id="example", url=SAME[1], final_url=SAME[1], status=200,
        body=html.replace("</head>", canonical + "</head>").encode(), discovered_at=T0,
        fetched_at=T0)
    article = parse_page(page, now=T0).article
    assert article.canonical_url == "https://www.example.kr/news/articleView.html?idxno=9"
