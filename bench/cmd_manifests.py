"""`python -m bench manifests NAME [-o DIR]`: what creates NAME on a real cluster.

Why one command for several kinds: a user asks "what do I apply?" for a target and for
the study's other cluster pieces alike. NAME is a target from bench.toml (its adapter
renders the files) or one of the names in :data:`SPECIAL`, each rendered by the module
that owns it. Adding one is one entry in :data:`SPECIAL`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.cli_args import Command, csv_counts, csv_words, non_negative_int, positive_float, positive_int
from bench.config import BenchConfig
from bench.console import Console

__all__ = ["LOADGEN_FLAGS", "MANIFESTS", "SPECIAL", "Special"]


@dataclass(frozen=True)
class Special:
    """A manifests NAME that is not a target: what it renders, and the function rendering it."""

    what: str
    write: Callable[[BenchConfig, argparse.Namespace, Console], int]


def _hpo(config: BenchConfig, args: argparse.Namespace, console: Console) -> int:
    from bench.hpo.run import write_hpo_manifests

    return write_hpo_manifests(config, output=args.output, console=console)


def _pipeline(config: BenchConfig, args: argparse.Namespace, console: Console) -> int:
    from bench.pipeline.manifests import write_pipeline_manifests

    return write_pipeline_manifests(config, output=args.output, console=console)


def _ui(config: BenchConfig, args: argparse.Namespace, console: Console) -> int:
    from bench.cmd_ui import write_ui_manifests

    return write_ui_manifests(config, output=args.output, predict_url=args.predict_url, console=console)


def _loadgen(config: BenchConfig, args: argparse.Namespace, console: Console) -> int:
    from bench.cmd_loadgen_manifests import write_loadgen_manifests

    sweep = {key: value for key, value in (
        ("n_requests", args.requests), ("modes", args.modes), ("trials", args.trials), ("rate_rps", args.rate),
        ("duration_s", args.duration), ("concurrency", args.concurrency)) if value is not None}
    if (args.rate is not None or args.duration is not None) and args.modes is None:
        sweep["modes"] = ["rate"]  # as `bench run --rate/--duration`: they imply rate mode
    return write_loadgen_manifests(config, target=args.subject, clients=args.clients, pvc=args.pvc,
                                   namespace=args.namespace, image=args.image, start_in_s=args.start_in,
                                   step_interval_s=args.step_interval, output=args.output, console=console,
                                   sweep=sweep)


SPECIAL: dict[str, Special] = {
    "hpo": Special("Katib Experiments", _hpo),
    "pipeline": Special("TFJob, InferenceService, pipeline IR", _pipeline),
    "ui": Special("the digit page", _ui),
    "loadgen": Special("then TARGET: the load generator as an Indexed Job in the cluster", _loadgen),
}
#: The flags of `manifests loadgen TARGET` (docs/loadgen-in-cluster.md), refused elsewhere.
LOADGEN_FLAGS = ("clients", "pvc", "namespace", "image", "start_in", "step_interval",
                 "requests", "modes", "trials", "rate", "duration", "concurrency")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    specials = ", ".join(f"'{name}' ({special.what})" for name, special in SPECIAL.items())
    parser.add_argument("target", metavar="{TARGET," + ",".join(SPECIAL) + "}",
                        help=f"a target name from bench.toml, or {specials}")
    parser.add_argument("-o", "--output", type=Path, default=None, help="folder to write into (default: print)")
    parser.add_argument("--predict-url", default=None,
                        help="`manifests ui` only: the model URL nginx proxies /api/predict to "
                             "(default: the first kserve target's cluster-local InferenceService URL)")
    lg = parser.add_argument_group("`manifests loadgen TARGET`: the load generator as an Indexed Job in the "
                                   "cluster (docs/loadgen-in-cluster.md)")
    lg.add_argument("subject", nargs="?", default=None, metavar="TARGET", help="the target the shards load")
    lg.add_argument("--clients", type=positive_int, default=None, metavar="N", help="shard pods (parallelism)")
    lg.add_argument("--step-interval", type=positive_float, default=None, metavar="S",
                    help="seconds from one step's common start to the next (needed when the plan has several "
                         "steps; longer than any step takes)")
    lg.add_argument("--pvc", default=None, help="PersistentVolumeClaim the shard runs are copied to "
                    "(default: servebench-results)")
    lg.add_argument("--namespace", default=None, help="namespace of the Job (default: the target's)")
    lg.add_argument("--image", default=None, help="image with servebench installed (default: [hpo] image)")
    lg.add_argument("--start-in", type=positive_float, default=None, metavar="S",
                    help="seconds from now to the shards' common start (default: 180)")
    lg.add_argument("--requests", type=csv_counts, default=None, help="the shards' [sweep] n_requests, e.g. 64,128")
    lg.add_argument("--modes", type=csv_words, default=None, metavar="{concurrent,rate}[,...]",
                    help="the shards' [sweep] modes (sequential cannot be sharded)")
    lg.add_argument("--trials", type=positive_int, default=None, help="the shards' [sweep] trials")
    lg.add_argument("--rate", type=positive_float, default=None, metavar="R",
                    help="the shards' [sweep] rate_rps (the whole rate, split over the shards); implies --modes rate")
    lg.add_argument("--duration", type=positive_float, default=None, metavar="S",
                    help="the shards' [sweep] duration_s per rate step; implies --modes rate")
    lg.add_argument("--concurrency", type=non_negative_int, default=None, metavar="C",
                    help="the shards' [sweep] concurrency (split over the shards)")


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    if args.predict_url is not None and args.target != "ui":
        console.error("--predict-url belongs to `manifests ui` (the digit page's nginx proxy)")
        return 2
    if args.subject is not None and args.target != "loadgen":
        console.error(f"`manifests {args.target}` takes one name; `manifests loadgen TARGET` renders the load Job")
        return 2
    if args.target != "loadgen" and any(getattr(args, flag) is not None for flag in LOADGEN_FLAGS):
        console.error("--clients, --step-interval, --pvc, --namespace, --image, --start-in and the plan flags "
                      "(--requests, --modes, --trials, --rate, --duration, --concurrency) belong to "
                      "`manifests loadgen TARGET`")
        return 2
    if args.target in SPECIAL:
        return SPECIAL[args.target].write(config, args, console)
    from bench.cmd_targets import write_manifests

    return write_manifests(config, args.target, output=args.output, console=console)


MANIFESTS = Command(_add_arguments, _main)
