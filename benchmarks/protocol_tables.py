"""Side-by-side protocol tables (benchmarks/results/protocols_quiet.md) from a run of examples/protocols/bench.toml.

Usage: python benchmarks/protocol_tables.py results/RUN_ID  (pooled over the run's trials; prints Markdown)
"""

import gzip
import sys

import numpy as np
import pandas as pd

run = sys.argv[1]
s = pd.read_csv(f"{run}/summary.csv")
with gzip.open(f"{run}/requests.csv.gz", "rt") as fh:
    r = pd.read_csv(fh, keep_default_na=False, na_values={"latency_s": [""]})
names = {"kubeflow-gcp-json": "HTTP/JSON", "kubeflow-gcp-binary": "HTTP/binary", "kubeflow-gcp-grpc": "gRPC"}
order = ["kubeflow-gcp-json", "kubeflow-gcp-binary", "kubeflow-gcp-grpc"]
for mode in ("sequential", "concurrent"):
    print(
        f"\n**{mode}** -- total time (s) per step, median of 3 trials; latency p50 / p99 (ms) pooled over the 3 trials\n"
    )
    print(
        "| N | "
        + " | ".join(f"{names[t]} total s" for t in order)
        + " | "
        + " | ".join(f"{names[t]} p50 / p99" for t in order)
        + " |"
    )
    print("|---" * (1 + 2 * len(order)) + "|")
    for n in sorted(s["n_requests"].unique()):
        totals, lats = [], []
        for t in order:
            rows = s[(s.target == t) & (s["mode"] == mode) & (s.n_requests == n)]
            totals.append(f"{rows.total_s.median():.4f}")
            req = r[(r.target == t) & (r["mode"] == mode) & (r.n_requests == n) & (r.error == "")]
            lat = req.latency_s.to_numpy(float) * 1000
            lats.append(f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 99):.1f}")
        print(f"| {n} | " + " | ".join(totals) + " | " + " | ".join(lats) + " |")
print("\n| target | requests | errors | answers correct | bytes out / request | bytes in / request |")
print("|---|---|---|---|---|---|")
for t in order:
    req = r[r.target == t]
    ok = req[req.error == ""]
    print(
        f"| {names[t]} | {len(req)} | {int((req.error != '').sum())} | {100 * (ok.predicted == ok.label).mean():.1f} % | {req.bytes_out.mean():.0f} | {req.bytes_in.mean():.0f} |"
    )
