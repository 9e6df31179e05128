"""Rendering an alert for Slack, e-mail and the console (pure functions, no I/O)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta

import pytest

from sokbo.messages import AlertRaised, ArticleSummary, Snippet
from sokbo_notifier.render import (
    console_line,
    email_message,
    escape_mrkdwn,
    kst,
    slack_payload,
)
from sokbo_notifier.render_digest import (
    DIGEST_LIMIT,
    email_digest,
    group_by_rule,
    period_label,
    slack_digest_payload,
)

NOW = datetime(2025, 9, 10, 5, 30, tzinfo=UTC)
SENTENCE = ("오픈AI(OpenAI)가 10일 서울에서 기자간담회를 열고 아시아 3번째 지사인 "
            "'OpenAI 코리아'의 출범을 공식 선언했다.")
HIT = (SENTENCE.index("OpenAI 코리아"), SENTENCE.index("OpenAI 코리아") + len("OpenAI 코리아"))
URL = "https://news.example.kr/news/articleView.html?idxno=123&sc=rss"
ZWSP = "\u200b"


def make_alert(*, title: str = "오픈AI, 'OpenAI 코리아' 공식 출범", url: str = URL,
               snippets: list[Snippet] | None = None, published: datetime | None = NOW,
               source_title: str | None = "FETV") -> AlertRaised:
    if snippets is None:
        snippets = [Snippet(field="text", text=SENTENCE, highlights=[HIT])]
    return AlertRaised(
        alert_id="0123456789abcdef", rule_id="openai-korea", query='"OpenAI 코리아"',
        article=ArticleSummary(article_id="a1b2c3", url=url, title=title, source_id="fetv",
                               source_title=source_title, published_at=published),
        matched_terms=["OpenAI 코리아"], hits=[], snippets=snippets, channels=["pr-slack"],
        discovered_at=NOW, fetched_at=NOW, parsed_at=NOW, raised_at=NOW,
    )


def texts(payload: dict) -> list[str]:
    """Every mrkdwn string in a payload: sections and context elements."""
    out = []
    for block in payload["blocks"]:
        if block["type"] == "section":
            out.append(block["text"]["text"])
        else:
            out.extend(element["text"] for element in block["elements"])
    return out


def unmark(text: str) -> str:
    """Undo our quoting and bold marks (keeps entities)."""
    lines = [line.removeprefix("> ").removeprefix(">") for line in text.split("\n")]
    return "\n".join(lines).replace(ZWSP, "").replace("*", "")


# --- escaping ----------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "escaped"), [
    ("A&B", "A&amp;B"),
    ("<!channel> 긴급", "&lt;!channel&gt; 긴급"),
    ("<@U0000000> 인터뷰", "&lt;@U0000000&gt; 인터뷰"),
    ("a >> b", "a &gt;&gt; b"),
    ("&amp;", "&amp;amp;"),
    ("*bold* _it_ ~s~ `c`", "*bold* _it_ ~s~ `c`"),
])
def test_escape_mrkdwn_only_touches_amp_lt_gt(raw: str, escaped: str) -> None:
    assert escape_mrkdwn(raw) == escaped


# --- Slack ---------------------------------------------------------------------------

def test_slack_payload_structure() -> None:
    payload = slack_payload(make_alert())
    assert set(payload) >= {"text", "blocks"}
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds == ["section", "context", "section"]
    assert payload["blocks"][0]["text"]["type"] == "mrkdwn"
    assert payload["blocks"][1]["elements"][0]["text"] == (
        "FETV · 2025-09-10 14:30 KST · rule: openai-korea")
    assert "openai-korea" in payload["text"]
    assert "OpenAI 코리아" in payload["text"]


def test_slack_link_b27() -> None:
    title = '<속보> A&B사, "OpenAI 코리아" 협력 >> 확대'
    heading = slack_payload(make_alert(title=title))["blocks"][0]["text"]["text"]
    assert heading == (f"<{URL}|&lt;속보&gt; A&amp;B사, \"OpenAI 코리아\" 협력 &gt;&gt; 확대>")


@pytest.mark.parametrize(("url", "expected"), [
    ("https://x.kr/a?b=1|2", "https://x.kr/a?b=1%7C2"),
    ("https://x.kr/a?q=<b>", "https://x.kr/a?q=%3Cb%3E"),
    ("https://x.kr/a?x=1&y=2", "https://x.kr/a?x=1&y=2"),
])
def test_slack_link_url_cannot_break_the_link(url: str, expected: str) -> None:
    heading = slack_payload(make_alert(url=url))["blocks"][0]["text"]["text"]
    assert heading.startswith(f"<{expected}|")
    assert heading.count("<") == 1 and heading.count(">") == 1 and heading.count("|") == 1


def test_slack_does_not_link_a_non_http_url() -> None:
    heading = slack_payload(make_alert(url="javascript:alert(1)"))["blocks"][0]["text"]["text"]
    assert "<" not in heading


@pytest.mark.parametrize("hostile", ["<!channel> 긴급", "<@U0000000> 인터뷰", "<!here|here>",
                                     "<!subteam^S123> 팀", "<https://evil.example|클릭>"])
def test_slack_never_pings_or_links_from_article_text(hostile: str) -> None:
    snippet = Snippet(field="text", text=f"본문 {hostile} 끝.", highlights=[(0, 2)])
    payload = slack_payload(make_alert(title=hostile, snippets=[snippet]))
    for text in [payload["text"], *texts(payload)]:
        # the only raw "<" allowed is the start of sokbo's own article link
        assert re.sub(r"^<https://news\.example\.kr/[^|>]*\|", "", text).count("<") == 0, text
        assert "<!" not in text and "<@" not in text


def test_slack_snippet_escaped_and_quoted() -> None:
    text = "A&B <사> 가 >> 말했다.\n둘째 줄"
    payload = slack_payload(make_alert(snippets=[Snippet(field="text", text=text,
                                                         highlights=[])]))
    assert payload["blocks"][2]["text"]["text"] == (
        "> A&amp;B &lt;사&gt; 가 &gt;&gt; 말했다.\n> 둘째 줄")


def test_slack_bold_exactly_around_the_hit() -> None:
    section = slack_payload(make_alert())["blocks"][2]["text"]["text"]
    assert f"'{ZWSP}*OpenAI 코리아*{ZWSP}'의" in section
    assert section.count("*") == 2
    assert unmark(section) == SENTENCE


@pytest.mark.parametrize(("text", "spans", "expected"), [
    # a highlight at the start of a line and one before a space: no zero-width space needed
    ("OpenAI 코리아 출범", [(0, 11)], "> *OpenAI 코리아* 출범"),
    # whitespace at the span's edges stays outside the marks
    ("가 OpenAI 나", [(1, 9)], "> 가 *OpenAI* 나"),
    # overlapping and unsorted spans are merged
    ("abc def ghi", [(4, 6), (0, 3), (5, 7)], "> *abc* *def* ghi"),
    # an out-of-range span is clamped, an empty one ignored
    ("abc", [(1, 99), (0, 0)], f"> a{ZWSP}*bc*"),
    # a span across a newline is bolded on each line
    ("ab cd\nef gh", [(3, 8)], "> ab *cd*\n> *ef* gh"),
])
def test_slack_highlight_edges(text: str, spans: list[tuple[int, int]], expected: str) -> None:
    snippet = Snippet(field="text", text=text, highlights=spans)
    assert slack_payload(make_alert(snippets=[snippet]))["blocks"][2]["text"]["text"] == expected


@pytest.mark.parametrize("hit", ["a*b", "*a*", "**", "x * y"])
def test_slack_star_inside_a_highlight_cannot_break_bold(hit: str) -> None:
    text = f"앞 {hit} 뒤"
    snippet = Snippet(field="text", text=text, highlights=[(2, 2 + len(hit))])
    section = slack_payload(make_alert(snippets=[snippet]))["blocks"][2]["text"]["text"]
    assert section.count("*") == 2
    assert section.startswith("> 앞 *") and section.endswith("* 뒤")


def test_slack_escapes_inside_a_highlight() -> None:
    text = "기업 <A&B> 발표"
    snippet = Snippet(field="text", text=text, highlights=[(3, 8)])
    section = slack_payload(make_alert(snippets=[snippet]))["blocks"][2]["text"]["text"]
    assert section == "> 기업 *&lt;A&amp;B&gt;* 발표"


def test_slack_long_snippet_cut_at_a_sentence() -> None:
    text = (SENTENCE + " ") * 139  # 10,008 characters
    assert len(text) > 10_000
    spans = [(i * (len(SENTENCE) + 1) + HIT[0], i * (len(SENTENCE) + 1) + HIT[1])
             for i in range(139)]
    snippet = Snippet(field="text", text=text, highlights=spans)
    section = slack_payload(make_alert(snippets=[snippet]))["blocks"][2]["text"]["text"]
    assert len(section) <= 3000
    assert section.endswith("선언했다.…")
    assert section.count("*") % 2 == 0


def test_slack_long_escaped_snippet_still_fits() -> None:
    snippet = Snippet(field="text", text="<&> " * 2500, highlights=[(0, 3)])
    section = slack_payload(make_alert(snippets=[snippet]))["blocks"][2]["text"]["text"]
    assert len(section) <= 3000
    assert section.endswith("…")
    assert not re.search(r"&(?!amp;|lt;|gt;)", section)  # no entity cut in half


def test_slack_block_limit() -> None:
    snippets = [Snippet(field="text", text=f"문장 {i}.", highlights=[]) for i in range(80)]
    payload = slack_payload(make_alert(snippets=snippets))
    assert len(payload["blocks"]) == 50
    assert "33" in payload["blocks"][-1]["elements"][0]["text"]  # 80 - 47 shown


def test_slack_long_title_is_cut() -> None:
    payload = slack_payload(make_alert(title="가" * 5000))
    assert len(payload["blocks"][0]["text"]["text"]) <= 3000
    assert "…" in payload["blocks"][0]["text"]["text"]


@pytest.mark.parametrize(("source_title", "published", "expected"), [
    ("FETV", NOW, "FETV · 2025-09-10 14:30 KST · rule: openai-korea"),
    (None, NOW, "fetv · 2025-09-10 14:30 KST · rule: openai-korea"),
    ("A&B <뉴스>", None, "A&amp;B &lt;뉴스&gt; · 시간 미상 · rule: openai-korea"),
])
def test_slack_context_line(source_title: str | None, published: datetime | None,
                            expected: str) -> None:
    payload = slack_payload(make_alert(source_title=source_title, published=published))
    assert payload["blocks"][1]["elements"][0]["text"] == expected


@pytest.mark.parametrize(("when", "expected"), [
    (datetime(2025, 9, 10, 5, 30, tzinfo=UTC), "2025-09-10 14:30 KST"),
    (datetime(2025, 9, 10, 5, 30), "2025-09-10 14:30 KST"),  # naive = UTC
    (datetime(2025, 12, 31, 15, 0, tzinfo=UTC), "2026-01-01 00:00 KST"),
    (None, "시간 미상"),
])
def test_kst(when: datetime | None, expected: str) -> None:
    assert kst(when) == expected


# --- e-mail ----------------------------------------------------------------------------

def build_email(title: str = "오픈AI, 'OpenAI 코리아' 공식 출범",
                **kwargs) -> email.message.EmailMessage:
    return email_message(make_alert(title=title, **kwargs), sender="속보 <alerts@example.com>",
                         recipients=["pr@example.com", "ceo@example.com"])


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


@pytest.mark.parametrize("title", [
    "오픈AI, 'OpenAI 코리아' 공식 출범",
    '<속보> A&B사, "OpenAI 코리아" 협력 >> 확대',
    "[알림] OpenAI 코리아 관련 기사 3건",
    # long enough to be folded: CPython's folder used to lose a space here (B30)
    "[속보] OpenAI A&B사 A&B사 서울에서 확대 코리아 서울에서 \"소버린AI\" 확대 [속보] "
    "기자간담회 >> >> 출범 10일 <!channel> 기자간담회 확대 >> 서울에서 오픈AI 서울에서 코리아",
    "plain ASCII title =?utf-8?q?not_an_encoded_word?=",
])
def test_email_subject_is_encoded_and_round_trips(title: str) -> None:
    raw = build_email(title).as_bytes()
    assert raw.isascii()
    headers = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert all(len(line) <= 78 for line in headers.split("\r\n"))
    assert parse(raw)["subject"] == f"[sokbo] openai-korea: {title}"


def test_email_headers() -> None:
    msg = parse(build_email().as_bytes())
    assert msg["from"].addresses[0].addr_spec == "alerts@example.com"
    assert msg["from"].addresses[0].display_name == "속보"
    assert [a.addr_spec for a in msg["to"].addresses] == ["pr@example.com", "ceo@example.com"]
    assert msg["message-id"] == "<sokbo.0123456789abcdef@example.com>"
    assert msg["date"].datetime == NOW
    assert msg["auto-submitted"] == "auto-generated"


def test_email_message_id_is_stable_per_alert() -> None:
    assert build_email()["Message-ID"] == build_email(title="다른 제목")["Message-ID"]


def test_email_parts() -> None:
    msg = parse(build_email().as_bytes())
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content()
    rich = msg.get_body(("html",)).get_content()
    for part in (plain, rich):
        assert "OpenAI 코리아" in part
        assert "FETV" in part and "2025-09-10 14:30 KST" in part and "openai-korea" in part
    assert URL in plain
    assert "**OpenAI 코리아**" in plain
    assert '<a href="https://news.example.kr/news/articleView.html?idxno=123&amp;sc=rss">' in rich
    assert "<mark><strong>OpenAI 코리아</strong></mark>" in rich


def test_email_html_is_escaped() -> None:
    text = "<script>alert(1)</script> A&B 협력"
    snippet = Snippet(field="text", text=text, highlights=[(26, 29)])
    msg = parse(build_email(title="<b>제목</b>", snippets=[snippet]).as_bytes())
    rich = msg.get_body(("html",)).get_content()
    assert "<script>" not in rich and "<b>제목" not in rich
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rich
    assert "&lt;b&gt;제목&lt;/b&gt;" in rich
    assert "<mark><strong>A&amp;B</strong></mark>" in rich


def test_email_bodies_are_seven_bit() -> None:
    msg = build_email()
    for part in msg.iter_parts():
        assert part["Content-Transfer-Encoding"] in {"base64", "quoted-printable"}


def test_email_title_newlines_cannot_inject_headers() -> None:
    raw = build_email(title="제목\r\nBcc: victim@example.com").as_bytes()
    assert b"\r\nBcc:" not in raw
    assert parse(raw)["subject"] == "[sokbo] openai-korea: 제목 Bcc: victim@example.com"


# --- console -----------------------------------------------------------------------------

def test_console_line() -> None:
    line = console_line(make_alert())
    assert line.startswith("[openai-korea] 2025-09-10 14:30 KST FETV | ")
    assert URL in line and "*OpenAI 코리아*" in line


def test_console_line_is_one_line_without_terminal_escapes() -> None:
    snippet = Snippet(field="text", text="첫 줄\n둘째 줄\x1b[2J", highlights=[])
    line = console_line(make_alert(title="제목\n\x1b[31m빨강", snippets=[snippet]))
    assert "\n" not in line and "\x1b" not in line
    assert "제목 [31m빨강" in line


# --- Slack digest ------------------------------------------------------------------------

def numbered(count: int, *, rule_id: str = "openai-korea") -> list[AlertRaised]:
    return [make_alert(title=f"기사 {n} <속보> A&B", url=f"https://news.example.kr/a/{n}",
                       ).model_copy(update={"rule_id": rule_id, "alert_id": f"{n:016x}"})
            for n in range(1, count + 1)]


def linked(payload: dict) -> list[str]:
    return re.findall(r"<(https://news\.example\.kr/a/\d+)\|", "\n".join(texts(payload)))


def test_slack_digest_lists_each_alert_once_with_link_outlet_time_and_rule() -> None:
    alerts = numbered(3) + numbered(2, rule_id="sovereign-ai")
    payload = slack_digest_payload(alerts)
    blocks = payload["blocks"]
    assert blocks[0] == {"type": "section", "text": {"type": "mrkdwn", "text": "*새 알림 5건*"}}
    assert blocks[1]["elements"][0]["text"] == "openai-korea 3건 · sovereign-ai 2건"
    assert blocks[2]["text"]["text"] == (
        "<https://news.example.kr/a/1|기사 1 &lt;속보&gt; A&amp;B>\n"
        "FETV · 2025-09-10 14:30 KST · rule: openai-korea")
    assert linked(payload) == [f"https://news.example.kr/a/{n}" for n in (1, 2, 3, 1, 2)]
    assert len(blocks) == 7
    assert payload["text"].startswith("새 알림 5건: [openai-korea] 기사 1 &lt;속보&gt; A&amp;B;")
    assert "[sovereign-ai] 기사 2" in payload["text"]


def test_slack_digest_keeps_block_kit_limits_and_says_how_many_follow() -> None:
    payload = slack_digest_payload(numbered(60), waiting=5)
    assert len(payload["blocks"]) == 43 <= 50
    assert len(linked(payload)) == DIGEST_LIMIT == 40
    assert payload["blocks"][-1]["elements"][0]["text"] == "…이어서 25건 더"
    assert all(len(text) <= 3000 for text in texts(payload))
    assert payload["text"].endswith("[openai-korea] 기사 40 &lt;속보&gt; A&amp;B")


def test_slack_digest_fallback_text_is_cut_between_items() -> None:
    alerts = [make_alert(title=f"{n}번 " + "가나다 & " * 60, url=f"https://news.example.kr/a/{n}")
              for n in range(1, 41)]
    text = slack_digest_payload(alerts)["text"]
    assert len(text) <= 3000 and text.endswith("…")
    assert not re.search(r"&(?!amp;|lt;|gt;)", text)  # no entity cut in half


def test_slack_digest_never_pings_from_a_title() -> None:
    alert = make_alert(title="<!channel> 긴급 <@U0000000>")
    payload = slack_digest_payload([alert, alert])
    for text in [payload["text"], *texts(payload)]:
        assert "<!" not in text and "<@" not in text


def test_slack_digest_of_a_huge_url_drops_the_link_not_the_alert() -> None:
    alert = make_alert(url="https://news.example.kr/" + "x" * 4000)
    payload = slack_digest_payload([alert, alert])
    assert all(len(text) <= 3000 for text in texts(payload))
    assert payload["blocks"][2]["text"]["text"].startswith("오픈AI, 'OpenAI 코리아' 공식 출범\n")


def test_slack_digest_needs_alerts() -> None:
    with pytest.raises(ValueError, match="at least one"):
        slack_digest_payload([])


@pytest.mark.parametrize("title", ["A | B 발표", "A > B | C", "끝에 파이프|"])
def test_slack_title_with_pipe_or_gt_keeps_the_link_whole(title: str) -> None:
    heading = slack_payload(make_alert(title=title))["blocks"][0]["text"]["text"]
    assert heading == f"<{URL}|{escape_mrkdwn(title)}>"
    assert heading.index("|") == len(URL) + 1  # the first "|" is ours: URL, then the label
    assert heading.count(">") == 1 and heading.endswith(">")


# --- e-mail digest -----------------------------------------------------------------------

def build_digest(alerts: list[AlertRaised], sender: str = "속보 <alerts@example.com>"
                 ) -> email.message.EmailMessage:
    start = datetime(2025, 9, 10, 5, 0, tzinfo=UTC)
    return email_digest(alerts, channel_id="pr-mail", sender=sender,
                        recipients=["pr@example.com"], start=start,
                        end=start + timedelta(minutes=15), now=NOW)


@pytest.mark.parametrize(("start", "end", "label"), [
    (datetime(2025, 9, 10, 5, 0, tzinfo=UTC), datetime(2025, 9, 10, 5, 15, tzinfo=UTC),
     "2025-09-10 14:00–14:15 KST"),
    (datetime(2025, 9, 10, 14, 0, tzinfo=UTC), datetime(2025, 9, 10, 15, 0, tzinfo=UTC),
     "2025-09-10 23:00–00:00 KST"),
    (datetime(2025, 9, 9, 15, 0, tzinfo=UTC), datetime(2025, 9, 10, 15, 0, tzinfo=UTC),
     "2025-09-10 KST"),
])
def test_period_label(start: datetime, end: datetime, label: str) -> None:
    assert period_label(start, end) == label


def test_group_by_rule_sorts_rules_and_keeps_the_raised_order() -> None:
    first, second, third = (make_alert().model_copy(update={
        "rule_id": rule, "alert_id": aid, "raised_at": NOW + timedelta(minutes=m)})
        for rule, aid, m in [("b-rule", "2", 1), ("a-rule", "3", 2), ("b-rule", "1", 0)])
    assert group_by_rule([first, second, third]) == [("a-rule", [second]),
                                                      ("b-rule", [third, first])]


def test_email_digest_headers_and_grouping() -> None:
    msg = parse(build_digest(numbered(2) + numbered(1, rule_id="sovereign-ai")).as_bytes())
    assert msg["subject"] == "[sokbo] 알림 3건 · 2025-09-10 14:00–14:15 KST"
    assert msg["message-id"] == "<sokbo.digest.pr-mail.202509101400@example.com>"
    assert msg["date"].datetime == NOW
    assert msg["auto-submitted"] == "auto-generated"
    plain = msg.get_body(("plain",)).get_content()
    assert plain.index("■ openai-korea (2건)") < plain.index("■ sovereign-ai (1건)")
    assert plain.count("https://news.example.kr/a/1") == 2  # once per rule
    assert "'**OpenAI 코리아**'의" in plain
    rich = msg.get_body(("html",)).get_content()
    assert rich.count("<li") == 3 and "&lt;속보&gt; A&amp;B" in rich and "<속보>" not in rich
    assert "<mark><strong>OpenAI 코리아</strong></mark>" in rich


def test_email_digest_is_seven_bit_with_the_sender_name_encoded_apart() -> None:
    raw = build_digest(numbered(2), sender='"김, 속보" <alerts@example.com>').as_bytes()
    assert raw.isascii()
    headers = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert re.search(r"(?m)^From: =\?utf-8\?[bq]\?[^?]+\?= <alerts@example\.com>\r?$", headers)
    assert all(len(line) <= 78 for line in headers.split("\r\n"))
    sender = parse(raw)["from"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("김, 속보", "alerts@example.com")


def test_email_digest_cuts_long_snippets() -> None:
    long = Snippet(field="text", text=(SENTENCE + " ") * 20, highlights=[HIT])
    plain = parse(build_digest([make_alert(snippets=[long])]).as_bytes()).get_body(
        ("plain",)).get_content()
    [quoted] = [line for line in plain.splitlines() if line.startswith("  > ")]
    assert len(quoted) <= 4 + 300 + 4 + 1 and quoted.endswith("선언했다.…")


def test_email_digest_needs_alerts() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_digest([])
