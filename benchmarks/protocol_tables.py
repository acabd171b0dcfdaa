"""Side-by-side protocol tables (benchmarks/results/protocols_quiet.md) from a run of examples/protocols/bench.toml.

Usage: ``python benchmarks/protocol_tables.py results/RUN_ID`` -- prints Markdown: per mode and
N, each protocol's total time (median over the run's trials) and its latency p50 / p99 pooled
over the trials' successful requests; then requests, errors, answers correct and bytes.
"""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pandas as pd

NAMES = {"kubeflow-gcp-json": "HTTP/JSON", "kubeflow-gcp-binary": "HTTP/binary", "kubeflow-gcp-grpc": "gRPC"}


def _step_tables(summary: pd.DataFrame, requests: pd.DataFrame) -> None:
    for mode in ("sequential", "concurrent"):
        print(f"\n**{mode}** -- total time (s) per step, median of the trials; latency p50 / p99 (ms) pooled\n")
        heads = [f"{NAMES[t]} total s" for t in NAMES] + [f"{NAMES[t]} p50 / p99" for t in NAMES]
        print("| N | " + " | ".join(heads) + " |")
        print("|---" * (1 + len(heads)) + "|")
        for n in sorted(summary["n_requests"].unique()):
            totals, lats = [], []
            for target in NAMES:
                rows = summary[(summary.target == target) & (summary["mode"] == mode) & (summary.n_requests == n)]
                totals.append(f"{rows.total_s.median():.4f}")
                ok = requests[
                    (requests.target == target)
                    & (requests["mode"] == mode)
                    & (requests.n_requests == n)
                    & (requests.error == "")
                ]
                ms = ok.latency_s.to_numpy(float) * 1000
                lats.append(f"{np.percentile(ms, 50):.1f} / {np.percentile(ms, 99):.1f}")
            print(f"| {n} | " + " | ".join(totals + lats) + " |")


def _totals(requests: pd.DataFrame) -> None:
    print("\n| target | requests | errors | answers correct | bytes out / request | bytes in / request |")
    print("|---|---|---|---|---|---|")
    for target, name in NAMES.items():
        sent = requests[requests.target == target]
        ok = sent[sent.error == ""]
        correct = 100 * (ok.predicted == ok.label).mean()
        errors = int((sent.error != "").sum())
        print(
            f"| {name} | {len(sent)} | {errors} | {correct:.1f} % | "
            f"{sent.bytes_out.mean():.0f} | {sent.bytes_in.mean():.0f} |"
        )


def main(run_dir: str) -> None:
    summary = pd.read_csv(f"{run_dir}/summary.csv")
    with gzip.open(f"{run_dir}/requests.csv.gz", "rt") as fh:
        requests = pd.read_csv(fh, keep_default_na=False, na_values={"latency_s": [""]})
    _step_tables(summary, requests)
    _totals(requests)


if __name__ == "__main__":
    main(sys.argv[1])
