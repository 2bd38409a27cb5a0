"""Benchmark harness: targets, measurements, percentiles and the comparison report.

Layer: benchmark tooling (not part of the product or the test run).

A benchmark runs against a *target* (a name and a MongoDB URI). The report prints
every metric for every target of the run side by side and, for each target other
than `direct`, the ratio target/direct, so "through the Wicket proxy" is one more
target in the same run, measured against the same server with the same workload.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

DIRECT = "direct"


class Better(Enum):
    """Which direction of a metric is an improvement (for reading ratios)."""

    LOWER = "lower"
    HIGHER = "higher"


@dataclass(frozen=True)
class Metric:
    """One figure a benchmark reports."""

    key: str
    label: str
    unit: str
    better: Better


@dataclass(frozen=True)
class Target:
    """Something to measure: a name for the report and the URI clients connect with."""

    name: str
    uri: str
    description: str = ""


@dataclass(frozen=True)
class Measurement:
    """One metric's value for one target."""

    target: str
    metric: Metric
    value: float
    detail: str = ""


@dataclass(frozen=True)
class Workload:
    """Sizes of a run; `quick()` for a smoke run, `full()` for figures worth quoting."""

    pings: int
    insert_clients: int
    insert_seconds: float
    find_documents: int
    find_runs: int

    @classmethod
    def full(cls) -> Workload:
        """Sizes from the issue: 2000 pings, 8 insert clients, find of 10,000 documents."""
        return cls(
            pings=2000, insert_clients=8, insert_seconds=5.0, find_documents=10_000, find_runs=5
        )

    @classmethod
    def quick(cls) -> Workload:
        """Fewer repetitions, same shapes: for checking the harness works."""
        return cls(
            pings=300, insert_clients=8, insert_seconds=1.5, find_documents=10_000, find_runs=3
        )


class Benchmark(Protocol):
    """A workload measured against one target at a time."""

    name: str

    def run(self, target: Target, workload: Workload) -> list[Measurement]:
        """Measure `target` and return its figures."""
        ...


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` (0..1) percentile by linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be within 0..1")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = math.ceil(position)
    if lower == upper:
        return ordered[lower]
    weight = position - lower
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def median(samples: Sequence[float]) -> float:
    """The median (a named helper so reports say what they used)."""
    if not samples:
        raise ValueError("median of no samples")
    return statistics.median(samples)


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of `action` took (monotonic, high resolution)."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@dataclass
class Report:
    """Measurements of one run, printed as a metric x target table with ratios."""

    measurements: list[Measurement] = field(default_factory=list)

    def add(self, items: Sequence[Measurement]) -> None:
        """Record a benchmark's figures."""
        self.measurements.extend(items)

    def targets(self) -> list[str]:
        """Target names in the order first measured, `direct` first."""
        names: list[str] = []
        for item in self.measurements:
            if item.target not in names:
                names.append(item.target)
        if DIRECT in names:
            names.remove(DIRECT)
            names.insert(0, DIRECT)
        return names

    def metrics(self) -> list[Metric]:
        """Metrics in the order first measured."""
        seen: list[Metric] = []
        for item in self.measurements:
            if item.metric not in seen:
                seen.append(item.metric)
        return seen

    def value(self, target: str, metric: Metric) -> float | None:
        """The figure for (target, metric), if measured."""
        for item in self.measurements:
            if item.target == target and item.metric == metric:
                return item.value
        return None

    def ratio(self, target: str, metric: Metric) -> float | None:
        """target/direct for one metric, if both were measured and direct is not zero."""
        base = self.value(DIRECT, metric)
        other = self.value(target, metric)
        if base is None or other is None or base == 0:
            return None
        return other / base

    def render(self) -> str:
        """The table: one row per metric, a column per target, a ratio column per non-direct."""
        targets = self.targets()
        others = [name for name in targets if name != DIRECT] if DIRECT in targets else []
        header = ["metric", "unit", *targets, *[f"{name}/{DIRECT}" for name in others]]
        rows: list[list[str]] = []
        for metric in self.metrics():
            row = [metric.label, metric.unit]
            for name in targets:
                found = self.value(name, metric)
                row.append("-" if found is None else _format_number(found))
            for name in others:
                ratio = self.ratio(name, metric)
                row.append("-" if ratio is None else f"{ratio:.2f}x")
            rows.append(row)
        widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

        def line(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
            return "  ".join([first, *rest])

        rule = "  ".join("-" * width for width in widths)
        text = [line(header), rule, *(line(row) for row in rows)]
        better = {metric.label: metric.better.value for metric in self.metrics() if others}
        if better:
            text.append("")
            text.append(
                "ratio = target/direct; "
                + "; ".join(f"{label}: {way} is better" for label, way in better.items())
            )
        return "\n".join(text)


def _format_number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"
