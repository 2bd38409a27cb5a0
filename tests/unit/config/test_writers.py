"""Config layer: dump/load round trips, generated configs, the systemd unit, safe writes."""

from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

import pytest
import yaml
from tests.unit.config.test_loader import FULL

from wicket.config import HostPort, TlsMode, dump_config, parse_config
from wicket.config.writers import (
    AllInOneOptions,
    DbAgentOptions,
    all_in_one_config,
    db_agent_config,
    systemd_unit,
    write_new_file,
)
from wicket.errors import AlreadyExists, BadParameter

MINIMAL = [
    "version: v1\nauth_service: {enabled: true, cluster_name: c}\n",
    "version: v1\nwicket: {auth_token: t, proxy_server: 'p:1'}\n"
    "db_service: {enabled: true, resources: [{labels: {'*': '*'}}]}\n",
    FULL,
]


@pytest.mark.parametrize("text", MINIMAL)
def test_round_trip(text: str) -> None:
    config = parse_config(text, source="x")
    dumped = dump_config(config)
    assert parse_config(dumped, source="dumped") == config
    assert dump_config(parse_config(dumped, source="again")) == dumped


def test_dump_has_no_nulls_or_unset_defaults() -> None:
    config = parse_config(
        "version: v1\nauth_service: {enabled: true, cluster_name: c}\n", source="x"
    )
    assert yaml.safe_load(dump_config(config)) == {
        "version": "v1",
        "auth_service": {"enabled": True, "cluster_name": "c"},
    }
    assert "null" not in dump_config(parse_config(FULL, source="x"))


def test_dump_quotes_off_so_yaml_reads_it_back() -> None:
    text = "version: v1\nauth_service: {enabled: true, cluster_name: c, authentication: {}}\n"
    config = parse_config(text.replace("{}", "{second_factor: off}"), source="x")
    assert "second_factor: 'off'" in dump_config(config)


def test_dump_keeps_model_key_order() -> None:
    keys = list(yaml.safe_load(dump_config(parse_config(FULL, source="x"))))
    assert keys == ["version", "wicket", "auth_service", "proxy_service", "db_service"]


def test_all_in_one() -> None:
    config = all_in_one_config(
        AllInOneOptions(cluster_name="example.com", public_addr=HostPort("proxy.example.com", 443))
    )
    assert config.auth_service.enabled and config.proxy_service.enabled
    assert not config.db_service.enabled
    assert config.auth_service.listen_addr == HostPort("127.0.0.1", 3025)
    assert config.proxy_service.listen_addr == HostPort("0.0.0.0", 443)
    assert config.proxy_service.public_addr == HostPort("proxy.example.com", 443)
    assert parse_config(dump_config(config), source="x") == config


def test_db_agent_full() -> None:
    options = DbAgentOptions(
        proxy=HostPort("proxy.example.com", 3080),
        token="/tmp/token",
        name="my-docdb",
        uri="docdb.cluster-x.us-east-1.docdb.amazonaws.com:27017",
        description="dev cluster",
        labels={"env": "dev"},
        dynamic_labels={"env": "*"},
        ca_pins=("sha256:" + "00" * 32,),
        aws_region="us-east-1",
        aws_account_id="123456789012",
        aws_assume_role_arn="arn:aws:iam::123456789012:role/wicket-db",
        aws_external_id="ext-1",
        tls_mode=TlsMode.VERIFY_CA,
        tls_ca_file=Path("/etc/rds.pem"),
        data_dir=Path("/srv/wicket"),
        nodename="agent-1",
    )
    config = db_agent_config(options)
    assert not config.auth_service.enabled and not config.proxy_service.enabled
    assert config.db_service.enabled
    assert config.wicket.proxy_server == HostPort("proxy.example.com", 3080)
    assert config.wicket.auth_token == "/tmp/token"
    assert config.wicket.nodename == "agent-1"
    (database,) = config.db_service.databases
    assert database.aws.assume_role_arn == "arn:aws:iam::123456789012:role/wicket-db"
    assert database.tls.ca_cert_file == Path("/etc/rds.pem")
    assert config.db_service.resources[0].labels == {"env": ("*",)}
    assert parse_config(dump_config(config), source="x") == config


def test_db_agent_needs_a_database_or_matchers() -> None:
    with pytest.raises(BadParameter, match="--dynamic-resources-labels"):
        db_agent_config(DbAgentOptions(proxy=HostPort("p", 1), token="t"))
    with pytest.raises(BadParameter, match="go together"):
        db_agent_config(DbAgentOptions(proxy=HostPort("p", 1), token="t", name="a"))


def _parse_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_systemd_unit_is_valid_ini_with_the_keys_systemd_needs() -> None:
    unit = _parse_unit(
        systemd_unit(executable="/opt/wicket/bin/wicket", config_path=Path("/etc/wicket.yaml"))
    )
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["ExecStart"] == "/opt/wicket/bin/wicket start -c /etc/wicket.yaml"
    assert service["Restart"] == "on-failure"
    assert service["LimitNOFILE"] == "524288"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["EnvironmentFile"] == "-/etc/default/wicket"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert unit["Unit"]["After"] == "network-online.target"


def test_systemd_unit_quotes_odd_paths() -> None:
    unit = _parse_unit(
        systemd_unit(
            executable="/opt/my wicket/bin/wicket",
            config_path=Path("/etc/100%/$HOME.yaml"),
            fd_limit=4096,
        )
    )
    service = unit["Service"]
    assert service["ExecStart"] == '"/opt/my wicket/bin/wicket" start -c "/etc/100%%/$$HOME.yaml"'
    assert service["LimitNOFILE"] == "4096"
    with pytest.raises(BadParameter):
        systemd_unit(executable="/a\nb", config_path=Path("/c"))


def test_write_new_file(tmp_path: Path) -> None:
    path = tmp_path / "wicket.yaml"
    write_new_file(path, "one\n", mode=0o600, force=False)
    assert path.read_text() == "one\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(AlreadyExists) as caught:
        write_new_file(path, "two\n", mode=0o600, force=False)
    assert str(caught.value) == f'"{path}" exists already; use --force to overwrite it'
    assert path.read_text() == "one\n"
    write_new_file(path, "two\n", mode=0o644, force=True)
    assert path.read_text() == "two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["wicket.yaml"]  # no temporary files left behind


def test_write_new_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BadParameter, match="is a directory"):
        write_new_file(tmp_path, "x", mode=0o600, force=True)
    with pytest.raises(BadParameter, match="does not exist"):
        write_new_file(tmp_path / "no" / "w.yaml", "x", mode=0o600, force=False)
