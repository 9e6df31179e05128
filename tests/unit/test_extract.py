"""Unit tests for sokbo_parser.extract on the real corpus, the seed page and the demo pages."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sokbo.errors import PermanentError
from sokbo_parser.decode import decode_html
from sokbo_parser.extract import ExtractedArticle, extract_article, guess_language

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CORPUS = FIXTURES / "corpus"
PAGES = FIXTURES / "pages"
#: Lines a page may put above its first sentence: subheading bullets, a summary,
#: a photo caption or a byline (see the MANIFEST boilerplate notes).
LEAD_LINES = 6
COPYRIGHT_MARKS = ["Copyright", "All rights reserved", "무단전재", "무단 전재", "재배포 금지", "ⓒ"]


def _load(path: Path, url: str | None = None) -> ExtractedArticle:
    return extract_article(decode_html(path.read_bytes()).text, url)


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _articles() -> list[tuple[str, dict[str, str]]]:
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [(row["file"], json.loads(row["expected"]))
            for row in rows if row["kind"] == "article" and row["expected"]]


ARTICLES = _articles()
ARTICLE_IDS = [Path(name).stem for name, _ in ARTICLES]


@pytest.fixture(scope="module")
def extracted() -> dict[str, ExtractedArticle]:
    """Every corpus article and demo page, extracted once."""
    pages = {name: _load(CORPUS / name) for name, _ in ARTICLES}
    pages.update({path.name: _load(path) for path in PAGES.glob("*.html")})
    return pages


# --- the corpus ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), ARTICLES, ids=ARTICLE_IDS)
def test_corpus_title_is_the_headline_without_site_suffix(
    extracted: dict[str, ExtractedArticle], name: str, expected: dict[str, str]
) -> None:
    # Whitespace is compared collapsed: the Japanese titles use U+3000 in the page.
    assert _one_line(extracted[name].title) == _one_line(expected["title"])


@pytest.mark.parametrize(("name", "expected"), ARTICLES, ids=ARTICLE_IDS)
def test_corpus_text_opens_with_the_first_sentence(
    extracted: dict[str, ExtractedArticle], name: str, expected: dict[str, str]
) -> None:
    lines = extracted[name].text.splitlines()
    first = expected["first_sentence"]
    at = next((i for i, line in enumerate(lines) if first in line), None)
    assert at is not None and at < LEAD_LINES, lines[:LEAD_LINES]
    assert all(len(line) <= 120 for line in lines[:at]), "a body paragraph precedes it"


@pytest.mark.parametrize(("name", "expected"), ARTICLES, ids=ARTICLE_IDS)
def test_corpus_text_has_no_copyright_lines(
    extracted: dict[str, ExtractedArticle], name: str, expected: dict[str, str]
) -> None:
    text = extracted[name].text
    assert not [mark for mark in COPYRIGHT_MARKS if mark in text]


@pytest.mark.parametrize("name", [n for n, _ in ARTICLES if "/mk-" in n])
def test_mk_ai_summary_widget_is_not_text(
    extracted: dict[str, ExtractedArticle], name: str
) -> None:
    assert "AI 요약은 OpenAI의 최신 기술을 활용해" not in extracted[name].text
    assert "OpenAI" not in extracted[name].text


@pytest.mark.parametrize(
    ("name", "authors"),
    [
        ("html/naver-edaily-lee-junseok-injunction-2022.html", ["조민정"]),
        ("html/hankookilbo-democratic-party-preference-voting-2026.html", ["박준석", "김태연"]),
        ("html/hankookilbo-lee-jaemyung-honam-unity-2025.html", ["구현모"]),
        ("html/mk-lee-jaemyung-profile-election-2025.html",
         ["배윤경", "이상현", "한수진", "김혜진"]),
        ("html/naver-seoulshinmun-gopchang-2021-euckr.html", []),  # only "서울신문; 네이버"
        ("html/techcrunch-rpa-vs-ai-agents-2024-en.html", ["Kyle Wiggers"]),
    ],
)
def test_corpus_authors_are_people_not_outlets(
    extracted: dict[str, ExtractedArticle], name: str, authors: list[str]
) -> None:
    assert extracted[name].authors == authors


@pytest.mark.parametrize(
    ("name", "published_at"),
    [
        ("html/hankookilbo-lee-jaemyung-honam-unity-2025.html", "2025-05-15T11:00:52"),
        ("html/techcrunch-rpa-vs-ai-agents-2024-en.html", "2024-04-28T13:30:00"),  # not URL date
        ("html/naver-edaily-lee-junseok-injunction-2022.html", "2022-09-14T07:04:00"),  # 입력 stamp
        ("html/naver-seoulshinmun-gopchang-2021-euckr.html", "2021-10-04T07:26:00"),  # 오후 4:26
        ("html/nikkei-us-north-korea-hotline-2018-ja.html", "2018-06-18T20:50:00"),  # naive +09:00
    ],
)
def test_corpus_published_at_is_utc(
    extracted: dict[str, ExtractedArticle], name: str, published_at: str
) -> None:
    assert extracted[name].published_at == datetime.fromisoformat(published_at).replace(tzinfo=UTC)


@pytest.mark.parametrize(("name", "expected"), ARTICLES, ids=ARTICLE_IDS)
def test_corpus_language(
    extracted: dict[str, ExtractedArticle], name: str, expected: dict[str, str]
) -> None:
    language = "ja" if name.endswith("-ja.html") else "en" if name.endswith("-en.html") else "ko"
    assert extracted[name].language == language


# --- the seed page (FETV, 2025-09-10) -----------------------------------------------

SEED_EXCLUDED = [
    "기상청", "℃", "맑음서울", "2025.09.10 (수)",  # weather widget
    "건설·부동산", "제약·바이오", "로그인", "회원가입",  # GNB and top bar
    "관련기사", "정부, 소버린AI 예산 두 배로", "카카오, 대화형 AI 서비스 연내 출시 예고",
    "SKT, 데이터센터 전력 효율화 기술 공개", "LG전자, 생성형 AI로 R&D 업무 시간 단축",
    "국내 AI 반도체 스타트업, 시리즈B 투자 유치",
    "많이 본 뉴스", "네이버, 소버린 클라우드 확대", "은행권, 하반기 가계대출 관리 강화",
    "건설업계, 추석 앞두고 협력사 대금 조기 지급", "제약바이오, 기술수출 계약 잇따라",
    "유통가, 추석 선물세트 사전 예약 경쟁",
    "Copyright", "All rights reserved", "무단전재", "재배포 금지", "영등포구", "shin@fetv.co.kr",
]


@pytest.fixture(scope="module")
def seed(extracted: dict[str, ExtractedArticle]) -> ExtractedArticle:
    return extracted["fetv-openai-korea.html"]


def test_seed_metadata(seed: ExtractedArticle) -> None:
    assert seed.title == "[현장] 제이슨 권 오픈AI CSO “한국은 상위권 AI 시장, 다양한 파트너십 검토”"
    assert seed.authors == ["신동현"]
    assert seed.published_at == datetime(2025, 9, 10, 5, 30, tzinfo=UTC)
    assert seed.published_at.utcoffset() is not None
    assert (seed.language, seed.site_name) == ("ko", "FETV")
    assert seed.canonical_url == "https://www.fetv.co.kr/news/article.html?no=190000"


def test_seed_text_keeps_the_keywords(seed: ExtractedArticle) -> None:
    assert "'OpenAI 코리아'의 출범" in seed.text
    assert "소버린AI(자국형 AI)" in seed.text


def test_seed_text_has_every_paragraph_the_reader_saw() -> None:
    article = _load(PAGES / "fetv-openai-korea.html")
    seed_text = (FIXTURES / "seed-fetv.txt").read_text(encoding="utf-8")
    body = seed_text[seed_text.index("ChatGPT 시장서"):]
    paragraphs = [_one_line(line) for line in body.splitlines() if line.strip()]
    assert paragraphs == article.text.splitlines()  # NBSPs inside paragraphs become spaces


@pytest.mark.parametrize("excluded", SEED_EXCLUDED)
def test_seed_text_has_no_boilerplate(seed: ExtractedArticle, excluded: str) -> None:
    assert excluded not in seed.text


# --- the demo pages -----------------------------------------------------------------

DEMO = {
    "sovereign-ai-euckr.html": {
        "title": "정부, 소버린 AI 전략 발표…국산 모델 키운다",
        "first": "(세종=한글신문) 김서연 기자 = 정부가 국산 인공지능(AI) 모델과 인프라를 키우는 "
                 "'소버린 AI' 전략을 12일 발표했다.",
        "keywords": ["소버린 AI", "\"소버린 AI는 구호가 아니라"],
        "excluded": ["OpenAI 코리아, 국내 첫 파트너 공개", "오픈AI 코리아 사무실 가보니",
                     "관련기사"],
        "authors": ["김서연"], "published_at": datetime(2025, 9, 11, 23, 0, tzinfo=UTC),
    },
    "lookalike.html": {
        "title": "코리아 클라우드 서밋 개막…소버린 클라우드 논의",
        "first": "[데모일보 박지훈 기자] 국내 최대 클라우드 행사인 '코리아 클라우드 서밋 2025'가",
        "keywords": ["OpenAI 등 해외 모델", "'코리아 클라우드 서밋 2025'", "소버린 클라우드"],
        "excluded": ["OpenAI 코리아", "오픈AI 코리아", "소버린AI", "소버린 AI"],
        "authors": ["박지훈"], "published_at": datetime(2025, 9, 11, 1, 0, tzinfo=UTC),
    },
    "openai-korea-particle.html": {
        "title": "'OpenAI 코리아'의 첫 파트너는 누구",
        "first": "오픈AI의 한국 법인 'OpenAI 코리아'의 첫 공식 파트너가 누가 될지를 두고",
        "keywords": ["'OpenAI 코리아'의 첫 공식 파트너", "'OpenAI 코리아'는"],
        "excluded": ["정부, 소버린AI 예산 두 배로", "네이버, 소버린 클라우드 확대", "많이 본 뉴스"],
        "authors": ["이수민"], "published_at": datetime(2025, 9, 11, 0, 10, tzinfo=UTC),
    },
}


@pytest.mark.parametrize("name", sorted(DEMO))
def test_demo_page(extracted: dict[str, ExtractedArticle], name: str) -> None:
    article, expected = extracted[name], DEMO[name]
    lines = article.text.splitlines()
    assert article.title == expected["title"]
    assert any(line.startswith(expected["first"]) for line in lines[:LEAD_LINES])
    assert all(keyword in article.text for keyword in expected["keywords"])
    assert not [text for text in expected["excluded"] if text in article.text]
    assert not [mark for mark in COPYRIGHT_MARKS if mark in article.text]
    assert article.authors == expected["authors"]
    assert article.published_at == expected["published_at"]


def test_demo_pages_are_identical_to_the_fixtures() -> None:
    site = FIXTURES.parents[1] / "config" / "demo" / "site" / "news"
    for page in PAGES.glob("*.html"):
        assert (site / page.name).read_bytes() == page.read_bytes(), page.name


def test_euc_kr_demo_page_is_cp949_bytes() -> None:
    page = decode_html((PAGES / "sovereign-ai-euckr.html").read_bytes())
    assert (page.encoding, page.source) == ("cp949", "meta")


def test_relative_canonical_link_resolves_against_the_fetch_url() -> None:
    url = "http://127.0.0.1:8080/news/lookalike.html?utm_source=rss"
    assert _load(PAGES / "lookalike.html", url).canonical_url == "http://127.0.0.1:8080/news/lookalike.html"
    assert _load(PAGES / "lookalike.html").canonical_url is None


# --- titles, lists and empty pages (trafilatura #71, #584) ---------------------------

BODY = "".join(
    f"<p>정부가 반도체 수출 지원책을 발표했다. 산업통상자원부는 {day}일 세부 방안을 공개했다.</p>"
    for day in range(1, 7)
)


def _html(head: str, body: str = f"<article>{BODY}</article>") -> str:
    return f"<html><head>{head}</head><body>{body}</body></html>"


@pytest.mark.parametrize(
    ("head", "header"),
    [
        ("<title>반도체 수출 지원책 발표 - 예시일보</title>", "<h1 class='logo'>예시일보</h1>"),
        ("<title>반도체 수출 지원책 발표 - 예시일보</title>"
         "<meta property='og:title' content='반도체 수출 지원책 발표 | 예시일보'>",
         "<h1 class='logo'>예시일보</h1>"),
        ("<title>반도체 수출 지원책 발표 | 한국일보</title>"
         "<meta property='og:site_name' content='한국일보'>", ""),
        ("<title>반도체 수출 지원책 발표-경제ㅣ한국일보</title>"
         "<meta property='og:site_name' content='한국일보'>", ""),
        ("<title>반도체 수출 지원책 발표 : 네이버 뉴스</title>"
         "<meta property='og:site_name' content='네이버 뉴스'>", ""),
        ("<title>반도체 수출 지원책 발표 (사진=연합뉴스)</title>", ""),
    ],
)
def test_title_drops_the_site_name(head: str, header: str) -> None:
    page = _html(head, f"<header>{header}</header><article>{BODY}</article>")
    article = extract_article(page)
    assert article.title == "반도체 수출 지원책 발표"


def test_title_keeps_dashes_that_are_not_a_site_suffix() -> None:
    head = ("<title>K-반도체 - 수출 회복 신호</title>"
            "<meta property='og:site_name' content='예시일보'>")
    assert extract_article(_html(head)).title == "K-반도체 - 수출 회복 신호"


def test_related_articles_and_comments_are_not_text() -> None:
    related = ("<p><b>함께 보면 좋은 기사</b></p>"
               "<p><a href='/a/1'>OpenAI 코리아, 국내 파트너십 확대</a></p>"
               "<p><a href='/a/2'>소버린AI 예산 논란 계속</a></p>"
               "<details class='comments'><p>소버린AI 얘기는 왜 없나요</p></details>")
    article = extract_article(_html("<title>반도체 수출 - 예시일보</title>",
                                    f"<article><h1>반도체 수출</h1>{BODY}{related}</article>"))
    assert len(article.text.splitlines()) == 6
    assert "함께 보면" not in article.text
    assert "OpenAI" not in article.text and "소버린" not in article.text


@pytest.mark.parametrize(
    "page", ["", "   ", "\x00\x01binary", "<html><body><nav><a href='/'>홈</a></nav></body></html>"]
)
def test_pages_without_article_text_are_permanent_errors(page: str) -> None:
    with pytest.raises(PermanentError, match="no article text found"):
        extract_article(page, "https://news.example.kr/a/1")


PIECES = st.sampled_from([
    "<html>", "<head>", "<title>", "</title>", "<body>", "<p>", "</p>", "<h1>", "<article>",
    "<meta property='og:title' content='제목 - 예시일보'>", "<script>", "<!--", "&nbsp;",
    "[FETV=신동현 기자]", "입력 2025.13.45 오후 25:99", "ⓒ", "관련기사", "\x00",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES | st.text(max_size=40), max_size=50))
def test_any_text_gives_an_article_or_a_permanent_error(pieces: list[str]) -> None:
    try:
        article = extract_article("".join(pieces), "https://news.example.kr/a/1")
    except PermanentError:
        return
    assert article.text.strip()
    assert article.published_at is None or article.published_at.tzinfo is UTC


def test_xml_declaration_in_decoded_text_is_harmless() -> None:
    page = '<?xml version="1.0" encoding="euc-kr"?>' + _html("<title>반도체 - 예시일보</title>")
    assert "반도체 수출 지원책을 발표했다" in extract_article(page).text


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("오픈AI가 10일 서울에서 기자간담회를 열었다. OpenAI, ChatGPT, API, CSO", "ko"),
        ("気象庁は13日、震度5弱の地震があったと発表した。", "ja"),
        ("国家主席习近平今天在北京会见了来访的外国领导人。", "zh"),
        ("North Korea slammed the joint military drill.", "en"),
        ("2025 1234 ...", None),
    ],
)
def test_guess_language_by_script(text: str, language: str | None) -> None:
    assert guess_language(text) == language
