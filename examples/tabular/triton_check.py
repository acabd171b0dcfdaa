"""Send an input-data file's samples to a V2 server with Triton's own client and compare answers.

Why: the input-data file (Triton perf_analyzer's ``--input-data`` JSON, written by
``python -m bench train --model NAME``) must mean the same to Triton's tools as to
servebench.  This script reads it with nothing but the standard library and numpy, sends
every sample with ``tritonclient.http`` (JSON tensors, or the binary-tensor extension
with ``--binary``), and compares each answer with the file's ``validation_data``:
integer outputs exactly, float outputs exactly and by their largest difference.

It imports nothing of servebench: run it with a Python that has ``tritonclient[http]``,
kept out of the project's dependencies, e.g.::

    python -m venv /tmp/triton-venv && /tmp/triton-venv/bin/pip install "tritonclient[http]"
    /tmp/triton-venv/bin/python examples/tabular/triton_check.py --url 127.0.0.1:PORT \\
        --model breast-cancer --input-data artifacts/breast-cancer/input-data.json [--binary] [--out FILE.md]

Exit status 0 when every answer agrees, 1 when any differs, 2 on a bad file or server.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as httpclient

#: V2 datatype -> numpy dtype, for the tensors this check reads (the metadata names them).
NUMPY_OF = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}


#: tritonclient sends an all-JSON request with no Content-Type; KServe 0.21's V2 endpoint then
#: takes the body as bytes of the binary-tensor extension and answers 400 ("received byte
#: inputs, but the 'inference-header-content-length' header is missing").  Triton's own
#: server accepts it; for KServe the client must say it is JSON.
JSON_HEADERS = {"Content-Type": "application/json"}


def _tensor(entry: dict[str, Any], datatype: str, where: str) -> np.ndarray:
    if datatype not in NUMPY_OF:
        raise ValueError(f"{where}: datatype {datatype} is not handled by this check")
    try:
        return np.asarray(entry["content"], dtype=NUMPY_OF[datatype]).reshape(entry["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not a {{content, shape}} tensor of {datatype}: {exc}") from None


def check(url: str, model: str, document: dict[str, Any], binary: bool) -> dict[str, Any]:
    """Send every sample; count agreement per output; the facts of the run."""
    client = httpclient.InferenceServerClient(url=url)
    meta = client.get_model_metadata(model)
    in_types = {t["name"]: t["datatype"] for t in meta["inputs"]}
    out_types = {t["name"]: t["datatype"] for t in meta["outputs"]}
    samples, expected = document["data"], document.get("validation_data")
    if expected is not None and len(expected) != len(samples):
        raise ValueError(f"{len(samples)} samples but {len(expected)} validation_data entries")
    agree = dict.fromkeys(out_types, 0)
    max_diff = dict.fromkeys(out_types, 0.0)
    first_mismatch: list[str] = []
    latencies = []
    for i, sample in enumerate(samples):
        inputs = []
        for name, entry in sample.items():
            if name not in in_types:
                raise ValueError(f"data[{i}]: unknown input {name!r}; the model takes {sorted(in_types)}")
            array = _tensor(entry, in_types[name], f"data[{i}].{name}")
            tensor = httpclient.InferInput(name, list(array.shape), in_types[name])
            tensor.set_data_from_numpy(array, binary_data=binary)
            inputs.append(tensor)
        outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in out_types]
        started = time.perf_counter()
        result = client.infer(model, inputs, outputs=outputs, headers=None if binary else JSON_HEADERS)
        latencies.append(time.perf_counter() - started)
        if expected is None:
            continue
        for name, datatype in out_types.items():
            want = _tensor(expected[i][name], datatype, f"validation_data[{i}].{name}")
            got = result.as_numpy(name)
            if got is not None and got.shape == want.shape and np.array_equal(got, want):
                agree[name] += 1
            elif not first_mismatch:
                first_mismatch.append(f"sample {i} output {name}: got {got!r}, expected {want!r}")
            if got is not None and got.shape == want.shape and want.dtype.kind == "f":
                max_diff[name] = max(max_diff[name], float(np.abs(got.astype(np.float64) - want).max()))
    client.close()
    return {
        "metadata": meta,
        "samples": len(samples),
        "agree": agree,
        "max_abs_diff": max_diff,
        "first_mismatch": first_mismatch,
        "p50_ms": 1000 * float(np.median(latencies)),
        "validated": expected is not None,
    }


def render(facts: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    meta = facts["metadata"]
    lines = [
        f"## Triton client vs `{args.model}`: {'binary-tensor' if args.binary else 'JSON'} tensors",
        "",
        f"- command: `{command}`",
        f"- client: tritonclient {metadata.version('tritonclient')}, numpy {np.__version__}, "
        f"Python {sys.version.split()[0]}",
        f"- input-data file: `{args.input_data}` ({facts['samples']} samples)",
        "- metadata: inputs "
        + ", ".join(f"`{t['name']}` {t['datatype']} {t['shape']}" for t in meta["inputs"])
        + "; outputs "
        + ", ".join(f"`{t['name']}` {t['datatype']} {t['shape']}" for t in meta["outputs"]),
        "- JSON mode sends `Content-Type: application/json` (tritonclient sends none, which KServe 0.21 reads as "
        "binary-tensor bytes and answers 400)"
        if not args.binary
        else "- binary-tensor extension for inputs and outputs (tritonclient's default headers)",
        f"- sequential latency p50 {facts['p50_ms']:.2f} ms (one client, includes the client's own encoding)",
        "",
        "| output | agreeing with validation_data | max abs difference |",
        "|---|---|---|",
    ]
    for name, count in facts["agree"].items():
        lines.append(f"| `{name}` | {count} / {facts['samples']} | {facts['max_abs_diff'][name]:.3g} |")
    if facts["first_mismatch"]:
        lines += ["", f"First mismatch: {facts['first_mismatch'][0]}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="host:port of the V2 HTTP server (no scheme)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--input-data", required=True, type=Path)
    parser.add_argument("--binary", action="store_true", help="binary-tensor extension for inputs and outputs")
    parser.add_argument("--out", type=Path, help="append the Markdown result to this file")
    args = parser.parse_args(argv)
    try:
        document = json.loads(args.input_data.read_text(encoding="utf-8"))
        facts = check(args.url, args.model, document, args.binary)
    except (OSError, ValueError, KeyError) as exc:
        print(f"triton_check: {exc}", file=sys.stderr)
        return 2
    command = "python examples/tabular/triton_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(facts, args, command)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    ok = facts["validated"] and all(v == facts["samples"] for v in facts["agree"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
