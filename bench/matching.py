#!/usr/bin/env python3
"""Benchmark the rule engine: one automaton pass vs a regex per rule (the baseline).

For 100, 1,000 and 10,000 generated rules (terms, phrases, boolean combinations,
NEAR, title scope; Korean and Latin) over the article texts of the corpus in
tests/fixtures/corpus, report compile time, per-article matching time (median and
p99, normalisation and evaluation included), throughput, peak RSS, and the same
per-article time for the baseline: every rule evaluated separately with one
precompiled regex per term over the article's normalised key.

    python bench/matching.py [--out BENCHMARKS.md]      (make bench)

Not a test: nothing here fails on a number; the figures are for people to read.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from report import write_section  # noqa: E402  (bench/ is not a package)

CORPUS = ROOT / "tests" / "fixtures" / "corpus" / "html"
SIZES = (100, 1_000, 10_000)
SEED = 20251129


def articles() -> list[tuple[str, str]]:
    """Return (title, text) of every corpus article page, extracted as sokbo does."""
    from sokbo_parser.decode import decode_html
    from sokbo_parser.extract import extract_article

    found = []
    for path in sorted(CORPUS.glob("*.html")):
        try:
            extracted = extract_article(decode_html(path.read_bytes()).text)
        except Exception:  # listing pages hold no article
            continue
        found.append((extracted.title, extracted.text))
    seed = ROOT / "tests" / "fixtures" / "seed-fetv.txt"
    found.append(("[현장] 제이슨 권 오픈AI CSO", seed.read_text(encoding="utf-8")))
    return found


def generate_rules(count: int, texts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return *count* (rule_id, query) pairs: a realistic mix.

    Terms are made-up Korean and Latin names (company, product and policy names are
    what monitors watch) and, for 5% of them, words taken from the articles
    themselves — words found in one article only, as names are, not function words
    like 있다 that no one monitors — so a realistic share of rules fires. Shapes:
    35% a term, 20% a phrase, 20% boolean combinations, 10% NEAR, 10% implicit AND,
    5% title scope.
    """
    rng = random.Random(SEED)
    frequency: dict[str, int] = {}
    for _, text in texts:
        for word in set(text.split()):
            frequency[word] = frequency.get(word, 0) + 1
    words = sorted(w for w, n in frequency.items()
                   if n == 1 and 2 <= len(w) <= 12 and re.fullmatch(r"[0-9A-Za-z가-힣]+", w)
                   and w.upper() not in {"AND", "OR", "NOT"} and not w.startswith("NEAR"))
    syllables = "가나다라마바사아자차카타파하소버린오픈코리아삼성전기반도체수출정책"
    latin = ["Nova", "Quark", "Helio", "Vanta", "Orbis", "Lumen", "Axion", "Zephyr"]

    def term() -> str:
        roll = rng.random()
        if roll < 0.05:
            return rng.choice(words)
        if roll < 0.50:
            return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) + \
                rng.choice(["", "AI", "테크", "랩스"])
        return rng.choice(latin) + rng.choice(["", "AI", "Tech", str(rng.randint(1, 99))])

    def phrase() -> str:
        return f'"{term()} {term()}"'

    shapes = [
        (0.35, lambda: term()),
        (0.20, lambda: phrase()),
        (0.08, lambda: f"({term()} OR {term()}) AND {term()}"),
        (0.07, lambda: f"{phrase()} AND NOT {term()}"),
        (0.05, lambda: f"{term()} -{term()}"),
        (0.10, lambda: f"{term()} NEAR/{rng.randint(1, 5)} {term()}"),
        (0.10, lambda: f"{term()} {term()}"),
        (0.05, lambda: f"title:{term()}"),
    ]
    rules = []
    for index in range(count):
        roll, acc = rng.random(), 0.0
        for weight, make in shapes:
            acc += weight
            if roll <= acc:
                rules.append((f"r{index}", make()))
                break
        else:
            rules.append((f"r{index}", term()))
    return rules


def silent_rules(count: int, texts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return *count* rules of the same mix of which none matches any of *texts*.

    They show how the cost grows with the number of rules alone, apart from the work
    of reporting the rules that do match.
    """
    from sokbo.matching import RuleSet

    pool = generate_rules(3 * count, texts)
    fired = {m.rule_id for title, text in texts for m in RuleSet(pool).evaluate(title, text)}
    return [rule for rule in pool if rule[0] not in fired][:count]


class Baseline:
    """Each rule on its own: a precompiled regex per term over the normalised key."""

    def __init__(self, rules: list[tuple[str, str]]) -> None:
        from sokbo.normalize import key_of
        from sokbo.query import parse_query

        self.rules = [(rule_id, parse_query(query)) for rule_id, query in rules]
        self.patterns: dict[str, re.Pattern[str]] = {}
        for _, node in self.rules:
            for text in _terms(node):
                self.patterns.setdefault(text, re.compile(re.escape(key_of(text))))

    def evaluate(self, title: str, text: str) -> list[str]:
        from sokbo.normalize import key_of

        keys = {"title": key_of(title), "text": key_of(text)}
        return [rule_id for rule_id, node in self.rules if self._holds(node, keys)]

    def _holds(self, node, keys: dict[str, str]) -> bool:
        from sokbo.query import Near, Not, Or, Term

        if isinstance(node, Term):
            fields = [keys[node.field]] if node.field else keys.values()
            return any(self.patterns[node.text].search(value) for value in fields)
        if isinstance(node, Near):
            return self._holds(node.left, keys) and self._holds(node.right, keys)
        if isinstance(node, Not):
            return not self._holds(node.child, keys)
        if isinstance(node, Or):
            return any(self._holds(child, keys) for child in node.children)
        return all(self._holds(child, keys) for child in node.children)


def _terms(node) -> list[str]:
    from sokbo.query import terms_of

    return [term.text for term in terms_of(node)]


def footprint(size: int) -> dict:
    """Compile *size* rules and match every article once, in this (fresh) process."""
    from sokbo.matching import RuleSet

    texts = articles()
    rules = generate_rules(size, texts)
    started = time.perf_counter()
    ruleset = RuleSet(rules)
    compile_s = time.perf_counter() - started
    matched = sum(len(ruleset.evaluate(title, text)) for title, text in texts)
    return {"compile_s": compile_s, "rss_mb": peak_rss_mb(),
            "matches_per_article": matched / len(texts)}


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MB.

    VmHWM from /proc (Linux), which starts afresh at exec; ``ru_maxrss`` does not, so
    in a child it can report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(rounds: int = 30, baseline_rounds: int = 3) -> list[dict]:
    """Time every size, interleaved round by round so machine drift hits all alike.

    The baseline runs first, in rounds of its own (interleaved across sizes too).
    """
    from sokbo.matching import RuleSet

    texts = articles()
    kb = [len((title + text).encode()) / 1024 for title, text in texts]
    engines = {n: RuleSet(generate_rules(n, texts)) for n in SIZES}
    engines[0] = RuleSet(silent_rules(SIZES[-1], texts))  # 0: the largest size, none matching
    baselines = {n: Baseline(generate_rules(n, texts)) for n in SIZES}
    for n in SIZES:  # the engine finds nothing the plain evaluation does not
        assert all({m.rule_id for m in engines[n].evaluate(t, x)} <= set(
            baselines[n].evaluate(t, x)) for t, x in texts)
    # the baseline in rounds of its own, first: between two engine calls, a 10,000-rule
    # baseline call (~50 ms over thousands of regexes) would flush the CPU caches right
    # before the next 10,000-rule engine call, and a 100-rule one would hardly touch them
    base = timed_rounds(baselines, texts, baseline_rounds)
    times = timed_rounds(engines, texts, rounds)
    results = []
    for n in SIZES:
        per_3kb = [t / (k / 3) for t, k in zip(times[n], kb * rounds, strict=True)]
        results.append({
            "size": n, "median_us": statistics.median(times[n]) * 1e6,
            "p99_us": statistics.quantiles(times[n], n=100)[98] * 1e6,
            "per_3kb_us": statistics.median(per_3kb) * 1e6,
            "mb_per_s": sum(kb) * 1024 * rounds / sum(times[n]) / 1e6,
            "baseline_median_us": statistics.median(base[n]) * 1e6,
            "articles": len(texts), "median_kb": statistics.median(kb),
            "silent_median_us": statistics.median(times[0]) * 1e6})
    return results


def timed_rounds(evaluators: dict, texts: list[tuple[str, str]], rounds: int
                 ) -> dict[int, list[float]]:
    """Return, per size, the seconds of each ``evaluate`` call over *texts*.

    The sizes are interleaved round by round, so machine drift hits all alike.
    """
    times: dict[int, list[float]] = {n: [] for n in evaluators}
    for _ in range(rounds):
        for n, evaluator in evaluators.items():
            for title, text in texts:
                started = time.perf_counter()
                evaluator.evaluate(title, text)
                times[n].append(time.perf_counter() - started)
    return times


def render(results: list[dict]) -> str:
    small = results[0]
    lines = [
        "| rules | rules matched / article | compile | median / article | p99 / article "
        "| median per 3 KB | throughput | peak RSS | baseline median | engine vs baseline "
        "| cost vs 100 rules |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['matches_per_article']:.1f} "
            f"| {r['compile_s'] * 1000:,.0f} ms | {r['median_us']:,.0f} µs "
            f"| {r['p99_us']:,.0f} µs | {r['per_3kb_us']:,.0f} µs | {r['mb_per_s']:.1f} MB/s "
            f"| {r['rss_mb']:.0f} MB | {r['baseline_median_us']:,.0f} µs "
            f"| {r['baseline_median_us'] / r['median_us']:.1f}× faster "
            f"| {r['median_us'] / small['median_us']:.2f}× |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--footprint", type=int, help="compile time and RSS of one size "
                        "(JSON; run in a fresh process by the benchmark itself)")
    parser.add_argument("--out", type=Path, help="write the table into this Markdown file")
    args = parser.parse_args()
    if args.footprint:
        print(json.dumps(footprint(args.footprint)))
        return 0
    results = measure()
    for result in results:  # each size in a fresh process, so peak RSS is its own
        out = subprocess.run([sys.executable, __file__, "--footprint", str(result["size"])],
                             check=True, capture_output=True, text=True).stdout
        result.update(json.loads(out.strip().splitlines()[-1]))
    first = results[0]
    table = render(results)
    notes = (f"{first['articles']} corpus articles (median {first['median_kb']:.1f} KB of UTF-8 "
             "title + text), 30 rounds, the sizes interleaved round by round; baseline: "
             "3 rounds of its own, before them. Per-article time includes normalising "
             "title and text, the automaton pass, boolean and NEAR evaluation, and "
             "building the hits of "
             "matching rules. Compile time and peak RSS come from a fresh process per "
             "size (RSS includes the interpreter, pydantic, trafilatura for the corpus).")
    silent = first["silent_median_us"]
    notes += (f" Rules that match nothing cost next to nothing: {SIZES[-1]:,} rules of the "
              f"same mix, none matching a corpus article, take {silent:,.0f} µs per article "
              f"(median), {silent / first['median_us']:.2f}× the {SIZES[0]} rules; the rest "
              "of the cost at 10,000 rules is reporting the rules that do match.")
    print(table)
    print(notes)
    if args.out:
        write_section(args.out, "Rule matching", table, notes, script="matching.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
