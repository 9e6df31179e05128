"""Turn the raw bytes of a fetched page into text, once, before extraction.

The order follows the WHATWG HTML "determining the character encoding" steps,
with labels resolved by the WHATWG Encoding Standard
(https://html.spec.whatwg.org/multipage/parsing.html#determining-the-character-encoding,
https://encoding.spec.whatwg.org/#names-and-labels):

1. an operator override for the source;
2. a byte order mark (UTF-8, UTF-16LE/BE), which the spec puts above the HTTP header;
3. the HTTP ``Content-Type`` charset;
4. ``<meta charset>`` / ``<meta http-equiv=content-type>`` (or an XML declaration),
   searched in the whole ``<head>``, not only its first 1024 bytes, because Korean
   pages often carry kilobytes of inline script before the meta tag (trafilatura #541);
5. statistical detection (charset-normalizer) over the part of the body that holds
   non-ASCII bytes, so a long ASCII head cannot make it answer "ascii".

A declared encoding must decode the body strictly to be used; when it does not, the
next step is tried. Bytes that are valid UTF-8 with non-ASCII content beat a legacy
declaration (a mislabeled page, feedparser #478): that combination is practically
never an accident. Nothing here raises on any input.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Literal

import charset_normalizer

__all__ = ["DecodedPage", "decode_html", "normalize_charset"]

Source = Literal["http", "bom", "meta", "detected", "override"]

# WHATWG Encoding Standard labels (encodings.json), grouped by the Python codec that
# decodes them. EUC-KR in the standard *is* windows-949, i.e. Python's cp949.
_CODEC_LABELS: dict[str, str] = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859-2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 "
    "iso_8859-2:1987 l2 latin2",
    "iso8859-3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 "
    "iso_8859-3:1988 l3 latin3",
    "iso8859-4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 "
    "iso_8859-4:1988 l4 latin4",
    "iso8859-5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 "
    "iso_8859-5 iso_8859-5:1988",
    "iso8859-6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 "
    "iso-8859-6 iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 "
    "iso_8859-6:1987",
    "iso8859-7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 "
    "iso8859-7 iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    "iso8859-8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 "
    "iso8859-8 iso88598 iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    "iso8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859-13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859-14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859-16": "iso-8859-16",
    "koi8-r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8-u": "koi8-ru koi8-u",
    "mac-roman": "csmacintosh mac macintosh x-mac-roman",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    "cp1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 "
    "iso8859-1 iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
    "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254",
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    "mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "gb18030": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 "
    "x-gbk gb18030",
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc-jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso2022_jp": "csiso2022jp iso-2022-jp",
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    # WHATWG labels, then names Korean servers send that the standard lacks.
    "cp949": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 "
    "ksc5601 ksc_5601 windows-949 x-windows-949 cp949 ms949 uhc euc_kr",
    "utf-16-be": "unicodefffe utf-16be",
    "utf-16-le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
}
_LABELS: dict[str, str] = {
    label: codec for codec, labels in _CODEC_LABELS.items() for label in labels.split()
}
_UNICODE = frozenset({"utf-8", "utf-16-le", "utf-16-be"})
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))

_HEAD_LIMIT = 64 * 1024  # bytes searched for a declaration when no </head> comes sooner
_DETECT_LIMIT = 64 * 1024  # bytes given to charset-normalizer
_HEAD_END = re.compile(rb"</head\s*>|<body[\s>]", re.IGNORECASE)
_SKIPPED = re.compile(rb"<!--.*?-->|<script\b.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_META = re.compile(rb"<meta[\s/]([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(rb"""([^\s=/>]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_CONTENT_CHARSET = re.compile(rb"""charset\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s;"']+))""", re.I)
_XML_DECL = re.compile(rb"""\A\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""", re.I)
_NON_ASCII = re.compile(rb"[\x80-\xff]")


@dataclass(frozen=True)
class DecodedPage:
    """A page body as text, with the Python codec used and where it was learnt.

    Attributes:
        text: the decoded page, without a byte order mark.
        encoding: the Python codec name used, e.g. ``"cp949"``, ``"utf-8"``.
        source: which step chose it: ``"override"``, ``"bom"``, ``"http"``,
            ``"meta"`` (meta tag or XML declaration) or ``"detected"``.
    """

    text: str
    encoding: str
    source: Source


def normalize_charset(label: str) -> str | None:
    """Map a charset label to the Python codec that decodes it, or ``None``.

    Follows the WHATWG Encoding Standard "get an encoding": trim ASCII whitespace
    (and quotes, as sent in some ``Content-Type`` headers), lowercase, look up the
    label. ``euc-kr`` and all its aliases give ``"cp949"`` (windows-949), and
    ``latin1``/``iso-8859-1``/``ascii`` give ``"cp1252"``. The ``replacement``
    labels (``iso-2022-kr`` …) and unknown labels give ``None``.
    """
    return _LABELS.get(label.strip(" \t\n\f\r\"'").lower())


def decode_html(
    body: bytes, http_charset: str | None = None, *, override: str | None = None
) -> DecodedPage:
    """Decode a page body, choosing the encoding as a browser would.

    Args:
        body: the raw response body in bytes, as fetched (decompressed).
        http_charset: the ``charset`` parameter of the HTTP ``Content-Type``, if any.
        override: an operator-configured label for this source; wins over everything.

    Returns:
        The text, the codec and the step that chose it. Never raises: when no
        encoding decodes the body strictly, the candidate leaving the fewest
        U+FFFD replacement characters is used.
    """
    forced = normalize_charset(override) if override else None
    if forced:
        return DecodedPage(body.decode(forced, errors="replace"), forced, "override")
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return DecodedPage(body[len(bom):].decode(codec, errors="replace"), codec, "bom")
    declared = _declared(body, http_charset)
    for codec, source in declared:
        text = _strict(body, codec)
        if text is None or (codec.startswith("utf-16") and b"\x00" not in body[:1024]):
            continue  # markup in UTF-16 has NUL bytes; without them the label is wrong
        if codec not in _UNICODE and _NON_ASCII.search(body):
            utf8 = _strict(body, "utf-8")
            if utf8 is not None:
                return DecodedPage(utf8, "utf-8", "detected")
        return DecodedPage(text, codec, source)
    utf8 = _strict(body, "utf-8")
    if utf8 is not None:
        return DecodedPage(utf8, "utf-8", "detected")
    detected = _detect(body)
    if detected:
        text = _strict(body, detected)
        if text is not None:
            return DecodedPage(text, detected, "detected")
    return _least_damaged(body, [*declared, (detected or "utf-8", "detected")])


def _declared(body: bytes, http_charset: str | None) -> list[tuple[str, Source]]:
    """List the encodings the transport and the document declare, in precedence order."""
    found: list[tuple[str, Source]] = []
    http_codec = normalize_charset(http_charset) if http_charset else None
    if http_codec:
        found.append((http_codec, "http"))
    meta_codec = _prescan(body)
    if meta_codec and meta_codec != http_codec:
        found.append((meta_codec, "meta"))
    return found


def _prescan(body: bytes) -> str | None:
    """Find the encoding declared by an XML declaration or a ``<meta>`` in the head.

    A simplified WHATWG prescan: comments and scripts are skipped, the first meta
    whose label is known wins, and a declared UTF-16 means UTF-8 (the bytes being
    read as ASCII show it is not UTF-16).
    """
    xml = _XML_DECL.match(body[:1024])
    if xml and (codec := normalize_charset(xml.group(1).decode("latin-1"))):
        return _meta_codec(codec)
    head = _SKIPPED.sub(b" ", body[:_HEAD_LIMIT])
    if end := _HEAD_END.search(head):
        head = head[: end.start()]
    for meta in _META.finditer(head):
        label = _meta_label(meta.group(1))
        if label and (codec := normalize_charset(label)):
            return _meta_codec(codec)
    return None


def _meta_codec(codec: str) -> str:
    """Apply the prescan rule: a UTF-16 label found in ASCII bytes means UTF-8."""
    return "utf-8" if codec.startswith("utf-16") else codec


def _meta_label(attributes: bytes) -> str | None:
    """Return the charset label one ``<meta>`` tag's attributes declare, if any."""
    attrs: dict[bytes, bytes] = {}
    for name, value in _ATTR.findall(attributes):
        quoted = value[:1] in (b'"', b"'") and value[-1:] == value[:1] and len(value) > 1
        attrs.setdefault(name.lower(), value[1:-1] if quoted else value)
    if attrs.get(b"charset"):
        return attrs[b"charset"].decode("latin-1")
    if attrs.get(b"http-equiv", b"").lower() == b"content-type" and b"content" in attrs:
        found = _CONTENT_CHARSET.search(attrs[b"content"])
        if found:
            return next(g for g in found.groups() if g is not None).decode("latin-1")
    return None


def _strict(body: bytes, codec: str) -> str | None:
    """Decode strictly, tolerating only a character cut off at the very end.

    Crawlers cap body sizes, so a multi-byte character may be truncated; the
    incremental decoder keeps those trailing bytes back instead of failing.
    """
    try:
        return codecs.getincrementaldecoder(codec)(errors="strict").decode(body, final=False)
    except (UnicodeDecodeError, LookupError):
        return None


def _detect(body: bytes) -> str | None:
    """Guess the codec with charset-normalizer from where the non-ASCII bytes start."""
    first = _NON_ASCII.search(body)
    if first is None:
        return None
    match = charset_normalizer.from_bytes(body[first.start(): first.start() + _DETECT_LIMIT])
    best = match.best()
    if best is None:
        return None
    name = codecs.lookup(best.encoding).name
    # Supersets the WHATWG standard decodes in their place.
    return {"euc_kr": "cp949", "iso8859-1": "cp1252", "ascii": "cp1252"}.get(name, name)


def _least_damaged(body: bytes, candidates: list[tuple[str, Source]]) -> DecodedPage:
    """Decode with replacement using whichever candidate leaves the fewest U+FFFD."""
    decoded = [
        DecodedPage(body.decode(codec, errors="replace"), codec, source)
        for codec, source in [*candidates, ("utf-8", "detected")]
    ]
    return min(decoded, key=lambda page: page.text.count("\ufffd"))
