"""`wicket demo` (the README's main job) brings up the whole guide and runs a real query."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.cluster import wicket_bin


def test_demo_runs_the_guide_and_a_query(tmp_path: Path) -> None:
    result = subprocess.run(
        [wicket_bin(), "demo", "--exit", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "authenticated upstream as arn:aws:iam::123456789012:role/wicket-docdb-user" in out
    assert 'totals: [{"_id":"coffee","qty":2},{"_id":"tea","qty":8}]' in out
    assert "wsh db connect --db-user=wicket-docdb-user --db-name=test my-docdb" in out
    # everything it started is gone
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""
