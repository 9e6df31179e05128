"""Character-encoding labels resolved the way browsers do (WHATWG Encoding Standard).

https://encoding.spec.whatwg.org/#names-and-labels: every Korean label (``euc-kr``,
``ks_c_5601-1987``, ``x-windows-949``, …) means windows-949, a superset of EUC-KR
whose extra syllables (똠, 햏, …) real "EUC-KR" pages do carry; Python calls it
``cp949``.  Likewise ``iso-8859-1``/``ascii``/``latin1`` mean windows-1252.
"""

from __future__ import annotations

import codecs

__all__ = ["codec_for_label"]

_KOREAN = {"euc-kr", "cseuckr", "csksc56011987", "iso-ir-149", "korean", "ks_c_5601-1987",
           "ks_c_5601-1989", "ksc5601", "ksc_5601", "windows-949", "x-windows-949", "cp949",
           "uhc", "euckr", "ks_c_5601"}
_WINDOWS_1252 = {"ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819",
                 "iso-8859-1", "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1",
                 "iso_8859-1:1987", "l1", "latin1", "us-ascii", "windows-1252", "x-cp1252"}
_ALIASES = {"x-sjis": "shift_jis", "ms932": "cp932", "windows-31j": "cp932",
            "shift_jis": "cp932", "sjis": "cp932", "gb2312": "gb18030", "gbk": "gb18030",
            "x-gbk": "gb18030", "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8"}


def codec_for_label(label: str | None) -> str | None:
    """Return the Python codec for an encoding *label* (WHATWG rules), or None if unknown.

    >>> codec_for_label("EUC-KR")
    'cp949'
    """
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    if name in _KOREAN:
        return "cp949"
    if name in _WINDOWS_1252:
        return "cp1252"
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None
