"""Fold text into a matching key while remembering where each key character came from.

The key of a string is what rule terms are matched against: Unicode NFKC (which
includes NFC, so decomposed Hangul and full-width Latin fold) followed by case
folding, with whitespace, zero-width characters and connector punctuation
(``-``, ``_``, ``·`` …) removed.  Sentence punctuation (``.``, ``!``, ``?``, ``。``)
and quotes stay, so they still separate words.  Every key character keeps the
``[start, end)`` span (code-point indices) of the original characters it came
from, so a match in the key maps back to a highlight in the original text even
where NFKC changed lengths (a ligature ``ﬁ`` becomes two key characters that
both map to one original character; a decomposed syllable ``ᄀ ᅡ ᆨ`` becomes one
key character mapping to three).

See UAX #15 (Unicode normalisation forms): https://unicode.org/reports/tr15/
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache
from itertools import accumulate

__all__ = [
    "CONNECTORS",
    "ZERO_WIDTH",
    "Normalized",
    "fold",
    "is_latin_alnum",
    "key_of",
    "normalize",
]

#: Invisible characters ignored everywhere (ZWSP, ZWNJ, ZWJ, word joiner, BOM, soft hyphen).
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e")

#: Punctuation that joins the parts of one word and is ignored between characters:
#: hyphens, underscore, middle dots (Latin, Korean ``ㆍ``, Katakana, hyphenation point).
CONNECTORS = frozenset("-_\u00b7\u2010\u2011\u318d\u30fb\u2027")


def _extends(ch: str) -> bool:
    """Tell whether *ch* composes with the character before it (combining mark, jamo)."""
    return (
        unicodedata.combining(ch) != 0
        or "\u1160" <= ch <= "\u11ff"  # Hangul medial vowels and final consonants
        or "\ufe00" <= ch <= "\ufe0f"  # variation selectors
    )


@lru_cache(maxsize=8192)
def fold(text: str) -> str:
    """Return *text* in NFKC with case folded (nothing removed).

    Args:
        text: any string.

    Returns:
        ``NFKC(casefold(NFKC(text)))``, the Unicode ``NFKC_Casefold`` idea without
        removing default-ignorable characters.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def is_latin_alnum(ch: str) -> bool:
    """Tell whether the folded character *ch* is a Latin letter or a digit ("" → False)."""
    if not ch:
        return False
    if ch.isascii():
        return ch.isalnum()
    if ch.isdecimal():
        return True
    return ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN")


def _segment_end(text: str, i: int) -> int:
    """Return the end of the composition segment starting at index *i*."""
    j = i + 1
    n = len(text)
    while j < n and _extends(text[j]):
        j += 1
    return j


_DROPPED = "".join(sorted(ZERO_WIDTH | CONNECTORS))
_KEPT = re.compile("[^\\s" + re.escape(_DROPPED) + "]+")
#: connectors and zero-width characters; replaced with a regex, not str.translate,
#: whose per-character table lookups are ~20x slower on non-ASCII text
_HAS_DELETED = re.compile("[" + re.escape(_DROPPED) + "]")


#: characters known to fold one-to-one and compose with nothing: printable ASCII,
#: Hangul syllables, CJK ideographs, Hiragana and Katakana (not the sound marks)
_COMMON = re.compile("[\t\n\r\x20-\x7e\uac00-\ud7a3\u4e00-\u9fff\u3041-\u3096\u30a1-\u30fa]+")


class Normalized:
    """A string's matching key with a map from each key character to the original.

    The map is built on first use (most texts match nothing, and then only the key
    is needed).

    Attributes:
        original: the text as given.
        key: the folded text without whitespace, zero-width or connector characters.
        starts: per key character, the start index of its source span in ``original``.
        ends: per key character, the end index (exclusive) of its source span.
    """

    __slots__ = ("_entries", "_entry_keys", "_gap_list", "_pieces", "_plan", "_word_starts",
                 "gaps", "key", "original")

    def __init__(self, original: str, key: str, plan: list[tuple[int, int, str, bool]],
                 gaps: list[int] | None = None, entry_keys: list[int] | None = None,
                 entries: list[tuple[int, int, bool]] | None = None) -> None:
        self.original = original
        self.key = key
        self._gap_list = gaps or []  # key indices after a dropped character, in order
        self.gaps = frozenset(self._gap_list)
        self._plan = plan  # (start, end, folded, is_run) in original order, runs chunked
        self._entry_keys = entry_keys or [0] * len(plan)  # key offset where each entry starts
        # per entry: its slice of the gap list, and whether every dropped run in it is
        # one character wide (then offsets follow from the gaps alone)
        self._entries = entries or [(0, 0, False)] * len(plan)
        self._pieces: dict[int, tuple[list[int], list[int], list[int]]] = {}
        self._word_starts: list[int] | None = None

    def word_index(self, i: int) -> int:
        """Return which whitespace-separated word of the text key character *i* belongs to.

        Words are counted from 0 or 1 (consistently for one text), so only differences
        are meaningful: ``NEAR/n`` compares them.  Connectors and zero-width characters
        do not separate words; whitespace does.
        """
        if self._word_starts is None:
            starts: list[int] = []
            for entry, (_, _, folded, _) in enumerate(self._plan):
                lo, hi, _single = self._entries[entry]
                if not _HAS_DELETED.search(folded):
                    starts += self._gap_list[lo:hi]  # every gap here is whitespace
                    continue
                clean = _HAS_DELETED.sub("", folded)  # connectors and zero-width join words
                ends = list(accumulate(map(len, clean.split()), initial=self._entry_keys[entry]))
                if clean[:1].isspace():
                    starts.append(ends[0])
                starts += ends[1:-1]
                if clean[-1:].isspace():
                    starts.append(ends[-1])
            self._word_starts = sorted(set(starts))
        return bisect_right(self._word_starts, i)

    def _locate(self, i: int) -> tuple[int, int, int]:
        """Return (key offset of the piece, original start, original end or -1) for key *i*.

        In a one-to-one chunk whose dropped characters stand alone (single spaces: the
        usual case) the offset is computed from the gaps; otherwise only the plan entry
        (a chunk of ~256 characters) holding *i* is indexed, once.
        """
        entry = bisect_right(self._entry_keys, i) - 1
        lo, hi, single = self._entries[entry]
        if single:
            a = self._plan[entry][0]
            return i, a + (i - self._entry_keys[entry]) + bisect_right(
                self._gap_list, i, lo, hi) - lo, -1
        pieces = self._pieces.get(entry)
        if pieces is None:
            pieces = self._pieces[entry] = self._index_entry(entry)
        at, starts, ends = pieces
        p = bisect_right(at, i) - 1
        return at[p], starts[p], ends[p]

    def _index_entry(self, entry: int) -> tuple[list[int], list[int], list[int]]:
        a, b, folded, is_run = self._plan[entry]
        size = self._entry_keys[entry]
        if not is_run:
            return [size], [a], [b]
        spans = [match.span() for match in _KEPT.finditer(folded)]
        starts = [a + start for start, _ in spans]
        at = list(accumulate([end - start for start, end in spans], initial=size))
        at.pop()  # the key offset after the last piece
        return at, starts, [-1] * len(starts)

    def start_of(self, i: int) -> int:
        """Return the start (in ``original``) of the span key character *i* came from."""
        at, start, end = self._locate(i)
        return start + (i - at) if end < 0 else start

    def end_of(self, i: int) -> int:
        """Return the end (exclusive, in ``original``) of key character *i*'s span."""
        at, start, end = self._locate(i)
        return start + (i - at) + 1 if end < 0 else end

    @property
    def starts(self) -> tuple[int, ...]:
        return tuple(self.start_of(i) for i in range(len(self.key)))

    @property
    def ends(self) -> tuple[int, ...]:
        return tuple(self.end_of(i) for i in range(len(self.key)))

    def span(self, a: int, b: int) -> tuple[int, int]:
        """Return the ``[start, end)`` of ``original`` that key slice ``[a, b)`` came from."""
        last = b - 1
        keys = self._entry_keys
        entry = bisect_right(keys, a) - 1
        lo, hi, single = self._entries[entry]
        if single and (entry + 1 == len(keys) or last < keys[entry + 1]):
            # both ends in one one-to-one chunk (the usual case): one lookup, gaps only
            base, gaps = self._plan[entry][0] - keys[entry] - lo, self._gap_list
            return (base + a + bisect_right(gaps, a, lo, hi),
                    base + last + bisect_right(gaps, last, lo, hi) + 1)
        return self.start_of(a), self.end_of(last)

    def spans(self, slices: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """Return :meth:`span` of each key slice ``(a, b)`` in *slices*, in order.

        The same result as one :meth:`span` call per slice, for the many hits of one
        article: consecutive slices in one chunk reuse its lookup, and a slice with no
        dropped character inside costs one bisection.
        """
        keys, entries, gaps = self._entry_keys, self._entries, self._gap_list
        found: list[tuple[int, int]] = []
        first = following = -1  # key offsets [first, following) of the current chunk
        entry = lo = hi = base = 0
        single = False
        pieces: tuple[list[int], list[int], list[int]] | None = None
        for a, b in slices:
            last = b - 1
            if not first <= a < following:
                entry = bisect_right(keys, a) - 1
                first = keys[entry]
                following = keys[entry + 1] if entry + 1 < len(keys) else 1 << 62
                lo, hi, single = entries[entry]
                base = self._plan[entry][0] - first - lo
                pieces = None
            if last >= following:  # the slice spans chunks
                found.append((self.start_of(a), self.end_of(last)))
            elif single:
                p = bisect_right(gaps, a, lo, hi)
                start = base + a + p
                if p == hi or gaps[p] > last:  # nothing dropped inside the slice
                    found.append((start, start + b - a))
                else:
                    found.append((start, base + last + bisect_right(gaps, last, lo, hi) + 1))
            else:  # a chunk with wider dropped runs or a special segment: its pieces
                if pieces is None:
                    pieces = self._pieces.get(entry)
                    if pieces is None:
                        pieces = self._pieces[entry] = self._index_entry(entry)
                at, starts, ends = pieces
                p = bisect_right(at, a) - 1
                q = bisect_right(at, last, p) - 1
                found.append((starts[p] + (a - at[p]) if ends[p] < 0 else starts[p],
                              starts[q] + (last - at[q]) + 1 if ends[q] < 0 else ends[q]))
        return found

    def char_before(self, a: int) -> str:
        """Return the folded character adjacent before key index *a* ("" at the start).

        The neighbour is the original one, skipping nothing: where whitespace, a
        connector or a zero-width character was dropped before *a*, a space is
        returned.
        """
        if a in self.gaps:
            return " "
        return self.key[a - 1] if a > 0 else ""

    def char_after(self, b: int) -> str:
        """Return the folded character adjacent after key slice end *b* ("" at the end)."""
        if b in self.gaps:
            return " "
        return self.key[b] if b < len(self.key) else ""


def normalize(text: str) -> Normalized:
    """Fold *text* into its matching key and keep the offset map back to *text*.

    Runs of characters that fold one-to-one (ASCII, Hangul syllables, full-width
    Latin, most punctuation) are folded in one call; only characters that change
    length or compose with a neighbour (ligatures, ``㈜``, decomposed Hangul,
    combining marks) are folded one composition segment at a time.

    Args:
        text: the original string (title, article text or a query term).

    Returns:
        A :class:`Normalized` whose ``key[i]`` came from ``text[start_of(i):end_of(i)]``.
    """
    plan: list[tuple[int, int, str, bool]] = []
    pos = 0
    special = _special_chars(text)
    if special is not None:
        for match in special.finditer(text):
            start = match.start()
            while start > pos and _extends(text[start]):
                start -= 1  # a combining mark composes with the character before it
            if start < pos:
                continue  # already folded as part of the previous segment
            if start > pos:
                _add_run(plan, pos, _fold_run(text[pos:start]))
            pos = _segment_end(text, start)
            plan.append((start, pos, fold(text[start:pos]), False))
    if pos < len(text):
        _add_run(plan, pos, _fold_run(text[pos:]))
    parts: list[str] = []
    gaps: list[int] = []
    entry_keys: list[int] = []
    entries: list[tuple[int, int, bool]] = []
    size = 0
    for _, _, folded, is_run in plan:
        entry_keys.append(size)
        first_gap, start = len(gaps), size
        spaced = _HAS_DELETED.sub(" ", folded)
        words = spaced.split()
        if not words or spaced[0].isspace():
            gaps.append(size)
        for index, word in enumerate(words):
            if index:
                gaps.append(size)
            parts.append(word)
            size += len(word)
        if words and spaced[-1].isspace():
            gaps.append(size)
        dropped = len(folded) - (size - start)
        entries.append((first_gap, len(gaps),
                        is_run and bool(words) and dropped == len(gaps) - first_gap))
    return Normalized(text, "".join(parts), plan, gaps, entry_keys, entries)


_CHUNK = 256
_SPACE = re.compile(r"\s")


def _add_run(plan: list[tuple[int, int, str, bool]], a: int, folded: str) -> None:
    """Append a folded one-to-one run to *plan* in chunks of about ``_CHUNK`` characters.

    Chunks end at whitespace, so the offset map can be built for one chunk at a time.
    """
    i, n = 0, len(folded)
    while i < n:
        j = i + _CHUNK
        if j < n:
            space = _SPACE.search(folded, j)
            j = space.start() if space else n
        else:
            j = n
        plan.append((a + i, a + j, folded[i:j], True))
        i = j


def _fold_run(run: str) -> str:
    """Fold a run of one-to-one characters (uncached: runs are long and rarely repeat)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", run).casefold())


@lru_cache(maxsize=65536)
def _one_to_one(ch: str) -> bool:
    """Tell whether *ch* folds to exactly one character and composes with nothing."""
    return not _extends(ch) and len(fold(ch)) == 1


def _special_chars(text: str) -> re.Pattern[str] | None:
    """Return a pattern matching the characters of *text* that need segment folding."""
    rare = _COMMON.sub("", text)
    special = [ch for ch in set(rare) if not _one_to_one(ch)] if rare else []
    if not special:
        return None
    return re.compile("[" + "".join(re.escape(ch) for ch in special) + "]")


def key_of(text: str) -> str:
    """Return the matching key of *text* (a query term or phrase), see :func:`normalize`."""
    return normalize(text).key
