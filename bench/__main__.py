"""`python -m bench [--quick] [--target NAME=URI ...]`: measure and print the table.

Layer: benchmark tooling. Starts localdocdb for the `direct` target; extra targets
(for instance the Wicket proxy in front of the same server) are measured with the
same workloads and reported with their ratio to `direct`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.harness import DIRECT, Report, Target, Workload
from bench.localdocdb_direct import LocaldocdbServer
from bench.workloads import ALL_BENCHMARKS


def _target(text: str) -> Target:
    name, sep, uri = text.partition("=")
    if not sep or not name or not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise argparse.ArgumentTypeError("expected NAME=mongodb://...")
    if name == DIRECT:
        raise argparse.ArgumentTypeError("'direct' is the localdocdb started by the bench")
    return Target(name, uri)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every benchmark against every target and print the report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument(
        "--target",
        action="append",
        type=_target,
        default=[],
        metavar="NAME=URI",
        help="another target to measure against the same workloads (repeatable)",
    )
    args = parser.parse_args(argv)
    workload = Workload.quick() if args.quick else Workload.full()
    report = Report()
    with LocaldocdbServer() as server:
        targets = [server.target(), *args.target]
        for target in targets:
            print(f"# {target.name}: {target.description or 'given URI'}", file=sys.stderr)
            for benchmark in ALL_BENCHMARKS:
                print(f"#   {benchmark.name} ...", file=sys.stderr, flush=True)
                report.add(benchmark.run(target, workload))
    print(f"workload: {workload}")
    print(report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
