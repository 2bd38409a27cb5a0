"""A proxy on its own: it joins the auth service with a proxy token and fronts the cluster."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from localdocdb.localaws import free_port
from tests.support.cluster import new_cluster, start_wicket, wicket_bin, write_agent_config


def test_proxy_joins_with_a_proxy_token_and_serves_agents(tmp_path: Path) -> None:
    auth = new_cluster(tmp_path / "auth")
    config = yaml.safe_load(auth.config.read_text())
    config["proxy_service"] = {"enabled": False}
    auth.config.write_text(yaml.safe_dump(config))
    auth.start()
    try:
        status = auth.admin_call("GET", "/v1/status")
        # no proxy_service.public_addr on the auth node: the proxy's name comes with its token
        token = auth.admin_call("POST", "/v1/tokens", {"type": "proxy", "names": ["localhost"]})[
            "token"
        ]
        (tmp_path / "proxy-token").write_text(token)
        proxy_port = free_port()
        proxy_config = tmp_path / "proxy.yaml"
        proxy_config.write_text(
            yaml.safe_dump(
                {
                    "version": "v1",
                    "wicket": {
                        "nodename": "proxy-1",
                        "data_dir": str(tmp_path / "proxy-data"),
                        "auth_server": f"127.0.0.1:{auth.auth_port}",
                        "auth_token": str(tmp_path / "proxy-token"),
                        "ca_pin": status["ca_pin"],
                    },
                    "proxy_service": {
                        "enabled": True,
                        "listen_addr": f"127.0.0.1:{proxy_port}",
                        "public_addr": f"localhost:{proxy_port}",
                    },
                }
            )
        )
        proxy = start_wicket(proxy_config, tmp_path / "proxy.log")
        try:
            # the auth service chose the names: the token's, not all the proxy asked for
            assert "did not put proxy-1, 127.0.0.1, ::1 in this host's certificate" in (
                proxy.log_text()
            )
            find = subprocess.run(
                ["curl", "-sk", f"https://localhost:{proxy_port}/v1/webapi/find"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert '"cluster_name": "example.com"' in find.stdout
            # an agent joins through this proxy and its database shows up at the auth service
            auth.proxy_port = proxy_port  # agents are told this proxy's address
            db_token = auth.admin_call("POST", "/v1/tokens", {"type": "db"})["token"]
            (tmp_path / "db-token").write_text(db_token)
            agent = start_wicket(
                write_agent_config(tmp_path / "agent", auth, tmp_path / "db-token"),
                tmp_path / "agent.log",
            )
            try:
                agent.wait_for_log("tunnel to")
                listed = subprocess.run(
                    [wicket_bin("wctl"), "-c", str(auth.config), "db", "ls"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert "my-docdb" in listed.stdout, listed.stderr
            finally:
                agent.stop()
            # the proxy token was single-use: a second proxy cannot reuse it
            (tmp_path / "proxy-data-2").mkdir()
            second = proxy_config.read_text().replace("proxy-data", "proxy-data-2")
            second = second.replace(str(proxy_port), str(free_port()))
            (tmp_path / "proxy2.yaml").write_text(second)
            refused = subprocess.run(
                [wicket_bin(), "start", "-c", str(tmp_path / "proxy2.yaml")],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert refused.returncode == 1
            assert "join token not found" in refused.stderr
        finally:
            proxy.stop()
    finally:
        auth.stop()
