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

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

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


def _drops(ch: str) -> bool:
    return ch.isspace() or ch in ZERO_WIDTH or ch in CONNECTORS


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


def _segment_start(text: str, end: int) -> int:
    """Return the start of the composition segment that ends just before index *end*."""
    j = end - 1
    while j > 0 and _extends(text[j]):
        j -= 1
    return j


@dataclass(frozen=True, slots=True)
class Normalized:
    """A string's matching key with a map from each key character to the original.

    Attributes:
        original: the text as given.
        key: the folded text without whitespace, zero-width or connector characters.
        starts: per key character, the start index of its source span in ``original``.
        ends: per key character, the end index (exclusive) of its source span.
    """

    original: str
    key: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def span(self, a: int, b: int) -> tuple[int, int]:
        """Return the ``[start, end)`` of ``original`` that key slice ``[a, b)`` came from."""
        return self.starts[a], self.ends[b - 1]

    def char_before(self, a: int) -> str:
        """Return the folded character adjacent before key index *a* ("" at the start).

        The neighbour is looked up in the original text, skipping nothing: a space,
        a hyphen or a zero-width character before the match is returned as itself.
        """
        if a > 0 and self.starts[a - 1] == self.starts[a]:
            return self.key[a - 1]
        s = self.starts[a]
        if s == 0:
            return ""
        folded = fold(self.original[_segment_start(self.original, s) : s])
        return folded[-1] if folded else ""

    def char_after(self, b: int) -> str:
        """Return the folded character adjacent after key slice end *b* ("" at the end)."""
        if b < len(self.key) and self.starts[b] == self.starts[b - 1]:
            return self.key[b]
        e = self.ends[b - 1]
        if e >= len(self.original):
            return ""
        folded = fold(self.original[e : _segment_end(self.original, e)])
        return folded[0] if folded else ""


def normalize(text: str) -> Normalized:
    """Fold *text* into its matching key and keep the offset map back to *text*.

    Args:
        text: the original string (title, article text or a query term).

    Returns:
        A :class:`Normalized` whose ``key[i]`` came from ``text[starts[i]:ends[i]]``.
    """
    key: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    n = len(text)
    while i < n:
        j = _segment_end(text, i)
        for ch in fold(text[i:j]):
            if not _drops(ch):
                key.append(ch)
                starts.append(i)
                ends.append(j)
        i = j
    return Normalized(text, "".join(key), tuple(starts), tuple(ends))


def key_of(text: str) -> str:
    """Return the matching key of *text* (a query term or phrase), see :func:`normalize`."""
    return normalize(text).key
