"""Bad input-data files through the real `bench run`: each refused before any request, naming sample and field.

What it does: starts the toy V2 model (``python -m tests.support.toy_v2_server``: the real
KServe ModelServer on 127.0.0.1, input ``tokens`` INT64 [-1, 4]), writes six bad files
(unknown tensor, wrong shape, wrong dtype, truncated base64, an empty file, a sparse
1 GiB file), runs ``python -m bench run toy --input-data FILE`` with each, and records the
exit status, the error line, and how many infer requests reached the server during that
run (from its access log: must be 0).  Writes ``benchmarks/results/bad_input_files.md``.

    python benchmarks/bad_input_files.py          # from the repository root, ~2-5 min
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "bad_input_files.md"


def _bad_files(folder: Path) -> dict[str, Path]:
    good_b64 = base64.b64encode(np.arange(4, dtype="<i8").tobytes()).decode()
    docs = {
        "unknown tensor": {"data": [{"tokens": [1, 2, 3, 4]}, {"pixels": [0.5] * 4}]},
        "wrong shape": {"data": [{"tokens": [1, 2, 3, 4]}, {"tokens": {"content": [1, 2, 3], "shape": [3]}}]},
        "wrong dtype": {"data": [{"tokens": [1, 2, 3, 4]}, {"tokens": [0.5, 1, 2, 3]}]},
        "truncated base64": {"data": [{"tokens": [1, 2, 3, 4]}, {"tokens": {"b64": good_b64[:-3]}}]},
    }
    files = {}
    for name, doc in docs.items():
        files[name] = folder / f"{name.replace(' ', '-')}.json"
        files[name].write_text(json.dumps(doc))
    files["empty file"] = folder / "empty.json"
    files["empty file"].write_text("")
    files["1 GiB of JSON"] = folder / "huge.json"
    with files["1 GiB of JSON"].open("wb") as handle:
        handle.truncate(2**30)  # sparse: no disk space, and bench must not read it
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _infers(log: Path) -> int:
    return log.read_text(errors="replace").count("/infer HTTP/1.1")


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="servebench-bad-inputs-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = folder / "bench.toml"
    text = (
        (REPO / "bench.toml")
        .read_text()
        .replace('artifacts_dir = "artifacts/model"', f'artifacts_dir = "{REPO / "artifacts" / "model"}"')
    )
    text += f'\n[targets.toy]\nadapter = "kserve"\nendpoint = "{url}"\nmodel_name = "toy"\nprotocol = "v2"\n'
    text += '\n[paths]\nresults_dir = "results"\nreports_dir = "reports"\n'
    config.write_text(text)
    log = folder / "toy.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.support.toy_v2_server", str(port)],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    rows = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/v2/models/toy/ready", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the toy V2 server did not start") from None
                time.sleep(0.5)
        for name, path in _bad_files(folder).items():
            before = _infers(log)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "bench", "--config", str(config), "run", "toy", "--requests", "4"]
                + ["--modes", "sequential", "--trials", "1", "--no-report", "--input-data", str(path)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=600,
            )
            wall = time.perf_counter() - t0
            errors = [line.strip() for line in proc.stderr.splitlines() if line.strip().startswith("error:")]
            message = (errors[0][len("error: ") :] if errors else proc.stderr.strip()[-300:]).replace(
                str(folder) + "/", ""
            )
            rows.append((name, proc.returncode, _infers(log) - before, f"{wall:.1f}", message))
            print(f"{name}: exit {proc.returncode}, {rows[-1][2]} infer requests, {wall:.1f} s: {message}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
    load = os.getloadavg()
    lines = [
        "# Bad input-data files, refused before any request",
        "",
        "`python benchmarks/bad_input_files.py`: `bench run toy --input-data FILE` against the toy V2 model "
        "(`tests/support/toy_v2_server.py`: `tokens` INT64 [-1, 4] -> `scores` FP32 [-1, 3], the real KServe "
        "ModelServer on 127.0.0.1). *infer requests* counts `/infer` lines in the server's access log during "
        f"each run. Load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 CPUs, shared).",
        "",
        "| file | exit | infer requests | wall (s) | message |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {c} | {i} | {w} | `{m}` |" for n, c, i, w, m in rows]
    lines += [
        "",
        "Exit 2: refused when the file is read, before any target starts (size, JSON, base64); exit 1: the "
        "target is marked failed after its metadata was read, before its sweep (`no request sent`).",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")
    return 0 if all(i == 0 and c != 0 for _, c, i, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
