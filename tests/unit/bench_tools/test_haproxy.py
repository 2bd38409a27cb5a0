"""The floor's HAProxy configs: Wicket's hops and TLS legs, one process per hop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bench.haproxy import ChainPorts, ChainTls, chain_configs, haproxy_path

from localdocdb.tls import ensure_tls_material

PORTS = ChainPorts(tunnel=1001, proxy=1002, agent=1003, database=1004)
TLS = ChainTls(Path("/t/hop.pem"), Path("/t/hop-ca.pem"), Path("/t/db-ca.pem"))


def test_chain_is_plain_then_tls_tls_tls() -> None:
    configs = chain_configs(PORTS, TLS)
    assert list(configs) == ["tunnel", "proxy", "agent"]
    tunnel, proxy, agent = configs.values()
    # the tunnel hop listens in plain text, like wsh's local listener
    assert "bind 127.0.0.1:1001\n" in tunnel
    assert "server next 127.0.0.1:1002 ssl verify required ca-file /t/hop-ca.pem" in tunnel
    # the proxy and agent hops terminate TLS and dial TLS on, verifying the next hop
    assert "bind 127.0.0.1:1002 ssl crt /t/hop.pem" in proxy
    assert "server next 127.0.0.1:1003 ssl verify required ca-file /t/hop-ca.pem" in proxy
    assert "bind 127.0.0.1:1003 ssl crt /t/hop.pem" in agent
    assert "server next 127.0.0.1:1004 ssl verify required ca-file /t/db-ca.pem" in agent
    for text in configs.values():
        assert "mode tcp" in text and "nbthread 1" in text


def test_configs_are_valid_for_the_installed_haproxy(tmp_path: Path) -> None:
    binary = haproxy_path()
    if binary is None:
        pytest.skip("haproxy is not installed (scripts/dev.sh setup installs it)")
    material = ensure_tls_material(tmp_path / "tls")
    tls = ChainTls(material.server_pem, material.ca_cert, material.ca_cert)
    for hop, text in chain_configs(PORTS, tls).items():
        config = tmp_path / f"{hop}.cfg"
        config.write_text(text)
        checked = subprocess.run(
            [binary, "-c", "-f", str(config)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, (hop, checked.stdout, checked.stderr)
