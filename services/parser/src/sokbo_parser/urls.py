"""Canonical URLs: one spelling per article, so one ``article_id`` (jfroelich/rss-reader #215).

The same story reaches the crawler under many URLs: with feed and campaign tracking
parameters (``?ncid=rss``, ``utm_*``), with a fragment, on the mobile host
(``m.``), as an AMP page. :func:`canonical_url` maps all of them to one URL:

* RFC 3986 §6.2.2-6.2.3 normalisation: scheme and host lowercased, the default port
  and the fragment dropped, an empty path written ``/``;
* tracking parameters (:data:`TRACKING_PARAMETERS`, any ``utm_*``) removed. Every
  other parameter is kept, since many identify the document (``idxno``, ``no``,
  ``id``, ``aid``, ``oid``, ``sid``); the kept ones are sorted by name, so their order
  cannot make two URLs differ;
* AMP and mobile variants folded onto the desktop page: a ``/amp`` path suffix or
  ``/amp/`` segment and the ``amp=1`` / ``outputType=amp`` parameters are removed;
  an ``m.``, ``mobile.`` or ``amp.`` host label is replaced by ``www.`` when what
  remains is the registrable domain (``m.fetv.co.kr`` → ``www.fetv.co.kr``) and
  dropped otherwise (``m.news.naver.com`` → ``news.naver.com``).

:func:`same_site` compares registrable domains (Public Suffix List, via ``tld``), so
a page's ``<link rel=canonical>`` pointing at another site is recognised and ignored.
"""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

from tld import get_fld

__all__ = ["TRACKING_PARAMETERS", "canonical_url", "same_site", "site_of"]

#: query parameters that say how a reader arrived, never which document it is:
#: analytics and ad click ids (Google, Meta, Microsoft, Yandex, Mailchimp, Adobe),
#: feed/portal referrers (``ncid``, ``ref``, ``from``) and share ids. Compared
#: case-insensitively; ``utm_*`` (Google Analytics campaign tags) are matched by prefix.
TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
    "ttclid", "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "cmpid",
    "ito", "ncid", "ref", "ref_src", "ref_url", "referrer", "from", "spm", "share",
})
_TRACKING_PREFIXES = ("utm_",)
#: parameters that only ask for the AMP rendering: name → values meaning "AMP"
_AMP_PARAMETERS = {"amp": {"", "1", "true", "y", "yes"}, "outputtype": {"amp"},
                   "output": {"amp"}, "outputformat": {"amp"}}
_MOBILE_LABELS = frozenset({"m", "mobile", "amp"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """Return the one spelling of *url* that every variant of the same page shares.

    Args:
        url: an absolute http(s) URL, e.g. a final URL after redirects or the href
            of a page's ``<link rel=canonical>``.

    Returns:
        *url* normalised as the module documentation describes, e.g.
        ``https://m.news.example.kr/amp/article/123?utm_source=rss&b=2&a=1#top`` →
        ``https://news.example.kr/article/123?a=1&b=2``. Idempotent; never raises
        (an unparsable port is kept as written).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = _desktop_host((parts.hostname or "").rstrip("."))
    if ":" in host:  # IPv6 literal (RFC 3986 §3.2.2)
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
        host = parts.netloc.rpartition("@")[2].lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, _desktop_path(parts.path), _query(parts.query), ""))


def same_site(url: str | None, other: str | None) -> bool:
    """Tell whether two absolute URLs belong to the same site (registrable domain).

    ``https://m.news.example.kr/a`` and ``https://www.example.kr/b`` are the same site
    (``example.kr``); hosts without a public suffix (``127.0.0.1``, ``localhost``)
    must match exactly. ``None`` or a relative URL is never the same site.
    """
    if not url or not other:
        return False
    site = site_of(url)
    return site is not None and site == site_of(other)


def site_of(url: str) -> str | None:
    """Return the registrable domain of *url* (``news.example.kr`` → ``example.kr``).

    Follows the Public Suffix List (https://publicsuffix.org/) as bundled with
    ``tld``. A host without a listed suffix (an IP address, ``localhost``) is its
    own site; ``None`` when *url* has no host.
    """
    host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    if not host:
        return None
    return get_fld(f"http://{host}", fail_silently=True) or host


def _desktop_host(host: str) -> str:
    """Fold a mobile/AMP host (``m.``, ``mobile.``, ``amp.``) onto the desktop host."""
    host = host.lower()
    label, _, rest = host.partition(".")
    if label not in _MOBILE_LABELS or "." not in rest:
        return host
    registrable = get_fld(f"http://{rest}", fail_silently=True)
    if registrable is None:  # no public suffix: not a site we can reason about
        return host
    return f"www.{rest}" if rest == registrable else rest


def _desktop_path(path: str) -> str:
    """Drop ``amp`` path segments (``/amp/article/1``, ``/article/1/amp``); ``""`` → ``/``.

    A trailing slash stays as written: WordPress serves ``/2024/04/28/slug/amp/`` for
    ``/2024/04/28/slug/``.
    """
    if not path.startswith("/"):
        return path or "/"
    return "/" + "/".join(s for s in path.split("/")[1:] if s.lower() != "amp")


def _query(query: str) -> str:
    """Remove tracking and AMP parameters and sort the rest by name (stable, raw bytes kept)."""
    kept: list[tuple[str, str]] = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        key = unquote_plus(name).strip().lower()
        if key in TRACKING_PARAMETERS or key.startswith(_TRACKING_PREFIXES):
            continue
        if unquote_plus(value).strip().lower() in _AMP_PARAMETERS.get(key, ()):
            continue
        kept.append((key, pair))
    kept.sort(key=lambda item: item[0])
    return "&".join(pair for _, pair in kept)
