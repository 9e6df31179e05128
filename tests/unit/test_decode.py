"""Unit tests for sokbo_parser.decode: WHATWG labels, precedence, fallbacks, detection."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sokbo_parser.decode import DecodedPage, decode_html, normalize_charset, sniff_binary

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
KOREAN = "오픈AI 코리아가 소버린AI 정책을 발표했다. 똠방각하와 햏자도 읽힌다."
#: "똠" and "햏" exist only in CP949's extension, not in KS X 1001 (strict EUC-KR)
CP949_ONLY = "똠햏"


def _page(head: str, body: str, encoding: str) -> bytes:
    return f"<html><head>{head}</head><body><p>{body}</p></body></html>".encode(encoding)


def _manifest() -> list[dict[str, str]]:
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("euc-kr", "cp949"), ("EUC-KR", "cp949"), (" ks_c_5601-1987 ", "cp949"),
        ("ks_c_5601-1989", "cp949"), ("windows-949", "cp949"), ("x-windows-949", "cp949"),
        ("cseuckr", "cp949"), ("ksc5601", "cp949"), ("ksc_5601", "cp949"), ("korean", "cp949"),
        ("iso-ir-149", "cp949"), ('"euc-kr"', "cp949"),
        ("latin1", "cp1252"), ("ISO-8859-1", "cp1252"), ("ascii", "cp1252"),
        ("us-ascii", "cp1252"), ("windows-1252", "cp1252"),
        ("utf-8", "utf-8"), ("UTF8", "utf-8"), ("unicode-1-1-utf-8", "utf-8"),
        ("utf-16", "utf-16-le"), ("utf-16be", "utf-16-be"),
        ("shift_jis", "cp932"), ("euc-jp", "euc-jp"), ("gb2312", "gb18030"), ("big5", "big5hkscs"),
        ("koi8-r", "koi8-r"), ("iso-8859-15", "iso8859-15"),
    ],
)
def test_normalize_charset_maps_whatwg_labels_to_python_codecs(label: str, codec: str) -> None:
    assert normalize_charset(label) == codec
    codecs.lookup(codec)  # every answer is a codec Python has


@pytest.mark.parametrize("label", ["", "bogus", "iso-2022-kr", "replacement", "x-user-defined"])
def test_normalize_charset_returns_none_for_unknown_and_replacement_labels(label: str) -> None:
    assert normalize_charset(label) is None


def test_http_charset_wins_over_meta() -> None:
    body = _page('<meta charset="iso-8859-2">', KOREAN, "cp949")
    page = decode_html(body, "euc-kr")
    assert (page.encoding, page.source) == ("cp949", "http")
    assert KOREAN in page.text


def test_http_charset_wins_over_detection() -> None:
    page = decode_html(_page("", KOREAN, "cp949"), "ks_c_5601-1987")
    assert page == DecodedPage(page.text, "cp949", "http")
    assert KOREAN in page.text


def test_wrong_http_charset_falls_back_to_meta() -> None:
    """Korean servers often send a default ``charset=utf-8`` for EUC-KR pages."""
    page = decode_html(_page('<meta charset="euc-kr">', KOREAN, "cp949"), "utf-8")
    assert (page.encoding, page.source) == ("cp949", "meta")
    assert KOREAN in page.text


def test_wrong_http_charset_without_meta_falls_back_to_detection() -> None:
    body = _page("", KOREAN * 20, "cp949")
    page = decode_html(body, "utf-8")
    assert (page.encoding, page.source) == ("cp949", "detected")
    assert KOREAN in page.text


@pytest.mark.parametrize(
    ("bom", "codec", "encoding"),
    [
        (codecs.BOM_UTF8, "utf-8", "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be"),
    ],
)
def test_bom_is_used_and_removed(bom: bytes, codec: str, encoding: str) -> None:
    """WHATWG HTML puts the BOM above the HTTP charset, so a stale header loses."""
    page = decode_html(bom + _page('<meta charset="euc-kr">', KOREAN, encoding), "euc-kr")
    assert (page.encoding, page.source) == (codec, "bom")
    assert page.text.startswith("<html>")
    assert KOREAN in page.text


@pytest.mark.parametrize(
    "declaration",
    [
        '<meta charset="euc-kr">',
        "<meta charset=euc-kr>",
        "<META CHARSET='EUC-KR'/>",
        '<meta http-equiv="Content-Type" content="text/html; charset=euc-kr">',
        '<meta content="text/html;charset=ks_c_5601-1987" http-equiv="content-type">',
        "<meta http-equiv=content-type content='text/html; charset=\"windows-949\"'>",
        '<meta name="viewport" content="width=device-width"><meta charset="korean">',
    ],
)
def test_meta_charset_and_http_equiv_are_read(declaration: str) -> None:
    page = decode_html(_page(f"<title>t</title>{declaration}", KOREAN, "cp949"))
    assert (page.encoding, page.source) == ("cp949", "meta")
    assert KOREAN in page.text


def test_xml_declaration_counts_as_a_declaration() -> None:
    body = f'<?xml version="1.0" encoding="EUC-KR"?><rss><title>{KOREAN}</title></rss>'
    page = decode_html(body.encode("cp949"))
    assert (page.encoding, page.source) == ("cp949", "meta")


def test_meta_after_a_long_ascii_script_is_found() -> None:
    """trafilatura #541: the declaration sits after 20 KB of inline script."""
    script = "<script>" + "var x = 'ascii only';\n" * 1000 + "</script>"
    page = decode_html(_page(script + '<meta charset="euc-kr">', KOREAN * 10, "cp949"))
    assert (page.encoding, page.source) == ("cp949", "meta")
    assert KOREAN in page.text


@pytest.mark.parametrize(
    "decoy",
    [
        '<!-- <meta charset="iso-8859-5"> -->',
        "<script>document.write('<meta charset=\"iso-8859-5\">')</script>",
    ],
)
def test_meta_in_comments_and_scripts_is_ignored(decoy: str) -> None:
    page = decode_html(_page(decoy + '<meta charset="euc-kr">', KOREAN, "cp949"))
    assert page.encoding == "cp949"


def test_meta_declaring_utf16_means_utf8() -> None:
    """WHATWG prescan: bytes readable as ASCII cannot be UTF-16."""
    page = decode_html(_page('<meta charset="utf-16">', KOREAN, "utf-8"))
    assert (page.encoding, page.source) == ("utf-8", "meta")
    assert KOREAN in page.text


def test_utf16_header_on_ascii_compatible_bytes_is_ignored() -> None:
    page = decode_html(_page('<meta charset="euc-kr">', KOREAN, "cp949"), "utf-16")
    assert (page.encoding, page.source) == ("cp949", "meta")


def test_utf16_header_without_bom_is_honoured() -> None:
    page = decode_html(_page("", KOREAN, "utf-16-le"), "utf-16le")
    assert (page.encoding, page.source) == ("utf-16-le", "http")
    assert KOREAN in page.text


@pytest.mark.parametrize("where", ["http", "meta"])
def test_euc_kr_label_decodes_cp949_only_syllables(where: str) -> None:
    body = _page('<meta charset="euc-kr">' if where == "meta" else "", CP949_ONLY, "cp949")
    with pytest.raises(UnicodeDecodeError):
        body.decode("euc_kr")  # Python's strict EUC-KR would fail on these bytes
    page = decode_html(body, "euc-kr" if where == "http" else None)
    assert (page.encoding, page.source) == ("cp949", where)
    assert CP949_ONLY in page.text


def test_mislabeled_naver_page_decodes_as_utf8() -> None:
    """Declares euc-kr, but the bytes are UTF-8 (saved from requests' .text)."""
    name = "naver-news-politics-section-2022-mislabeled-charset.html"
    page = decode_html((CORPUS / "html" / name).read_bytes())
    assert (page.encoding, page.source) == ("utf-8", "detected")
    assert "정치 홈 : 네이버 뉴스" in page.text
    assert "\ufffd" not in page.text


def test_utf8_body_beats_a_latin1_family_header() -> None:
    """feedparser #478: the last byte of 고 (EA B3 A0) must not become a stripped NBSP."""
    body = "<rss><channel><item><title>소버린AI 예산 늘리고</title></item></channel></rss>"
    page = decode_html(body.encode("utf-8"), "windows-1252")
    assert page.encoding == "utf-8"
    assert "<title>소버린AI 예산 늘리고</title>" in page.text


@pytest.mark.parametrize(
    "row",
    [row for row in _manifest() if row["kind"] != "listing"],
    ids=lambda row: row["file"],
)
def test_corpus_files_decode_without_replacement_characters(row: dict[str, str]) -> None:
    page = decode_html((CORPUS / row["file"]).read_bytes())
    euc_kr = row["encoding_detected"].startswith("euc-kr")
    assert page.encoding == ("cp949" if euc_kr else "utf-8")
    assert "\ufffd" not in page.text
    if row["language"] == "ko":
        assert sum("가" <= ch <= "힣" for ch in page.text) > 200


@pytest.mark.parametrize(
    "name",
    ["feeds/naver-blog-rss-2004-euckr.xml", "feeds/acnnewswire-korean-press-rss-2005-euckr.xml",
     "html/naver-seoulshinmun-gopchang-2021-euckr.html"],
)
def test_corpus_euc_kr_files_survive_a_wrong_utf8_header(name: str) -> None:
    page = decode_html((CORPUS / name).read_bytes(), "utf-8")
    assert (page.encoding, page.source) == ("cp949", "meta")
    assert "\ufffd" not in page.text


@pytest.mark.parametrize("encoding", ["cp949", "utf-8"])
def test_ascii_heavy_start_does_not_fool_detection(encoding: str) -> None:
    """No declaration at all, 20 KB of ASCII first, Korean only in the body."""
    script = "<script>" + "window.dataLayer.push({event: 'view'});\n" * 500 + "</script>"
    body = _page(script, "<br>".join([KOREAN] * 10), encoding)
    page = decode_html(body)
    assert (page.encoding, page.source) == (encoding, "detected")
    assert page.text.count(KOREAN) == 10


def test_a_character_cut_off_at_the_end_does_not_change_the_encoding() -> None:
    body = _page("", KOREAN, "utf-8")[:-len("</p></body></html>")] + "속보".encode()[:-1]
    page = decode_html(body)
    assert page.encoding == "utf-8"
    assert page.text.endswith(KOREAN + "속")


def test_override_wins_over_everything() -> None:
    body = codecs.BOM_UTF8 + _page('<meta charset="utf-8">', KOREAN, "utf-8")
    assert decode_html(body, "utf-8", override="euc-kr").source == "override"
    assert decode_html(body, override="no-such-label").source == "bom"


@pytest.mark.parametrize(
    "body", [b"", b"\xff", b"\xef\xbb", b"\xfe\xff\x00", b"\x81\x00\xff" * 100, bytes(range(256))]
)
def test_nasty_bytes_never_raise(body: bytes) -> None:
    assert isinstance(decode_html(body, "euc-kr").text, str)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=3000),
    http_charset=st.none() | st.sampled_from(["euc-kr", "utf-8", "latin1", "utf-16", "bogus"]),
)
def test_random_bytes_never_raise(body: bytes, http_charset: str | None) -> None:
    page = decode_html(body, http_charset)
    assert isinstance(page.text, str)
    codecs.lookup(page.encoding)


# --- sniff_binary (WHATWG MIME Sniffing) -----------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (bytes.fromhex("89504e470d0a1a0a0000000d49484452"), "a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a JPEG image"),
        (b"GIF89a\x01\x00\x01\x00", "a GIF image"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "a WebP image"),
        (b"%PDF-1.7\n", "a PDF document"),
        (b"PK\x03\x04\x14\x00", "a ZIP archive"),
        (b"\x1f\x8b\x08\x00\x00\x00", "gzip data"),
        (bytes(range(32)) * 10, "binary data"),
        (b"\x00\x01binary", "binary data"),
    ],
)
def test_sniff_binary_names_what_the_body_is(body: bytes, kind: str) -> None:
    assert sniff_binary(body) == kind
    assert sniff_binary(body, "utf-8") == kind  # a text label does not make it text


@pytest.mark.parametrize(
    ("body", "http_charset"),
    [
        (_page("", KOREAN, "utf-8"), None),
        (_page('<meta charset="euc-kr">', KOREAN, "cp949"), "euc-kr"),
        (codecs.BOM_UTF16_LE + _page("", KOREAN, "utf-16-le"), None),
        (_page("", KOREAN, "utf-16-le"), "utf-16le"),
        ("<p>\x1b$B日本語\x1b(B</p>".encode("latin-1", "replace"), None),  # ESC: ISO-2022-JP
        (_page("", KOREAN * 30, "utf-8") + b"\x00", None),  # one stray NUL in a real page
        (b"", None),
    ],
)
def test_sniff_binary_passes_text(body: bytes, http_charset: str | None) -> None:
    assert sniff_binary(body, http_charset) is None
