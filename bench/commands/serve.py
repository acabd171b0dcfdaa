"""`python -m bench serve TARGET`: start one target's local stand-in in the foreground until Ctrl-C.

It prints the stand-in's URL and a curl line that sends it one real test image.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from bench.commands.common import Command, configured_target, serve_until_stopped
from bench.config import BenchConfig
from bench.console import Console
from bench.signals import on_signals
from bench.training import ensure_model_shown
from targets.base import Target, TargetError

__all__ = ["SERVE", "serve"]


def _curl_example(target: Target, config: BenchConfig, console: Console) -> None:
    """Write one real test image's request body to a file and show the curl that sends it."""
    from models.data import load_dataset

    split = load_dataset(config.model)
    try:
        request = target.encode(split.test_x[0])
    except TargetError as exc:  # a stand-in of another model (issue 24) has no MNIST request
        console.info(f"no curl example: {exc}")
        return
    body_path = (config.root / ".cache" / f"request-{target.name}.json").resolve()
    body_path.parent.mkdir(parents=True, exist_ok=True)
    body_path.write_bytes(request.body)
    headers = " ".join(f"-H '{k}: {v}'" for k, v in request.headers.items() if k.lower() == "content-type")
    console.print(
        f"try:  curl -s -X {request.method} {target.base_url}{request.path} {headers} --data-binary @{body_path}"
    )
    console.print(f"      (test image 0, label {int(split.test_y[0])})")


async def serve(config: BenchConfig, name: str, *, console: Console) -> int:
    """Start one target's local stand-in, print its URL, serve until Ctrl-C or SIGTERM."""
    target = configured_target(config, name)
    if target.is_remote:
        console.error(
            f"target {name!r} is remote ({target.base_url}); `serve` only starts local stand-ins "
            "(remove `endpoint` from its table to get one)"
        )
        return 2
    artifacts = ensure_model_shown(config, console)
    console.info(f"model: {artifacts.dir}")

    stop = asyncio.Event()
    main_task = asyncio.current_task()
    serving = False
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()
        if not serving and main_task is not None:
            main_task.cancel()  # still starting: abandon the start, cleanup runs in __aexit__

    with on_signals(on_signal):
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


# --- `python -m bench serve TARGET` (registered in bench/cli.py) ---


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a target name from bench.toml (`python -m bench targets` lists them)")


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return asyncio.run(serve(config, args.target, console=console))


SERVE = Command(_add_arguments, _main)
