"""CLI layer: the `wctl` admin command (users, tokens, resources, databases, status).

Every command is a call to the auth API (`wicket.authserver.api`) as the identity
`wicket.client.identity_files` resolves: the local admin on the auth host, or a
logged-in `wsh` user through the proxy. Output is text by default, JSON/YAML where
`--format` is offered; failures are one `wctl: ...` line and exit code 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from wicket import __version__
from wicket.api.client import AuthClient
from wicket.audit.events import parse_time as parse_event_time
from wicket.auth.durations import format_duration, parse_duration
from wicket.auth.locks import Lock
from wicket.auth.resources import (
    ResourceKind,
    TokenResource,
    UserResource,
    parse_reference,
    parse_resources,
    resource_kind,
    resource_name,
    resource_to_dict,
)
from wicket.auth.roles import Role
from wicket.cli.wctl_auth import auth_group
from wicket.cli.wctl_events import events_group
from wicket.client.cli_support import ErrorReportingGroup, run
from wicket.client.identity_files import ClientIdentity, resolve_identity
from wicket.client.output import (
    OutputFormat,
    human_duration,
    labels_text,
    parse_time,
    render,
    render_table,
)
from wicket.client.profile import ProfileStore, wsh_home
from wicket.errors import AlreadyExists, BadParameter, NotFound, UpstreamError, WicketError

T = TypeVar("T")
MAX_RESOURCE_FILE = 4 * 1024 * 1024


class WctlGroup(ErrorReportingGroup):
    """`wctl`'s groups: errors are `wctl: ...`."""

    program = "wctl"


class Session:
    """The identity wctl calls with, resolved on first use (so `version` needs none)."""

    def __init__(self, identity_dir: Path | None, config_file: Path | None) -> None:
        self.identity_dir = identity_dir
        self.config_file = config_file
        self._identity: ClientIdentity | None = None

    @property
    def identity(self) -> ClientIdentity:
        """The resolved identity (raises NoIdentity when there is none)."""
        if self._identity is None:
            self._identity = resolve_identity(
                identity_dir=self.identity_dir,
                config_file=self.config_file,
                store=ProfileStore(wsh_home()),
            )
        return self._identity

    def call(self, work: Callable[[AuthClient], Awaitable[T]]) -> T:
        """Run `work` with an API client for this identity."""
        identity = self.identity

        async def main() -> T:
            async with identity.auth_client() as client:
                return await work(client)

        return run(main())


def session(ctx: click.Context) -> Session:
    """The Session the root group stored."""
    value = ctx.find_object(Session)
    assert value is not None
    return value


pass_session = click.make_pass_decorator(Session)


def _csv(value: str | None) -> list[str]:
    """`a,b , c` as a list (empty items dropped)."""
    if value is None:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


def _traits(pairs: tuple[str, ...]) -> dict[str, list[str]]:
    """`--traits k=v1,v2` options as a trait map."""
    traits: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(
                f"{pair!r} is not NAME=VALUE[,VALUE...]", param_hint="--traits"
            )
        traits.setdefault(name.strip(), []).extend(_csv(values))
    return traits


def _format_option(default: str | None, choices: tuple[str, ...]) -> Callable[[Any], Any]:
    return click.option(
        "--format",
        "output",
        type=click.Choice(choices),
        default=default,
        show_default=default is not None,
        help="Output format.",
    )


def _proxy_of(url: str) -> str:
    """The HOST:PORT an invite URL points at."""
    return urlsplit(url).netloc or "<proxy address>"


def _valid_for(expires: str) -> str:
    """`1h` for an expiry one hour from now (rounded to the minute)."""
    left = parse_time(expires) - datetime.now(UTC)
    minutes = max(1, round(left.total_seconds() / 60))
    return format_duration(timedelta(minutes=minutes))


def _invite_message(user: str, answer: dict[str, Any], *, reset: bool) -> str:
    url = str(answer["invite_url"])
    what = (
        f'User "{user}" has been reset. Share this URL with the user to complete password reset'
        if reset
        else f'User "{user}" has been created but requires a password. Share this URL with the '
        "user to complete user setup"
    )
    return (
        f"{what}, link is valid for {_valid_for(str(answer['expires']))}:\n{url}\n\n"
        f"NOTE: Make sure {_proxy_of(url)} points at a Wicket proxy which users can access.\n"
    )


# -- root ----------------------------------------------------------------------------------


@click.group(cls=WctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--identity",
    "identity_dir",
    envvar="WICKET_IDENTITY",
    type=click.Path(file_okay=False, path_type=Path),
    help="Admin identity directory (like DATA_DIR/admin). Env: WICKET_IDENTITY.",
)
@click.option(
    "-c",
    "--config",
    "config_file",
    envvar="WICKET_CONFIG_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="wicket.yaml of the auth host (default /etc/wicket.yaml). Env: WICKET_CONFIG_FILE.",
)
@click.pass_context
def cli(ctx: click.Context, identity_dir: Path | None, config_file: Path | None) -> None:
    """wctl: part of Wicket, identity-aware access to MongoDB and DocumentDB."""
    ctx.obj = Session(identity_dir, config_file)


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(f"wctl v{__version__}")


@cli.command()
@_format_option("text", ("text", "json", "yaml"))
@pass_session
def status(s: Session, output: str) -> None:
    """Show the cluster's name, version and CA pin."""
    answer = s.call(lambda client: client.get("/v1/status"))
    if output != "text":
        click.echo(render(answer, OutputFormat(output)), nl=False)
        return
    rows = [
        ("Cluster", answer["cluster_name"]),
        ("Version", answer["server_version"]),
        ("CA pin", answer["ca_pin"]),
    ]
    for label, value in rows:
        click.echo(f"{label:<8} {value}")


# -- users ---------------------------------------------------------------------------------


@cli.group(cls=WctlGroup)
def users() -> None:
    """Manage users."""


@users.command("add")
@click.argument("name")
@click.option("--roles", required=True, help="Comma-separated roles, e.g. access,editor.")
@click.option("--db-users", help="Database users allowed (trait db_users); * for any.")
@click.option("--db-names", help="Database names allowed (trait db_names); * for any.")
@click.option("--traits", "trait_pairs", multiple=True, help="More traits: NAME=V1,V2 (repeat).")
@pass_session
def users_add(
    s: Session,
    name: str,
    roles: str,
    db_users: str | None,
    db_names: str | None,
    trait_pairs: tuple[str, ...],
) -> None:
    """Create a user and print the invite URL where they set a password."""
    role_list = _csv(roles)
    if not role_list:
        raise click.BadParameter("at least one role is required", param_hint="--roles")
    traits = _traits(trait_pairs)
    if db_users is not None:
        traits["db_users"] = _csv(db_users)
    if db_names is not None:
        traits["db_names"] = _csv(db_names)
    body = {"name": name, "roles": role_list, "traits": traits}
    answer = s.call(lambda client: client.post("/v1/users", body))
    click.echo(_invite_message(name, answer, reset=False), nl=False)


@users.command("ls")
@_format_option("text", ("text", "json", "yaml"))
@pass_session
def users_ls(s: Session, output: str) -> None:
    """List users."""
    answer: list[dict[str, Any]] = s.call(lambda client: client.get("/v1/users"))
    if output != "text":
        click.echo(render(answer, OutputFormat(output)), nl=False)
        return
    rows = [
        (
            user["name"],
            ",".join(user.get("roles", [])),
            ",".join(user.get("traits", {}).get("db_users", [])),
            ",".join(user.get("traits", {}).get("db_names", [])),
        )
        for user in answer
    ]
    click.echo(render_table(("User", "Roles", "DB Users", "DB Names"), rows), nl=False)


@users.command("rm")
@click.argument("name")
@pass_session
def users_rm(s: Session, name: str) -> None:
    """Delete a user."""
    s.call(lambda client: client.delete(f"/v1/users/{_segment(name)}"))
    click.echo(f'User "{name}" has been deleted')


@users.command("update")
@click.argument("name")
@click.option("--set-roles", help="Replace the roles (comma-separated).")
@click.option("--set-db-users", help="Replace the db_users trait (comma-separated).")
@click.option("--set-db-names", help="Replace the db_names trait (comma-separated).")
@click.option("--set-traits", "trait_pairs", multiple=True, help="Replace a trait: NAME=V1,V2.")
@pass_session
def users_update(
    s: Session,
    name: str,
    set_roles: str | None,
    set_db_users: str | None,
    set_db_names: str | None,
    trait_pairs: tuple[str, ...],
) -> None:
    """Change a user's roles or traits (an empty value removes a trait)."""
    body: dict[str, Any] = {}
    if set_roles is not None:
        roles = _csv(set_roles)
        if not roles:
            raise click.BadParameter("a user needs at least one role", param_hint="--set-roles")
        body["roles"] = roles
    traits = {key: values for key, values in _traits(trait_pairs).items()}
    if set_db_users is not None:
        traits["db_users"] = _csv(set_db_users)
    if set_db_names is not None:
        traits["db_names"] = _csv(set_db_names)
    if traits:
        body["traits"] = traits
    if not body:
        raise click.UsageError("nothing to update: give --set-roles, --set-db-users, ...")
    s.call(lambda client: client.put(f"/v1/users/{_segment(name)}", body))
    click.echo(f'User "{name}" has been updated')


@users.command("reset")
@click.argument("name")
@pass_session
def users_reset(s: Session, name: str) -> None:
    """Clear a user's password (and OTP) and print a new invite URL."""
    answer = s.call(lambda client: client.post(f"/v1/users/{_segment(name)}/reset", {}))
    click.echo(_invite_message(name, answer, reset=True), nl=False)


def _segment(name: str) -> str:
    """A name safe in one URL path segment (the server validates it further)."""
    if not name or "/" in name or name in {".", ".."} or len(name) > 256:
        raise BadParameter(f"invalid name {name!r}")
    return name


# -- tokens --------------------------------------------------------------------------------


@cli.group(cls=WctlGroup)
def tokens() -> None:
    """Manage join tokens."""


@tokens.command("add")
@click.option("--type", "token_type", type=click.Choice(["db", "proxy"]), required=True)
@click.option("--ttl", default="30m", show_default=True, help="How long the token is valid.")
@click.option(
    "--names",
    default="",
    help="Proxy tokens: comma-separated DNS names/IPs the proxy's certificate may carry "
    "(besides the configured proxy public address).",
)
@_format_option(None, ("text", "json", "yaml"))
@pass_session
def tokens_add(s: Session, token_type: str, ttl: str, names: str, output: str | None) -> None:
    """Create a join token (`--format=text` prints only the token)."""
    try:
        lifetime = parse_duration(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    if lifetime < timedelta(minutes=1):
        raise click.BadParameter("must be at least 1m", param_hint="--ttl")
    body: dict[str, Any] = {"type": token_type, "ttl_seconds": int(lifetime.total_seconds())}
    if names.strip():
        body["names"] = [name.strip() for name in names.split(",") if name.strip()]

    async def create(client: AuthClient) -> tuple[dict[str, Any], str | None]:
        answer = await client.post("/v1/tokens", body)
        proxy = s.identity.proxy
        if output is None and proxy is None:
            status = await client.get("/v1/status")
            proxy = status.get("proxy_public_addr") if isinstance(status, dict) else None
        return answer, proxy

    answer, proxy = s.call(create)
    if output == "text":
        click.echo(answer["token"])
    elif output is not None:
        click.echo(render(answer, OutputFormat(output)), nl=False)
    else:
        click.echo(_token_help(answer, proxy or "<proxy host:port>", lifetime), nl=False)


def _token_help(answer: dict[str, Any], proxy: str, lifetime: timedelta) -> str:
    token = answer["token"]
    expires = answer.get("expires", "")
    valid = human_duration(lifetime)
    if answer.get("type") == "proxy":
        command = (
            f"> wicket start  # with wicket.auth_token: {token} and\n"
            f"                # wicket.auth_server or proxy_server pointing at this cluster"
        )
    else:
        command = (
            "> wicket db configure create \\\n"
            f"   --token={token} \\\n"
            f"   --proxy={proxy} \\\n"
            "   --name=my-docdb --protocol=mongodb --uri=HOST:PORT -o file"
        )
    return (
        f"The invite token: {token}\n"
        f"This token will expire in {valid} (at {expires}).\n\n"
        "Run this on the new host to join the cluster:\n\n"
        f"{command}\n\n"
        "Please note:\n\n"
        f"  - This invitation token will expire in {valid}.\n"
        f"  - {proxy} must be reachable from the new host.\n"
    )


@tokens.command("ls")
@_format_option("text", ("text", "json", "yaml"))
@pass_session
def tokens_ls(s: Session, output: str) -> None:
    """List join tokens (ids only: values are never stored)."""
    answer: list[dict[str, Any]] = s.call(lambda client: client.get("/v1/tokens"))
    if output != "text":
        click.echo(render(answer, OutputFormat(output)), nl=False)
        return
    rows = [(t["id"], t["type"], t["expires"]) for t in answer]
    click.echo(render_table(("Token ID", "Type", "Expires"), rows), nl=False)


@tokens.command("rm")
@click.argument("token_id")
@pass_session
def tokens_rm(s: Session, token_id: str) -> None:
    """Delete a join token by id (or value)."""
    answer = s.call(lambda client: client.delete(f"/v1/tokens/{_segment(token_id)}"))
    click.echo(f"Token {answer.get('deleted', token_id)} has been deleted")


# -- resources -----------------------------------------------------------------------------


def _user_resource(data: dict[str, Any]) -> dict[str, Any]:
    return resource_to_dict(
        UserResource.model_validate(
            {
                "metadata": {"name": data["name"]},
                "spec": {"roles": data.get("roles", []), "traits": data.get("traits", {})},
                "status": {
                    "created": data.get("created"),
                    "has_password": data.get("has_password", False),
                    "otp_enabled": data.get("otp_enabled", False),
                },
            }
        )
    )


def _token_resource(data: dict[str, Any]) -> dict[str, Any]:
    return resource_to_dict(
        TokenResource.model_validate(
            {
                "metadata": {"name": data["id"], "expires": data.get("expires")},
                "spec": {"type": data["type"], "single_use": data.get("single_use", True)},
            }
        )
    )


def _db_resource(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in ("kind", "version", "metadata", "spec") if key in data}


async def _get(client: AuthClient, kind: ResourceKind, name: str | None) -> list[dict[str, Any]]:
    if kind is ResourceKind.ROLE:
        if name:
            return [await client.get(f"/v1/roles/{_segment(name)}")]
        return list(await client.get("/v1/roles"))
    if kind is ResourceKind.USER:
        if name:
            return [_user_resource(await client.get(f"/v1/users/{_segment(name)}"))]
        return [_user_resource(u) for u in await client.get("/v1/users")]
    if kind is ResourceKind.LOCK:
        if name:
            return [await client.get(f"/v1/locks/{_segment(name)}")]
        return list(await client.get("/v1/locks"))
    if kind is ResourceKind.TOKEN:
        found = [_token_resource(t) for t in await client.get("/v1/tokens")]
        if name:
            found = [t for t in found if str(t["metadata"]["name"]).startswith(name)]
            if len(found) != 1:
                raise NotFound(f"join token {name!r} not found")
        return found
    served = {d["metadata"]["name"]: _db_resource(d) for d in await client.get("/v1/databases")}
    if name is None:
        # dynamic resources no agent serves yet, then everything being served
        dynamic = {d["metadata"]["name"]: d for d in await client.get("/v1/db_resources")}
        merged = {**dynamic, **served}
        return [merged[key] for key in sorted(merged)]
    try:
        return [_db_resource(await client.get(f"/v1/databases/{_segment(name)}"))]
    except NotFound:
        if name in served:
            return [served[name]]
        raise NotFound(f'database "{name}" not found') from None


@cli.command("get")
@click.argument("reference", metavar="KIND[/NAME]")
@_format_option("yaml", ("yaml", "json"))
@pass_session
def get(s: Session, reference: str, output: str) -> None:
    """Print resources (role, user, token, db, lock) as YAML or JSON."""
    kind, name = parse_reference(reference)
    found = s.call(lambda client: _get(client, kind, name))
    click.echo(render(found, OutputFormat(output)), nl=False)


async def _exists(client: AuthClient, path: str) -> bool:
    try:
        await client.get(path)
    except NotFound:
        return False
    return True


async def _create_one(client: AuthClient, resource: Any, overwrite: bool) -> str:
    kind, name = resource_kind(resource), resource_name(resource)
    data = resource_to_dict(resource)
    label = f'{kind.value} "{name}"'
    if isinstance(resource, UserResource):
        path = f"/v1/users/{_segment(name)}"
        roles = list(resource.spec.roles)
        given = {k: list(v) for k, v in resource.spec.traits.items()}
        if await _exists(client, path):
            if not overwrite:
                raise AlreadyExists(f"{label} already exists (use -f to overwrite)")
            current = await client.get(path)
            # Traits the file leaves out are removed (an empty list removes a trait).
            traits: dict[str, list[str]] = {trait: [] for trait in current.get("traits", {})}
            traits.update(given)
            await client.put(path, {"roles": roles, "traits": traits})
            return f"{label} has been updated\n"
        answer = await client.post("/v1/users", {"name": name, "roles": roles, "traits": given})
        return f"{label} has been created\n" + _invite_message(name, answer, reset=False)
    if isinstance(resource, TokenResource):
        if overwrite:
            with contextlib.suppress(NotFound):
                await client.delete(f"/v1/tokens/{_segment(name)}")
        ttl = resource.spec.ttl or timedelta(minutes=30)
        if resource.metadata.expires is not None:
            ttl = resource.metadata.expires - datetime.now(UTC)
        body = {
            "type": resource.spec.type.value,
            "ttl_seconds": int(ttl.total_seconds()),
            "single_use": resource.spec.single_use,
            "value": name,
        }
        answer = await client.post("/v1/tokens", body)
        if answer.get("token") != name:
            await client.delete(f"/v1/tokens/{_segment(str(answer['id']))}")
            raise UpstreamError(
                "this auth service cannot create a token with a given value; "
                "use wctl tokens add instead"
            )
        return f'token "{answer["id"]}" has been created\n'
    if isinstance(resource, Lock):
        answer = await client.post("/v1/locks", {"spec": data["spec"]})
        return f'lock "{answer["metadata"]["name"]}" has been created\n'
    if isinstance(resource, Role):
        path = f"/v1/roles/{_segment(name)}"
    else:
        path = f"/v1/databases/{_segment(name)}"
    existed = await _exists(client, path)
    if existed and not overwrite:
        raise AlreadyExists(f"{label} already exists (use -f to overwrite)")
    await client.put(path, data)
    return f"{label} has been {'updated' if existed else 'created'}\n"


@cli.command("create")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("-f", "--force", is_flag=True, help="Overwrite resources that exist.")
@pass_session
def create(s: Session, file: Any, force: bool) -> None:
    """Create resources from a YAML (or JSON) file; `-` reads stdin."""
    text = file.read(MAX_RESOURCE_FILE + 1)
    if len(text) > MAX_RESOURCE_FILE:
        raise BadParameter(f"{file.name}: larger than {MAX_RESOURCE_FILE} bytes")
    resources = parse_resources(text, source=str(file.name))

    async def apply(client: AuthClient) -> None:
        for resource in resources:
            click.echo(await _create_one(client, resource, force), nl=False)

    s.call(apply)


@cli.command("rm")
@click.argument("reference", metavar="KIND/NAME")
@pass_session
def rm(s: Session, reference: str) -> None:
    """Delete a resource (role, user, token, db, lock)."""
    kind, name = parse_reference(reference)
    if name is None:
        raise click.BadParameter("give KIND/NAME, e.g. role/docdb-dev", param_hint="KIND/NAME")
    paths = {
        ResourceKind.ROLE: "/v1/roles/",
        ResourceKind.USER: "/v1/users/",
        ResourceKind.TOKEN: "/v1/tokens/",
        ResourceKind.DB: "/v1/databases/",
        ResourceKind.LOCK: "/v1/locks/",
    }
    s.call(lambda client: client.delete(paths[kind] + _segment(name)))
    click.echo(f'{kind.value} "{name}" has been deleted')


# -- locks ---------------------------------------------------------------------------------


@cli.command("lock")
@click.option("--user", "user", help="Lock this user.")
@click.option("--role", "role", help="Lock every user holding this role.")
@click.option("--db", "database", help="Lock access to this database.")
@click.option("--message", default="", help="Why (shown to whoever the lock stops).")
@click.option("--ttl", help="Lift the lock after this long (e.g. 1h, 30m).")
@click.option("--expires", help="Lift the lock at this time (RFC 3339, e.g. 2026-12-24T08:00:00Z).")
@pass_session
def lock(
    s: Session,
    user: str | None,
    role: str | None,
    database: str | None,
    message: str,
    ttl: str | None,
    expires: str | None,
) -> None:
    """Lock a user, a role or a database now: no login, certificate or session; prints its id.

    Open sessions the lock matches are ended. `wctl rm lock/ID` lifts it.
    """
    targets = {"user": user, "role": role, "db": database}
    given = {field: value for field, value in targets.items() if value}
    if len(given) != 1:
        raise click.UsageError("give exactly one of --user, --role, --db")
    if ttl is not None and expires is not None:
        raise click.UsageError("give --ttl or --expires, not both")
    body: dict[str, Any] = {**given, "message": message}
    if ttl is not None:
        try:
            lifetime = parse_duration(ttl)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ttl") from None
        if lifetime < timedelta(seconds=1):
            raise click.BadParameter("must be at least 1s", param_hint="--ttl")
        body["ttl_seconds"] = int(lifetime.total_seconds())
    if expires is not None:
        try:
            moment = parse_event_time(expires)
        except WicketError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires") from None
        body["expires"] = moment.isoformat().replace("+00:00", "Z")
    answer = s.call(lambda client: client.post("/v1/locks", body))
    click.echo(answer["metadata"]["name"])


@cli.group(cls=WctlGroup)
def locks() -> None:
    """Locks in force (`wctl lock` adds one, `wctl rm lock/ID` lifts it)."""


@locks.command("ls")
@_format_option("text", ("text", "json", "yaml"))
@pass_session
def locks_ls(s: Session, output: str) -> None:
    """List the locks in force."""
    answer: list[dict[str, Any]] = s.call(lambda client: client.get("/v1/locks"))
    if output != "text":
        click.echo(render(answer, OutputFormat(output)), nl=False)
        return
    rows = []
    for item in answer:
        spec = item.get("spec", {})
        target = ", ".join(f"{k}={v}" for k, v in spec.get("target", {}).items())
        rows.append(
            (
                item["metadata"]["name"],
                target,
                spec.get("message", ""),
                spec.get("expires", "never"),
                spec.get("created_by", ""),
            )
        )
    click.echo(render_table(("ID", "Target", "Message", "Expires", "Created By"), rows), nl=False)


# -- databases -----------------------------------------------------------------------------


@cli.group(cls=WctlGroup)
def db() -> None:
    """Databases and the agents serving them."""


@db.command("ls")
@_format_option("text", ("text", "json", "yaml"))
@pass_session
def db_ls(s: Session, output: str) -> None:
    """List databases being served, with their agents."""
    servers: list[dict[str, Any]] = s.call(lambda client: client.get("/v1/db_servers"))
    databases: dict[str, dict[str, Any]] = {}
    for server in servers:
        resource = server["database"]
        name = resource["metadata"]["name"]
        entry = databases.setdefault(
            name,
            {
                "name": name,
                "description": resource["metadata"].get("description", ""),
                "protocol": resource["spec"].get("protocol", ""),
                "uri": resource["spec"].get("uri", ""),
                "labels": resource["metadata"].get("labels", {}),
                "agents": [],
            },
        )
        entry["agents"].append(
            {
                "host_id": server["host_id"],
                "hostname": server["hostname"],
                "expires": server["expires"],
            }
        )
    listed = [databases[name] for name in sorted(databases)]
    if output != "text":
        click.echo(render(listed, OutputFormat(output)), nl=False)
        return
    rows = [
        (
            d["name"],
            d["protocol"],
            d["uri"],
            labels_text(d["labels"]),
            ", ".join(sorted({a["hostname"] for a in d["agents"]})),
        )
        for d in listed
    ]
    click.echo(render_table(("Name", "Protocol", "URI", "Labels", "Agents"), rows), nl=False)


cli.add_command(auth_group)
cli.add_command(events_group)


def main() -> None:
    """Entry point of the console script."""
    try:
        cli()
    except WicketError as error:  # raised outside a group's invoke (e.g. while parsing)
        click.echo(f"wctl: {error}", err=True)
        raise SystemExit(1) from None
