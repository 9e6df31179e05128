"""Render an :class:`~sokbo.messages.AlertRaised` for each channel: pure, no I/O, no clock.

* :func:`slack_payload` — an incoming-webhook body in Block Kit, ``mrkdwn`` escaped as
  Slack's "Formatting text for app surfaces" page asks (only ``&``, ``<``, ``>``), so a
  title such as ``<!channel>`` never pings anyone while sokbo's own ``<url|title>``
  link still works.  Block Kit limits are kept: section text ≤ 3000 characters,
  ≤ 50 blocks (https://api.slack.com/reference/block-kit/blocks).
* :func:`email_message` — an RFC 5322 ``multipart/alternative`` message (text + HTML)
  whose headers are 7-bit ASCII (RFC 2047 encoded-words) and whose bodies are base64
  or quoted-printable, so a relay without SMTPUTF8 or 8BITMIME accepts it.
* :func:`console_line` — one line for stdout.

Times are shown in Korea Standard Time (UTC+9, no daylight saving since 1988).
"""

from __future__ import annotations

import email.policy
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.message import EmailMessage
from email.parser import Parser
from email.utils import format_datetime, parseaddr
from urllib.parse import urlsplit

from sokbo.messages import AlertRaised, Snippet

__all__ = [
    "console_line",
    "email_message",
    "escape_mrkdwn",
    "kst",
    "slack_link",
    "slack_meta",
    "slack_payload",
]

KST = timezone(timedelta(hours=9), "KST")
SECTION_LIMIT = 3000  # characters in a section's text
BLOCK_LIMIT = 50  # blocks in one message
TITLE_LIMIT = 300  # characters of a title we show before cutting it
OUTLET_LIMIT = 100
UNKNOWN_TIME = "시간 미상"

_ZWSP = "\u200b"  # lets Slack see a word boundary next to Hangul, so *bold* renders
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?。！？][\"'”’」』)\]]*(?=\s)")
# 7-bit policy: set_content picks base64 or quoted-printable (whichever is shorter)
_POLICY = email.policy.SMTP.clone(cte_type="7bit")


def escape_mrkdwn(text: str) -> str:
    """Return *text* with ``&``, ``<`` and ``>`` replaced by HTML entities, nothing else.

    Follows Slack's "Formatting text for app surfaces" → "Escaping text"; escaping
    more (or escaping sokbo's own ``<url|label>`` links) breaks them.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def kst(when: datetime | None) -> str:
    """Format a UTC time as ``"2025-09-10 14:30 KST"``; ``"시간 미상"`` when None.

    A naive datetime is taken to be UTC, as the message contract says.
    """
    if when is None:
        return UNKNOWN_TIME
    return _aware(when).astimezone(KST).strftime("%Y-%m-%d %H:%M KST")


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _one_line(text: str) -> str:
    """Drop control characters and collapse all whitespace to single spaces."""
    return _SPACES.sub(" ", _CONTROL.sub("", text)).strip()


def _cut(text: str, limit: int) -> str:
    """Return *text* cut to at most *limit* - 1 characters at a sentence end, if needed.

    The caller appends "…" when the result is shorter than *text*.  Falls back to the
    last space, then to a hard cut, when no sentence ends in the second half.
    """
    if len(text) <= limit:
        return text
    window = text[: max(limit - 1, 0)]
    floor = len(window) // 2
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() >= floor]
    if ends:
        return window[: ends[-1]]
    space = window.rfind(" ")
    return window[:space].rstrip() if space >= floor else window


def _outlet(alert: AlertRaised) -> str:
    return _one_line(alert.article.source_title or alert.article.source_id)[:OUTLET_LIMIT]


def _title(alert: AlertRaised) -> str:
    title = _one_line(alert.article.title) or alert.article.url
    cut = _cut(title, TITLE_LIMIT)
    return cut if cut == title else cut + "…"


def _http_url(url: str) -> str | None:
    """Return *url* if it is an absolute http(s) URL, else None (never link it)."""
    return url if urlsplit(url).scheme.lower() in {"http", "https"} else None


def _segments(text: str, highlights: list[tuple[int, int]]) -> Iterator[tuple[str, bool]]:
    """Split *text* into (chunk, highlighted) pairs; spans are clamped, sorted, merged."""
    spans: list[list[int]] = []
    for start, end in sorted((max(s, 0), min(e, len(text))) for s, e in highlights):
        if start >= end:
            continue
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    position = 0
    for start, end in spans:
        if start > position:
            yield text[position:start], False
        yield text[start:end], True
        position = end
    if position < len(text):
        yield text[position:], False


# --- Slack -----------------------------------------------------------------------


def _slack_url(url: str) -> str:
    """Percent-encode what would end a ``<url|label>`` link; ``&`` stays raw (B27)."""
    table = {"|": "%7C", "<": "%3C", ">": "%3E", " ": "%20"}
    return "".join(table.get(ch, ch) for ch in _CONTROL.sub("", url))


def _slack_len(text: str) -> int:
    """Count characters as Slack does (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _bold(line: str, start: int, end: int) -> str:
    """Return ``*line[start:end]*`` with ``*`` inside replaced and word boundaries kept."""
    chunk = line[start:end]
    core = chunk.strip()
    if not core:
        return escape_mrkdwn(chunk)
    lead = chunk[: len(chunk) - len(chunk.lstrip())]
    trail = chunk[len(chunk.rstrip()) :]
    before = line[start + len(lead) - 1] if start + len(lead) > 0 else " "
    after = line[end - len(trail)] if end - len(trail) < len(line) else " "
    left = "" if before.isspace() else _ZWSP
    right = "" if after.isspace() else _ZWSP
    marked = escape_mrkdwn(core.replace("*", "＊"))
    return f"{escape_mrkdwn(lead)}{left}*{marked}*{right}{escape_mrkdwn(trail)}"


def _quote(text: str, highlights: list[tuple[int, int]]) -> str:
    """Render *text* as a ``>`` block quote, highlights bold, everything escaped."""
    lines: list[str] = []
    offset = 0
    for line in text.split("\n"):
        local = [(s - offset, e - offset) for s, e in highlights
                 if s < offset + len(line) and e > offset]
        parts: list[str] = []
        position = 0
        for chunk, marked in _segments(line, local):
            end = position + len(chunk)
            parts.append(_bold(line, position, end) if marked else escape_mrkdwn(chunk))
            position = end
        lines.append(f"> {''.join(parts)}" if line.strip() else ">")
        offset += len(line) + 1
    return "\n".join(lines)


def _snippet_text(snippet: Snippet, limit: int = SECTION_LIMIT) -> str:
    """Render one snippet as quoted mrkdwn of at most *limit* characters, cut with "…"."""
    budget = limit
    while True:
        body = _cut(snippet.text, budget)
        rendered = _quote(body, snippet.highlights)
        if body != snippet.text:
            rendered += "…"
        excess = _slack_len(rendered) - limit
        if excess <= 0 or budget <= 1:
            return rendered
        budget = max(budget - excess, 1)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_link(alert: AlertRaised, limit: int = SECTION_LIMIT) -> str:
    """Return the alert's title as a ``<url|title>`` mrkdwn link (B27).

    The label is escaped with :func:`escape_mrkdwn` (so ``|`` and ``>`` in a title
    cannot end the link early: ``>`` becomes ``&gt;`` and the first ``|`` is ours);
    the URL is not entity-escaped, only ``|``, ``<``, ``>`` and spaces in it are
    percent-encoded.  The bare escaped title when the URL is not http(s) or the link
    would exceed *limit* characters.
    """
    title = escape_mrkdwn(_title(alert))
    url = _http_url(alert.article.url)
    link = f"<{_slack_url(url)}|{title}>" if url else title
    return link if _slack_len(link) <= limit else title


def slack_meta(alert: AlertRaised) -> str:
    """Return the context line ``outlet · 2025-09-10 14:30 KST · rule: <id>`` (escaped)."""
    return " · ".join(
        [escape_mrkdwn(_outlet(alert)), kst(alert.article.published_at), f"rule: {alert.rule_id}"]
    )


def slack_payload(alert: AlertRaised) -> dict:
    """Build an incoming-webhook body ``{"text": fallback, "blocks": [...]}`` for *alert*.

    Blocks: a section with the linked title, a context line (outlet · KST time ·
    ``rule: <id>``), then one quoted section per snippet with highlights in ``*bold*``.
    Every piece of article text is escaped with :func:`escape_mrkdwn`; the link URL
    is percent-encoded where it would break the link.  At most 50 blocks: snippets
    beyond that are counted in a last context line.
    """
    title = escape_mrkdwn(_title(alert))
    blocks: list[dict] = [
        _section(slack_link(alert)),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_meta(alert)}]},
    ]
    room = BLOCK_LIMIT - len(blocks)
    shown = alert.snippets if len(alert.snippets) <= room else alert.snippets[: room - 1]
    blocks.extend(_section(_snippet_text(snippet)) for snippet in shown)
    if hidden := len(alert.snippets) - len(shown):
        note = f"…외 문장 {hidden}개"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    fallback = f"[{alert.rule_id}] {title} — {escape_mrkdwn(_outlet(alert))}"
    return {"text": fallback, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


# --- e-mail ----------------------------------------------------------------------


def _email_text(alert: AlertRaised) -> str:
    lines = [_title(alert), alert.article.url, "",
             f"{_outlet(alert)} · {kst(alert.article.published_at)} · rule: {alert.rule_id}", ""]
    for snippet in alert.snippets:
        marked = "".join(f"**{c}**" if hl else c
                         for c, hl in _segments(snippet.text, snippet.highlights))
        lines.extend(f"> {line}" for line in marked.split("\n"))
        lines.append("")
    lines += ["-- ", f"sokbo alert {alert.alert_id}"]
    return "\n".join(lines) + "\n"


def _email_html(alert: AlertRaised) -> str:
    esc = html.escape
    url = _http_url(alert.article.url)
    title = esc(_title(alert))
    heading = f'<a href="{esc(url, quote=True)}">{title}</a>' if url else title
    meta = (f"{esc(_outlet(alert))} · {esc(kst(alert.article.published_at))} · "
            f"rule: <code>{esc(alert.rule_id)}</code>")
    quotes = []
    for snippet in alert.snippets:
        body = "".join(f"<mark><strong>{esc(c)}</strong></mark>" if hl else esc(c)
                       for c, hl in _segments(snippet.text, snippet.highlights))
        body = body.replace("\n", "<br>\n")
        quotes.append('<blockquote style="margin:0 0 12px;padding:4px 12px;'
                      f'border-left:3px solid #ccc">{body}</blockquote>')
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
        '<body style="font-family:sans-serif">\n'
        f'<h2 style="font-size:18px">{heading}</h2>\n'
        f'<p style="color:#555">{meta}</p>\n' + "\n".join(quotes) +
        f'\n<p style="color:#999;font-size:12px">sokbo alert {esc(alert.alert_id)}</p>\n'
        "</body></html>\n"
    )


def _message_id(alert_id: str, sender: str) -> str:
    """Return ``<sokbo.<alert_id>@<sender's domain>>`` (RFC 5322 §3.6.4), stable per alert."""
    domain = parseaddr(sender)[1].rpartition("@")[2]
    if not domain or not domain.isascii():
        domain = "sokbo.localhost"
    return f"<sokbo.{alert_id}@{domain}>"


def _with_subject(subject: str) -> EmailMessage:
    """Start a message whose Subject is stored pre-encoded (RFC 2047), whitespace intact.

    CPython's own folder drops a space between encoded-words in some long subjects
    (python/cpython#92081, #144156), and aiosmtplib refolds every header it parsed
    from a model.  A header that arrives already encoded, in lines ≤ 78 characters,
    is written out unchanged by ``email.policy.SMTP`` (``refold_source="long"``).
    """
    if subject.isascii() and "=?" not in subject:
        encoded = subject
    else:
        encoded = Header(subject, "utf-8", header_name="Subject").encode(linesep="\n")
    return Parser(policy=_POLICY).parsestr(f"Subject: {encoded}\n\n")


def email_message(alert: AlertRaised, *, sender: str, recipients: list[str]) -> EmailMessage:
    """Build the ``multipart/alternative`` (text + HTML) e-mail for *alert*.

    Headers: ``Subject: [sokbo] <rule_id>: <title>`` (RFC 2047 encoded-words when
    not ASCII), ``From`` *sender*, ``To`` *recipients*, ``Date`` = ``raised_at``,
    ``Message-ID`` derived from ``alert_id`` so a resend is recognisable, and
    ``Auto-Submitted: auto-generated`` (RFC 3834).  Both parts carry title, link,
    outlet, KST time, rule and snippets; the HTML is escaped with :func:`html.escape`
    and marks highlights with ``<mark><strong>``.  ``as_bytes()`` is 7-bit ASCII.
    """
    msg = _with_subject(f"[sokbo] {alert.rule_id}: {_title(alert)}")
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(_aware(alert.raised_at))
    msg["Message-ID"] = _message_id(alert.alert_id, sender)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Sokbo-Alert-Id"] = alert.alert_id
    msg["X-Sokbo-Rule"] = alert.rule_id
    msg.set_content(_email_text(alert), charset="utf-8")
    msg.add_alternative(_email_html(alert), subtype="html", charset="utf-8")
    return msg


# --- console ---------------------------------------------------------------------


def console_line(alert: AlertRaised) -> str:
    """Return one line: ``[rule] KST-time outlet | title | url | first snippet``.

    Control characters (terminal escapes) are dropped and whitespace collapsed, so
    the result never spans lines; the first snippet's highlights are in ``*…*``.
    """
    parts = [f"[{alert.rule_id}] {kst(alert.article.published_at)} {_outlet(alert)}",
             _title(alert), _one_line(alert.article.url)]
    if alert.snippets:
        first = alert.snippets[0]
        marked = "".join(f"*{c}*" if hl else c
                         for c, hl in _segments(first.text, first.highlights))
        cut = _cut(marked, TITLE_LIMIT)
        parts.append(_one_line(cut) + ("…" if cut != marked else ""))
    return " | ".join(parts)
