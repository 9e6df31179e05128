"""Unit tests for sokbo.matching: rule evaluation, highlights and snippets."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sokbo.errors import QuerySyntaxError
from sokbo.matching import RuleMatch, RuleSet, TermHit, make_snippets, match
from sokbo.normalize import key_of

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CASES = [json.loads(line) for line in (FIXTURES / "matching.jsonl").read_text().splitlines()]
SEED = (FIXTURES / "seed-fetv.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c["class"] for c in CASES])
def test_fixture(case: dict) -> None:
    assert match(case["query"], case["text"])[0] is case["expected"]


def test_fixture_has_all_cases() -> None:
    assert len(CASES) == 24


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # particles and quotes around Hangul edges
        ('"OpenAI 코리아"', "아시아 3번째 지사인 'OpenAI 코리아'의 출범", True),
        ("소버린AI", "정부의 소버린AI를 두고", True),
        ("삼성", "삼성전자 실적", True),
        ("소버린AI", "소버린 AI", True),
        ("소버린AI", "소버린\nAI", True),
        ("소버린AI", "소버린\r\n  AI", True),
        ('"OpenAI 코리아"', "OpenAI코리아", True),
        ("소버린AI", "소버린\u00a0AI", True),
        ("소버린AI", "소버\u200b린\u2060A\ufeffI", True),
        ("소버린AI", unicodedata.normalize("NFD", "소버린AI"), True),
        ("소버린AI", "ＳＯＶ 소버린ＡＩ", True),
        ("ＧＰＵ", "GPU 부족", True),
        (unicodedata.normalize("NFD", "반도체"), "반도체 수출", True),
        ('"data center"', "DATA_CENTER", True),
        ('"data center"', "data·center", True),
        ('"data center"', "data. center", False),
        ("소버린AI", "소버린. AI", False),
        # Latin word boundaries
        ("AI", "email", False),
        ("AI", "AIR 항공", False),
        ("AI", "AI를 활용", True),
        ("AI", "(AI)", True),
        ("AI", "AI", True),
        ("AI", "생성형AI", True),
        ("AI", "AI-driven", True),
        ("AI", "PAI", False),
        ("GPU", "GPUs", False),
        ("GPU", "GPU, CPU", True),
        ("GPT-4", "GPT-4o", False),
        ("GPT-4", "GPT4 출시", True),
        ("ile", "\ufb01le", False),
        ("é", "café", False),
        # boolean operators
        ("반도체 수출", "수출 늘고 반도체", True),
        ("반도체 수출", "반도체만", False),
        ("반도체 OR 수출", "수출만", True),
        ("삼성 NOT 채용", "삼성 채용", False),
        ("삼성 -채용", "삼성 실적", True),
        ("삼성 -(채용 OR 공채)", "삼성 공채", False),
        ("삼성 -(채용 공채)", "삼성 공채", True),
        # NEAR
        ("삼성 NEAR/1 배터리", "삼성 배터리", True),
        ("삼성 NEAR/1 배터리", "삼성 신규 배터리", False),
        ("삼성 NEAR/2 배터리", "배터리 신규 삼성", True),
        ("삼성 NEAR/2 배터리", "삼성배터리", True),
        ('"OpenAI 코리아" NEAR/3 출범', "OpenAI 코리아 공식 출범", True),
        ("삼성 NEAR/2 배터리", "삼성\n\n\n배터리", True),
        ("삼성 NEAR/2 배터리", "삼성 a b c 배터리", False),
    ],
)
def test_match(query: str, text: str, expected: bool) -> None:
    assert match(query, text)[0] is expected


@pytest.mark.parametrize(
    ("query", "title", "text", "expected"),
    [
        ("title:소버린AI", "소버린AI 전략", "본문", True),
        ("title:소버린AI", "제목", "소버린AI 전략", False),
        ('title:"OpenAI 코리아"', "'OpenAI 코리아' 출범", "", True),
        ("text:소버린AI", "소버린AI 전략", "본문", False),
        ("소버린AI", "소버린AI 전략", "본문", True),
        ("소버린AI 본문", "소버린AI 전략", "본문", True),
        ("삼성 NEAR/2 배터리", "삼성", "배터리", False),
    ],
)
def test_field_scope(query: str, title: str, text: str, expected: bool) -> None:
    assert match(query, text, title=title)[0] is expected


GROUPS = [["OpenAI", "오픈AI", "오픈에이아이"], ["LG", "엘지"]]


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("OpenAI", "오픈AI가 발표", True),
        ("오픈AI", "오픈에이아이 간담회", True),
        ("openai", "오픈 AI 간담회", True),
        ('"OpenAI"', "오픈에이아이", True),
        ("OpenAI 엘지", "오픈AI와 LG", True),
        ("OpenAI", "오픈소스", False),
        ("OpenAI", "OpenAIs", False),
        ('"OpenAI 코리아"', "오픈AI 코리아", True),  # a member as a phrase part (issue 3)
        ('"OpenAI 코리아"', "오픈에이아이코리아의", True),
        ('"OpenAI 코리아"', "오픈AI 재팬", False),
        ("title:OpenAI", "오픈AI", False),
    ],
)
def test_synonyms(query: str, text: str, expected: bool) -> None:
    assert match(query, text, synonyms=GROUPS)[0] is expected


def test_synonym_hit_reports_the_query_term() -> None:
    _, hits = match("OpenAI", "새 오픈AI 지사", synonyms=GROUPS)
    assert hits == [TermHit(field="text", term="OpenAI", start=2, end=6, synonym="오픈AI")]


def test_a_multi_word_synonym_inside_a_phrase() -> None:
    groups = [["소버린AI", "자국형AI", "sovereign AI"]]
    _, hits = match('"sovereign AI 전략"', "정부의 소버린 AI 전략은", synonyms=groups)
    assert [(h.start, h.end, h.synonym) for h in hits] == [(4, 13, "소버린AI 전략")]


def test_the_term_itself_reports_no_synonym() -> None:
    _, hits = match("OpenAI", "OpenAI 지사", synonyms=GROUPS)
    assert hits[0].synonym is None


@pytest.mark.parametrize(
    ("query", "text", "spans"),
    [
        ("소버린AI", "한국의 소버린 AI를", [(4, 10)]),
        ('"OpenAI 코리아"', "지사 'OpenAI\u00a0코리아'의", [(4, 14)]),
        ("AI", "AI와 email과 (AI)", [(0, 2), (12, 14)]),
        ("삼성 -채용", "삼성 실적", [(0, 2)]),
        ("반도체 OR 수출", "반도체 반도체", [(0, 3), (4, 7)]),
        ("삼성 NEAR/1 배터리", "삼성 배터리 그리고 배터리", [(0, 2), (3, 6)]),
        ("ＧＰＵ", "\u200bＧＰＵ\u200b", [(1, 4)]),
        ("반도체", unicodedata.normalize("NFD", "반도체"), [(0, 7)]),
    ],
)
def test_highlights_index_the_original_text(query: str, text: str, spans: list) -> None:
    matched, hits = match(query, text)
    assert matched
    assert [(h.start, h.end) for h in hits] == spans
    for hit in hits:
        assert hit.field == "text"
        assert key_of(text[hit.start : hit.end]) == key_of(hit.term)


def test_hits_come_only_from_positive_terms() -> None:
    rules = RuleSet([("r", "(삼성 OR LG) 배터리 NOT (채용 AND 공고)")])
    [result] = rules.evaluate("LG 배터리", "삼성 배터리 채용")
    assert result.matched_terms == ["삼성", "LG", "배터리"]
    assert {(h.field, h.term) for h in result.hits} == {
        ("title", "LG"),
        ("title", "배터리"),
        ("text", "삼성"),
        ("text", "배터리"),
    }
    assert [h.field for h in result.hits] == ["title", "title", "text", "text"]


def test_rule_set_reports_matching_rules_in_rule_order() -> None:
    rules = RuleSet(
        [
            ("sovereign", "소버린AI"),
            ("openai", '"OpenAI 코리아" OR "오픈AI 코리아"'),
            ("unrelated", "반도체"),
            ("negated", "OpenAI -코리아"),
        ]
    )
    results = rules.evaluate("", "'OpenAI 코리아'의 출범과 소버린AI")
    assert [r.rule_id for r in results] == ["sovereign", "openai"]
    assert results[1] == RuleMatch(
        "openai", [TermHit(field="text", term="OpenAI 코리아", start=1, end=11)], ["OpenAI 코리아"]
    )


def test_rule_set_rejects_a_bad_query() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        RuleSet([("ok", "A"), ("bad", "A AND")])
    assert caught.value.column == 3


def test_empty_rule_set_matches_nothing() -> None:
    assert RuleSet([]).evaluate("제목", "본문") == []


@pytest.mark.parametrize("query", ['"OpenAI 코리아" OR "오픈AI 코리아"', "소버린AI"])
def test_seed_article_matches(query: str) -> None:
    matched, hits = match(query, SEED)
    assert matched
    for hit in hits:
        assert key_of(SEED[hit.start : hit.end]) == key_of(hit.term)


def test_seed_article_snippets() -> None:
    _, hits = match('"OpenAI 코리아" OR 소버린AI', SEED)
    snippets = make_snippets("", SEED, hits)
    assert len(snippets) == 2
    assert snippets[0].text.endswith("'OpenAI 코리아'의 출범을 공식 선언했다.")
    assert (
        snippets[1].text
        == "한국 정부가 추진 중인 소버린AI(자국형 AI) 전략과 관련해서도 입장을 내놨다."
    )
    for snippet in snippets:
        for start, end in snippet.highlights:
            assert key_of(snippet.text[start:end]) in {"openai코리아", "소버린ai"}


# --- snippets -----------------------------------------------------------------


def _snippets_for(query: str, text: str, **kwargs: int) -> list:
    _, hits = match(query, text)
    return make_snippets("", text, hits, **kwargs)


def test_snippet_is_the_sentence_with_the_hit() -> None:
    text = "첫 문장이다. 삼성이 배터리 공장을 지었다! 마지막 문장인가? 끝"
    [snippet] = _snippets_for("배터리", text)
    assert snippet.field == "text"
    assert snippet.text == "삼성이 배터리 공장을 지었다!"
    assert snippet.highlights == [(4, 7)]


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("가격은 3.5% 올랐다. 배터리 공급은 늘었다.", "배터리 공급은 늘었다."),
        ("제목 줄\n배터리 공급\n다음 줄", "배터리 공급"),
        ("그는 “배터리가 핵심이다.” 다음 문장.", "그는 “배터리가 핵심이다.”"),
        ("앞문장。배터리 문장。뒷문장", "배터리 문장。"),
        ("가격 3.5배 배터리", "가격 3.5배 배터리"),
    ],
)
def test_sentence_splitting(text: str, sentence: str) -> None:
    [snippet] = _snippets_for("배터리", text)
    assert snippet.text == sentence


def test_hits_in_one_sentence_share_a_snippet() -> None:
    [snippet] = _snippets_for("삼성 배터리", "다른 얘기. 삼성 배터리와 삼성 전지. 끝.")
    assert snippet.text == "삼성 배터리와 삼성 전지."
    assert snippet.highlights == [(0, 2), (3, 6), (8, 10)]


def test_at_most_three_snippets_in_text_order() -> None:
    text = " ".join(f"{i}번 배터리 문장이다." for i in range(5))
    snippets = _snippets_for("배터리", text)
    assert [s.text for s in snippets] == [f"{i}번 배터리 문장이다." for i in range(3)]


def test_hit_across_a_line_break_joins_the_lines() -> None:
    [snippet] = _snippets_for("소버린AI", "앞 줄 소버린\nAI 전략\n다음")
    assert snippet.text == "앞 줄 소버린\nAI 전략"
    assert snippet.highlights == [(4, 10)]


def test_long_sentence_is_cut_around_the_hit() -> None:
    text = "가" * 300 + " 배터리 " + "나" * 300 + "."
    [snippet] = _snippets_for("배터리", text, max_chars=50)
    assert len(snippet.text) <= 50
    assert snippet.text.startswith("…") and snippet.text.endswith("…")
    [(start, end)] = snippet.highlights
    assert snippet.text[start:end] == "배터리"


def test_long_sentence_cut_at_its_start_has_no_leading_ellipsis() -> None:
    text = "배터리 " + "나" * 500
    [snippet] = _snippets_for("배터리", text, max_chars=40)
    assert snippet.text.startswith("배터리") and snippet.text.endswith("…")
    assert snippet.highlights == [(0, 3)]


def test_title_is_the_snippet_when_no_hit_is_in_the_text() -> None:
    _, hits = match("소버린AI", "본문", title="정부, 소버린AI 전략 발표")
    [snippet] = make_snippets("정부, 소버린AI 전략 발표", "본문", hits)
    assert snippet.field == "title"
    assert snippet.highlights == [(4, 9)]


def test_no_hits_no_snippets() -> None:
    assert make_snippets("제목", "본문", []) == []


# --- properties -------------------------------------------------------------------

HANGUL = st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)
LATIN = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
WORD = st.one_of(st.text(HANGUL, min_size=1, max_size=4), st.text(LATIN, min_size=1, max_size=6))
CONTEXT = st.text(st.one_of(HANGUL, LATIN, st.sampled_from(" .,!?'\"()\n")), max_size=30)
SEPARATORS = st.lists(
    st.sampled_from([" ", "\n", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00a0"]),
    max_size=3,
).map("".join)


def _phrase_in_text(words: list[str], prefix: str, suffix: str) -> tuple[str, str]:
    phrase = " ".join(words)
    return f'"{phrase}"', f"{prefix} {phrase} {suffix}"


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


@given(st.lists(WORD, min_size=1, max_size=4), CONTEXT, CONTEXT, st.data())
def test_separators_between_syllables_never_lose_the_match(words, prefix, suffix, data) -> None:
    phrase = " ".join(words)
    spaced = ""
    for ch in phrase:
        spaced += ch + (data.draw(SEPARATORS) if "\uac00" <= ch <= "\ud7a3" else "")
    text = f"{prefix} {spaced} {suffix}"
    matched, hits = match(f'"{phrase}"', text)
    assert matched
    assert all(0 <= h.start < h.end <= len(text) for h in hits)


@given(st.lists(WORD, min_size=1, max_size=4), CONTEXT, CONTEXT)
def test_nfd_text_never_loses_the_match(words, prefix, suffix) -> None:
    query, text = _phrase_in_text(words, prefix, suffix)
    decomposed = unicodedata.normalize("NFD", text)
    matched, hits = match(query, decomposed)
    assert matched
    for hit in hits:
        assert key_of(decomposed[hit.start : hit.end]) == key_of(hit.term)


@given(st.lists(WORD, min_size=1, max_size=4), CONTEXT, CONTEXT)
def test_fullwidth_latin_never_loses_the_match(words, prefix, suffix) -> None:
    query, text = _phrase_in_text(words, prefix, suffix)
    wide = _fullwidth(text)
    matched, hits = match(query, wide)
    assert matched
    for hit in hits:
        assert key_of(wide[hit.start : hit.end]) == key_of(hit.term)


@given(
    st.text(), st.sampled_from(["AI", "삼성", '"data center"', "소버린AI OR GPU", "가 NEAR/2 a"])
)
def test_highlights_stay_within_the_text(text: str, query: str) -> None:
    _, hits = match(query, text, title=text[::-1])
    for hit in hits:
        limit = len(text)
        assert 0 <= hit.start < hit.end <= limit
    for snippet in make_snippets(text[::-1], text, hits, max_chars=60):
        assert len(snippet.text) <= 60 or snippet.field == "title"
        assert all(0 <= a < b <= len(snippet.text) for a, b in snippet.highlights)


def test_a_text_repeating_terms_gives_bounded_hits() -> None:
    from sokbo.matching import MAX_HITS

    text = "AI 소버린 " * 20_000 + "\n" + "AI " * 20_000 + "소버린 " * 20_000
    matches = RuleSet([("near", "AI NEAR/3 소버린"), ("term", "AI")]).evaluate("", text)
    assert [m.rule_id for m in matches] == ["near", "term"]
    assert all(0 < len(m.hits) <= MAX_HITS for m in matches)
    assert matches[1].hits[0].start == 0  # the first ones in the document


def test_a_repeated_term_does_not_crowd_out_another_terms_hits() -> None:
    from sokbo.matching import MAX_HITS

    text = "오픈AI " * (3 * MAX_HITS) + "소버린AI는 " + "오픈AI " * 5 + "소버린AI"
    matches = RuleSet([("open", "오픈AI"), ("sovereign", "소버린AI")]).evaluate(
        "소버린AI 특집", text)
    by_rule = {m.rule_id: m.hits for m in matches}
    assert [(h.start, h.end) for h in by_rule["open"]] == [
        (i * 5, i * 5 + 4) for i in range(MAX_HITS)]  # the first MAX_HITS, in order
    sovereign = by_rule["sovereign"]
    assert [h.field for h in sovereign] == ["title", "text", "text"]
    assert all(text[h.start:h.end] == "소버린AI" for h in sovereign[1:])


def test_rules_sharing_a_term_get_lists_of_their_own() -> None:
    first, second = RuleSet([("a", "소버린AI"), ("b", "소버린AI")]).evaluate("", "소버린AI 정책")
    assert first.hits == second.hits and first.matched_terms == second.matched_terms
    first.hits.clear()
    first.matched_terms.clear()
    assert len(second.hits) == 1 and second.matched_terms == ["소버린AI"]


def test_rules_sharing_a_key_in_different_scopes_each_get_their_own_hits() -> None:
    from sokbo.matching import RuleSet

    rules = RuleSet([("any", "OpenAI"), ("title", "title:OpenAI"), ("text", "text:OpenAI")])
    matches = {m.rule_id: m for m in rules.evaluate("OpenAI 코리아", "오늘 OpenAI가 왔다. OpenAI!")}
    assert [(h.field, h.start, h.end) for h in matches["any"].hits] == [
        ("title", 0, 6), ("text", 3, 9), ("text", 15, 21)]
    assert [(h.field, h.start) for h in matches["title"].hits] == [("title", 0)]
    assert [(h.field, h.start) for h in matches["text"].hits] == [("text", 3), ("text", 15)]


def test_rules_sharing_one_term_report_each_hit_once() -> None:
    from sokbo.matching import RuleSet

    rules = RuleSet([("a", "삼성"), ("b", "삼성 AND NOT LG"), ("c", "삼성")])
    matches = rules.evaluate("", "삼성전자와 삼성SDI")
    assert [m.rule_id for m in matches] == ["a", "b", "c"]
    for found in matches:
        assert [(h.start, h.end) for h in found.hits] == [(0, 2), (6, 8)]
