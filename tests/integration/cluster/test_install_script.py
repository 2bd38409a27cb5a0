"""The guide's `curl https://PROXY/scripts/install.sh | sudo bash`, into a temporary prefix."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, new_cluster
from wicket import __version__

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is installed by scripts/dev.sh setup")
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.fixture
def cluster(tmp_path: Path, wheel_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    monkeypatch.setenv("WICKET_WHEEL_DIR", str(wheel_dir))
    node = new_cluster(tmp_path / "node")
    node.start()
    yield node
    node.stop()


def test_install_script_installs_the_cluster_version(cluster: Cluster, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    bin_dir = tmp_path / "bin"
    env = {**os.environ, "WICKET_PREFIX": str(prefix), "WICKET_BIN_DIR": str(bin_dir)}
    # -k only for fetching the script itself (the guide's proxy would have a public cert);
    # the script verifies its own download against the cluster CA it carries.
    command = f"curl -fsSk https://{cluster.proxy_addr}/scripts/install.sh | bash"
    result = subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"Wicket {__version__} installed" in result.stdout
    for tool in ("wicket", "wctl", "wsh"):
        version = subprocess.run(
            [str(bin_dir / tool), "version"], capture_output=True, text=True, timeout=60, check=True
        )
        assert version.stdout.strip() == f"{tool} v{__version__}"
    assert (prefix / "current").resolve() == prefix / f"wicket-{__version__}"


def test_wheel_endpoint_serves_only_its_version(cluster: Cluster) -> None:
    other = f"https://{cluster.proxy_addr}/webapi/wheels/wicket-9.9.9-py3-none-any.whl"
    result = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", other],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout == "404"
