"""Unit tests for sokbo.fingerprint: SimHash values, Hamming distance, bands, and the
threshold measured on the real corpus (wire-copy edits within it, unrelated articles
far beyond it)."""

from __future__ import annotations

import csv
import html
import itertools
import re
import unicodedata
from functools import cache
from hashlib import blake2b
from pathlib import Path

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sokbo.fingerprint import (
    BITS,
    THRESHOLD,
    bands,
    fingerprint_of,
    hamming,
    is_fingerprint,
    parse_fingerprint,
    simhash,
    strip_boilerplate,
)
from sokbo.normalize import key_of
from sokbo_parser.decode import decode_html
from sokbo_parser.extract import extract_article

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
LONG = 800  # characters of text from which every edit below stays within THRESHOLD

YONHAP_BYLINE = "(서울=연합뉴스) 김철수 기자 = "
YONHAP_COPYRIGHT = "\n<저작권자(c) 연합뉴스, 무단 전재-재배포, AI 학습 및 활용 금지>"
OUTLET_BYLINE = "[아시아경제 이영희 기자] "
OUTLET_COPYRIGHT = "\nⓒ 아시아경제 무단전재 및 재배포 금지"
NEW_LEAD = ("관계자들에 따르면 이번 사안을 두고 업계와 정부가 각기 다른 해석을 내놓고 있는 가운데 "
            "후속 조치가 주목된다. ")


def reference_simhash(title: str, text: str) -> int:
    """Charikar's SimHash written the textbook way: +1/-1 per shingle occurrence and bit."""
    key = key_of(f"{strip_boilerplate(title)}\n{strip_boilerplate(text)}")
    shingles = [key[i:i + 4] for i in range(len(key) - 3)] if len(key) > 4 else [key] * bool(key)
    votes = [0] * 64
    for shingle in shingles:
        h = int.from_bytes(blake2b(shingle.encode(), digest_size=8).digest(), "little")
        for bit in range(64):
            votes[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if votes[bit] > 0)


@cache
def corpus() -> tuple[tuple[str, str, str], ...]:
    """(name, title, text) of every article in the corpus: the HTML article pages and the
    items of the Chosun feed, each extracted as the parser does."""
    articles = []
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["kind"] == "article" and row["file"].startswith("html/"):
                extracted = extract_article(decode_html((CORPUS / row["file"]).read_bytes()).text)
                articles.append((row["file"], extracted.title, extracted.text))
    feed = feedparser.parse((CORPUS / "feeds" / "chosun-national-rss-2026-07-31.xml").read_bytes())
    for entry in feed.entries:
        body = entry.get("content", [{}])[0].get("value", "")
        title = html.escape(entry.title)
        page = f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>" \
               f"{body}</article></body></html>"
        try:
            extracted = extract_article(page)
        except Exception:  # an item with a photo only: no article text
            continue
        articles.append((entry.link, extracted.title, extracted.text))
    return tuple(articles)


def rewrite_lead(text: str, *, wholesale: bool) -> str:
    """Rewrite the first sentence: replace every third word, or the whole sentence."""
    match = re.search(r"[.!?]\s", text)
    end = match.end() if match else len(text) // 4
    if wholesale:
        return NEW_LEAD + text[end:]
    words = ["관련" if i % 3 == 1 else w for i, w in enumerate(text[:end].split())]
    return " ".join(words) + " " + text[end:]


def republished(title: str, text: str, edit: str) -> tuple[str, str]:
    """Return another outlet's copy of a Yonhap article (title, text) after *edit*."""
    if edit == "outlet":
        return title, OUTLET_BYLINE + text + OUTLET_COPYRIGHT
    if edit == "lead":
        return title, OUTLET_BYLINE + rewrite_lead(text, wholesale=False) + OUTLET_COPYRIGHT
    if edit == "new lead":
        return title, OUTLET_BYLINE + rewrite_lead(text, wholesale=True) + OUTLET_COPYRIGHT
    assert edit == "headline and lead"
    return (f"[종합] {title[: len(title) * 2 // 3]} 논란",
            OUTLET_BYLINE + rewrite_lead(text, wholesale=False) + OUTLET_COPYRIGHT)


def yonhap(title: str, text: str) -> tuple[str, str]:
    return title, YONHAP_BYLINE + text + YONHAP_COPYRIGHT


# --- values ---------------------------------------------------------------------------

@pytest.mark.parametrize(("title", "text", "expected"), [
    ("", "", "0000000000000000"),
    # one shingle: the fingerprint is its BLAKE2b-64 read little-endian (d8bb14d833d59559)
    ("", "abc", "5995d533d814bbd8"),
    ("OpenAI 코리아 출범", "", "0980833f2b007103"),
    ("정부, 소버린AI 예산 확대",
     "과학기술정보통신부는 내년 소버린AI 관련 예산을 두 배로 늘린다고 밝혔다.", "e0b78b40e7c1405a"),
])
def test_fingerprint_values_are_pinned(title: str, text: str, expected: str) -> None:
    assert fingerprint_of(title, text) == expected
    assert simhash(title, text) == int(expected, 16) == reference_simhash(title, text)


def test_simhash_agrees_with_the_textbook_algorithm_on_real_articles() -> None:
    for _, title, text in corpus()[:20]:
        assert simhash(title, text) == reference_simhash(title, text)


@pytest.mark.parametrize(("a", "b", "expected"), [
    (0, 0, 0),
    (0, 2**64 - 1, 64),
    (0b1011, 0b0001, 2),
    (1 << 63, 1, 2),
    ("e0b78b40e7c1405a", "e0b78b40e7c1405a", 0),
    ("0000000000000000", "000000000000000f", 4),
    ("ffffffffffffffff", 0, 64),
    ("e0b78b40e7c1405a", "0980833f2b007103", 32),
])
def test_hamming(a: int | str, b: int | str, expected: int) -> None:
    assert hamming(a, b) == hamming(b, a) == expected


@pytest.mark.parametrize("value", ["", "E0B78B40E7C1405A", "e0b78b40e7c1405", "g0b78b40e7c1405a",
                                   "0x0b78b40e7c1405a"])
def test_only_16_lowercase_hex_digits_are_a_fingerprint(value: str) -> None:
    assert not is_fingerprint(value)
    with pytest.raises(ValueError, match="not a fingerprint"):
        parse_fingerprint(value)
    with pytest.raises(ValueError):
        hamming(value, 0)


# --- what does not change a fingerprint ----------------------------------------------

TEXT = "정부는 소버린AI 예산을 확대한다고 밝혔다. OpenAI 코리아도 국내 투자를 늘린다."


@pytest.mark.parametrize("variant", [
    unicodedata.normalize("NFD", TEXT),  # macOS Hangul (B17)
    TEXT.replace(" ", "\u00a0"),  # NBSP (B18)
    TEXT.replace(" ", "  "),
    TEXT.replace("소버린AI", "소버린 AI"),
    TEXT.replace("OpenAI", "Open\u200bAI"),  # zero-width space (B19)
    TEXT.replace("OpenAI", "ＯｐｅｎＡＩ"),  # full-width Latin (B20)
    TEXT.replace("OpenAI", "OPENAI"),
])
def test_spelling_variants_give_the_same_fingerprint(variant: str) -> None:
    assert fingerprint_of("제목", variant) == fingerprint_of("제목", TEXT)


@pytest.mark.parametrize("boilerplate", [
    "(서울=연합뉴스) 김철수 기자 = {}",
    "[이데일리 조민정 기자] {}",
    "[FETV=신동현 기자] {}",
    "{}\n신동현 기자 shin@fetv.co.kr",
    "{}\n<저작권자(c) 연합뉴스, 무단 전재-재배포, AI 학습 및 활용 금지>",
    "{}\nⓒ 아시아경제 무단전재 및 재배포 금지",
    "{}\nCopyright © Hankook Ilbo. All rights reserved.",
    "(사진=연합뉴스) {}",
    "{}\nhong@yna.co.kr",
])
def test_bylines_credits_and_copyright_lines_are_ignored(boilerplate: str) -> None:
    assert fingerprint_of("제목", boilerplate.format(TEXT)) == fingerprint_of("제목", TEXT)


def test_a_long_paragraph_mentioning_copyright_is_text() -> None:
    paragraph = "저작권자 단체는 " + "생성형 AI 학습에 기사를 쓰는 문제를 두고 " * 10 + "반발했다."
    assert strip_boilerplate(paragraph) == paragraph


# --- the threshold, measured on the corpus --------------------------------------------

def test_the_corpus_is_large_enough_to_measure() -> None:
    articles = corpus()
    assert len(articles) >= 100
    assert sum(len(text) >= LONG for _, _, text in articles) >= 60


def test_another_outlets_byline_and_copyright_line_change_nothing() -> None:
    for name, title, text in corpus():
        assert hamming(simhash(*yonhap(title, text)),
                       simhash(*republished(title, text, "outlet"))) == 0, name


@pytest.mark.parametrize("edit", ["lead", "new lead", "headline and lead"])
def test_wire_copy_edits_stay_within_the_threshold(edit: str) -> None:
    distances = []
    for name, title, text in corpus():
        distance = hamming(simhash(*yonhap(title, text)),
                           simhash(*republished(title, text, edit)))
        if len(text) >= LONG:
            assert distance <= THRESHOLD, (name, edit, distance)
        distances.append(distance)
    # short articles change more, relatively: most still stay within it
    assert sum(d <= THRESHOLD for d in distances) / len(distances) >= 0.8


def test_unrelated_articles_are_far_beyond_the_threshold() -> None:
    fingerprints = [simhash(title, text) for _, title, text in corpus()]
    distances = sorted(hamming(a, b) for a, b in itertools.combinations(fingerprints, 2))
    assert len(distances) > 5000
    # measured: minimum 18 (two Chosun health articles of the same day), median 32
    assert distances[0] > THRESHOLD + 4
    assert 30 <= distances[len(distances) // 2] <= 34


# --- bands -----------------------------------------------------------------------------

def test_bands_cover_the_64_bits() -> None:
    assert bands(2**64 - 1) == [31] * 12 + [15]
    assert bands(0x0123456789ABCDEF, 3) == [0xCDEF, 0x89AB, 0x4567, 0x0123]
    assert bands("e0b78b40e7c1405a") == bands(0xE0B78B40E7C1405A)
    with pytest.raises(ValueError, match="threshold"):
        bands(0, BITS)


fingerprints = st.integers(min_value=0, max_value=2**64 - 1)


@given(fingerprints, st.sets(st.integers(0, 63), max_size=THRESHOLD))
def test_fingerprints_within_the_threshold_share_a_band(value: int, flipped: set[int]) -> None:
    other = value
    for bit in flipped:
        other ^= 1 << bit
    assert any(a == b for a, b in zip(bands(value), bands(other), strict=True))


@given(fingerprints)
def test_one_more_bit_can_separate_every_band(value: int) -> None:
    other, start = value, 0
    for width in [5] * 12 + [4]:  # one bit flipped in each of the 13 bands
        other ^= 1 << start
        start += width
    assert hamming(value, other) == THRESHOLD + 1
    assert all(a != b for a, b in zip(bands(value), bands(other), strict=True))
