"""``bench run pipeline --target``: the real kfp.Client against a fake KFP REST API on loopback.

No live Kubeflow is used here (none is reachable): ``tests/support/kfp_fake.py`` answers the calls
``kfp.Client`` makes and serves run details constructed from the kfp_server_api schema
(``tests/data/kfp/README.md``).  What these tests prove: our client code path (auth
header, experiment, run creation with the compiled IR, bounded polling), the mapping of
task details to stage rows, failure handling, and that the token never lands in a file.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.config import parse_config
from bench.console import Console
from bench.pipeline.remote_run import run_remote_pipeline
from models.pipeline.kfp_run import display_names
from models.pipeline.stages import STAGE_COLUMNS, STAGES_FILE
from tests.support.kfp_fake import DATA, FakeKfp

TOKEN = "kfp-s3cret-T0KEN-6a1f"
STAGES = ["tune", "train", "export", "serve", "smoke"]


@pytest.fixture(autouse=True)
def _no_user_kfp_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kfp.Client reads (and may write) ~/.config/kfp/context.json; keep tests off $HOME."""
    import kfp

    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context" / "context.json"))


def _config(tmp_path: Path, url: str, **keys: Any):
    table = {
        "adapter": "kserve",
        "kfp_endpoint": url,
        "kfp_token_env": "SB_KFP_TOKEN",
        "kfp_poll_s": 0.05,
        "kfp_image": "registry.example.com/servebench:1",
        **keys,
    }
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
    text = f'[paths]\nresults_dir = "results"\nreports_dir = "reports"\n\n[targets.kubeflow-test]\n{lines}\n'
    (tmp_path / "bench.toml").write_text(text)
    return parse_config(text, tmp_path)


def _run(config, **kw: Any) -> int:
    kw.setdefault("environ", {"SB_KFP_TOKEN": TOKEN})
    return run_remote_pipeline(config, target="kubeflow-test", pipeline="servebench", console=Console(quiet=True), **kw)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / STAGES_FILE, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == STAGE_COLUMNS
        return list(reader)


def _assert_no_token(run_dir: Path, *texts: str) -> None:
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert TOKEN not in path.read_text(errors="replace"), f"token written to {path}"
    for text in texts:
        assert TOKEN not in text


def test_recorded_answers_use_only_kfp_server_api_fields() -> None:
    """Every key in the recorded JSON is a field of the model it deserializes into (none silently dropped)."""
    import kfp_server_api

    client = kfp_server_api.ApiClient()

    def check(value: Any, type_name: str, where: str) -> None:
        if type_name.startswith("list["):
            for i, item in enumerate(value):
                check(item, type_name[5:-1], f"{where}[{i}]")
            return
        if type_name.startswith("dict(") or type_name in ("str", "int", "bool", "object", "datetime"):
            return
        cls = getattr(kfp_server_api.models, type_name)
        if not getattr(cls, "openapi_types", None):  # enums (V2beta1RuntimeState ...)
            assert value in cls.allowable_values, f"{where}: {value!r}"
            return
        unknown = set(value) - set(cls.attribute_map.values())
        assert not unknown, f"{where}: not fields of {type_name}: {unknown}"
        by_json = {v: k for k, v in cls.attribute_map.items()}
        for key, item in value.items():
            check(item, cls.openapi_types[by_json[key]], f"{where}.{key}")

    for name in ("run-succeeded.json", "run-failed.json", "run-running.json"):
        doc = json.loads((DATA / name).read_text())
        check(doc, "V2beta1Run", name)
        run = client._ApiClient__deserialize(doc, "V2beta1Run")
        assert run.run_details.task_details[0].start_time.tzinfo is not None


def test_display_names_are_the_compiled_task_names(tmp_path: Path) -> None:
    from bench.pipeline.definition import compile_pipeline

    doc = yaml.safe_load(compile_pipeline(tmp_path / "p.yaml").read_text())
    assert display_names(doc) == {s: s for s in STAGES}
    recorded = json.loads((DATA / "run-succeeded.json").read_text())
    assert set(display_names(doc)) <= {t["display_name"] for t in recorded["run_details"]["task_details"]}


def test_custom_pipeline_task_names_map_back_to_its_stages(tmp_path: Path) -> None:
    """KFP compiles the component ``load_data`` to the task ``load-data``; the stage stays ``load_data``."""
    from bench.pipeline.definition import compile_named
    from models.pipeline.registry import stages_for

    doc = yaml.safe_load(Path(compile_named("custom", tmp_path / "c.yaml")).read_text())
    names = display_names(doc)
    assert "load-data" in names
    assert sorted(names.values()) == sorted(stages_for("custom"))


def test_succeeded_run_writes_the_local_stage_format(tmp_path: Path, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeKfp(["run-running.json", "run-succeeded.json"], token=TOKEN) as fake:
        config = _config(tmp_path, fake.url)
        assert _run(config, run_id="ok", settings={"trials": 2}) == 0
    run_dir = config.results_dir / "ok"
    rows = _rows(run_dir)
    assert [(r["pipeline"], r["stage"], r["start"], r["end"], r["seconds"], r["status"]) for r in rows] == [
        ("servebench", "tune", "2026-11-20T14:02:31Z", "2026-11-20T14:05:02Z", "151.000", "ok"),
        ("servebench", "train", "2026-11-20T14:05:12Z", "2026-11-20T14:06:55Z", "103.000", "ok"),
        ("servebench", "export", "2026-11-20T14:07:05Z", "2026-11-20T14:07:49Z", "44.000", "ok"),
        ("servebench", "serve", "2026-11-20T14:07:59Z", "2026-11-20T14:09:13Z", "74.000", "ok"),
        ("servebench", "smoke", "2026-11-20T14:09:23Z", "2026-11-20T14:11:40Z", "137.000", "ok"),
        ("servebench", "total", "2026-11-20T14:02:11Z", "2026-11-20T14:11:48Z", "577.000", "ok"),
    ]
    # the token went to the API as a bearer header on every call, and nowhere else
    assert fake.seen and all(s.headers.get("authorization") == f"Bearer {TOKEN}" for s in fake.seen)
    paths = [(s.method, s.path) for s in fake.seen]
    assert ("POST", "/apis/v2beta1/runs") in paths
    assert paths.count(("GET", f"/apis/v2beta1/runs/{fake.run_id}")) == 2  # polled until finished
    out = capsys.readouterr()
    _assert_no_token(run_dir, out.out, out.err, caplog.text)
    # what was submitted: our compiled IR, caching off, every step in the configured image
    (body,) = fake.created_runs
    spec = body["pipeline_spec"]
    assert set(spec["root"]["dag"]["tasks"]) == set(STAGES)
    # compiled with enableCache: true; submitted with caching off (protobuf JSON drops the false)
    assert not any(t["cachingOptions"].get("enableCache") for t in spec["root"]["dag"]["tasks"].values())
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {
        "registry.example.com/servebench:1"
    }
    params = body["runtime_config"]["parameters"]
    assert params["trials"] == 2 and params["timing_path"] == "" and params["model_name"] == "mnist"
    assert body["display_name"] == "servebench-ok"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert (meta["kind"], meta["mode"], meta["status"], meta["complete"]) == ("pipeline", "remote", "complete", True)
    assert meta["error"] is None and meta["finished_at"] >= meta["started_at"]
    assert meta["kfp_run_id"] == fake.run_id and meta["kfp_state"] == "SUCCEEDED"
    assert meta["kfp"]["kfp_host"] == "127.0.0.1" and meta["kfp"]["kfp_token_env"] == "SB_KFP_TOKEN"
    assert "root-driver" in meta["unmapped_tasks"] and meta["missing_stages"] == []


def test_failed_task_names_the_stage_and_keeps_rows(tmp_path: Path, capsys) -> None:
    with FakeKfp(["run-failed.json"], token=TOKEN) as fake:
        config = _config(tmp_path, fake.url)
        assert _run(config, run_id="bad") == 1
    err = capsys.readouterr().err
    assert "stage 'train' failed" in err and "forced failure" in err
    run_dir = config.results_dir / "bad"
    assert [(r["stage"], r["status"]) for r in _rows(run_dir)] == [
        ("tune", "ok"),
        ("train", "failed"),
        ("total", "failed"),
    ]
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["failed_stage"] == "train" and meta["kfp_state"] == "FAILED"
    assert meta["missing_stages"] == ["export", "serve", "smoke"]
    _assert_no_token(run_dir, err)


def test_wait_is_bounded_by_the_timeout(tmp_path: Path, capsys) -> None:
    with FakeKfp(["run-running.json"], token=TOKEN) as fake:
        config = _config(tmp_path, fake.url, kfp_timeout_s=600.0)
        t0 = time.monotonic()
        assert _run(config, run_id="slow", timeout_s=0.5) == 1  # the argument overrides kfp_timeout_s
        waited = time.monotonic() - t0
        reads = fake.get_reads()
    assert waited < 10, f"waited {waited:.1f} s for a 0.5 s timeout"
    assert reads >= 3  # it polled (every 0.05 s) rather than giving up at once
    assert "still RUNNING after 0.5 s" in capsys.readouterr().err
    run_dir = config.results_dir / "slow"
    assert [(r["stage"], r["status"]) for r in _rows(run_dir)] == [("tune", "ok")]  # train unfinished: no row
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["kfp_state"] == "RUNNING" and meta["timeout_s"] == 0.5
    assert meta["error"].startswith("timed out:") and "keeps running on the cluster" in meta["error"]


def test_succeeded_run_without_a_stage_is_not_reported_ok(tmp_path: Path) -> None:
    doc = json.loads((DATA / "run-succeeded.json").read_text())
    doc["run_details"]["task_details"] = [t for t in doc["run_details"]["task_details"] if t["display_name"] != "serve"]
    with FakeKfp([doc], token=TOKEN) as fake:
        config = _config(tmp_path, fake.url)
        assert _run(config, run_id="gap") == 1
    meta = json.loads((config.results_dir / "gap" / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["missing_stages"] == ["serve"]
    assert "serve-driver" in meta["error"]  # names what was seen, to fix a mapping on a real cluster


def test_wrong_token_fails_fast_without_the_token(tmp_path: Path, capsys) -> None:
    with FakeKfp(["run-succeeded.json"], token="the-right-one") as fake:
        config = _config(tmp_path, fake.url)
        t0 = time.monotonic()
        assert _run(config, run_id="deny") == 1
        waited = time.monotonic() - t0
        paths = [s.path for s in fake.seen]
    assert waited < 5, f"{waited:.1f} s: kfp.Client's own healthz retries (5 x 5 s) were not pre-empted"
    assert paths == ["/apis/v2beta1/healthz"]  # nothing submitted
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "kfp_token_env" in err and TOKEN not in err
    meta = json.loads((config.results_dir / "deny" / "meta.json").read_text())
    assert meta["status"] == "failed" and "HTTP 401" in meta["error"] and "kfp_run_id" not in meta
    _assert_no_token(config.results_dir / "deny")


def test_expired_session_redirect_is_named(tmp_path: Path, capsys) -> None:
    cookie = "authservice_session=expired-MTcwMDAw"
    with FakeKfp(["run-succeeded.json"], redirect_to="https://dex.example.com/dex/auth?state=abc") as fake:
        config = _config(tmp_path, fake.url, kfp_token_env="", kfp_cookie_env="SB_KFP_COOKIE")
        assert _run(config, run_id="login", environ={"SB_KFP_COOKIE": cookie}) == 1
        assert len(fake.seen) == 1  # the redirect was not followed
    err = capsys.readouterr().err
    assert "login page" in err and "https://dex.example.com/dex/auth" in err and cookie not in err


def test_cookie_is_sent_as_cookie_header(tmp_path: Path) -> None:
    cookie = "authservice_session=MTcwMDAwMDAwMHxzZWNyZXQ"
    with FakeKfp(["run-succeeded.json"]) as fake:
        config = _config(tmp_path, fake.url, kfp_token_env="", kfp_cookie_env="SB_KFP_COOKIE", kfp_namespace="team-a")
        assert _run(config, run_id="ck", environ={"SB_KFP_COOKIE": cookie}) == 0
    assert all(s.headers.get("cookie") == cookie and "authorization" not in s.headers for s in fake.seen)
    # a multi-user profile namespace reaches the experiment lookup and creation
    lookup = next(s for s in fake.seen if (s.method, s.path) == ("GET", "/apis/v2beta1/experiments"))
    assert lookup.query["namespace"] == ["team-a"]
    assert fake.experiments[0]["namespace"] == "team-a"
    for path in (config.results_dir / "ck").rglob("*"):
        assert path.is_dir() or cookie not in path.read_text()


@pytest.mark.parametrize(
    ("keys", "environ", "expected"),
    [
        ({}, {}, "SB_KFP_TOKEN (named by kfp_token_env) is not set"),
        (
            {"kfp_endpiont": "https://x"},
            None,
            "targets.kubeflow-test.kfp_endpiont: unknown key (did you mean 'kfp_endpoint'?)",
        ),
        ({"kfp_timeout_s": "10"}, None, "targets.kubeflow-test.kfp_timeout_s: must be a number"),
        ({"kfp_token_env": "not a name"}, None, "kfp_token_env must be an environment variable NAME"),
        ({"kfp_endpoint": "http://kubeflow.example.com"}, None, "kfp_endpoint must use https://"),
        ({"kfp_endpoint": "https://user:pw@kubeflow.example.com"}, None, "must not embed credentials"),
        ({"kfp_endpoint": ""}, None, "targets.kubeflow-test.kfp_endpoint: not set"),
    ],
)
def test_bad_config_is_refused_naming_the_key(tmp_path: Path, capsys, keys, environ, expected) -> None:
    config = _config(tmp_path, "http://127.0.0.1:9", **keys)
    assert _run(config, run_id="x", **({"environ": environ} if environ is not None else {})) == 2
    assert expected in capsys.readouterr().err
    assert not (config.results_dir / "x").exists()  # nothing was submitted or written


def test_other_bad_input_is_refused(tmp_path: Path, capsys) -> None:
    config = _config(tmp_path, "http://127.0.0.1:9")
    quiet = Console(quiet=True)
    env = {"SB_KFP_TOKEN": TOKEN}
    assert (
        run_remote_pipeline(config, target="nope", pipeline="servebench", run_id="a", console=quiet, environ=env) == 2
    )
    assert "targets.nope: no such target" in capsys.readouterr().err
    assert (
        run_remote_pipeline(config, target="kubeflow-test", pipeline="nope", run_id="b", console=quiet, environ=env)
        == 2
    )
    assert _run(config, run_id="c", settings={"epoch": 1}) == 2
    assert _run(config, run_id="d", timeout_s=0) == 2
    flask = parse_config('[targets.linserv]\nadapter = "flask"\n', tmp_path)
    assert run_remote_pipeline(flask, target="linserv", pipeline="servebench", run_id="e", console=quiet) == 2
    assert "targets.linserv.adapter" in capsys.readouterr().err


def test_unreachable_api_fails_with_exit_1(tmp_path: Path, capsys) -> None:
    import socket

    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = _config(tmp_path, f"http://127.0.0.1:{port}", kfp_namespace="team-a")
    assert _run(config, run_id="down") == 1
    assert f"KFP API at http://127.0.0.1:{port}" in capsys.readouterr().err
    assert json.loads((config.results_dir / "down" / "meta.json").read_text())["status"] == "failed"


def test_cli_submits_with_target_and_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from bench.cli import main

    monkeypatch.setenv("SB_KFP_TOKEN", TOKEN)
    with FakeKfp(["run-succeeded.json"], token=TOKEN) as fake:
        _config(tmp_path, fake.url)
        argv = [
            "--config",
            str(tmp_path / "bench.toml"),
            "run",
            "pipeline",
            "--target",
            "kubeflow-test",
            "--timeout",
            "30",
            "--run-id",
            "cli",
        ]
        assert main(argv) == 0
    meta = json.loads((tmp_path / "results" / "cli" / "meta.json").read_text())
    assert meta["mode"] == "remote" and meta["timeout_s"] == 30.0
    out = capsys.readouterr()
    assert "Run details:" in out.err + out.out and TOKEN not in out.err + out.out
    assert main(["--config", str(tmp_path / "bench.toml"), "run", "pipeline", "--timeout", "30"]) == 2
    assert "give --target NAME" in capsys.readouterr().err


def test_commented_bench_toml_examples_parse(repo_root: Path) -> None:
    """The commented kfp_* examples in bench.toml are valid settings once uncommented."""
    import re
    import tomllib

    from ground.tables import parse_table
    from targets.kserve.target import KServeSettings

    text = (repo_root / "bench.toml").read_text()
    found = 0
    for name in ("kubeflow-gcp", "kubeflow-ibm"):
        block = text.split(f"[targets.{name}]")[1].split("\n[")[0]
        keys: dict[str, Any] = {}
        for line in block.splitlines():
            m = re.match(r"# (kfp_\w+) = (.*?)(\s+#.*)?$", line)
            if m:
                keys.update(tomllib.loads(f"{m.group(1)} = {m.group(2)}"))
        assert keys.get("kfp_endpoint", "").startswith("https://"), name
        found += len(keys)
        parse_table(KServeSettings, keys, f"targets.{name}")
    assert found >= 6


def test_retried_and_canceled_tasks_map_to_one_row_each() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace as NS

    from models.pipeline.kfp_run import run_timings

    def t(name: str, start: int, end: int | None, state: str) -> NS:
        def at(s: int | None) -> datetime | None:
            return datetime.fromtimestamp(1.7e9 + s, UTC) if s is not None else None

        return NS(display_name=name, start_time=at(start), end_time=at(end), state=state, error=None)

    tasks = [
        t("train", 20, 30, "FAILED"),
        t("tune", 0, 10, "SUCCEEDED"),
        t("train", 40, 55, "SUCCEEDED"),
        t("train-driver", 12, 19, "SUCCEEDED"),
        t("export", 60, 61, "CANCELED"),
    ]
    run = NS(
        state="CANCELED",
        run_details=NS(task_details=tasks),
        error=NS(message="canceled by user"),
        created_at=datetime.fromtimestamp(1.7e9 - 5, UTC),
        finished_at=datetime.fromtimestamp(1.7e9 + 62, UTC),
    )
    got = run_timings(run, {s: s for s in STAGES}, STAGES)
    assert [(r["stage"], r["seconds"], r["status"]) for r in got.rows] == [
        ("tune", 10.0, "ok"),
        ("train", 35.0, "ok"),
        ("export", 1.0, "canceled"),
        ("total", 67.0, "failed"),
    ]
    assert got.failed_stage == "export" and got.error == "canceled by user"
    assert got.missing == ["serve", "smoke"] and got.unmapped == ["train-driver"]
