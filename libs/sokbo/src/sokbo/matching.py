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

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import ahocorasick

from sokbo.messages import Hit
from sokbo.normalize import Normalized, is_latin_alnum, key_of, normalize
from sokbo.query import Near, Node, Not, Or, Term, parse_query, terms_of
from sokbo.snippets import make_snippets

__all__ = ["RuleMatch", "RuleSet", "make_snippets", "match"]

_MAX_EXPANSIONS = 64  # spellings one term may take through synonyms
#: hits reported per rule (and per term of it), the first in the document; a text
#: repeating a term thousands of times must not make an alert of that size
MAX_HITS = 100

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
    test: Callable[[_Scan], bool]  # the boolean tree, compiled to closures
    parts: tuple[Term | Near, ...]  # the positive terms and NEAR pairs, for reporting


#: one occurrence of a key: field, [a, b) in that field's normalised key, the key
_Occurrence = tuple[str, int, int, str]


@dataclass
class _Scan:
    """What one evaluation found: occurrences per key, per field word starts (for NEAR)."""

    norms: dict[str, Normalized]
    by_key: dict[str, list[_Occurrence]]
    cache: dict[Term, list[_Occurrence]] = field(default_factory=dict)
    hits: dict[tuple[_Occurrence, str, str | None], Hit] = field(default_factory=dict)
    parts: dict[Term | Near, tuple[list[Hit], list[str]]] = field(default_factory=dict)

    def span(self, hit: _Occurrence) -> tuple[int, int]:
        """Return the ``[start, end)`` in the original field text of an occurrence."""
        return self.norms[hit[0]].span(hit[1], hit[2])

    def hit(self, occurrence: _Occurrence, term: str, synonym: str | None) -> Hit:
        """Return the :class:`Hit` for *occurrence* reported as *term* (shared by rules)."""
        made = self.hits.get((occurrence, term, synonym))
        if made is None:
            start, end = self.span(occurrence)
            made = Hit.model_construct(field=occurrence[0], term=term, start=start, end=end,
                                       synonym=synonym)  # fields known valid: no validation
            self.hits[(occurrence, term, synonym)] = made
        return made

    def word_span(self, hit: _Occurrence) -> tuple[int, int]:
        """Return the first and last word index an occurrence covers (for NEAR)."""
        norm = self.norms[hit[0]]
        return norm.word_index(hit[1]), norm.word_index(hit[2] - 1)


class RuleSet:
    """A compiled set of rules, evaluated against many articles."""

    def __init__(
        self, rules: Iterable[tuple[str, str]], synonyms: Iterable[Iterable[str]] = ()
    ) -> None:
        """Parse and compile *rules*, a sequence of ``(rule_id, query)``.

        Args:
            rules: ``(rule_id, query)`` pairs, evaluated and reported in this order.
            synonyms: groups of terms; wherever a member is a term, a phrase or a
                run of words inside a phrase, any member of its group matches there
                (``"OpenAI 코리아"`` with ``[OpenAI, 오픈AI]`` also finds "오픈AI 코리아").

        Raises:
            QuerySyntaxError: the first query that does not parse.
        """
        parsed = [(rule_id, parse_query(query)) for rule_id, query in rules]
        self._synonyms = _Synonyms(synonyms)
        self._keys: dict[Term, dict[str, str]] = {}
        self._own: dict[Term, str] = {}
        self._rules_by_key: dict[str, set[int]] = defaultdict(set)
        for index, (_, node) in enumerate(parsed):
            for term in terms_of(node):
                if term not in self._keys:
                    self._keys[term] = self._synonyms.spellings(term.text)
                    self._own[term] = key_of(term.text)
            for term in _positive_terms(node):
                for key in self._keys[term]:
                    self._rules_by_key[key].add(index)
        self._rules = [_Rule(rule_id, node, self._compile(node), tuple(_positive_parts(node)))
                       for rule_id, node in parsed]
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
        norms = {"title": normalize(title), "text": normalize(text)}
        scan = _Scan(norms, self._find(norms))
        candidates = sorted({i for key in scan.by_key for i in self._rules_by_key.get(key, ())})
        matches = []
        for index in candidates:
            rule = self._rules[index]
            if rule.test(scan):
                matches.append(self._report(rule, scan))
        return matches

    def _compile(self, node: Node) -> Callable[[_Scan], bool]:
        """Turn *node* into a closure over a scan: plain loops, no per-call dispatch."""
        if isinstance(node, Term):
            keys, only = tuple(self._keys[node]), node.field

            def term(scan: _Scan) -> bool:
                found = scan.by_key
                for key in keys:
                    hits = found.get(key)
                    if hits and (only is None or any(h[0] == only for h in hits)):
                        return True
                return False
            return term
        if isinstance(node, Near):  # one pair within reach is enough to hold
            return lambda scan: bool(self._near_hits(node, scan, limit=2))
        if isinstance(node, Not):
            inner = self._compile(node.child)
            return lambda scan: not inner(scan)
        tests = tuple(self._compile(child) for child in node.children)
        if isinstance(node, Or):
            def any_of(scan: _Scan) -> bool:
                for test in tests:  # noqa: SIM110 (a loop: no generator per call)
                    if test(scan):
                        return True
                return False
            return any_of

        def all_of(scan: _Scan) -> bool:
            for test in tests:  # noqa: SIM110
                if not test(scan):
                    return False
            return True
        return all_of

    def _find(self, norms: dict[str, Normalized]) -> dict[str, list[_Occurrence]]:
        found: dict[str, list[_Occurrence]] = defaultdict(list)
        if self._automaton is None:
            return found
        for name in _FIELDS:
            norm = norms[name]
            text, gaps, size = norm.key, norm.gaps, len(norm.key)
            # the hot loop: Normalized.char_before/char_after inlined (a gap is a boundary)
            for end, (key, length, left, right) in self._automaton.iter(text):
                b = end + 1
                a = b - length
                if left and a and a not in gaps and is_latin_alnum(text[a - 1]):
                    continue
                if right and b < size and b not in gaps and is_latin_alnum(text[b]):
                    continue
                found[key].append((name, a, b, key))
        return found

    def _occurrences(self, term: Term, scan: _Scan) -> list[_Occurrence]:
        cached = scan.cache.get(term)
        if cached is None:
            cached = [hit for key in self._keys[term] for hit in scan.by_key.get(key, ())
                      if term.field is None or hit[0] == term.field]
            scan.cache[term] = cached
        return cached

    def _near_hits(self, node: Near, scan: _Scan, limit: int = MAX_HITS
                   ) -> list[tuple[Term, _Occurrence]]:
        """Return pairs of occurrences within ``node.distance`` words, at most *limit* hits.

        Right-hand occurrences are sorted by word and only those in the window around
        each left one are looked at: O((n + m) log m), whatever the text repeats.
        """
        hits: list[tuple[Term, _Occurrence]] = []
        distance = node.distance
        if not self._occurrences(node.left, scan) or not self._occurrences(node.right, scan):
            return hits  # one side absent: nothing to pair (the usual case for a candidate)
        for name in _FIELDS:
            rights = sorted((scan.word_span(r), r) for r in self._occurrences(node.right, scan)
                            if r[0] == name)
            if not rights:
                continue
            firsts = [span[0] for span, _ in rights]
            widest = max(r1 - r0 for (r0, r1), _ in rights)
            for left in self._occurrences(node.left, scan):
                if left[0] != name:
                    continue
                l0, l1 = scan.word_span(left)
                lo = bisect_left(firsts, l0 - distance - widest)
                hi = bisect_right(firsts, l1 + distance)
                for (r0, r1), right in rights[lo:hi]:
                    if max(0, r0 - l1, l0 - r1) <= distance:
                        hits += [(node.left, left), (node.right, right)]
                        if len(hits) >= limit:
                            return hits
        return hits

    def _report(self, rule: _Rule, scan: _Scan) -> RuleMatch:
        if len(rule.parts) == 1:  # the common case: the part's hits are the rule's
            hits, terms = self._part_hits(rule.parts[0], scan)
            return RuleMatch(rule.rule_id, list(hits), list(terms))
        merged: dict[tuple[str, int, int], Hit] = {}  # one hit per span, the first term wins
        names: dict[str, None] = {}
        for part in rule.parts:
            hits, terms = self._part_hits(part, scan)
            for hit in hits:
                merged.setdefault((hit.field, hit.start, hit.end), hit)
            names.update(dict.fromkeys(terms))
        ordered = sorted(merged.values(), key=_document_order)
        return RuleMatch(rule.rule_id, ordered[:MAX_HITS], list(names))

    def _part_hits(self, part: Term | Near, scan: _Scan) -> tuple[list[Hit], list[str]]:
        """Return one positive part's hits (document order, at most MAX_HITS) and terms.

        Cached per scan: rules sharing a term build its hits once.
        """
        cached = scan.parts.get(part)
        if cached is None:
            found = (self._near_hits(part, scan) if isinstance(part, Near)
                     else [(part, hit) for hit in sorted(self._occurrences(part, scan))
                           [:MAX_HITS]])
            hits: dict[tuple[str, int, int], Hit] = {}
            terms: dict[str, None] = {}
            for term, occurrence in found:
                key = occurrence[3]
                spelling = None if key == self._own[term] else self._keys[term][key]
                hit = scan.hit(occurrence, term.text, spelling)
                hits.setdefault((hit.field, hit.start, hit.end), hit)
                terms.setdefault(term.text)
            cached = (sorted(hits.values(), key=_document_order)[:MAX_HITS], list(terms))
            scan.parts[part] = cached
        return cached


def _document_order(hit: Hit) -> tuple[bool, int, int]:
    return hit.field != "title", hit.start, hit.end


def _positive_parts(node: Node, positive: bool = True) -> list[Term | Near]:
    """Return the terms and NEAR pairs of *node* not under an odd number of NOTs."""
    if isinstance(node, Term | Near):
        return [node] if positive else []
    if isinstance(node, Not):
        return _positive_parts(node.child, not positive)
    return [part for child in node.children for part in _positive_parts(child, positive)]


def _positive_terms(node: Node) -> list[Term]:
    return [t for part in _positive_parts(node) for t in terms_of(part)]


class _Synonyms:
    """Synonym groups, by key: expand a term or phrase into all its spellings."""

    def __init__(self, groups: Iterable[Iterable[str]]) -> None:
        self._members: dict[str, dict[str, str]] = {}  # key → {member key: member text}
        for group in groups:
            members = {key_of(text): text.strip() for text in group if key_of(text)}
            for key in list(members):
                members.update(self._members.get(key, {}))
            for key in members:
                self._members[key] = members

    def spellings(self, text: str) -> dict[str, str]:
        """Return ``{key: spelling}`` for *text* and every synonym substitution in it.

        Any run of whole words of *text* that is a group member may be replaced by
        any member of its group; at most ``_MAX_EXPANSIONS`` spellings, the term as
        written first.
        """
        words = [w for w in text.split() if key_of(w)]
        tails: list[dict[str, str]] = [{} for _ in words] + [{"": ""}]
        for i in range(len(words) - 1, -1, -1):
            options: dict[str, str] = {}
            for j in range(i + 1, len(words) + 1):
                segment = " ".join(words[i:j])
                choices = dict(self._members.get(key_of(segment), {}))
                if j == i + 1:
                    choices = {key_of(segment): segment, **choices}
                for key, spelling in choices.items():
                    for tail_key, tail in tails[j].items():
                        if len(options) < _MAX_EXPANSIONS:
                            options.setdefault(key + tail_key, f"{spelling} {tail}".strip())
            tails[i] = options
        return {key: spelling for key, spelling in tails[0].items() if key}


def _build_automaton(keys: set[str]) -> ahocorasick.Automaton | None:
    if not keys:
        return None
    automaton = ahocorasick.Automaton()
    for key in keys:
        automaton.add_word(key, (key, len(key), is_latin_alnum(key[0]),
                                 is_latin_alnum(key[-1])))
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
