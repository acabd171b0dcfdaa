"""What `bench run` shows on the console: a line per step, the sweep's events, the Table-3-style tables.

Kept apart from :mod:`bench.run.session`: that module decides what runs and in which order;
this one only words and lays out what happened (the same rows the results folder holds),
so changing a line or a table never touches the run itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.capacity.show import print_capacity
from bench.console import Console, open_loop_text, saturation_warning, step_label
from bench.report.bounds import NO_BOUND, NO_VALUE, percentile_cell
from bench.report.flags import flag_legend, flag_sentences
from bench.report.runfacts import target_ceilings
from bench.report.tables import modes_in, table3_rows
from bench.report.trialnoise import ORDER_NOTES_INTRO, noise_notes
from bench.results import load_run
from bench.run.runner import RunEvents
from loadgen.live import LiveStats

__all__ = ["LONG_STEP_S", "answers_correct_text", "live_text", "print_table3", "run_events"]

#: A step shows its live figures on the progress line once it has run this long.
LONG_STEP_S = 5.0


def print_table3(run_dir: Path, console: Console) -> None:
    """The study's layout per mode: rows N, columns targets, cells total seconds.

    A cell of a step with failed requests carries ``✗failed/sent``; a step where every
    request failed shows ``failed: n/n class`` instead of a total; a saturated open-loop step
    carries ``⚠ saturated``. The marks used are explained, and the flagged steps named,
    below the tables.
    """
    run, capacity_shown = print_capacity(load_run(run_dir, with_requests=False), console)  # its own table
    if run.summary.empty:
        if not capacity_shown:
            console.warn("no step was measured: no table to print")
        return
    ceiling = run.meta.details.get("client_ceiling")
    modes = modes_in(run.summary)
    cells: list[str] = []
    for mode in modes:
        columns, rows = table3_rows(run.summary, mode, run.targets, ceiling, target_ceilings(run.meta.details))
        cells += [cell for row in rows for cell in row[1:]]
        console.table(
            f"Total time (s) to answer N requests, mode {mode} (run {run.run_id})",
            columns,
            [[_printable(cell, console) for cell in row] for row in rows],
        )
    if any("*" in cell for cell in cells):
        console.info("* throughput >= 50 % of the client's calibrated ceiling: the client may be the limit there")
    legend = flag_legend(cells)
    if legend:
        for line in legend:
            console.print(_printable(line, console))
        console.print("flagged steps:")
        for sentence in flag_sentences(run.summary, run.targets, modes):
            console.print(_printable("  " + sentence.replace("`", ""), console))
    _print_noise(run, console)


def _print_noise(run: Any, console: Console) -> None:
    """Steps out of order beyond the noise, then the one-trial caution (a warning: shown with --quiet too)."""
    caution, notes = noise_notes(run)
    if notes:
        console.print(ORDER_NOTES_INTRO)
        for note in notes:
            console.print(_printable("  " + note.replace("`", ""), console))
    if caution:
        console.warn(_plain(caution))


def _plain(text: str) -> str:
    """Markdown emphasis and code marks left out for the terminal."""
    return text.replace("**", "").replace("`", "")


def _printable(text: str, console: Console) -> str:
    """The flag marks, spelt in ASCII when the terminal's encoding cannot show them."""
    encoding = getattr(console.out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        return text.replace("✗", "x").replace("⚠", "!")


def run_events(console: Console, bar: Any) -> RunEvents:
    """The sweep's progress, shown as console lines and the progress bar."""
    return RunEvents(
        on_target_start=lambda name: console.info(f"[{name}] starting ..."),
        on_target_ready=lambda name, desc: console.info(f"[{name}] ready at {desc.get('base_url', '?')}"),
        on_progress=lambda key, done, total, live: bar.update(done, total, step_label(key) + live_text(live)),
        on_step=lambda row: _show_step(row, console),
        on_target_done=lambda o: (console.error if o.problem else console.info)(
            f"[{o.name}] {o.status}: {o.message or f'{o.steps} steps, {o.requests} requests'}"
        ),
    )


def live_text(live: LiveStats | None) -> str:
    """The progress line's live part for a long step (``""`` before :data:`LONG_STEP_S`).

    ``| offered 40.0, achieved 39.8 req/s, p50 12.3 ms, p99 45.6 ms (last 5 s), 0 errors, 1:23 elapsed, 0:37 left``
    -- rates and percentiles over the last seconds of completions (:mod:`loadgen.live`), errors
    since the step started; ``left`` only for a rate step (its schedule's end). ASCII only.
    """
    if live is None or not live.elapsed_s >= LONG_STEP_S:
        return ""
    parts = [
        f"offered {_rate(live.offered_rps)}, achieved {_rate(live.achieved_rps)} req/s",
        f"p50 {_ms(live.p50_s)}, p99 {_ms(live.p99_s)} (last {live.window_s:.0f} s)",
        f"{live.errors} error{'' if live.errors == 1 else 's'}",
        f"{_clock(live.elapsed_s)} elapsed" + (f", {_clock(live.remaining_s)} left" if live.remaining_s >= 0 else ""),
    ]
    return " | " + ", ".join(parts)


def _rate(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"


def _ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:.1f} ms"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _show_step(row: dict[str, Any], console: Console) -> None:
    """The step's line; a saturated rate step also gets a warning (shown even with --quiet)."""
    console.info(_step_line(row))
    warning = saturation_warning(row)
    if warning:
        console.warn(warning)


def _step_line(row: dict[str, Any]) -> str:
    """One step in a line; its p50 carries the 95 % bounds, so a small step's never looks exact."""
    p50_text = _p50_text(row)
    errors = f", errors {row['errors']} ({row['errors_by_class']})" if row.get("errors") else ""
    return (
        f"  {row['target']} {row['mode']} N={row['n_requests']} trial {row['trial']}: "
        f"total {row['total_s']:.4f} s, latency p50 {p50_text}, {row['throughput_rps']:.1f} req/s, "
        f"{_answers_text(row)}{errors}{open_loop_text(row)}"
    )


def _p50_text(row: dict[str, Any]) -> str:
    """``1.23 (1.20-1.31) ms``; ``n/a (5 answers: too few for a bound)``; ``-`` without answers.

    ASCII only: step lines go to whatever terminal runs the sweep.
    """
    cell = percentile_cell(row, "p50")
    if cell == NO_BOUND:
        n_ok = row.get("n_ok")
        return f"n/a ({n_ok} answer{'' if n_ok == 1 else 's'}: too few for a bound)"
    return cell if cell == NO_VALUE else cell.replace("–", "-") + " ms"


def _answers_text(row: dict[str, Any]) -> str:
    """MNIST's 'answers correct', or for other samples 'answers agreeing' (expected outputs)."""
    accuracy, agreement = row.get("accuracy"), row.get("agreement")
    if _number(accuracy) is None and _number(agreement) is not None:
        return f"answers agreeing {100.0 * _number(agreement):.1f} %"
    if _number(accuracy) is None and row.get("n_requests") and "agreement" in row:
        return "answers not compared (no expected outputs)"  # not MNIST: no digit, nothing expected
    return answers_correct_text(accuracy)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def answers_correct_text(accuracy: Any) -> str:
    """summary.csv's ``accuracy`` (correct answers / requests sent) in words: 'answers correct 99.0 %'.

    Not "accuracy 0.990", which reads like a request success rate."""
    try:
        value = float(accuracy)
    except (TypeError, ValueError):
        return "answers correct -"
    return "answers correct -" if value != value else f"answers correct {100.0 * value:.1f} %"
