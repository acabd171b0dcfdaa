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

The search:

1. **Ramp**: offer ``start_rps``, then multiply by ``growth`` while the rate is met. The
   ramp never offers more than ``max_rate_rps`` (politeness cap or client ceiling); if the
   first rate is not met, the ramp goes *down* by ``growth`` instead.
2. **Bisect** between the highest met and the lowest not-met rate (geometric midpoints)
   until ``not_met / met <= 1 + precision``.
3. **Confirm**: a fresh probe (its own looks) at the found rate. **VALID** when it is
   met at the same confidence, **INVALID** when it is violated, **UNCONFIRMED** when it
   stays undecided or did not fit. Because the confirmation is new data tested at 1 -
   delta, a server that violates the objective at the found rate is called VALID with
   probability <= delta, however many rates the search tried before.

Caps: at most ``max_probes`` probes -- every look is a probe, one is kept for the
confirmation's first look --, at most ``max_requests`` requests (the budget: evidence is
counted in requests, so a slow target gets the same statistical reach as a fast one,
only over more seconds), and ``max_seconds`` of probing (a wall-clock safety cap). A
look starts only if its requests and its planned length, plus the confirmation's first
look for a search probe, fit in what is left of both. A probe marked ``fatal`` (the
target stopped answering) ends the search at once. A capacity at or above half the
client's calibrated ceiling is flagged ``client_bound``.

Repeatability: the driver is deterministic given its probes; every probe carries a seed
derived from ``(seed, probe index)``, which the caller uses for the Poisson schedule.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from loadgen.objective import Objective, parse_objective
from loadgen.quantile_bounds import SloDecision
from loadgen.slo_evidence import Evidence, SequentialRule, judge

__all__ = [
    "CLIENT_BOUND_FRACTION",
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

# A capacity at or above this share of the client's calibrated ceiling may be the load
# generator's limit, not the target's (the same 50 % the report's Table 3 flags use).
CLIENT_BOUND_FRACTION = 0.5

VALID, INVALID, UNCONFIRMED, NOT_FOUND = "VALID", "INVALID", "UNCONFIRMED", "NOT_FOUND"
VERDICTS: tuple[str, ...] = (VALID, INVALID, UNCONFIRMED, NOT_FOUND)


@dataclass(frozen=True)
class SearchSettings:
    """Everything that decides which rates are offered and when the search stops."""

    start_rps: float
    growth: float = 2.0
    precision: float = 0.1
    min_requests: int = 1  # a floor: the first look is at least what the objective and confidence need
    min_seconds: float = 2.0
    max_probes: int = 24  # every look is a probe
    max_requests: int = 12_000  # the request budget of a search (every look's requests)
    max_seconds: float = 360.0  # wall-clock safety cap of a search's probing
    confidence: float = 0.95  # of every verdict (met / violated), the confirmation's included
    max_looks: int = 3  # looks per rate before it stays undecided (Bonferroni over them)
    min_met_seconds: float = 4.0  # "met" needs the rate's looks to span this many seconds of arrivals
    max_rate_rps: float = math.inf  # never offer more (politeness cap / client ceiling)
    max_rate_reason: str = ""  # why max_rate_rps is what it is, for the stop reason
    client_ceiling_rps: float | None = None  # the client's calibrated req/s, for the client_bound flag
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.start_rps > 0 and math.isfinite(self.start_rps)):
            raise ValueError(f"start_rps must be a finite rate > 0, got {self.start_rps}")
        if not self.growth > 1:
            raise ValueError(f"growth must be > 1, got {self.growth}")
        if not 0 < self.precision < 1:
            raise ValueError(f"precision must be in (0, 1), got {self.precision}")
        if self.min_requests < 1 or not self.min_seconds > 0:
            raise ValueError("min_requests must be >= 1 and min_seconds > 0")
        if self.max_probes < 2:
            raise ValueError(f"max_probes must be >= 2 (one search probe and the confirmation), got {self.max_probes}")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.max_requests < 2:
            raise ValueError(f"max_requests must be >= 2, got {self.max_requests}")
        if not self.max_rate_rps > 0:
            raise ValueError(f"max_rate_rps must be > 0, got {self.max_rate_rps}")
        self.rule  # noqa: B018 -- builds the rule, which raises ValueError naming the field

    @property
    def rule(self) -> SequentialRule:
        return SequentialRule(self.confidence, self.max_looks, self.min_met_seconds)

    def requests_for(self, rate: float, percentile: float = 50.0, look: int = 1) -> int:
        """Requests of look ``look`` at ``rate``: the first look has at least ``min_requests``,
        ``min_seconds`` of arrivals and the fewest requests that can show ``percentile`` met
        at the per-look level; later looks double the cumulative count."""
        first = max(self.min_requests, math.ceil(rate * self.min_seconds), self.rule.first_look(percentile))
        return self.rule.look_size(look, first)

    def planned_seconds(self, rate: float, percentile: float = 50.0, look: int = 1) -> float:
        """How long look ``look``'s schedule lasts at ``rate`` (its requests over the rate)."""
        return self.requests_for(rate, percentile, look) / rate

    def looks_to_meet(self, rate: float, percentile: float = 50.0) -> int:
        """Fewest looks at ``rate`` whose arrivals span ``min_met_seconds`` (at most
        ``max_looks``): what a confirmation must have room for to be able to say "met"."""
        seconds = 0.0
        for look in range(1, self.max_looks + 1):
            seconds += self.planned_seconds(rate, percentile, look)
            if seconds >= self.min_met_seconds:
                return look
        return self.max_looks


@dataclass(frozen=True)
class ProbeSpec:
    """One probe the driver asks for: offer ``rate`` req/s for ``n_requests`` Poisson arrivals."""

    index: int  # 1-based, in the order probes run (the confirmation is the last)
    phase: str  # "ramp" | "bisect" | "confirm"
    rate: float
    n_requests: int
    planned_s: float
    seed: int  # for this probe's arrival schedule (and image order)
    look: int = 1  # 1 = a new rate; 2, 3, ... extend an undecided rate


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe measured; latencies are seconds over successful requests (NaN: none)."""

    rate: float
    n_requests: int
    latency_s: float  # the objective's percentile
    p50_s: float
    achieved_rps: float
    errors: int
    saturated: bool
    duration_s: float  # wall seconds the probe took, warm-up and drain included
    p90_s: float = math.nan
    p99_s: float = math.nan
    fatal: bool = False  # the target stopped answering (every request refused or reset)
    error_classes: str = ""
    # successful requests' latencies in the order they were sent: the evidence the verdict counts
    latencies_s: np.ndarray | tuple[float, ...] = field(default=(), compare=False, repr=False)
    # their send offsets in seconds (same order and length; empty: unknown), from which the
    # verdict finds episodes of overlapping slow requests and the seconds a rate spanned
    sent_s: np.ndarray | tuple[float, ...] = field(default=(), compare=False, repr=False)


def short_reason(text: str) -> str:
    """A stop reason without its parenthesised detail, for table cells ("time cap of 45 s")."""
    return text.split(" (", 1)[0]


def hard_violation(outcome: ProbeOutcome) -> str:
    """Why a probe violates whatever its latencies say (``""``: judge the latencies)."""
    if outcome.fatal:
        return "target stopped answering"
    if outcome.errors >= outcome.n_requests:
        return "no request succeeded"
    if outcome.errors:
        detail = f" ({outcome.error_classes})" if outcome.error_classes else ""
        return f"{outcome.errors} of {outcome.n_requests} requests failed{detail}"
    if outcome.saturated:
        return f"saturated: achieved {outcome.achieved_rps:.4g} of {outcome.rate:.4g} req/s offered"
    if len(outcome.latencies_s) == 0:
        return "no latency recorded"
    return ""


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


@dataclass(frozen=True)
class ProbeRecord:
    """A probe (one look) as the search saw it: what was asked, what came back, and the
    judgement of its rate so far (``evidence`` pools this look with the earlier ones at the
    same rate; None when a failure, saturation or no answer decided without a test)."""

    spec: ProbeSpec
    outcome: ProbeOutcome
    violation: str  # "" when met; else why not (violated, or "undecided: ...")
    decision: str = SloDecision.VIOLATED.value  # met | violated | undecided
    evidence: Evidence | None = None
    final: bool = True  # the last look at this rate (False: the rate was extended)

    @property
    def met(self) -> bool:
        return self.decision == SloDecision.MET.value


@dataclass(frozen=True)
class CapacityResult:
    """The search's answer for one target and objective."""

    objective: Objective
    capacity_rps: float  # highest offered rate that met the objective (NaN: none did)
    verdict: str  # VALID | INVALID | UNCONFIRMED | NOT_FOUND
    upper_rps: float  # lowest rate not met -- violated or undecided (NaN: none)
    precision_reached: bool
    stop_reason: str
    client_bound: bool
    probes: tuple[ProbeRecord, ...] = field(default_factory=tuple)
    confidence: float = 0.95  # of each rate's verdict, the confirmation's included

    @property
    def upper_decision(self) -> str:
        """How the bracket's upper rate failed: ``violated`` or ``undecided`` ("" when none)."""
        last = [p for p in self.probes if p.final and p.spec.phase != "confirm" and p.spec.rate == self.upper_rps]
        return last[-1].decision if last else ""

    @property
    def seconds(self) -> float:
        return float(sum(p.outcome.duration_s for p in self.probes))

    @property
    def confirmation(self) -> ProbeRecord | None:
        """The confirmation's last look (its evidence pools all its looks)."""
        looks = [p for p in self.probes if p.spec.phase == "confirm"]
        return looks[-1] if looks else None

    @property
    def at_capacity(self) -> ProbeRecord | None:
        """The probe that describes the latencies at the capacity: the confirmation when it
        ran, else the last search probe at that rate."""
        if self.confirmation is not None:
            return self.confirmation
        good = [p for p in self.probes if p.met and p.spec.rate == self.capacity_rps]
        return good[-1] if good else None

    @property
    def fatal(self) -> bool:
        return any(p.outcome.fatal for p in self.probes)


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
        self.low: float | None = None  # highest rate that met the objective
        self.high: float | None = None  # lowest rate not met (violated or undecided)
        self.stop = ""

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
        # the confirmation's reserve: the looks it needs before "met" is possible (floor of time)
        confirm_looks = range(1, self.s.looks_to_meet(confirm_rate, self.objective.percentile) + 1)
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
            if record.met:
                self.low = rate if self.low is None else max(self.low, rate)
            else:
                self.high = rate if self.high is None else min(self.high, rate)
        if outcome.fatal:
            self.stop = f"the target stopped answering at {rate:.4g} req/s ({outcome.error_classes or 'no answers'})"
        return record


async def find_capacity(
    probe: Probe, objective: Objective, settings: SearchSettings, on_record: OnRecord | None = None
) -> CapacityResult:
    """Ramp, bisect and confirm (module docstring); every look goes through ``probe`` and,
    once judged, through ``on_record`` (so a caller can write it at once)."""
    search = _Search(probe, objective, settings, on_record)
    s = settings
    rate = min(s.start_rps, s.max_rate_rps)
    # 1. ramp up from the start rate (or down, when the start is not met)
    while search.fits(rate):
        record = await search.run("ramp", rate)
        if search.stop:
            break
        if record.met:
            if search.high is not None:  # ramping down found the first good rate
                break
            if rate >= s.max_rate_rps:
                search.stop = f"reached {s.max_rate_reason or 'the highest rate allowed'} ({s.max_rate_rps:.4g} req/s)"
                break
            rate = min(rate * s.growth, s.max_rate_rps)
        else:
            if search.low is not None:  # ramping up found the first bad rate
                break
            rate = rate / s.growth
    # 2. bisect the bracket to the precision asked
    while not search.stop and search.low is not None and search.high is not None:
        if search.high / search.low <= 1 + s.precision:
            break
        mid = math.sqrt(search.low * search.high)
        if not search.fits(mid):
            break
        await search.run("bisect", mid)
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
