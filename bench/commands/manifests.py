"""`python -m bench manifests NAME [-o DIR]`: print or write what creates NAME on a real cluster.

One command for several kinds, because a user asks "what do I apply?" for a target and for
the study's other cluster pieces alike. NAME is a target from bench.toml (its adapter
renders the files, with the training manifests beside them) or one of the names in
:data:`SPECIAL`, each rendered by the feature that owns it (webui, bench.shard, hpo,
pipeline); this module only prints or writes the files. Adding one is one entry in
:data:`SPECIAL`.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.commands.common import (
    Command,
    configured_target,
    csv_counts,
    csv_words,
    non_negative_int,
    positive_duration,
    positive_float,
    positive_int,
    stages_flag,
    sweep_request_fields,
)
from bench.config import BenchConfig, ConfigError
from bench.console import Console
from bench.emit import emit_files
from bench.hpo.run import write_hpo_manifests
from bench.pipeline.manifests import write_pipeline_manifests
from bench.run.request import RunRequest
from bench.shard.job import DEFAULT_START_IN_S, plan_loadgen_job
from bench.shard.job_render import render_loadgen_manifests
from targets.manifests import training_manifests
from webui.manifests import ManifestError, build_context_files, default_predict_url, render_ui_manifests

__all__ = [
    "LOADGEN_FLAGS",
    "MANIFESTS",
    "SPECIAL",
    "Special",
    "write_loadgen_manifests",
    "write_manifests",
    "write_ui_manifests",
]


@dataclass(frozen=True)
class Special:
    """A manifests NAME that is not a target: what it renders, and the function rendering it."""

    what: str
    write: Callable[[BenchConfig, argparse.Namespace, Console], int]


def _hpo(config: BenchConfig, args: argparse.Namespace, console: Console) -> int:
    return write_hpo_manifests(config, output=args.output, console=console)


def _pipeline(config: BenchConfig, args: argparse.Namespace, console: Console) -> int:
    return write_pipeline_manifests(config, output=args.output, console=console)


def _ui(config: BenchConfig, args: argparse.Namespace, console: Console) -> int:
    return write_ui_manifests(config, output=args.output, predict_url=args.predict_url, console=console)


def _loadgen(config: BenchConfig, args: argparse.Namespace, console: Console) -> int:
    if not args.subject:
        console.error(
            "usage: manifests loadgen TARGET --clients N [--step-interval S] [--pvc NAME] "
            "[--namespace NS] [--image IMG] [--start-in S]"
        )
        return 2
    if args.clients is None:
        console.error("manifests loadgen needs --clients N (the number of shard pods)")
        return 2
    request = RunRequest(  # the shards' `bench run`: these flags become [sweep] keys of their bench.toml
        targets=(args.subject,),
        **sweep_request_fields(args),
        clients=args.clients,
        step_interval_s=args.step_interval,
    )
    return write_loadgen_manifests(
        config,
        request,
        pvc=args.pvc,
        namespace=args.namespace,
        image=args.image,
        start_in_s=args.start_in,
        output=args.output,
        console=console,
    )


def write_manifests(config: BenchConfig, name: str, *, output: Path | None, console: Console) -> int:
    """Render the files that create ``name`` on a real host/cluster; print or write them."""
    target = configured_target(config, name)
    files = target.manifests()
    # The study's training outside Kubeflow: a Slurm script (flask), a Job into a PVC (k8s).
    files.update(
        training_manifests(
            target, model_table=tomllib.loads(config.source).get("model", {}), train_threads=config.model.torch_threads
        )
    )
    emit_files(files, output, console)
    if output is not None:
        console.info(f"{len(files)} files for {name} written to {output}")
    return 0


def write_ui_manifests(
    config: BenchConfig,
    *,
    output: Path | None,
    predict_url: str | None,
    console: Console,
) -> int:
    """Render the nginx image, Pod and LoadBalancer Service of the page; print or write them."""
    try:
        url = predict_url or default_predict_url(config.targets)
        files = render_ui_manifests(predict_url=url)
    except ManifestError as exc:
        console.error(str(exc))
        return 2
    if output is None:
        emit_files(files, None, console)
        console.info("(the page's static files are written too with -o DIR: the Dockerfile's build context)")
        return 0
    blobs = {name: text.encode("utf-8") for name, text in files.items()} | build_context_files()
    emit_files(blobs, output, console)
    console.info(f"{len(blobs)} files for the digit page written to {output} (proxying /api/predict to {url})")
    return 0


def write_loadgen_manifests(
    config: BenchConfig,
    request: RunRequest,
    *,
    pvc: str | None,
    namespace: str | None,
    image: str | None,
    start_in_s: float | None,
    output: Path | None,
    console: Console,
) -> int:
    """Render the ConfigMap, the Indexed Job and the collect pod of ``request``
    (:func:`bench.shard.job.plan_loadgen_job`); print them or write them to ``output``."""
    start_in = DEFAULT_START_IN_S if start_in_s is None else start_in_s
    try:
        job = plan_loadgen_job(config, request, pvc=pvc, namespace=namespace, image=image, start_in_s=start_in_s)
        files = render_loadgen_manifests(job)
    except ConfigError:
        raise
    except ValueError as exc:
        console.error(str(exc))
        return 2
    for note in job.notes:
        console.warn(note)
    emit_files(files, output, console)
    console.info(
        f"run {job.run_id}: {request.clients} shard(s) against {job.endpoint.url}, "
        f"starting at {time.strftime('%H:%M:%S UTC', time.gmtime(job.start_at))} "
        f"(in {start_in:.0f} s); steps in docs/loadgen-in-cluster.md and the files' headers"
    )
    return 0


SPECIAL: dict[str, Special] = {
    "hpo": Special("Katib Experiments", _hpo),
    "pipeline": Special("TFJob, InferenceService, pipeline IR", _pipeline),
    "ui": Special("the digit page", _ui),
    "loadgen": Special("then TARGET: the load generator as an Indexed Job in the cluster", _loadgen),
}
#: The flags of `manifests loadgen TARGET` (docs/loadgen-in-cluster.md), refused elsewhere.
LOADGEN_FLAGS = (
    "clients",
    "pvc",
    "namespace",
    "image",
    "start_in",
    "step_interval",
    "requests",
    "modes",
    "trials",
    "rate",
    "duration",
    "stages",
    "concurrency",
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    specials = ", ".join(f"'{name}' ({special.what})" for name, special in SPECIAL.items())
    parser.add_argument(
        "target", metavar="{TARGET," + ",".join(SPECIAL) + "}", help=f"a target name from bench.toml, or {specials}"
    )
    parser.add_argument("-o", "--output", type=Path, default=None, help="folder to write into (default: print)")
    parser.add_argument(
        "--predict-url",
        default=None,
        help="`manifests ui` only: the model URL nginx proxies /api/predict to "
        "(default: the first kserve target's cluster-local InferenceService URL)",
    )
    lg = parser.add_argument_group(
        "`manifests loadgen TARGET`: the load generator as an Indexed Job in the cluster (docs/loadgen-in-cluster.md)"
    )
    lg.add_argument("subject", nargs="?", default=None, metavar="TARGET", help="the target the shards load")
    lg.add_argument("--clients", type=positive_int, default=None, metavar="N", help="shard pods (parallelism)")
    lg.add_argument(
        "--step-interval",
        type=positive_float,
        default=None,
        metavar="S",
        help="seconds from one step's common start to the next (needed when the plan has several "
        "steps; longer than any step takes)",
    )
    lg.add_argument(
        "--pvc", default=None, help="PersistentVolumeClaim the shard runs are copied to (default: servebench-results)"
    )
    lg.add_argument("--namespace", default=None, help="namespace of the Job (default: the target's)")
    lg.add_argument("--image", default=None, help="image with servebench installed (default: [hpo] image)")
    lg.add_argument(
        "--start-in",
        type=positive_float,
        default=None,
        metavar="S",
        help="seconds from now to the shards' common start (default: 180)",
    )
    lg.add_argument("--requests", type=csv_counts, default=None, help="the shards' [sweep] n_requests, e.g. 64,128")
    lg.add_argument(
        "--modes",
        type=csv_words,
        default=None,
        metavar="{concurrent,rate}[,...]",
        help="the shards' [sweep] modes (sequential cannot be sharded)",
    )
    lg.add_argument("--trials", type=positive_int, default=None, help="the shards' [sweep] trials")
    lg.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        metavar="R",
        help="the shards' [sweep] rate_rps (the whole rate, split over the shards); implies --modes rate",
    )
    lg.add_argument(
        "--duration",
        type=positive_duration,
        default=None,
        metavar="D",
        help="the shards' [sweep] duration_s per rate step (seconds or 90s, 30m, 2h, 1h30m); implies --modes rate",
    )
    lg.add_argument(
        "--stages",
        type=stages_flag,
        default=None,
        metavar="D:RATE,...",
        help="the shards' [sweep] stages for each rate step (the whole rate, split over the shards), "
        "e.g. 2m:0-100,30m:100,2m:0; implies --modes rate (docs/soak.md)",
    )
    lg.add_argument(
        "--concurrency",
        type=non_negative_int,
        default=None,
        metavar="C",
        help="the shards' [sweep] concurrency (split over the shards)",
    )


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    if args.predict_url is not None and args.target != "ui":
        console.error("--predict-url belongs to `manifests ui` (the digit page's nginx proxy)")
        return 2
    if args.subject is not None and args.target != "loadgen":
        console.error(f"`manifests {args.target}` takes one name; `manifests loadgen TARGET` renders the load Job")
        return 2
    if args.target != "loadgen" and any(getattr(args, flag) is not None for flag in LOADGEN_FLAGS):
        console.error(
            "--clients, --step-interval, --pvc, --namespace, --image, --start-in and the plan flags "
            "(--requests, --modes, --trials, --rate, --duration, --stages, --concurrency) belong to "
            "`manifests loadgen TARGET`"
        )
        return 2
    if args.target in SPECIAL:
        return SPECIAL[args.target].write(config, args, console)
    return write_manifests(config, args.target, output=args.output, console=console)


MANIFESTS = Command(_add_arguments, _main)
