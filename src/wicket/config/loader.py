"""Config layer: read `wicket.yaml` into a `WicketConfig`, with one clear line per problem.

Every message starts with the file name and names the field path
(`wicket.yaml: db_service.databases[0].uri: field required`); unknown keys get a
"did you mean" suggestion. Nothing here raises a library exception to the caller.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node

from wicket.config.models import CONFIG_VERSION, WicketConfig
from wicket.config.types import quote
from wicket.errors import BadParameter

MAX_CONFIG_BYTES = 1 << 20
"""A config file larger than this is refused before parsing."""
MAX_YAML_ALIASES = 100
"""YAML aliases allowed in one file (stops "billion laughs" expansion in validation)."""
MAX_TOKEN_BYTES = 64 * 1024
"""A join-token file larger than this is refused."""


class ConfigError(BadParameter):
    """The config cannot be used; the message is user-ready, one line per problem."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {problem}" for problem in self.problems))


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and caps aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.alias_count = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_YAML_ALIASES} aliases", None
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {quote(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path) -> WicketConfig:
    """Read and validate a config file; every failure is a `ConfigError`."""
    source = str(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            source,
            ["no such file (write one with `wicket configure` or `wicket db configure create`)"],
        ) from None
    except PermissionError:
        raise ConfigError(source, ["permission denied (cannot read the config file)"]) from None
    except IsADirectoryError:
        raise ConfigError(source, ["is a directory, not a config file"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(source, [f"larger than {MAX_CONFIG_BYTES} bytes; not a config file"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    return parse_config(text, source=source)


def parse_config(text: str, *, source: str) -> WicketConfig:
    """Validate config text; `source` names it in messages (usually the file path)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(source, [f"larger than {MAX_CONFIG_BYTES} bytes; not a config file"])
    if not text.strip():
        raise ConfigError(source, ["the file is empty"])
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"not valid YAML: {where}{exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
    if document is None:
        raise ConfigError(source, ["the file is empty (only comments)"])
    if not isinstance(document, dict):
        raise ConfigError(
            source, [f"expected a mapping of sections at the top, got {_describe(document)}"]
        )
    if "version" not in document:
        raise ConfigError(source, [f'missing "version: {CONFIG_VERSION}" at the top'])
    if document["version"] != CONFIG_VERSION:
        raise ConfigError(
            source,
            [
                f"unsupported version {quote(document['version'])}: this wicket reads "
                f'"version: {CONFIG_VERSION}"'
            ],
        )
    try:
        return WicketConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(source, problems_of(exc)) from None


def problems_of(error: ValidationError) -> list[str]:
    """Turn pydantic's errors into `path: what is wrong` lines."""
    problems: list[str] = []
    for detail in error.errors(include_url=False):
        loc = tuple(part for part in detail["loc"] if part != "[key]")
        message = _message(detail, loc)
        if not loc:
            problems.extend(message.splitlines())
        else:
            problems.append(f"{field_path(loc)}: {message}")
    return problems


def field_path(loc: Sequence[int | str]) -> str:
    """Render a pydantic location as the YAML path a user reads: `a.b[0].c`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _message(detail: ErrorDetails, loc: tuple[int | str, ...]) -> str:
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    value = detail.get("input")
    if kind == "wicket":
        return str(ctx["reason"])
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field" + _suggestion(loc)
    if kind in {"enum", "literal_error"}:
        return f"must be one of {ctx.get('expected', '?')} (got {_describe(value)})"
    if kind == "string_type":
        return f"must be a string (got {_describe(value)})"
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return f"must be a mapping (got {_describe(value)})"
    if kind in {"tuple_type", "list_type"}:
        return f"must be a list (got {_describe(value)})"
    if kind.startswith("bool"):
        return f"must be true or false (got {_describe(value)})"
    if kind == "too_long":
        return f"too many items (at most {ctx.get('max_length', '?')})"
    if kind in {"path_type"}:
        return f"must be a file path (got {_describe(value)})"
    text = detail["msg"]
    return text[:1].lower() + text[1:]


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _suggestion(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return ""
    unknown = str(loc[-1])
    candidates = _fields_at(loc[:-1])
    close = difflib.get_close_matches(unknown, candidates, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {quote(close[0])}?)"
    if candidates:
        return f" (known fields: {', '.join(candidates)})"
    return ""


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model at `loc`, for suggestions."""
    model: type[BaseModel] | None = WicketConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return []
        model = _inner_model(model.model_fields[part].annotation)
    return list(model.model_fields) if model is not None else []


def _inner_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return None
    for argument in typing.get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None


def read_auth_token(value: str) -> str:
    """Resolve `wicket.auth_token`: a file path gives its stripped content, else the literal."""
    looks_like_path = value.startswith(("/", "./", "../", "~"))
    path = Path(value).expanduser()
    if not looks_like_path and not path.is_file():
        token = value.strip()
        if not token:
            raise BadParameter("wicket.auth_token is empty")
        return token
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise BadParameter(
            f"cannot read the join token file {quote(value)}: {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_TOKEN_BYTES:
        raise BadParameter(f"the join token file {quote(value)} is too large to be a token")
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadParameter(f"the join token file {quote(value)} is not text") from None
    if not token:
        raise BadParameter(f"the join token file {quote(value)} is empty")
    return token
