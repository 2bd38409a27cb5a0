"""Benchmark harness: metrics, measurements, percentiles.

Layer: benchmark tooling (not part of the product or the test run).

Metrics, measurements and the statistics the scenarios use (bench/report.py prints
them; bench/targets.py says what a target is).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum


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
class Measurement:
    """One metric's value for one target."""

    target: str
    metric: Metric
    value: float
    detail: str = ""


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
