"""Read the date and time forms Korean news pages and feeds write, as UTC.

Korean outlets write publication times in forms that no RFC covers and that generic
parsers misread (feedparser #75: ``2024/03/05`` became "this month, day 1", and
``KST`` was silently read as UTC):

* ``2024.03.05 14:20``, ``2024/03/05``, ``2024-03-05 14:22:41``;
* ``2024년 03월 05일 14:22:41``, ``2024년 3월 5일 (화) 오후 2시 20분``;
* ``입력 2024-03-05 오후 2:20``, ``기사입력 2021.10.04. 오후 4:26`` (a label before);
* RFC 822 / RFC 2822 ``Tue, 05 Mar 2024 14:22:41 KST`` and ISO 8601 / RFC 3339
  ``2024-03-05T14:22:41+09:00`` (also the basic form ``20240305T142241+0900``).

A time without a zone is Korea Standard Time (UTC+09:00; Korea has kept no daylight
saving time since 1988, so a fixed offset is exact). ``오전``/``오후`` (and ``AM``/
``PM``, ``午前``/``午後``) mean before/after noon. A zone name this module does not
know, or an ambiguous one (``CST``: China or US Central), gives ``None``: a date is
never read in a guessed zone.

Standard library only, so the crawler's feed code can use it as well.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

__all__ = ["KST", "MAX_FUTURE", "parse_korean_datetime"]

KST = timezone(timedelta(hours=9), "KST")
#: how far past ``now`` a publication time may lie (clock skew); later is rejected
MAX_FUTURE = timedelta(minutes=10)

#: zone names, hours east of UTC: RFC 822 §5.1 (without the ambiguous CST/CDT) + KST/JST
_ZONES = {"UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "KST": 9, "JST": 9, "EST": -5, "EDT": -4,
          "MST": -7, "MDT": -6, "PST": -8, "PDT": -7}
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_AFTERNOON = {"오후", "PM", "pm", "午後"}
_HALF = r"오전|오후|AM|PM|am|pm|午前|午後"
#: a numeric offset, or a zone abbreviation (they end in T: KST, UTC, CEST); a capitalised
#: word after a date (an outlet's name, FETV) is not taken for a zone
_ZONE = r"(?P<zone>Z\b|[+-]\d{2}:?\d{2}\b|\(?(?:[A-Z]{1,4}T|UT)\)?(?![A-Za-z]))"
_TIME = (
    rf"(?:(?P<half>{_HALF})\s*)?(?P<h>\d{{1,2}})\s*(?::|시|時)\s*(?P<mi>\d{{1,2}})"
    r"(?:(?::|\s*(?:분|分)\s*)(?P<s>\d{1,2})(?:[.,]\d+)?(?:\s*(?:초|秒))?|\s*(?:분|分))?"
    rf"(?:\s*(?P<half2>{_HALF}))?"
)
_NUMERIC = re.compile(  # 2024.03.05 / 2024-03-05T14:22 / 2024년 3월 5일 (화) 오후 2:20
    r"(?<!\d)(?P<y>\d{4})\s*(?:[.\-/]|년|年)\s*(?P<mo>\d{1,2})\s*(?:[.\-/]|월|月)\s*"
    r"(?P<d>\d{1,2})(?!\d)\s*(?:일|日)?\.?(?:\s*[(（][^)）\d]{1,3}[)）])?"
    rf"(?:(?:\s*|T){_TIME})?(?:\s*{_ZONE})?"
)
_RFC822 = re.compile(  # [Tue,] 05 Mar 2024 14:22[:41] [KST | +0900]
    r"(?:\b[A-Za-z]{3},?\s*)?\b(?P<d>\d{1,2})\s+(?P<mo>[A-Za-z]{3})[a-z]*\.?\s+"
    r"(?P<y>\d{4}|\d{2})(?!\d)(?:\s+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?"
    rf"(?:\s*{_ZONE})?"
)


def parse_korean_datetime(
    text: str | None, *, default_tz: tzinfo = KST, now: datetime | None = None
) -> datetime | None:
    """Parse a date or date-time as Korean pages and feeds write it; return it in UTC.

    Args:
        text: a date string, possibly with a label before it (``입력``, ``등록 :``)
            or words after it; the first date expression found is read.
        default_tz: the zone of a time written without one (the source's zone);
            Korea Standard Time, UTC+09:00, by default.
        now: when given, a result more than :data:`MAX_FUTURE` (10 minutes) after
            *now* is rejected: a page cannot be published after it was fetched.

    Returns:
        A timezone-aware ``datetime`` in UTC; a date without a time is midnight in
        *default_tz*. ``None`` when *text* holds no valid date, names an unknown or
        ambiguous zone, or lies in the future. Never raises.

    Follows RFC 3339 / ISO 8601 (``2024-03-05T14:22:41+09:00``), RFC 2822 §3.3
    (``Tue, 05 Mar 2024 14:22:41 +0900``; obsolete zone names of RFC 822 §5.1, and
    two-digit years as in RFC 2822 §4.3), and the Korean forms listed in the module
    documentation.

    >>> parse_korean_datetime("2024년 03월 05일 14:22:41").isoformat()
    '2024-03-05T05:22:41+00:00'
    """
    if not text:
        return None
    text = " ".join(text.split())
    parsed = _iso(text, default_tz)
    if parsed is None:
        match = _NUMERIC.search(text)
        if match is None:
            match = _RFC822.search(text)
        parsed = _from_match(match, default_tz) if match else None
    try:
        parsed = parsed.astimezone(UTC) if parsed else None
    except OverflowError:  # year 1 in a zone east of UTC
        return None
    if parsed is None or (now is not None and parsed > now + MAX_FUTURE):
        return None
    return parsed


def _iso(text: str, default_tz: tzinfo) -> datetime | None:
    """Parse a whole-string ISO 8601 date or date-time (Python 3.11 ``fromisoformat``)."""
    if not text[:1].isdigit() or len(text) < 8:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=default_tz)


def _from_match(match: re.Match[str], default_tz: tzinfo) -> datetime | None:
    """Build the aware datetime a :data:`_NUMERIC` or :data:`_RFC822` match describes."""
    parts = match.groupdict()
    year, month = int(parts["y"]), parts["mo"]
    if len(parts["y"]) == 2:  # RFC 2822 §4.3
        year += 2000 if year < 50 else 1900
    number = int(month) if month.isdigit() else _MONTHS.get(month[:3].lower())
    zone = _zone(parts["zone"], default_tz)
    if number is None or zone is None:
        return None
    hour, minute, second = (int(parts[k] or 0) for k in ("h", "mi", "s"))
    half = parts.get("half") or parts.get("half2")
    if half and hour <= 12:
        hour = hour % 12 + (12 if half in _AFTERNOON else 0)
    elif half and half not in _AFTERNOON:  # "오전 14:00" contradicts itself
        return None
    return _plain(year, number, parts["d"], hour, minute, second, zone)


def _plain(year: int, month: int, day: str, hour: int, minute: int, second: int,
           zone: tzinfo) -> datetime | None:
    """Return the datetime, or ``None`` when a field is out of range (``2025.13.45``)."""
    try:
        return datetime(year, month, int(day), hour, minute, second, tzinfo=zone)
    except ValueError:
        return None


def _zone(token: str | None, default_tz: tzinfo) -> tzinfo | None:
    """Map a zone token (``KST``, ``(KST)``, ``+0900``, ``Z``) to a tzinfo; unknown → None."""
    if not token:
        return default_tz
    token = token.strip("()")
    if token[0] in "+-":
        digits = token[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 14 or minutes > 59:  # real offsets run from -12:00 to +14:00
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        return timezone(-offset if token[0] == "-" else offset)
    hours = _ZONES.get(token.upper())
    return None if hours is None else timezone(timedelta(hours=hours))
