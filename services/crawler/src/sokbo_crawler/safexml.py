"""Refuse XML that declares entities or refers to external ones, before anything parses it.

Entity declarations live only in the DTD, before the root element, so the check
parses the prolog and stops at the first element: a 5 MB feed costs what its
first lines cost.  The prolog is parsed by defusedxml's expat parser
(https://github.com/tiran/defusedxml), which raises on entity declarations,
unparsed entities and external entity references; here it also refuses a DTD
loaded from elsewhere (``<!DOCTYPE rss SYSTEM "http://…">``).  Two harmless forms
are let through: an internal entity whose value is at most one character
(``<!ENTITY nbsp "&#160;">``, which cannot expand anything), and a DTD named by
the public identifier of Netscape's RSS 0.91 (feedparser recognises it) or of the
W3C's HTML and XHTML (an HTML page served at a feed URL should fail as "not a
feed", not as unsafe): nothing here fetches a DTD, whatever its system URL.

Why feedparser (6.0.x, read in ``feedparser/api.py`` and ``sanitizer.py``) needs
this in front of it: it keeps "safe" entity declarations (a value with no ``&``)
and drops the others, so nested entities (billion laughs) and ``SYSTEM`` entities
are not expanded — but a single entity of 50 KB referenced 5,000 times is "safe".
expat (≥ 2.4) stops that document at its amplification limit; feedparser then
falls back to its loose sgmllib parser, which expands the entity itself: a 65 KB
feed becomes a 250-million-character title (0.7 GB, 3.5 s, measured with feedparser
6.0.14 and expat 2.5.0).  It also picks libxml2 as SAX driver when installed.  The
sitemap parser uses ElementTree, which expands internal entities too.  So feeds
go through :func:`check_xml` and sitemaps through :func:`parse_xml`.

A document that is merely malformed is not unsafe: :func:`check_xml` returns and
leaves it to feedparser's lenient parsing.  If the prolog itself is malformed, the
document is refused when its head (before the first element, as feedparser cuts
it) contains ``<!ENTITY``.  The text is decoded before parsing (byte order mark,
then the XML declaration's encoding as WHATWG labels it, else UTF-8; undecodable
bytes replaced), because expat cannot read EUC-KR, and leading whitespace is
skipped.  XML 1.0 §4.2 (entity declarations), Appendix F (encoding detection).
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from xml.parsers import expat

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.ElementTree import DefusedXMLParser

from sokbo.charsets import codec_for_label
from sokbo.errors import PermanentError

__all__ = ["UnsafeXMLError", "XMLSyntaxError", "check_xml", "parse_xml"]

_CHUNK = 64 * 1024  # characters fed to the parser at a time
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.:-]+)[\"']")
_FIRST_ELEMENT = re.compile(r"<\w")
_SIGNATURES = [  # XML 1.0 Appendix F.1, longest first
    (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF16_LE, "utf-16"), (b"\0<\0?", "utf-16-be"), (b"<\0?\0", "utf-16-le"),
]
_ASCII_MARKUP = b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY % b SYSTEM \"c\">]>&d;"
_HARMLESS_PUBLIC_ID = re.compile(
    r"-//Netscape Communications//DTD RSS 0\.91//EN|-//W3C//DTD X?HTML [^/]*//EN")


class UnsafeXMLError(PermanentError):
    """The document declares entities or refers to external ones: refused, not expanded."""


class XMLSyntaxError(PermanentError):
    """The document is not well-formed XML.

    Attributes:
        line: 1-based line of the error.
        column: 1-based column (in characters) of the error.
    """

    def __init__(self, message: str, *, line: int, column: int) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class _Stop(Exception):
    """The root element started: the prolog has been checked."""


class _Parser(DefusedXMLParser):
    """defusedxml's ElementTree parser, also refusing external DTDs, allowing 1-char entities."""

    def __init__(self, *, stop_at_root: bool = False) -> None:
        super().__init__(target=ET.TreeBuilder(), forbid_dtd=False, forbid_entities=True,
                         forbid_external=True)
        self.parser.StartDoctypeDeclHandler = self._refuse_external_dtd
        if stop_at_root:
            self.parser.StartElementHandler = self._stop_at_root

    def _refuse_external_dtd(self, name: str, sysid: str | None, pubid: str | None,
                             has_internal_subset: bool) -> None:
        if (sysid or pubid) and not _HARMLESS_PUBLIC_ID.fullmatch(pubid or ""):
            raise DTDForbidden(name, sysid, pubid)

    def defused_entity_decl(self, name, is_parameter_entity, value, base, sysid, pubid,
                            notation_name):
        if not is_parameter_entity and value is not None and len(value) <= 1 \
                and value not in ("&", "<"):
            return  # expands to at most what its reference takes: no amplification
        super().defused_entity_decl(name, is_parameter_entity, value, base, sysid, pubid,
                                    notation_name)

    @staticmethod
    def _stop_at_root(*args: object) -> None:
        raise _Stop


def check_xml(body: bytes, *, what: str, url: str) -> None:
    """Raise :class:`UnsafeXMLError` if *body* declares entities or refers to external ones.

    Args:
        body: the document as served (bytes; any encoding the declaration names).
        what: what the document is, for the message ("feed", "sitemap").
        url: where it came from, for the message.

    Only the prolog is parsed.  A malformed document is *not* an error here (see the
    module docstring): parse it with a lenient parser afterwards.

    Raises:
        UnsafeXMLError: entity declarations (billion laughs, quadratic blowup),
            external entities or an external DTD.
    """
    parser, head = _Parser(stop_at_root=True), []
    try:
        for chunk in _decoded(body):
            head.append(chunk)
            parser.feed(chunk)
        parser.close()
    except _Stop:
        return
    except DefusedXmlException as exc:
        raise _unsafe(exc, what, url) from None
    except ET.ParseError:
        _refuse_entities_in_head("".join(head), what, url)


def parse_xml(body: bytes, *, what: str, url: str) -> ET.Element:
    """Parse *body* into an ElementTree element, refusing entities and external references.

    Args:
        body: the document as served (bytes; any encoding the declaration names).
        what: what the document is, for messages ("sitemap", "sitemap index").
        url: where it came from, for messages.

    Returns:
        the root element (namespaced tags as ``{namespace}local``).

    Raises:
        UnsafeXMLError: entity declarations, external entities or an external DTD.
        XMLSyntaxError: the document is not well-formed; names the line and column.
    """
    parser = _Parser()
    text = "".join(_decoded(body))
    try:
        parser.feed(text)
        return parser.close()
    except DefusedXmlException as exc:
        raise _unsafe(exc, what, url) from None
    except ET.ParseError as exc:
        _refuse_entities_in_head(text, what, url)
        line, column = exc.position[0], exc.position[1] + 1
        raise XMLSyntaxError(f"{what} {url} is not well-formed XML at line {line}, column "
                             f"{column}: {expat.ErrorString(exc.code)}",
                             line=line, column=column) from None


def _decoded(body: bytes) -> Iterator[str]:
    """Yield *body* as text in chunks, leading whitespace skipped (see the module docstring)."""
    codec, skip = _encoding(body)
    try:
        decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    started = False
    for start in range(skip, len(body), _CHUNK):
        text = decoder.decode(body[start:start + _CHUNK])
        if not started:
            text = text.lstrip()
            started = bool(text)
        if text:
            yield text
    if tail := decoder.decode(b"", final=True):
        yield tail


def _encoding(body: bytes) -> tuple[str, int]:
    """Return (Python codec, bytes to skip) for *body*: a signature, the declaration, UTF-8."""
    for signature, codec in _SIGNATURES:
        if body.startswith(signature):
            return codec, len(signature) if codec == "utf-8-sig" else 0
    match = _XML_DECL.match(body[:1024])
    label = match.group(1).decode("ascii") if match else None
    codec = label and (codec_for_label(label) or _python_codec(label))
    # The declaration was read as ASCII: a codec that reads ASCII otherwise
    # (UTF-16 without a signature, EBCDIC) is a wrong label, not the encoding.
    if codec and _ASCII_MARKUP.decode(codec, errors="replace") == _ASCII_MARKUP.decode():
        return codec, 0
    return "utf-8", 0


def _python_codec(label: str) -> str | None:
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _refuse_entities_in_head(text: str, what: str, url: str) -> None:
    match = _FIRST_ELEMENT.search(text)
    if "<!ENTITY" in (text[:match.start()] if match else text):
        raise UnsafeXMLError(f"{what} {url} declares entities in a malformed DTD; refused "
                             "rather than risk an entity-expansion bomb")


def _unsafe(exc: DefusedXmlException, what: str, url: str) -> UnsafeXMLError:
    if isinstance(exc, DTDForbidden):
        reason = f"refers to an external DTD ({exc.sysid or exc.pubid})"
    elif isinstance(exc, EntitiesForbidden) and exc.value is not None:
        reason = (f"declares the entity {exc.name!r} (entity expansion, as in "
                  "'billion laughs' or a quadratic blowup)")
    elif isinstance(exc, EntitiesForbidden):
        reason = f"declares the external entity {exc.name!r} ({exc.sysid or exc.pubid})"
    else:
        reason = f"refers to an external entity ({exc.sysid or exc.pubid})"
    return UnsafeXMLError(f"{what} {url} {reason}; refused, not expanded")
