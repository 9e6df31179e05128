"""Compile rule queries once and evaluate them against an article's title and text.

How it works: every term and phrase of every rule is folded into a key (see
:mod:`sokbo.normalize`) and put into one Aho–Corasick automaton, so a text is
scanned once whatever the number of rules.  Each key occurrence found in the
text's key is kept only if its Latin edges are word boundaries in the original
text (``AI`` not inside "email", Hangul edges take particles freely).  Only the
rules with at least one positive term present are then evaluated, on the set of
terms found (and their word positions, for ``NEAR``).  Hits carry ``[start, end)``
code-point offsets into the original, unnormalised title or text.

With thousands of rules, most of the per-article cost is reaching rule data that is
not in the CPU cache; the per-article path therefore goes by integer index through
flat tables (``array``, ``bytes``), and the common rule shapes (one term, an OR of
terms, an AND of those and their negations) are decided by one flat test or none.

Aho–Corasick: https://doi.org/10.1145/360825.360855 ; the automaton is ahocorasick-rs
(https://github.com/G-Research/ahocorasick_rs), Rust's aho-corasick crate.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import compress, filterfalse
from operator import itemgetter
from typing import Literal, NamedTuple

from ahocorasick_rs import AhoCorasick, MatchKind

from sokbo.messages import Hit
from sokbo.normalize import Normalized, is_latin_alnum, key_of, normalize
from sokbo.query import And, Near, Node, Not, Or, Term, parse_query, terms_of
from sokbo.snippets import make_snippets

__all__ = ["RuleMatch", "RuleSet", "TermHit", "make_snippets", "match"]

_MAX_EXPANSIONS = 64  # spellings one term may take through synonyms
#: hits reported per rule (and per term of it), the first in the document; a text
#: repeating a term thousands of times must not make an alert of that size
MAX_HITS = 100

_FIELDS = ("title", "text")
_NONE: list = []  # an absent key's occurrences; never mutated
_LEFT, _RIGHT = 1, 2  # RuleSet._edges: a pattern's first / last character is Latin
_NO_RULE, _SHARED = -1, -2  # RuleSet._rule_of: no rule, several rules
_pattern_of = itemgetter(0)  # of an automaton match (pattern index, start, end)
_slice_of = itemgetter(1, 2)  # of an automaton match: its [a, b) in the field's key
#: ``tuple.__new__(cls, fields)``: a named tuple (TermHit, RuleMatch) without the frame of
#: its generated __new__, on the hot path of reporting
_new_tuple = tuple.__new__


class TermHit(NamedTuple):
    """One hit as the engine reports it: the fields of :class:`sokbo.messages.Hit`.

    A plain tuple, cheap to build for every hit of every rule that matches;
    :meth:`message` gives the validated model an ``AlertRaised`` carries.
    ``start``/``end`` are code-point offsets into the original ``field`` text.
    """

    field: Literal["title", "text"]
    term: str
    start: int
    end: int
    synonym: str | None = None

    def message(self) -> Hit:
        """Return this hit as the :class:`sokbo.messages.Hit` of alert messages."""
        return Hit(field=self.field, term=self.term, start=self.start, end=self.end,
                   synonym=self.synonym)


class RuleMatch(NamedTuple):
    """One rule that matched: its id, the hits of its positive terms, their query texts."""

    rule_id: str
    hits: list[TermHit]
    matched_terms: list[str]


class _TermPart:
    """A distinct term of the rule set, compiled once and shared by every rule using it.

    Identity-hashed (a C-level hash) so that per-article caches keyed by it are cheap.
    """

    __slots__ = ("fields", "first", "indexes", "keys", "own", "spellings", "text")

    def __init__(self, term: Term, spellings: dict[str, str], index_of: dict[str, int]) -> None:
        self.text = term.text
        self.spellings = spellings  # key → spelling (the term's own first)
        self.keys = tuple(spellings)
        self.indexes = tuple(index_of[key] for key in self.keys)  # the keys' pattern indexes
        self.first = self.indexes[0]
        self.own = key_of(term.text)
        self.fields = _FIELDS if term.field is None else (term.field,)


class _NearPart:
    """A distinct ``A NEAR/n B`` of the rule set, its sides compiled terms."""

    __slots__ = ("distance", "left", "right")

    def __init__(self, left: _TermPart, right: _TermPart, distance: int) -> None:
        self.left, self.right, self.distance = left, right, distance


_Part = _TermPart | _NearPart


@dataclass(frozen=True, slots=True)
class _Rule:
    rule_id: str
    test: Callable[[_Scan], bool] | None  # the boolean tree as closures; None: always
    parts: tuple[_Part, ...]  # the positive terms and NEAR pairs, for reporting
    single: _TermPart | None  # the one positive part, when it is a term of one spelling


#: one occurrence of a key: field, [a, b) in that field's normalised key, the key
_Occurrence = tuple[str, int, int, str]


@dataclass
class _Scan:
    """What one evaluation found: the keys (pattern indexes) present per field, their
    occurrences on demand."""

    norms: dict[str, Normalized]
    patterns: list[str]  # the automaton's keys, by pattern index
    #: per field: (pattern, a, b) as the automaton found them, less the occurrences of
    #: keys with a Latin edge inside a longer Latin word
    matches: dict[str, list[tuple[int, int, int]]]
    present: dict[str, set[int]] = field(default_factory=dict)  # per field: patterns kept
    found: set[int] = field(default_factory=set)  # patterns present in any field
    located: dict[str, dict[int, list[_Occurrence]]] = field(default_factory=dict)
    cache: dict[_TermPart, list[_Occurrence]] = field(default_factory=dict)
    spans: dict[_Occurrence, tuple[int, int]] = field(default_factory=dict)
    parts: dict[_Part, tuple[list[TermHit], list[str]]] = field(default_factory=dict)

    def occurrences(self, pattern: int, name: str) -> list[_Occurrence]:
        """Return the occurrences of key *pattern* (its index) in field *name* whose Latin
        edges are word boundaries, in document order (overlapping ones included).

        The matches of a field are grouped by key on first use: an article that no rule
        needs positions for never pays for it.
        """
        by_key = self.located.get(name)
        if by_key is None:
            by_key = self.located[name] = {}
            patterns = self.patterns
            for index, a, b in self.matches[name]:
                same = by_key.get(index)
                if same is None:
                    by_key[index] = [(name, a, b, patterns[index])]
                else:
                    same.append((name, a, b, patterns[index]))
        return by_key.get(pattern, _NONE)

    def hit(self, occurrence: _Occurrence, term: str, synonym: str | None) -> TermHit:
        """Return the :class:`TermHit` for *occurrence* reported as *term*."""
        span = self.spans.get(occurrence)
        if span is None:
            span = self.spans[occurrence] = self.norms[occurrence[0]].span(
                occurrence[1], occurrence[2])
        return TermHit(occurrence[0], term, span[0], span[1], synonym)  # type: ignore[arg-type]

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
        for _, node in parsed:
            for term in terms_of(node):
                if term not in self._keys:
                    self._keys[term] = self._synonyms.spellings(term.text)
        # the automaton's patterns, each key once; everything per article goes by index
        self._patterns = sorted({k for spellings in self._keys.values() for k in spellings})
        self._index_of = {key: index for index, key in enumerate(self._patterns)}
        # flat flags, not a set of ints: looked up for every match, they stay in cache
        self._edges = bytes(_LEFT * is_latin_alnum(k[0]) | _RIGHT * is_latin_alnum(k[-1])
                            for k in self._patterns)
        self._terms = {term: _TermPart(term, spellings, self._index_of)
                       for term, spellings in self._keys.items()}
        self._nears: dict[Near, _NearPart] = {}
        # per pattern: the rules looked at when it is present (every pattern has an entry;
        # empty for keys of negated terms, and for the side of an AND not indexed)
        rules_by_index: list[list[int]] = [[] for _ in self._patterns]
        for index, (_, node) in enumerate(parsed):
            required = self._required(node)  # a rule is looked at only if one is present
            if required is None:
                required = {key for term in _positive_terms(node) for key in self._keys[term]}
            for key in required:
                rules_by_index[self._index_of[key]].append(index)
        self._rules = []
        for rule_id, node in parsed:
            parts = tuple(self._part(part) for part in _positive_parts(node))
            single = parts[0] if len(parts) == 1 and isinstance(parts[0], _TermPart) and len(
                parts[0].keys) == 1 else None
            self._rules.append(_Rule(rule_id, self._compile(node, top=True), parts,
                                     single))  # type: ignore[arg-type]
        # per rule, for the per-article loop: id, test, the one term (plain lists, by index)
        self._ids = [rule.rule_id for rule in self._rules]
        self._tests = [rule.test for rule in self._rules]
        self._singles = [rule.single for rule in self._rules]
        # per pattern, the rule looked at when it is present: most patterns serve one
        # rule, kept in a flat array (no int objects to chase per article); _NO_RULE or
        # _SHARED (then the rules are in _rules_of)
        self._rule_of = array("l", (rules[0] if len(rules) == 1 else
                                    _SHARED if rules else _NO_RULE for rules in rules_by_index))
        self._rules_of = {index: tuple(rules) for index, rules in enumerate(rules_by_index)
                          if len(rules) > 1}
        self._shared = frozenset(self._rules_of)
        # per rule: whether it holds whenever it is looked at (no test)
        self._holds = bytes(test is None for test in self._tests)
        self._automaton = (AhoCorasick(self._patterns, matchkind=MatchKind.Standard)
                           if self._patterns else None)

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
        scan = self._find(norms)
        found = scan.found
        looked = set(map(self._rule_of.__getitem__, found))
        if _SHARED in looked:
            rules_of = self._rules_of
            for index in found.intersection(self._shared):
                looked.update(rules_of[index])
            looked.discard(_SHARED)
        looked.discard(_NO_RULE)
        # a rule that is a term, or an OR of terms, over both fields holds whenever it is
        # looked at; the others are tested
        holds, tests = self._holds, self._tests
        ordered = sorted([index for index in looked if holds[index] or tests[index](scan)])
        singles, parts = self._singles, scan.parts
        self._term_hits({single for single in map(singles.__getitem__, ordered)
                         if single is not None}, scan)
        matches = []
        ids = self._ids
        handed: set[_TermPart] = set()  # terms whose lists a match already holds
        for index in ordered:
            single = singles[index]
            if single is not None:  # the common case: one term, one spelling
                hits, terms = parts[single]
                if single in handed:  # a term of several matching rules: lists of their own
                    hits, terms = hits[:], terms[:]
                else:
                    handed.add(single)
                matches.append(_new_tuple(RuleMatch, (ids[index], hits, terms)))
            else:
                matches.append(self._report(self._rules[index], scan))
        return matches

    def _term_hits(self, terms: Iterable[_TermPart], scan: _Scan) -> None:
        """Put the hits of *terms*, each a term of one spelling, into ``scan.parts``.

        The hot path of reporting, batched: per field, one pass (in C) over the matches
        picks those of the wanted keys (in document order: a key's matches come by end,
        so by start), and one offset-map pass gives all their spans; at most MAX_HITS
        per term, title first.
        """
        # rules sharing a term share its part: each part once, or its hits come twice
        built: dict[_TermPart, list[TermHit]] = {term: [] for term in terms
                                                 if term not in scan.parts}
        if not built:
            return
        # per field, per wanted key: the hit lists to fill and the term text each reports
        wanted_in: dict[str, dict[int, list[tuple[list[TermHit], str]]]] = {
            name: {} for name in _FIELDS}
        present = scan.present
        for term, hits in built.items():
            for name in term.fields:
                if term.first in present[name]:
                    wanted_in[name].setdefault(term.first, []).append((hits, term.text))
        for name, wanted in wanted_in.items():
            if not wanted:
                continue
            matches = scan.matches[name]
            picked = list(compress(matches, map(wanted.__contains__,
                                                map(_pattern_of, matches))))
            if len(picked) > MAX_HITS:  # a key repeated: at most MAX_HITS each
                picked = _first_of_each(picked, MAX_HITS)
            spans = scan.norms[name].spans(map(_slice_of, picked))
            for (index, _, _), (start, end) in zip(picked, spans, strict=True):
                for hits, text in wanted[index]:
                    hits.append(_new_tuple(TermHit, (name, text, start, end, None)))
        parts = scan.parts
        for term, hits in built.items():
            if len(hits) > MAX_HITS:  # title and text together: the title's first
                del hits[MAX_HITS:]
            parts[term] = (hits, [term.text] if hits else [])

    def _required(self, node: Node) -> frozenset[str] | None:
        """Return keys of which one must be present for *node* to hold (None: unknown).

        The presearch of monitoring engines (Luwak, Elasticsearch's percolator): a rule
        is indexed under the keys of one required part only — for ``A AND B`` and
        ``A NEAR/n B`` the part with the longest shortest key (the rarer, as a rule),
        for ``A OR B`` the keys of both — so rules that cannot hold are never evaluated.
        """
        if isinstance(node, Term):
            return frozenset(self._keys[node])
        if isinstance(node, Not):
            return None
        if isinstance(node, Or):
            options = [self._required(child) for child in node.children]
            if any(option is None for option in options):
                return None
            return frozenset().union(*options)  # type: ignore[arg-type]
        children = (node.left, node.right) if isinstance(node, Near) else node.children
        options = [o for o in (self._required(child) for child in children) if o is not None]
        if not options:
            return None
        return max(options, key=lambda keys: (min(map(len, keys), default=1 << 30), -len(keys)))

    def _part(self, node: Term | Near) -> _Part:
        """Return the shared compiled form of a term or NEAR pair."""
        if isinstance(node, Term):
            return self._terms[node]
        part = self._nears.get(node)
        if part is None:
            part = self._nears[node] = _NearPart(self._terms[node.left], self._terms[node.right],
                                                 node.distance)
        return part

    def _compile(self, node: Node, top: bool = False) -> Callable[[_Scan], bool] | None:
        """Turn *node* into a closure over a scan: plain loops, no per-call dispatch.

        A rule that is one term over both fields, or an OR of such terms, compiles to
        None: it holds whenever it is a candidate (one of its keys is present).  A rule
        that is an AND of such terms, ORs of them and their negations (the common
        shapes) compiles to one flat test.
        """
        if top:
            if self._keys_anywhere(node) is not None:
                return None
            flat = self._conjunction(node)
            if flat is not None:
                return flat
        if isinstance(node, Term):
            keys, only = frozenset(self._terms[node].indexes), node.field
            if only is None:  # (at the top, _keys_anywhere has made it None)
                return lambda scan: not scan.found.isdisjoint(keys)
            return lambda scan: not scan.present[only].isdisjoint(keys)
        if isinstance(node, Near):  # one pair within reach is enough to hold
            near = self._part(node)
            left = frozenset(near.left.indexes)  # type: ignore[union-attr]
            right = frozenset(near.right.indexes)  # type: ignore[union-attr]
            return lambda scan: (not scan.found.isdisjoint(left)
                                 and not scan.found.isdisjoint(right)
                                 and bool(self._near_hits(near, scan, limit=2)))  # type: ignore[arg-type]
        if isinstance(node, Not):
            inner = self._compile(node.child)
            return lambda scan: not inner(scan)
        tests = tuple(self._compile(child) for child in node.children)  # type: ignore[misc]
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

    def _keys_anywhere(self, node: Node) -> frozenset[int] | None:
        """Return the keys of a term over both fields or an OR of them (None: another node).

        Such a node holds exactly when one of these keys is present in either field.
        """
        if isinstance(node, Term):
            return frozenset(self._terms[node].indexes) if node.field is None else None
        if isinstance(node, Or):
            keys = [self._keys_anywhere(child) for child in node.children]
            return None if None in keys else frozenset().union(*keys)  # type: ignore[arg-type]
        return None

    def _conjunction(self, node: Node) -> Callable[[_Scan], bool] | None:
        """Compile an AND of ``_keys_anywhere`` nodes and their negations into one test.

        One closure instead of one per node: fewer calls and fewer objects touched per
        candidate (they are rarely in cache, among thousands of rules).
        """
        if not isinstance(node, And):
            return None
        need: list[frozenset[int]] = []
        avoid: set[int] = set()
        for child in node.children:
            negated = isinstance(child, Not)
            keys = self._keys_anywhere(child.child if negated else child)  # type: ignore[union-attr]
            if keys is None:
                return None
            if negated:
                avoid |= keys
            else:
                need.append(keys)
        # a key that must be there, one by one in C; groups of spellings or OR'ed terms
        ones = tuple(next(iter(keys)) for keys in need if len(keys) == 1)
        groups = tuple(keys for keys in need if len(keys) > 1)
        banned = frozenset(avoid)

        def conjunction(scan: _Scan) -> bool:
            found = scan.found
            if not all(map(found.__contains__, ones)):
                return False
            for keys in groups:
                if found.isdisjoint(keys):
                    return False
            return found.isdisjoint(banned)
        return conjunction

    def _find(self, norms: dict[str, Normalized]) -> _Scan:
        """Run the automaton over each field's key; return the scan with the keys present.

        Overlapping matches are all reported (every key found wherever it starts).  A
        key with a Latin edge is kept only where an occurrence has word boundaries.
        """
        matches_of: dict[str, list[tuple[int, int, int]]] = {name: [] for name in _FIELDS}
        if self._automaton is not None:
            find = self._automaton.find_matches_as_indexes
            matches_of = {name: find(norms[name].key, overlapping=True) for name in _FIELDS}
        edges = self._edges
        scan = _Scan(norms, self._patterns, matches_of)
        for name in _FIELDS:
            matches = matches_of[name]
            indexes = set(map(_pattern_of, matches))
            if any(map(edges.__getitem__, indexes)):
                # a key with a Latin edge counts only where it stands as a word: the
                # matches of such keys picked in C (compress), checked one by one
                norm = norms[name]
                text, gaps = norm.key, norm.gaps
                inside = {match for match in compress(matches, map(edges.__getitem__,
                                                                   map(_pattern_of, matches)))
                          if not _stands_alone(text, gaps, match[1], match[2],
                                               edges[match[0]])}
                if inside:
                    matches = matches_of[name] = list(filterfalse(inside.__contains__,
                                                                  matches))
                    indexes = set(map(_pattern_of, matches))
            scan.present[name] = indexes
            scan.found |= indexes
        return scan

    @staticmethod
    def _occurrences(term: _TermPart, scan: _Scan) -> list[_Occurrence]:
        cached = scan.cache.get(term)
        if cached is None:
            present, occurrences = scan.present, scan.occurrences
            cached = [hit for name in term.fields for index in term.indexes
                      if index in present[name] for hit in occurrences(index, name)]
            scan.cache[term] = cached
        return cached

    def _near_hits(self, node: _NearPart, scan: _Scan, limit: int = MAX_HITS
                   ) -> list[tuple[_TermPart, _Occurrence]]:
        """Return pairs of occurrences within ``node.distance`` words, at most *limit* hits.

        Right-hand occurrences are sorted by word and only those in the window around
        each left one are looked at: O((n + m) log m), whatever the text repeats.
        """
        hits: list[tuple[_TermPart, _Occurrence]] = []
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
        merged: dict[tuple[str, int, int], TermHit] = {}  # one hit per span, the first term wins
        names: dict[str, None] = {}
        for part in rule.parts:
            hits, terms = self._part_hits(part, scan)
            for hit in hits:
                merged.setdefault((hit.field, hit.start, hit.end), hit)
            names.update(dict.fromkeys(terms))
        ordered = sorted(merged.values(), key=_document_order)
        return RuleMatch(rule.rule_id, ordered[:MAX_HITS], list(names))

    def _part_hits(self, part: _Part, scan: _Scan) -> tuple[list[TermHit], list[str]]:
        """Return one positive part's hits (document order, at most MAX_HITS) and terms.

        Cached per scan: rules sharing a term build its hits once.
        """
        cached = scan.parts.get(part)
        if cached is not None:
            return cached
        if isinstance(part, _TermPart) and len(part.keys) == 1:
            self._term_hits((part,), scan)
            return scan.parts[part]
        if isinstance(part, _NearPart):
            found = self._near_hits(part, scan)
        else:
            ordered = sorted(self._occurrences(part, scan), key=_occurrence_order)
            found = [(part, hit) for hit in ordered[:MAX_HITS]]
        hits: dict[tuple[str, int, int], TermHit] = {}
        terms: dict[str, None] = {}
        for term, occurrence in found:
            key = occurrence[3]
            spelling = None if key == term.own else term.spellings[key]
            made = scan.hit(occurrence, term.text, spelling)
            hits.setdefault((made.field, made.start, made.end), made)
            terms.setdefault(term.text)
        cached = (sorted(hits.values(), key=_document_order)[:MAX_HITS], list(terms))
        scan.parts[part] = cached
        return cached


def _stands_alone(key: str, gaps: frozenset[int], a: int, b: int, edges: int) -> bool:
    """Tell whether ``key[a:b]``'s Latin edges (*edges*: _LEFT, _RIGHT) are word boundaries.

    A Latin letter or digit at an edge must not touch another one in the text's key,
    unless whitespace or a connector was dropped between them (``gaps``).
    """
    left, right = edges & _LEFT, edges & _RIGHT
    if left and a and a not in gaps and is_latin_alnum(key[a - 1]):
        return False
    return not (right and b < len(key) and b not in gaps and is_latin_alnum(key[b]))


def _first_of_each(matches: list[tuple[int, int, int]], limit: int
                   ) -> list[tuple[int, int, int]]:
    """Return *matches* with at most *limit* per pattern (the first ones), in order."""
    taken: dict[int, int] = {}
    kept = []
    for match in matches:
        count = taken.get(match[0], 0)
        if count < limit:
            taken[match[0]] = count + 1
            kept.append(match)
    return kept


def _occurrence_order(occurrence: _Occurrence) -> tuple[bool, int, int]:
    return occurrence[0] != "title", occurrence[1], occurrence[2]


def _document_order(hit: TermHit) -> tuple[bool, int, int]:
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


def match(
    query: str, text: str, *, title: str = "", synonyms: Iterable[Iterable[str]] = ()
) -> tuple[bool, list[TermHit]]:
    """Evaluate one *query* against *text* (and *title*), for ``sokbo match`` and tests.

    Returns:
        ``(matched, hits)``; hits in *text* have ``field="text"`` and offsets into *text*.

    Raises:
        QuerySyntaxError: *query* does not parse.
    """
    matches = RuleSet([("query", query)], synonyms).evaluate(title, text)
    return (True, matches[0].hits) if matches else (False, [])
