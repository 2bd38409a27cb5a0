"""The run's table, its ratios and its JSON file.

Layer: benchmark tooling. Values: one row per metric, one column per target. Ratios:
each Wicket target divided by its group's `direct` and by its group's `floor` (the
canned group's are `canned` and `floor-canned`), all from the same run. For ms and KiB
metrics a ratio above 1 is worse; for ops/s and MB/s below 1 is worse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import Measurement, Metric
from bench.targets import ALL_TARGETS, target_name

SHORT = {
    "direct": "direct",
    "floor": "floor",
    "wicket-tunnel": "tunnel",
    "wicket-direct": "wdirect",
    "canned": "canned",
    "floor-canned": "floorC",
    "wicket-tunnel-canned": "tunnelC",
    "wicket-direct-canned": "wdirectC",
}


@dataclass
class Report:
    """Measurements of one run."""

    measurements: list[Measurement] = field(default_factory=list)

    def add(self, items: Sequence[Measurement]) -> None:
        """Record a scenario's figures."""
        self.measurements.extend(items)

    def targets(self) -> list[str]:
        """Measured targets in the canonical order."""
        measured = {m.target for m in self.measurements}
        return [name for name in ALL_TARGETS if name in measured]

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
            if item.target == target and item.metric.key == metric.key:
                return item.value
        return None

    def ratios(self) -> list[tuple[str, str]]:
        """(Wicket target, baseline) pairs with both measured."""
        names = self.targets()
        pairs = []
        for group in ("localdocdb", "canned"):
            for kind in ("wicket-tunnel", "wicket-direct"):
                wicket = target_name(group, kind)
                for base in ("direct", "floor"):
                    baseline = target_name(group, base)
                    if wicket in names and baseline in names:
                        pairs.append((wicket, baseline))
        return pairs

    def ratio(self, target: str, baseline: str, metric: Metric) -> float | None:
        """target/baseline for one metric."""
        top, bottom = self.value(target, metric), self.value(baseline, metric)
        if top is None or bottom is None or bottom == 0:
            return None
        return top / bottom

    def render(self) -> str:
        """The values table, then the ratios table."""
        metrics = self.metrics()
        names = self.targets()
        values = [["metric", "unit", *names]]
        for metric in metrics:
            row = [metric.label, metric.unit]
            row += [_number(self.value(name, metric)) for name in names]
            values.append(row)
        text = _table(values)
        pairs = self.ratios()
        if pairs:
            ratios = [["ratio", *[f"{SHORT[a]}/{SHORT[b]}" for a, b in pairs]]]
            for metric in metrics:
                row = [metric.label]
                for wicket, baseline in pairs:
                    found = self.ratio(wicket, baseline, metric)
                    row.append("-" if found is None else f"{found:.2f}x")
                if any(cell != "-" for cell in row[1:]):
                    ratios.append(row)
            used = sorted({name for pair in pairs for name in pair}, key=ALL_TARGETS.index)
            legend = ", ".join(f"{SHORT[name]} = {name}" for name in used)
            text += "\n\nratios in the same run: " + legend
            text += "\n(ms, KiB: above 1 is worse; ops/s, MB/s: below 1 is worse)\n"
            text += _table(ratios)
        return text

    def to_json(self, meta: dict[str, Any]) -> str:
        """Everything measured, the ratios and `meta` (sizes, targets, time)."""
        measurements = [
            {
                "target": m.target,
                "metric": m.metric.key,
                "label": m.metric.label,
                "unit": m.metric.unit,
                "better": m.metric.better.value,
                "value": m.value,
                "detail": m.detail,
            }
            for m in self.measurements
        ]
        ratios = [
            {"target": a, "baseline": b, "metric": metric.key, "ratio": self.ratio(a, b, metric)}
            for a, b in self.ratios()
            for metric in self.metrics()
            if self.ratio(a, b, metric) is not None
        ]
        return json.dumps(
            {**meta, "measurements": measurements, "ratios": ratios}, indent=2, sort_keys=True
        )

    def write_json(self, path: Path, meta: dict[str, Any]) -> None:
        """Write `to_json` to `path` (directories created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(meta) + "\n")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: list[str]) -> str:
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([cells[0].ljust(widths[0]), *rest])

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])
