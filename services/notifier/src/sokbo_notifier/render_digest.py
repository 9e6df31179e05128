"""Render several alerts as one message: a Slack digest and an e-mail digest.

Pure functions, no I/O, no clock (the caller passes the period and ``now``).

* :func:`slack_digest_payload` — one incoming-webhook body listing up to
  :data:`DIGEST_LIMIT` alerts (linked title, outlet, KST time, rule), escaped as in
  :func:`~sokbo_notifier.render.slack_payload` (B27) and within Block Kit's limits
  (≤ 50 blocks, ≤ 3000 characters a section).
* :func:`email_digest` — one RFC 5322 ``multipart/alternative`` message for a period's
  alerts grouped by rule, 7-bit like :func:`~sokbo_notifier.render.email_message`
  (RFC 2047 headers, base64/quoted-printable bodies).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sokbo.messages import AlertRaised
from sokbo_notifier.render import (
    _CONTROL,
    _SPACES,
    BLOCK_LIMIT,
    KST,
    SECTION_LIMIT,
    TITLE_LIMIT,
    _aware,
    _cut,
    _http_url,
    _message_id,
    _one_line,
    _outlet,
    _section,
    _segments,
    _slack_len,
    _title,
    _with_subject,
    escape_mrkdwn,
    kst,
    slack_link,
    slack_meta,
)

__all__ = ["DIGEST_LIMIT", "email_digest", "group_by_rule", "period_label",
           "slack_digest_payload"]

#: alerts listed in one Slack digest: one section each, plus at most 3 other blocks
DIGEST_LIMIT = 40
assert DIGEST_LIMIT + 3 <= BLOCK_LIMIT
SNIPPET_LIMIT = 300  # characters of an alert's first snippet in an e-mail digest


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _rule_counts(alerts: Sequence[AlertRaised]) -> str:
    counts = Counter(alert.rule_id for alert in alerts)
    return " · ".join(f"{rule} {count}건" for rule, count in sorted(counts.items()))


def _digest_line(alert: AlertRaised) -> str:
    """``<url|title>`` and the context line on a second line, at most a section long."""
    meta = slack_meta(alert)
    line = f"{slack_link(alert)}\n{meta}"
    if _slack_len(line) <= SECTION_LIMIT:
        return line
    return f"{escape_mrkdwn(_title(alert))}\n{meta}"


def slack_digest_payload(alerts: Sequence[AlertRaised], *, waiting: int = 0) -> dict:
    """Build one incoming-webhook body ``{"text", "blocks"}`` listing *alerts*.

    Lists the first :data:`DIGEST_LIMIT` alerts in order, one section each (linked
    title, then outlet · KST time · rule); a heading with the count and the count per
    rule; and, when more alerts wait (*waiting* plus any beyond the limit), a last
    context line saying how many follow.  ``text`` (the notification fallback) names
    the count and each listed alert's rule and title, cut to 3000 characters.

    Raises:
        ValueError: *alerts* is empty.
    """
    if not alerts:
        raise ValueError("a digest needs at least one alert")
    shown = list(alerts[:DIGEST_LIMIT])
    later = waiting + len(alerts) - len(shown)
    blocks: list[dict] = [_section(f"*새 알림 {len(shown)}건*"),
                          _context(escape_mrkdwn(_rule_counts(shown)))]
    blocks.extend(_section(_digest_line(alert)) for alert in shown)
    if later > 0:
        blocks.append(_context(f"…이어서 {later}건 더"))
    return {"text": _fallback(shown), "blocks": blocks, "unfurl_links": False,
            "unfurl_media": False}


def _fallback(alerts: Sequence[AlertRaised]) -> str:
    """``새 알림 <n>건: [rule] title; …``, whole items only, at most a section long."""
    text = f"새 알림 {len(alerts)}건: "
    for index, alert in enumerate(alerts):
        item = ("; " if index else "") + f"[{alert.rule_id}] {escape_mrkdwn(_title(alert))}"
        if _slack_len(text + item) > SECTION_LIMIT - 3:
            return text + ("; …" if index else "…")
        text += item
    return text


# --- e-mail ----------------------------------------------------------------------------


def period_label(start: datetime, end: datetime) -> str:
    """Return ``"2025-09-10 14:00–14:15 KST"``, or ``"2025-09-10 KST"`` for a whole day."""
    first, last = _aware(start).astimezone(KST), _aware(end).astimezone(KST)
    if last - first >= timedelta(days=1):
        return first.strftime("%Y-%m-%d KST")
    return f"{first:%Y-%m-%d %H:%M}–{last:%H:%M} KST"


def group_by_rule(alerts: Sequence[AlertRaised]) -> list[tuple[str, list[AlertRaised]]]:
    """Return ``[(rule_id, alerts)]``: rules sorted by id, alerts by (raised_at, alert_id)."""
    groups: dict[str, list[AlertRaised]] = {}
    for alert in sorted(alerts, key=lambda a: (_aware(a.raised_at), a.alert_id)):
        groups.setdefault(alert.rule_id, []).append(alert)
    return sorted(groups.items())


def _same(text: str) -> str:
    return text


def _first_snippet(alert: AlertRaised, mark: tuple[str, str],
                   escape: Callable[[str], str] = _same) -> str:
    """The alert's first snippet on one line, hits between *mark*, cut to 300 characters."""
    if not alert.snippets:
        return ""
    snippet = alert.snippets[0]
    pieces = [(_SPACES.sub(" ", _CONTROL.sub("", chunk)), hit)
              for chunk, hit in _segments(snippet.text, snippet.highlights)]
    whole = "".join(chunk for chunk, _ in pieces)
    keep = len(_cut(whole, SNIPPET_LIMIT))
    out, used = [], 0
    for chunk, hit in pieces:
        chunk = chunk[: max(keep - used, 0)]
        used += len(chunk)
        if chunk:
            out.append(f"{mark[0]}{escape(chunk)}{mark[1]}" if hit and chunk.strip()
                       else escape(chunk))
    return "".join(out).strip() + ("…" if keep < len(whole) else "")


def _digest_text(groups: list[tuple[str, list[AlertRaised]]], heading: str,
                 footer: str) -> str:
    lines = [heading, ""]
    for rule_id, alerts in groups:
        lines += [f"■ {rule_id} ({len(alerts)}건)", ""]
        for alert in alerts:
            lines += [f"- {_title(alert)}", f"  {_one_line(alert.article.url)}",
                      f"  {_outlet(alert)} · {kst(alert.article.published_at)}"]
            if snippet := _first_snippet(alert, ("**", "**")):
                lines.append(f"  > {snippet}")
            lines.append("")
    lines += ["-- ", footer]
    return "\n".join(lines) + "\n"


def _digest_item_html(alert: AlertRaised) -> str:
    esc = html.escape
    url = _http_url(alert.article.url)
    title = esc(_title(alert))
    heading = f'<a href="{esc(url, quote=True)}">{title}</a>' if url else title
    meta = f"{esc(_outlet(alert))} · {esc(kst(alert.article.published_at))}"
    snippet = _first_snippet(alert, ("<mark><strong>", "</strong></mark>"), esc)
    quote = (f'<br><span style="color:#333">{snippet}</span>' if snippet else "")
    return (f'<li style="margin:0 0 10px"><strong>{heading}</strong><br>'
            f'<span style="color:#555">{meta}</span>{quote}</li>')


def _digest_html(groups: list[tuple[str, list[AlertRaised]]], heading: str,
                 footer: str) -> str:
    esc = html.escape
    parts = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>'
             '<body style="font-family:sans-serif">',
             f'<h1 style="font-size:18px">{esc(heading)}</h1>']
    for rule_id, alerts in groups:
        parts.append(f'<h2 style="font-size:16px">rule: <code>{esc(rule_id)}</code> '
                     f"({len(alerts)}건)</h2>")
        parts.append('<ul style="padding-left:18px">')
        parts.extend(_digest_item_html(alert) for alert in alerts)
        parts.append("</ul>")
    parts.append(f'<p style="color:#999;font-size:12px">{esc(footer)}</p>\n</body></html>')
    return "\n".join(parts) + "\n"


def email_digest(alerts: Sequence[AlertRaised], *, channel_id: str, sender: str,
                 recipients: list[str], start: datetime, end: datetime,
                 now: datetime) -> EmailMessage:
    """Build the digest e-mail of *channel_id* for the period [*start*, *end*).

    Headers: ``Subject: [sokbo] 알림 <n>건 · <period in KST>`` (RFC 2047 encoded-words),
    ``From`` *sender* (a non-ASCII display name encoded apart from the address),
    ``To`` *recipients*, ``Date`` *now*, a ``Message-ID`` stable per (channel, period)
    so a resend is recognisable (RFC 5322 §3.6.4), ``Auto-Submitted: auto-generated``
    (RFC 3834).  Body: the alerts grouped by rule (rules by id, alerts in the order
    raised), each with linked title, outlet, KST time and its first snippet; as text
    and as HTML (escaped).  ``as_bytes()`` is 7-bit ASCII.

    Raises:
        ValueError: *alerts* is empty.
    """
    if not alerts:
        raise ValueError("a digest needs at least one alert")
    label = period_label(start, end)
    groups = group_by_rule(alerts)
    heading = f"sokbo 알림 {len(alerts)}건 · {label}"
    footer = f"sokbo digest {channel_id} {_aware(start).astimezone(KST).isoformat()}"
    msg = _with_subject(f"[sokbo] 알림 {len(alerts)}건 · {label}"[: TITLE_LIMIT])
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(_aware(now))
    stamp = _aware(start).astimezone(KST).strftime("%Y%m%d%H%M")
    msg["Message-ID"] = _message_id(f"digest.{channel_id}.{stamp}", sender)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Sokbo-Digest"] = f"{channel_id} {stamp}"
    msg.set_content(_digest_text(groups, heading, footer), charset="utf-8")
    msg.add_alternative(_digest_html(groups, heading, footer), subtype="html", charset="utf-8")
    return msg
