"""A/A study: what `bench compare --fail-on-regression` says about identical runs (issue 21).

    python benchmarks/aa_study.py record --dir DIR [--pairs 32] [--trials 3] [--requests 1,4,16,64]
                                         [--targets greene-linserv k8s-ibm kubeflow-gcp kubeflow-ibm]
    python benchmarks/aa_study.py analyze --dir DIR [--out benchmarks/results/aa_study]

Why two steps: recording is the expensive part (real stand-ins, minutes per pair) and the
analysis must be re-runnable on the same runs when the comparison's rules change.

``record``: pair ``i`` is two identical back-to-back `python -m bench run TARGET` of one
target (targets in rotation, so the pairs spread over all four stand-ins), each run in its
own process with the default trial design (every trial a fresh start of the stand-in).
Each pair is compared **once** (A -> B): B -> A is the other tail of the same interval,
not a second independent test (issue 21: "0 false alarms in 20" was 10 pairs). The load
average before and after each run is kept in DIR/pairs.jsonl. Re-running resumes.

``analyze``: `bench compare A B --fail-on-regression --format csv` on every recorded pair;
counts exit 1 (false alarm: nothing changed), exit 3 (cannot judge) and exit 0, the 95 %
Clopper-Pearson interval of the false-alarm rate, how often the per-target interval
contains 1 (coverage on real pairs), and per target the smallest slow-down the runs could
have detected. Written to OUT.md and OUT.csv with the command, date, commit and loads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study_common import Scratch, loadavg, loaded, study_header, write_study

from bench.console import Console

TARGETS = ["greene-linserv", "k8s-ibm", "kubeflow-gcp", "kubeflow-ibm"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A/A study of bench compare (issue 21).")
    sub = p.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record", help="record pairs of identical runs")
    rec.add_argument("--dir", type=Path, required=True, help="folder for the runs (kept)")
    rec.add_argument("--pairs", type=int, default=32)
    rec.add_argument("--trials", type=int, default=3)
    rec.add_argument("--targets", nargs="+", default=TARGETS)
    rec.add_argument("--requests", default="1,4,16,64")
    rec.add_argument("--trial-design", default="restart", choices=("restart", "within-run"))
    rec.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "bench.toml")
    rec.add_argument("--stop-at", default=None, help="UTC HH:MM: start no pair after it")
    ana = sub.add_parser("analyze", help="compare every recorded pair")
    ana.add_argument("--dir", type=Path, required=True)
    ana.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "aa_study")
    ana.add_argument("--compare-args", default="", help="extra `bench compare` arguments")
    return p


def _past(stop_at: str | None) -> bool:
    if not stop_at:
        return False
    now = time.strftime("%H:%M", time.gmtime())
    return now >= stop_at


def record(args: argparse.Namespace, console: Console) -> int:
    args.dir.mkdir(parents=True, exist_ok=True)
    scratch = Scratch(config=args.config, keep=True, directory=args.dir.resolve())
    config = scratch.write_config("aa")
    log = args.dir / "pairs.jsonl"
    done = {json.loads(line)["pair"] for line in log.read_text().splitlines()} if log.is_file() else set()
    for pair in range(args.pairs):
        if pair in done:
            continue
        if _past(args.stop_at):
            console.info(f"stop time {args.stop_at} UTC reached after {len(done)} pairs")
            break
        target = args.targets[pair % len(args.targets)]
        entry = {
            "pair": pair,
            "target": target,
            "trials": args.trials,
            "requests": args.requests,
            "trial_design": args.trial_design,
            "runs": [],
        }
        for side in ("a", "b"):
            run_id = f"aa-{pair:02d}-{side}"
            shutil.rmtree(scratch.directory / "results" / run_id, ignore_errors=True)  # a pair cut off before
            before = loadavg()
            started = time.monotonic()
            code = scratch.run(
                config,
                run_id,
                targets=[target],
                requests=args.requests,
                trials=args.trials,
                modes=None,
                extra=["--trial-design", args.trial_design],
            )
            entry["runs"].append(
                {
                    "run_id": run_id,
                    "exit": code,
                    "load_before": before,
                    "load_after": loadavg(),
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        with log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
        done.add(pair)
        console.info(
            f"pair {pair} ({target}) recorded: {[r['seconds'] for r in entry['runs']]} s, "
            f"load {entry['runs'][-1]['load_after']}"
        )
    return 0


def analyze(args: argparse.Namespace, console: Console) -> int:
    from study_analysis import aa_rows, aa_summary

    scratch = Scratch(keep=True, directory=args.dir.resolve())
    config = args.dir / "aa.toml"
    pairs = [json.loads(line) for line in (args.dir / "pairs.jsonl").read_text().splitlines()]
    rows = aa_rows(scratch, config, pairs, args.compare_args.split())
    loads = [r["load_before"] for p in pairs for r in p["runs"]] + [r["load_after"] for p in pairs for r in p["runs"]]
    label = "loaded machine" if loaded(*loads) else "quiet machine (load1 <= 1)"
    header = study_header(
        "python benchmarks/aa_study.py analyze --dir DIR "
        f"(recorded with: record --pairs {len(pairs)} --trials {pairs[0]['trials']} --requests "
        f"{pairs[0]['requests']} --trial-design {pairs[0]['trial_design']})",
        label,
        loads,
    )
    md, csv_path = write_study(args.out, header, aa_summary(rows), rows)
    console.print(md.read_text())
    console.print(f"wrote {md} and {csv_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    return record(args, console) if args.action == "record" else analyze(args, console)


if __name__ == "__main__":
    sys.exit(main())
