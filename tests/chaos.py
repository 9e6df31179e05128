"""Helpers for the chaos test (tests/e2e/test_chaos.py).

* :class:`RedisProcess` — a redis-server of the test's own (AOF, ``appendfsync
  everysec``) on a free port in a temporary directory, so it can be restarted;
* :class:`FlakySlack` — a Slack-compatible webhook that answers a random share of
  posts with 429 (``Retry-After: 1``) or 500 and records only the posts it accepted;
* :class:`Replica` — one ``sokbo run SERVICE`` process under a stable ``HOSTNAME``,
  which the test kills with SIGKILL and starts again;
* :func:`build_stories` and :func:`expected_deliveries` — hundreds of distinct news
  stories made from the corpus (the real pages, and variants of them whose body is
  other real text), and the (alert, channel) deliveries they must cause, computed
  with the parser's and keyword-alert's own pure functions (the oracle).
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.servers import ROOT, free_port

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
PAGES = ROOT / "tests" / "fixtures" / "pages"
CHOSUN = CORPUS / "feeds" / "chosun-national-rss-2026-07-31.xml"


# --- Redis ---------------------------------------------------------------------------------


class RedisProcess:
    """redis-server with ``appendonly yes``, ``appendfsync everysec``, no RDB snapshots."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        import redis

        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def stop(self) -> None:
        """SIGTERM: Redis fsyncs the AOF and exits (a graceful restart loses nothing)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
            self.process = None

    def restart(self, down: float = 1.0) -> None:
        self.stop()
        time.sleep(down)
        self.start()
        self.restarts += 1


# --- Slack -----------------------------------------------------------------------------------


@dataclass
class FlakySlack:
    """A Slack incoming webhook that refuses a random *failure_rate* of posts.

    A refused post gets 429 with ``Retry-After: 1`` or 500 (half each) and is not
    delivered; ``posts`` holds the payloads of the accepted ones (200 ``ok``), in
    the order they were accepted, and ``accepted_at`` when (Unix time).
    """

    failure_rate: float = 0.2
    seed: int = 20250915
    posts: list[dict] = field(default_factory=list)
    accepted_at: list[float] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)

    def start(self) -> str:
        outer, lock, rng = self, threading.Lock(), random.Random(self.seed)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    roll = rng.random()
                    status = (200 if roll >= outer.failure_rate
                              else 429 if roll < outer.failure_rate / 2 else 500)
                    outer.answers[status] += 1
                    if status == 200:
                        outer.posts.append(json.loads(body))
                        outer.accepted_at.append(time.time())
                answer = {200: b"ok", 429: b"rate_limited", 500: b"internal_error"}[status]
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/chaos"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_LINK = re.compile(r"<(https?://[^|>]+)\|")
_RULE = re.compile(r"rule: ([a-z0-9-]+)")


def slack_alerts(payload: dict) -> list[tuple[str, str]]:
    """Return the (article URL, rule id) of each alert a Slack payload carries.

    A single alert's payload is a linked title, then a context line ending in
    ``rule: <id>``; a digest has one section per alert with both.  Each rule
    mention is paired with the last link before it.
    """
    found, url = [], None
    for block in payload.get("blocks", []):
        texts = [block.get("text", {}).get("text", "")] + [
            element.get("text", "") for element in block.get("elements", [])]
        for text in texts:
            for token in re.finditer(f"{_LINK.pattern}|{_RULE.pattern}", text):
                if token.group(1):
                    url = token.group(1)
                elif url is not None:
                    found.append((url, token.group(2)))
                    url = None
    return found


def mail_alert_ids(raw: email.message.Message) -> list[str]:
    """Return the alert ids an e-mail carries (``X-Sokbo-Alert-Id``, one per alert)."""
    return [str(value) for value in raw.get_all("X-Sokbo-Alert-Id") or []]


class TimedSmtp:
    """A local SMTP server (aiosmtpd) keeping each message and when it was accepted."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.Message] = []
        self.accepted_at: list[float] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.original_content,
                                                      policy=email.policy.default))
        self.accepted_at.append(time.time())
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


# --- replicas --------------------------------------------------------------------------------


class Replica:
    """One ``sokbo run SERVICE`` process named *name* (``HOSTNAME``: its consumer name)."""

    def __init__(self, service: str, name: str, config: Path, logs: Path, env: dict[str, str]
                 ) -> None:
        self.service, self.name, self.config = service, name, config
        self.log = logs / f"{name}.log"
        self.env = {**env, "HOSTNAME": name}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.killed_at: list[float] = []

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts} at {time.time():.3f}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sokbo.cli", "run", self.service, "--config",
                 str(self.config), "--metrics-port", "0"],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.killed_at.append(time.time())
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop); :meth:`wait` for the exit code."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int | None:
        """The exit code, waiting up to *timeout* seconds; SIGKILL and -9 after that."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def exited(self) -> int | None:
        """The exit code if the process ended on its own, else None."""
        return None if self.process is None else self.process.poll()


# --- stories and the oracle ------------------------------------------------------------------


@dataclass(frozen=True)
class Story:
    """A page on the test's news site: ``/news/<name>``, listed in a feed as *title*."""

    name: str
    title: str
    body: bytes


def _chosun_items() -> list[tuple[str, list[str]]]:
    """Return (title, paragraphs) of each item of the Chosun feed in the corpus."""
    import feedparser

    feed = feedparser.parse(CHOSUN.read_bytes())
    items = []
    for entry in feed.entries:
        content = entry.get("content", [{}])[0].get("value", "")
        content = re.sub(r"<figure>.*?</figure>", "", content, flags=re.S)
        paragraphs = [html.unescape(re.sub(r"<[^>]+>", "", part)).strip()
                      for part in re.split(r"(?:<br\s*/?>\s*)+", content)]
        paragraphs = [p for p in paragraphs if len(p) > 20]
        if paragraphs:
            items.append((entry.title, paragraphs))
    return items


def _bodies(count: int, rng: random.Random) -> list[tuple[str, list[str]]]:
    """Return *count* (headline, paragraphs) of distinct text: real Chosun passages of
    about 450 characters first, then mixes of sentences from all of them."""
    items = _chosun_items()
    bodies: list[tuple[str, list[str]]] = []
    for title, paragraphs in items:
        part: list[str] = []
        for paragraph in paragraphs:
            part.append(paragraph)
            if sum(map(len, part)) >= 450:
                bodies.append((f"{title} ({len(bodies) % 7 + 1}보)", part))
                part = []
    sentences = [s for _, ps in items for p in ps for s in re.split(r"(?<=다\.)\s+", p)
                 if len(s) > 25]
    while len(bodies) < count:
        picked = rng.sample(sentences, 6)
        bodies.append((picked[0][:30].rstrip() + "…", [" ".join(picked[:3]),
                                                       " ".join(picked[3:])]))
    return bodies[:count]


def _container(doc, text: str):
    """The smallest element of *doc* holding most of the article's paragraphs."""
    paragraphs = [p for p in text.split("\n") if len(p) > 30]
    best = None
    for element in doc.iter():
        if not isinstance(element.tag, str) or element.tag in ("html", "body"):
            continue
        content = element.text_content()
        hits = sum(1 for p in paragraphs if p[:25] in content)
        if hits >= max(1, int(0.6 * len(paragraphs))) and (
                best is None or len(content) < len(best.text_content())):
            best = element
    return best


def _variant(template: bytes, text: str, title: str, paragraphs: list[str]) -> bytes | None:
    """*template* (a real page) with its article body replaced by *paragraphs* and its
    headline by *title*; UTF-8, whatever the template declared."""
    import lxml.html

    from sokbo_parser.decode import decode_html

    doc = lxml.html.fromstring(decode_html(template, None).text)
    body = _container(doc, text)
    if body is None:
        return None
    for child in list(body):
        body.remove(child)
    body.text = None
    for paragraph in paragraphs:
        element = lxml.html.Element("p")
        element.text = paragraph
        body.append(element)
    for meta in doc.xpath("//meta[@charset or @http-equiv]"):
        meta.getparent().remove(meta)
    for node in doc.xpath("//title | //h1"):
        node.text, node[:] = title, []
    for meta in doc.xpath("//meta[@property='og:title' or @name='twitter:title']"):
        meta.set("content", title)
    head = doc.find("head")
    if head is not None:
        head.insert(0, lxml.html.Element("meta", charset="utf-8"))
    return lxml.html.tostring(doc, encoding="unicode", doctype="<!doctype html>").encode()


def _parse(story: Story, url: str, feed_title: str):
    """The article the parser makes of *story* fetched from *url*, or None (no article)."""
    from sokbo.errors import PermanentError
    from sokbo.messages import PageFetched
    from sokbo_parser.article import parse_page

    now = datetime.now(UTC)
    page = PageFetched(source_id="chaos", source_title=feed_title, url=url, final_url=url,
                       status=200, content_type="text/html", body=story.body,
                       entry_title=story.title, discovered_at=now, fetched_at=now)
    try:
        return parse_page(page, now=now)[0]
    except PermanentError:
        return None


def build_stories(count: int, *, base: str, feed_title: str, seed: int = 7) -> list[Story]:
    """Return about *count* stories: every real page of the corpus, then variants.

    A variant is a real article page (round robin over the corpus' Korean, Japanese
    and English article pages) whose body is replaced by other real text and whose
    headline by that text's; *base* and *feed_title* are where they will be served.
    """
    rng = random.Random(seed)
    real = [(p.name, p.read_bytes()) for p in sorted((CORPUS / "html").glob("*.html"))]
    real += [(p.name, p.read_bytes()) for p in sorted(PAGES.glob("*.html"))]
    stories, templates = [], []
    for name, body in real:
        article = _parse(Story(name, "", body), f"{base}/news/{name}", feed_title)
        stories.append(Story(name, article.title if article else name, body))
        if article is not None:
            templates.append((name, body, article.text))
    for index, (title, paragraphs) in enumerate(_bodies(count - len(stories), rng)):
        name, template, text = templates[index % len(templates)]
        body = _variant(template, text, title, paragraphs)
        if body is not None:
            stories.append(Story(f"v{index:03d}-{name}", title, body))
    return stories


@dataclass(frozen=True)
class Expected:
    """What the run must deliver: ``deliveries`` maps (alert id, channel id) to
    (story name, rule id); ``articles`` counts the stories that are articles."""

    deliveries: dict[tuple[str, str], tuple[str, str]]
    urls: dict[str, str]  # canonical URL → article id
    articles: int
    dropped: list[str]
    not_articles: list[str]  # the parser dead-letters these (a listing page)


def expected_deliveries(stories: list[Story], *, base: str, feed_title: str, rules: list,
                        synonyms: list[list[str]]) -> tuple[list[Story], Expected]:
    """Compute, independently of the run, each (alert, channel) the stories must cause.

    Each story is parsed as the parser does and evaluated against *rules* as
    keyword-alert does.  A matching story within ``THRESHOLD`` bits of one kept
    before it would be suppressed as a near-duplicate (one alert per story): it is
    dropped, so every story served is its own.  Returns (the stories to serve, the
    expectation).
    """
    from sokbo.fingerprint import THRESHOLD, hamming
    from sokbo.matching import RuleSet
    from sokbo.messages import alert_id_for
    from sokbo_keyword_alert.stories import fingerprint_for

    ruleset = RuleSet([(rule.id, rule.query) for rule in rules], synonyms)
    channels = {rule.id: rule.channels for rule in rules}
    kept, fingerprints, dropped, not_articles = [], [], [], []
    deliveries: dict[tuple[str, str], tuple[str, str]] = {}
    urls: dict[str, str] = {}
    articles = 0
    for story in stories:
        article = _parse(story, f"{base}/news/{story.name}", feed_title)
        matches = ruleset.evaluate(article.title, article.text) if article else []
        if matches:
            fingerprint = fingerprint_for(article)
            if any(hamming(fingerprint, other) <= THRESHOLD for other in fingerprints):
                dropped.append(story.name)
                continue
            fingerprints.append(fingerprint)
        kept.append(story)
        if article is None:
            not_articles.append(story.name)
            continue
        articles += 1
        urls[article.canonical_url] = article.article_id
        for match in matches:
            for channel in channels[match.rule_id]:
                key = (alert_id_for(article.article_id, match.rule_id), channel)
                deliveries[key] = (story.name, match.rule_id)
    return kept, Expected(deliveries, urls, articles, dropped, not_articles)


