"""`python -m bench check-target NAME`: run the target contract suite against any configured adapter.

Why a command: the contract (:mod:`targets.contract.suite`) is what every adapter must pass,
and an adapter written outside servebench (``adapter = "mypkg.mod:MyTarget"`` or an
entry point) must be checkable without editing servebench's tests.  This module is the
CLI side only: it builds the target from bench.toml, makes sure the model exists, picks
the test images, and prints each check's result as it comes; the checks themselves never
print.

Exit codes: 0 when every check passed (skips allowed), 1 when one failed, 2 on bad input
(an unknown target, a remote one, a bad ``--min-agreement``).
"""

from __future__ import annotations

import argparse

from bench.commands.common import Command, configured_target, csv_counts, positive_int
from bench.config import BenchConfig
from bench.console import Console
from bench.training import ensure_model_shown
from targets.contract.load import BURST_SIZES
from targets.contract.suite import CheckResult, Samples, reference_digits, run_contract
from targets.registry import target_spec

__all__ = ["CHECK_TARGET", "DEFAULT_IMAGES", "check_target"]

#: Test images sent by the ``real-images`` check (the in-repo suite's number).
DEFAULT_IMAGES = 100

_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}


def _samples(config: BenchConfig, n_images: int, console: Console) -> Samples:
    """The first ``n_images`` held-out test images, their labels and the in-process model's digits."""
    from models.data import load_dataset

    artifacts = ensure_model_shown(config, console)
    split = load_dataset(config.model, root=config.root)
    images, labels = split.test_x[:n_images], split.test_y[:n_images]
    return Samples(images, labels, reference_digits(artifacts.torchscript_path, images))


def check_target(
    config: BenchConfig,
    name: str,
    *,
    min_agreement: float = 1.0,
    n_images: int = DEFAULT_IMAGES,
    burst_sizes: tuple[int, ...] = BURST_SIZES,
    console: Console,
) -> int:
    """Start target ``name``'s local stand-in, run the contract, print one line per check.

    The load checks give each request the benchmark's own deadline (``[loadgen] timeout_s``).
    """
    target_spec(config.targets, name)  # ConfigError naming the configured targets
    if not 0.0 <= min_agreement <= 1.0:
        console.error(f"--min-agreement must be a share in [0, 1], got {min_agreement:g}")
        return 2
    target = configured_target(config, name)  # validates the table
    if target.is_remote:
        console.error(
            f"target {name!r} is remote ({target.base_url}): check-target starts a local stand-in and sends it "
            "bad input and 8 MiB bodies; remove `endpoint` from its table to check the adapter"
        )
        return 2
    samples = _samples(config, n_images, console)
    if len(samples.images) < n_images:
        console.warn(f"the test split has only {len(samples.images)} images; sending those")
    console.info(f"checking {name} (adapter {config.targets[name].adapter}) against the target contract ...")

    def show(result: CheckResult) -> None:
        console.print(f"{_MARK[result.status]}  {result.name:<30} {result.detail}")

    results = run_contract(
        target,
        samples,
        min_agreement=min_agreement,
        on_result=show,
        timeout_s=config.loadgen.timeout_s,
        burst_sizes=burst_sizes,
    )
    failed = [r.name for r in results if not r.passed]
    skipped = sum(r.status == "skip" for r in results)
    console.print(f"{name}: {len(results) - len(failed) - skipped} passed, {len(failed)} failed, {skipped} skipped")
    if failed:
        console.error(f"{name} does not meet the target contract: {', '.join(failed)} failed")
        return 1
    return 0


# --- `python -m bench check-target` (registered in bench/cli.py) ---


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Start TARGET's local stand-in and check it against the contract every adapter passes "
        "(docs/adding-a-target.md); exit 1 when a check fails."
    )
    p.add_argument("target", help="a target name from bench.toml (any adapter: built-in, module:Class, entry point)")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=1.0,
        metavar="SHARE",
        help="share of test images whose digit must equal the in-process TorchScript model's "
        "(default: %(default)s; 0.99 for a server of the SavedModel export)",
    )
    p.add_argument(
        "--images", type=positive_int, default=DEFAULT_IMAGES, help="test images sent (default: %(default)s)"
    )
    p.add_argument(
        "--burst",
        type=csv_counts,
        default=list(BURST_SIZES),
        metavar="N[,N...]",
        help="connections opened at once by the burst:N checks (default: "
        f"{','.join(map(str, BURST_SIZES))}, the study's largest concurrent steps)",
    )


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return check_target(
        config,
        args.target,
        min_agreement=args.min_agreement,
        n_images=args.images,
        burst_sizes=tuple(args.burst),
        console=console,
    )


CHECK_TARGET = Command(_add_arguments, _main)
