"""CLI layer: the `wsh` user command (login, status, logout, signup, db ls; db login/connect/
logout/config/env and proxy db from `wsh_db`).

`wsh` reaches a cluster only through its proxy: the web API (ALPN `http/1.1`) for
discovery, the CA and login; the `wicket-auth` route with the user certificate for
everything else. Trust in the proxy comes from the cluster's host CA, accepted by
its pin (`--ca-pin`, or shown and confirmed on first use, then remembered like an
SSH host key); a cluster presenting another CA later is refused.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import click

from wicket import __version__
from wicket.api.client import AUTH_ALPN, AuthClient
from wicket.auth.durations import parse_duration
from wicket.cli.wsh_db import register as register_db_commands
from wicket.client.cli_support import ErrorReportingGroup, run
from wicket.client.dbprofile import DatabaseLogins, refresh_database_logins
from wicket.client.identity_files import identity_from_profile
from wicket.client.output import (
    OutputFormat,
    go_duration,
    labels_text,
    local_time,
    render,
    render_table,
)
from wicket.client.profile import (
    ClusterInfo,
    Profile,
    ProfileStore,
    check_cluster_pin,
    check_proxy,
    check_user,
    wsh_home,
)
from wicket.client.webapi import ProxyWebClient, unverified_context, verified_context
from wicket.errors import AccessDenied, BadParameter, WicketError
from wicket.pki.keys import generate_private_key, private_key_pem, public_key_pem
from wicket.pki.pin import parse_pin
from wicket.tlsconfig import client_context

MAX_PASSWORD = 1024
MAX_INVITE_TOKEN = 512


class WshGroup(ErrorReportingGroup):
    """`wsh`'s groups: errors are `wsh: ...`."""

    program = "wsh"


def _store() -> ProfileStore:
    return ProfileStore(wsh_home())


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _read_password_stdin() -> str:
    line = sys.stdin.readline(MAX_PASSWORD + 2)
    password = line.rstrip("\r\n")
    if not password:
        raise BadParameter("--password-stdin: no password on standard input")
    if len(password) > MAX_PASSWORD:
        raise BadParameter(f"--password-stdin: password longer than {MAX_PASSWORD} characters")
    return password


def trust_cluster(
    *,
    store: ProfileStore,
    proxy: str,
    cluster: ClusterInfo,
    ca_pin: str | None,
    insecure: bool,
) -> None:
    """Decide whether to trust the cluster's host CA (pin flag, remembered pin, or prompt).

    Raises AccessDenied when the CA does not match what the user pinned or what an
    earlier login remembered; asks on a terminal on first contact; refuses without one.
    """
    remembered = store.trusted_pin(proxy)
    if ca_pin is not None:
        check_cluster_pin(cluster, ca_pin)
        return
    if remembered is not None:
        if remembered != cluster.pin:
            raise AccessDenied(
                f"WARNING: the cluster at {proxy} presents a different CA than before!\n"
                f"remembered CA pin: {remembered}\n"
                f"presented CA pin:  {cluster.pin}\n"
                "Someone may be intercepting your connection, or the cluster's CA was "
                "replaced. Check the pin with the cluster administrator (wctl status) and, "
                "if it is right, log in with --ca-pin=<new pin>."
            )
        return
    if insecure:
        return
    if not _stdin_is_tty():
        raise AccessDenied(
            f'cannot confirm the CA of cluster "{cluster.cluster_name}" without a terminal: '
            f"pass --ca-pin={cluster.pin} if that is the pin wctl status shows "
            "on the auth host"
        )
    question = f'Trust cluster "{cluster.cluster_name}" (CA pin {cluster.pin})?'
    if not click.confirm(question, default=False, err=True):
        raise AccessDenied("cluster not trusted; nothing was changed")


async def _fetch_cluster(proxy: str) -> ClusterInfo:
    """The cluster's CAs, fetched before trusting anything (checked by pin afterwards)."""
    client = ProxyWebClient(proxy, unverified_context())
    return ClusterInfo.from_json(await client.cluster())


def _web_client(proxy: str, cluster: ClusterInfo, insecure: bool) -> ProxyWebClient:
    if insecure:
        return ProxyWebClient(proxy, unverified_context())
    return ProxyWebClient(proxy, verified_context(cluster.cas["host"].encode()))


def _auth_client(proxy: str, cluster: ClusterInfo, insecure: bool) -> AuthClient:
    """The auth API through the proxy's `wicket-auth` route, without a client certificate."""
    if insecure:
        return AuthClient(proxy, unverified_context([AUTH_ALPN]))
    context = client_context(ca_pems=[cluster.cas["host"].encode()], alpn=[AUTH_ALPN])
    return AuthClient(proxy, context)


def status_block(profile: Profile, now: datetime | None = None) -> str:
    """What `wsh login` and `wsh status` print about a profile (tsh's layout)."""
    identity = profile.identity()
    expires = profile.expires()
    left = expires - (now or datetime.now(UTC))
    validity = "EXPIRED" if left <= timedelta(0) else f"valid for {go_duration(left)}"
    lines = [
        f"> Profile URL:  https://{profile.proxy}",
        f"  Logged in as: {identity.name}",
        f"  Cluster:      {identity.cluster}",
        f"  Roles:        {', '.join(identity.roles)}",
    ]
    for trait in ("db_users", "db_names"):
        values = identity.trait(trait)
        if values:
            label = "Database users:" if trait == "db_users" else "Database names:"
            lines.append(f"  {label:<15} {', '.join(values)}".rstrip())
    lines.append(f"  Valid until:  {local_time(expires)} [{validity}]")
    return "\n".join(lines) + "\n"


def _current_profile(store: ProfileStore) -> Profile:
    profile = store.current()
    if profile is None:
        raise WicketError("not logged in")
    return profile


def _require_valid(profile: Profile) -> None:
    if profile.expired():
        raise AccessDenied(
            f"your session expired at {local_time(profile.expires())}; run wsh login again"
        )


# -- commands ------------------------------------------------------------------------------


@click.group(cls=WshGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """wsh: part of Wicket, identity-aware access to MongoDB and DocumentDB."""


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(f"wsh v{__version__}")


def _pin_option(function: Any) -> Any:
    function = click.option(
        "--insecure",
        is_flag=True,
        help="Do not verify the proxy (development only).",
    )(function)
    return click.option(
        "--ca-pin",
        help="Expected CA pin of the cluster (sha256:..., from wctl status).",
    )(function)


@cli.command()
@click.option("--proxy", required=True, help="Proxy address HOST:PORT.")
@click.option("--user", required=True, help="Wicket user name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--otp", help="One-time code (when the cluster asks for one).")
@click.option("--ttl", default=None, help="Certificate lifetime (e.g. 8h; capped by your roles).")
@_pin_option
def login(
    proxy: str,
    user: str,
    password_stdin: bool,
    otp: str | None,
    ttl: str | None,
    ca_pin: str | None,
    insecure: bool,
) -> None:
    """Log in to a cluster through its proxy and save a short-lived certificate."""
    proxy = check_proxy(proxy)
    user = check_user(user)
    if ca_pin is not None:
        ca_pin = parse_pin(ca_pin)
    ttl_seconds: int | None = None
    if ttl is not None:
        try:
            ttl_seconds = int(parse_duration(ttl).total_seconds())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ttl") from None
        if ttl_seconds < 60:
            raise click.BadParameter("must be at least 1m", param_hint="--ttl")
    store = _store()
    cluster = run(_fetch_cluster(proxy))
    trust_cluster(store=store, proxy=proxy, cluster=cluster, ca_pin=ca_pin, insecure=insecure)
    web = _web_client(proxy, cluster, insecure)
    find = run(web.find())
    auth_info = find.get("auth")
    auth: dict[str, Any] = auth_info if isinstance(auth_info, dict) else {}
    password = (
        _read_password_stdin()
        if password_stdin
        else click.prompt(f"Enter password for Wicket user {user}", hide_input=True, err=True)
    )
    if auth.get("second_factor") == "otp" and otp is None:
        otp = click.prompt("Enter your OTP token", err=True)
    key = generate_private_key()
    body: dict[str, Any] = {
        "user": user,
        "password": password,
        "public_key_pem": public_key_pem(key).decode(),
    }
    if otp is not None:
        body["otp"] = otp.strip()
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    answer = run(web.login(body))
    issued = ClusterInfo.from_json(answer)
    if not insecure and issued.pin != cluster.pin:
        raise AccessDenied("the login answer names another CA than the cluster presented")
    profile = store.save_login(
        proxy=proxy,
        user=user,
        key_pem=private_key_pem(key),
        cert_pem=str(answer["cert_pem"]).encode(),
        cluster=issued,
        remember_pin=not insecure,
    )
    # Database certificates of the previous login carry its rights: renew or drop them.
    for refreshed in run(refresh_database_logins(profile)):
        click.echo(refreshed.notice(), err=True)
    click.echo(status_block(profile), nl=False)


def locks_block(answer: Any) -> str:
    """The lines `wsh status` adds for locks that stop the user (from `/v1/status`)."""
    locks = answer.get("locks") if isinstance(answer, dict) else None
    if not isinstance(locks, list) or not locks:
        return ""
    lines = [
        f"  Locked:       {item.get('refusal', '')}" for item in locks if isinstance(item, dict)
    ]
    return "\n".join(lines) + "\n"


@cli.command()
def status() -> None:
    """Show the current login, and any lock that stops you (asked of the cluster)."""
    profile = _current_profile(_store())
    click.echo(status_block(profile), nl=False)
    if profile.expired():
        return
    identity = identity_from_profile(profile)

    async def fetch() -> Any:
        async with identity.auth_client() as client:
            return await client.get("/v1/status")

    try:
        answer = run(fetch())
    except AccessDenied as refused:
        click.echo(f"  Access:       refused: {refused}")
        return
    except WicketError as error:
        click.echo(f"  (could not ask the cluster: {error})", err=True)
        return
    click.echo(locks_block(answer), nl=False)


@cli.command()
def logout() -> None:
    """Remove the current proxy's keys, profile and database certificates."""
    store = _store()
    current = store.current()
    dropped = DatabaseLogins(current).names() if current is not None else []
    profile = store.logout()
    for name in dropped:
        click.echo(f"Logged out of database {name}")
    click.echo(f"Logged out {profile.user} from {profile.proxy}.")


@cli.command()
@click.argument("invite_url")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--otp", help="One-time code from your authenticator (when OTP is on).")
@_pin_option
def signup(
    invite_url: str,
    password_stdin: bool,
    otp: str | None,
    ca_pin: str | None,
    insecure: bool,
) -> None:
    """Set your password through the invite URL an administrator gave you."""
    parts = urlsplit(invite_url)
    segments = parts.path.strip("/").split("/")
    if parts.scheme != "https" or len(segments) != 3 or segments[:2] != ["web", "invite"]:
        raise click.BadParameter(
            "expected https://PROXY/web/invite/TOKEN (as wctl users add prints)",
            param_hint="INVITE_URL",
        )
    token = segments[2]
    if (
        not token
        or len(token) > MAX_INVITE_TOKEN
        or not token.replace("-", "").replace("_", "").isalnum()
    ):
        raise click.BadParameter(
            "the invite token in the URL is malformed", param_hint="INVITE_URL"
        )
    proxy = check_proxy(parts.netloc)
    if ca_pin is not None:
        ca_pin = parse_pin(ca_pin)
    store = _store()
    cluster = run(_fetch_cluster(proxy))
    trust_cluster(store=store, proxy=proxy, cluster=cluster, ca_pin=ca_pin, insecure=insecure)

    async def lookup() -> Any:
        async with _auth_client(proxy, cluster, insecure) as client:
            return await client.get(f"/v1/invites/{token}")

    info = run(lookup())
    user = str(info.get("user", ""))
    if password_stdin:
        password = _read_password_stdin()
    else:
        password = click.prompt(
            f"Choose a password for Wicket user {user}",
            hide_input=True,
            confirmation_prompt="Confirm the password",
            err=True,
        )
    if info.get("otp_required") and otp is None:
        click.echo(
            "Add this account to your authenticator app (a TOTP secret):\n"
            f"  {info.get('otp_uri', '')}",
            err=True,
        )
        otp = click.prompt("Enter the code your authenticator shows", err=True)
    body = {"password": password, "otp": otp.strip() if otp else None}

    async def complete() -> Any:
        async with _auth_client(proxy, cluster, insecure) as client:
            return await client.post(f"/v1/invites/{token}", body)

    run(complete())
    if not insecure:
        store.trust(proxy, cluster.pin)
    click.echo(f'User "{user}" is ready. Log in with:\n  wsh login --proxy={proxy} --user={user}')


@cli.group(cls=WshGroup)
def db() -> None:
    """Databases you can reach."""


def _connect_hint(logins: DatabaseLogins, name: str) -> str:
    """`> wsh db connect NAME` for a database with a current `wsh db login` (as tsh shows)."""
    login = logins.get(name)
    if login is None or login.expires() <= datetime.now(UTC):
        return ""
    return f"> wsh db connect {name}"


@db.command("ls")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
)
def db_ls(output: str) -> None:
    """List the databases your roles allow."""
    profile = _current_profile(_store())
    _require_valid(profile)
    identity = identity_from_profile(profile)

    async def fetch() -> Any:
        async with identity.auth_client() as client:
            return await client.get("/v1/databases")

    databases: list[dict[str, Any]] = sorted(run(fetch()), key=lambda d: str(d["metadata"]["name"]))
    if output != "text":
        click.echo(render(databases, OutputFormat(output)), nl=False)
        return
    logins = DatabaseLogins(profile)
    rows = [
        (
            d["metadata"]["name"],
            d["metadata"].get("description", ""),
            ", ".join(d.get("allowed_db_users", [])),
            labels_text(d["metadata"].get("labels", {})),
            _connect_hint(logins, str(d["metadata"]["name"])),
        )
        for d in databases
    ]
    click.echo(
        render_table(("Name", "Description", "Allowed Users", "Labels", "Connect"), rows),
        nl=False,
    )


register_db_commands(db, cli)


def main() -> None:
    """Entry point of the console script."""
    cli()
