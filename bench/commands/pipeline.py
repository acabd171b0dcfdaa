"""`python -m bench pipeline run|compile` (`run pipeline` = `pipeline run`): the command's flags.

argparse stays here; a local run is :func:`bench.pipeline.local_run.run_pipeline` (kfp.local),
a run on a target's Kubeflow :func:`bench.pipeline.remote_run.run_remote_pipeline`, and
``compile`` :func:`bench.pipeline.local_run.compile_pipeline`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import Command, choices_metavar
from bench.config import BenchConfig
from bench.console import Console
from bench.pipeline import local_run, remote_run  # called through the modules: one place to patch in tests
from models.pipeline.registry import PIPELINES

__all__ = ["PIPELINE"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The study's Kubeflow pipelines: servebench (E2E, Table 5) and custom (its custom model, "
        "Table 4). See docs/pipeline.md and docs/remote-pipelines.md."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="{run,compile}")
    run = actions.add_parser(
        "run",
        help="run a pipeline via kfp.local, or on a target's Kubeflow (also spelt `python -m bench run pipeline`)",
    )
    _add_pipeline_flag(run)
    run.add_argument(
        "--target",
        default=None,
        help="submit to this target's Kubeflow Pipelines API (its kfp_endpoint) instead of kfp.local",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for the remote run (default: the target's kfp_timeout_s)",
    )
    run.add_argument("--run-id", default=None, help="name of the results folder (default: time-based)")
    run.add_argument("--no-report", action="store_true", help="skip writing the report (local runs)")
    run.set_defaults(pipeline_main=_run_main)
    compile_ = actions.add_parser("compile", help="write a pipeline's KFP IR YAML")
    compile_.add_argument(
        "-o", "--output", type=Path, default=None, help="IR YAML file to write (default: PIPELINE-pipeline.yaml)"
    )
    _add_pipeline_flag(compile_)
    compile_.set_defaults(pipeline_main=_compile_main)


def _add_pipeline_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipeline",
        default="servebench",
        metavar=choices_metavar(PIPELINES),
        help="servebench (E2E, Table 5) or custom (the study's custom model, Table 4; default: %(default)s)",
    )


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return args.pipeline_main(args, config, console)


def _run_main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    if args.target:
        return remote_run.run_remote_pipeline(
            config,
            target=args.target,
            pipeline=args.pipeline,
            run_id=args.run_id,
            timeout_s=args.timeout,
            console=console,
        )
    if args.timeout is not None:
        console.error("--timeout is the wait for a remote run: give --target NAME too")
        return 2
    return local_run.run_pipeline(
        config, pipeline=args.pipeline, run_id=args.run_id, console=console, write_report=not args.no_report
    )


def _compile_main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    try:
        path = local_run.compile_pipeline(args.output or Path(f"{args.pipeline}-pipeline.yaml"), pipeline=args.pipeline)
    except ValueError as exc:
        console.error(str(exc))
        return 2
    console.print(f"wrote {path}")
    return 0


PIPELINE = Command(_add_arguments, _main)
