"""Unit tests for ``sokbo extract``: the parser's ArticleParsed for a saved page."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sokbo.cli import main
from sokbo.messages import ArticleParsed, article_id_for

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
B12 = FIXTURES / "parser" / "b12-b-og-title-suffix.html"
EUC_KR = FIXTURES / "pages" / "sovereign-ai-euckr.html"
URL = "https://news.example.kr/article/20240305/123"
LISTING_DIR = FIXTURES / "corpus" / "html"


def _article(capsys: pytest.CaptureFixture[str], argv: list[str]) -> ArticleParsed:
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("{\n  ")  # pretty-printed
    return ArticleParsed.model_validate(json.loads(captured.out))


def test_extract_prints_the_article(capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC)
    article = _article(capsys, ["extract", "--file", str(B12), "--url", URL + "?ncid=rss"])
    assert article.title == "반도체 수출 지원책 발표"
    assert article.text.splitlines()[0] == "정부가 반도체 수출 지원책을 발표했다."
    assert (article.url, article.canonical_url) == (URL + "?ncid=rss", URL)
    assert article.article_id == article_id_for(URL)
    assert (article.source_id, article.language, article.encoding) == ("cli", "ko", "utf-8")
    for stamp in (article.discovered_at, article.fetched_at, article.parsed_at):
        assert before <= stamp <= datetime.now(UTC) + timedelta(seconds=1)


def test_extract_output_is_readable_utf8(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", "--file", str(B12)]) == 0
    out = capsys.readouterr().out
    assert '"title": "반도체 수출 지원책 발표"' in out  # not \uXXXX escapes
    assert json.loads(out)["url"] == B12.resolve().as_uri()  # no --url: the file's URI


def test_extract_fields_of_a_real_page(capsys: pytest.CaptureFixture[str]) -> None:
    article = _article(capsys, ["extract", "--file", str(EUC_KR)])
    assert article.title == "정부, 소버린 AI 전략 발표…국산 모델 키운다"
    assert (article.encoding, article.authors) == ("cp949", ["김서연"])
    assert article.author_emails == ["ksy@hangeul-shinmun.example"]
    assert article.published_at == datetime(2025, 9, 11, 23, 0, tzinfo=UTC)


def test_extract_encoding_overrides_the_page(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "mislabeled.html"  # says UTF-8, is CP949
    page.write_bytes(EUC_KR.read_bytes().replace(b'charset="euc-kr"', b'charset="utf-8"'))
    article = _article(capsys, ["extract", "--file", str(page), "--encoding", "euc-kr"])
    assert article.encoding == "cp949"
    assert article.title == "정부, 소버린 AI 전략 발표…국산 모델 키운다"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["extract", "--file", "/no/such/page.html"],
         "sokbo: cannot read /no/such/page.html: No such file or directory\n"),
        (["extract", "--file", str(B12), "--encoding", "bogus"],
         "sokbo: unknown encoding label 'bogus' (try euc-kr, utf-8)\n"),
    ],
)
def test_extract_bad_input_exits_2(argv: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty body: "),
        (bytes.fromhex("89504e470d0a1a0a0000000d49484452"), "not HTML: "),
        (b"<html><body><nav><a href='/'>home</a></nav></body></html>", "no article text found"),
    ],
)
def test_extract_page_without_an_article_exits_2(tmp_path: Path, content: bytes, reason: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.html"
    page.write_bytes(content)
    assert main(["extract", "--file", str(page), "--url", URL]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"sokbo: no article in {page}: {reason}")
    assert captured.err.count("\n") == 1  # one line


def test_extract_listing_page_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    listing = LISTING_DIR / "naver-news-politics-section-2022-mislabeled-charset.html"
    assert main(["extract", "--file", str(listing)]) == 2
    assert "a listing page" in capsys.readouterr().err


def test_extract_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["extract"])
    assert exit_.value.code == 2
    assert "--file" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("sokbo", path=str(Path(sys.executable).parent)) is None,
                    reason="the sokbo script is not installed in this environment")
def test_extract_console_script() -> None:
    script = shutil.which("sokbo", path=str(Path(sys.executable).parent))
    done = subprocess.run([script, "extract", "--file", str(B12), "--url", URL],
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.decode("utf-8"))["title"] == "반도체 수출 지원책 발표"
