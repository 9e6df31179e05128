"""Near-duplicate fingerprints of articles: a 64-bit SimHash over character shingles.

Korean wire copy (Yonhap, Newsis, News1) and press releases are republished by many
outlets with small edits: another outlet's byline, its copyright line, a rewritten
lead sentence or headline.  Two such copies get fingerprints a few bits apart,
while unrelated articles differ in about half of the 64 bits.

How a fingerprint is made:

1. Bylines (``(서울=연합뉴스) 홍길동 기자 =``, ``[이데일리 조민정 기자]``,
   ``[FETV=신동현 기자]``), reporters' sign-off lines, e-mail addresses, photo
   credits (``(사진=연합뉴스)``) and short copyright lines (``ⓒ``, ``무단전재``,
   ``저작권자``) are removed: they say which outlet ran the copy, not what it says.
2. Title and text are folded into the matching key (:func:`sokbo.normalize.key_of`):
   NFKC, case folded, without whitespace, so spacing, NFD Hangul and full-width
   variants give the same key.
3. The key is cut into overlapping character 4-grams (Korean has no reliable word
   boundaries), each weighted by its number of occurrences, and each hashed with
   BLAKE2b to 64 bits (read little-endian; never Python's salted ``hash``).
4. Bit *i* of the fingerprint is set when the 4-grams whose hash has bit *i* set
   outweigh those whose hash has it clear (Charikar, "Similarity estimation
   techniques from rounding algorithms", STOC 2002, https://doi.org/10.1145/509907.509965).

:data:`THRESHOLD` was chosen by measurement (``tests/unit/test_fingerprint.py``) on
``tests/fixtures/corpus``: its 13 article pages (9 Korean) and the 94 items with text
of its Chosun feed, as the parser extracts them.  A copy with another outlet's byline
and copyright line is 0 bits away; with a rewritten lead sentence and a new headline
as well, at most 12 bits for every article of 800 characters or more (shorter ones
change more, relatively: 85–92 % stay within 12); unrelated articles, even from one
outlet on one day, are 18 or more bits apart (median 32, 5,671 pairs).  SimHash
distance grows with the share of text changed, so the threshold is wider than the
3 bits Manku et al. used for near-identical web pages.

Lookup of every fingerprint within :data:`THRESHOLD` bits uses blocks of bits
(:func:`bands`): split into ``THRESHOLD + 1`` bands, two fingerprints that differ in
at most ``THRESHOLD`` bits agree on at least one whole band (pigeonhole), as in
Manku, Jain and Das Sarma, "Detecting near-duplicates for web crawling", WWW 2007,
https://doi.org/10.1145/1242572.1242592.
"""

from __future__ import annotations

import re
from collections import Counter
from hashlib import blake2b

from sokbo.normalize import key_of

__all__ = [
    "BITS",
    "SHINGLE",
    "THRESHOLD",
    "bands",
    "fingerprint_of",
    "hamming",
    "is_fingerprint",
    "parse_fingerprint",
    "simhash",
    "strip_boilerplate",
]

#: size of a fingerprint in bits
BITS = 64
#: characters per shingle (of the matching key, so whitespace is not counted)
SHINGLE = 4
#: largest Hamming distance (bits of 64) at which two articles are one story
THRESHOLD = 12

_NAME = r"[가-힣]{2,4}"
_NAMES = rf"{_NAME}(?:\s*[·,]\s*{_NAME})*"
_TITLE_WORD = r"(?:선임|수석|객원|인턴)?(?:기자|특파원)"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_BOILERPLATE = re.compile("|".join((
    rf"\[[^\]\n=]{{1,20}}=\s*{_NAMES}\s*{_TITLE_WORD}\]",  # [FETV=신동현 기자]
    rf"\[[^\]\n\s=]{{1,20}}\s+{_NAMES}\s*{_TITLE_WORD}\]",  # [이데일리 조민정 기자]
    rf"\([^)\n=]{{1,20}}=[^)\n]{{1,20}}\)\s*(?:{_NAMES}\s*{_TITLE_WORD}\s*=)?",  # (서울=연합뉴스) …
    rf"(?m:^\s*{_NAMES}\s*{_TITLE_WORD}\s*=?\s*(?:{_EMAIL})?\s*$)",  # 신동현 기자 shin@fetv.co.kr
    _EMAIL,
    r"[(\[]\s*(?:사진|자료|그래픽|영상)\s*[=:][^)\]\n]{1,30}[)\]]",  # (사진=연합뉴스)
)))
_COPYRIGHT = re.compile(
    r"copyright|all rights reserved|무단\s*전재|재배포\s*금지|무단\s*복제|저작권자|[ⓒ©]", re.I)
_COPYRIGHT_LINE_MAX = 200  # characters; a longer line is a paragraph mentioning copyright

_LANE = 32  # bits per counter when summing 64 counters in one integer
_LANE_MASK = (1 << _LANE) - 1
#: each byte value with its 8 bits spread into 8 counters of _LANE bits
_SPREAD = tuple(sum(((byte >> bit) & 1) << (_LANE * bit) for bit in range(8))
                for byte in range(256))


def strip_boilerplate(text: str) -> str:
    """Return *text* without bylines, e-mail addresses, photo credits and copyright lines.

    These are the parts outlets change when they republish wire copy; see the
    module docstring for the forms recognised.  A copyright line is a line of at
    most 200 characters holding ``ⓒ``, ``©``, ``Copyright``, ``무단전재``,
    ``재배포 금지`` or ``저작권자``.
    """
    lines = [line for line in text.splitlines()
             if len(line) > _COPYRIGHT_LINE_MAX or not _COPYRIGHT.search(line)]
    return _BOILERPLATE.sub(" ", "\n".join(lines))


def _shingles(key: str) -> Counter[str]:
    """Count the overlapping :data:`SHINGLE`-character shingles of *key*.

    A key shorter than a shingle is one shingle; the empty key has none.
    """
    if len(key) <= SHINGLE:
        return Counter([key] if key else [])
    return Counter(key[i:i + SHINGLE] for i in range(len(key) - SHINGLE + 1))


def simhash(title: str, text: str) -> int:
    """Return the 64-bit SimHash of an article (Charikar 2002), as an unsigned int.

    Args:
        title: the headline (it counts like the text).
        text: the body text, lines separated by ``\\n``.

    Returns:
        An integer in ``[0, 2**64)``; bit *i* is set when the shingles whose
        BLAKE2b-64 hash (little-endian) has bit *i* set outweigh the others (ties
        clear it).  ``0`` for an article with no key characters.
    """
    key = key_of(f"{strip_boilerplate(title)}\n{strip_boilerplate(text)}")
    counts = _shingles(key)
    # all 64 per-bit sums at once: the hashes (each repeated by its weight) are laid end
    # to end; per byte position, Counter tallies the byte values (in C), and each value's
    # 8 bits are spread into 8 counters of _LANE bits, multiplied by its tally and added
    total = sum(counts.values())
    hashes = b"".join([blake2b(shingle.encode("utf-8"), digest_size=8).digest() * weight
                       for shingle, weight in counts.items()])
    lanes = 0
    for index in range(8):
        column = 0
        for byte, tally in Counter(hashes[index::8]).items():
            column += tally * _SPREAD[byte]
        lanes += column << (8 * _LANE * index)
    value = 0
    for bit in range(BITS):
        if 2 * ((lanes >> (_LANE * bit)) & _LANE_MASK) > total:
            value |= 1 << bit
    return value


def fingerprint_of(title: str, text: str) -> str:
    """Return the article's near-duplicate fingerprint: :func:`simhash` as 16 hex digits.

    Lowercase, zero-padded, most significant digit first (``f"{simhash:016x}"``).
    """
    return f"{simhash(title, text):016x}"


_HEX16 = re.compile(r"[0-9a-f]{16}")


def is_fingerprint(value: object) -> bool:
    """Tell whether *value* is a fingerprint as :func:`fingerprint_of` writes it."""
    return isinstance(value, str) and _HEX16.fullmatch(value) is not None


def parse_fingerprint(value: str) -> int:
    """Return the integer of a 16-hex-digit fingerprint.

    Raises:
        ValueError: *value* is not 16 lowercase hex digits.
    """
    if not is_fingerprint(value):
        raise ValueError(f"not a fingerprint (16 lowercase hex digits): {value!r}")
    return int(value, 16)


def hamming(a: int | str, b: int | str) -> int:
    """Return the number of bits in which two fingerprints differ (0 to 64).

    Each may be an int from :func:`simhash` or a string from :func:`fingerprint_of`.

    Raises:
        ValueError: a string is not a fingerprint.
    """
    x = parse_fingerprint(a) if isinstance(a, str) else a
    y = parse_fingerprint(b) if isinstance(b, str) else b
    return (x ^ y).bit_count()


def bands(fingerprint: int | str, threshold: int = THRESHOLD) -> list[int]:
    """Split a fingerprint into ``threshold + 1`` bands of consecutive bits.

    Band *i* is taken from the low bits up; widths differ by at most one bit
    (for 12: twelve bands of 5 bits and one of 4).  Two fingerprints at most
    *threshold* bits apart have at least one band value in common at the same
    index (pigeonhole), so looking up each band finds every near-duplicate
    (Manku, Jain, Das Sarma 2007, §3).

    Returns:
        The band values, index *i* at position *i*.

    Raises:
        ValueError: *threshold* is not in ``[0, 64)``, or a string is not a fingerprint.
    """
    if not 0 <= threshold < BITS:
        raise ValueError(f"threshold must be in [0, {BITS}), got {threshold}")
    value = parse_fingerprint(fingerprint) if isinstance(fingerprint, str) else fingerprint
    count = threshold + 1
    values: list[int] = []
    start = 0
    for index in range(count):
        width = BITS // count + (1 if index < BITS % count else 0)
        values.append((value >> start) & ((1 << width) - 1))
        start += width
    return values
