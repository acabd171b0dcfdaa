"""Calibration: the engine choice (pure), the null endpoint, measurements and the command."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from bench.config import load_config
from bench.console import Console
from ground.hostfacts import host_facts
from loadgen import calibration as cal
from loadgen.engines.fast_engine import FastEngine, build_request_bytes, run
from loadgen.measure import synthetic_payload
from loadgen.nullserver import NULL_BODY, NullEndpoint, nginx_available
from targets.wire import mnist_payload


def _point(
    engine: str, c: int, cpu: float, rps: float = 1000.0, errors: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "engine": engine,
        "concurrency": c,
        "requests": 100,
        "errors": errors or {},
        "req_per_s": rps,
        "cpu_ms_per_request": cpu,
        "p50_ms": 0.1,
        "p99_ms": 0.2,
    }


def _entry(points: list[dict[str, Any]], works: bool = True) -> dict[str, Any]:
    return {"available": True, "works": works, "version": "x", "error": "" if works else "broken", "points": points}


CALIBRATION: dict[str, Any] = {
    "engines": {
        "fast": _entry([_point("fast", 1, 0.06), _point("fast", 64, 0.02)]),
        "aiohttp": _entry([_point("aiohttp", 1, 0.2), _point("aiohttp", 64, 0.1)]),
        "httpx": _entry([_point("httpx", 1, 0.7), _point("httpx", 64, 0.8)]),
    }
}


# -- choose_engine: pure --------------------------------------------------------------------
def test_choose_engine_takes_lowest_mean_cpu_per_request() -> None:
    assert cal.choose_engine(cal.parse_calibration(CALIBRATION)) == "fast"
    data = copy.deepcopy(CALIBRATION)
    data["engines"]["aiohttp"]["points"][0]["cpu_ms_per_request"] = 0.01
    data["engines"]["aiohttp"]["points"][1]["cpu_ms_per_request"] = 0.01
    assert cal.choose_engine(cal.parse_calibration(data)) == "aiohttp"


def test_choose_engine_skips_engines_that_did_not_work() -> None:
    data = copy.deepcopy(CALIBRATION)
    data["engines"]["fast"]["works"] = False
    assert cal.choose_engine(cal.parse_calibration(data)) == "aiohttp"


def test_choose_engine_compares_only_common_concurrencies() -> None:
    data = copy.deepcopy(CALIBRATION)
    # aiohttp measured an extra, very cheap point that fast did not: it must not count
    data["engines"]["aiohttp"]["points"].append(_point("aiohttp", 512, 0.00001))
    assert cal.choose_engine(cal.parse_calibration(data)) == "fast"


def test_choose_engine_ties_go_to_registry_order() -> None:
    data = copy.deepcopy(CALIBRATION)
    for p in data["engines"]["httpx"]["points"] + data["engines"]["fast"]["points"]:
        p["cpu_ms_per_request"] = 0.05
    for p in data["engines"]["aiohttp"]["points"]:
        p["cpu_ms_per_request"] = 0.0502  # within 1 %
    assert cal.choose_engine(cal.parse_calibration(data)) == "fast"


def test_choose_engine_without_a_working_engine_names_the_problems() -> None:
    data = copy.deepcopy(CALIBRATION)
    for entry in data["engines"].values():
        entry["works"], entry["error"] = False, "broken"
    with pytest.raises(ValueError, match="no engine worked.*broken"):
        cal.choose_engine(cal.parse_calibration(data))
    with pytest.raises(ValueError, match="none measured"):
        cal.choose_engine(cal.parse_calibration({"engines": {}}))


def test_summary_is_compact_and_keeps_the_choice() -> None:
    data = copy.deepcopy(CALIBRATION)
    data.update(chosen="fast", schema=cal.SCHEMA, endpoint={"kind": "python", "cpus": [0]}, baseline={"p50_ms": 0.05})
    summary = cal.calibration_summary(cal.parse_calibration(data), "results/calibration.json")
    assert summary["chosen"] == "fast"
    assert summary["engines"]["httpx"]["points"][1]["req_per_s"] == 1000.0
    assert summary["path"] == "results/calibration.json"
    json.dumps(summary)  # meta.json-ready


# -- the typed result: one parser, one ceiling field -----------------------------------------
@pytest.mark.parametrize("key", cal.RPS_KEYS)
def test_every_old_name_of_the_req_per_s_figure_reads_into_one_field(key: str) -> None:
    data = {
        "engines": {
            "fast": {
                "works": True,
                "points": [
                    {"engine": "fast", "concurrency": 1, key: 2500.0},
                    {"engine": "fast", "concurrency": 64, key: 19000.0},
                ],
            }
        }
    }
    result = cal.parse_calibration(data)
    assert [p.req_per_s for p in result.engines["fast"].points] == [2500.0, 19000.0]
    ceiling = result.ceiling("fast")
    assert ceiling == cal.ClientCeiling("fast", {1: 2500.0, 64: 19000.0})
    assert ceiling.to_json() == {"engine": "fast", "rps_by_concurrency": {"1": 2500.0, "64": 19000.0}}


def test_ceiling_is_per_engine_and_takes_the_best_figure_per_concurrency() -> None:
    data = {
        "engines": {
            "fast": {"works": True, "points": [{"engine": "fast", "concurrency": 1, "req_per_s": 2500.0}]},
            "httpx": {"works": True, "points": [{"engine": "httpx", "concurrency": 1, "req_per_s": 500.0}]},
        },
        # an older flat list, naming the engine "name" and the figure "max_rps"
        "points": [{"name": "fast", "concurrency": 1, "max_rps": 2600.0}, {"name": "fast", "concurrency": 8, "rps": 0}],
    }
    result = cal.parse_calibration(data)
    assert result.ceiling("fast").rps_by_concurrency == {1: 2600.0}  # a 0 req/s point is no ceiling
    assert result.ceiling("httpx").rps_by_concurrency == {1: 500.0}
    assert result.ceiling("aiohttp") is None
    assert cal.parse_calibration({}).ceiling("fast") is None
    with pytest.raises(ValueError, match="JSON object"):
        cal.parse_calibration([1, 2])


def test_meta_summary_parses_back_to_the_same_points_and_ceiling() -> None:
    data = copy.deepcopy(CALIBRATION)
    data.update(chosen="fast", schema=cal.SCHEMA)
    result = cal.parse_calibration(data)
    again = cal.parse_calibration(cal.calibration_summary(result))
    for name, entry in result.engines.items():
        assert [dataclasses.replace(p, errors={}) for p in entry.points] == list(again.engines[name].points)
    assert again.chosen == "fast" and again.ceiling("fast") == result.ceiling("fast")


def test_stale_or_foreign_calibration_is_not_reused() -> None:
    fresh = {"schema": cal.SCHEMA, "created_at": time.time(), "host": host_facts(), "engines": {"fast": {}}}
    assert cal._still_valid(fresh, 3600)
    assert not cal._still_valid({**fresh, "created_at": time.time() - 7200}, 3600)
    assert not cal._still_valid({**fresh, "host": {**fresh["host"], "cpu_model": "another CPU"}}, 3600)
    assert not cal._still_valid({**fresh, "schema": "v0"}, 3600)


@pytest.mark.parametrize("make", [mnist_payload, synthetic_payload], ids=["mnist", "synthetic"])
def test_payload_is_the_study_sized_mnist_json(make) -> None:
    request, source = make()
    doc = json.loads(request.body)
    assert len(doc["instances"][0]) == 28 and len(doc["instances"][0][0]) == 28
    assert 4_000 < len(request.body) < 9_000, len(request.body)  # ~6 KB as in the DESIGN
    assert source


# -- the null endpoint and measurements (processes) -----------------------------------------
def _http(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            if b"Connection: keep-alive" in data and data.endswith(NULL_BODY):
                return data


@pytest.mark.slow
def test_python_null_endpoint_answers_and_is_stopped() -> None:
    cpus = (os.sched_getaffinity(0) and sorted(os.sched_getaffinity(0))[:1]) if hasattr(os, "sched_getaffinity") else []
    endpoint = NullEndpoint("python", cpus=cpus)
    with endpoint:
        port, pid = endpoint.port, endpoint._proc.pid
        ok = _http(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert ok.startswith(b"HTTP/1.1 200 OK") and ok.endswith(NULL_BODY)
        closing = _http(port, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        assert b"Connection: close" in closing
        bad = _http(port, b"\x00\x01garbage\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400")
        if cpus:
            assert os.sched_getaffinity(pid) == set(cpus)
        assert endpoint.describe()["kind"] == "python"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_nginx_is_found_outside_path(tmp_path, monkeypatch) -> None:
    """Debian installs nginx in /usr/sbin, which a non-root user's PATH often lacks."""
    from loadgen import nullserver

    sbin = tmp_path / "sbin"
    sbin.mkdir()
    (sbin / "nginx").write_text("#!/bin/sh\n")
    (sbin / "nginx").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(nullserver, "NGINX_DIRS", ("/nonexistent/sbin", str(sbin)))
    assert nullserver.nginx_available() == str(sbin / "nginx")
    monkeypatch.setattr(nullserver, "NGINX_DIRS", ("/nonexistent/sbin",))
    assert nullserver.nginx_available() is None
    monkeypatch.undo()
    assert nullserver.NGINX_DIRS == ("/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin")


@pytest.mark.slow
@pytest.mark.skipif(
    nginx_available() is None,
    reason="NGINX NOT INSTALLED (apt-get install nginx; looked on PATH and in /usr/sbin, "
    "/usr/local/sbin, /usr/local/nginx/sbin)",
)
def test_nginx_null_endpoint_answers_posts() -> None:
    with NullEndpoint("nginx") as endpoint:
        answer = _http(endpoint.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(NULL_BODY)
        assert endpoint.describe()["version"]
        pid = endpoint._proc.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_null_endpoint_rejects_bad_kinds() -> None:
    with pytest.raises(ValueError, match="kind"):
        NullEndpoint("apache")


@pytest.mark.slow
def test_measure_point_and_raw_baseline_against_the_null_server() -> None:
    request, _ = mnist_payload()
    with NullEndpoint("python") as endpoint:
        point = run(cal.measure_engine_point(FastEngine, endpoint.url, request, 4, 0.3, warmup_s=0.05))
        baseline = cal.raw_socket_p50(endpoint.url, build_request_bytes(request, endpoint.url), 0.2)
    assert point["requests"] > 50 and point["errors"] == {}
    assert point["concurrency"] == 4 and point["engine"] == "fast"
    assert point["req_per_s"] == pytest.approx(point["requests"] / point["duration_s"], rel=0.01)
    assert 0 < point["cpu_ms_per_request"] < 5
    assert 0 < point["p50_ms"] <= point["p99_ms"]
    assert baseline["requests"] > 10 and baseline["p50_ms"] > 0


@pytest.mark.slow
def test_measure_point_counts_refused_requests_as_errors() -> None:
    request, _ = mnist_payload()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    point = run(cal.measure_engine_point(FastEngine, f"http://127.0.0.1:{port}", request, 1, 0.1, warmup_s=0.01))
    assert point["requests"] == 0 and point["errors"].get("refused", 0) > 0
    assert point["p50_ms"] is None  # no successful request: no latency invented
    json.dumps(point, allow_nan=False)


@pytest.mark.slow
def test_run_calibration_writes_json_and_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    result = cal.load_or_run_calibration(path, max_age_s=3600, engines=["fast"], cpus="auto")
    assert path.is_file()
    on_disk = json.loads(path.read_text())
    assert on_disk["schema"] == cal.SCHEMA and on_disk["quick"] is True
    assert on_disk["chosen"] == "fast" == result.chosen and on_disk == result.data
    assert on_disk["engines"]["fast"]["works"], on_disk["engines"]["fast"]
    assert [p["concurrency"] for p in on_disk["engines"]["fast"]["points"]] == list(cal.QUICK_CONCURRENCIES)
    assert on_disk["host"]["cpu_count"] >= 1 and on_disk["engines"]["fast"]["version"]
    again = cal.load_or_run_calibration(path, max_age_s=3600, engines=["fast"])
    assert again.data["created_at"] == result.data["created_at"]  # reused, not re-measured
    assert again == result and sorted(again.ceiling("fast").rps_by_concurrency) == list(cal.QUICK_CONCURRENCIES)


def test_calibrate_command_validates_arguments(repo_root: Path) -> None:
    from bench.commands.calibrate import calibrate

    config = load_config(repo_root / "bench.toml")
    console = Console(quiet=True, file=io.StringIO())
    assert calibrate(config, engines=None, duration_s=0, concurrencies=None, output=None, console=console) == 2
    assert calibrate(config, engines=None, duration_s=1, concurrencies=[0], output=None, console=console) == 2
    assert calibrate(config, engines=["nope"], duration_s=0.1, concurrencies=[1], output=None, console=console) == 2


@pytest.mark.slow
def test_calibrate_command_prints_table_and_writes_json(repo_root: Path, tmp_path: Path) -> None:
    from bench.commands.calibrate import calibrate

    config = load_config(repo_root / "bench.toml")
    out = io.StringIO()
    console = Console(quiet=True, file=out)
    path = tmp_path / "cal.json"
    code = calibrate(
        config, engines=["fast", "aiohttp"], duration_s=0.2, concurrencies=[1, 4], output=path, console=console
    )
    text = out.getvalue()
    assert code == 0, text
    assert "req/s" in text and "CPU ms/req" in text and "cheapest engine here" in text
    data = json.loads(path.read_text())
    assert set(data["engines"]) == {"fast", "aiohttp"}
    assert all(len(e["points"]) == 2 for e in data["engines"].values())
    assert data["chosen"] in ("fast", "aiohttp")


WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:58817/predict
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.91ms    1.44ms   9.46ms   84.04%
    Req/Sec    48.69k     5.72k   62.30k    85.00%
  Latency Distribution
     50%   54.00us
     75%    1.44ms
     90%    3.07ms
     99%    6.27ms
  97274 requests in 2.01s, 16.14MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  48347.50
Transfer/sec:      8.02MB
"""


def test_benchmark_reads_wrk_output(repo_root: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_engines", repo_root / "benchmarks" / "bench_engines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.parse_wrk(WRK_OUTPUT)
    assert figures == {
        "req_per_s": 48347.5,
        "requests": 97274,
        "p50_ms_printed": 0.054,
        "p99_ms_printed": 6.27,
        "errors": 3,
    }
    with pytest.raises(ValueError, match="unexpected wrk output"):
        module.parse_wrk("wrk: command failed")
