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
from sokbo_parser.extract import (
    ExtractedArticle,
    clean_title,
    extract_article,
    guess_language,
    parse_korean_datetime,
)

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
    first = _one_line(expected["first_sentence"])
    at = next((i for i, line in enumerate(lines) if line.startswith(first)), None)
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
        # trafilatura's byline is only "서울신문; 네이버"; the reporter box names 김유민
        ("html/naver-seoulshinmun-gopchang-2021-euckr.html", ["김유민"]),
        ("html/yonhap-english-nk-slams-drill-2019-en.html", []),  # only an address
        ("html/techcrunch-rpa-vs-ai-agents-2024-en.html", ["Kyle Wiggers"]),
    ],
)
def test_corpus_authors_are_people_not_outlets(
    extracted: dict[str, ExtractedArticle], name: str, authors: list[str]
) -> None:
    assert extracted[name].authors == authors


@pytest.mark.parametrize(
    ("name", "emails"),
    [
        ("html/naver-edaily-lee-junseok-injunction-2022.html", ["jjung@edaily.co.kr"]),
        ("html/naver-seoulshinmun-gopchang-2021-euckr.html", ["planet@seoul.co.kr"]),
        ("html/hankookilbo-lee-jaemyung-honam-unity-2025.html", ["ninek@hankookilbo.com"]),
        ("html/mk-lee-jaemyung-profile-election-2025.html",
         ["bykj@mk.co.kr", "lee.sanghyun@mk.co.kr", "han.sujin@mk.co.kr", "heyjiny@mk.co.kr"]),
        ("html/yonhap-english-nk-slams-drill-2019-en.html", ["kokobj@yna.co.kr"]),
        ("html/techcrunch-rpa-vs-ai-agents-2024-en.html", []),
    ],
)
def test_corpus_author_emails_are_kept_apart(
    extracted: dict[str, ExtractedArticle], name: str, emails: list[str]
) -> None:
    assert extracted[name].author_emails == emails
    assert not [line for line in extracted[name].text.splitlines() if line in emails]


@pytest.mark.parametrize(
    ("name", "leftover"),
    [
        ("html/nikkei-us-north-korea-hotline-2018-ja.html", "この記事は会員限定です"),  # paywall
        ("html/yonhap-english-nk-slams-drill-2019-en.html", "(END)"),  # end-of-story mark
        ("html/hankookilbo-democratic-party-preference-voting-2026.html", "박준석 기자 외 1명"),
    ],
)
def test_corpus_text_has_no_paywall_end_mark_or_byline_line(
    extracted: dict[str, ExtractedArticle], name: str, leftover: str
) -> None:
    assert leftover not in extracted[name].text


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


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("html/hankookilbo-lee-jaemyung-honam-unity-2025.html", "metadata"),  # og + JSON-LD
        ("html/nikkei-us-north-korea-hotline-2018-ja.html", "metadata"),  # JSON-LD basic ISO
        ("html/naver-edaily-lee-junseok-injunction-2022.html", "text"),  # 입력 stamp
        ("html/naver-seoulshinmun-gopchang-2021-euckr.html", "text"),
    ],
)
def test_corpus_published_at_source(
    extracted: dict[str, ExtractedArticle], name: str, source: str
) -> None:
    assert extracted[name].published_from == source


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


# --- bylines: names and e-mail addresses kept apart ----------------------------------


@pytest.mark.parametrize(
    ("first", "last", "emails"),
    [
        ("", "<p>홍길동 기자</p>", []),
        ("[매체=홍길동 기자] ", "", []),
        ("[예시일보 홍길동 기자] ", "", []),
        ("(서울=예시통신) 홍길동 기자 = ", "", []),
        ("", "<p>홍길동 기자 (hong@example.kr)</p>", ["hong@example.kr"]),
        ("", "<p>홍길동 기자 hong@x.kr</p>", ["hong@x.kr"]),
        ("", "<p>홍길동 기자 &lt;Hong@Example.KR&gt;</p>", ["hong@example.kr"]),
        ("", "<p>홍길동(hong@example.kr)</p>", ["hong@example.kr"]),
        ("", "<p>홍길동 기자 외 1명</p>", []),
    ],
)
def test_korean_bylines(first: str, last: str, emails: list[str]) -> None:
    lead = f"<p>{first}정부가 반도체 수출 지원책을 발표했다.</p>"
    page = _html("<title>반도체 수출 - 예시일보</title>", f"<article>{lead}{BODY}{last}</article>")
    article = extract_article(page)
    assert article.authors == ["홍길동"]
    assert article.author_emails == emails
    assert article.text.splitlines()[0].startswith(f"{first}정부가".replace("&lt;", "<"))
    assert "hong@" not in article.text.lower() and not article.text.endswith("기자")


def test_reporter_box_gives_the_byline() -> None:
    box = ("<div class='byline'><p>순천, 광양 <b>홍길동</b> 기자 "
           "<span>hong@example.kr</span></p></div>")
    article = extract_article(_html("<title>반도체 - 예시일보</title>",
                                    f"<article>{BODY}</article>{box}"))
    assert (article.authors, article.author_emails) == (["홍길동"], ["hong@example.kr"])


@pytest.mark.parametrize(
    "box",
    ["<div class='byline'>사진 기자</div>",
     "<div class='author-list'>이데일리의 구독 많은 기자</div>",
     "<div class='byline'>예시일보 기자</div>",
     "<div class='writer'>구석구석 숨은 이야기를 듣는 홍길동 기자입니다.</div>"],
)
def test_words_before_reporter_are_not_names(box: str) -> None:
    article = extract_article(_html("<title>반도체 - 예시일보</title>",
                                    f"<article>{BODY}</article>{box}"))
    assert article.authors == []


def test_a_sentence_mentioning_a_reporter_stays_in_the_text() -> None:
    sentence = "현장에 있던 홍길동 기자는 정부가 지원책을 서둘러야 한다고 말했다."
    article = extract_article(_html("<title>반도체 - 예시일보</title>",
                                    f"<article>{BODY}<p>{sentence}</p></article>"))
    assert article.text.splitlines()[-1] == sentence


@pytest.mark.parametrize(
    "line",
    ["(END)", "(끝)", "<끝>", "-- END --", "이 기사는 회원 전용 기사입니다.",
     "この記事は会員限定です。電子版に登録すると続きをお読みいただけます。",
     "Subscribe now to continue reading.", "ⓒ 예시일보, 무단 전재 및 재배포 금지"],
)
def test_end_marks_paywall_prompts_and_copyright_lines_are_dropped(line: str) -> None:
    article = extract_article(_html("<title>반도체 - 예시일보</title>",
                                    f"<article>{BODY}<p>{line}</p></article>"))
    assert len(article.text.splitlines()) == 6
    assert line not in article.text


# --- published time: metadata, then the visible stamp, never the footer ----------------

ARTICLE_JSON_LD = ('<script type="application/ld+json">{"@context": "https://schema.org", '
                   '"@graph": [{"@type": "WebPage", "datePublished": "2020-01-01T00:00:00Z"}, '
                   '{"@type": "NewsArticle", "datePublished": "2024-03-05T14:20:00+09:00"}]}'
                   "</script>")


@pytest.mark.parametrize(
    ("head", "body_extra", "expected", "source"),
    [
        ('<meta property="article:published_time" content="2024-03-05T14:20:00+09:00">'
         + ARTICLE_JSON_LD.replace("14:20", "09:00"), "", "2024-03-05T05:20:00", "metadata"),
        (ARTICLE_JSON_LD, "", "2024-03-05T05:20:00", "metadata"),  # article object first
        ('<script type="application/ld+json">{broken</script>'
         '<meta name="pubdate" content="2024.03.05 14:20">', "", "2024-03-05T05:20:00",
         "metadata"),
        ('<meta itemprop="datePublished" content="2024-03-05 14:20">', "", "2024-03-05T05:20:00",
         "metadata"),
        ("", "<p class='date'>입력 2024-03-05 오후 2:20</p>", "2024-03-05T05:20:00", "text"),
        ("", "<p>기사입력 2024.03.05. 오후 2:20 최종수정 2024.03.06. 오전 9:00</p>",
         "2024-03-05T05:20:00", "text"),
        ("", "<footer><p>Copyright 2019 예시일보. All rights reserved.</p></footer>", None, None),
        ("", "<footer><p>ⓒ 2019-2024 예시일보</p></footer>", None, None),
    ],
)
def test_published_at_precedence(head: str, body_extra: str, expected: str | None,
                                 source: str | None) -> None:
    article = extract_article(_html(f"<title>반도체 - 예시일보</title>{head}",
                                    f"<article>{BODY}</article>{body_extra}"))
    assert article.published_at == (
        datetime.fromisoformat(expected).replace(tzinfo=UTC) if expected else None)
    assert article.published_from == source


def test_future_metadata_date_is_rejected() -> None:
    head = ('<meta property="article:published_time" content="2024-03-05T16:00:00+09:00">'
            '<meta name="date" content="2024-03-05T14:20:00+09:00">')
    page = _html(f"<title>반도체 - 예시일보</title>{head}")
    now = datetime(2024, 3, 5, 6, 0, tzinfo=UTC)  # 15:00 KST: 16:00 is an hour ahead
    assert extract_article(page, now=now).published_at == datetime(2024, 3, 5, 5, 20, tzinfo=UTC)
    assert extract_article(page).published_at == datetime(2024, 3, 5, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024.03.05 14:20", "2024-03-05T05:20:00"),
        ("2024/03/05", "2024-03-04T15:00:00"),  # a day alone: midnight KST
        ("2024. 3. 5.", "2024-03-04T15:00:00"),
        ("입력 2024-03-05 오후 2:20", "2024-03-05T05:20:00"),
        ("입력 : 2025-05-28 00:13:03 수정 : 2025-05-28 00:15:18", "2025-05-27T15:13:03"),
        ("기사입력 2021.10.04. 오후 4:26", "2021-10-04T07:26:00"),
        ("2024년 3월 5일 (화) 오후 2시 20분", "2024-03-05T05:20:00"),
        ("2024년 03월 05일 14시 22분 41초", "2024-03-05T05:22:41"),
        ("2024.03.05 오전 12:10", "2024-03-04T15:10:00"),
        ("2024.03.05 오후 12:10", "2024-03-05T03:10:00"),
        ("2024.03.05 14:20 FETV", "2024-03-05T05:20:00"),  # a name after it is no zone
        ("2024-03-05T14:20:00+09:00", "2024-03-05T05:20:00"),
        ("2025-05-15T20:00:52.000+0900", "2025-05-15T11:00:52"),
        ("20180619T055000+0900", "2018-06-18T20:50:00"),  # ISO 8601 basic format
        ("2024-04-28T13:30:00Z", "2024-04-28T13:30:00"),
        ("2024-03-05 14:22:41 (KST)", "2024-03-05T05:22:41"),
        ("Tue, 05 Mar 2024 14:22:41 +0000", "2024-03-05T14:22:41"),
        ("Tue, 05 Mar 2024 14:22:41 GMT", "2024-03-05T14:22:41"),
        ("Tue, 05 Mar 2024 14:22:41 JST", "2024-03-05T05:22:41"),
        ("Tue, 05 Mar 2024 14:22:41 EST", "2024-03-05T19:22:41"),
        ("05 Mar 24 14:22", "2024-03-05T05:22:00"),  # RFC 2822 two-digit year, no zone: KST
        ("2024年3月5日 14時22分", "2024-03-05T05:22:00"),
        ("2018/6/19 5:50", "2018-06-18T20:50:00"),
    ],
)
def test_parse_korean_datetime_formats(text: str, expected: str) -> None:
    parsed = parse_korean_datetime(text)
    assert parsed == datetime.fromisoformat(expected).replace(tzinfo=UTC)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["", "   ", "Copyright 2019", "2019", "1234", "속보", "2025.13.45 오후 25:99",
     "2024.02.30", "2024.03.05 오전 14:00", "Tue, 05 Mar 2024 14:22:41 CET",
     "Tue, 05 Mar 2024 14:22:41 CST",  # China or US Central: ambiguous
     "2024-03-05 14:22 CEST", "2024-03-05 14:22 +9900", "0001-01-01T00:00:00", None],
)
def test_parse_korean_datetime_rejects_what_it_cannot_read(text: str | None) -> None:
    assert parse_korean_datetime(text) is None


DATE_PIECES = st.sampled_from([
    "2024", "0001", "9999", "-", ".", "/", "년", "월", "일", " ", "T", ":", "14", "99", "+9900",
    "+09:00", "-1200", "Z", "KST", "XST", "오후", "오전", "(화)", "Tue,", "05", "Mar", "시", "분",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(DATE_PIECES | st.text(max_size=5), max_size=14))
def test_parse_korean_datetime_never_raises(pieces: list[str]) -> None:
    parsed = parse_korean_datetime("".join(pieces))
    assert parsed is None or parsed.tzinfo is UTC


def test_parse_korean_datetime_rejects_the_future() -> None:
    now = datetime(2024, 3, 5, 5, 0, tzinfo=UTC)
    assert parse_korean_datetime("2024-03-05 14:09", now=now) == datetime(
        2024, 3, 5, 5, 9, tzinfo=UTC)
    assert parse_korean_datetime("2024-03-05 14:11", now=now) is None


def test_parse_korean_datetime_reads_naive_times_in_the_source_zone() -> None:
    from datetime import timedelta, timezone

    assert parse_korean_datetime("2024-03-05 14:22", default_tz=timezone(timedelta(0))) == \
        datetime(2024, 3, 5, 14, 22, tzinfo=UTC)


# --- canonical link ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ('<link rel="canonical" href="https://www.example.kr/news/1">', "https://www.example.kr/news/1"),
        ('<link rel="canonical" href="/news/1">', "https://m.example.kr/news/1"),
        ('<meta property="og:url" content="https://www.example.kr/news/1">',
         "https://www.example.kr/news/1"),
        ('<link rel="canonical" href="https://original.co.kr/a/9">'
         '<meta property="og:url" content="https://www.example.kr/news/1">',
         "https://www.example.kr/news/1"),  # cross-site link skipped, same-site og:url kept
        ('<link rel="canonical" href="https://original.co.kr/a/9">', None),
        ("", None),
    ],
)
def test_canonical_link_must_be_on_the_same_site(head: str, expected: str | None) -> None:
    page = _html(f"<title>반도체 - 예시일보</title>{head}")
    assert extract_article(page, "https://m.example.kr/news/1?from=rss").canonical_url == expected


# --- titles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "sites", "expected"),
    [
        ("반도체 수출 지원책 발표 | 예시일보", {"예시일보"}, "반도체 수출 지원책 발표"),
        ("예시일보 - 반도체 수출 지원책 발표", {"예시일보"}, "반도체 수출 지원책 발표"),
        ("반도체 수출 지원책 발표-경제ㅣ한국일보", {"한국일보"}, "반도체 수출 지원책 발표"),
        ("예시일보", {"예시일보"}, ""),
        ("Open\u200bAI 코리아\u00a0출범\ufeff", set(), "OpenAI 코리아 출범"),
        ("K-반도체 - 수출 회복 신호", {"예시일보"}, "K-반도체 - 수출 회복 신호"),
        (None, {"예시일보"}, ""),
    ],
)
def test_clean_title(title: str | None, sites: set[str], expected: str) -> None:
    assert clean_title(title, sites) == expected


# --- listing pages ----------------------------------------------------------------------


def test_corpus_listing_page_is_not_an_article() -> None:
    listing = CORPUS / "html" / "naver-news-politics-section-2022-mislabeled-charset.html"
    page = decode_html(listing.read_bytes())
    with pytest.raises(PermanentError, match="a listing page"):
        extract_article(page.text, "https://news.naver.com/main/main.naver?sid1=100")


@pytest.mark.parametrize(
    ("head", "is_article"),
    [
        ('<meta property="og:type" content="website">', False),
        ('<meta property="og:type" content="website">'
         '<meta property="article:published_time" content="2024-03-05T14:20:00+09:00">', True),
        ('<meta property="og:type" content="article">', True),
        ("", True),
    ],
)
def test_short_page_calling_itself_a_website_without_a_date_is_a_listing(
    head: str, is_article: bool
) -> None:
    page = _html(f"<title>반도체 - 예시일보</title>{head}")
    if is_article:
        assert len(extract_article(page).text.splitlines()) == 6
    else:
        with pytest.raises(PermanentError, match="listing page"):
            extract_article(page)


@pytest.mark.parametrize(
    ("lang", "body", "language"),
    [
        ("fr-FR", "<p>Le gouvernement a annoncé un plan de soutien aux exportations de "
                  "semi-conducteurs. Les détails seront publiés demain.</p>", "fr"),
        ("en", BODY, "ko"),  # a template's wrong lang loses to the Hangul text
        ("ko-KR", "<p>North Korea slammed the joint military drill on Tuesday, warning "
                  "that Seoul will pay dearly.</p>", "en"),  # Latin text, Korean template
        ("", "<p>North Korea slammed the joint military drill on Tuesday, warning "
             "that Seoul will pay dearly.</p>", "en"),
    ],
)
def test_language_uses_the_declared_lang_only_for_latin_text(lang: str, body: str,
                                                            language: str) -> None:
    page = f"<html lang='{lang}'><head><title>t</title></head><body><article>{body}</article>"
    assert extract_article(page + "</body></html>").language == language


@pytest.mark.parametrize(("name", "full"), [
    ("html/naver-seoulshinmun-gopchang-2021-euckr.html", True),  # fast mode finds nothing
    ("html/mk-seoul-bus-strike-breaking-2025.html", False),
])
def test_full_extraction_runs_only_where_the_fast_one_finds_too_little(
        name: str, full: bool) -> None:
    article = _load(CORPUS / name)
    assert len(article.text) > 500
    assert article.full_extraction is full
