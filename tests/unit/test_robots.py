"""Unit tests for sokbo_crawler.robots: what a robots.txt answer means (RFC 9309)."""

from __future__ import annotations

from urllib.robotparser import RobotFileParser

import pytest

from sokbo_crawler.fetch import user_agent
from sokbo_crawler.robots import MAX_BYTES, RobotsPolicy, origin_of, product_token, truncate

B01_SITE = b"User-agent: *\nDisallow: /\nAllow: /news/\n"
B01_FEED = b"User-agent: *\nDisallow: /news/\nAllow: /news/rss.xml\n"


@pytest.mark.parametrize(("body", "url", "allowed"), [
    (B01_SITE, "https://news.example.kr/news/2024/03/05/123", True),
    (B01_SITE, "https://news.example.kr/admin/", False),
    (B01_FEED, "https://news.example.kr/news/rss.xml", True),
    (B01_FEED, "https://news.example.kr/news/2024/1", False),
])
def test_b01_longest_match_wins_over_file_order(body: bytes, url: str, allowed: bool) -> None:
    policy = RobotsPolicy.from_response(200, body)
    assert policy.allows(url, product_token("sokbo-crawler/1.0")) is allowed
    assert policy.allows(url, product_token(user_agent())) is allowed


def test_b01_the_stdlib_gets_the_article_wrong() -> None:
    """The bug this guards against: first match wins in urllib.robotparser (3.11)."""
    parser = RobotFileParser()
    parser.parse(B01_SITE.decode().splitlines())
    assert not parser.can_fetch("sokbo-crawler/1.0", "https://news.example.kr/news/2024/03/05/123")


def test_allow_wins_a_tie() -> None:
    policy = RobotsPolicy.from_response(200, b"User-agent: *\nDisallow: /a\nAllow: /a\n")
    assert policy.allows("https://x.kr/a", "sokbo")


@pytest.mark.parametrize(("agent", "token"), [
    (user_agent(), "sokbo"),
    ("sokbo-crawler/1.0", "sokbo-crawler"),
    ("Sokbo", "sokbo"),
    ("  sokbo_test/2 (x)", "sokbo_test"),
])
def test_product_token(agent: str, token: str) -> None:
    assert product_token(agent) == token


@pytest.mark.parametrize("agent", ["", "/1.0", "(compatible)", "sokbo2.0/1"])
def test_product_token_refuses_a_user_agent_without_one(agent: str) -> None:
    with pytest.raises(ValueError, match="product token"):
        product_token(agent)


def test_sokbo_group_is_preferred_to_the_star_group() -> None:
    body = (b"User-agent: *\nDisallow: /\n\n"
            b"User-agent: SOKBO\nDisallow: /private/\nCrawl-delay: 7\n\n"
            b"User-agent: otherbot\nAllow: /\n")
    policy = RobotsPolicy.from_response(200, body)
    assert policy.allows("https://x.kr/news/1", "sokbo")
    assert not policy.allows("https://x.kr/private/1", "sokbo")
    assert not policy.allows("https://x.kr/news/1", "unknownbot")
    assert policy.crawl_delay("sokbo") == 7.0
    assert policy.crawl_delay("unknownbot") is None


@pytest.mark.parametrize(("status", "allowed", "outcome", "transient"), [
    (404, True, "unavailable", False),
    (410, True, "unavailable", False),
    (400, True, "unavailable", False),
    (401, True, "forbidden", False),  # RFC 9309 §2.3.1.3, not urllib's "disallow all"
    (403, True, "forbidden", False),
    (301, True, "unavailable", False),  # still a redirect after five: §2.3.1.2
    (429, False, "throttled", True),
    (500, False, "server_error", True),
    (503, False, "server_error", True),
    (0, False, "unreachable", True),
])
def test_status_handling(status: int, allowed: bool, outcome: str, transient: bool) -> None:
    policy = RobotsPolicy.from_response(status, b"User-agent: *\nDisallow: /\n")
    assert policy.allows("https://x.kr/news/1", "sokbo") is allowed
    assert (policy.outcome, policy.transient) == (outcome, transient)
    assert policy.crawl_delay("sokbo") is None


def test_the_robots_file_itself_is_always_allowed() -> None:
    policy = RobotsPolicy.from_response(200, b"User-agent: *\nDisallow: /\n")
    assert policy.allows("https://x.kr/robots.txt", "sokbo")


def test_an_empty_or_bom_prefixed_file() -> None:
    assert RobotsPolicy.from_response(200, b"").allows("https://x.kr/a", "sokbo")
    policy = RobotsPolicy.from_response(200, b"\xef\xbb\xbfUser-agent: *\nDisallow: /a\n")
    assert not policy.allows("https://x.kr/a", "sokbo")


def test_non_ascii_paths_match_percent_encoded() -> None:
    policy = RobotsPolicy.from_response(200, "User-agent: *\nDisallow: /뉴스/\n".encode())
    assert not policy.allows("https://x.kr/%EB%89%B4%EC%8A%A4/1", "sokbo")
    assert not policy.allows("https://x.kr/뉴스/1", "sokbo")


def test_only_the_first_500_kib_is_parsed_and_a_cut_line_is_dropped() -> None:
    head = b"User-agent: *\nDisallow: /early/\n"
    filler = b"# " + b"x" * 98 + b"\n"
    body = head + filler * (MAX_BYTES // len(filler)) + b"Disallow: /late/\n"
    assert len(body) > MAX_BYTES
    cut = truncate(body)
    assert len(cut) <= MAX_BYTES and cut.endswith(b"\n")
    policy = RobotsPolicy.from_response(200, body)
    assert not policy.allows("https://x.kr/early/1", "sokbo")
    assert policy.allows("https://x.kr/late/1", "sokbo")
    # a rule cut in two at the limit is not read as a shorter, broader one
    partial = (b"User-agent: *\n" + b"#" * (MAX_BYTES - 28) + b"\nDisallow: /news/archive\n")
    assert truncate(partial).endswith(b"#\n")
    assert RobotsPolicy.from_response(200, partial).allows("https://x.kr/news/1", "sokbo")


@pytest.mark.parametrize(("url", "origin"), [
    ("https://News.Example.kr/a/b?c", "https://news.example.kr"),
    ("http://news.example.kr:80/a", "http://news.example.kr"),
    ("https://news.example.kr:443/a", "https://news.example.kr"),
    ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080"),
    ("http://[::1]:8080/x", "http://[::1]:8080"),
    ("javascript:alert(1)", None),
    ("http://[::1/x", None),
    ("ftp://x.kr/a", None),
    ("/relative", None),
])
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin
