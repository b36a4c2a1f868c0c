"""Render a results JSON (``bench/results/latest.json``) as the Markdown tables of ``BENCHMARKS.md``.

``python -m bench.report [bench/results/latest.json]`` prints the "Latest results" section to paste.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import fmt_value, results_dir


def render(data: dict[str, Any]) -> str:
    env = data["environment"]
    m, v = env["machine"], env["versions"]
    smoke = data.get("smoke") or any(r["smoke"] for r in data["results"])
    lines = [
        f"Run {env['timestamp']} — commit `{env.get('git_commit')}`{' (dirty)' if env.get('git_dirty') else ''}"
        f" — command `{env['command']}` — {env.get('total_seconds', '?')} s in total.",
        "",
        f"* Machine: {m['cpu']}, {m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs, "
        f"{m['memory_gib']} GiB RAM, Linux {m['kernel']} ({m['arch']}); load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg'])}"
        + (f", at end {', '.join(f'{x:.2f}' for x in env['loadavg_after'])}" if env.get("loadavg_after") else ""),
        "* Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
    ]
    if smoke:
        lines += ["", "> **SMOKE RUN** (`--smoke`: tiny sizes, shared noisy machine). These numbers only show the",
                  "> table's shape; they say nothing about speed. Replace them with a full `make bench` run",
                  "> (`python -m bench.report` prints this section from `bench/results/latest.json`)."]
    lines += ["", "| benchmark | metric | value | unit | goal | met | note |", "|---|---|---:|---|---|:-:|---|"]
    for r in data["results"]:
        if not r["available"]:
            lines.append(f"| {r['bench']} | not available | | | | | {r['reason']} |")
            continue
        for i, metric in enumerate(r["metrics"]):
            ok = {True: "✓", False: "✗", None: ""}[metric["ok"]]
            bench = r["bench"] if i == 0 else ""
            lines.append(f"| {bench} | {metric['name'].strip()} | {fmt_value(metric['value'])} | {metric['unit']} | "
                         f"{metric['goal'] or ''} | {ok} | {metric['note']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else results_dir() / "latest.json"
    sys.stdout.write(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
