"""The report's run facts read as text: status, CPU plan, sweep settings, warnings box."""

from __future__ import annotations

from bench.config import parse_config
from bench.console import Console
from bench.report.document import Document, to_html, to_markdown
from bench.report.runfacts import cpu_plan_text, meta_rows, run_warnings, status_text, sweep_rows
from bench.report.write import report
from ground.runmeta import RunMeta
from tests.support.synthetic_runs import write_synthetic_run

SWEEP = {
    "n_requests": [1, 4, 128],
    "modes": ["sequential", "concurrent"],
    "trials": 1,
    "warmup": 5,
    "concurrency": 0,
    "rate_rps": 50.0,
    "arrival": "poisson",
    "seed": 0,
    "max_duration_s": 600.0,
    "timeout_s": 30.0,
    "connect_timeout_s": 5.0,
    "max_rps": 0.0,
    "verify_tls": True,
}


def _status(data: dict) -> str:
    return status_text(RunMeta.from_json(data))


def test_status_and_cpu_plan_are_sentences():
    assert _status({"status": "complete", "complete": True}) == "complete: every planned target was run"
    assert _status({"status": "interrupted", "complete": False}).startswith("interrupted (Ctrl-C or SIGTERM)")
    assert _status({"status": "crashed", "complete": False}).startswith("failed on an error")  # an old word
    assert _status({"status": "error: ValueError: bad", "complete": False}).endswith("(ValueError: bad)")
    assert _status({"complete": False}).startswith("running")  # never finalised
    assert _status({}) == "unknown: meta.json records no status"
    assert _status({"status": "weird", "complete": False}) == (
        "unknown: meta.json records the status 'weird', which this servebench does not know"
    )
    assert "1 target(s) had problems: k8s-ibm" in _status(
        {"status": "complete", "complete": True, "target_errors": {"k8s-ibm": "died: x"}}
    )
    assert cpu_plan_text({"client": [1], "standins": [0]}).startswith("load generator on CPU 1; stand-ins on CPU 0")
    assert cpu_plan_text({"client": [3], "standins": [0, 1, 2]}) == "load generator on CPU 3; stand-ins on CPUs 0, 1, 2"
    assert cpu_plan_text({"client": [], "standins": []}).startswith("not pinned")
    assert cpu_plan_text(None).startswith("not pinned")


def test_sweep_rows_are_a_small_table():
    rows = dict((k, v) for k, v in sweep_rows(SWEEP))
    assert rows["requests per step (N)"] == "1, 4, 128"
    assert rows["modes"] == "sequential, concurrent"
    assert rows["in flight in concurrent mode"] == "N (a burst of all N)"
    assert rows["request timeout (connect)"] == "30 s (5 s)"
    assert rows["request rate cap"] == "none"
    assert not any("rate" in k and "offered" in k for k in rows)  # no rate mode: no rate settings shown
    with_rate = dict(sweep_rows({**SWEEP, "modes": ["rate"], "concurrency": 8, "new_knob": [1, 2]}))
    assert with_rate["offered rate (rate mode)"] == "50.0 req/s" and with_rate["arrivals (rate mode)"] == "poisson"
    assert with_rate["in flight in concurrent mode"] == "at most 8"
    assert with_rate["new_knob"] == "1, 2"  # settings it does not know are still listed
    timed = dict(sweep_rows({**SWEEP, "modes": ["rate"], "duration_s": 5.0}))  # `--rate 50 --duration 5`
    assert timed["requests per step (N)"] == "250 (offered rate x seconds of arrivals)"  # not the unused counts
    mixed = dict(sweep_rows({**SWEEP, "modes": ["concurrent", "rate"], "duration_s": 2.0}))
    assert (
        mixed["requests per step (N)"] == "1, 4, 128 (concurrent); rate steps: 100 (offered rate x seconds of arrivals)"
    )


def test_meta_rows_hold_no_python_reprs():
    meta = {
        "run_id": "r",
        "status": "complete",
        "complete": True,
        "cpu_plan": {"client": [1], "standins": [0]},
        "model": {"accuracy": {"torch": 0.983}, "dir": "m", "torchscript_sha256": "ab" * 32},
    }
    text = " ".join(v for _, v in meta_rows(RunMeta.from_json(meta)))
    assert "{" not in text and "[" not in text and "complete: True" not in text
    assert "answers correct on the test split 98.3 %" in text


def test_warnings_block_renders_at_the_top(tmp_path):
    meta = {"complete": False, "status": "interrupted", "target_errors": {"k8s-ibm": "died: refused\nlog tail"}}
    warnings = run_warnings(RunMeta.from_json(meta), flagged_steps=2)
    assert warnings[0].startswith("**INCOMPLETE RUN**") and "`k8s-ibm` had a problem: died: refused (" in warnings[1]
    assert "2 step(s) are flagged" in warnings[2]
    assert run_warnings(RunMeta.from_json({"complete": True})) == []
    doc = Document("t")
    doc.add("warnings", "Warnings about this run:", items=["a `b` **c**"])
    assert "> **Warnings about this run:**\n>\n> - a `b` **c**" in to_markdown(doc)
    html = to_html(doc, tmp_path)
    assert '<div class="warnings" role="note">' in html and "<code>b</code>" in html and "<strong>c</strong>" in html


def test_report_run_section_reads_as_text(tmp_path):
    config = parse_config('[paths]\nresults_dir = "results"\nreports_dir = "reports"\n', tmp_path)
    write_synthetic_run(config.results_dir, "r", ns=(1, 4), trials=1, complete=False)
    assert report(config, runs=["r"], study_overlay=False, console=Console(quiet=True)) == 0
    md = (config.reports_dir / "r" / "report.md").read_text()
    run_section = md.split("## Run")[1].split("## Table 3")[0]
    assert "Sweep settings:" in run_section and "| requests per step (N) | 1, 4 |" in run_section
    assert "{'" not in run_section and "complete: False" not in run_section
    assert md.index("INCOMPLETE RUN") < md.index("## Run")


def test_sweep_rows_word_the_rate_duration_and_hide_it_without_rate_mode():
    from bench.report.runfacts import sweep_rows

    closed = sweep_rows({"n_requests": [1, 4], "modes": ["sequential"], "duration_s": 0.0})
    assert not any("duration" in label for label, _ in closed)
    rate = dict(
        sweep_rows({"n_requests": [1], "modes": ["rate"], "rate_rps": 40, "arrival": "poisson", "duration_s": 5.0})
    )
    assert rate["seconds of arrivals per rate step"] == "5 s"
    unset = dict(sweep_rows({"n_requests": [1], "modes": ["rate"], "rate_rps": 40, "duration_s": 0.0}))
    assert unset["seconds of arrivals per rate step"].startswith("not set")


def test_sweep_rows_show_the_stages_and_their_planned_count():
    from loadgen.sweep import SweepPlan

    stages = [
        {"duration": "2m", "start_rate": 0, "rate": 100},
        {"duration": "30m", "rate": 100},
        {"duration": "2m", "rate": 0},
    ]
    rows = dict(sweep_rows(SweepPlan(modes=("rate",), stages=stages).describe()))
    assert rows["requests per step (N)"] == "192000 (the stages' rate curve, integrated)"
    assert rows["stages (rate mode)"] == "2m:0-100,30m:100,2m:0 (peak 100 req/s)"
    assert "offered rate (rate mode)" not in rows and "seconds of arrivals per rate step" not in rows
    mixed = dict(sweep_rows(SweepPlan(n_requests=(1, 4), modes=("sequential", "rate"), stages=stages).describe()))
    assert (
        mixed["requests per step (N)"] == "1, 4 (sequential); rate steps: 192000 (the stages' rate curve, integrated)"
    )
    # a run without stages: no stages row, and its meta.json has no stages key (as before)
    plain = SweepPlan(modes=("rate",), duration_s=5.0).describe()
    assert "stages" not in plain and "stages (rate mode)" not in dict(sweep_rows(plain))
