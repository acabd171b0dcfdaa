"""The capacity search's data: its settings, what it asks of a probe, what a probe
returns, how a look was judged, and the search's answer.

Why apart from the driver (:mod:`loadgen.capacity`): the CLI, the report, the
simulation study and the tests read and build these records without running a search;
keeping them here leaves the driver one job (which rate next, and when to stop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from loadgen.objective import Objective
from loadgen.quantile_bounds import SloDecision
from loadgen.slo_evidence import Evidence, SequentialRule

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
    upper_rps: float  # lowest rate violated above the capacity: [capacity, upper] brackets it (NaN: none)
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
