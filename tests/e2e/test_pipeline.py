"""The whole pipeline as real processes: local news site, Slack webhook, SMTP, Redis.

Run both as ``sokbo run all`` and as four ``sokbo run SERVICE`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import ROOT, NewsSite, SlackServer, SmtpServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAGES = ROOT / "tests" / "fixtures" / "pages"
CORPUS = ROOT / "tests" / "fixtures" / "corpus" / "html"
INTERVAL = 2.0
SERVICES = ("crawler", "parser", "keyword-alert", "notifier")

#: page → the rules it must raise (every other page must raise none)
EXPECTED = {
    "fetv-openai-korea.html": {"openai-korea", "sovereign-ai"},
    "openai-korea-particle.html": {"openai-korea"},
    "sovereign-ai-euckr.html": {"sovereign-ai"},
    "sitemap-story.html": {"sovereign-ai"},  # only in the (gzipped) news sitemap
    "listing-story.html": {"sovereign-ai"},  # only on the section listing page
}
#: page → a fragment of its title, to recognise its alerts (links carry canonical URLs)
TITLES = {
    "fetv-openai-korea.html": "오픈AI 코리아 출범",  # the feed entry's title wins (B12)
    "openai-korea-particle.html": "OpenAI 코리아 첫 파트너",
    "sovereign-ai-euckr.html": "소버린 AI 전략",
    "sovereign-dc.html": "소버린AI 데이터센터",
    "sitemap-story.html": "소버린AI 협의체 출범",
    "listing-story.html": "소버린AI 인재 양성",
}
LOOKALIKES = ["lookalike.html", "mk-china-ai-chips-huawei-nvidia-2025.html",
              "hankookilbo-lee-jaemyung-honam-unity-2025.html"]

NEW_PAGE = """<!doctype html><html lang="ko"><head><meta charset="utf-8">
<title>과기정통부, 소버린AI 데이터센터 공모 - 데모일보</title>
<meta property="og:title" content="과기정통부, 소버린AI 데이터센터 공모">
<meta property="article:published_time" content="2025-09-15T10:00:00+09:00"></head>
<body><article><h1>과기정통부, 소버린AI 데이터센터 공모</h1>
<p>과학기술정보통신부가 15일 소버린AI 데이터센터 구축 사업 공모를 시작한다고 밝혔다.</p>
<p>정부는 올해 안에 두 곳을 선정해 국산 AI 반도체와 모델을 함께 검증할 계획이다.</p>
<p>업계는 공공 수요가 국내 AI 생태계의 마중물이 될 것으로 기대하고 있다.</p>
<p>과기정통부 관계자는 "민간 투자와 연계해 지역 거점을 키우겠다"고 말했다.</p>
</article></body></html>"""


def story(title: str, *paragraphs: str) -> bytes:
    """A news page with its own headline and body (distinct stories: no near-duplicates)."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f'<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta property="og:title" content="{title}"></head><body><article><h1>{title}'
            f"</h1>{body}</article></body></html>").encode()


def write_sitemaps(site: NewsSite) -> None:
    """A sitemap index whose one child is a gzipped Google News sitemap (dated now)."""
    import gzip
    from datetime import UTC, datetime

    ns = ('xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
          'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"')
    (site.root / "sitemap.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex {ns}><sitemap>'
        "<loc>{{BASE}}/sitemaps/news.xml.gz</loc></sitemap></sitemapindex>", encoding="utf-8")
    child = (f'<?xml version="1.0" encoding="UTF-8"?><urlset {ns}><url>'
             f"<loc>{site.base}/news/sitemap-story.html</loc><news:news>"
             f"<news:publication_date>{datetime.now(UTC).isoformat()}</news:publication_date>"
             "<news:title>반도체 소버린AI 협의체 출범</news:title></news:news></url></urlset>")
    (site.root / "sitemaps").mkdir(exist_ok=True)
    (site.root / "sitemaps" / "news.xml.gz").write_bytes(gzip.compress(child.encode()))


LISTING = """<!doctype html><html><head><meta charset="euc-kr"><title>경제 - 데모일보</title>
</head><body><nav><a href="/">홈</a> <a href="/section/list.html?page=2">다음</a></nav>
<ul class="list"><li><a href="/news/listing-story.html">소버린AI 인재 양성…</a></li></ul>
<footer><a href="/about.html">회사소개</a></footer></body></html>"""


class Pipeline:
    """sokbo as OS processes: one `run all`, or one per service."""

    def __init__(self, config: Path, mode: str, logs: Path) -> None:
        self.config, self.mode, self.logs = config, mode, logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.metrics_ports: list[int] = []
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        names = ["all"] if self.mode == "all" else list(SERVICES)
        self.metrics_ports = []
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        for name in names:
            port = free_port()
            self.metrics_ports.append(port)
            out = open(self.logs / f"{name}-{self.starts}.log", "wb")  # noqa: SIM115
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "sokbo.cli", "run", name, "--config", str(self.config),
                 "--metrics-port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env))

    def stop(self) -> list[int]:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(20) for process in self.processes]
        self.processes = []
        return codes

    def kill(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes = []

    def events(self, name: str) -> list[dict]:
        """Return the JSON log events called *name* from every process's log."""
        found = []
        for path in self.logs.glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{") and f'"event":"{name}"' in line:
                    found.append(json.loads(line))
        return found

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.logs.glob("*.log")))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, pipe: Pipeline) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{pipe.tail()}")


def write_config(path: Path, *, redis_url: str, site: NewsSite, webhook: str,
                 smtp_port: int) -> None:
    path.write_text(f"""
redis_url: {redis_url}
log_level: info
crawler:
  allow_private_networks: true
  per_host_delay: 0s
delivery:
  claim_idle: 3s
  max_deliveries: 5
sources:
  - {{id: demo-daily, url: "{site.base}/feeds/utf8.xml", interval: {INTERVAL}s}}
  - {{id: hangul-shinmun, url: "{site.base}/feeds/euckr.xml", interval: {INTERVAL}s}}
  - {{id: broken, url: "http://127.0.0.1:{free_port()}/rss.xml", interval: {INTERVAL}s}}
  - {{id: demo-sitemap, url: "{site.base}/sitemap.xml", kind: sitemap, interval: {INTERVAL}s}}
  - {{id: demo-section, url: "{site.base}/section/list.html", kind: page,
      link_pattern: '/news/listing-[a-z-]+\\.html$', interval: {INTERVAL}s}}
synonyms:
  - [OpenAI, 오픈AI, 오픈에이아이]
rules:
  - id: openai-korea
    query: '"OpenAI 코리아" OR "오픈AI 코리아"'
    channels: [team-slack, team-mail]
  - id: sovereign-ai
    query: 소버린AI
    channels: [team-slack, team-mail]
channels:
  - id: team-slack
    kind: slack
    webhook_url: ${{TEST_WEBHOOK}}
  - id: team-mail
    kind: email
    smtp_host: 127.0.0.1
    smtp_port: {smtp_port}
    from: "sokbo <alerts@example.com>"
    to: [pr-team@example.com]
""", encoding="utf-8")


@pytest.fixture
def world(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    site = NewsSite(tmp_path / "site")
    for page in EXPECTED | dict.fromkeys(LOOKALIKES):
        if page in ("sitemap-story.html", "listing-story.html"):
            continue
        source = PAGES / page if (PAGES / page).exists() else CORPUS / page
        site.add_page(page, source)
    site.add_page("sitemap-story.html", story(
        "반도체 소버린AI 협의체 출범",
        "국내 반도체 기업 일곱 곳이 소버린AI 협의체를 꾸리고 첫 회의를 열었다.",
        "협의체는 국산 신경망처리장치의 성능 시험 기준을 연말까지 공동으로 마련한다.",
        "참여사들은 설계 자산을 일부 공유하고 공동 검증 시설을 수도권에 짓기로 했다.",
        "업계에서는 수요 기업과 공급 기업이 한자리에 모인 첫 사례라는 평가가 나온다."))
    site.add_page("listing-story.html", story(
        "정부, 소버린AI 인재 양성 계획",
        "교육부와 고용노동부는 내년부터 5년 동안 소버린AI 전문 인력 2만 명을 키운다고 밝혔다.",
        "대학원 과정에 연구 장학금을 주고, 재직자에게는 야간 실습 과정을 연다.",
        "지방 거점 대학 열 곳을 뽑아 데이터 센터 사용료를 지원하는 방안도 포함됐다.",
        "두 부처는 기업 수요 조사를 거쳐 세부 과정을 다음 달 발표할 예정이다."))
    write_sitemaps(site)
    (site.root / "section").mkdir(parents=True, exist_ok=True)
    (site.root / "section" / "list.html").write_bytes(LISTING.encode("cp949"))
    site.write_feed("utf8.xml", "데모일보", [
        ("fetv-openai-korea.html", "오픈AI 코리아 출범"),
        ("openai-korea-particle.html", "OpenAI 코리아 첫 파트너"),
        *[(page, page) for page in LOOKALIKES]])
    site.write_feed("euckr.xml", "한글신문", [("sovereign-ai-euckr.html", "소버린 AI 전략")],
                    encoding="euc-kr")
    slack = SlackServer(script=[(429, {"Retry-After": "1"}, b"rate_limited")])
    smtp = SmtpServer()
    site.start()
    webhook = slack.start()
    smtp.start()
    monkeypatch.setenv("TEST_WEBHOOK", webhook)
    config = tmp_path / "sokbo.yaml"
    write_config(config, redis_url=redis_url, site=site, webhook=webhook, smtp_port=smtp.port)
    yield {"site": site, "slack": slack, "smtp": smtp, "config": config, "tmp": tmp_path}
    site.stop()
    slack.stop()
    smtp.stop()


def recognise(text: str) -> tuple[str, str]:
    """Return (page, rule) of an alert from its rendered text."""
    page = next((p for p, title in TITLES.items() if title in text), f"unexpected: {text[:80]}")
    rule = next((r for r in ("openai-korea", "sovereign-ai") if r in text), "no rule")
    return page, rule


def slack_deliveries(slack: SlackServer) -> Counter[tuple[str, str]]:
    return Counter(recognise(post.payload["text"]) for post in slack.posts)


def mail_deliveries(smtp: SmtpServer) -> Counter[tuple[str, str]]:
    return Counter(recognise(str(message["Subject"])) for message in smtp.messages)


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.mark.parametrize("mode", ["all", "separate"])
def test_pipeline_delivers_each_alert_once_per_channel(world: dict, mode: str) -> None:
    slack, smtp, site = world["slack"], world["smtp"], world["site"]
    expected = Counter({(page, rule): 1 for page, rules in EXPECTED.items() for rule in rules})
    pipe = Pipeline(world["config"], mode, world["tmp"])
    pipe.start()
    try:
        wait_until(lambda: len(slack.posts) >= len(expected) and
                   len(smtp.messages) >= len(expected), 60, "the expected alerts", pipe)
        time.sleep(2 * INTERVAL)  # room for any duplicate to show up
        assert slack_deliveries(slack) == expected, pipe.tail()
        assert mail_deliveries(smtp) == expected, pipe.tail()
        assert slack.rejected == 1  # the first post got 429 and was retried
        status, metrics = get(pipe.metrics_ports[-1], "/metrics")
        assert status == 200 and b"sokbo_notifications_sent_total" in metrics
        assert get(pipe.metrics_ports[0], "/healthz")[0] == 200
        assert get(pipe.metrics_ports[0], "/readyz")[0] == 200
        assert pipe.stop() == [0] * len(pipe.metrics_ports)

        pipe.start()  # a restart re-sends nothing
        time.sleep(3 * INTERVAL + 2)
        assert len(slack.posts) == len(expected) and len(smtp.messages) == len(expected)

        site.add_page("sovereign-dc.html", NEW_PAGE.encode())
        site.write_feed("utf8.xml", "데모일보", [
            ("sovereign-dc.html", "소버린AI 데이터센터"),
            ("fetv-openai-korea.html", "오픈AI 코리아 출범"),
            ("openai-korea-particle.html", "OpenAI 코리아 첫 파트너"),
            *[(page, page) for page in LOOKALIKES]])
        added = time.monotonic()
        wait_until(lambda: len(slack.posts) == len(expected) + 1, INTERVAL + 10,
                   "the new entry's alert", pipe)
        latency = slack.posts[-1].at - added
        time.sleep(0.5)  # let the notifier write its log line
        pipeline = [event["latency_s"] for event in pipe.events("notification_sent")
                    if event.get("kind") == "slack" and "데이터센터" in event.get("title", "")]
        print(f"\n[{mode}] new feed entry → Slack post: {latency:.2f} s (poll interval "
              f"{INTERVAL:.0f} s); crawler discovery → Slack accepted: {pipeline[0]:.2f} s")
        assert latency <= INTERVAL + 3, pipe.tail()
        assert slack_deliveries(slack)[("sovereign-dc.html", "sovereign-ai")] == 1
        assert pipe.stop() == [0] * len(pipe.metrics_ports)
    finally:
        pipe.kill()
