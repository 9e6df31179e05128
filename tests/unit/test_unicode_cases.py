"""B17–B20 of shared/cases/BUG-CASES.md through ``sokbo match``: exact highlights.

NFD Hangul, whitespace variants, zero-width characters and full-width Latin must all
match, with highlights as code-point offsets into the text as given.
"""

from __future__ import annotations

import json
import unicodedata

import pytest

from sokbo.cli import main

PHRASE = '"OpenAI 코리아"'


def run_match(capsys: pytest.CaptureFixture[str], query: str, text: str) -> dict:
    assert main(["match", "--query", query, "--text", text]) == 0
    return json.loads(capsys.readouterr().out)


def test_b17_nfd_hangul_matches_an_nfc_query_and_back(capsys) -> None:
    text = unicodedata.normalize("NFD", "정부, 소버린AI 예산 확대")
    assert len(text) == 28
    assert run_match(capsys, "소버린AI", text) == {"matched": True, "highlights": [[7, 16]]}
    nfd_query = unicodedata.normalize("NFD", "소버린AI")
    assert run_match(capsys, nfd_query, "정부, 소버린AI 예산 확대") == {
        "matched": True, "highlights": [[4, 9]]}


@pytest.mark.parametrize(("query", "text", "highlights"), [
    (PHRASE, "OpenAI\u00a0코리아, 국내 진출", [[0, 10]]),
    (PHRASE, "OpenAI  코리아 출범", [[0, 11]]),
    (PHRASE, "OpenAI코리아 대표 인터뷰", [[0, 9]]),
    (PHRASE, "OpenAI\u3000코리아 출범", [[0, 10]]),
    (PHRASE, "OpenAI\u2009코리아 출범", [[0, 10]]),
    ("소버린AI", "정부 소버린 AI 전략", [[3, 9]]),
])
def test_b18_whitespace_variants(capsys, query: str, text: str, highlights: list) -> None:
    assert run_match(capsys, query, text) == {"matched": True, "highlights": highlights}


def test_b18_negative_control_words_apart_do_not_match(capsys) -> None:
    assert run_match(capsys, "소버린AI", "소버린 국가의 AI 전략") == {
        "matched": False, "highlights": []}


@pytest.mark.parametrize(("query", "text", "highlights"), [
    (PHRASE, "Open\u200bAI 코리아 출범", [[0, 11]]),
    ("소버린AI", "소버린\u200dAI 펀드", [[0, 6]]),
    ("소버린AI", "\ufeff소버린AI", [[1, 6]]),
])
def test_b19_zero_width_characters(capsys, query: str, text: str, highlights: list) -> None:
    assert run_match(capsys, query, text) == {"matched": True, "highlights": highlights}


@pytest.mark.parametrize(("text", "highlights"), [
    ("ＯｐｅｎＡＩ\u3000코리아 출범", [[0, 10]]),
    ("ｏｐｅｎａｉ 코리아", [[0, 10]]),
])
def test_b20_full_width_latin(capsys, text: str, highlights: list) -> None:
    assert run_match(capsys, PHRASE, text) == {"matched": True, "highlights": highlights}
