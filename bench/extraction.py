#!/usr/bin/env python3
"""Benchmark article extraction: sokbo's parser against plain trafilatura, same pages.

Over every ``kind=article`` row of tests/fixtures/corpus/MANIFEST.tsv, report the
share of pages whose title is exactly the expected headline, whose expected first
body sentence is present (and, stricter, starts a line among the first six), and
that leak no boilerplate; then the median and p95 time per page. sokbo runs its
whole parser (``parse_page``: sniff, decode, extract, assemble); the baseline is
``trafilatura.bare_extraction`` with its defaults (metadata on) on the same bytes,
decoding included. Both run in the same process, interleaved page by page.

    python bench/extraction.py [--out BENCHMARKS.md]      (make bench)

"Title exact" and "first sentence" compare whitespace-collapsed text (the Japanese
titles use U+3000). A *leak* is any marker of :data:`LEAKS` found in the text; the
markers were derived from each row's ``boilerplate_note`` (menus, widgets, reporter
and subscribe boxes, related and most-read lists, paywall prompts, comments,
footers, script data) and each must occur in the page itself, or the benchmark
stops. Photo captions and summary bullets are not leaks: the MANIFEST's expected
values allow them before the first sentence.

Not a test: nothing here fails on a number; the figures are for people to read.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
ROUNDS = 5
LEAD_LINES = 6  # lines allowed above the first sentence: summary bullets, a caption

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402  (bench/ is not a package)

#: boilerplate markers per page: (what the MANIFEST note calls it, text shown on the page)
_MK = [("site menu", "전체메뉴"), ("site menu", "매경e신문"),
       ("widget", "AI 요약은"), ("widget: keyword trap", "OpenAI"),
       ("photo control", "사진 확대"), ("members-only box", "핵심 요약쏙은 회원용 콘텐츠입니다"),
       ("widget", "좋아요를 눌러주세요"), ("footer", "All rights reserved")]
LEAKS: dict[str, list[tuple[str, str]]] = {
    "html/hankookilbo-lee-jaemyung-honam-unity-2025.html": [
        ("GNB menu", "로그인/회원가입"), ("GNB menu", "새로워진 한국일보"),
        ("ticker", "LIVE ISSUE"), ("widget", "기사 URL이 복사되었습니다"),
        ("widget", "이미지 확대보기"), ("reporter card", "ninek@hankookilbo.com"),
        ("related list", "이 기사와 관련된 기사"), ("related list", "신도림역에서 허리 숙여"),
        ("most-read list", "많이 본 뉴스"), ("comments", "댓글을 입력해 주세요"),
        ("footer", "Copyright ⓒ Hankookilbo")],
    "html/hankookilbo-democratic-party-preference-voting-2026.html": [
        ("menu", "전체메뉴"), ("menu", "H 탐사 플러스"), ("widget", "이미지 확대보기"),
        ("widget", "한국일보를 선호 출처로 추가"), ("footer", "무단 전재 및 재배포 금지"),
        ("footer", "한국일보 사이트맵")],
    "html/mk-seoul-bus-strike-breaking-2025.html": [
        *_MK, ("reporter box", "anbuju@mk.co.kr"),
        ("most-viewed list", "한번 물리면 코끼리도 즉사")],
    "html/mk-gadeokdo-airport-hyundai-ec-2025.html": [
        *_MK, ("reporter box", "gobaek@mk.co.kr"),
        ("most-viewed list", "을지로3가 세운상가 인근에 화재")],
    "html/mk-trump-family-crypto-2025.html": [
        *_MK, ("reporter box", "andrewhot12@mk.co.kr"),
        ("most-viewed list", "사전투표소 용지 대거 반출")],
    "html/mk-china-ai-chips-huawei-nvidia-2025.html": [
        *_MK, ("reporter box", "aporia12@mk.co.kr"),
        ("most-viewed list", "세금 체납으로 자택 압류")],
    "html/mk-lee-jaemyung-profile-election-2025.html": [
        *_MK, ("reporter box", "bykj@mk.co.kr"),
        ("most-viewed list", "비행기 화장실서 알몸으로")],
    "html/naver-seoulshinmun-gopchang-2021-euckr.html": [
        ("GNB menu", "메인 메뉴로 바로가기"), ("LNB menu", "랭킹뉴스"),
        ("TTS/summary buttons", "자동 추출 기술로 요약된 내용입니다"),
        ("reporter box", "planet@seoul.co.kr"),
        ("reporter box", "구독에서 해당 기자의 기사가 제외됩니다"),
        ("press box", "네이버에서 서울신문 구독하세요"), ("related list", "서울신문 주요뉴스"),
        ("ranking list", "언론사별 가장 많이 본 뉴스"), ("ranking list", "딱 붙는 치마 벗고"),
        ("comments widget", "상처 없는 댓글 세상 만들기"), ("footer", "Copyright ⓒ 서울신문")],
    "html/naver-edaily-lee-junseok-injunction-2022.html": [
        ("GNB menu", "본문 바로가기"), ("subscribe button", "언론사 구독되었습니다"),
        ("journalist card", "구석구석 숨은 이야기를 듣는"), ("journalist card", "기자 프로필"),
        ("reactions", "쏠쏠정보"), ("related list", "함께 볼만한 뉴스"),
        ("related list", "인건비 가로채고 연구비로"), ("footer", "Copyright ⓒ 이데일리"),
        ("footer", "기사의 섹션 정보는")],
    "html/nikkei-us-north-korea-hotline-2018-ja.html": [
        ("paywall prompt", "この記事は会員限定です"),
        ("member prompt", "有料会員の方のみご利用になれます"), ("member prompt", "新規会員登録"),
        ("nav", "ご購読の申し込み"), ("ranking list", "中国Ｍ＆Ａ阻止の動き"),
        ("footer", "No reproduction without permission")],
    "html/yonhap-english-nk-slams-drill-2019-en.html": [
        ("menu", "Go to Contents"), ("menu", "All Headlines"),
        ("most-viewed list", "Most Viewed"), ("most-viewed list", "Funeral for actor Lee"),
        ("footer", "Copyright (c) Yonhap"), ("script data", '"@context"')],
    "html/asahi-miyazaki-earthquake-2025-ja.html": [
        ("nav", "メニューをとばして"), ("nav", "紙面ビューアー"),
        ("paywall prompt", "有料記事もお読みいただけます"), ("login prompt", "初トクキャンペーン"),
        ("related list", "関連ニュース"), ("related list", "停電・断水・避難"),
        ("ranking list", "アクセスランキング")],
    "html/techcrunch-rpa-vs-ai-agents-2024-en.html": [
        ("nav", "Open Navigation"), ("JSON-LD", '"@type"')],
}


def pages() -> list[dict]:
    """Return the MANIFEST's article rows: file, bytes, URL, expected title and sentence."""
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t")
                if row["kind"] == "article" and row["expected"]]
    found = []
    for row in rows:
        expected = json.loads(row["expected"])
        url = re.search(r"\burl (https?://[^\s;]+)", row["boilerplate_note"])
        body = (CORPUS / row["file"]).read_bytes()
        raw = _one_line(body.decode("utf-8", "replace") + body.decode("cp949", "replace"))
        missing = [m for _, m in LEAKS.get(row["file"], []) if _one_line(m) not in raw]
        if row["file"] not in LEAKS or missing:
            raise SystemExit(f"bench: leak markers for {row['file']} missing or not on the "
                             f"page: {missing}")
        found.append({"file": row["file"], "body": body,
                      "url": url.group(1) if url else f"https://corpus.invalid/{row['file']}",
                      "title": _one_line(expected["title"]),
                      "first": _one_line(expected["first_sentence"])})
    return found


def run_sokbo(page: dict) -> tuple[str, str]:
    """Return (title, text) as the parser service publishes them."""
    from sokbo.messages import PageFetched
    from sokbo_parser.article import parse_page

    now = datetime.now(UTC)
    fetched = PageFetched(source_id="bench", url=page["url"], final_url=page["url"],
                          status=200, body=page["body"], discovered_at=now, fetched_at=now)
    article = parse_page(fetched, now=now).article
    return article.title, article.text


def run_trafilatura(page: dict) -> tuple[str, str]:
    """Return (title, text) from trafilatura's defaults on the same bytes."""
    import trafilatura

    doc = trafilatura.bare_extraction(page["body"], url=page["url"], with_metadata=True)
    return (doc.title or "", doc.text or "") if doc else ("", "")


def score(page: dict, title: str, text: str) -> dict:
    """Judge one extraction: exact title, first sentence present / leading, leaks."""
    lines = [_one_line(line) for line in text.splitlines() if line.strip()]
    flat = " ".join(lines)
    lead = next((i for i, line in enumerate(lines) if line.startswith(page["first"])), None)
    leaks = [f"{kind}: {marker}" for kind, marker in LEAKS[page["file"]]
             if _one_line(marker) in flat]
    return {"title": _one_line(title) == page["title"], "present": page["first"] in flat,
            "leads": lead is not None and lead < LEAD_LINES, "leaks": leaks}


def measure(rounds: int = ROUNDS) -> tuple[dict[str, dict], list[dict]]:
    """Extract every page *rounds* times with each extractor; return figures and details."""
    corpus = pages()
    extractors = {"sokbo": run_sokbo, "trafilatura": run_trafilatura}
    times: dict[str, list[float]] = {name: [] for name in extractors}
    results: dict[str, list[dict]] = {name: [] for name in extractors}
    for page in corpus:  # warm caches (PSL, regexes, lxml) outside the timed rounds
        for run in extractors.values():
            run(page)
    for round_ in range(rounds):
        for page in corpus:
            for name, run in extractors.items():
                started = time.perf_counter()
                title, text = run(page)
                times[name].append(time.perf_counter() - started)
                if round_ == 0:
                    results[name].append({"file": page["file"], **score(page, title, text)})
    figures = {}
    for name, scored in results.items():
        figures[name] = {
            "pages": len(scored),
            "title": sum(r["title"] for r in scored) / len(scored),
            "present": sum(r["present"] for r in scored) / len(scored),
            "leads": sum(r["leads"] for r in scored) / len(scored),
            "leaking": sum(bool(r["leaks"]) for r in scored),
            "leaks": sum(len(r["leaks"]) for r in scored),
            "median_ms": statistics.median(times[name]) * 1000,
            "p95_ms": statistics.quantiles(times[name], n=20)[18] * 1000,
        }
    details = [{"file": s["file"], "sokbo": s, "trafilatura": t}
               for s, t in zip(results["sokbo"], results["trafilatura"], strict=True)]
    return figures, details


def render(figures: dict[str, dict]) -> str:
    lines = ["| extractor | pages | title exact | first sentence present | first sentence leads "
             "| pages leaking | leaks | median / page | p95 / page |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, label in (("sokbo", "sokbo `parse_page`"),
                        ("trafilatura", "plain `trafilatura.bare_extraction`")):
        f = figures[name]
        lines.append(f"| {label} | {f['pages']} | {f['title']:.0%} | {f['present']:.0%} "
                     f"| {f['leads']:.0%} | {f['leaking']} | {f['leaks']} "
                     f"| {f['median_ms']:.1f} ms | {f['p95_ms']:.1f} ms |")
    return "\n".join(lines)


def misses(details: list[dict]) -> str:
    """List, per page and extractor, what was wrong (for the notes and the console)."""
    out = []
    for row in details:
        for name in ("sokbo", "trafilatura"):
            r = row[name]
            wrong = [label for label, ok in (("title", r["title"]), ("first sentence",
                     r["present"]), ("first sentence not leading", r["leads"])) if not ok]
            if wrong or r["leaks"]:
                out.append(f"{Path(row['file']).stem} [{name}]: "
                           + "; ".join(wrong + [f"leak {leak}" for leak in r["leaks"]]))
    return "\n".join(out)


def _one_line(value: str) -> str:
    return " ".join(value.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the table into this Markdown file")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="timed rounds per page")
    args = parser.parse_args()
    figures, details = measure(args.rounds)
    table = render(figures)
    sokbo = figures["sokbo"]
    markers = sum(len(m) for m in LEAKS.values())
    notes = (f"{sokbo['pages']} article pages of tests/fixtures/corpus/MANIFEST.tsv (Korean, "
             f"Japanese, English; UTF-8 and EUC-KR), {args.rounds} timed rounds after one "
             "warm-up, the two extractors interleaved page by page. Title exact: equal to "
             "the MANIFEST headline, whitespace collapsed. First sentence present: the "
             "MANIFEST's first body sentence occurs in the text; leads: it starts one of "
             f"the first {LEAD_LINES} lines. Leaks: {markers} boilerplate markers taken from "
             "the MANIFEST notes (menus, widgets, reporter and subscribe boxes, related and "
             "most-read lists, paywall prompts, comments, footers, script data), listed in "
             "bench/extraction.py; each occurs on its page. Time per page: from the fetched "
             "bytes (sokbo: sniff, decode, extract, canonical URL, message; trafilatura: its "
             "own decoding and extraction with metadata).")
    print(table)
    print(notes)
    if wrong := misses(details):
        print("\nPer page:\n" + wrong)
    if args.out:
        write_section(args.out, "Extraction", table, notes, script="extraction.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
