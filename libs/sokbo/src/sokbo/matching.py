"""Compile rule queries once and evaluate them against an article's title and text.

How it works: every term and phrase of every rule is folded into a key (see
:mod:`sokbo.normalize`) and put into one Aho–Corasick automaton, so a text is
scanned once whatever the number of rules.  Each key occurrence found in the
text's key is kept only if its Latin edges are word boundaries in the original
text (``AI`` not inside "email", Hangul edges take particles freely).  Only the
rules with at least one positive term present are then evaluated, on the set of
terms found (and their word positions, for ``NEAR``).  Hits carry ``[start, end)``
code-point offsets into the original, unnormalised title or text.

Aho–Corasick: https://doi.org/10.1145/360825.360855 ; pyahocorasick docs:
https://pyahocorasick.readthedocs.io/
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import ahocorasick

from sokbo.messages import Hit, Snippet
from sokbo.normalize import is_latin_alnum, key_of, normalize
from sokbo.query import Near, Node, Not, Or, Term, parse_query, terms_of

__all__ = ["RuleMatch", "RuleSet", "make_snippets", "match"]

_FIELDS = ("title", "text")


@dataclass(frozen=True)
class RuleMatch:
    """One rule that matched: its id, the hits of its positive terms, their query texts."""

    rule_id: str
    hits: list[Hit]
    matched_terms: list[str]


@dataclass(frozen=True, slots=True)
class _Rule:
    rule_id: str
    node: Node


@dataclass
class _Scan:
    """What one evaluation found: occurrences per key, per field word starts (for NEAR)."""

    texts: dict[str, str]
    by_key: dict[str, list[Hit]]
    words: dict[str, list[int]] = field(default_factory=dict)
    cache: dict[Term, list[Hit]] = field(default_factory=dict)

    def word_span(self, hit: Hit) -> tuple[int, int]:
        starts = self.words.get(hit.field)
        if starts is None:
            starts = [m.start() for m in re.finditer(r"\S+", self.texts[hit.field])]
            self.words[hit.field] = starts
        return bisect_right(starts, hit.start) - 1, bisect_right(starts, hit.end - 1) - 1


class RuleSet:
    """A compiled set of rules, evaluated against many articles."""

    def __init__(
        self, rules: Iterable[tuple[str, str]], synonyms: Iterable[Iterable[str]] = ()
    ) -> None:
        """Parse and compile *rules*, a sequence of ``(rule_id, query)``.

        Args:
            rules: ``(rule_id, query)`` pairs, evaluated and reported in this order.
            synonyms: groups of terms; wherever a member is a whole term or phrase
                of a query, any member of its group matches.

        Raises:
            QuerySyntaxError: the first query that does not parse.
        """
        self._rules = [_Rule(rule_id, parse_query(query)) for rule_id, query in rules]
        self._synonyms = _synonym_keys(synonyms)
        self._keys: dict[Term, tuple[str, ...]] = {}
        self._rules_by_key: dict[str, set[int]] = defaultdict(set)
        for index, rule in enumerate(self._rules):
            for term in terms_of(rule.node):
                if term not in self._keys:
                    key = key_of(term.text)
                    self._keys[term] = self._synonyms.get(key, (key,))
            for term in _positive_terms(rule.node):
                for key in self._keys[term]:
                    self._rules_by_key[key].add(index)
        self._automaton = _build_automaton({k for keys in self._keys.values() for k in keys})

    def evaluate(self, title: str, text: str) -> list[RuleMatch]:
        """Return one :class:`RuleMatch` per rule that matches, in rule order.

        Args:
            title: the article title (original, unnormalised).
            text: the article text (original, unnormalised).

        Returns:
            Matches whose hits come only from positive terms that are present, sorted
            title first then by offset, each ``[start, end)`` into *title* or *text*.
        """
        scan = _Scan({"title": title, "text": text}, self._find(title, text))
        candidates = sorted({i for key in scan.by_key for i in self._rules_by_key.get(key, ())})
        matches = []
        for index in candidates:
            rule = self._rules[index]
            if self._holds(rule.node, scan):
                matches.append(self._report(rule, scan))
        return matches

    def _find(self, title: str, text: str) -> dict[str, list[Hit]]:
        found: dict[str, list[Hit]] = defaultdict(list)
        if self._automaton is None:
            return found
        for name, value in zip(_FIELDS, (title, text), strict=True):
            norm = normalize(value)
            for end, (key, left, right) in self._automaton.iter(norm.key):
                a, b = end + 1 - len(key), end + 1
                if left and is_latin_alnum(norm.char_before(a)):
                    continue
                if right and is_latin_alnum(norm.char_after(b)):
                    continue
                start, stop = norm.span(a, b)
                found[key].append(Hit(field=name, term=key, start=start, end=stop))
        return found

    def _occurrences(self, term: Term, scan: _Scan) -> list[Hit]:
        cached = scan.cache.get(term)
        if cached is None:
            cached = [
                hit.model_copy(update={"term": term.text})
                for key in self._keys[term]
                for hit in scan.by_key.get(key, ())
                if term.field is None or hit.field == term.field
            ]
            scan.cache[term] = cached
        return cached

    def _near_hits(self, node: Near, scan: _Scan) -> list[Hit]:
        hits: list[Hit] = []
        rights = self._occurrences(node.right, scan)
        for left in self._occurrences(node.left, scan):
            l0, l1 = scan.word_span(left)
            for right in rights:
                if right.field != left.field:
                    continue
                r0, r1 = scan.word_span(right)
                if max(0, r0 - l1, l0 - r1) <= node.distance:
                    hits += [left, right]
        return hits

    def _holds(self, node: Node, scan: _Scan) -> bool:
        if isinstance(node, Term):
            return bool(self._occurrences(node, scan))
        if isinstance(node, Near):
            return bool(self._near_hits(node, scan))
        if isinstance(node, Not):
            return not self._holds(node.child, scan)
        if isinstance(node, Or):
            return any(self._holds(child, scan) for child in node.children)
        return all(self._holds(child, scan) for child in node.children)

    def _report(self, rule: _Rule, scan: _Scan) -> RuleMatch:
        hits: dict[tuple[str, int, int, str], Hit] = {}
        terms: dict[str, None] = {}
        for part in _positive_parts(rule.node):
            found = (
                self._near_hits(part, scan)
                if isinstance(part, Near)
                else self._occurrences(part, scan)
            )
            for hit in found:
                hits.setdefault((hit.field, hit.start, hit.end, hit.term), hit)
                terms.setdefault(hit.term)
        ordered = sorted(hits.values(), key=lambda h: (h.field != "title", h.start, h.end))
        return RuleMatch(rule.rule_id, ordered, list(terms))


def _positive_parts(node: Node, positive: bool = True) -> list[Term | Near]:
    """Return the terms and NEAR pairs of *node* not under an odd number of NOTs."""
    if isinstance(node, Term | Near):
        return [node] if positive else []
    if isinstance(node, Not):
        return _positive_parts(node.child, not positive)
    return [part for child in node.children for part in _positive_parts(child, positive)]


def _positive_terms(node: Node) -> list[Term]:
    return [t for part in _positive_parts(node) for t in terms_of(part)]


def _synonym_keys(groups: Iterable[Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Map each member's key to the keys of every member of its group(s)."""
    merged: dict[str, set[str]] = {}
    for group in groups:
        keys = {key for key in map(key_of, group) if key}
        union = set(keys)
        for key in keys:
            union |= merged.get(key, set())
        for key in union:
            merged[key] = union
    return {key: tuple(sorted(members)) for key, members in merged.items()}


def _build_automaton(keys: set[str]) -> ahocorasick.Automaton | None:
    if not keys:
        return None
    automaton = ahocorasick.Automaton()
    for key in keys:
        automaton.add_word(key, (key, is_latin_alnum(key[0]), is_latin_alnum(key[-1])))
    automaton.make_automaton()
    return automaton


def match(
    query: str, text: str, *, title: str = "", synonyms: Iterable[Iterable[str]] = ()
) -> tuple[bool, list[Hit]]:
    """Evaluate one *query* against *text* (and *title*), for ``sokbo match`` and tests.

    Returns:
        ``(matched, hits)``; hits in *text* have ``field="text"`` and offsets into *text*.

    Raises:
        QuerySyntaxError: *query* does not parse.
    """
    matches = RuleSet([("query", query)], synonyms).evaluate(title, text)
    return (True, matches[0].hits) if matches else (False, [])


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
