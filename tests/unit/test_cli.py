"""Unit tests for the ``sokbo`` command line: check-config and match."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sokbo.cli import main

ROOT = Path(__file__).resolve().parents[2]

_VALID = """\
sources:
  - id: fetv
    url: https://www.fetv.co.kr/rss/allArticle.xml
rules:
  - id: openai-korea
    query: '"OpenAI 코리아" OR "오픈AI 코리아"'
    channels: [console]
channels:
  - id: console
    kind: console
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "SOKBO_LOG_LEVEL", "SOKBO_METRICS_PORT", "SOKBO_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _json_out(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1, out  # one JSON object on one line
    return json.loads(lines[0])


# --- check-config ------------------------------------------------------------------------


def test_check_config_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(_VALID, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "ok" in captured.out
    assert str(path) in captured.out
    assert captured.err == ""


def test_check_config_demo(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DEMO_SITE", "http://127.0.0.1:8000")
    assert main(["check-config", str(ROOT / "config" / "demo.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("crawler:\n  per_host_dealy: 1s\n", ["crawler.per_host_dealy", "unknown key"]),
        (_VALID.replace("channels: [console]", "channels: [pr-slack]"),
         ["rules[0].channels", "pr-slack"]),
        (_VALID.replace('\'"OpenAI 코리아" OR "오픈AI 코리아"\'', "'(a OR b'"),
         ["rules[0].query", "column"]),
        ("redis_url: [unclosed\n", ["line"]),
        ("channels:\n  - id: hook\n    kind: slack\n    webhook_url: ${SOKBO_TEST_UNSET_VAR}\n",
         ["SOKBO_TEST_UNSET_VAR", "channels[0].webhook_url"]),
    ],
    ids=["unknown-key", "unknown-channel", "bad-query", "bad-yaml", "missing-env"],
)
def test_check_config_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch, text: str,
                              needles: list[str]) -> None:
    monkeypatch.delenv("SOKBO_TEST_UNSET_VAR", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert "ok" not in captured.out
    assert str(path) in captured.err
    for needle in needles:
        assert needle in captured.err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err


# --- match -------------------------------------------------------------------------------


def test_match_phrase_highlight(capsys: pytest.CaptureFixture[str]) -> None:
    text = "'OpenAI 코리아'의 출범"
    assert main(["match", "--query", '"OpenAI 코리아"', "--text", text]) == 0
    result = _json_out(capsys)
    assert result == {"matched": True, "highlights": [[1, 11]]}
    start, end = result["highlights"][0]
    assert text[start:end] == "OpenAI 코리아"


@pytest.mark.parametrize(
    ("query", "text", "spans"),
    [
        ("소버린AI", "정부가 소버린AI 전략을 발표했다", ["소버린AI"]),
        ("삼성 AND 반도체", "삼성전자 반도체 투자. 삼성의 반도체", None),
        ('"OpenAI 코리아" OR 소버린AI', "소버린AI와 'OpenAI 코리아'",
         ["소버린AI", "OpenAI 코리아"]),
    ],
)
def test_match_highlights_slice_back_to_the_terms(capsys: pytest.CaptureFixture[str],
                                                  query: str, text: str,
                                                  spans: list[str] | None) -> None:
    assert main(["match", "--query", query, "--text", text]) == 0
    result = _json_out(capsys)
    assert result["matched"] is True
    assert result["highlights"]
    for start, end in result["highlights"]:
        assert 0 <= start < end <= len(text)
    if spans is not None:
        assert sorted(text[s:e] for s, e in result["highlights"]) == sorted(spans)


def test_match_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "제목\n\n오픈AI 코리아가 오늘 출범했다. 'OpenAI 코리아'의 첫 행사.\n"
    path = tmp_path / "article.txt"
    path.write_text(text, encoding="utf-8")
    assert main(["match", "--query", '"OpenAI 코리아"', "--file", str(path)]) == 0
    result = _json_out(capsys)
    assert result["matched"] is True
    assert [text[s:e] for s, e in result["highlights"]] == ["OpenAI 코리아"]


def test_match_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["match", "--query", "a", "--file", str(tmp_path / "none.txt")]) == 2
    assert "none.txt" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ('"OpenAI 코리아"', "OpenAI가 한국 법인을 세웠다"),
        ("소버린AI", ""),
        ("AI", "email 주소"),
    ],
)
def test_no_match(capsys: pytest.CaptureFixture[str], query: str, text: str) -> None:
    assert main(["match", "--query", query, "--text", text]) == 0
    assert _json_out(capsys) == {"matched": False, "highlights": []}


@pytest.mark.parametrize("query", ['"OpenAI 코리아', "(a OR b", "a AND", "a OR", ""])
def test_match_invalid_query(capsys: pytest.CaptureFixture[str], query: str) -> None:
    assert main(["match", "--query", query, "--text", "아무 글"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "column" in captured.err


@pytest.mark.parametrize(
    "argv",
    [
        ["match", "--query", "a"],  # neither --text nor --file
        ["match", "--query", "a", "--text", "x", "--file", "y"],
        ["match", "--text", "x"],
        [],
        ["fly"],
        ["run", "searcher"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err


def test_run_without_config_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "crawler"]) == 2
    assert "SOKBO_CONFIG" in capsys.readouterr().err


# --- the installed entry point -----------------------------------------------------------


def test_sokbo_help_via_entry_point() -> None:
    # `uv run --no-sync` so the test never re-installs the environment it runs in
    uv = shutil.which("uv")
    command = [uv, "run", "--no-sync", "sokbo"] if uv else [
        str(Path(sys.executable).with_name("sokbo"))]
    done = subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for word in ("run", "check-config", "match"):
        assert word in done.stdout


def _stdin(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    import io

    data = ("\n".join(lines) + "\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_match_batch_goes_on_after_an_invalid_query(monkeypatch, capsys) -> None:
    _stdin(monkeypatch, json.dumps({"query": "소버린AI", "text": "소버린 AI를"}),
           json.dumps({"query": "(a OR", "text": "x"}), "not json",
           json.dumps({"query": "AI", "text": "email"}))
    assert main(["match", "--batch"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[0] == {"matched": True, "highlights": [[0, 6]]}
    assert "column 4" in out[1]["error"]
    assert out[2]["error"].startswith("line 3: not JSON")
    assert out[3] == {"matched": False, "highlights": []}


def test_match_config_batch_runs_every_rule(monkeypatch, capsys, tmp_path) -> None:
    config = tmp_path / "rules.yaml"
    config.write_text("""
synonyms: [[OpenAI, 오픈AI]]
rules:
  - {id: openai-korea, query: '"OpenAI 코리아"', channels: [out]}
  - {id: sovereign-ai, query: 소버린AI, channels: [out]}
channels: [{id: out, kind: console}]
""", encoding="utf-8")
    _stdin(monkeypatch, json.dumps({"title": "오픈AI 코리아 출범", "text": "소버린 AI 전략"}),
           json.dumps({"title": "", "text": "날씨"}))
    assert main(["match", "--config", str(config), "--batch"]) == 0
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert first["rules"] == ["openai-korea", "sovereign-ai"]
    assert {"rule": "openai-korea", "field": "title", "term": "OpenAI 코리아", "start": 0,
            "end": 8, "synonym": "오픈AI 코리아"} in first["hits"]
    assert second == {"rules": [], "hits": []}


def test_match_batch_with_query_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["match", "--batch", "--query", "x"])
    assert info.value.code == 2
