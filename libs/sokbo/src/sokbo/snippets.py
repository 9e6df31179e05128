"""Cut the sentence(s) around hits out of an article, for alerts (pure).

Sentences end at ``.``, ``!``, ``?`` before whitespace (so "3.5" is not split and
Korean sentences ending in "다." are), at ``。`` or at a newline.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from sokbo.messages import Hit, Snippet

__all__ = ["make_snippets"]

# Sentence ends: . ! ? (then a closing quote or bracket) before whitespace, 。, a newline.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’」』)\]]*(?=\s|$)|。[\"'”’」』)\]]*|\n")
_MAX_SNIPPETS = 3
_ELLIPSIS = "…"


def _sentences(text: str) -> list[tuple[int, int]]:
    """Return the ``[start, end)`` of each sentence of *text*, surrounding spaces trimmed."""
    spans, start = [], 0
    bounds = [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    for end in bounds:
        chunk = text[start:end]
        stripped = chunk.strip()
        if stripped:
            s = start + len(chunk) - len(chunk.lstrip())
            spans.append((s, s + len(stripped)))
        start = end
    return spans


def _window(start: int, end: int, hits: list[Hit], limit: int) -> tuple[int, int]:
    """Return a sub-span of ``[start, end)`` at most *limit* long, centred on the hits."""
    first, last = hits[0].start, max(h.end for h in hits)
    if last - first > limit:
        last = hits[0].end
    centre = (first + last) // 2
    lo = max(start, min(centre - limit // 2, end - limit))
    hi = min(end, lo + limit)
    return lo, hi


def _snippet(name: str, source: str, span: tuple[int, int], hits: list[Hit], limit: int) -> Snippet:
    start, end = span
    lo, hi = (start, end) if end - start <= limit else _window(start, end, hits, limit - 2)
    prefix = _ELLIPSIS if lo > start else ""
    suffix = _ELLIPSIS if hi < end else ""
    marks: list[list[int]] = []
    for hit in sorted(hits, key=lambda h: (h.start, h.end)):
        a, b = max(hit.start, lo), min(hit.end, hi)
        if a >= b:
            continue
        a, b = a - lo + len(prefix), b - lo + len(prefix)
        if marks and a <= marks[-1][1]:
            marks[-1][1] = max(marks[-1][1], b)
        else:
            marks.append([a, b])
    text = prefix + source[lo:hi] + suffix
    return Snippet(field=name, text=text, highlights=[(a, b) for a, b in marks])


def _groups(text: str, hits: list[Hit]) -> list[tuple[tuple[int, int], list[Hit]]]:
    """Group *hits* by the sentence (or run of sentences) that contains each of them."""
    spans = _sentences(text)
    starts = [s for s, _ in spans]
    ranges: list[tuple[int, int, Hit]] = []
    for hit in hits:
        first = max(0, bisect_right(starts, hit.start) - 1)
        last = max(first, bisect_right(starts, hit.end - 1) - 1)
        ranges.append((first, last, hit))
    groups: list[tuple[list[int], list[Hit]]] = []
    for first, last, hit in sorted(ranges, key=lambda r: (r[0], r[1], r[2].start)):
        if groups and first <= groups[-1][0][1]:
            groups[-1][0][1] = max(groups[-1][0][1], last)
            groups[-1][1].append(hit)
        else:
            groups.append(([first, last], [hit]))
    return [((spans[a][0], spans[b][1]), members) for (a, b), members in groups]


def make_snippets(title: str, text: str, hits: list[Hit], *, max_chars: int = 400) -> list[Snippet]:
    """Return the sentences of *text* that contain *hits*, with highlights.

    Sentences end at ``.``, ``!``, ``?`` (before a space), ``。`` or a newline, so
    Korean sentences ending in "다." split as expected.  Hits in one sentence share a
    snippet; a hit spanning a sentence break joins the sentences.  A snippet longer
    than *max_chars* is cut around its hits with "…" at the cut ends.  If no hit is
    in the text, the title is the one snippet.

    Args:
        title: the original article title.
        text: the original article text.
        hits: hits from :meth:`RuleSet.evaluate` (offsets into *title* / *text*).
        max_chars: the longest snippet, in code points, ellipses included.

    Returns:
        At most 3 snippets in text order; ``highlights`` are ``[start, end)`` into
        each snippet's own ``text``, sorted, overlapping ones merged.
    """
    text_hits = [h for h in hits if h.field == "text" and 0 <= h.start < h.end <= len(text)]
    if text_hits:
        groups = _groups(text, text_hits)[:_MAX_SNIPPETS]
        return [_snippet("text", text, span, members, max_chars) for span, members in groups]
    title_hits = [h for h in hits if h.field == "title" and 0 <= h.start < h.end <= len(title)]
    if not title_hits:
        return []
    return [_snippet("title", title, (0, len(title)), title_hits, max_chars)]
