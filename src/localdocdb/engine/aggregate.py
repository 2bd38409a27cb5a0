"""The aggregation pipeline: stage parsing, namespace discovery and execution (engine layer).

`pipeline_namespaces` tells the command layer every collection a pipeline reads
($lookup, $unionWith, inside $facet and sub-pipelines) or writes ($out, $merge),
so it can authorize them all before anything runs. `run_pipeline` then evaluates
the stages over the source documents; `$out` and `$merge` write through the
`Catalog` (in `pipeline_writes.py`). Stage semantics follow
https://www.mongodb.com/docs/manual/reference/operator/aggregation-pipeline/.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from localdocdb.engine.compare import compare_values
from localdocdb.engine.expressions import (
    ABSENT,
    OPERATORS,
    evaluate,
    is_number,
    truthy,
)
from localdocdb.engine.keys import hashable_key
from localdocdb.engine.matcher import compile_filter
from localdocdb.engine.pipeline_writes import merge_stage, out_stage
from localdocdb.engine.reshape import AddFields, AggregateProjection, unset_projection
from localdocdb.engine.sort import sort_documents
from localdocdb.engine.storage import Catalog
from localdocdb.errors import CommandError, bad_value, failed_to_parse

MAX_PIPELINE_DEPTH = 20  # nested $lookup / $facet / $unionWith pipelines
MAX_PIPELINE_LENGTH = 1000
MAX_SAMPLE_SIZE = 10_000_000
WRITE_STAGES = frozenset({"$out", "$merge"})
STAGES = frozenset(
    {
        "$match",
        "$project",
        "$addFields",
        "$set",
        "$unset",
        "$group",
        "$sort",
        "$skip",
        "$limit",
        "$count",
        "$unwind",
        "$lookup",
        "$unionWith",
        "$out",
        "$merge",
        "$replaceRoot",
        "$replaceWith",
        "$sortByCount",
        "$sample",
        "$facet",
        "$documents",
    }
)


def pipeline_error(code: int, message: str) -> CommandError:
    """A pipeline-shape error with MongoDB's numeric location code."""
    return CommandError(code, f"Location{code}", message)


def stage_name(stage: Any) -> str:
    """The `$name` of one pipeline stage, validating its shape."""
    if not isinstance(stage, Mapping) or len(stage) != 1:
        raise pipeline_error(
            40323, "A pipeline stage specification object must contain exactly one field."
        )
    (name,) = stage
    name = str(name)
    if name not in STAGES:
        raise pipeline_error(40324, f"Unrecognized pipeline stage name: '{name}'")
    return name


@dataclass(frozen=True)
class Namespace:
    """A `db.collection` a pipeline touches."""

    database: str
    collection: str


@dataclass
class PipelineNamespaces:
    """Collections a pipeline reads from and writes to (besides its source)."""

    reads: list[Namespace] = field(default_factory=list)
    writes: list[tuple[str, Namespace]] = field(default_factory=list)  # (stage, target)


def _target(spec: Any, database: str, stage: str) -> Namespace:
    """`$out`/`$merge` target: a collection name or `{db, coll}`."""
    if isinstance(spec, str) and spec:
        return Namespace(database, spec)
    if isinstance(spec, Mapping) and isinstance(spec.get("coll"), str):
        db = spec.get("db", database)
        if not isinstance(db, str) or not db:
            raise failed_to_parse(f"{stage} 'db' must be a non-empty string")
        return Namespace(db, spec["coll"])
    raise failed_to_parse(f"{stage} target must be a collection name or {{db, coll}}")


def _lookup_source(spec: Mapping[str, Any], database: str) -> Namespace | None:
    source = spec.get("from")
    if source is None:
        return None
    if isinstance(source, str):
        return Namespace(database, source)
    if isinstance(source, Mapping) and isinstance(source.get("coll"), str):
        return Namespace(str(source.get("db", database)), source["coll"])
    raise failed_to_parse("$lookup 'from' must be a collection name")


def pipeline_namespaces(
    pipeline: Any, database: str, depth: int = 0, found: PipelineNamespaces | None = None
) -> PipelineNamespaces:
    """Every other collection the pipeline reads or writes; validates stage names and order."""
    found = found if found is not None else PipelineNamespaces()
    if not isinstance(pipeline, list):
        raise type_mismatch_pipeline()
    if depth > MAX_PIPELINE_DEPTH:
        raise pipeline_error(15942, "pipeline nested too deeply")
    if len(pipeline) > MAX_PIPELINE_LENGTH:
        raise pipeline_error(7749501, f"pipeline length exceeds {MAX_PIPELINE_LENGTH} stages")
    for index, stage in enumerate(pipeline):
        name = stage_name(stage)
        spec = stage[name]
        if name in WRITE_STAGES:
            if index != len(pipeline) - 1:
                raise pipeline_error(40601, f"{name} can only be the final stage in the pipeline")
            if depth > 0:
                raise pipeline_error(51047, f"{name} is not allowed within a sub-pipeline")
            target_spec = (
                spec.get("into") if name == "$merge" and isinstance(spec, Mapping) else spec
            )
            found.writes.append((name, _target(target_spec, database, name)))
        elif name == "$lookup":
            if not isinstance(spec, Mapping):
                raise failed_to_parse("the $lookup specification must be an Object")
            source = _lookup_source(spec, database)
            if source is not None:
                found.reads.append(source)
            if "pipeline" in spec:
                pipeline_namespaces(spec["pipeline"], database, depth + 1, found)
        elif name == "$unionWith":
            coll = (
                spec
                if isinstance(spec, str)
                else spec.get("coll")
                if isinstance(spec, Mapping)
                else None
            )
            if isinstance(coll, str):
                found.reads.append(Namespace(database, coll))
            if isinstance(spec, Mapping) and "pipeline" in spec:
                pipeline_namespaces(spec["pipeline"], database, depth + 1, found)
        elif name == "$facet":
            if not isinstance(spec, Mapping) or not spec:
                raise pipeline_error(15947, "a facet's fields must be specified in an object")
            for sub in spec.values():
                for sub_stage in sub if isinstance(sub, list) else []:
                    if stage_name(sub_stage) in {"$out", "$merge", "$facet"}:
                        raise pipeline_error(
                            40600,
                            f"{stage_name(sub_stage)} is not allowed to be used "
                            "within a $facet stage",
                        )
                pipeline_namespaces(sub, database, depth + 1, found)
        elif name == "$documents" and index != 0:
            raise pipeline_error(40602, "$documents is only valid as the first stage in a pipeline")
    return found


def type_mismatch_pipeline() -> CommandError:
    """The error for a pipeline that is not an array."""
    return CommandError(14, "TypeMismatch", "'pipeline' option must be specified as an array")


@dataclass
class PipelineEnvironment:
    """What a pipeline needs from outside: the catalog, its database and `let` variables."""

    catalog: Catalog
    database: str
    variables: dict[str, Any] = field(default_factory=dict)
    depth: int = 0
    random_source: random.Random = field(default_factory=random.Random)

    def with_variables(self, variables: Mapping[str, Any]) -> PipelineEnvironment:
        """A nested environment (sub-pipeline) with more variables bound."""
        return PipelineEnvironment(
            self.catalog,
            self.database,
            {**self.variables, **variables},
            self.depth + 1,
            self.random_source,
        )

    def variables_for(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Variables for evaluating an expression against `doc`."""
        return {**self.variables, "ROOT": doc, "CURRENT": doc}

    def read(self, namespace: Namespace) -> Iterator[dict[str, Any]]:
        """The documents of another collection (none if it does not exist)."""
        collection = self.catalog.collection(namespace.database, namespace.collection)
        return iter(()) if collection is None else collection.documents()


Stage = Callable[[Iterable[dict[str, Any]], PipelineEnvironment], Iterable[dict[str, Any]]]


def run_pipeline(
    pipeline: list[Any], documents: Iterable[dict[str, Any]], env: PipelineEnvironment
) -> list[dict[str, Any]]:
    """Run every stage over `documents`; returns the results (empty after $out/$merge)."""
    stream: Iterable[dict[str, Any]] = documents
    for stage in pipeline:
        name = stage_name(stage)
        spec = stage[name]
        if name == "$out":
            out_stage(spec, list(stream), env)
            return []
        if name == "$merge":
            merge_stage(spec, list(stream), env)
            return []
        stream = _STAGE_BUILDERS[name](spec, env)(stream, env)
    return list(stream)


# -- stage builders: spec -> stage function ----------------------------------------------


def _match(spec: Any, env: PipelineEnvironment) -> Stage:
    if not isinstance(spec, Mapping):
        raise pipeline_error(15959, "the match filter must be an expression in an object")

    def expr_evaluator(expression: Any, doc: Mapping[str, Any]) -> Any:
        return truthy(evaluate(expression, doc, env.variables_for(doc)))

    matcher = compile_filter(spec, expr_evaluator=expr_evaluator)

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        return (doc for doc in docs if matcher.matches(doc))

    return stage


def _project(spec: Any, env: PipelineEnvironment) -> Stage:
    projection = AggregateProjection(spec)
    return lambda docs, env: (projection.apply(d, env.variables_for(d)) for d in docs)


def _add_fields(spec: Any, env: PipelineEnvironment) -> Stage:
    add = AddFields(spec)
    return lambda docs, env: (add.apply(d, env.variables_for(d)) for d in docs)


def _unset(spec: Any, env: PipelineEnvironment) -> Stage:
    projection = unset_projection(spec)
    return lambda docs, env: (projection.apply(d) for d in docs)


def _sort(spec: Any, env: PipelineEnvironment) -> Stage:
    if not isinstance(spec, Mapping) or not spec:
        raise pipeline_error(15973, "the $sort key specification must be an object")
    return lambda docs, env: sort_documents(docs, spec)


def _non_negative(name: str, spec: Any, positive: bool) -> int:
    if not is_number(spec) or int(spec) != spec:
        raise pipeline_error(
            15956 if name == "$skip" else 15957,
            f"invalid argument to {name} stage: Expected an integer: {name}: {spec!r}",
        )
    value = int(spec)
    if value < 0 or (positive and value == 0):
        raise pipeline_error(
            15958 if positive else 15956,
            f"the {name[1:]} must be {'positive' if positive else 'non-negative'}",
        )
    return value


def _skip(spec: Any, env: PipelineEnvironment) -> Stage:
    count = _non_negative("$skip", spec, positive=False)

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        iterator = iter(docs)
        for _ in range(count):
            if next(iterator, None) is None:
                return
        yield from iterator

    return stage


def _limit(spec: Any, env: PipelineEnvironment) -> Stage:
    count = _non_negative("$limit", spec, positive=True)

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        for index, doc in enumerate(docs):
            if index >= count:
                return
            yield doc

    return stage


def _count(spec: Any, env: PipelineEnvironment) -> Stage:
    if not isinstance(spec, str) or not spec or spec.startswith("$") or "." in spec:
        raise pipeline_error(
            40156,
            "the count field must be a non-empty string, not start with '$' and not contain '.'",
        )

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        total = sum(1 for _ in docs)
        return [{spec: total}] if total else []

    return stage


def _unwind(spec: Any, env: PipelineEnvironment) -> Stage:
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, Mapping):
        raise pipeline_error(
            15981, "expected either a string or an object as specification for $unwind stage"
        )
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith("$") or len(path) < 2:
        raise pipeline_error(28818, "path option to $unwind stage should be prefixed with a '$'")
    index_field = spec.get("includeArrayIndex")
    preserve = bool(spec.get("preserveNullAndEmptyArrays", False))
    parts = path[1:].split(".")

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        for doc in docs:
            value = evaluate(path, doc)
            if isinstance(value, list) and value:
                for index, item in enumerate(value):
                    out = _with_path(doc, parts, item)
                    if index_field:
                        out[index_field] = index
                    yield out
            elif isinstance(value, list) or value is ABSENT or value is None:
                if preserve:
                    out = (
                        _with_path(doc, parts, None)
                        if value is None
                        else (_without_path(doc, parts) if isinstance(value, list) else dict(doc))
                    )
                    if index_field:
                        out[index_field] = None
                    yield out
            else:
                out = dict(doc)
                if index_field:
                    out[index_field] = None
                yield out

    return stage


def _with_path(doc: Mapping[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    out = dict(doc)
    if len(parts) == 1:
        out[parts[0]] = value
    else:
        child = out.get(parts[0])
        out[parts[0]] = _with_path(child if isinstance(child, Mapping) else {}, parts[1:], value)
    return out


def _without_path(doc: Mapping[str, Any], parts: list[str]) -> dict[str, Any]:
    out = dict(doc)
    if len(parts) == 1:
        out.pop(parts[0], None)
    elif isinstance(out.get(parts[0]), Mapping):
        out[parts[0]] = _without_path(out[parts[0]], parts[1:])
    return out


# -- $group ---------------------------------------------------------------------------------

ACCUMULATORS = frozenset(
    {
        "$sum",
        "$avg",
        "$min",
        "$max",
        "$first",
        "$last",
        "$push",
        "$addToSet",
        "$count",
        "$mergeObjects",
    }
)


class _Accumulator:
    """The running state of one accumulator field of one group."""

    def __init__(self, operator: str, expression: Any) -> None:
        self.operator = operator
        self.expression = expression
        self.values: list[Any] = []
        self.seen: set[Any] = set()
        self.first: Any = ABSENT
        self.has_first = False
        self.last: Any = ABSENT
        self.count = 0

    def add(self, doc: Mapping[str, Any], variables: Mapping[str, Any]) -> None:
        """Fold one document of the group in."""
        if self.operator == "$count":
            self.count += 1
            return
        value = evaluate(self.expression, doc, variables)
        if self.operator in {"$first", "$last"}:
            if not self.has_first:
                self.first, self.has_first = value, True
            self.last = value
        elif self.operator == "$addToSet":
            if value is not ABSENT:
                key = hashable_key(value)
                if key not in self.seen:
                    self.seen.add(key)
                    self.values.append(value)
        elif value is not ABSENT:
            self.values.append(value)

    def result(self) -> Any:
        """The accumulated value for the group's output document."""
        if self.operator == "$count":
            return self.count
        if self.operator == "$first":
            return None if self.first is ABSENT else self.first
        if self.operator == "$last":
            return None if self.last is ABSENT else self.last
        if self.operator in {"$push", "$addToSet"}:
            return self.values
        if self.operator == "$mergeObjects":
            return OPERATORS["$mergeObjects"]([{"$literal": v} for v in self.values], {}, {})
        if self.operator in {"$min", "$max"}:
            # Over whole values (arrays included); null and missing are ignored.
            best: Any = None
            sign = 1 if self.operator == "$max" else -1
            for value in self.values:
                if value is not None and (best is None or sign * compare_values(value, best) > 0):
                    best = value
            return best
        # $sum / $avg: non-numeric values (arrays included) are ignored, as MongoDB does.
        literal = [{"$literal": v} for v in self.values if is_number(v)]
        return OPERATORS[self.operator](literal, {}, {})


def _group(spec: Any, env: PipelineEnvironment) -> Stage:
    if not isinstance(spec, Mapping) or "_id" not in spec:
        raise pipeline_error(15955, "a group specification must include an _id")
    id_expression = spec["_id"]
    fields: dict[str, tuple[str, Any]] = {}
    for name, accumulator in spec.items():
        if name == "_id":
            continue
        if "." in name:
            raise pipeline_error(40235, f"The field name '{name}' cannot contain '.'")
        if not isinstance(accumulator, Mapping) or len(accumulator) != 1:
            raise pipeline_error(40234, f"The field '{name}' must be an accumulator object")
        ((operator, expression),) = accumulator.items()
        if operator not in ACCUMULATORS:
            raise pipeline_error(15952, f"unknown group operator '{operator}'")
        fields[name] = (operator, expression)

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        groups: dict[Any, tuple[Any, dict[str, _Accumulator]]] = {}
        for doc in docs:
            variables = env.variables_for(doc)
            key_value = evaluate(id_expression, doc, variables)
            if key_value is ABSENT:
                key_value = None
            key = hashable_key(key_value)
            entry = groups.get(key)
            if entry is None:
                accumulators = {n: _Accumulator(op, ex) for n, (op, ex) in fields.items()}
                entry = groups[key] = (key_value, accumulators)
            for accumulator in entry[1].values():
                accumulator.add(doc, variables)
        for key_value, accumulators in groups.values():
            out = {"_id": key_value}
            for name, accumulator in accumulators.items():
                out[name] = accumulator.result()
            yield out

    return stage


def _sort_by_count(spec: Any, env: PipelineEnvironment) -> Stage:
    if not (isinstance(spec, str) and spec.startswith("$")) and not isinstance(spec, Mapping):
        raise pipeline_error(
            40148, "the sortByCount field must be defined as a $-prefixed path or an expression"
        )
    group = _group({"_id": spec, "count": {"$sum": 1}}, env)
    return lambda docs, env: sort_documents(group(docs, env), {"count": -1})


def _replace_root(spec: Any, env: PipelineEnvironment) -> Stage:
    if not isinstance(spec, Mapping) or "newRoot" not in spec:
        raise pipeline_error(40231, "no newRoot specified for the $replaceRoot stage")
    return _replace_with(spec["newRoot"], env)


def _replace_with(expression: Any, env: PipelineEnvironment) -> Stage:
    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        for doc in docs:
            value = evaluate(expression, doc, env.variables_for(doc))
            if not isinstance(value, Mapping):
                raise pipeline_error(
                    40228,
                    "'newRoot' expression must evaluate to an object, but resulting value was: "
                    f"{'MISSING' if value is ABSENT else value!r}",
                )
            yield dict(value)

    return stage


def _sample(spec: Any, env: PipelineEnvironment) -> Stage:
    size: Any = spec.get("size") if isinstance(spec, Mapping) else None
    if not is_number(size) or int(size) < 0:
        raise pipeline_error(28747, "size argument to $sample must be a non-negative number")
    count = min(int(size), MAX_SAMPLE_SIZE)

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        items = list(docs)
        return env.random_source.sample(items, min(count, len(items)))

    return stage


def _lookup(spec: Any, env: PipelineEnvironment) -> Stage:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("as"), str):
        raise failed_to_parse("must specify 'as' field for a $lookup")
    source = _lookup_source(spec, env.database)
    as_field = spec["as"]
    local_field, foreign_field = spec.get("localField"), spec.get("foreignField")
    if (local_field is None) != (foreign_field is None):
        raise failed_to_parse("$lookup requires both or neither of 'localField' and 'foreignField'")
    sub_pipeline = spec.get("pipeline")
    if local_field is None and sub_pipeline is None:
        raise failed_to_parse(
            "$lookup requires either 'pipeline' or 'localField' and 'foreignField'"
        )
    let_spec = spec.get("let", {})
    if not isinstance(let_spec, Mapping):
        raise failed_to_parse("$lookup 'let' must be an object")

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        foreign_docs = list(env.read(source)) if source is not None else []
        for doc in docs:
            candidates = foreign_docs
            if local_field is not None:
                local = evaluate("$" + str(local_field), doc)
                values = local if isinstance(local, list) and local else [local]
                values = [None if v is ABSENT else v for v in values]
                matcher = compile_filter({str(foreign_field): {"$in": values}})
                candidates = [f for f in foreign_docs if matcher.matches(f)]
            if sub_pipeline is not None:
                variables = env.variables_for(doc)
                bound = {name: evaluate(expr, doc, variables) for name, expr in let_spec.items()}
                joined = run_pipeline(sub_pipeline, candidates, env.with_variables(bound))
            else:
                joined = candidates
            out = _with_path(doc, as_field.split("."), joined)
            yield out

    return stage


def _union_with(spec: Any, env: PipelineEnvironment) -> Stage:
    if isinstance(spec, str):
        spec = {"coll": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("coll"), str):
        raise failed_to_parse("$unionWith requires a 'coll' name")
    namespace = Namespace(env.database, spec["coll"])
    sub_pipeline = spec.get("pipeline", [])

    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        yield from docs
        yield from run_pipeline(sub_pipeline, env.read(namespace), env.with_variables({}))

    return stage


def _facet(spec: Any, env: PipelineEnvironment) -> Stage:
    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        items = list(docs)
        out = {name: run_pipeline(sub, items, env.with_variables({})) for name, sub in spec.items()}
        return [out]

    return stage


def _documents(spec: Any, env: PipelineEnvironment) -> Stage:
    def stage(docs: Iterable[dict[str, Any]], env: PipelineEnvironment) -> Iterable[dict[str, Any]]:
        value = evaluate(spec, {}, env.variables_for({}))
        if not isinstance(value, list) or not all(isinstance(d, Mapping) for d in value):
            raise bad_value("$documents must evaluate to an array of objects")
        return [dict(d) for d in value]

    return stage


_STAGE_BUILDERS: dict[str, Callable[[Any, PipelineEnvironment], Stage]] = {
    "$match": _match,
    "$project": _project,
    "$addFields": _add_fields,
    "$set": _add_fields,
    "$unset": _unset,
    "$group": _group,
    "$sort": _sort,
    "$skip": _skip,
    "$limit": _limit,
    "$count": _count,
    "$unwind": _unwind,
    "$lookup": _lookup,
    "$unionWith": _union_with,
    "$replaceRoot": _replace_root,
    "$replaceWith": _replace_with,
    "$sortByCount": _sort_by_count,
    "$sample": _sample,
    "$facet": _facet,
    "$documents": _documents,
}
