"""The DocumentDB guide's own commands, run in order, end to end (docs test layer).

`docs/guides/documentdb-iam.md` keeps its runnable steps in ```sh blocks: each `$ `
line (with `\\` continuations) is a command, the lines after it are the output the guide
shows. This test parses the guide, replaces the example values (proxy address, cluster
endpoint, CA bundle, token file, paths under /etc and /var) by those of a real local
setup — a moto server for AWS (`local_aws`), localdocdb in DocumentDB mode (`docdb`), an
all-in-one Wicket cluster (`tests/support/cluster.py`) — and runs every command with
`bash -c` in a pseudo-terminal, answering the prompts a user answers (CA pin, passwords).

- `# not run by the test: <why>` at the end of a command: skipped (systemd, installing
  into the system, downloads, AWS console and CLI steps).
- `# keeps running; ready when it prints "TEXT"`: started in the background, waited for,
  and stopped with Ctrl-C (SIGINT) at the end, which must exit cleanly.
- A ```text block of `test> ` lines after an interactive `wsh db connect` is typed into
  that mongosh session.
- Shown output lines must match the real output's first lines (whitespace-insensitive).

A failing command fails the test with the command, its guide line and its output.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pexpect
import pytest
import yaml

from localdocdb.localaws import LocalAws, database_access_policy_document, free_port
from localdocdb.process import LocalDocDBProcess
from tests.support.clients import Mongosh
from tests.support.cluster import BIN, Cluster, new_cluster

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "guides" / "documentdb-iam.md"
NOT_RUN = re.compile(r"\s+# not run by the test: (?P<why>\S.*)$")
KEEPS_RUNNING = re.compile(r'\s+# keeps running; ready when it prints "(?P<ready>[^"]+)"$')
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
INVITE_URL = re.compile(r"https://\S+/web/invite/[A-Za-z0-9_-]+")
ANSI = re.compile(r"\x1b\][^\x07]*\x07|\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")
MONGOSH_PROMPT = "test> "
COMMAND_TIMEOUT = 90.0
READY_TIMEOUT = 45.0
PASSWORD = "correct horse battery staple"
# Commands the guide must keep runnable: marking them "not run" would hollow the test out.
REQUIRED = (
    "curl -s https://",
    "wctl status",
    "wctl users add alice",
    "wsh signup",
    "wctl tokens add --type=db",
    "wicket db configure create",
    "wicket install systemd",
    "wicket start",
    'mongosh "mongodb://docdbmaster@',
    "wsh login",
    "wsh db ls",
    "wsh db connect",
    "wsh proxy db --tunnel",
    "python3 -c",
    "wsh db logout my-docdb",
    "wctl events ls",
)


@dataclass
class Step:
    """One `$ ` command of the guide and what the guide shows around it."""

    command: str
    line: int
    shown: list[str] = field(default_factory=list)
    skip: str | None = None
    ready: str | None = None
    session: list[str] = field(default_factory=list)

    @property
    def interactive_shell(self) -> bool:
        """An interactive `wsh db connect` (no `--` arguments for the shell)."""
        return self.command.startswith("wsh db connect") and " -- " not in self.command


@dataclass
class Guide:
    """The parsed guide: commands in order, and its JSON and YAML blocks."""

    steps: list[Step]
    json_blocks: list[str]
    yaml_blocks: list[str]


def parse_guide(text: str) -> Guide:
    """Commands (with continuations, markers and shown output) and data blocks, in order."""
    steps: list[Step] = []
    json_blocks: list[str] = []
    yaml_blocks: list[str] = []
    language: str | None = None
    block: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith("```"):
            if language is None:
                language = line[3:].strip()
                block = []
                continue
            if language == "json":
                json_blocks.append("\n".join(block))
            elif language == "yaml":
                yaml_blocks.append("\n".join(block))
            elif language == "text" and steps and steps[-1].interactive_shell:
                steps[-1].session.extend(
                    entry.removeprefix(MONGOSH_PROMPT)
                    for entry in block
                    if entry.startswith(MONGOSH_PROMPT)
                )
            language = None
            continue
        if language is None:
            continue
        block.append(line)
        if language != "sh":
            continue
        if line.startswith("$ "):
            start = index
            command = line[2:]
            while command.endswith("\\") and index < len(lines):
                command = command[:-1].rstrip() + " " + lines[index].strip()
                index += 1
            step = Step(command=command, line=start)
            if (skipped := NOT_RUN.search(command)) is not None:
                step.skip = skipped["why"]
                step.command = command[: skipped.start()]
            elif (running := KEEPS_RUNNING.search(command)) is not None:
                step.ready = running["ready"]
                step.command = command[: running.start()]
            steps.append(step)
        elif steps and line.strip():
            steps[-1].shown.append(line)
    assert language is None, "the guide has an unclosed code block"
    return Guide(steps, json_blocks, yaml_blocks)


class Substitutions:
    """The guide's example values → the local setup's, in one pass (no cascading)."""

    def __init__(self, values: Mapping[str, str], patterns: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.patterns = dict(patterns)  # regex → replacement, tried before plain values

    def apply(self, text: str) -> str:
        """`text` with every example value replaced."""
        literal = sorted(self.values, key=len, reverse=True)
        alternatives = [*self.patterns, *(re.escape(value) for value in literal)]
        combined = re.compile("|".join(f"({alternative})" for alternative in alternatives))

        def replace(match: re.Match[str]) -> str:
            position = next(i for i, group in enumerate(match.groups()) if group is not None)
            if position < len(self.patterns):
                return list(self.patterns.values())[position]
            return self.values[literal[position - len(self.patterns)]]

        return combined.sub(replace, text)


def clean(output: str) -> list[str]:
    """Terminal output as plain lines (no colours, no carriage returns)."""
    text = ANSI.sub("", output).replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def words(line: str) -> str:
    """A line with its whitespace normalized."""
    return " ".join(line.split())


@dataclass
class Background:
    """A command that keeps running (`wicket start`, `wsh proxy db --tunnel`)."""

    step: Step
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Local:
    """Everything the guide's commands run against."""

    cluster: Cluster
    docdb: LocalDocDBProcess
    aws: LocalAws
    directory: Path
    env: dict[str, str]
    substitutions: Substitutions
    agent_config: Path
    prelude: list[str] = field(default_factory=list)
    background: list[Background] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    def command_env(self, command: str) -> dict[str, str]:
        """wctl runs on the auth host; wicket on the database service host."""
        config = self.cluster.config if command.startswith("wctl") else self.agent_config
        return {**self.env, "WICKET_CONFIG_FILE": str(config)}

    def prepare(self, step: Step) -> str:
        command = self.substitutions.apply(step.command).strip()
        # The test runs as the user it is; `sudo` only says "on that host, as root".
        return command.removeprefix("sudo ")

    def run(self, step: Step) -> None:
        """Run one guide command; fail with its output when it fails."""
        command = self.prepare(step)
        self.ran.append(command)
        if ASSIGNMENT.fullmatch(command):
            self.prelude.append(command)
            return
        if step.ready is not None:
            self.start_background(step, command)
            return
        output = self.run_in_terminal(step, command)
        self.transcript.append(f"$ {command}\n{output}")
        found = INVITE_URL.search(ANSI.sub("", output))
        if found is not None:  # later commands use the URL this one printed
            self.substitutions.patterns[r"https://wicket\.example\.com:443/web/invite/\w+"] = (
                found.group(0)
            )
        self.check_shown(step, command, output)

    def run_in_terminal(self, step: Step, command: str) -> str:
        script = "\n".join([*self.prelude, command])
        child = pexpect.spawn(
            "bash",
            ["-c", script],
            env=self.command_env(command),
            cwd=str(self.directory),
            encoding="utf-8",
            codec_errors="replace",
            timeout=COMMAND_TIMEOUT,
            dimensions=(50, 250),
        )
        answers = [
            (r'Trust cluster "[^"]+" \(CA pin sha256:[0-9a-f]+\)\? \[y/N\]: ', "y"),
            (r"Enter password for Wicket user \S+: ", PASSWORD),
            (r"Choose a password for Wicket user \S+: ", PASSWORD),
            (r"Confirm the password: ", PASSWORD),
            (r"Enter password: ", self.docdb.master_password),  # mongosh, master user
        ]
        patterns: list[Any] = [pattern for pattern, _ in answers]
        patterns += [MONGOSH_PROMPT, pexpect.EOF, pexpect.TIMEOUT]
        session = [*step.session, "exit"] if step.interactive_shell else []
        everything: list[str] = []
        after_prompts: list[str] = []
        try:
            while True:
                which = child.expect(patterns)
                before = child.before if isinstance(child.before, str) else ""
                matched = child.after if isinstance(child.after, str) else ""
                everything.append(before + matched)
                after_prompts.append(before)
                if which < len(answers):
                    child.sendline(answers[which][1])
                    after_prompts = []
                elif patterns[which] == MONGOSH_PROMPT:
                    if not session:
                        raise AssertionError(f"mongosh waits for input after: {step.command}")
                    child.sendline(session.pop(0))
                elif patterns[which] is pexpect.EOF:
                    break
                else:
                    raise AssertionError(
                        f"guide line {step.line}: `{command}` did not finish within "
                        f"{COMMAND_TIMEOUT:.0f}s:\n{''.join(everything)}"
                    )
        finally:
            child.close(force=True)
        output = "".join(everything)
        status = child.exitstatus if child.exitstatus is not None else child.signalstatus
        assert status == 0, f"guide line {step.line}: `{command}` exited {status}:\n{output}"
        assert "Traceback" not in output, f"guide line {step.line}: `{command}`:\n{output}"
        if step.interactive_shell:
            assert not session, f"mongosh exited before the guide's session ended:\n{output}"
            assert "Error" not in ANSI.sub("", output), output
            assert self.aws.docdb_user_role_arn in ANSI.sub("", output), output
        return "".join(after_prompts)

    def check_shown(self, step: Step, command: str, output: str) -> None:
        """The output the guide shows is what the command prints (its first lines)."""
        if not step.shown:
            return
        actual = [words(line) for line in clean(output) if line.strip()]
        expected = [words(self.substitutions.apply(line)) for line in step.shown]
        matched = len(actual) >= len(expected) and all(
            # "..." at the end of a shown line stands for the rest of it (times, widths)
            got.startswith(want[:-3].rstrip()) if want.endswith("...") else got == want
            for got, want in zip(actual, expected, strict=False)
        )
        assert matched, f"guide line {step.line}: `{command}` printed:\n{output}"

    def start_background(self, step: Step, command: str) -> None:
        log = self.directory / f"background-{len(self.background)}.log"
        script = "\n".join([*self.prelude, f"exec {command}"])
        with log.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-c", script],
                env=self.command_env(command),
                cwd=str(self.directory),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = Background(step, process, log)
        self.background.append(running)
        assert step.ready is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if step.ready in text:
                return
            if process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f'guide line {step.line}: `{command}` never printed "{step.ready}":\n'
            + log.read_text(errors="replace")
        )

    def stop_background(self) -> list[tuple[str, int | None, str]]:
        """Ctrl-C every background command, newest first; their exit codes and logs."""
        results: list[tuple[str, int | None, str]] = []
        for running in reversed(self.background):
            process = running.process
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
            try:
                code: int | None = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
                code = None
            results.append(
                (running.step.command, code, running.log.read_text(errors="replace")[-3000:])
            )
        self.background.clear()
        return results


def is_subset(part: Any, whole: Any) -> bool:
    """Whether every key and item of `part` is in `whole` with the same value."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and is_subset(value, whole[key]) for key, value in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(part) == len(whole)
            and all(is_subset(a, b) for a, b in zip(part, whole, strict=True))
        )
    return bool(part == whole)


@pytest.fixture
def local(
    tmp_path: Path, docdb: LocalDocDBProcess, local_aws: LocalAws, mongosh: Mongosh
) -> Iterator[Local]:
    cluster = new_cluster(tmp_path / "node")
    cluster.start()
    info = json.loads((cluster.data_dir / "admin" / "cluster.json").read_text())
    host_ca = tmp_path / "cluster-host-ca.pem"
    host_ca.write_text(info["cas"]["host"])
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "WICKET_", "WSH_"))
    }
    env.update(local_aws.environment())
    env.update(
        {
            # botocore never leaves loopback, whatever the agent decides to call
            "AWS_ENDPOINT_URL_RDS": local_aws.endpoint,
            "HOME": str(home),
            "WSH_HOME": str(home / ".wsh"),
            "PATH": os.pathsep.join(
                [str(BIN), str(mongosh.executable.parent), env.get("PATH", "/usr/bin:/bin")]
            ),
            "MONGOSH_FORCE_DISABLE_TELEMETRY_FOR_TESTING": "1",
            "CURL_CA_BUNDLE": str(host_ca),
        }
    )
    agent_config = tmp_path / "agent" / "wicket.yaml"
    agent_config.parent.mkdir()
    substitutions = Substitutions(
        values={
            "wicket.example.com:443": cluster.proxy_addr,
            "my-docdb.cluster-c9akciq32fxb.us-east-1.docdb.amazonaws.com:27017": (
                f"localhost:{docdb.port}"
            ),
            "/etc/wicket/rds-global-bundle.pem": str(docdb.ca_file),
            "/etc/wicket.yaml": str(agent_config),
            "/etc/systemd/system/wicket.service": str(tmp_path / "agent" / "wicket.service"),
            "/var/lib/wicket": str(tmp_path / "agent" / "data"),
            "/tmp/token": str(tmp_path / "token"),
            "123456789012": local_aws.account_id,
            "docdbmaster": docdb.master_user,
            "27018": str(free_port()),
        },
        patterns={r"sha256:[0-9a-f]{64}": str(info["ca_pin"])},
    )
    ground = Local(cluster, docdb, local_aws, tmp_path, env, substitutions, agent_config)
    try:
        yield ground
    finally:
        ground.stop_background()
        cluster.stop()


def test_parse_guide_markers_and_output() -> None:
    text = "\n".join(
        [
            "```sh",
            "$ wctl tokens add \\",
            "    --type=db",
            "token-output",
            "$ systemctl status wicket  # not run by the test: no systemd",
            '$ wicket start  # keeps running; ready when it prints "tunnel to"',
            "$ wsh db connect my-docdb",
            "```",
            "```text",
            "test> db.x.find()",
            "a line that is not typed",
            "```",
            "```json",
            '{"a": 1}',
            "```",
        ]
    )
    guide = parse_guide(text)
    assert [s.command for s in guide.steps] == [
        "wctl tokens add --type=db",
        "systemctl status wicket",
        "wicket start",
        "wsh db connect my-docdb",
    ]
    assert guide.steps[0].shown == ["token-output"]
    assert guide.steps[1].skip == "no systemd"
    assert guide.steps[2].ready == "tunnel to"
    assert guide.steps[3].session == ["db.x.find()"]
    assert guide.json_blocks == ['{"a": 1}']
    subs = Substitutions({"a.example:443": "localhost:1", "/tmp/t": "/x/a.example:443"}, {})
    assert subs.apply("a.example:443 /tmp/t") == "localhost:1 /x/a.example:443"


def test_guide_data_blocks_are_what_runs() -> None:
    guide = parse_guide(GUIDE.read_text())
    documents = [json.loads(block) for block in guide.json_blocks]
    # step 3's policy is exactly the one the local AWS is provisioned with
    assert documents[0] == database_access_policy_document()
    for block in guide.yaml_blocks:
        assert yaml.safe_load(block) is not None


@pytest.mark.timeout(240)
def test_guide_commands_run_in_order(local: Local) -> None:
    guide = parse_guide(GUIDE.read_text())
    started = time.monotonic()
    try:
        for step in guide.steps:
            if step.skip is None:
                local.run(step)
    finally:  # shown by pytest when the test fails
        print("\n".join(ANSI.sub("", entry) for entry in local.transcript))
    stopped = local.stop_background()
    for command, code, log in stopped:
        assert code == 0, f"`{command}` did not stop cleanly on Ctrl-C ({code}):\n{log}"
    missing = [
        wanted
        for wanted in REQUIRED
        if not any(local.substitutions.apply(wanted) in command for command in local.ran)
    ]
    assert not missing, f"the guide no longer runs: {missing}"
    skipped = [step for step in guide.steps if step.skip is not None]
    assert all(step.skip for step in skipped)
    # the configuration the guide shows is (part of) the one its command wrote
    written = yaml.safe_load(local.agent_config.read_text())
    shown = yaml.safe_load(local.substitutions.apply(guide.yaml_blocks[0]))
    assert is_subset(shown, written), (shown, written)
    assert time.monotonic() - started < 150
