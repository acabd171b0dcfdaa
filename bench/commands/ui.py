"""`python -m bench ui`: serve the study's digit-recognition page (section 5.4) for one target.

This is the CLI side -- it picks the target from bench.toml, starts (and always stops) its
stand-in, runs the page's server until Ctrl-C and prints; :mod:`webui` holds the page, the
server and the manifests (`manifests ui`: :mod:`bench.commands.manifests`) and never prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from bench.commands.common import Command, serve_until_stopped
from bench.config import BenchConfig, ConfigError, target_context
from bench.console import Console
from bench.redact_secrets import redact_tree, redactor_for
from bench.signals import on_signals
from bench.training import ensure_model_shown
from targets.base import TargetError
from targets.registry import build_target, target_spec
from webui.pageconfig import UnsupportedTarget, api_mode_for_target
from webui.server import create_app, start_server

__all__ = ["UI", "default_ui_target", "ui"]


def default_ui_target(config: BenchConfig) -> str:
    """The first ``flask`` target in bench.toml (the study's page called the Flask app), else the first target."""
    for name, spec in config.targets.items():
        if spec.adapter == "flask":
            return name
    if not config.targets:
        raise ConfigError("targets", "no targets configured in bench.toml: the page needs one to ask")
    return next(iter(config.targets))


async def ui(
    config: BenchConfig,
    *,
    target_name: str | None,
    port: int,
    start: bool,
    console: Console,
) -> int:
    """Start the target's stand-in, serve the page, wait for Ctrl-C; 0 on a clean stop.

    A remote target is only checked for readiness; with ``start`` False nothing is
    started or contacted and the page's proxy answers 502.  Exit codes: 1 when the
    target cannot start or dies, or the port is taken; 2 on bad input; 130 when
    interrupted while starting.

    Everything started here is stopped on the way out, also when start-up fails or the
    user interrupts it half-way.
    """
    name = target_name or default_ui_target(config)
    target_spec(config.targets, name)  # ConfigError naming the configured targets
    if not 0 <= port <= 65535:
        console.error(f"--port must be 0..65535 (0 = a free port), got {port}")
        return 2
    context = target_context(config)
    target = build_target(config.targets[name], context)
    redactor = redactor_for(config, console)  # the page's answers and this console hold no secret
    try:
        api_mode_for_target(target)  # refuse an unsupported adapter before starting anything
    except UnsupportedTarget as exc:
        console.error(str(exc))
        return 2

    stop = asyncio.Event()
    main_task = asyncio.current_task()
    starting = True

    def on_signal(_sig: object) -> None:
        stop.set()
        if starting and main_task is not None:
            main_task.cancel()  # abandon a slow start; the finally blocks stop what started

    with on_signals(on_signal):
        try:
            # Everything entered on the stack is undone on the way out, in reverse order:
            # the page's server first, then the target (`async with target`, as `bench serve`).
            async with contextlib.AsyncExitStack() as stack:
                stack.callback(redact_tree, Path(context.log_dir), redactor)  # last: after the stand-in stopped
                if start:
                    if not target.is_remote:
                        ensure_model_shown(config, console)
                    what = "checking remote" if target.is_remote else "starting"
                    console.info(f"{what} {name} ({target.adapter}) ...")
                    stack.callback(console.info, f"stopped {name}")
                    await stack.enter_async_context(target)  # a failed start stops what it spawned
                    console.info(f"{name} is answering at {target.base_url}")
                else:
                    console.warn(f"--no-start: {name} is not started; the page's predict button stays off")
                try:
                    runner, url = await start_server(create_app(target, forward=start, redactor=redactor), port=port)
                except OSError as exc:
                    console.error(f"cannot serve the page on 127.0.0.1:{port}: {exc.strerror or exc}")
                    return 1
                stack.push_async_callback(runner.cleanup)
                starting = False
                console.print(f"digit page for {name}: {url}")
                console.info("press Ctrl-C to stop")
                code = await serve_until_stopped(target, stop)
                if code:
                    console.error(f"{name}: a stand-in process exited on its own; stopping")
                return code
        except asyncio.CancelledError:
            console.info("interrupted while starting; stopped what was started")
            return 130
        except TargetError as exc:
            console.error(str(exc))
            return 1


# --- `python -m bench ui` (registered in bench/cli.py; `manifests ui` is in bench/commands/manifests.py) ---


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=None, help="target name (default: the first flask target)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port on 127.0.0.1, 0 = a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--no-start",
        action="store_true",
        help="do not start or contact the target: serve the page only (predictions off)",
    )


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return asyncio.run(ui(config, target_name=args.target, port=args.port, start=not args.no_start, console=console))


UI = Command(_add_arguments, _main)
