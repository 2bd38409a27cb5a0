"""Wire layer: which namespaces an aggregation pipeline reaches, and whether the server.

Stages are checked against allow-lists: PURE_STAGES only transform the documents
flowing through (or read the collection the pipeline runs on); SERVER_STAGES read the
server as a whole; `$lookup`, `$graphLookup`, `$unionWith`, `$out`, `$merge` and
`$facet` name their other collections (in any database) or hold pipelines of their
own. Any other stage, or a value of an unexpected shape, makes the command unknown.
"""

from __future__ import annotations

from collections.abc import Mapping

from wicket.wire.mongo.classify import Collector, Namespace, Unclassified, collection_namespace

MAX_PIPELINE_DEPTH = 20
"""Nested pipelines ($lookup in $facet in $unionWith ...) deeper than this are unknown."""

# --- aggregation -----------------------------------------------------------------------

# Stages that only transform the documents flowing through (or read the collection
# the pipeline runs on): no other namespace involved.
PURE_STAGES = frozenset(
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
        "$replaceRoot",
        "$replaceWith",
        "$sample",
        "$bucket",
        "$bucketAuto",
        "$sortByCount",
        "$redact",
        "$densify",
        "$fill",
        "$setWindowFields",
        "$geoNear",
        "$collStats",
        "$indexStats",
        "$planCacheStats",
        "$documents",
        "$changeStreamSplitLargeEvent",
        "$search",
        "$searchMeta",
        "$vectorSearch",
    }
)

# Stages that report on the server as a whole (or on every session of the shared db user).
SERVER_STAGES = frozenset(
    {
        "$currentOp",
        "$listLocalSessions",
        "$listSessions",
        "$shardedDataDistribution",
        "$listCatalog",
        "$listClusterCatalog",
        "$queryStats",
        "$querySettings",
        "$listSampledQueries",
    }
)


def inspect_pipeline(collector: Collector, pipeline: object, database: str, depth: int) -> None:
    """Record what `pipeline` (run in `database`, nested `depth` deep) reaches."""
    if depth > MAX_PIPELINE_DEPTH or not isinstance(pipeline, list):
        raise Unclassified
    for stage in pipeline:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise Unclassified
        ((name, spec),) = stage.items()
        _stage(collector, name, spec, database, depth)


def _foreign(database: str, value: object) -> Namespace:
    """A stage's other collection: "coll" in this database or {db, coll}."""
    if isinstance(value, str):
        return collection_namespace(database, value)
    if isinstance(value, Mapping) and set(value) <= {"db", "coll"} and "coll" in value:
        return collection_namespace(value.get("db", database), value["coll"])
    raise Unclassified


def _stage(collector: Collector, name: object, spec: object, database: str, depth: int) -> None:
    if name in PURE_STAGES:
        return
    if name in SERVER_STAGES:
        collector.widen(f"stage {name}")
        return
    if name == "$changeStream":
        if not isinstance(spec, Mapping):
            raise Unclassified
        if spec.get("allChangesForCluster", False) is not False:
            collector.widen("$changeStream allChangesForCluster")
        return
    if name == "$lookup":
        if not isinstance(spec, Mapping):
            raise Unclassified
        inner_database = database
        if "from" in spec:
            foreign = _foreign(database, spec["from"])
            collector.add(foreign)
            inner_database = foreign.database
        elif "pipeline" not in spec:
            raise Unclassified
        if "pipeline" in spec:
            inspect_pipeline(collector, spec["pipeline"], inner_database, depth + 1)
    elif name == "$graphLookup":
        if not isinstance(spec, Mapping) or "from" not in spec:
            raise Unclassified
        collector.add(_foreign(database, spec["from"]))
    elif name == "$unionWith":
        if isinstance(spec, str):
            collector.add(collection_namespace(database, spec))
        elif isinstance(spec, Mapping) and set(spec) <= {"coll", "db", "pipeline"}:
            inner_database = database
            if "coll" in spec:
                foreign = collection_namespace(spec.get("db", database), spec["coll"])
                collector.add(foreign)
                inner_database = foreign.database
            elif "pipeline" not in spec or "db" in spec:
                raise Unclassified
            if "pipeline" in spec:
                inspect_pipeline(collector, spec["pipeline"], inner_database, depth + 1)
        else:
            raise Unclassified
    elif name == "$out":
        collector.writes = True
        if isinstance(spec, Mapping) and "coll" in spec and "db" in spec:
            collector.add(collection_namespace(spec["db"], spec["coll"]))
        elif isinstance(spec, str):
            collector.add(collection_namespace(database, spec))
        else:
            raise Unclassified
    elif name == "$merge":
        collector.writes = True
        if isinstance(spec, str):
            collector.add(collection_namespace(database, spec))
            return
        if not isinstance(spec, Mapping) or "into" not in spec:
            raise Unclassified
        collector.add(_foreign(database, spec["into"]))
        when_matched = spec.get("whenMatched")
        if isinstance(when_matched, list):
            inspect_pipeline(collector, when_matched, database, depth + 1)
    elif name == "$facet":
        if not isinstance(spec, Mapping):
            raise Unclassified
        for sub_pipeline in spec.values():
            inspect_pipeline(collector, sub_pipeline, database, depth + 1)
    else:
        raise Unclassified
