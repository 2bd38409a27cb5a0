"""Config layer: loading `wicket.yaml`, every error class with its exact message."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from wicket.config import (
    ConfigError,
    HostPort,
    LogFormat,
    LogSeverity,
    SecondFactor,
    TlsMode,
    WicketConfig,
    load_config,
    parse_config,
    read_auth_token,
)
from wicket.errors import BadParameter

PIN = "sha256:" + "ab" * 32

FULL = f"""\
version: v1
wicket:
  nodename: db-host-1
  data_dir: /srv/wicket
  auth_token: /tmp/token
  proxy_server: proxy.example.com:3080
  auth_server: 127.0.0.1:3025
  ca_pin: {PIN}
  log: {{output: /var/log/wicket.log, severity: warning, format: json}}
auth_service:
  enabled: true
  cluster_name: example.com
  listen_addr: 127.0.0.1:3025
  authentication: {{second_factor: otp}}
  session_ttl: 1h30m
proxy_service:
  enabled: true
  listen_addr: 0.0.0.0:3080
  public_addr: proxy.example.com:3080
  https_cert_file: /etc/wicket/cert.pem
  https_key_file: /etc/wicket/key.pem
db_service:
  enabled: true
  databases:
  - name: my-docdb
    description: "Dev DocumentDB"
    protocol: mongodb
    uri: docdb.cluster-xyz.us-east-1.docdb.amazonaws.com:27017
    static_labels: {{env: dev}}
    tls: {{mode: verify-ca, ca_cert_file: /etc/wicket/rds.pem}}
    aws:
      region: us-east-1
      account_id: "123456789012"
      assume_role_arn: arn:aws:iam::123456789012:role/wicket-db
      external_id: ext-1
  resources:
  - labels: {{env: [dev, stg], team: "*"}}
    aws: {{assume_role_arn: "arn:aws:iam::123456789012:role/dyn"}}
"""


def test_full_config() -> None:
    config = parse_config(FULL, source="wicket.yaml")
    glob = config.wicket
    assert glob.nodename == "db-host-1"
    assert glob.data_dir == Path("/srv/wicket")
    assert glob.auth_token == "/tmp/token"
    assert glob.proxy_server == HostPort("proxy.example.com", 3080)
    assert glob.auth_server == HostPort("127.0.0.1", 3025)
    assert glob.ca_pin == (PIN,)
    assert glob.log.output == "/var/log/wicket.log"
    assert glob.log.severity is LogSeverity.WARN
    assert glob.log.format is LogFormat.JSON
    auth = config.auth_service
    assert auth.enabled
    assert auth.cluster_name == "example.com"
    assert auth.authentication.second_factor is SecondFactor.OTP
    assert auth.session_ttl == timedelta(hours=1, minutes=30)
    proxy = config.proxy_service
    assert proxy.public_addr == HostPort("proxy.example.com", 3080)
    assert proxy.https_key_file == Path("/etc/wicket/key.pem")
    (database,) = config.db_service.databases
    assert database.name == "my-docdb"
    assert database.static_labels == {"env": "dev"}
    assert database.tls.mode is TlsMode.VERIFY_CA
    assert database.aws.account_id == "123456789012"
    assert database.aws.external_id == "ext-1"
    (matcher,) = config.db_service.resources
    assert matcher.labels == {"env": ("dev", "stg"), "team": ("*",)}
    assert matcher.aws.assume_role_arn == "arn:aws:iam::123456789012:role/dyn"


def test_defaults() -> None:
    config = parse_config(
        "version: v1\nauth_service: {enabled: true, cluster_name: c}\n", source="x"
    )
    assert config.wicket.nodename  # the machine's hostname
    assert config.wicket.data_dir == Path("/var/lib/wicket")
    assert config.wicket.ca_pin == ()
    assert config.wicket.log.severity is LogSeverity.INFO
    assert config.auth_service.listen_addr == HostPort("127.0.0.1", 3025)
    assert config.auth_service.session_ttl == timedelta(hours=12)
    assert config.auth_service.authentication.second_factor is SecondFactor.OFF
    assert config.proxy_service.enabled is False
    assert config.proxy_service.listen_addr == HostPort("0.0.0.0", 3080)
    assert config.db_service.enabled is False


@pytest.mark.parametrize("value", ["off", "'off'", "false", "no"])
def test_second_factor_off_in_every_yaml_spelling(value: str) -> None:
    text = (
        "version: v1\nauth_service:\n  enabled: true\n  cluster_name: c\n"
        f"  authentication:\n    second_factor: {value}\n"
    )
    config = parse_config(text, source="x")
    assert config.auth_service.authentication.second_factor is SecondFactor.OFF


def test_ca_pin_list_and_mongodb_uris() -> None:
    text = f"""\
version: v1
wicket: {{auth_token: tok, proxy_server: "p:1", ca_pin: ["{PIN}", "sha256:{"cd" * 32}"]}}
db_service:
  enabled: true
  databases:
  - {{name: a, uri: "mongodb://h1:27017,h2:27017/?replicaSet=rs0"}}
  - {{name: b, uri: "mongodb+srv://cluster.example.com"}}
"""
    config = parse_config(text, source="x")
    assert len(config.wicket.ca_pin) == 2
    assert [d.name for d in config.db_service.databases] == ["a", "b"]


def test_models_are_frozen() -> None:
    config = parse_config(FULL, source="x")
    with pytest.raises(ValueError, match="frozen"):
        config.wicket.nodename = "other"


AGENT = "version: v1\nwicket: {auth_token: tok, proxy_server: 'proxy:3080'}\n"


def _db(database: str) -> str:
    return AGENT + f"db_service:\n  enabled: true\n  databases:\n  - {database}\n"


ERRORS = [
    # file-level problems, one line each
    ("", "wicket.yaml: the file is empty"),
    ("   \n\n", "wicket.yaml: the file is empty"),
    ("# only a comment\n", "wicket.yaml: the file is empty (only comments)"),
    (
        "a: [",
        "wicket.yaml: not valid YAML: line 1, column 5: expected the node content, "
        "but found '<stream end>'",
    ),
    ("a: 1\na: 2\n", 'wicket.yaml: not valid YAML: line 2, column 1: duplicate key "a"'),
    ("- 1\n- 2\n", "wicket.yaml: expected a mapping of sections at the top, got a list"),
    ("just text", 'wicket.yaml: expected a mapping of sections at the top, got "just text"'),
    ("auth_service: {}\n", 'wicket.yaml: missing "version: v1" at the top'),
    ("version: v2\n", 'wicket.yaml: unsupported version "v2": this wicket reads "version: v1"'),
    ("version: 1\n", 'wicket.yaml: unsupported version 1: this wicket reads "version: v1"'),
    # unknown keys, with suggestions
    (
        "version: v1\nwicket: {nodenam: x}\n",
        'wicket.yaml: wicket.nodenam: unknown field (did you mean "nodename"?)',
    ),
    (
        "version: v1\nproxy_servce: {}\n",
        'wicket.yaml: proxy_servce: unknown field (did you mean "proxy_service"?)',
    ),
    (
        "version: v1\ncolor: blue\n",
        "wicket.yaml: color: unknown field (known fields: version, wicket, auth_service, "
        "proxy_service, db_service)",
    ),
    (
        _db("{name: a, uri: 'h:1', tls: {mod: insecure}}"),
        'wicket.yaml: db_service.databases[0].tls.mod: unknown field (did you mean "mode"?)',
    ),
    # field errors with paths
    (
        AGENT + "db_service: {enabled: true, databases: [{name: my-docdb}]}\n",
        "wicket.yaml: db_service.databases[0].uri: field required",
    ),
    (
        "version: v1\nwicket: {auth_token: t, auth_server: 'a:1'}\n"
        "proxy_service: {enabled: true, public_addr: foo}\n",
        'wicket.yaml: proxy_service.public_addr: "foo" is not HOST:PORT',
    ),
    (
        "version: v1\nwicket: {auth_token: t, auth_server: 'a:1'}\n"
        "proxy_service: {enabled: true, public_addr: 3080}\n",
        "wicket.yaml: proxy_service.public_addr: 3080 is not HOST:PORT (expected a string)",
    ),
    (
        _db("{name: My_DB, uri: 'h:1'}"),
        'wicket.yaml: db_service.databases[0].name: "My_DB" is not a valid database name '
        "(lowercase letters, digits and '-', at most 63, starting and ending with a letter or "
        "digit)",
    ),
    (
        _db("{name: a, uri: 'postgres://h:1'}"),
        'wicket.yaml: db_service.databases[0].uri: "postgres://h:1": the scheme must be '
        "mongodb:// or mongodb+srv://",
    ),
    (
        _db("{name: a, uri: 'h:1', protocol: postgres}"),
        "wicket.yaml: db_service.databases[0].protocol: must be one of 'mongodb' "
        '(got "postgres")',
    ),
    (
        _db("{name: a, uri: 'h:1', tls: {mode: strict}}"),
        "wicket.yaml: db_service.databases[0].tls.mode: must be one of 'verify-full', "
        "'verify-ca' or 'insecure' (got \"strict\")",
    ),
    (
        _db("{name: a, uri: 'h:1', static_labels: {env: 1}}"),
        "wicket.yaml: db_service.databases[0].static_labels.env: must be a string "
        "(got the number 1)",
    ),
    (
        _db("{name: a, uri: 'h:1', static_labels: {'bad key': x}}"),
        'wicket.yaml: db_service.databases[0].static_labels.bad key: "bad key" is not a valid '
        "label key (letters, digits and _.:/*-, at most 63)",
    ),
    (
        _db("{name: a, uri: 'h:1', aws: {account_id: 12}}"),
        "wicket.yaml: db_service.databases[0].aws.account_id: must be a string (got the number 12)",
    ),
    (
        _db("{name: a, uri: 'h:1', aws: {region: Mars}}"),
        'wicket.yaml: db_service.databases[0].aws.region: "Mars" is not an AWS region '
        "(e.g. us-east-1)",
    ),
    (
        AGENT + "db_service: {enabled: true, databases: {name: a}}\n",
        "wicket.yaml: db_service.databases: must be a list (got a mapping)",
    ),
    (
        AGENT + "db_service: {enabled: true, resources: [{labels: {}}]}\n",
        "wicket.yaml: db_service.resources[0].labels: must name at least one label "
        '(use {"*": "*"} for all)',
    ),
    (
        "version: v1\nauth_service: {enabled: maybe}\n",
        'wicket.yaml: auth_service.enabled: must be true or false (got "maybe")',
    ),
    ("version: v1\nauth_service: yes\n", "wicket.yaml: auth_service: must be a mapping (got true)"),
    (
        "version: v1\nauth_service: {enabled: true, cluster_name: c, session_ttl: 12}\n",
        'wicket.yaml: auth_service.session_ttl: 12 is not a duration (write e.g. "90s", "30m", '
        '"1h30m")',
    ),
    (
        "version: v1\nauth_service: {enabled: true, cluster_name: c, session_ttl: 10s}\n",
        "wicket.yaml: auth_service.session_ttl: must be at least 1m",
    ),
    (
        "version: v1\nauth_service: {enabled: true, cluster_name: c, "
        "authentication: {second_factor: on}}\n",
        "wicket.yaml: auth_service.authentication.second_factor: must be one of 'off' or 'otp' "
        "(got true)",
    ),
    (
        "version: v1\nwicket: {ca_pin: nope}\nauth_service: {enabled: true, cluster_name: c}\n",
        'wicket.yaml: wicket.ca_pin[0]: "nope" is not a CA pin (sha256: and 64 hex digits)',
    ),
    (
        "version: v1\nwicket: {log: {severity: loud}}\n"
        "auth_service: {enabled: true, cluster_name: c}\n",
        "wicket.yaml: wicket.log.severity: must be one of 'DEBUG', 'INFO', 'WARN' or 'ERROR' "
        '(got "LOUD")',
    ),
    # cross-field rules
    (
        "version: v1\n",
        "wicket.yaml: no service is enabled: set enabled: true in auth_service, proxy_service or "
        "db_service",
    ),
    (
        "version: v1\nauth_service: {enabled: true}\n",
        "wicket.yaml: auth_service.cluster_name: required when auth_service is enabled",
    ),
    (
        "version: v1\nauth_service: {enabled: true, cluster_name: c}\n"
        "proxy_service: {enabled: true}\n",
        "wicket.yaml: proxy_service.public_addr: required when proxy_service is enabled "
        "(the HOST:PORT users and agents reach)",
    ),
    (
        "version: v1\nauth_service: {enabled: true, cluster_name: c}\n"
        "proxy_service: {enabled: true, public_addr: 'p:1', https_cert_file: /c.pem}\n",
        "wicket.yaml: proxy_service.https_key_file: https_cert_file and https_key_file go together",
    ),
    (
        _db("{name: a, uri: 'h:1'}\n  - {name: a, uri: 'h:2'}"),
        'wicket.yaml: db_service.databases[1].name: duplicate database name "a"',
    ),
    (
        _db("{name: a, uri: 'h:1', aws: {external_id: xyz}}"),
        "wicket.yaml: db_service.databases[0].aws.external_id: only used with aws.assume_role_arn",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="wicket.yaml")
    assert str(caught.value) == message
    assert isinstance(caught.value, BadParameter)


def test_several_problems_one_line_each() -> None:
    text = "version: v1\ndb_service:\n  enabled: true\n  databases: [{name: a}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="w.yaml")
    assert caught.value.problems == ("db_service.databases[0].uri: field required",)
    text = "version: v1\nproxy_service: {enabled: true}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="w.yaml")
    assert str(caught.value).splitlines() == [
        "w.yaml: proxy_service.public_addr: required when proxy_service is enabled "
        "(the HOST:PORT users and agents reach)",
        "w.yaml: wicket.auth_token: required when auth_service is not enabled here "
        "(the join token, or the path of a file holding it)",
        "w.yaml: wicket.auth_server: required for a proxy_service without auth_service "
        "(HOST:PORT of the auth service)",
    ]


def test_agent_without_proxy_server() -> None:
    text = "version: v1\nwicket: {auth_token: t}\ndb_service: {enabled: true}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="w.yaml")
    assert str(caught.value) == (
        "w.yaml: wicket.proxy_server: required for a db_service without auth_service "
        "(HOST:PORT of the proxy to join through)"
    )


def test_yaml_alias_bomb_refused() -> None:
    lines = ["version: v1", "a: &a [x, x]"]
    previous = "a"
    for index in range(12):
        name = f"b{index}"
        lines.append(
            f"{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, "
            f"*{previous}, *{previous}, *{previous}, *{previous}, *{previous}]"
        )
        previous = name
    with pytest.raises(ConfigError) as caught:
        parse_config("\n".join(lines), source="w.yaml")
    assert str(caught.value) == "w.yaml: not valid YAML: more than 100 aliases"


def test_load_config_file(tmp_path: Path) -> None:
    path = tmp_path / "wicket.yaml"
    path.write_text(FULL)
    assert load_config(path) == parse_config(FULL, source="other")


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: no such file (write one with `wicket configure` or `wicket db configure create`)"
    )


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a directory, not a config file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_load_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "wicket.yaml"
    path.write_text(FULL)
    path.chmod(0)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: permission denied (cannot read the config file)"


def test_load_binary_and_huge(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_bytes(b"version: v1\n\xff\xfe")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: not UTF-8 text (byte 12)"
    path.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: larger than 1048576 bytes; not a config file"


def test_read_auth_token_from_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  abc123\n")
    assert read_auth_token(str(token_file)) == "abc123"


def test_read_auth_token_literal() -> None:
    assert read_auth_token("3f1c0a9b77e04d38") == "3f1c0a9b77e04d38"


def test_read_auth_token_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(BadParameter) as caught:
        read_auth_token(str(missing))
    assert (
        str(caught.value)
        == f'cannot read the join token file "{missing}": No such file or directory'
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(BadParameter) as caught:
        read_auth_token(str(empty))
    assert str(caught.value) == f'the join token file "{empty}" is empty'
    with pytest.raises(BadParameter):
        read_auth_token("  ")


def test_config_accepts_values_it_printed() -> None:
    """A WicketConfig re-validates from its own python dump (the lead's tests build configs)."""
    config = parse_config(FULL, source="x")
    again = WicketConfig.model_validate(config.model_dump(mode="json"))
    assert again == config
