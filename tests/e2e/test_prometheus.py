"""A real Prometheus scrapes the four services during an end-to-end run.

Read through its HTTP API: the end-to-end latency histogram has samples and every
consumed stream's lag and pending gauges are there, as the alert rules and the
dashboard in deploy/ expect. Prometheus comes from Debian's package, unpacked into
.run/tools by scripts/tools.sh (which `make test` runs).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sokbo import streams
from tests.e2e.test_pipeline import EXPECTED, Pipeline, wait_until, world  # noqa: F401
from tests.servers import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def prometheus_binary() -> str:
    local = ROOT / ".run" / "tools" / "bin" / "prometheus"
    found = str(local) if local.exists() else shutil.which("prometheus")
    if not found:
        pytest.fail("no prometheus binary: run scripts/tools.sh (make test does), which "
                    "unpacks Debian's prometheus package into .run/tools")
    return found


def query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_sees_latency_samples_and_every_streams_lag(world: dict,  # noqa: F811
                                                               tmp_path: Path) -> None:
    binary = prometheus_binary()
    pipe = Pipeline(world["config"], "separate", world["tmp"])
    pipe.start()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    targets = ", ".join(f"'127.0.0.1:{p}'" for p in pipe.metrics_ports)
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                      f"scrape_configs:\n  - job_name: sokbo\n    static_configs:\n"
                      f"      - targets: [{targets}]\n", encoding="utf-8")
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        expected = sum(len(rules) for rules in EXPECTED.values())
        wait_until(lambda: len(world["slack"].posts) >= expected, 60, "the alerts", pipe)

        def scraped() -> bool:
            try:
                latency = query(port, "sum(sokbo_end_to_end_latency_seconds_count)")
                lag = query(port, "sokbo_consumer_group_lag")
            except OSError:
                return False
            consumed = {(s["metric"].get("stream"), s["metric"].get("group")) for s in lag}
            return (bool(latency) and float(latency[0]["value"][1]) > 0
                    and set(streams.GROUPS.items()) <= consumed)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not scraped():
            time.sleep(0.5)
        latency = query(port, "sum(sokbo_end_to_end_latency_seconds_count)")
        assert latency and float(latency[0]["value"][1]) >= expected, latency
        lag = {(s["metric"]["stream"], s["metric"]["group"])
               for s in query(port, "sokbo_consumer_group_lag")}
        pending = {(s["metric"]["stream"], s["metric"]["group"])
                   for s in query(port, "sokbo_consumer_group_pending")}
        for stream, group in streams.GROUPS.items():
            assert (stream, group) in lag, f"no lag gauge for {stream}/{group}: {lag}"
            assert (stream, group) in pending, f"no pending gauge for {stream}/{group}"
        stages = {s["metric"]["stage"] for s in query(
            port, "sokbo_stage_latency_seconds_count > 0")}
        assert {"discovery_to_fetch", "fetch_to_parse", "parse_to_match"} <= stages, stages
        up = query(port, "up")
        assert len(up) == len(pipe.metrics_ports) and all(
            s["value"][1] == "1" for s in up), up
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        log.close()
        pipe.kill()
