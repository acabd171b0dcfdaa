"""Run `python -m bench check-target` on targets and record what it printed: the load checks' evidence.

Why: docs/adding-a-target.md ("Make your server fit for load") and the issue's closing note
quote what the burst, keep-alive and latency checks saw on the three http.server variants
(examples/http_server_target) and on the built-in stand-ins.  This writes those lines, with
the command, date, commit and load average before and after each, to a Markdown file
anyone can re-read (and regenerate with the same command).

    python benchmarks/check_target_load.py --out benchmarks/results/check_target_load.md \\
        fixtures:backlog5,nagle,fixed shipped:kubeflow-gcp,greene-linserv

``fixtures`` is a bench.toml written here with the three variants (``[loadgen] timeout_s``
10 s, so the backlog-5 server's dropped connections fail in seconds); ``shipped`` is the
repository's bench.toml.  Loopback only; every stand-in is started and stopped by
check-target itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "http_server_target"
ADAPTER = "servebench_http_server_example.target:HttpServerTarget"
VARIANTS = {"backlog5": (5, True), "nagle": (1024, False), "fixed": (1024, True)}


def _fixtures_config(folder: Path) -> Path:
    tables = "".join(
        f'\n[targets.{name}]\nadapter = "{ADAPTER}"\nbacklog = {backlog}\nnodelay = {str(nd).lower()}\n'
        for name, (backlog, nd) in VARIANTS.items()
    )
    path = folder / "bench.toml"
    path.write_text(
        f'[loadgen]\ntimeout_s = 10.0\n\n[model]\nartifacts_dir = "{REPO / "artifacts" / "model"}"\n' + tables
    )
    return path


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("groups", nargs="+", help="CONFIG:TARGET[,TARGET...], CONFIG being fixtures or shipped")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# `bench check-target` load checks: what they saw",
        "",
        f"Written by `python benchmarks/check_target_load.py --out {args.out} {' '.join(args.groups)}` "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, {os.cpu_count()} CPUs.",
        "Load average (1, 5, 15 min) before and after each target; above 1 = loaded machine (times inflated).",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        configs = {"fixtures": _fixtures_config(Path(tmp)), "shipped": REPO / "bench.toml"}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(REPO)]), "COLUMNS": "400"}
        for group in args.groups:
            config_name, _, names = group.partition(":")
            for name in names.split(","):
                before = _loadavg()
                started = time.monotonic()
                cmd = [sys.executable, "-m", "bench", "check-target", name, "--config", str(configs[config_name])]
                result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
                lines += [
                    f"## {name} ({config_name} bench.toml): exit {result.returncode}",
                    "",
                    f"`python -m bench check-target {name}` -- load average before {before}, after "
                    f"{_loadavg()}; {time.monotonic() - started:.0f} s",
                    "",
                    "```",
                ]
                lines += [line for line in result.stdout.splitlines() if line[:5] in ("PASS ", "FAIL ", "SKIP ")]
                lines += [
                    line
                    for line in (result.stdout + result.stderr).splitlines()
                    if ": " in line and ("passed," in line or "does not meet" in line)
                ]
                lines += ["```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
