"""The bench report: each Wicket target divided by its group's direct and floor."""

from __future__ import annotations

import json

from bench.harness import Better, Measurement, Metric
from bench.report import Report

OPS = Metric("find_8", "find by _id, 8 clients", "ops/s", Better.HIGHER)


def test_ratios_are_per_group_and_in_the_json() -> None:
    report = Report()
    for target, value in [
        ("direct", 4000.0),
        ("floor", 2000.0),
        ("wicket-tunnel", 1000.0),
        ("canned", 8000.0),
        ("floor-canned", 4000.0),
        ("wicket-tunnel-canned", 1000.0),
    ]:
        report.add([Measurement(target, OPS, value)])
    assert report.ratios() == [
        ("wicket-tunnel", "direct"),
        ("wicket-tunnel", "floor"),
        ("wicket-tunnel-canned", "canned"),
        ("wicket-tunnel-canned", "floor-canned"),
    ]
    assert report.ratio("wicket-tunnel", "floor", OPS) == 0.5
    assert report.ratio("wicket-tunnel-canned", "canned", OPS) == 0.125
    text = report.render()
    assert "tunnel/floor" in text and "0.50x" in text and "0.12x" in text
    saved = json.loads(report.to_json({"quick": True}))
    assert saved["quick"] is True
    assert {"target": "wicket-tunnel", "baseline": "floor", "metric": "find_8", "ratio": 0.5} in (
        saved["ratios"]
    )
