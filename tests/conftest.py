"""Shared fixtures: real processes on loopback (moto server, localdocdb), real clients."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localdocdb.localaws import LocalAws, MotoServer, provision
from localdocdb.process import LocalDocDBProcess
from tests.support.clients import Mongosh, StartDocDB

ROOT = Path(__file__).resolve().parent.parent
MONGOSH = ROOT / "tools" / "mongosh" / "node_modules" / ".bin" / "mongosh"


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """moto server with auth enforcement and the guide's IAM setup (one per test session)."""
    directory = tmp_path_factory.mktemp("aws")
    with MotoServer.start(log_file=directory / "moto.log") as moto:
        yield provision(moto.endpoint)


@pytest.fixture
def start_localdocdb(tmp_path: Path) -> Iterator[StartDocDB]:
    """Start `localdocdb serve` processes for a test; all are stopped afterwards."""
    started: list[LocalDocDBProcess] = []

    def start(*args: str, tls_dir: Path | None = None, **kwargs: object) -> LocalDocDBProcess:
        index = len(started)
        process = LocalDocDBProcess.start(
            tls_dir=tls_dir or tmp_path / f"tls{index}",
            args=args,
            log_path=tmp_path / f"localdocdb{index}.log",
            **kwargs,  # type: ignore[arg-type]
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def docdb(start_localdocdb: StartDocDB, local_aws: LocalAws) -> LocalDocDBProcess:
    """A localdocdb in docdb mode verifying MONGODB-AWS against the local STS."""
    return start_localdocdb("--mode", "docdb", "--sts-endpoint", local_aws.endpoint)


@pytest.fixture(scope="session")
def mongosh(tmp_path_factory: pytest.TempPathFactory) -> Mongosh:
    """mongosh as a user runs it."""
    if not MONGOSH.exists():
        pytest.fail(f"mongosh is not installed at {MONGOSH}: run scripts/dev.sh setup")
    home = tmp_path_factory.mktemp("mongosh-home")
    env = {**os.environ, "HOME": str(home), "MONGOSH_FORCE_DISABLE_TELEMETRY_FOR_TESTING": "1"}
    return Mongosh(MONGOSH, env)
