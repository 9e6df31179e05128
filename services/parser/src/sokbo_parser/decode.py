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

:func:`sniff_binary` tells, before decoding, whether a body is not text at all (an
image or archive served in place of a page), by the WHATWG MIME Sniffing rules.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Literal

import charset_normalizer

from sokbo.charsets import codec_for_label

__all__ = ["DecodedPage", "decode_html", "normalize_charset", "sniff_binary"]

Source = Literal["http", "bom", "meta", "detected", "override"]

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
#: WHATWG MIME Sniffing §7.1 "binary data byte": never in text in an ASCII-based encoding
_BINARY_BYTE = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
_SNIFF_LIMIT = 1445  # bytes: the "resource header" of WHATWG MIME Sniffing §5.2
#: signatures (MIME Sniffing §6.1-6.3) of what crawlers meet in place of a page
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"), (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b\x08", "gzip data"),
    (b"\x00\x00\x01\x00", "an icon"),
)


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


normalize_charset = codec_for_label  # re-exported: the WHATWG label lookup


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


def sniff_binary(body: bytes, http_charset: str | None = None) -> str | None:
    """Tell whether *body* is binary data rather than a text page, and what it looks like.

    Follows WHATWG MIME Sniffing (https://mimesniff.spec.whatwg.org/, §6 and §7.1):
    a known signature (PNG, JPEG, GIF, PDF, ZIP, gzip, ICO, WebP), or binary data
    bytes (control characters other than whitespace and ESC) in the first 1445
    bytes. Where the standard rejects a resource for one such byte, more than one in
    a hundred is required here: a stray NUL in a real page should not lose it. A
    UTF-16 page, which has NUL bytes, is text when a BOM or *http_charset* says so.

    Returns:
        ``None`` for text, else a short description: ``"a PNG image"``,
        ``"binary data"``.
    """
    head = body[:_SNIFF_LIMIT]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
            (normalize_charset(http_charset) or "").startswith("utf-16")):
        return None
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    return "binary data" if len(_BINARY_BYTE.findall(head)) * 100 > len(head) else None


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
