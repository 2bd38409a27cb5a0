"""`wicket demo`: the whole DocumentDB guide on one machine, driven through the real CLIs.

Local stand-ins replace AWS and DocumentDB (moto with the guide's IAM setup; localdocdb
in DocumentDB mode with TLS). Everything else is the product, run as a user would:
`wicket configure` + `wicket start` (auth + proxy), `wctl tokens add`, `wicket db
configure create` + `wicket start` (database service, with the AWS credentials of the
WicketDatabaseService role), `wctl users add alice`, `wsh signup`, `wsh login`, then a
real query through Wicket authenticated to "DocumentDB" with IAM.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click
from pymongo import MongoClient

from localdocdb.localaws import LocalAws, MotoServer, free_port, provision
from localdocdb.process import LocalDocDBProcess
from wicket.errors import WicketError

BIN = Path(sys.executable).parent
MASTER_USER = "docdbmaster"
START_TIMEOUT = 60.0


def tool(name: str) -> str:
    """A console script of this installation."""
    script = BIN / name
    return str(script) if script.exists() else name


@dataclass
class Playground:
    """What the demo started, and where."""

    directory: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    proxy_addr: str = ""
    ca_pin: str = ""

    def run(
        self, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None
    ) -> str:
        """Run a CLI to completion; a failure stops the demo with its message."""
        result = subprocess.run(
            list(args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env={**self.env, **(extra_env or {})},
            check=False,
        )
        if result.returncode != 0:
            raise WicketError(
                f"`{' '.join(args[:3])} ...` failed:\n{result.stderr or result.stdout}"
            )
        return result.stdout

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        """Start a long-running process, logging to DIR/NAME.log, and wait until it says so."""
        log_path = self.directory / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(args),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, **(extra_env or {})},
                start_new_session=True,
            )
        self.processes.append(process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            if "wicket started" in text:
                return
            if process.poll() is not None:
                raise WicketError(f"{name} exited:\n{text[-3000:]}")
            time.sleep(0.1)
        raise WicketError(f"{name} did not start within {START_TIMEOUT:.0f}s (see {log_path})")

    def wait_for_log(self, name: str, text: str) -> None:
        """Block until DIR/NAME.log contains `text`."""
        deadline = time.monotonic() + START_TIMEOUT
        log_path = self.directory / f"{name}.log"
        while time.monotonic() < deadline:
            if text in log_path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise WicketError(f"{name} never logged {text!r} (see {log_path})")

    def stop(self) -> None:
        """Stop every process, newest first."""
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def find_mongosh() -> str | None:
    """mongosh on the PATH, else the pinned one of a source checkout (scripts/dev.sh setup)."""
    found = shutil.which("mongosh")
    if found:
        return found
    checkout = Path(__file__).resolve().parents[2]
    pinned = checkout / "tools" / "mongosh" / "node_modules" / ".bin" / "mongosh"
    return str(pinned) if pinned.exists() else None


def say(text: str) -> None:
    """One step of the demo, as the guide would show it."""
    click.echo(text)


@contextlib.contextmanager
def playground(directory: Path, *, quiet: bool = False) -> Iterator[Playground]:
    """Bring up the whole guide; tear it down on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    echo = (lambda _text: None) if quiet else say
    env = {**os.environ, "WSH_HOME": str(directory / "wsh")}
    shell = find_mongosh()
    if shell is not None:
        env.setdefault("WSH_MONGOSH", shell)
    for leaked in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        env.pop(leaked, None)
    ground = Playground(directory, env)
    echo("==> Local AWS (moto) with the guide's IAM setup (steps 3 and 5)")
    moto = MotoServer.start(log_file=directory / "moto.log")
    docdb: LocalDocDBProcess | None = None
    try:
        aws: LocalAws = provision(moto.endpoint)
        echo(f"    policy {aws.policy_arn}")
        echo(f"    role   {aws.database_service_role_arn}")
        echo(f"    role   {aws.docdb_user_role_arn} (tag WicketDatabaseService=Allowed)")
        echo("==> localdocdb: a DocumentDB 5.0 stand-in with TLS and IAM authentication")
        master_password = secrets.token_urlsafe(18)
        docdb = LocalDocDBProcess.start(
            tls_dir=directory / "docdb-tls",
            master_user=MASTER_USER,
            master_password=master_password,
            args=("--mode", "docdb", "--sts-endpoint", aws.endpoint, "--cluster-id", "my-docdb"),
            log_path=directory / "localdocdb.log",
        )
        master: MongoClient[dict[str, object]]
        with MongoClient(docdb.uri(), serverSelectionTimeoutMS=10_000) as master:
            master["$external"].command(
                "createUser",
                aws.docdb_user_role_arn,
                mechanisms=["MONGODB-AWS"],
                roles=[{"role": "root", "db": "admin"}],
            )
        echo(
            f'    use $external; db.createUser({{user: "{aws.docdb_user_role_arn}", '
            'mechanisms: ["MONGODB-AWS"], roles: [{role: "root", db: "admin"}]})'
        )
        proxy_port, auth_port = free_port(), free_port()
        ground.proxy_addr = f"localhost:{proxy_port}"
        config = directory / "wicket.yaml"
        echo(f"==> Wicket cluster: auth service and proxy on {ground.proxy_addr}")
        ground.run(
            tool("wicket"),
            "configure",
            "--cluster-name",
            "wicket-demo",
            "--public-addr",
            ground.proxy_addr,
            "--auth-listen-addr",
            f"127.0.0.1:{auth_port}",
            "--data-dir",
            str(directory / "cluster-data"),
            "-o",
            str(config),
        )
        ground.start("cluster", tool("wicket"), "start", "-c", str(config))
        status = json.loads(
            ground.run(tool("wctl"), "-c", str(config), "status", "--format", "json")
        )
        ground.ca_pin = str(status.get("ca_pin", ""))
        echo("==> Step 2: join token and database service configuration")
        token = ground.run(
            tool("wctl"), "-c", str(config), "tokens", "add", "--type=db", "--format=text"
        ).strip()
        (directory / "token").write_text(token + "\n")
        os.chmod(directory / "token", 0o600)
        agent_config = directory / "db-agent.yaml"
        ground.run(
            tool("wicket"),
            "db",
            "configure",
            "create",
            "-o",
            str(agent_config),
            "--name=my-docdb",
            f"--proxy={ground.proxy_addr}",
            "--protocol=mongodb",
            f"--token={directory / 'token'}",
            f"--uri=localhost:{docdb.port}",
            "--labels=env=dev",
            "--aws-region=us-east-1",
            f"--aws-account-id={aws.account_id}",
            f"--tls-ca-file={docdb.ca_file}",
            f"--ca-pin={ground.ca_pin}",
            "--data-dir",
            str(directory / "agent-data"),
        )
        echo("==> Step 4: database service (with the WicketDatabaseService role's credentials)")
        ground.start(
            "db-agent",
            tool("wicket"),
            "start",
            "-c",
            str(agent_config),
            extra_env=aws.environment(),
        )
        ground.wait_for_log("db-agent", "tunnel to")
        echo("==> Step 1: user alice with --roles=access --db-users='*' --db-names='*'")
        added = ground.run(
            tool("wctl"),
            "-c",
            str(config),
            "users",
            "add",
            "alice",
            "--roles=access",
            "--db-users=*",
            "--db-names=*",
        )
        invite = next(line for line in added.splitlines() if line.startswith("https://"))
        password = secrets.token_urlsafe(16)
        ground.run(
            tool("wsh"),
            "signup",
            invite,
            "--password-stdin",
            f"--ca-pin={ground.ca_pin}",
            stdin=password,
        )
        echo("==> Step 6: wsh login")
        ground.run(
            tool("wsh"),
            "login",
            f"--proxy={ground.proxy_addr}",
            "--user=alice",
            "--password-stdin",
            f"--ca-pin={ground.ca_pin}",
            stdin=password,
        )
        (directory / "alice-password").write_text(password + "\n")
        os.chmod(directory / "alice-password", 0o600)
        yield ground
    finally:
        ground.stop()
        if docdb is not None:
            docdb.stop()
        moto.stop()


def query_through_wicket(ground: Playground) -> list[str]:
    """A real query: alice's database certificate, through the proxy and the agent, over IAM."""
    out = ground.run(tool("wsh"), "db", "ls")
    lines = [f"    {line}" for line in out.rstrip().splitlines()]
    eval_script = (
        "db.orders.drop(); db.orders.insertMany([{item: 'tea', qty: 5}, {item: 'coffee', qty: 2},"
        " {item: 'tea', qty: 3}]); const who = db.adminCommand({connectionStatus: 1})"
        ".authInfo.authenticatedUsers[0].user; const totals = db.orders.aggregate([{$group: "
        "{_id: '$item', qty: {$sum: '$qty'}}}, {$sort: {_id: 1}}]).toArray();"
        " print('authenticated upstream as ' + who); print('totals: ' + JSON.stringify(totals))"
    )
    out = ground.run(
        tool("wsh"),
        "db",
        "connect",
        "--db-user=wicket-docdb-user",
        "--db-name=test",
        "my-docdb",
        "--",
        "--quiet",
        "--eval",
        eval_script,
        extra_env={"MONGOSH_FORCE_DISABLE_TELEMETRY_FOR_TESTING": "1"},
    )
    lines += [f"    {line}" for line in out.strip().splitlines()]
    return lines


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the playground's files here (default: a temporary directory).",
)
@click.option(
    "--keep-running/--exit",
    default=True,
    show_default=True,
    help="Stay up until Ctrl-C so you can try the commands yourself.",
)
def demo_command(directory: Path | None, keep_running: bool) -> None:
    """Run the DocumentDB guide end to end on this machine (local AWS and DocumentDB stand-ins)."""
    own = directory is None
    work = (
        Path(tempfile.mkdtemp(prefix="wicket-demo-")) if directory is None else directory.resolve()
    )
    try:
        with playground(work) as ground:
            say("==> A real query through Wicket (wsh db connect ... -- --eval ...):")
            for line in query_through_wicket(ground):
                say(line)
            say("")
            say("Try it yourself in another terminal:")
            say(f"    export PATH={BIN}:$PATH WSH_HOME={ground.directory / 'wsh'}")
            if "WSH_MONGOSH" in ground.env:
                say(f"    export WSH_MONGOSH={ground.env['WSH_MONGOSH']}")
            say("    wsh status")
            say("    wsh db ls")
            say("    wsh db connect --db-user=wicket-docdb-user --db-name=test my-docdb")
            say("    wsh proxy db --tunnel --port 27018 --db-user=wicket-docdb-user my-docdb")
            say(f"    wctl -c {ground.directory / 'wicket.yaml'} events ls")
            say(f"(alice's password is in {ground.directory / 'alice-password'}; logs in {work})")
            if keep_running:
                say("Press Ctrl-C to stop everything.")
                _wait_for_interrupt()
    except WicketError as error:
        raise click.ClickException(str(error)) from None
    finally:
        if own and not keep_running:
            shutil.rmtree(work, ignore_errors=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_interrupt() -> None:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("\nstopping ...")
