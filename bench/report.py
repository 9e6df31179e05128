"""What every benchmark shares: the machine it ran on, and its section of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

__all__ = ["machine", "write_section"]


def machine() -> str:
    """Return the CPU model, core count and Python version of this machine."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               "unknown CPU")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(path: Path, title: str, table: str, notes: str, *, script: str) -> None:
    """Replace (or append) the ``## title`` section of *path* with this run's figures.

    The section names the machine, the time and the command (``python bench/<script>
    --out BENCHMARKS.md``) that produced it.
    """
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = (f"## {title}\n\nMachine: {machine()}. Run {stamp} with `make bench` "
            f"(`python bench/{script} --out BENCHMARKS.md`).\n\n{table}\n\n{notes}\n")
    text = path.read_text(encoding="utf-8") if path.exists() else (
        "# Benchmarks\n\nFigures written by `make bench`; each section names the machine "
        "and the command that produced it.\n\n")
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(body + "\n", text) if pattern.search(text) else text + body + "\n"
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
