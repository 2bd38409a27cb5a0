"""CLI layer: the `wicket` command (configure, db configure create, install systemd, start)."""

from __future__ import annotations

import configparser
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from wicket.cli.wicket import cli
from wicket.config import HostPort, TlsMode, load_config, parse_config

WICKET = Path(sys.executable).parent / "wicket"
GUIDE_ARGS = [
    "db",
    "configure",
    "create",
    "-o",
    "file",
    "--name=my-docdb",
    "--proxy=proxy.example.com:3080",
    "--protocol=mongodb",
    "--token=/tmp/token",
    "--uri=docdb.cluster-x.us-east-1.docdb.amazonaws.com:27017",
]
PIN = "sha256:" + "5a" * 32


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False, prog_name="wicket")


def wrote(path: Path) -> str:
    return f'Wrote config to file "{path}". Now you can start the server. Happy Wicketing!\n'


def test_guide_command_writes_a_working_agent_config(tmp_path: Path) -> None:
    target = tmp_path / "wicket.yaml"
    result = run(*GUIDE_ARGS, env={"WICKET_CONFIG_FILE": str(target)})
    assert result.exit_code == 0, result.output
    assert result.stdout == wrote(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    config = load_config(target)
    assert config.db_service.enabled
    assert not config.auth_service.enabled
    assert not config.proxy_service.enabled
    assert config.wicket.proxy_server == HostPort("proxy.example.com", 3080)
    assert config.wicket.auth_token == "/tmp/token"
    (database,) = config.db_service.databases
    assert database.name == "my-docdb"
    assert database.protocol.value == "mongodb"
    assert database.uri == "docdb.cluster-x.us-east-1.docdb.amazonaws.com:27017"
    assert database.tls.mode is TlsMode.VERIFY_FULL


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "wicket.yaml"
    target.write_text("mine\n")
    result = run(*GUIDE_ARGS, env={"WICKET_CONFIG_FILE": str(target)})
    assert result.exit_code == 1
    assert result.stderr == (f'wicket: "{target}" exists already; use --force to overwrite it\n')
    assert target.read_text() == "mine\n"
    result = run(*GUIDE_ARGS, "--force", env={"WICKET_CONFIG_FILE": str(target)})
    assert result.exit_code == 0, result.output
    assert load_config(target).db_service.databases[0].name == "my-docdb"


def test_output_path_and_stdout(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    args = [a for a in GUIDE_ARGS if a not in {"-o", "file"}]
    result = run(*args, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == wrote(target)
    result = run(*args)  # default: stdout, only the YAML
    assert result.exit_code == 0
    assert parse_config(result.stdout, source="stdout") == load_config(target)
    result = run(*args, "-o", "stdout")
    assert parse_config(result.stdout, source="stdout") == load_config(target)


def test_relative_output_path_is_reported_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [a for a in GUIDE_ARGS if a not in {"-o", "file"}]
    result = run(*args, "-o", "w.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout == wrote(tmp_path / "w.yaml")
    assert load_config(tmp_path / "w.yaml").db_service.enabled


def test_every_db_flag(tmp_path: Path) -> None:
    target = tmp_path / "w.yaml"
    result = run(
        "db", "configure", "create", "-o", str(target),
        "--name", "reports", "--proxy", "proxy.example.com:443",
        "--token", "abcdef0123", "--uri", "mongodb://db1:27017,db2:27017/?replicaSet=rs0",
        "--labels", "env=dev,team=data", "--dynamic-resources-labels", "env=*",
        "--description", "Reporting replica set", "--ca-pin", PIN,
        "--aws-region", "us-west-2", "--aws-account-id", "123456789012",
        "--aws-assume-role-arn", "arn:aws:iam::123456789012:role/wicket-db",
        "--aws-external-id", "ext-123", "--tls-mode", "verify-ca",
        "--tls-ca-file", str(tmp_path / "ca.pem"), "--data-dir", str(tmp_path / "data"),
        "--nodename", "agent-7",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = load_config(target)
    assert config.wicket.auth_token == "abcdef0123"
    assert config.wicket.ca_pin == (PIN,)
    assert config.wicket.nodename == "agent-7"
    assert config.wicket.data_dir == tmp_path / "data"
    (database,) = config.db_service.databases
    assert database.static_labels == {"env": "dev", "team": "data"}
    assert database.description == "Reporting replica set"
    assert database.aws.region == "us-west-2"
    assert database.aws.external_id == "ext-123"
    assert database.tls.mode is TlsMode.VERIFY_CA
    assert database.tls.ca_cert_file == tmp_path / "ca.pem"
    assert config.db_service.resources[0].labels == {"env": ("*",)}


BASE = ["db", "configure", "create", "--proxy=p.example.com:3080", "--name=a", "--uri=h:27017"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--labels=env"], "Invalid value for '--labels': \"env\" is not KEY=VALUE"),
        (["--uri=foo"], "Invalid value for '--uri': \"foo\" is not HOST:PORT, mongodb://"),
        (["--uri=mongodb://u:p@h:1"], "Invalid value for '--uri'"),
        (["--protocol=postgres"], "Invalid value for '--protocol'"),
        (
            ["--proxy=https://p:3080"],
            "Invalid value for '--proxy': \"https://p:3080\" is not "
            "HOST:PORT (leave out the scheme)",
        ),
        (["--name=My_DB"], "Invalid value for '--name'"),
        (["--ca-pin=sha256:00"], "Invalid value for '--ca-pin'"),
        (["--aws-region=mars"], "Invalid value for '--aws-region'"),
        (["--aws-account-id=42"], "Invalid value for '--aws-account-id'"),
        (["--aws-assume-role-arn=role/x"], "Invalid value for '--aws-assume-role-arn'"),
        (
            ["--aws-external-id=ext-1"],
            "Invalid value for '--aws-external-id': only used with --aws-assume-role-arn",
        ),
        (["--tls-mode=strict"], "Invalid value for '--tls-mode'"),
        (["--token="], "Invalid value for '--token': must not be empty"),
        (["--bogus"], "No such option '--bogus'"),
    ],
)
def test_bad_db_flags_are_usage_errors(extra: list[str], needle: str) -> None:
    result = run(*BASE, *extra)
    assert result.exit_code == 2
    assert needle in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--name=a", "--uri=h:1"], "Missing option '--proxy'"),
        (["--proxy=p:1", "--name=a"], "Invalid value for '--uri': required with --name"),
        (["--proxy=p:1", "--uri=h:1"], "Invalid value for '--name': required with --uri"),
        (["--proxy=p:1"], "give --name and --uri, or --dynamic-resources-labels"),
    ],
)
def test_missing_db_flags(args: list[str], needle: str) -> None:
    result = run("db", "configure", "create", *args)
    assert result.exit_code == 2
    assert needle in result.stderr


def test_dynamic_only_agent() -> None:
    result = run("db", "configure", "create", "--proxy=p:1", "--dynamic-resources-labels=env=dev")
    assert result.exit_code == 0, result.output
    config = parse_config(result.stdout, source="stdout")
    assert config.db_service.databases == ()
    assert config.db_service.resources[0].labels == {"env": ("dev",)}


def test_configure_all_in_one(tmp_path: Path) -> None:
    target = tmp_path / "w.yaml"
    result = run(
        "configure", "--cluster-name=example.com", "--public-addr=proxy.example.com:443",
        "--data-dir", str(tmp_path / "data"), "-o", str(target),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == wrote(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    config = load_config(target)
    assert config.auth_service.enabled and config.proxy_service.enabled
    assert not config.db_service.enabled
    assert config.auth_service.cluster_name == "example.com"
    assert config.auth_service.listen_addr == HostPort("127.0.0.1", 3025)
    assert config.proxy_service.listen_addr == HostPort("0.0.0.0", 443)
    assert config.proxy_service.public_addr == HostPort("proxy.example.com", 443)
    assert config.wicket.data_dir == tmp_path / "data"


def test_configure_to_stdout_with_overrides() -> None:
    result = run(
        "configure", "--cluster-name=c", "--public-addr=127.0.0.1:4080",
        "--auth-listen-addr=127.0.0.1:4025", "--proxy-listen-addr=127.0.0.1:4080",
        "--second-factor=otp", "--nodename=node-1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = parse_config(result.stdout, source="stdout")
    assert config.auth_service.listen_addr == HostPort("127.0.0.1", 4025)
    assert config.proxy_service.listen_addr == HostPort("127.0.0.1", 4080)
    assert config.auth_service.authentication.second_factor.value == "otp"
    assert config.wicket.nodename == "node-1"


def test_configure_file_refuses_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "w.yaml"
    env = {"WICKET_CONFIG_FILE": str(target)}
    args = ["configure", "--cluster-name=c", "--public-addr=p.example.com:3080", "-o", "file"]
    assert run(*args, env=env).exit_code == 0
    result = run(*args, env=env)
    assert result.exit_code == 1
    assert "exists already; use --force to overwrite it" in result.stderr
    assert run(*args, "--force", env=env).exit_code == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--public-addr=p:1"], "Missing option '--cluster-name'"),
        (["--cluster-name=c"], "Missing option '--public-addr'"),
        (
            ["--cluster-name=c", "--public-addr=p"],
            "Invalid value for '--public-addr': \"p\" is not HOST:PORT",
        ),
        (
            ["--cluster-name=c", "--public-addr=p:1", "--second-factor=sms"],
            "Invalid value for '--second-factor'",
        ),
    ],
)
def test_configure_usage_errors(args: list[str], needle: str) -> None:
    result = run("configure", *args)
    assert result.exit_code == 2
    assert needle in result.stderr


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_install_systemd_to_stdout(tmp_path: Path) -> None:
    result = run("install", "systemd", "--config", str(tmp_path / "w.yaml"))
    assert result.exit_code == 0, result.output
    service = _unit(result.stdout)["Service"]
    executable, *rest = service["ExecStart"].split(" ")
    assert rest == ["start", "-c", str(tmp_path / "w.yaml")]
    assert Path(executable).is_absolute() and Path(executable).name == "wicket"
    assert Path(executable).is_file()
    assert service["Restart"] == "on-failure"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(service["LimitNOFILE"]) >= 65536


def test_install_systemd_to_file(tmp_path: Path) -> None:
    target = tmp_path / "wicket.service"
    args = ["install", "systemd", "-o", str(target), "--wicket-path", "/opt/w/bin/wicket"]
    result = run(*args, "--fd-limit", "65536")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f'Wrote systemd unit file to "{target}". Now run: '
        "systemctl daemon-reload && systemctl enable --now wicket\n"
    )
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    unit = _unit(target.read_text())
    assert unit["Service"]["ExecStart"] == "/opt/w/bin/wicket start -c /etc/wicket.yaml"
    assert unit["Service"]["LimitNOFILE"] == "65536"
    assert run(*args).exit_code == 1  # exists: needs --force
    assert run(*args, "--force").exit_code == 0
    assert run("install", "systemd", "--fd-limit", "10").exit_code == 2


def test_help_and_version() -> None:
    for args in (["-h"], ["db", "configure", "create", "-h"], ["install", "systemd", "--help"]):
        result = run(*args)
        assert result.exit_code == 0
        assert result.stdout.startswith("Usage: wicket")
    assert run("version").stdout.startswith("wicket v")


def _start(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WICKET), "start", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_with_a_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: v1\nwicket:\n  nodenam: x\n")
    process = _start("-c", "bad.yaml", cwd=tmp_path)
    assert process.returncode == 2
    assert process.stderr == (
        'wicket: bad.yaml: wicket.nodenam: unknown field (did you mean "nodename"?)\n'
    )
    assert process.stdout == ""


def test_start_with_several_problems_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: v1\nproxy_service: {enabled: true}\n")
    process = _start("-c", "bad.yaml", cwd=tmp_path)
    assert process.returncode == 2
    lines = process.stderr.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("wicket: bad.yaml: ") for line in lines)
    assert "Traceback" not in process.stderr
    process = _start("-c", "nope.yaml", cwd=tmp_path)
    assert process.returncode == 2
    assert process.stderr.startswith("wicket: nope.yaml: no such file")
    process = _start("--bogus", cwd=tmp_path)
    assert process.returncode == 2
    assert "No such option '--bogus'" in process.stderr


def test_generated_config_problems_name_the_flag() -> None:
    result = run("configure", "--cluster-name", "", "--public-addr", "p:1")
    assert result.exit_code == 2
    assert "Error: --cluster-name: auth_service.cluster_name: must not be empty" in result.stderr
    result = run(*BASE, "--nodename", " ")
    assert result.exit_code == 2
    assert "Error: --nodename: wicket.nodename: must not be empty" in result.stderr


def test_start_reads_the_config_named_by_the_environment(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text("version: v1\n")
    process = subprocess.run(
        [str(WICKET), "start"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "WICKET_CONFIG_FILE": str(tmp_path / "env.yaml")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 2
    assert process.stderr == (
        f"wicket: {tmp_path / 'env.yaml'}: no service is enabled: set enabled: true in "
        "auth_service, proxy_service or db_service\n"
    )
