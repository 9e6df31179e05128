"""Unit tests for sokbo.normalize: the matching key and its offset map."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sokbo.normalize import fold, is_latin_alnum, key_of, normalize


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("소버린 AI", "소버린ai"),
        ("소버린\nAI", "소버린ai"),
        ("OpenAI\u00a0코리아", "openai코리아"),
        ("Ｓａｍｓｕｎｇ\u3000갤럭시", "samsung갤럭시"),
        ("Samsung\u200b갤\u200c럭\u200d시\u2060\ufeff", "samsung갤럭시"),
        (unicodedata.normalize("NFD", "삼성전자"), "삼성전자"),
        ("Data-Center", "datacenter"),
        ("제조·R&D", "제조r&d"),
        ("snake_case", "snakecase"),
        ("끝. 시작", "끝.시작"),
        ("'OpenAI 코리아'의", "'openai코리아'의"),
        ("Straße", "strasse"),
        ("\ufb01le", "file"),
        ("", ""),
    ],
)
def test_key(text: str, key: str) -> None:
    assert key_of(text) == key


def test_offsets_skip_dropped_characters() -> None:
    norm = normalize("소버린 \u200bAI")
    assert norm.key == "소버린ai"
    assert norm.starts == (0, 1, 2, 5, 6)
    assert norm.ends == (1, 2, 3, 6, 7)
    assert norm.span(0, 5) == (0, 7)


def test_offsets_of_decomposed_syllable_cover_all_jamo() -> None:
    text = "a" + unicodedata.normalize("NFD", "각") + "b"
    norm = normalize(text)
    assert norm.key == "a각b"
    assert norm.span(1, 2) == (1, 4)


def test_offsets_of_expanding_ligature_share_the_original_character() -> None:
    norm = normalize("x\ufb01y")
    assert norm.key == "xfiy"
    assert norm.starts == (0, 1, 1, 2)
    assert norm.ends == (1, 2, 2, 3)
    assert norm.span(1, 3) == (1, 2)


@pytest.mark.parametrize(
    ("text", "a", "before"),
    [
        ("email", 1, "e"),
        ("the AI", 3, " "),
        ("x-AI", 1, " "),  # a dropped connector reads as a space: a boundary
        ("ＮＯＴai", 3, "t"),
        ("AI", 0, ""),
        ("\ufb01x", 1, "f"),  # inside the ligature's own expansion
    ],
)
def test_char_before_looks_at_the_original_neighbour(text: str, a: int, before: str) -> None:
    assert normalize(text).char_before(a) == before


@pytest.mark.parametrize(
    ("text", "b", "after"),
    [("AIR", 2, "r"), ("AI 를", 2, " "), ("AI", 2, ""), ("AIＸ", 2, "x"), ("a\ufb01", 2, "i")],
)
def test_char_after_looks_at_the_original_neighbour(text: str, b: int, after: str) -> None:
    assert normalize(text).char_after(b) == after


@pytest.mark.parametrize(
    ("ch", "expected"),
    [("a", True), ("7", True), ("é", True), ("가", False), (" ", False), ("(", False), ("", False)],
)
def test_is_latin_alnum(ch: str, expected: bool) -> None:
    assert is_latin_alnum(ch) is expected


def test_fold_is_nfkc_casefold() -> None:
    assert fold("Ｓａｍｓｕｎｇ") == "samsung"
    assert fold(unicodedata.normalize("NFD", "한글")) == "한글"


@given(st.text())
def test_every_key_character_maps_into_the_original(text: str) -> None:
    norm = normalize(text)
    assert len(norm.key) == len(norm.starts) == len(norm.ends)
    for start, end in zip(norm.starts, norm.ends, strict=True):
        assert 0 <= start < end <= len(text)
    assert list(norm.starts) == sorted(norm.starts)


# The fast path (one-to-one runs folded in one call, chunked offset map) must agree
# with the plain definition: fold each composition segment, drop what is ignored.
_ALPHABET = ("가나다한국어 abcXYZ019 ＡＢＣ１２ \u3000\n\t-_·\u200b\ufeff"
             "\u1100\u1161\u11a8e\u0301\ufb01㈜…ß İ。.!?'\"")


def _reference(text: str) -> tuple[str, list[tuple[int, int]]]:
    import unicodedata

    from sokbo.normalize import CONNECTORS, ZERO_WIDTH, fold

    def extends(ch: str) -> bool:
        return (unicodedata.combining(ch) != 0 or "\u1160" <= ch <= "\u11ff"
                or "\ufe00" <= ch <= "\ufe0f")

    key, spans, i = [], [], 0
    while i < len(text):
        j = i + 1
        while j < len(text) and extends(text[j]):
            j += 1
        for ch in fold(text[i:j]):
            if not (ch.isspace() or ch in ZERO_WIDTH or ch in CONNECTORS):
                key.append(ch)
                spans.append((i, j))
        i = j
    return "".join(key), spans


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=700))
def test_fast_normalisation_agrees_with_the_definition(text: str) -> None:
    key, spans = _reference(text)
    norm = normalize(text)
    assert norm.key == key
    assert [(norm.start_of(i), norm.end_of(i)) for i in range(len(key))] == spans
    # word numbers (for NEAR) differ exactly as whitespace-separated words of the text do
    from sokbo.normalize import CONNECTORS, ZERO_WIDTH

    def word_of(prefix: str) -> int:  # tokens of the normalised text before a position
        clean = prefix.translate({ord(c): None for c in ZERO_WIDTH | CONNECTORS})
        return len(clean.split()) - (0 if not clean or clean[-1].isspace() else 1)

    words = [word_of(text[:end - 1]) for _, end in spans]
    numbers = [norm.word_index(i) for i in range(len(key))]
    assert [b - a for a, b in zip(numbers, numbers[1:], strict=False)] == [
        b - a for a, b in zip(words, words[1:], strict=False)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ALPHABET, min_size=1, max_size=700), st.data())
def test_batch_spans_agree_with_span(text: str, data: st.DataObject) -> None:
    """``spans`` (the reporting hot path) gives exactly one ``span`` per slice."""
    norm = normalize(text)
    size = len(norm.key)
    if not size:
        return
    starts = data.draw(st.lists(st.integers(0, size - 1), max_size=40))
    slices = [(a, data.draw(st.integers(a + 1, min(size, a + 12)))) for a in sorted(starts)]
    assert norm.spans(slices) == [norm.span(a, b) for a, b in slices]
    shuffled = list(reversed(slices))  # out of order: the chunk is looked up again
    assert norm.spans(shuffled) == [norm.span(a, b) for a, b in shuffled]
