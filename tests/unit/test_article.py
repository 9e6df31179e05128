"""Unit tests for sokbo_parser.article: canonical URLs, assembling ArticleParsed, parse_page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from sokbo.errors import PermanentError
from sokbo.messages import ArticleParsed, PageFetched, article_id_for
from sokbo_parser.article import build_article, canonical_url, parse_page
from sokbo_parser.decode import DecodedPage
from sokbo_parser.extract import ExtractedArticle
from sokbo_parser.urls import TRACKING_PARAMETERS, same_site, site_of

T0 = datetime(2025, 5, 27, 15, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=3)
URL = "https://www.fetv.co.kr/news/articleView.html?idxno=170123"


def _page(**overrides: object) -> PageFetched:
    fields: dict[str, object] = {
        "source_id": "fetv", "source_title": "FETV", "url": URL, "final_url": URL,
        "status": 200, "content_type": "text/html; charset=utf-8", "charset": "utf-8",
        "body": b"<html>...</html>", "entry_title": "피드 제목",
        "entry_published": T0 - timedelta(hours=1),
        "discovered_at": T0, "fetched_at": T0 + timedelta(seconds=1),
    }
    fields.update(overrides)
    return PageFetched(**fields)


def _decoded(encoding: str = "utf-8") -> DecodedPage:
    return DecodedPage(text="<html>...</html>", encoding=encoding, source="http")


def _extracted(**overrides: object) -> ExtractedArticle:
    fields: dict[str, object] = {
        "title": "'OpenAI 코리아' 공식 출범", "text": "오픈AI가 한국 법인을 세웠다.",
        "authors": ["홍길동 기자"], "published_at": T0 - timedelta(minutes=30),
        "language": "ko", "canonical_url": None, "site_name": "FETV 파이낸셜경제TV",
        "author_emails": ["hong@fetv.co.kr"], "published_from": "metadata",
    }
    fields.update(overrides)
    return ExtractedArticle(**fields)


def _build(page: PageFetched | None = None, extracted: ExtractedArticle | None = None,
           decoded: DecodedPage | None = None) -> ArticleParsed:
    return build_article(page or _page(), decoded or _decoded(), extracted or _extracted(),
                         now=NOW)


# --- canonical_url -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://News.Example.KR/a/1", "https://news.example.kr/a/1"),
        ("HTTPS://WWW.FETV.CO.KR/news/articleView.html?idxno=1",
         "https://www.fetv.co.kr/news/articleView.html?idxno=1"),
        ("https://news.example.kr/a/1#comments", "https://news.example.kr/a/1"),
        ("https://news.example.kr/a/1?x=1#", "https://news.example.kr/a/1?x=1"),
        ("https://news.example.kr:443/a/1", "https://news.example.kr/a/1"),
        ("http://news.example.kr:80/a/1", "http://news.example.kr/a/1"),
        ("http://news.example.kr:8080/a/1", "http://news.example.kr:8080/a/1"),
        ("https://news.example.kr:80/a/1", "https://news.example.kr:80/a/1"),
        ("http://news.example.kr:443/a/1", "http://news.example.kr:443/a/1"),
        ("https://news.example.kr/a/1?b=2&a=1", "https://news.example.kr/a/1?a=1&b=2"),
        ("https://news.example.kr/a/1?idxno=1&utm_source=rss",
         "https://news.example.kr/a/1?idxno=1"),
        ("https://news.example.kr/News/Read/A2025", "https://news.example.kr/News/Read/A2025"),
        ("https://news.example.kr", "https://news.example.kr/"),
        ("https://news.example.kr?x=1", "https://news.example.kr/?x=1"),
        ("  https://news.example.kr/a/1 \n", "https://news.example.kr/a/1"),
        ("http://127.0.0.1:8123/news/a.html", "http://127.0.0.1:8123/news/a.html"),
        ("http://[::1]:8080/news/a.html", "http://[::1]:8080/news/a.html"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize("name", sorted(TRACKING_PARAMETERS) + ["utm_source", "UTM_Campaign"])
def test_tracking_parameters_are_dropped(name: str) -> None:
    url = f"https://news.example.kr/news/articleView.html?idxno=123&{name}=rss"
    assert canonical_url(url) == "https://news.example.kr/news/articleView.html?idxno=123"


@pytest.mark.parametrize(
    ("url", "expected"),
    [  # parameters that identify the document are kept, the rest sorted by name
        ("https://news.example.kr/news/articleView.html?no=7&id=3",
         "https://news.example.kr/news/articleView.html?id=3&no=7"),
        ("https://n.news.naver.com/mnews/article/018/0005316196?sid=100&ref=naver",
         "https://n.news.naver.com/mnews/article/018/0005316196?sid=100"),
        ("https://news.naver.com/main/read.naver?oid=081&aid=0003219994&mode=LSD",
         "https://news.naver.com/main/read.naver?aid=0003219994&mode=LSD&oid=081"),
        ("https://news.example.kr/a?q=%ED%95%9C+%EA%B8%80&utm_source=x",
         "https://news.example.kr/a?q=%ED%95%9C+%EA%B8%80"),  # encoding kept as sent
        ("https://news.example.kr/a?x=2&x=1&&utm_medium=feed", "https://news.example.kr/a?x=2&x=1"),
    ],
)
def test_document_parameters_are_kept_in_a_stable_order(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


ARTICLE = "https://www.fetv.co.kr/news/articleView.html?idxno=170123"


@pytest.mark.parametrize(
    "variant",
    [
        "https://m.fetv.co.kr/news/articleView.html?idxno=170123",
        "https://mobile.fetv.co.kr/news/articleView.html?idxno=170123",
        "https://amp.fetv.co.kr/news/articleView.html?idxno=170123",
        "https://www.fetv.co.kr/news/articleView.html?idxno=170123&amp=1",
        "https://www.fetv.co.kr/news/articleView.html?outputType=amp&idxno=170123",
        "https://m.fetv.co.kr/amp/news/articleView.html?idxno=170123&utm_source=naver",
        "https://www.fetv.co.kr/news/articleView.html/amp?idxno=170123",
    ],
)
def test_amp_and_mobile_variants_share_the_canonical_url(variant: str) -> None:
    assert canonical_url(variant) == ARTICLE
    assert _build(page=_page(final_url=variant)).article_id == article_id_for(ARTICLE)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://m.news.naver.com/mnews/article/018/1", "https://news.naver.com/mnews/article/018/1"),
        ("https://news.example.kr/article/123/amp", "https://news.example.kr/article/123"),
        ("https://news.example.kr/amp/article/123", "https://news.example.kr/article/123"),
        ("https://techcrunch.com/2024/04/28/slug/amp/", "https://techcrunch.com/2024/04/28/slug/"),
        ("https://m.example/a", "https://m.example/a"),  # no public suffix: left alone
        ("http://m.localhost:8000/a", "http://m.localhost:8000/a"),
        ("https://news.example.kr/a?amp=0", "https://news.example.kr/a?amp=0"),
    ],
)
def test_mobile_host_and_amp_path_rules(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("url", "other", "same"),
    [
        ("https://m.news.example.kr/a", "https://www.example.kr/b", True),
        ("https://n.news.naver.com/a", "https://news.naver.com/b", True),
        ("https://www.mk.co.kr/a", "https://www.fetv.co.kr/a", False),  # co.kr is a suffix
        ("https://a.github.io/x", "https://b.github.io/x", False),  # so is github.io
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:9090/b", True),
        ("http://127.0.0.1/a", "http://127.0.0.2/a", False),
        ("/news/a.html", "https://news.example.kr/a", False),
        (None, "https://news.example.kr/a", False),
    ],
)
def test_same_site_compares_registrable_domains(url: str | None, other: str, same: bool) -> None:
    assert same_site(url, other) is same


def test_site_of() -> None:
    assert site_of("https://m.news.example.kr/a") == "example.kr"
    assert site_of("http://localhost:8000/") == "localhost"
    assert site_of("/relative") is None


@pytest.mark.parametrize(
    "url",
    ["https://news.example.kr/a/1?x=1", "http://news.example.kr:8080/a",
     "https://news.example.kr/"],
)
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


# --- build_article: fields ---------------------------------------------------------------


def test_build_article_takes_extracted_fields() -> None:
    page, extracted = _page(entry_title=None), _extracted()
    article = build_article(page, _decoded("cp949"), extracted, now=NOW)
    assert isinstance(article, ArticleParsed)
    assert article.url == URL
    assert article.canonical_url == canonical_url(URL)
    assert article.article_id == article_id_for(canonical_url(URL))
    assert article.source_id == "fetv"
    assert article.source_title == "FETV"
    assert article.title == extracted.title
    assert article.text == extracted.text
    assert article.authors == ["홍길동 기자"]
    assert article.author_emails == ["hong@fetv.co.kr"]
    assert article.language == "ko"
    assert article.published_at == extracted.published_at
    assert article.encoding == "cp949"
    assert re.fullmatch(r"[0-9a-f]{64}", article.content_hash)


def test_build_article_keeps_the_timestamps() -> None:
    article = _build()
    assert article.discovered_at == T0
    assert article.fetched_at == T0 + timedelta(seconds=1)
    assert article.parsed_at == NOW


def test_source_title_falls_back_to_site_name() -> None:
    article = _build(page=_page(source_title=None))
    assert article.source_title == "FETV 파이낸셜경제TV"


# --- build_article: the feed entry's hints ----------------------------------------------


def test_title_falls_back_to_the_feed_entry() -> None:
    article = _build(extracted=_extracted(title=""))
    assert article.title == "피드 제목"


def test_title_empty_when_neither_gives_one() -> None:
    article = _build(page=_page(entry_title=None), extracted=_extracted(title=""))
    assert article.title == ""


def test_feed_entry_title_wins_over_the_page_title() -> None:
    """B12: when the page came from a feed, the feed item's title is the title."""
    article = _build(extracted=_extracted(title="본문 제목"))
    assert article.title == "피드 제목"


@pytest.mark.parametrize(
    ("entry_title", "source_title", "expected"),
    [
        ("반도체 수출 지원책 발표 - FETV 파이낸셜경제TV", None, "반도체 수출 지원책 발표"),
        ("반도체 수출 지원책 발표 | 예시일보", "예시일보", "반도체 수출 지원책 발표"),
        ("  반도체\u00a0수출\u200b 지원책 발표\n", None, "반도체 수출 지원책 발표"),
        ("예시일보", "예시일보", "'OpenAI 코리아' 공식 출범"),  # only the outlet: page title
        ("", None, "'OpenAI 코리아' 공식 출범"),
    ],
)
def test_feed_entry_title_is_cleaned(entry_title: str, source_title: str | None,
                                     expected: str) -> None:
    article = _build(page=_page(entry_title=entry_title, source_title=source_title))
    assert article.title == expected


def test_published_falls_back_to_the_feed_entry() -> None:
    article = _build(extracted=_extracted(published_at=None, published_from=None))
    assert article.published_at == T0 - timedelta(hours=1)


def test_published_none_when_neither_gives_one() -> None:
    article = _build(page=_page(entry_published=None),
                     extracted=_extracted(published_at=None, published_from=None))
    assert article.published_at is None


def test_page_metadata_date_wins_over_the_feed_entry() -> None:
    extracted = _extracted(published_at=T0 - timedelta(minutes=2), published_from="metadata")
    assert _build(extracted=extracted).published_at == T0 - timedelta(minutes=2)


def test_feed_entry_date_wins_over_a_date_guessed_from_the_text() -> None:
    extracted = _extracted(published_at=T0 - timedelta(days=3), published_from="text")
    assert _build(extracted=extracted).published_at == T0 - timedelta(hours=1)


def test_text_date_used_without_metadata_or_feed_entry() -> None:
    extracted = _extracted(published_at=T0 - timedelta(days=3), published_from="text")
    article = _build(page=_page(entry_published=None), extracted=extracted)
    assert article.published_at == T0 - timedelta(days=3)


@pytest.mark.parametrize(
    ("ahead", "kept"),
    [(timedelta(minutes=9), True), (timedelta(minutes=11), False), (timedelta(days=400), False)],
)
def test_dates_after_the_fetch_are_rejected(ahead: timedelta, kept: bool) -> None:
    fetched = T0 + timedelta(seconds=1)
    future = fetched + ahead
    metadata = _build(page=_page(entry_published=None),
                      extracted=_extracted(published_at=future, published_from="metadata"))
    entry = _build(page=_page(entry_published=future),
                   extracted=_extracted(published_at=None, published_from=None))
    assert metadata.published_at == (future if kept else None)
    assert entry.published_at == (future if kept else None)


def test_a_future_metadata_date_falls_back_to_the_feed_entry() -> None:
    extracted = _extracted(published_at=T0 + timedelta(days=1), published_from="metadata")
    assert _build(extracted=extracted).published_at == T0 - timedelta(hours=1)


# --- build_article: identity -------------------------------------------------------------


@pytest.mark.parametrize(
    "final_url",
    [URL, URL + "#comment", "https://WWW.FETV.CO.KR/news/articleView.html?idxno=170123",
     "https://www.fetv.co.kr:443/news/articleView.html?idxno=170123"],
)
def test_article_id_stable_for_the_same_canonical_url(final_url: str) -> None:
    article = _build(page=_page(final_url=final_url))
    assert article.article_id == article_id_for(URL)
    assert article.canonical_url == URL


@pytest.mark.parametrize(
    "final_url",
    ["https://m.fetv.co.kr/news/articleView.html?idxno=170123",
     "https://www.fetv.co.kr/news/articleView.html?idxno=170123&utm_source=naver",
     "https://www.fetv.co.kr/news/redirect/170123"],
)
def test_link_rel_canonical_is_used(final_url: str) -> None:
    article = _build(page=_page(url=final_url, final_url=final_url),
                     extracted=_extracted(canonical_url=URL + "#top"))
    assert article.canonical_url == URL
    assert article.article_id == article_id_for(URL)
    assert article.url == final_url


def test_cross_site_canonical_link_is_ignored() -> None:
    """A syndicated copy naming the original outlet keeps its own identity."""
    page = _page(final_url=URL + "&utm_source=rss")
    article = _build(page=page, extracted=_extracted(
        canonical_url="https://www.other-outlet.co.kr/news/articleView.html?idxno=5"))
    assert article.canonical_url == URL
    assert article.article_id == article_id_for(URL)


def test_final_url_used_without_a_canonical_link() -> None:
    redirected = "https://www.fetv.co.kr/news/articleView.html?idxno=999"
    article = _build(page=_page(final_url=redirected), extracted=_extracted(canonical_url=None))
    assert article.canonical_url == redirected
    assert article.article_id == article_id_for(redirected)
    assert article.url == URL


def test_different_articles_have_different_ids() -> None:
    first = _build(page=_page(final_url=URL))
    second = _build(page=_page(final_url=URL.replace("170123", "170124")))
    assert first.article_id != second.article_id


# --- build_article: content hash ---------------------------------------------------------


def test_content_hash_stable_for_the_same_content() -> None:
    first = _build()
    later = build_article(_page(fetched_at=T0 + timedelta(hours=1)), _decoded("cp949"),
                          _extracted(), now=NOW + timedelta(hours=1))
    assert first.content_hash == later.content_hash


@pytest.mark.parametrize(
    "change",
    [{"text": "오픈AI가 한국 법인을 세웠다. (수정)"}, {"text": ""},
     {"text": "오픈AI가 한국 법인을 세웠다"}, {"title": "'OpenAI 코리아' 공식 출범 [종합]"}],
)
def test_content_hash_changes_with_the_content(change: dict[str, str]) -> None:
    page = _page(entry_title=None)
    assert _build(page, _extracted(**change)).content_hash != _build(page).content_hash


def test_content_hash_independent_of_url_and_source() -> None:
    other = _build(page=_page(source_id="other", final_url="https://b.example.kr/x"))
    assert other.content_hash == _build().content_hash
    assert other.article_id != _build().article_id


# --- parse_page: pages that hold no article ------------------------------------------------

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


@pytest.mark.parametrize(
    ("body", "charset", "reason"),
    [
        (b"", None, r"^empty body: https://www\.fetv\.co\.kr/\S+ returned no content$"),
        (b" \r\n\t ", "utf-8", r"^empty body: "),
        (PNG, None, r"^not HTML: https://www\.fetv\.co\.kr/\S+ returned a PNG image$"),
        (PNG, "utf-8", r"^not HTML: .* returned a PNG image$"),  # whatever the header says
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None, r"returned a JPEG image$"),
        (b"%PDF-1.7\n%\xe2\xe3", None, r"returned a PDF document$"),
        (b"\x1f\x8b\x08\x00" + bytes(20), None, r"returned gzip data$"),
        (bytes(range(32)) * 20, None, r"returned binary data$"),
        (b"<html><body><nav><a href='/'>\xed\x99\x88</a></nav></body></html>", "utf-8",
         r"^no article text found in https://www\.fetv\.co\.kr/"),
        (b"<<<>>><html<<body>>>>< p>>>>", None, r"^no article text found in .*only '<<<"),
        (b"<html><body>" + b"<div>" * 100_000 + b"</body>", None, r"^no article text found"),
        (b"<!-- an unclosed comment " + b"x" * 200, None, r"^no article text found: .* not HTML$"),
    ],
    ids=["empty", "whitespace", "png", "png-labelled-utf8", "jpeg", "pdf", "gzip", "controls",
         "navigation-only", "malformed-markup", "deeply-nested", "unclosed-comment"],
)
def test_pages_without_an_article_are_permanent_errors(body: bytes, charset: str | None,
                                                       reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        parse_page(_page(body=body, charset=charset), now=NOW)


SENTENCES = "<p>정부가 반도체 수출 지원책을 발표했다. 산업부는 세부 방안을 공개했다.</p>" * 3


def test_utf16_page_is_not_taken_for_binary() -> None:
    html = ("<html><head><title>반도체 수출 지원책 발표</title></head><body><article>"
            + SENTENCES + "</article></body></html>")
    article, decoded, _ = parse_page(_page(body=html.encode("utf-16-le"), charset="utf-16le",
                                           entry_title=None), now=NOW)
    assert decoded.encoding == "utf-16-le"
    assert article.title == "반도체 수출 지원책 발표"


def test_parse_page_encoding_override() -> None:
    html = ('<html><head><meta charset="utf-8"><title>t</title></head><body><article>'
            + SENTENCES + "</article></body></html>")
    article, decoded, _ = parse_page(_page(body=html.encode("cp949"), charset="utf-8"),
                                     now=NOW, encoding="euc-kr")
    assert (decoded.encoding, decoded.source) == ("cp949", "override")
    assert "정부가 반도체 수출 지원책을 발표했다." in article.text
