#!/usr/bin/env python3
"""Benchmark the pipeline: parser → keyword-alert → notifier as processes, one replica each.

Three measurements in one run, against a redis-server of its own (a free port, no
persistence) and a local Slack-compatible webhook that answers 200 at once:

1. bare extraction: ``parse_page`` over 2,000 pages in this process, articles/s;
2. throughput: the same 2,000 pages published at once into ``sokbo.pages`` (as the
   crawler publishes them: ``RedisBroker.publish`` of the encoded ``PageFetched``),
   from the first publish to the last alert delivered at the webhook, articles/s;
3. latency: pages published open loop at 20 articles/s for 30 s, each with
   ``fetched_at`` set as it is published; latency is the webhook's arrival time
   minus ``fetched_at``, per alert (p50, p95, p99), split into stages from the
   alert's own timestamps and the stream entry ids (Redis's clock, ms).

The pages are the corpus and fixture article pages, cycled; each copy has its own
URL and two fifths of the letters its page uses swapped for others of the same
page and script (a different draw per copy), so that every copy is a new story to
keyword-alert's near-duplicate index (SimHash more than 12 bits apart) while its
markup, size and structure, which are what extraction costs, stay the real page's.
Rule terms and date/byline words (년, 월, 기자, …) are never changed.

    python bench/pipeline.py [--out BENCHMARKS.md] [--workers N] [--profile]  (make bench)

``--workers`` is the parser's ``parser.workers`` (default 2, this machine's cores):
one parser replica extracting that many pages at once, in processes of its own.

``--profile`` runs each service under cProfile and prints where its event-loop
thread spends its time (``parse_page`` runs in a worker thread, not profiled).
Not a test: nothing here fails on a number; the figures are for people to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE_DIRS = (ROOT / "tests" / "fixtures" / "corpus" / "html", ROOT / "tests" / "fixtures" / "pages")
COUNT = 2_000  # articles for bare extraction and throughput
RATE = 20.0  # articles per second offered in the latency run
SECONDS = 30.0  # length of the latency run
SHARE = 0.4  # share of a page's letters swapped in each copy
HOST = "bench.example"
CHANNEL = "bench-slack"
SERVICES = ("parser", "keyword-alert", "notifier")
#: letters of dates and bylines, never swapped (published_at, authors stay found)
KEEP = set("년월일시분초기자입력수정오전후年月日時分")
#: the Slack channel's pacing (if the notifier has it): the most its config accepts
PACING = {"max_per_second": 100, "burst": 1000}
SYNONYMS = [["OpenAI", "오픈AI", "오픈에이아이"]]
#: realistic rules besides the watch list (which matches every article)
RULES = [("openai-korea", '"OpenAI 코리아" OR "오픈AI 코리아"'), ("sovereign-ai", "소버린AI"),
         ("lee-jaemyung", "이재명 OR 민주당"), ("chips", "반도체 AND (중국 OR 화웨이 OR 엔비디아)")]
_RUN = re.compile(r"[^\x00-\x7f]+")
_MARKUP = re.compile(r"(<script\b.*?</script\s*>|<style\b.*?</style\s*>|<!--.*?-->|<[^>]*>"
                     r"|&#?\w+;)", re.S | re.I)
#: a relative canonical URL (a fixture's): it would make every copy one article
_CANONICAL = re.compile(r"""<link\b[^>]*\bcanonical\b[^>]*\bhref=["']?/[^>]*>""", re.I)
_TOKEN = re.compile(r"[가-힣]{2,8}|[A-Za-z][A-Za-z0-9]{2,15}|[一-鿿]{2,6}|[ァ-ヺー]{3,10}")
_ALERT = re.compile(r"<(https?://[^|>]+)\|.*?rule: ([a-z0-9-]+)", re.S)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402  (bench/ is not a package)

# --- the pages ---------------------------------------------------------------------


def _script(ch: str) -> str | None:
    code = ord(ch)
    if code < 128:
        return "latin-lower" if ch.islower() else "latin-upper"
    for name, low, high in (("hangul", 0xAC00, 0xD7A3), ("kana", 0x3040, 0x30FF),
                            ("han", 0x4E00, 0x9FFF)):
        if low <= code <= high:
            return name
    return None


class Page:
    """One corpus page, decoded once; :meth:`copy` makes its distinct copies."""

    def __init__(self, path: Path, protected: re.Pattern[str]) -> None:
        from sokbo_parser.decode import decode_html

        self.name = path.name
        decoded = decode_html(path.read_bytes())
        # a relative canonical URL dropped: each copy's canonical URL is then its own URL
        self.text, self.encoding = _CANONICAL.sub("", decoded.text), decoded.encoding
        self.pools: dict[str, list[str]] = {}
        for ch in sorted({c for c in self.text if c.isalpha()} - KEEP):
            if script := _script(ch):
                self.pools.setdefault(script, []).append(ch)
        # pages mostly in Latin letters: swap ASCII letters too, in text nodes only
        shown = "".join(_MARKUP.split(self.text)[::2])
        latin = sum(c.isascii() and c.isalpha() for c in shown)
        self.latin = latin > 4 * sum(c.isalpha() for c in shown if not c.isascii())
        self.spans = [m.span() for m in protected.finditer(self.text)]

    def copy(self, index: int) -> bytes:
        """Return copy *index*: a share of the page's letters swapped, protected terms kept."""
        rng = random.Random(f"{self.name}/{index}")
        wide: dict[int, str] = {}
        ascii_: dict[int, str] = {}
        for script, pool in self.pools.items():
            table = ascii_ if script.startswith("latin") else wide
            for ch in pool:
                if rng.random() < SHARE:
                    table[ord(ch)] = rng.choice(pool)
        text = _RUN.sub(lambda m: m[0].translate(wide), self.text)
        if self.latin:
            parts = _MARKUP.split(text)
            text = "".join(p if i % 2 else p.translate(ascii_) for i, p in enumerate(parts))
        pieces, last = [], 0  # put the protected terms back (every swap keeps lengths)
        for start, end in self.spans:
            pieces += [text[last:start], self.text[start:end]]
            last = end
        pieces.append(text[last:])
        return "".join(pieces).encode(self.encoding, "xmlcharrefreplace")


def page_message(page: Page, index: int, phase: str, body: bytes, now: datetime):
    from sokbo.messages import PageFetched

    url = f"https://{HOST}/{phase}/{index}/{page.name}"
    return PageFetched(source_id="bench", source_title="벤치일보", url=url, final_url=url,
                       status=200, content_type="text/html", body=body,
                       discovered_at=now, fetched_at=now)


def corpus() -> tuple[list[Page], list[tuple[str, str]], list[str]]:
    """Return the article pages, the rules (watch list first), and the pages left out.

    The watch list holds one rare word from each article's headline (1–3 times in its
    text), so it matches every copy; pages holding no article (listings) are left out.
    """
    from sokbo.errors import PermanentError
    from sokbo.matching import match
    from sokbo.query import parse_query, terms_of
    from sokbo_parser.article import parse_page

    now = datetime.now(UTC)
    paths = sorted(p for d in PAGE_DIRS for p in d.glob("*.html"))
    none = re.compile(r"(?!)")
    found, left_out = {}, []
    for path in paths:
        raw = Page(path, none)
        try:
            article = parse_page(page_message(raw, 0, "probe", path.read_bytes(), now),
                                 now=now).article
        except PermanentError:
            left_out.append(path.name)
            continue
        found[path] = article

    def hits(word: str, text: str) -> int:
        return len(match(word, text)[1])

    words = set()
    for article in found.values():  # a headline word 1-3 times in its text, rare elsewhere
        elsewhere = [a.text for a in found.values() if a is not article]
        ranked = sorted((sum(hits(w, t) > 0 for t in elsewhere), n, -len(w), w)
                        for w in set(_TOKEN.findall(article.title))
                        if 1 <= (n := hits(w, article.text)) <= 3)
        words |= {ranked[0][-1]} if ranked else set()
    rules = [("watch-list", " OR ".join(sorted(words))), *RULES]
    terms = {t.text for _, q in rules for t in terms_of(parse_query(q))}
    terms |= {s for group in SYNONYMS for s in group}
    protected = re.compile("|".join(map(re.escape, sorted(terms, key=len, reverse=True))))
    return [Page(p, protected) for p in found], rules, left_out


# --- the world: redis-server, webhook, services ---------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


class World:
    """Own redis-server, webhook and the three service processes, under *workdir*."""

    def __init__(self, workdir: Path, rules: list[tuple[str, str]], profile: bool,
                 workers: int) -> None:
        self.dir, self.rules, self.profile, self.workers = workdir, rules, profile, workers
        self.redis_port, self.webhook_port = free_port(), free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.record = workdir / "webhook.tsv"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.metrics: dict[str, int] = {}

    def start(self) -> None:
        (self.dir / "redis").mkdir()
        self._spawn("redis", ["/usr/bin/redis-server", "--port", str(self.redis_port),
                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(self.dir / "redis")])
        self._spawn("webhook", [sys.executable, __file__, "--webhook", str(self.webhook_port),
                                "--record", str(self.record)])
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.redis_port), 0.2).close()
                 is None, 10, "redis-server")
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.webhook_port), 0.2).close()
                 is None, 10, "the webhook")
        config = self._write_config()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SOKBO_CONFIG")}
        for name in SERVICES:
            self.metrics[name] = port = free_port()
            run = ["-m", "sokbo.cli", "run", name, "--config", str(config),
                   "--metrics-port", str(port)]
            if self.profile:
                run = ["-m", "cProfile", "-o", str(self.dir / f"{name}.prof"), *run]
            self._spawn(name, [sys.executable, *run], env=env)
        for name, port in self.metrics.items():
            try:
                wait_for(lambda p=port: _get(f"http://127.0.0.1:{p}/readyz") == 200, 60,
                         f"{name} to be ready")
            except RuntimeError as exc:
                log = (self.dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{exc}; its log ends:\n{log}") from None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                env=env, cwd=ROOT)

    def _write_config(self) -> Path:
        from sokbo.config import SlackChannel

        slack = {"id": CHANNEL, "kind": "slack",
                 "webhook_url": f"http://127.0.0.1:{self.webhook_port}/services/T0/B0/bench"}
        # pacing as loose as the notifier allows, if it paces: the webhook answers at once
        slack |= {k: v for k, v in PACING.items() if k in SlackChannel.model_fields}
        config = {"redis_url": self.redis_url, "log_level": "info", "synonyms": SYNONYMS,
                  "parser": {"workers": self.workers},
                  "rules": [{"id": i, "query": q, "channels": [CHANNEL]}
                            for i, q in self.rules],
                  "channels": [slack]}
        path = self.dir / "sokbo.yaml"
        path.write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    def stop(self) -> None:
        for name in [*SERVICES, "webhook", "redis"]:  # services first: they need Redis
            process = self.processes.pop(name, None)
            if process is None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def deliveries(self) -> list[tuple[float, str, str, int]]:
        """Return (arrival, url, rule id, alerts in its post) of every alert delivered."""
        if not self.record.exists():
            return []
        rows = []
        for line in self.record.read_text(encoding="utf-8").splitlines():
            at, url, rule, size = line.split("\t")
            rows.append((float(at), url, rule, int(size)))
        return rows

    def usage(self, since: dict[str, float] | None = None) -> dict[str, float]:
        """Return CPU seconds used by each process (this one as "benchmark"), minus *since*.

        ``machine`` is the CPU time of every process on the machine; ``<name> MB`` each
        service's peak resident set size (VmHWM), in MB.
        """
        tick = os.sysconf("SC_CLK_TCK")
        # all cores: user nice system idle iowait irq softirq steal (guest is in user)
        jiffies = [int(n) for n in Path("/proc/stat").read_text().split()[1:9]]
        used = {"machine": (sum(jiffies) - jiffies[3] - jiffies[4]) / tick,
                "benchmark": sum(os.times()[:2])}
        for name, process in self.processes.items():
            used[name] = used[f"{name} MB"] = 0.0
            for pid in _family(process.pid):  # the parser's extraction processes count too
                proc = Path(f"/proc/{pid}")
                try:
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                    hwm = re.search(r"VmHWM:\s+(\d+)", (proc / "status").read_text())
                except OSError:  # ended meanwhile
                    continue
                used[name] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
                used[f"{name} MB"] += int(hwm[1]) / 1024 if hwm else 0.0
        return {k: v - (since or {}).get(k, 0) if " MB" not in k else v
                for k, v in used.items()}

    def events(self, service: str, event: str) -> list[dict]:
        needle = f'"event":"{event}"'
        return [json.loads(line) for line in
                (self.dir / f"{service}.log").read_text(errors="replace").splitlines()
                if line.startswith("{") and needle in line]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# --- the webhook (a child process) --------------------------------------------------


async def serve_webhook(port: int, record: Path) -> None:
    """Answer every POST with 200 "ok" at once; append ``arrival\\turl\\trule`` per post."""
    out = record.open("a", encoding="utf-8", buffering=1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                body = await reader.readexactly(int(length[1]) if length else 0)
                arrival = time.time()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: 2\r\n\r\nok")
                blocks = json.loads(body)["blocks"]  # one alert, or a digest of several
                text = "\n".join(t for b in blocks for t in
                                 [b.get("text", {}).get("text", "")] +
                                 [e.get("text", "") for e in b.get("elements", [])])
                found = _ALERT.findall(text) or [("?", "?")]
                out.write("".join(f"{arrival:.6f}\t{url}\t{rule}\t{len(found)}\n"
                                  for url, rule in found))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    out.close()


# --- the measurements ------------------------------------------------------------------


def bare_extraction(messages: list) -> tuple[float, list]:
    """Return (seconds, articles) of ``parse_page`` over *messages*, one after another."""
    from sokbo_parser.article import parse_page

    now = datetime.now(UTC)
    articles = []
    started = time.perf_counter()
    for message in messages:
        articles.append(parse_page(message, now=now)[0])
    return time.perf_counter() - started, articles


async def drained(client) -> bool:
    """Tell whether every consumer group has read its whole stream and acked it all.

    The parser deletes each page it handled, so ``sokbo.pages`` is empty then.
    """
    from sokbo import streams

    async with client.pipeline(transaction=True) as pipe:
        pipe.xlen(streams.PAGES)
        for stream in streams.GROUPS:
            pipe.xinfo_groups(stream)
        for stream in (streams.ARTICLES, streams.ALERTS):
            pipe.xinfo_stream(stream)
        pipe.zcard(streams.key("slack", "queue", CHANNEL))  # the notifier's outbox
        pages, *replies, queued = await pipe.execute()
    groups, infos = [g[0] for g in replies[:3]], [None, *replies[3:]]
    if pages or queued or any(group["pending"] for group in groups):
        return False
    return all(info["last-generated-id"] == group["last-delivered-id"]
               for info, group in zip(infos[1:], groups[1:], strict=True))


async def wait_drained(world: World, client, timeout: float = 120.0) -> float:
    """Wait until the pipeline holds nothing; return when that was seen (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await drained(client):
            return time.time()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the pipeline did not drain in {timeout:g} s; logs in {world.dir}")


async def run_pipeline(world: World, pages: list[Page], messages: list) -> dict:
    """Publish *messages* at once, then pages at RATE; return the timings of both runs."""
    import redis.asyncio as aioredis
    from faststream.redis import RedisBroker

    from sokbo import streams
    from sokbo.messages import encode

    client = aioredis.from_url(world.redis_url)
    async with RedisBroker(world.redis_url) as broker:
        encoded = [encode(m) for m in messages]
        before = world.usage()
        started = time.time()
        for body in encoded:
            await broker.publish(body, stream=streams.PAGES)
        published = time.time()
        done = await wait_drained(world, client)
        del encoded
        result = {"started": started, "published": published, "drained": done,
                  "cpu": world.usage(before), "commands": await client.info("commandstats")}

        await asyncio.sleep(1.0)
        bodies = [(p, p.copy(i)) for i, p in ((COUNT + i, pages[i % len(pages)])
                                              for i in range(int(RATE * SECONDS)))]
        fetched: dict[str, float] = {}
        before = world.usage()
        begin = time.monotonic()
        for n, (page, body) in enumerate(bodies):
            await asyncio.sleep(max(0.0, begin + n / RATE - time.monotonic()))
            message = page_message(page, COUNT + n, "l", body, datetime.now(UTC))
            fetched[message.url] = message.fetched_at.timestamp()
            await broker.publish(encode(message), stream=streams.PAGES)
        result["paced_s"] = time.monotonic() - begin
        await wait_drained(world, client)
        result["paced_cpu"] = world.usage(before)
        result["fetched"] = fetched
        result["stages"] = await stage_marks(client)
    await client.aclose()
    return result


async def stage_marks(client) -> dict[tuple[str, str], dict[str, float]]:
    """Return, per (article url, rule id), when each stage handed it on (Unix seconds).

    ``parsed_at``/``raised_at`` are the services' clocks at the start of the parse and
    of the alert; ``articles``/``alerts`` are the entry ids' times (Redis's clock, ms).
    """
    from faststream.redis.parser.binary import BinaryMessageFormatV1

    from sokbo import streams
    from sokbo.messages import AlertRaised, ArticleParsed

    def entries(replies):  # (time the entry was added, its JSON body)
        return [(int(entry_id.split(b"-")[0]) / 1000,
                 BinaryMessageFormatV1.parse(fields[b"__data__"])[0])
                for entry_id, fields in replies]

    published = {}
    for at, body in entries(await client.xrange(streams.ARTICLES)):
        published[ArticleParsed.model_validate_json(body).article_id] = at
    marks = {}
    for at, body in entries(await client.xrange(streams.ALERTS)):
        alert = AlertRaised.model_validate_json(body)
        marks[(alert.article.url, alert.rule_id)] = {
            "fetched": alert.fetched_at.timestamp(), "parsed": alert.parsed_at.timestamp(),
            "articles": published[alert.article.article_id],
            "raised": alert.raised_at.timestamp(), "alerts": at}
    return marks


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _family(pid: int) -> list[int]:
    """Return *pid* and every process descended from it (Linux /proc children lists)."""
    family, i = [pid], 0
    while i < len(family):
        for task in Path(f"/proc/{family[i]}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                family += [int(child) for child in task.read_text().split()]
        i += 1
    return family


def measure(profile: bool, keep: Path | None = None, workers: int = 1) -> dict:
    """Run the three measurements; with *keep*, leave logs, profiles and data there."""
    from sokbo.matching import RuleSet

    started = time.monotonic()
    pages, rules, left_out = corpus()
    now = datetime.now(UTC)
    messages = [page_message(pages[i % len(pages)], i, "t", pages[i % len(pages)].copy(i), now)
                for i in range(COUNT)]
    ruleset = RuleSet(rules, SYNONYMS)
    if keep:
        keep.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="sokbo-bench-") as tmp:
        world = World(keep or Path(tmp), rules, profile, workers)
        try:
            world.start()
            before = world.usage()
            bare_s, articles = bare_extraction(messages)
            bare_cpu = world.usage(before)
            expected = {(a.canonical_url, m.rule_id) for a in articles
                        for m in ruleset.evaluate(a.title, a.text)}
            del articles
            timing = asyncio.run(run_pipeline(world, pages, messages))
        finally:
            world.stop()
        events = {name: len(world.events(service, name))
                  for service, name in (("keyword-alert", "near_duplicate_suppressed"),
                                        ("keyword-alert", "alert_already_raised"))}
        events["dead"] = sum(len(world.events(service, "entry_dead_lettered"))
                             for service in SERVICES)
        deliveries = world.deliveries()
        if keep:
            (keep / "timing.json").write_text(json.dumps(
                {k: v for k, v in timing.items() if k != "stages"} | {"stages": [
                    [url, rule, marks] for (url, rule), marks in timing["stages"].items()]}))
        profiles = report_profiles(world.dir) if profile else ""
    thrown = [d for d in deliveries if f"/{HOST}/t/" in d[1]]
    paced = [d for d in deliveries if f"/{HOST}/l/" in d[1]]
    delivered = {(url, rule) for _, url, rule, _ in thrown}
    end = max(at for at, *_ in thrown) if thrown else timing["drained"]
    return {
        "pages": pages, "left_out": left_out, "rules": rules, "bare_s": bare_s,
        "pipeline_s": end - timing["started"],
        "publish_s": timing["published"] - timing["started"],
        "expected": len(expected), "delivered": len(delivered), "alerts": len(thrown),
        "missing": len(expected - delivered), "unexpected": len(delivered - expected),
        "digested": sum(size > 1 for *_, size in deliveries),
        "suppressed": events["near_duplicate_suppressed"], "dead": events["dead"],
        "again": events["alert_already_raised"],
        "paced": int(RATE * SECONDS), "paced_s": timing["paced_s"],
        "latencies": [(at - timing["fetched"][url]) * 1000 for at, url, _, _ in paced],
        "stages": timing["stages"], "arrivals": paced,
        "cpu": timing["cpu"], "paced_cpu": timing["paced_cpu"], "bare_cpu": bare_cpu,
        "runtime_s": time.monotonic() - started, "profiles": profiles, "workers": workers}


# --- reporting -------------------------------------------------------------------------


STAGES = (("waiting in sokbo.pages", "fetched", "parsed"),
          ("parsing (decode, extract) + publish", "parsed", "articles"),
          ("keyword-alert (wait, match, dedupe, publish)", "articles", "raised"),
          ("alert publish", "raised", "alerts"),
          ("notifier (wait, render, POST)", "alerts", "delivered"))


def stage_rows(result: dict) -> list[tuple[str, list[float]]]:
    rows: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    for at, url, rule, _ in result["arrivals"]:
        marks = dict(result["stages"].get((url, rule), {}), delivered=at)
        if len(marks) < 6:
            continue
        for name, start, end in STAGES:
            rows[name].append((marks[end] - marks[start]) * 1000)
    return list(rows.items())


def render(r: dict) -> str:
    articles_s = COUNT / r["pipeline_s"]
    bare_s = COUNT / r["bare_s"]
    ms = r["latencies"]
    p50, p95, p99 = (percentile(ms, q) for q in (50, 95, 99)) if ms else (float("nan"),) * 3
    lines = [
        "| measure | result | target |", "|---|---:|---:|",
        f"| pipeline throughput, {COUNT:,} articles published at once, first publish → "
        f"last alert delivered | {articles_s:.1f} articles/s ({r['pipeline_s']:.1f} s) | |",
        f"| bare extraction, `parse_page` over the same {COUNT:,} pages, one process "
        f"| {bare_s:.1f} articles/s ({r['bare_s']:.1f} s) | |",
        f"| pipeline / bare extraction | {articles_s / bare_s:.0%} | ≥ 80% |",
        f"| alerts delivered / expected (throughput run) | {r['delivered']:,} / "
        f"{r['expected']:,} | all |",
        f"| latency fetched → delivered at {RATE:.0f} articles/s, p50 | {p50:.0f} ms | |",
        f"| latency p95 | {p95:.0f} ms | |",
        f"| latency p99 | {p99:.0f} ms | < 300 ms |",
        f"| alerts measured for latency ({r['paced']} articles in {r['paced_s']:.1f} s) "
        f"| {len(ms):,} | ≥ 600 |",
    ]
    return "\n".join(lines)


def render_stages(r: dict) -> str:
    lines = [f"| stage at {RATE:.0f} articles/s (per alert) | p50 | p95 | p99 |",
             "|---|---:|---:|---:|"]
    for name, values in stage_rows(r):
        if values:
            lines.append(f"| {name} | {percentile(values, 50):.0f} ms "
                         f"| {percentile(values, 95):.0f} ms | {percentile(values, 99):.0f} ms |")
    return "\n".join(lines)


def notes(r: dict) -> str:
    watch = r["rules"][0][1].count(" OR ") + 1
    setup = (
        f"{len(r['pages'])} article pages of tests/fixtures (corpus and pages; "
        f"{', '.join(r['left_out']) or 'none'} left out: no article), cycled to {COUNT:,} "
        "copies, each with its own URL and two fifths of its letters swapped (a different "
        "draw per copy), so each copy is a new story to the near-duplicate index while "
        f"markup and size stay the real page's. Rules: a watch list of {watch} headline "
        f"words (one per page, matching every article) and {len(RULES)} topic rules "
        f"({', '.join(i for i, _ in RULES)}); one Slack channel pointing at a local webhook "
        "that answers 200 at once (pacing at the most the config accepts, "
        f"{PACING['max_per_second']} messages/s, burst {PACING['burst']}). Parser, "
        "keyword-alert and notifier run as separate processes (`sokbo run SERVICE`), one "
        f"replica each (the parser with `parser.workers: {r['workers']}`: "
        f"{_workers(r['workers'])}), log level info, on a redis-server of their own (no "
        "persistence). "
        "Bare extraction: `parse_page` over the same 2,000 `PageFetched` messages in the "
        "benchmark's process, before the pipeline runs.")
    outcome = (
        f"Throughput run: publishing took {r['publish_s']:.1f} s; {r['alerts']:,} alerts "
        f"delivered ({r['delivered']:,} distinct), {r['missing']} expected but not "
        f"delivered, {r['unexpected']} unexpected; {r['suppressed']} suppressed as "
        f"near-duplicates, {r['again']} found already raised, {r['dead']} dead-lettered; "
        f"{r['digested']} alerts of both runs came in digests. Latency run: open loop, one "
        f"page every {1000 / RATE:.0f} ms with `fetched_at` set as it is published; latency "
        "is the webhook's arrival time minus `fetched_at`. Stages come from the alert's "
        "`parsed_at` (start of the parse) and `raised_at` and the stream entry ids of the "
        f"article and the alert. Whole benchmark: {r['runtime_s']:.0f} s.")
    return f"{setup}\n\n{outcome}\n\n{cpu_line(r)}"


def _workers(count: int) -> str:
    if count == 1:
        return "pages extracted one at a time in a thread of the service"
    return (f"{count} pages extracted at once, each in an extraction process of its own; "
            "their CPU time and memory count as the parser's")


def cpu_line(r: dict) -> str:
    """Say how much CPU each process used in each run, and the services' peak RSS."""
    names = ["parser", "keyword-alert", "notifier", "redis", "webhook", "benchmark"]

    def used(cpu: dict, elapsed: float) -> str:
        others = cpu["machine"] - sum(cpu[n] for n in names)
        return ", ".join(f"{n} {cpu[n]:.0f} s ({cpu[n] / elapsed:.0%})" for n in names) + (
            f"; other processes on the machine {max(others, 0):.0f} s ({others / elapsed:.0%})")

    rss = ", ".join(f"{n} {r['paced_cpu'][n + ' MB']:,.0f} MB" for n in SERVICES)
    bare = r["bare_cpu"]
    return (f"CPU time (and share of the run's wall time) in bare extraction: benchmark "
            f"{bare['benchmark']:.0f} s, other processes on the machine "
            f"{bare['machine'] - sum(bare[n] for n in names):.0f} s; in the throughput run: "
            f"{used(r['cpu'], r['pipeline_s'])}; in the latency run: "
            f"{used(r['paced_cpu'], r['paced_s'])}; on {os.cpu_count()} cores. "
            f"Peak RSS: {rss}.")


def report_profiles(workdir: Path, top: int = 12) -> str:
    import io
    import pstats

    out = io.StringIO()
    for name in SERVICES:
        path = workdir / f"{name}.prof"
        if path.exists():
            out.write(f"\n=== {name} (event-loop thread, by own time) ===\n")
            pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the table into this Markdown file")
    parser.add_argument("--profile", action="store_true",
                        help="run each service under cProfile and print the top functions")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the services' logs, profiles and raw timings in DIR (new)")
    parser.add_argument("--workers", type=int, default=2,
                        help="the parser's parser.workers (default 2: the machine's cores)")
    parser.add_argument("--webhook", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.webhook:
        asyncio.run(serve_webhook(args.webhook, args.record))
        return 0
    result = measure(args.profile, args.keep, args.workers)
    table = render(result) + "\n\n" + render_stages(result)
    text = notes(result)
    print(table)
    print()
    print(text)
    if result["profiles"]:
        print(result["profiles"])
    if args.out:
        write_section(args.out, "Pipeline", table, text, script="pipeline.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
