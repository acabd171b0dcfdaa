"""Capacity under a latency objective: the MLPerf-server-like search, as a pure driver.

Why pure: the search decides which rates are offered and what the reported capacity is,
so its logic must be testable with deterministic fake probes -- no clock, no network, no
printing. The caller supplies ``probe(spec) -> ProbeOutcome`` (an async callable that
really measures, or a model of a server in tests); elapsed time is the sum of the
outcomes' own ``duration_s``, never read from a clock here.

The search (after MLPerf Inference's server scenario, which reports the highest Poisson
query rate whose tail latency stays under a bound):

1. **Ramp**: offer ``start_rps``, then multiply by ``growth`` while the objective is met.
   A probe *violates* the objective when its latency percentile is over the bound, when
   the open loop was ``saturated`` (it did not keep up: the latencies describe a growing
   queue), when any request failed, or when none succeeded. The ramp never offers more
   than ``max_rate_rps`` (the politeness cap or the client's calibrated ceiling); if the
   first probe already violates, the ramp goes *down* by ``growth`` instead.
2. **Bisect** between the last good and the first bad rate (geometric midpoints) until
   ``first_bad / last_good <= 1 + precision``.
3. **Confirm**: one more probe at the found rate (a fresh schedule) decides **VALID**
   (met again) or **INVALID** (noise or drift put it over the bound: the capacity is not
   reproducible at this precision).

Caps: at most ``max_probes`` probes (the confirmation included: one is reserved for it)
and ``max_seconds`` of probing (a probe starts only if its planned length, plus the
confirmation's, fits in what is left). A probe marked ``fatal`` (the target stopped
answering) ends the search at once. A capacity at or above half the client's calibrated
ceiling is flagged ``client_bound``: there the load generator may be the limit.

Repeatability: the driver is deterministic given its probes; every probe carries a seed
derived from ``(seed, probe index)``, which the caller uses for the Poisson schedule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

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
    "parse_objective",
    "short_reason",
    "violation",
]

# A capacity at or above this share of the client's calibrated ceiling may be the load
# generator's limit, not the target's (the same 50 % the report's Table 3 flags use).
CLIENT_BOUND_FRACTION = 0.5

VALID, INVALID, UNCONFIRMED, NOT_FOUND = "VALID", "INVALID", "UNCONFIRMED", "NOT_FOUND"
VERDICTS: tuple[str, ...] = (VALID, INVALID, UNCONFIRMED, NOT_FOUND)

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_OBJECTIVE = re.compile(r"^\s*p(\d+(?:\.\d+)?)\s*(?:=|<=|:)\s*(\d+(?:\.\d+)?(?:e-?\d+)?)\s*(ms|s|us)\s*$", re.I)


@dataclass(frozen=True)
class Objective:
    """A latency objective: the ``percentile`` of successful requests' latency <= ``bound_s``."""

    percentile: float
    bound_s: float

    def __post_init__(self) -> None:
        if not 0 < self.percentile < 100:
            raise ValueError(f"the objective's percentile must be in (0, 100), got {self.percentile:g}")
        if not (self.bound_s > 0 and math.isfinite(self.bound_s)):
            raise ValueError(f"the objective's bound must be a finite time > 0, got {self.bound_s!r} s")

    @property
    def label(self) -> str:
        """``p99`` / ``p99.9``: the percentile's short name."""
        return f"p{self.percentile:g}"

    def describe(self) -> str:
        """``p99 <= 100 ms``: how the objective is written in tables and headings."""
        bound = f"{self.bound_s * 1000:g} ms" if self.bound_s < 10 else f"{self.bound_s:g} s"
        return f"{self.label} <= {bound}"


def parse_objective(text: str) -> Objective:
    """``"p99=100ms"`` (also ``p99<=0.1s``, ``p99.9:250ms``, ``p50=800us``) -> Objective.

    Raises ValueError naming the expected form, so ``--slo`` typos fail before anything runs.
    """
    match = _OBJECTIVE.match(text or "")
    if not match:
        raise ValueError(f"objective {text!r} is not of the form pNN=BOUND with a unit, e.g. p99=100ms, "
                         "p99.9=0.25s or p50=800us")
    pct, value, unit = match.groups()
    return Objective(percentile=float(pct), bound_s=float(value) * _UNITS[unit.lower()])


@dataclass(frozen=True)
class SearchSettings:
    """Everything that decides which rates are offered and when the search stops."""

    start_rps: float
    growth: float = 2.0
    precision: float = 0.1
    min_requests: int = 200
    min_seconds: float = 2.0
    max_probes: int = 12
    max_seconds: float = 45.0
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
        if not self.max_rate_rps > 0:
            raise ValueError(f"max_rate_rps must be > 0, got {self.max_rate_rps}")

    def requests_for(self, rate: float) -> int:
        """Requests of a probe at ``rate``: at least ``min_requests`` and ``min_seconds`` of arrivals."""
        return max(self.min_requests, math.ceil(rate * self.min_seconds))

    def planned_seconds(self, rate: float) -> float:
        """How long a probe's schedule lasts at ``rate`` (its requests over the rate)."""
        return self.requests_for(rate) / rate


@dataclass(frozen=True)
class ProbeSpec:
    """One probe the driver asks for: offer ``rate`` req/s for ``n_requests`` Poisson arrivals."""

    index: int  # 1-based, in the order probes run (the confirmation is the last)
    phase: str  # "ramp" | "bisect" | "confirm"
    rate: float
    n_requests: int
    planned_s: float
    seed: int  # for this probe's arrival schedule (and image order)


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


def short_reason(text: str) -> str:
    """A stop reason without its parenthesised detail, for table cells ("time cap of 45 s")."""
    return text.split(" (", 1)[0]


def violation(outcome: ProbeOutcome, objective: Objective) -> str:
    """Why a probe does not meet the objective (``""`` when it does)."""
    if outcome.fatal:
        return "target stopped answering"
    if outcome.errors >= outcome.n_requests:
        return "no request succeeded"
    if outcome.errors:
        detail = f" ({outcome.error_classes})" if outcome.error_classes else ""
        return f"{outcome.errors} of {outcome.n_requests} requests failed{detail}"
    if outcome.saturated:
        return f"saturated: achieved {outcome.achieved_rps:.4g} of {outcome.rate:.4g} req/s offered"
    if math.isnan(outcome.latency_s) or outcome.latency_s > objective.bound_s:
        return f"{objective.label} {outcome.latency_s * 1000:.4g} ms > {objective.bound_s * 1000:g} ms"
    return ""


@dataclass(frozen=True)
class ProbeRecord:
    """A probe as the search saw it: what was asked, what came back, and the judgement."""

    spec: ProbeSpec
    outcome: ProbeOutcome
    violation: str

    @property
    def met(self) -> bool:
        return not self.violation


@dataclass(frozen=True)
class CapacityResult:
    """The search's answer for one target and objective."""

    objective: Objective
    capacity_rps: float  # highest offered rate that met the objective (NaN: none did)
    verdict: str  # VALID | INVALID | UNCONFIRMED | NOT_FOUND
    upper_rps: float  # lowest rate that violated it (NaN: none did)
    precision_reached: bool
    stop_reason: str
    client_bound: bool
    probes: tuple[ProbeRecord, ...] = field(default_factory=tuple)

    @property
    def seconds(self) -> float:
        return float(sum(p.outcome.duration_s for p in self.probes))

    @property
    def confirmation(self) -> ProbeRecord | None:
        return next((p for p in self.probes if p.spec.phase == "confirm"), None)

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


class _Search:
    """Bookkeeping of one search: probes so far, elapsed seconds, the bracket."""

    def __init__(self, probe: Probe, objective: Objective, settings: SearchSettings) -> None:
        self.probe, self.objective, self.s = probe, objective, settings
        self.records: list[ProbeRecord] = []
        self.low: float | None = None  # highest rate that met the objective
        self.high: float | None = None  # lowest rate that violated it
        self.stop = ""

    @property
    def elapsed(self) -> float:
        return sum(r.outcome.duration_s for r in self.records)

    def fits(self, rate: float) -> bool:
        """Room for a search probe at ``rate`` and then the confirmation (caps on both counts)."""
        if len(self.records) + 2 > self.s.max_probes:
            self.stop = f"probe cap of {self.s.max_probes} probes (one kept for the confirmation)"
            return False
        confirm_at = min(rate, self.low) if self.low is not None else rate
        need = self.s.planned_seconds(rate) + self.s.planned_seconds(confirm_at)
        if self.elapsed + need > self.s.max_seconds:
            self.stop = (f"time cap of {self.s.max_seconds:g} s ({self.elapsed:.1f} s used; a probe at "
                         f"{rate:.4g} req/s and the confirmation would need {need:.1f} s more)")
            return False
        return True

    async def run(self, phase: str, rate: float) -> ProbeRecord:
        index = len(self.records) + 1
        spec = ProbeSpec(index=index, phase=phase, rate=rate, n_requests=self.s.requests_for(rate),
                         planned_s=self.s.planned_seconds(rate), seed=probe_seed(self.s.seed, index))
        outcome = await self.probe(spec)
        record = ProbeRecord(spec, outcome, violation(outcome, self.objective))
        self.records.append(record)
        if phase != "confirm":
            if record.met:
                self.low = rate if self.low is None else max(self.low, rate)
            else:
                self.high = rate if self.high is None else min(self.high, rate)
        if outcome.fatal:
            self.stop = f"the target stopped answering at {rate:.4g} req/s ({outcome.error_classes or 'no answers'})"
        return record


async def find_capacity(probe: Probe, objective: Objective, settings: SearchSettings) -> CapacityResult:
    """Ramp, bisect and confirm (module docstring); every probe goes through ``probe``."""
    search = _Search(probe, objective, settings)
    s = settings
    rate = min(s.start_rps, s.max_rate_rps)
    # 1. ramp up from the start rate (or down, when the start already violates)
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
    # 3. confirm at the found rate with a fresh schedule
    fatal = any(r.outcome.fatal for r in search.records)
    if search.low is None:
        verdict = NOT_FOUND
        if not search.stop:
            search.stop = "no offered rate met the objective"
    elif fatal:
        verdict = UNCONFIRMED
    elif search.elapsed + s.planned_seconds(search.low) > s.max_seconds or len(search.records) >= s.max_probes:
        verdict = UNCONFIRMED
        search.stop = (search.stop + "; " if search.stop else "") + "no room left for the confirmation probe"
    else:
        confirm = await search.run("confirm", search.low)
        verdict = VALID if confirm.met else INVALID
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
    )
