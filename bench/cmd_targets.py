"""`bench targets`, `bench serve TARGET`, `bench manifests TARGET`: looking at targets.

Why together: all three build targets from bench.toml the same way (adapter resolved,
table validated, a :class:`targets.base.TargetContext` from the config) and only differ in
what they do with them: list, run one in the foreground, or render its deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.cli_args import Command
from bench.config import BenchConfig, ConfigError
from bench.console import Console
from ground.cpus import plan_cpus
from targets.base import Target, TargetContext, TargetError
from targets.registry import build_target, target_spec

__all__ = [
    "SERVE",
    "TARGETS",
    "emit_files",
    "ensure_model_shown",
    "list_targets",
    "serve",
    "serve_until_stopped",
    "standin_context",
    "write_manifests",
]


def standin_context(config: BenchConfig, name: str) -> TargetContext:
    """The context a command gives target ``name``: model folder, log folder, stand-in CPUs."""
    return TargetContext(
        artifacts_dir=config.artifacts_dir,
        log_dir=(config.root / ".cache" / "logs").resolve(),
        cpus=plan_cpus(config.loadgen.cpus).standins,
        config_dir=config.root,
    )


def _build(config: BenchConfig, name: str) -> Target:
    target_spec(config.targets, name)  # ConfigError naming the configured targets
    return build_target(config.targets[name], standin_context(config, name))


def list_targets(config: BenchConfig, *, console: Console) -> int:
    """Print one row per configured target: name, adapter, local/remote, URL, details."""
    rows = []
    for name, spec in config.targets.items():
        target = _build(config, name)
        facts = target.describe()
        url = target.base_url if target.is_remote else "(started on demand)"
        details = ", ".join(
            f"{key}={facts[key]}" for key in ("model_loading", "workers", "replicas", "protocol") if key in facts
        )
        rows.append((name, spec.adapter, "remote" if target.is_remote else "local", url, details))
    if not rows:
        console.warn("no targets configured in bench.toml")
        return 0
    console.table("targets", ("name", "adapter", "mode", "URL", "settings"), rows)
    return 0


def _curl_example(target: Target, config: BenchConfig, console: Console) -> None:
    """Write one real test image's request body to a file and show the curl that sends it."""
    from models.data import load_dataset

    split = load_dataset(config.model)
    request = target.encode(split.test_x[0])
    body_path = (config.root / ".cache" / f"request-{target.name}.json").resolve()
    body_path.parent.mkdir(parents=True, exist_ok=True)
    body_path.write_bytes(request.body)
    headers = " ".join(f"-H '{k}: {v}'" for k, v in request.headers.items() if k.lower() == "content-type")
    console.print(
        f"try:  curl -s -X {request.method} {target.base_url}{request.path} {headers} "
        f"--data-binary @{body_path}"
    )
    console.print(f"      (test image 0, label {int(split.test_y[0])})")


def ensure_model_shown(config: BenchConfig, console: Console) -> Any:
    """The trained model's artifacts, training it first (with a progress bar) when missing."""
    from models.artifacts import ensure_model  # lazy: torch

    with console.progress("training the model (once)") as progress:
        return ensure_model(
            config.model,
            config.artifacts_dir,
            on_progress=lambda epoch, epochs, _loss, _acc: progress.update(epoch, epochs),
            on_stage=console.info,
            root=config.root,
        )


async def serve(config: BenchConfig, name: str, *, console: Console) -> int:
    """Start one target's local stand-in, print its URL, serve until Ctrl-C or SIGTERM."""
    target = _build(config, name)
    if target.is_remote:
        console.error(
            f"target {name!r} is remote ({target.base_url}); `serve` only starts local stand-ins "
            "(remove `endpoint` from its table to get one)"
        )
        return 2
    artifacts = ensure_model_shown(config, console)
    console.info(f"model: {artifacts.dir}")

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    serving = False
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()
        if not serving and main_task is not None:
            main_task.cancel()  # still starting: abandon the start, cleanup runs in __aexit__

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        console.info(f"starting {name} ({target.adapter}) ...")
        async with target:
            serving = True
            console.print(f"{name} is serving at {target.base_url}")
            _curl_example(target, config, console)
            console.info("press Ctrl-C to stop")
            code = await serve_until_stopped(target, stop)
            if code:
                console.error(f"{name}: a stand-in process exited on its own; stopping")
        console.info(f"stopped {name}" + (f" ({received[0]})" if received else ""))
        return code
    except asyncio.CancelledError:
        console.info(f"interrupted while starting {name}; stopped")
        return 130
    except TargetError as exc:
        console.error(str(exc))
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve_until_stopped(target: Target, stop: asyncio.Event) -> int:
    """Wait for a signal; return 1 early if the stand-in's processes die by themselves."""
    processes = list(getattr(target, "processes", []) or [])
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass
        if any(getattr(p, "returncode", None) is not None for p in processes):
            return 1
    return 0


def emit_files(files: Mapping[str, str | bytes], output: Path | None, console: Console) -> None:
    """Print rendered files, or write them under ``output`` (sub-folders created).

    Printed, an all-YAML set becomes one multi-document stream (``| kubectl apply -f -``
    works); a mixed set (a Dockerfile, nginx.conf) gets a ``# --- name ---`` line per file.
    Binary contents are only written, never printed.
    """
    if output is None:
        texts = {name: data for name, data in files.items() if isinstance(data, str)}
        if all(name.endswith((".yaml", ".yml")) for name in texts):
            console.print("\n---\n".join(text.rstrip("\n") for text in texts.values()))
            return
        for filename, text in texts.items():
            console.print(f"# --- {filename} ---")
            console.print(text.rstrip("\n"))
        return
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for filename, data in files.items():
        path = output / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        console.print(str(path))


def write_manifests(config: BenchConfig, name: str, *, output: Path | None, console: Console) -> int:
    """Render the files that create ``name`` on a real host/cluster; print or write them."""
    import tomllib

    from targets.manifests import training_manifests

    target = _build(config, name)
    files = target.manifests()
    # The study's training outside Kubeflow: a Slurm script (flask), a Job into a PVC (k8s).
    files.update(training_manifests(target, model_table=tomllib.loads(config.source).get("model", {}),
                                    train_threads=config.model.torch_threads))
    emit_files(files, output, console)
    if output is not None:
        console.info(f"{len(files)} files for {name} written to {output}")
    return 0


# --- `python -m bench targets` and `python -m bench serve TARGET` (registered in bench/cli.py) ---


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """`targets` takes no flags of its own."""


def _list_main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return list_targets(config, console=console)


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a target name from bench.toml (`python -m bench targets` lists them)")


def _serve_main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return asyncio.run(serve(config, args.target, console=console))


TARGETS = Command(_no_arguments, _list_main)
SERVE = Command(_serve_arguments, _serve_main)
