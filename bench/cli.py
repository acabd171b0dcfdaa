"""Command-line interface: `python -m bench COMMAND ...`.

Why this file is thin: argparse objects never leave it. Each command is a plain function
in a ``bench.cmd_*`` module taking explicit keyword arguments, so it can be called from
tests and other code, and so heavy imports (torch, tensorflow, kserve) happen only for the
command that needs them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.config import ConfigError, load_config
from bench.console import Console

__all__ = ["main"]


def _csv_parts(text: str, what: str) -> list[str]:
    """The comma-separated items of ``text``; an empty item (``1,,4``, ``1,4,``) is an error,
    not silently dropped: it is a typo whose intent nobody can guess. argparse prefixes the
    message with the flag's name (``argument --requests: ...``)."""
    parts = [part.strip() for part in text.split(",")]
    empty = [i for i, part in enumerate(parts, 1) if not part]
    if empty:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {what}, got {text!r}: item {empty[0]} of {len(parts)} is empty")
    return parts


def _csv_ints(text: str) -> list[int]:
    parts = _csv_parts(text, "integers")
    try:
        return [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _csv_counts(text: str) -> list[int]:
    """Comma-separated counts >= 1 (request counts)."""
    counts = _csv_ints(text)
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"expected comma-separated counts >= 1, got {text!r}")
    return counts


def _csv_words(text: str) -> list[str]:
    return _csv_parts(text, "names")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, with a message naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    """A finite number > 0 (``inf`` and ``nan`` are numbers to float(), not to a benchmark)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="servebench: benchmark one MNIST model across deployment targets.",
    )
    parser.add_argument("--config", default="bench.toml", help="path to bench.toml (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display, fewer messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train the shared MNIST model and export TorchScript + SavedModel")
    p.add_argument("--force", action="store_true", help="retrain even if artifacts for this config exist")

    sub.add_parser("targets", help="list configured targets (adapter, local/remote, URL)")

    p = sub.add_parser("serve", help="start one target's local stand-in in the foreground until Ctrl-C")
    p.add_argument("target")

    p = sub.add_parser("manifests", help="render the manifests that create a target on a real cluster")
    p.add_argument("target", help="a target name, 'hpo' (Katib Experiments), 'pipeline' (TFJob, "
                   "InferenceService, pipeline IR), 'ui' (the digit page) or 'loadgen' (then TARGET: the load "
                   "generator as an Indexed Job)")
    p.add_argument("-o", "--output", type=Path, default=None, help="folder to write into (default: print)")
    p.add_argument("--predict-url", default=None,
                   help="`manifests ui` only: the model URL nginx proxies /api/predict to "
                        "(default: the first kserve target's cluster-local InferenceService URL)")
    lg = p.add_argument_group("`manifests loadgen TARGET`: the load generator as an Indexed Job in the cluster "
                              "(docs/loadgen-in-cluster.md)")
    lg.add_argument("subject", nargs="?", default=None, metavar="TARGET", help="the target the shards load")
    lg.add_argument("--clients", type=_positive_int, default=None, metavar="N", help="shard pods (parallelism)")
    lg.add_argument("--pvc", default=None, help="PersistentVolumeClaim the shard runs are copied to "
                    "(default: servebench-results)")
    lg.add_argument("--namespace", default=None, help="namespace of the Job (default: the target's)")
    lg.add_argument("--image", default=None, help="image with servebench installed (default: [hpo] image)")
    lg.add_argument("--start-in", type=_positive_float, default=None, metavar="S",
                    help="seconds from now to the shards' common start (default: 180)")
    lg.add_argument("--step-interval", type=_positive_float, default=None, metavar="S",
                    help="seconds from one step's common start to the next (needed when the plan has several "
                         "steps; longer than any step takes)")

    p = sub.add_parser("ui", help="serve the digit-recognition page (the study's section 5.4) for one target")
    p.add_argument("--target", default=None, help="target name (default: the first flask target)")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1, 0 = a free one (default: %(default)s)")
    p.add_argument("--no-start", action="store_true",
                   help="do not start or contact the target: serve the page only (predictions off)")

    p = sub.add_parser("calibrate", help="measure each load-generator engine's own ceiling")
    p.add_argument("--engines", type=_csv_words, default=None, help="comma-separated engines (default: all)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default: %(default)s)")
    p.add_argument("--concurrency", type=_csv_ints, default=None, help="e.g. 1,8,64")
    p.add_argument("-o", "--output", type=Path, default=None, help="JSON file to write")

    p = sub.add_parser("run", help="run the benchmark sweep: `run all` or `run TARGET...`")
    p.add_argument("targets", nargs="+", help="'all' or target names")
    p.add_argument("--requests", type=_csv_counts, default=None, help="override [sweep] n_requests, e.g. 1,4,8")
    p.add_argument("--modes", type=_csv_words, default=None,
                   help="override [sweep] modes: sequential, concurrent, rate (comma-separated)")
    p.add_argument("--trials", type=_positive_int, default=None, help="override [sweep] trials")
    p.add_argument("--rate", type=_positive_float, default=None, metavar="R",
                   help="open-loop rate in req/s (override [sweep] rate_rps); implies --modes rate "
                        "unless --modes is given")
    p.add_argument("--duration", type=_positive_float, default=None, metavar="S",
                   help="seconds per rate step (override [sweep] duration_s): each rate step sends "
                        "round(R x S) requests instead of --requests (at most 100000); implies --modes rate "
                        "unless --modes is given")
    p.add_argument("--concurrency", type=_non_negative_int, default=None, metavar="C",
                   help="override [sweep] concurrency: requests in flight in concurrent mode, connection cap "
                        "in rate mode (0 = N)")
    p.add_argument("--engine", default=None, help="override [loadgen] engine")
    p.add_argument("--run-id", default=None, help="name of the results folder (default: time-based)")
    p.add_argument("--no-report", action="store_true", help="skip writing the report")
    p.add_argument("--slo", default=None, help="with --modes capacity: the latency objective, e.g. p99=100ms "
                   "(default: [capacity] percentile and bound_ms; docs/capacity.md)")
    hpo = p.add_argument_group("hyperparameter tuning (`run hpo`, the study's Tables 1-2)")
    hpo.add_argument("--algorithms", type=_csv_words, default=None, help="e.g. grid,random,bayesian")
    hpo.add_argument("--max-trials", type=_csv_ints, default=None, help="e.g. 5,10,15")
    hpo.add_argument("--parallel", type=int, default=None, help="parallel trials (Katib's parallelTrialCount)")
    hpo.add_argument("--epochs", type=int, default=None, help="training epochs per trial")
    hpo.add_argument("--repeats", type=int, default=None, help="repeats of each algorithm x max-trials")

    pipe = p.add_argument_group("pipeline (`run pipeline`, the study's pipelines: Table 5 E2E, Table 4 custom model)")
    pipe.add_argument("--pipeline", default="servebench",
                      help="servebench (E2E, Table 5) or custom (the study's custom model, Table 4; "
                           "default: %(default)s)")
    pipe.add_argument("--target", default=None,
                      help="submit to this target's Kubeflow Pipelines API (its kfp_endpoint) instead of kfp.local")
    pipe.add_argument("--timeout", type=float, default=None,
                      help="seconds to wait for the remote run (default: the target's kfp_timeout_s)")

    p = sub.add_parser("pipeline", help="Kubeflow Pipelines helpers: `pipeline compile [-o FILE]`")
    p.add_argument("action", choices=("compile",))
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="IR YAML file to write (default: PIPELINE-pipeline.yaml)")
    p.add_argument("--pipeline", default="servebench", help="servebench or custom (default: %(default)s)")

    p = sub.add_parser("report", help="regenerate tables and figures from result CSVs")
    p.add_argument("runs", nargs="*", help="run folders or ids (default: the latest run); 2-6 pipeline runs of "
                   "one pipeline also get a side-by-side report in reports/A--vs--B/")
    p.add_argument("--no-study-overlay", action="store_true", help="leave the study's numbers off Figure 21")

    p = sub.add_parser("compare", help="compare two runs over their trials (per-step and per-target verdicts)",
                       description="Compare run B against reference run A. Each trial is one sample; record "
                       "gateable runs with `bench run ... --trials 3` or more. See docs/compare.md.")
    p.add_argument("a", help="reference run folder, id or summary.csv")
    p.add_argument("b", help="new run folder, id or summary.csv")
    p.add_argument("--metric", choices=("median", "mean", "p90", "p99", "total"), default="median",
                   help="per-trial statistic of each step (default: %(default)s latency; total = the step's total_s)")
    p.add_argument("--threshold", type=float, default=5.0,
                   help="minimum effect in %% that counts; the noise floor measured between trials can raise "
                        "it (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: %(default)s)")
    p.add_argument("--correction", choices=("holm", "bh"), default="holm",
                   help="multiple-comparison correction across steps: Holm-Bonferroni or "
                        "Benjamini-Hochberg (default: %(default)s)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when a target (or with --gate step, a step) is slower")
    p.add_argument("--gate", choices=("target", "step"), default="target",
                   help="what --fail-on-regression judges: each target's geometric mean (default) or every step")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap confidence intervals (default: %(default)s)")
    p.add_argument("--format", choices=("table", "md", "csv"), default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(quiet=args.quiet)
    try:
        return _dispatch(args, console)
    except ConfigError as exc:
        console.error(f"bad configuration: {exc}")
        return 2
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    config = load_config(args.config)
    from bench.redaction import redactor_for

    redactor_for(config, console)  # from here on nothing printed shows a configured secret
    if args.command == "train":
        from bench.cmd_train import train

        return train(config, force=args.force, console=console)
    if args.command == "targets":
        from bench.cmd_targets import list_targets

        return list_targets(config, console=console)
    if args.command == "serve":
        from bench.cmd_targets import serve

        return asyncio.run(serve(config, args.target, console=console))
    if args.command == "manifests" and args.target != "ui" and args.predict_url is not None:
        console.error("--predict-url belongs to `manifests ui` (the digit page's nginx proxy)")
        return 2
    if args.command == "manifests" and (args.target == "loadgen" or args.subject is not None):
        from bench.cmd_loadgen_manifests import write_loadgen_manifests

        if args.target != "loadgen":
            console.error(f"`manifests {args.target}` takes one name; `manifests loadgen TARGET` renders the load Job")
            return 2
        return write_loadgen_manifests(config, target=args.subject, clients=args.clients, pvc=args.pvc,
                                       namespace=args.namespace, image=args.image, start_in_s=args.start_in,
                                       output=args.output, console=console, step_interval_s=args.step_interval)
    if args.command == "manifests" and any(getattr(args, flag) is not None for flag in (
            "clients", "pvc", "namespace", "image", "start_in", "step_interval")):
        console.error("--clients, --pvc, --namespace, --image, --start-in and --step-interval belong to "
                      "`manifests loadgen TARGET`")
        return 2
    if args.command == "manifests" and args.target == "ui":
        from bench.cmd_ui import write_ui_manifests

        return write_ui_manifests(config, output=args.output, predict_url=args.predict_url, console=console)
    if args.command == "ui":
        from bench.cmd_ui import ui

        return asyncio.run(
            ui(config, target_name=args.target, port=args.port, start=not args.no_start, console=console)
        )
    if args.command == "manifests" and args.target not in ("hpo", "pipeline"):
        from bench.cmd_targets import write_manifests

        return write_manifests(config, args.target, output=args.output, console=console)
    if args.command == "calibrate":
        from bench.cmd_calibrate import calibrate

        return calibrate(
            config,
            engines=args.engines,
            duration_s=args.duration,
            concurrencies=args.concurrency,
            output=args.output,
            console=console,
        )
    if args.command == "run" and args.targets == ["hpo"]:
        from bench.cmd_hpo import run_hpo

        return run_hpo(
            config,
            algorithms=args.algorithms,
            max_trials=args.max_trials,
            parallel=args.parallel,
            epochs=args.epochs,
            repeats=args.repeats,
            run_id=args.run_id,
            write_report=not args.no_report,
            console=console,
        )
    if args.command == "run" and args.targets == ["pipeline"] and args.timeout is not None and not args.target:
        console.error("--timeout is the wait for a remote run: give --target NAME too")
        return 2
    if args.command == "run" and args.targets == ["pipeline"] and args.target:
        from bench.cmd_pipeline_remote import run_remote_pipeline

        return run_remote_pipeline(config, target=args.target, pipeline=args.pipeline, run_id=args.run_id,
                                   timeout_s=args.timeout, console=console)
    if args.command == "run" and args.targets == ["pipeline"]:
        from bench.cmd_pipeline import run_pipeline

        return run_pipeline(config, pipeline=args.pipeline, run_id=args.run_id, console=console,
                            write_report=not args.no_report)
    if args.command == "pipeline":
        from bench.cmd_pipeline import compile_pipeline

        try:
            path = compile_pipeline(args.output or Path(f"{args.pipeline}-pipeline.yaml"), pipeline=args.pipeline)
        except ValueError as exc:
            console.error(str(exc))
            return 2
        console.print(f"wrote {path}")
        return 0
    if args.command == "manifests" and args.target == "pipeline":
        from bench.cmd_pipeline_manifests import write_pipeline_manifests

        return write_pipeline_manifests(config, output=args.output, console=console)
    if args.command == "manifests" and args.target == "hpo":
        from bench.cmd_hpo import write_hpo_manifests

        return write_hpo_manifests(config, output=args.output, console=console)
    if args.command == "run":
        from bench.cmd_run import run

        return run(
            config,
            targets=args.targets,
            n_requests=args.requests,
            modes=args.modes,
            trials=args.trials,
            rate_rps=args.rate,
            duration_s=args.duration,
            concurrency=args.concurrency,
            engine=args.engine,
            run_id=args.run_id,
            write_report=not args.no_report,
            console=console,
            slo=args.slo,
        )
    if args.command == "report":
        from bench.cmd_report import report

        return report(config, runs=args.runs, study_overlay=not args.no_study_overlay, console=console)
    if args.command == "compare":
        from bench.cmd_compare import compare

        return compare(
            config,
            a=args.a,
            b=args.b,
            threshold_pct=args.threshold,
            alpha=args.alpha,
            fail_on_regression=args.fail_on_regression,
            fmt=args.format,
            console=console,
            metric=args.metric,
            correction=args.correction,
            gate=args.gate,
            seed=args.seed,
        )
    raise AssertionError(f"unhandled command {args.command}")  # argparse guarantees a command


if __name__ == "__main__":
    sys.exit(main())
