"""Unit tests for sokbo_parser.article: canonical URLs and assembling ArticleParsed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from sokbo.messages import ArticleParsed, PageFetched, article_id_for
from sokbo_parser.article import build_article, canonical_url
from sokbo_parser.decode import DecodedPage
from sokbo_parser.extract import ExtractedArticle

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
        ("https://news.example.kr/a/1?b=2&a=1", "https://news.example.kr/a/1?b=2&a=1"),
        ("https://news.example.kr/a/1?idxno=1&utm_source=rss",
         "https://news.example.kr/a/1?idxno=1&utm_source=rss"),
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
    page, extracted = _page(), _extracted()
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


# --- build_article: fallbacks to the feed entry ------------------------------------------


def test_title_falls_back_to_the_feed_entry() -> None:
    article = _build(extracted=_extracted(title=""))
    assert article.title == "피드 제목"


def test_title_empty_when_neither_gives_one() -> None:
    article = _build(page=_page(entry_title=None), extracted=_extracted(title=""))
    assert article.title == ""


def test_published_falls_back_to_the_feed_entry() -> None:
    article = _build(extracted=_extracted(published_at=None))
    assert article.published_at == T0 - timedelta(hours=1)


def test_published_none_when_neither_gives_one() -> None:
    article = _build(page=_page(entry_published=None), extracted=_extracted(published_at=None))
    assert article.published_at is None


def test_extracted_values_win_over_the_feed_entry() -> None:
    extracted = _extracted(title="본문 제목", published_at=T0 - timedelta(minutes=2))
    article = _build(extracted=extracted)
    assert article.title == "본문 제목"
    assert article.published_at == T0 - timedelta(minutes=2)


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
    assert _build(extracted=_extracted(**change)).content_hash != _build().content_hash


def test_content_hash_independent_of_url_and_source() -> None:
    other = _build(page=_page(source_id="other", final_url="https://b.example.kr/x"))
    assert other.content_hash == _build().content_hash
    assert other.article_id != _build().article_id
