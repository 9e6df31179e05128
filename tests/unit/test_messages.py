"""Unit tests for sokbo.messages: the stream contract, its encoding and its ids."""

from __future__ import annotations

import base64
import os
import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from sokbo.messages import (
    AlertRaised,
    ArticleParsed,
    ArticleSummary,
    DeadLettered,
    Hit,
    PageFetched,
    Snippet,
    alert_id_for,
    article_id_for,
    encode,
)

T0 = datetime(2025, 5, 27, 15, 0, 0, tzinfo=UTC)


def _page(body: bytes, **overrides: object) -> PageFetched:
    fields: dict[str, object] = {
        "source_id": "fetv", "source_title": "FETV",
        "url": "https://www.fetv.co.kr/news/articleView.html?idxno=1",
        "final_url": "https://www.fetv.co.kr/news/articleView.html?idxno=1",
        "status": 200, "content_type": "text/html; charset=euc-kr", "charset": "euc-kr",
        "body": body, "entry_title": "오픈AI 코리아 출범",
        "entry_published": T0 - timedelta(minutes=5),
        "discovered_at": T0, "fetched_at": T0 + timedelta(seconds=1),
    }
    fields.update(overrides)
    return PageFetched(**fields)


def _article() -> ArticleParsed:
    return ArticleParsed(
        article_id=article_id_for("https://a.example.kr/1"), url="https://a.example.kr/1",
        canonical_url="https://a.example.kr/1", source_id="a", title="제목", text="본문",
        authors=["홍길동"], language="ko", published_at=T0, encoding="utf-8",
        content_hash="0" * 64, discovered_at=T0, fetched_at=T0, parsed_at=T0)


def _alert() -> AlertRaised:
    article_id = article_id_for("https://a.example.kr/1")
    return AlertRaised(
        alert_id=alert_id_for(article_id, "openai-korea"), rule_id="openai-korea",
        query='"OpenAI 코리아"',
        article=ArticleSummary(article_id=article_id, url="https://a.example.kr/1",
                               title="'OpenAI 코리아' 출범", source_id="a"),
        matched_terms=["OpenAI 코리아"],
        hits=[Hit(field="title", term="OpenAI 코리아", start=1, end=11)],
        snippets=[Snippet(field="title", text="'OpenAI 코리아' 출범", highlights=[(1, 11)])],
        channels=["pr-slack"], discovered_at=T0, fetched_at=T0, parsed_at=T0, raised_at=T0)


# --- encode / decode ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(bytes(range(256)), id="all-bytes"),
        pytest.param("<html>한국어 똠 햏</html>".encode("cp949"), id="cp949"),
        pytest.param(b"\xff\xfe\x00\x00\x80\x81invalid utf-8\xc3", id="invalid-utf8"),
        pytest.param(b"\xfb\xff\xbf" * 100, id="base64-url-unsafe"),
        pytest.param(os.urandom(64 * 1024), id="random-64k"),
    ],
)
@pytest.mark.parametrize("mode", ["json", "python"])
def test_page_fetched_round_trip(body: bytes, mode: str) -> None:
    page = _page(body)
    data = encode(page)
    assert isinstance(data, bytes)
    decoded = (PageFetched.model_validate_json(data) if mode == "json"
               else PageFetched.model_validate(orjson.loads(data)))
    assert decoded == page
    assert decoded.body == body


def test_body_travels_as_base64_text() -> None:
    body = "한국어".encode("cp949")
    wire = orjson.loads(encode(_page(body)))
    assert isinstance(wire["body"], str)
    assert re.fullmatch(r"[A-Za-z0-9+/=_-]*", wire["body"])
    text = wire["body"].replace("-", "+").replace("_", "/")
    assert base64.b64decode(text + "=" * (-len(text) % 4)) == body


def test_datetimes_are_rfc3339_utc() -> None:
    wire = orjson.loads(encode(_page(b"x")))
    parsed = datetime.fromisoformat(wire["fetched_at"].replace("Z", "+00:00"))
    assert parsed == T0 + timedelta(seconds=1)
    assert parsed.utcoffset() == timedelta(0)


def test_page_fetched_optional_fields_default() -> None:
    page = PageFetched(source_id="s", url="https://a/1", final_url="https://a/1", status=200,
                       body=b"x", discovered_at=T0, fetched_at=T0)
    assert page.schema_version == 1
    assert page.entry_title is None and page.entry_published is None
    assert PageFetched.model_validate_json(encode(page)) == page


@pytest.mark.parametrize(
    "factory",
    [lambda: _page(b"\x00\xff"), _article, _alert,
     lambda: DeadLettered(stage="parser", stream="sokbo.pages", entry_id="1-0",
                          error="PermanentError: boom", deliveries=5,
                          original={"url": "https://a/1"}, failed_at=T0)],
    ids=["PageFetched", "ArticleParsed", "AlertRaised", "DeadLettered"],
)
def test_every_message_round_trips(factory) -> None:
    message = factory()
    data = encode(message)
    cls = type(message)
    assert cls.model_validate_json(data) == message
    assert cls.model_validate(orjson.loads(data)) == message


# --- forward compatibility ---------------------------------------------------------------


@pytest.mark.parametrize(
    "factory", [lambda: _page(b"body"), _article, _alert],
    ids=["PageFetched", "ArticleParsed", "AlertRaised"],
)
def test_unknown_fields_are_ignored(factory) -> None:
    message = factory()
    wire = orjson.loads(encode(message))
    wire["added_in_v2"] = {"nested": [1, 2, 3]}
    wire["another_new_field"] = "값"
    cls = type(message)
    decoded = cls.model_validate_json(orjson.dumps(wire))
    assert decoded == message
    assert not hasattr(decoded, "added_in_v2")
    assert cls.model_validate(wire) == message


def test_unknown_fields_in_nested_models_are_ignored() -> None:
    wire = orjson.loads(encode(_alert()))
    wire["article"]["thumbnail"] = "https://a/1.jpg"
    wire["hits"][0]["score"] = 0.9
    wire["snippets"][0]["html"] = "<b>x</b>"
    assert AlertRaised.model_validate_json(orjson.dumps(wire)) == _alert()


def test_newer_schema_version_is_accepted() -> None:
    wire = orjson.loads(encode(_page(b"x")))
    wire["schema_version"] = 2
    decoded = PageFetched.model_validate_json(orjson.dumps(wire))
    assert decoded.schema_version == 2
    assert decoded.body == b"x"


def test_messages_are_frozen() -> None:
    page = _page(b"x")
    with pytest.raises(ValueError):
        page.status = 500  # type: ignore[misc]


# --- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://www.fetv.co.kr/news/articleView.html?idxno=1",
     "https://www.chosun.com/national/2026/07/31/MKHNSCIR7BENLMZHSPZJ5SNEKU/",
     "https://news.example.kr/한국어/기사"],
)
def test_article_id_is_stable_hex(url: str) -> None:
    first = article_id_for(url)
    assert first == article_id_for(url)
    assert re.fullmatch(r"[0-9a-f]{16}", first)


def test_article_id_known_value() -> None:
    # sha256("https://a.example.kr/1")[:16]: pinned so a change of scheme is noticed
    import hashlib

    expected = hashlib.sha256(b"https://a.example.kr/1").hexdigest()[:16]
    assert article_id_for("https://a.example.kr/1") == expected


def test_article_ids_distinct() -> None:
    urls = [f"https://news.example.kr/a/{i}" for i in range(1000)]
    urls += ["https://news.example.kr/a/1?x=1", "http://news.example.kr/a/1"]
    assert len({article_id_for(u) for u in urls}) == len(urls)


def test_alert_id_is_stable_and_distinct() -> None:
    article = article_id_for("https://a.example.kr/1")
    other = article_id_for("https://a.example.kr/2")
    assert alert_id_for(article, "r1") == alert_id_for(article, "r1")
    assert re.fullmatch(r"[0-9a-f]{16}", alert_id_for(article, "r1"))
    ids = {alert_id_for(a, r) for a in (article, other) for r in ("r1", "r2", "openai-korea")}
    assert len(ids) == 6
    assert alert_id_for(article, "r1") != article


@pytest.mark.parametrize(
    ("left", "right"),
    [(("ab", "c"), ("a", "bc")), (("a", "b-c"), ("a-b", "c")), (("", "ab"), ("ab", ""))],
)
def test_alert_id_has_no_concatenation_collisions(left: tuple[str, str],
                                                  right: tuple[str, str]) -> None:
    assert alert_id_for(*left) != alert_id_for(*right)
