"""Start every target of bench.toml as a local stand-in and show what the issue asks to see.

    python examples/check_local_targets.py [--config bench.toml] [--images 100]

Prints, while all stand-ins run at once: the ``ss -ltnp`` lines of their processes (all
must be 127.0.0.1), each target's accuracy on the first N test images with the agreement
with the in-process TorchScript model, and requests per replica (from ``X-Replica``); then
stops them and checks that no process of theirs is left.  Remote targets are skipped.
Not a benchmark (one request at a time, fresh connections): a check that each answers.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
from collections import Counter

import httpx
import numpy as np

from bench.config import load_config, target_context
from models.artifacts import ensure_model
from models.data import load_dataset, wire_pixels
from models.predict import load_torchscript, torch_logits
from targets import build_target, group_pids


def _ss_lines(pids: set[int]) -> list[str]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids]


async def main(config_path: str, n_images: int) -> int:
    config = load_config(config_path)
    artifacts = ensure_model(config.model, config.artifacts_dir, root=config.root)
    split = load_dataset(config.model)
    images, labels = split.test_x[:n_images], split.test_y[:n_images]
    reference = torch_logits(load_torchscript(artifacts.torchscript_path), wire_pixels(images)).argmax(axis=1)
    targets = [build_target(spec, target_context(config)) for name, spec in config.targets.items()]
    targets = [t for t in targets if not t.is_remote]
    ok = True
    try:
        for target in targets:
            print(f"starting {target.name} ({target.adapter}) ...", flush=True)
            await target.start()
        pgids = {t.name: [p.pgid for p in getattr(t, "processes", [])] for t in targets}
        all_pids = {pid for groups in pgids.values() for g in groups for pid in group_pids(g)}
        print("\n$ ss -ltnp   (lines of the stand-ins' processes)")
        lines = _ss_lines(all_pids)
        print("\n".join(lines))
        ok &= bool(lines) and all(line.split()[3].startswith("127.0.0.1:") for line in lines)
        print(f"-> all loopback: {ok}\n")
        with httpx.Client(trust_env=False, timeout=60) as client:
            for target in targets:
                digits, replicas = [], Counter()
                for image in images:
                    req = target.encode(image)
                    resp = client.request(
                        req.method,
                        target.base_url + req.path,
                        content=req.body,
                        headers={**req.headers, "Connection": "close"},
                    )
                    digits.append(target.decode(resp.status_code, resp.content))
                    replicas[resp.headers.get("X-Replica", "-")] += 1
                d = np.asarray(digits)
                print(
                    f"{target.name:15s} {target.base_url:24s} accuracy {np.mean(d == labels):6.1%} "
                    f"on {n_images} test images, agreement with in-process TorchScript {np.mean(d == reference):6.1%}"
                    + (f", per replica {dict(sorted(replicas.items()))}" if len(replicas) > 1 else "")
                )
    finally:
        for target in targets:
            await target.stop()
    left = {name: [pid for g in groups for pid in group_pids(g)] for name, groups in pgids.items()}
    print(f"\nafter stop, processes left per target: {left}")
    ok &= not any(left.values())
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="bench.toml")
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.config, args.images)))
