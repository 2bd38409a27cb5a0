"""`python -m bench [--quick] [--slow] [--only S,...] [--targets T,...] [--json PATH]`.

Layer: benchmark tooling. One command, one run, same machine: starts every target on
loopback (see bench/targets.py), runs each scenario against each target, prints the
table with the ratios of each Wicket target to `direct` and to the HAProxy `floor`,
and writes the JSON (default bench/results/<UTC timestamp>.json).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench.load import Load
from bench.report import Report
from bench.scenarios import SCENARIOS, SLOW_SCENARIOS, Sizes
from bench.targets import ALL_TARGETS, Stage, describe

RESULTS = Path(__file__).resolve().parent / "results"


def _names(text: str, known: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return names


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios on the chosen targets; print and save the report."""
    every = (*SCENARIOS, *SLOW_SCENARIOS)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument("--slow", action="store_true", help="also the 200-client 60 s soak")
    parser.add_argument(
        "--only",
        type=lambda text: _names(text, every, "scenario"),
        help=f"scenarios, comma-separated ({', '.join(every)})",
    )
    parser.add_argument(
        "--targets",
        type=lambda text: _names(text, ALL_TARGETS, "target"),
        default=ALL_TARGETS,
        help=f"targets, comma-separated ({', '.join(ALL_TARGETS)})",
    )
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes.full()
    scenarios = dict(SCENARIOS)
    if args.slow:
        scenarios.update(SLOW_SCENARIOS)
    if args.only:
        scenarios = {
            name: run for name, run in {**SCENARIOS, **SLOW_SCENARIOS}.items() if name in args.only
        }
    _raise_fd_limit()
    started = datetime.datetime.now(datetime.UTC)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="wicket-bench-") as scratch:
        print("# starting targets ...", file=sys.stderr, flush=True)
        with Stage(Path(scratch), tuple(args.targets)) as stage:
            load = Load()
            try:
                for name, target in stage.targets.items():
                    for scenario, run in scenarios.items():
                        began = time.monotonic()
                        print(f"# {name}: {scenario} ...", file=sys.stderr, end="", flush=True)
                        report.add(run(target, sizes, load))
                        print(f" {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)
            finally:
                load.close()
            targets = describe(stage.targets)
    print(report.render())
    path = args.json or RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    meta = {
        "started": started.isoformat(),
        "quick": args.quick,
        "sizes": asdict(sizes),
        "scenarios": list(scenarios),
        "targets": targets,
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
    }
    report.write_json(path, meta)
    print(f"\nresults: {path}")
    return 0


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
