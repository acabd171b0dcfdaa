"""Capacity under a latency objective, with a stated confidence: a pure search driver.

Why pure: the search decides which rates are offered and what the reported capacity is,
so its logic must be testable with deterministic fake probes -- no clock, no network, no
printing. The caller supplies ``probe(spec) -> ProbeOutcome`` (an async callable that
really measures, or a model of a server in tests); elapsed time is the sum of the
outcomes' own ``duration_s``, never read from a clock here.

What a rate's verdict means (:mod:`loadgen.slo_evidence`): the objective "pq <= bound"
is **met** at a rate when the number h of successful requests over the bound out of n is
so small that a server whose true exceedance rate is 1 - q would produce it with
probability <= delta (a one-sided binomial test, as MLPerf Inference LoadGen's early
stopping); **violated** when h is so large that a server meeting the objective would
produce it with probability <= delta; else **undecided**, and the probe is extended by
further *looks* (up to ``max_looks``, Bonferroni: each look at delta / max_looks). A rate
still undecided after its last look is not met -- never rounded to met. A probe also
violates, without any test, when the open loop was ``saturated`` (it did not keep up),
when any request failed, or when none succeeded.

The search keeps a **bracket**: the highest rate *met* and the lowest rate above it that
was *violated*. Rates left undecided inside it are where the objective's share of slow
requests is too close to 1 - q for the budget to tell; they narrow nothing.

1. **Ramp**: offer ``start_rps``, then multiply by ``growth`` until a rate is violated
   (an undecided rate does not end the ramp: it says neither side). The ramp never offers
   more than ``max_rate_rps`` (politeness cap or client ceiling); while no rate is met,
   the ramp goes *down* by ``growth`` from the lowest rate tried (by ``sqrt(growth)``
   when that rate was undecided: the knee is near it).
2. **Bisect** the bracket (geometric midpoints) until ``violated / met <= 1 + precision``.
   When undecided rates sit inside it, the wider of the two gaps at its ends -- from the
   met rate to the first undecided one, from the last undecided one to the violated rate
   -- is split, so every probe can still move an end; the search stops early when both
   gaps are within ``sqrt(1 + precision)`` (nothing left a probe could settle).
3. **Confirm**: a fresh probe (its own looks) at the found rate. **VALID** when it is
   met at the same confidence, **INVALID** when it is violated, **UNCONFIRMED** when it
   stays undecided or did not fit. Because the confirmation is new data tested at 1 -
   delta, a server that violates the objective at the found rate is called VALID with
   probability <= delta, however many rates the search tried before.

Why the upper end is a *violated* rate, not any rate not met: by monotonicity of the
latency in the rate, the capacity (the rate where the true pq crosses the bound) lies in
[met, violated] unless one of the two verdicts is wrong -- each wrong with probability <=
delta --, so the bracket is a confidence interval of the capacity and its width says how
sure the answer is. An earlier driver bisected [met, not met]: an undecided rate closed
the bracket, so the search stopped wherever the budget first failed to decide -- 14-65 %
under the stand-ins' measured knees (benchmarks/results/knee_rate_runs.md).

Caps: at most ``max_probes`` probes -- every look is a probe, one is kept for the
confirmation's first look --, at most ``max_requests`` requests (the budget: evidence is
counted in requests, so a slow target gets the same statistical reach as a fast one,
only over more seconds), and ``max_seconds`` of probing (a wall-clock safety cap). A
look starts only if its requests and its planned length, plus -- for a search probe --
every look the confirmation may take, fit in what is left of both. A probe marked ``fatal`` (the
target stopped answering) ends the search at once. A capacity at or above half the
client's calibrated ceiling is flagged ``client_bound``.

Repeatability: the driver is deterministic given its probes; every probe carries a seed
derived from ``(seed, probe index)``, which the caller uses for the Poisson schedule.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from loadgen.capacity_types import (
    CLIENT_BOUND_FRACTION,
    INVALID,
    NOT_FOUND,
    UNCONFIRMED,
    VALID,
    VERDICTS,
    CapacityResult,
    ProbeOutcome,
    ProbeRecord,
    ProbeSpec,
    SearchSettings,
    hard_violation,
    short_reason,
)
from loadgen.objective import Objective, parse_objective
from loadgen.quantile_bounds import SloDecision
from loadgen.slo_evidence import Evidence, SequentialRule, judge

__all__ = [
    "CLIENT_BOUND_FRACTION",
    "INVALID",
    "NOT_FOUND",
    "UNCONFIRMED",
    "VALID",
    "VERDICTS",
    "CapacityResult",
    "Objective",
    "ProbeOutcome",
    "ProbeRecord",
    "ProbeSpec",
    "SearchSettings",
    "find_capacity",
    "hard_violation",
    "parse_objective",
    "short_reason",
    "violation",
]


def violation(outcome: ProbeOutcome, objective: Objective, rule: SequentialRule | None = None) -> str:
    """Why one probe, judged on its own as a single look, does not meet the objective."""
    hard = hard_violation(outcome)
    if hard:
        return hard
    evidence = judge(
        [outcome.latencies_s],
        objective.percentile,
        objective.bound_s,
        SequentialRule(rule.confidence, 1, rule.min_met_seconds) if rule else SequentialRule(max_looks=1),
        sent=_sent_looks([outcome]),
    )
    return _evidence_reason(evidence, objective)


def _sent_looks(outcomes: Sequence[ProbeOutcome]) -> list[np.ndarray] | None:
    """The outcomes' send offsets for :func:`judge`, or None when any outcome lacks them."""
    sent = [np.asarray(o.sent_s, dtype=np.float64) for o in outcomes]
    lat = [np.asarray(o.latencies_s) for o in outcomes]
    if any(s.size != x.size or (x.size and not s.size) for s, x in zip(sent, lat, strict=True)):
        return None
    return sent


def _evidence_reason(evidence: Evidence, objective: Objective) -> str:
    """ "" for met; else why not, with the counts."""
    text = evidence.describe(objective.label, objective.bound_s * 1000)
    if evidence.decision is SloDecision.MET:
        return ""
    if evidence.decision is SloDecision.VIOLATED:
        return f"{objective.label} over {objective.bound_s * 1000:g} ms: {text}"
    return f"undecided: {text}"


Probe = Callable[[ProbeSpec], Awaitable[ProbeOutcome]]


def probe_seed(seed: int, index: int) -> int:
    """A 32-bit seed for probe ``index`` of a search seeded ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


OnRecord = Callable[[ProbeRecord], None]


class _Search:
    """Bookkeeping of one search: probes so far, elapsed seconds, the bracket."""

    def __init__(
        self, probe: Probe, objective: Objective, settings: SearchSettings, on_record: OnRecord | None
    ) -> None:
        self.probe, self.objective, self.s = probe, objective, settings
        self.on_record = on_record or (lambda record: None)
        self.rule = settings.rule
        self.records: list[ProbeRecord] = []
        self.decisions: dict[float, str] = {}  # each search rate's final decision (its last probe's)
        self.stop = ""

    @property
    def low(self) -> float | None:
        """The highest rate met (None: none yet)."""
        met = [r for r, d in self.decisions.items() if d == SloDecision.MET.value]
        return max(met) if met else None

    @property
    def high(self) -> float | None:
        """The lowest rate violated above the highest met (None: none yet)."""
        low = self.low
        bad = [r for r, d in self.decisions.items() if d == SloDecision.VIOLATED.value and (low is None or r > low)]
        return min(bad) if bad else None

    def undecided_between(self, low: float, high: float) -> list[float]:
        """The undecided rates strictly inside (low, high), ascending."""
        return sorted(r for r, d in self.decisions.items() if d == SloDecision.UNDECIDED.value and low < r < high)

    @property
    def elapsed(self) -> float:
        return sum(r.outcome.duration_s for r in self.records)

    @property
    def requests_sent(self) -> int:
        return sum(r.spec.n_requests for r in self.records)

    def _requests(self, rate: float, look: int = 1) -> int:
        return self.s.requests_for(rate, self.objective.percentile, look)

    def _seconds(self, rate: float, look: int = 1) -> float:
        return self.s.planned_seconds(rate, self.objective.percentile, look)

    def fits(
        self,
        rate: float,
        look: int = 1,
        *,
        confirming: bool = False,
        pending: float | None = None,
        pending_requests: int | None = None,
    ) -> bool:
        """Room for look ``look`` at ``rate`` and -- for a search probe -- then the
        confirmation's first look (caps on probes, requests and seconds). ``pending`` /
        ``pending_requests``: the seconds and requests of a look just measured but not yet
        recorded (it counts as a probe too)."""
        reserve_probes = 0 if confirming else 1
        done = len(self.records) + (0 if pending is None else 1)
        if done + 1 + reserve_probes > self.s.max_probes:
            self.stop = f"probe cap of {self.s.max_probes} probes (one kept for the confirmation)"
            return False
        confirm_rate = min(rate, self.low) if self.low is not None else rate
        # the confirmation's reserve: every look it may take, so a confirmation near the knee
        # is not left undecided for want of room (reserving only the looks its floor of time
        # needs left 35 of 45 simulated searches UNCONFIRMED at the M/M/1 knee: the highest
        # rate met among many tried is often a lucky one that needs all its looks)
        confirm_looks = range(1, self.s.max_looks + 1)
        reserve_requests = sum(self._requests(confirm_rate, k) for k in confirm_looks)
        need_requests = self._requests(rate, look) + (0 if confirming else reserve_requests)
        sent = self.requests_sent + (pending_requests or 0)
        if sent + need_requests > self.s.max_requests:
            what = f"look {look} at {rate:.4g} req/s" + ("" if confirming else " and the confirmation")
            self.stop = (
                f"request budget of {self.s.max_requests} requests ({sent} sent; {what} would need "
                f"{need_requests} more)"
            )
            return False
        need = self._seconds(rate, look)
        if not confirming:
            need += sum(self._seconds(confirm_rate, k) for k in confirm_looks)
        elapsed = self.elapsed + (pending or 0.0)
        if elapsed + need > self.s.max_seconds:
            what = f"look {look} at {rate:.4g} req/s" + ("" if confirming else " and the confirmation")
            self.stop = (
                f"time cap of {self.s.max_seconds:g} s ({elapsed:.1f} s used; {what} would need {need:.1f} s more)"
            )
            return False
        return True

    async def _look(self, phase: str, rate: float, look: int) -> tuple[ProbeSpec, ProbeOutcome]:
        index = len(self.records) + 1
        spec = ProbeSpec(
            index=index,
            phase=phase,
            rate=rate,
            n_requests=self.s.requests_for(rate, self.objective.percentile, look),
            planned_s=self._seconds(rate, look),
            seed=probe_seed(self.s.seed, index),
            look=look,
        )
        return spec, await self.probe(spec)

    def _record(
        self, spec: ProbeSpec, outcome: ProbeOutcome, reason: str, decision: str, evidence: Evidence | None, final: bool
    ) -> ProbeRecord:
        record = ProbeRecord(spec, outcome, reason, decision, evidence, final)
        self.records.append(record)
        self.on_record(record)
        return record

    async def run(self, phase: str, rate: float) -> ProbeRecord:
        """Judge ``rate``: looks until met or violated, or undecided after the last look
        (or when the next look does not fit). Returns the rate's final record."""
        confirming = phase == "confirm"
        looks: list[np.ndarray] = []
        outcomes: list[ProbeOutcome] = []
        look = 1
        while True:
            spec, outcome = await self._look(phase, rate, look)
            hard = hard_violation(outcome)
            if hard:
                record = self._record(spec, outcome, hard, SloDecision.VIOLATED.value, None, True)
                break
            looks.append(np.asarray(outcome.latencies_s, dtype=np.float64))
            outcomes.append(outcome)
            evidence = judge(
                looks, self.objective.percentile, self.objective.bound_s, self.rule, sent=_sent_looks(outcomes)
            )
            reason = _evidence_reason(evidence, self.objective)
            decided = evidence.decision is not SloDecision.UNDECIDED
            more = (
                not decided
                and look < self.rule.max_looks
                and self.fits(
                    rate, look + 1, confirming=confirming, pending=outcome.duration_s, pending_requests=spec.n_requests
                )
            )
            if not decided and look < self.rule.max_looks and not more:
                reason += f" (no room for look {look + 1}: {short_reason(self.stop)})"
            elif not decided and not more:
                reason += f" after {look} looks"
            record = self._record(spec, outcome, reason, evidence.decision.value, evidence, not more)
            if not more:
                break
            look += 1
        if not confirming:
            self.decisions[rate] = record.decision
        if outcome.fatal:
            self.stop = f"the target stopped answering at {rate:.4g} req/s ({outcome.error_classes or 'no answers'})"
        return record


def _next_step(search: _Search) -> tuple[str, float] | None:
    """The next (phase, rate) to judge, or None with ``search.stop`` saying why not."""
    s = search.s
    rates = sorted(search.decisions)
    low, high = search.low, search.high
    if low is None:  # nothing met yet: down from the lowest rate tried -- by half the
        # factor when that rate was undecided (near the knee: a factor 2 down cost the Flask
        # stand-ins a 34 s look at half their knee for nothing)
        near = search.decisions[rates[0]] == SloDecision.UNDECIDED.value
        return "ramp", rates[0] / (math.sqrt(s.growth) if near else s.growth)
    if high is None:  # nothing violated above the met rate: up from the highest rate tried
        if rates[-1] >= s.max_rate_rps:
            search.stop = f"reached {s.max_rate_reason or 'the highest rate allowed'} ({s.max_rate_rps:.4g} req/s)"
            return None
        return "ramp", min(rates[-1] * s.growth, s.max_rate_rps)
    if high / low <= 1 + s.precision:
        search.stop = f"bracket within {s.precision:.0%}"
        return None
    inner = search.undecided_between(low, high)
    if not inner:
        return "bisect", math.sqrt(low * high)
    lower_gap, upper_gap = inner[0] / low, high / inner[-1]
    if max(lower_gap, upper_gap) <= math.sqrt(1 + s.precision):
        listed = ", ".join(f"{r:.4g}" for r in inner)
        search.stop = f"undecided at {listed} req/s between the met {low:.4g} and the violated {high:.4g} req/s"
        return None
    if lower_gap >= upper_gap:
        return "bisect", math.sqrt(low * inner[0])
    return "bisect", math.sqrt(inner[-1] * high)


async def find_capacity(
    probe: Probe, objective: Objective, settings: SearchSettings, on_record: OnRecord | None = None
) -> CapacityResult:
    """Ramp, bisect and confirm (module docstring); every look goes through ``probe`` and,
    once judged, through ``on_record`` (so a caller can write it at once)."""
    search = _Search(probe, objective, settings, on_record)
    s = settings
    step: tuple[str, float] | None = ("ramp", min(s.start_rps, s.max_rate_rps))
    # 1 and 2: ramp until the bracket [met, violated] exists, then bisect it
    while step is not None and search.fits(step[1]):
        await search.run(*step)
        if search.stop:
            break
        step = _next_step(search)
    precise = search.low is not None and search.high is not None and search.high / search.low <= 1 + s.precision
    # 3. confirm at the found rate with a fresh schedule and fresh looks
    fatal = any(r.outcome.fatal for r in search.records)
    if search.low is None:
        verdict = NOT_FOUND
        if not search.stop:
            search.stop = "no offered rate met the objective"
    elif fatal:
        verdict = UNCONFIRMED
    elif not search.fits(search.low, confirming=True):
        verdict = UNCONFIRMED
        search.stop = "no room left for the confirmation probe: " + search.stop
    else:
        before = search.stop
        confirm = await search.run("confirm", search.low)
        search.stop = before
        if confirm.met:
            verdict = VALID
        elif confirm.decision == SloDecision.UNDECIDED.value:
            verdict = UNCONFIRMED
            search.stop = (search.stop + "; " if search.stop else "") + "the confirmation stayed undecided"
        else:
            verdict = INVALID
    if not search.stop:
        search.stop = f"bracket within {s.precision:.0%}" if precise else "search ended"
    capacity = search.low if search.low is not None else math.nan
    ceiling = s.client_ceiling_rps
    client_bound = bool(ceiling and not math.isnan(capacity) and capacity >= CLIENT_BOUND_FRACTION * ceiling)
    return CapacityResult(
        objective=objective,
        capacity_rps=capacity,
        verdict=verdict,
        upper_rps=search.high if search.high is not None else math.nan,
        precision_reached=precise,
        stop_reason=search.stop,
        client_bound=client_bound,
        probes=tuple(search.records),
        confidence=s.confidence,
    )
