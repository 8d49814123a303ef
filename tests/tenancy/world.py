"""A small multi-tenant store, Alice-only (Bob-only, ...) reference copies of it, and
snapshots of every table.

The dataset is written unrestricted (as an administrator or a migration would), but
each namespace's nodes are created with `CURRENT_TENANCY` naming that namespace, so
they get their membership rows exactly as a caller's writes would. Edges are written
with no tenancy at all, which is how cross-namespace links (A's model read by B's
evaluator, B's artifact in a shared context, ...) come to exist.

A reference for a caller is a copy of the whole database (same ids, same timestamps)
from which every node the caller cannot read is deleted, with its properties and every
edge touching it. Queried unrestricted, it gives the answer the caller must get from
the full store: "invisible nodes behave exactly as if they did not exist".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from google.protobuf import struct_pb2

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import tenancy
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import create_engine
from lineagedb.store.schema import schema_for
from lineagedb.store.tenancy import CURRENT_TENANCY, DEFAULT_NAMESPACE, Tenancy
from lineagedb.store.unit_of_work import Database
from tests.backends import open_database, scratch_database
from tests.conftest import FakeClock

NAMESPACES = ("team-a", "team-b", "shared")

# Alice reads her team and the shared namespace, writes only her team. Her page tokens
# are signed (as with authentication on); Bob's are MLMD's plain ones. Carol reads
# `default` (the legacy nodes) and team-a: the other way a readable set becomes SQL.
ALICE = Tenancy(
    namespace="team-a",
    readable=frozenset({"team-a", "shared"}),
    writable=frozenset({"team-a"}),
    page_token_key=b"alice-page-token-key",
)
BOB = Tenancy(namespace="team-b", readable=frozenset({"team-b", "shared"}), writable=frozenset({"team-b"}))
CAROL = Tenancy(namespace="team-a", readable=frozenset({DEFAULT_NAMESPACE, "team-a"}), writable=frozenset({"team-a"}))
CALLERS: dict[str, Tenancy] = {"alice": ALICE, "bob": BOB, "carol": CAROL}

# An id no node has (the dataset holds a few dozen).
MISSING_ID = 987_654


@contextmanager
def acting_as(caller: Tenancy | None) -> Iterator[None]:
    """Run the block as `caller` (None: unrestricted), as the transport edge would."""
    token = CURRENT_TENANCY.set(caller)
    try:
        yield
    finally:
        CURRENT_TENANCY.reset(token)


# -- the dataset ---------------------------------------------------------------------------

Props = Mapping[str, object]


@dataclass(frozen=True)
class ArtifactSpec:
    key: str
    type: str
    name: str
    uri: str
    external_id: str | None = None
    properties: Props = field(default_factory=dict)
    custom: Props = field(default_factory=dict)
    state: Any = None  # the message's state enum value


@dataclass(frozen=True)
class ExecutionSpec:
    key: str
    type: str
    name: str
    external_id: str | None = None
    properties: Props = field(default_factory=dict)
    custom: Props = field(default_factory=dict)
    state: Any = None  # the message's state enum value


@dataclass(frozen=True)
class ContextSpec:
    key: str
    type: str
    name: str
    external_id: str | None = None
    properties: Props = field(default_factory=dict)
    custom: Props = field(default_factory=dict)


Spec = ArtifactSpec | ExecutionSpec | ContextSpec

# Batches in write order: (namespace, nodes). Namespaces interleave, so ids and
# timestamps of A's, B's, shared and legacy nodes interleave too and every page of a
# listing mixes them. Nodes of one batch share a create time (keyset ties).
BATCHES: tuple[tuple[str, tuple[Spec, ...]], ...] = (
    (
        "shared",
        (
            ArtifactSpec(
                "shared_census",
                "Dataset",
                "census",
                "s3://shared/census",
                "ext-shared-census",
                {"split": "train", "rows": 100},
                {"source": "public", "curated": True},
                mlmd.Artifact.LIVE,
            ),
            ArtifactSpec("shared_holdout", "Dataset", "census-holdout", "s3://shared/holdout", None, {"split": "eval"}),
            ExecutionSpec("shared_ingest", "Trainer", "shared-ingest", "ext-shared-ingest", {"epochs": 1}),
            ExecutionSpec("shared_validate", "Evaluator", "shared-validate", None, {}, {}, mlmd.Execution.COMPLETE),
            ContextSpec("shared_pipeline", "Pipeline", "shared-pipeline", "ext-shared-pipeline", {"owner": "platform"}),
            ContextSpec("shared_run", "Run", "shared-run-1"),
            ContextSpec("shared_archive", "Run", "shared-archive"),
        ),
    ),
    (
        "team-a",
        (
            ArtifactSpec(
                "a_data",
                "Dataset",
                "a-data",
                "s3://a/data",
                "ext-a-data",
                {"split": "train", "rows": 10},
                {"owner": "alice"},
                mlmd.Artifact.LIVE,
            ),
            ArtifactSpec(
                "a_model",
                "Model",
                "a-model",
                "s3://a/model",
                "ext-a-model",
                {"accuracy": 0.9},
                {"framework": "tf", "approved": True, "config": {"layers": 3.0}},
                mlmd.Artifact.LIVE,
            ),
            ExecutionSpec(
                "a_trainer",
                "Trainer",
                "a-trainer",
                "ext-a-trainer",
                {"epochs": 10},
                {"gpu": True},
                mlmd.Execution.COMPLETE,
            ),
            ContextSpec("a_pipeline", "Pipeline", "a-pipeline", "ext-a-pipeline", {"owner": "alice"}),
        ),
    ),
    (
        "team-b",
        (
            # URI and external id made to look like A's: lookups by them must not find these.
            ArtifactSpec(
                "b_data",
                "Dataset",
                "b-data",
                "s3://a/data",
                "ext-a-data-b",
                {"split": "train", "rows": 20},
                {"owner": "bob"},
                mlmd.Artifact.LIVE,
            ),
            ArtifactSpec(
                "b_model",
                "Model",
                "a-model-v2",
                "s3://a/model",
                "ext-a-model-v2",
                {"accuracy": 0.95},
                {"framework": "tf"},
                mlmd.Artifact.DELETED,
            ),
            ExecutionSpec(
                "b_trainer", "Trainer", "b-trainer", "ext-a-trainer-b", {"epochs": 20}, {}, mlmd.Execution.COMPLETE
            ),
            ExecutionSpec(
                "b_evaluator",
                "Evaluator",
                "b-eval",
                "ext-b-eval",
                {},
                {"note": "reads A's model"},
                mlmd.Execution.FAILED,
            ),
            ContextSpec("b_pipeline", "Pipeline", "b-pipeline", "ext-a-pipeline-b", {"owner": "bob"}),
            # Same name as A's pipeline, other type: only B has a Run named "a-pipeline".
            ContextSpec("b_run", "Run", "a-pipeline", None, {}, {"attempt": 1}),
        ),
    ),
    (
        DEFAULT_NAMESPACE,
        (
            ArtifactSpec("legacy_data", "Dataset", "legacy-data", "s3://a/data", "ext-legacy-data", {"split": "train"}),
            ArtifactSpec("legacy_model", "Model", "legacy-model", "s3://legacy/model"),
            ExecutionSpec(
                "legacy_train", "Trainer", "legacy-train", "ext-legacy-train", {}, {}, mlmd.Execution.COMPLETE
            ),
            ContextSpec("legacy_pipeline", "Pipeline", "legacy-pipeline", None, {"owner": "mlmd"}),
        ),
    ),
    (
        "team-a",
        (
            ArtifactSpec("a_report", "Report", "a-report", "s3://a/report", None, {}, {"score": 0.5}),
            ArtifactSpec("a_extra_1", "Dataset", "a-extra-1", "s3://a/extra", None, {"split": "extra"}),
            ArtifactSpec("a_extra_2", "Dataset", "a-extra-2", "s3://a/extra"),
            ArtifactSpec("a_extra_3", "Dataset", "a-extra-3", "s3://a/extra", "ext-a-extra-3"),
            ExecutionSpec("a_eval", "Evaluator", "a-eval", None, {}, {}, mlmd.Execution.RUNNING),
            ContextSpec("a_run", "Run", "a-run-1", "ext-a-run"),
        ),
    ),
    (
        "team-b",
        (
            ArtifactSpec("b_report", "Report", "b-report", "s3://b/report", "ext-b-report", {}, {"score": 0.7}),
            ArtifactSpec("b_extra_1", "Dataset", "b-extra-1", "s3://a/extra", None, {"split": "extra"}),
            ExecutionSpec("b_extra_exec", "Trainer", "b-extra-exec"),
        ),
    ),
)

# (artifact, execution, event type, path steps: str = key, int = index)
EVENTS: tuple[tuple[str, str, Any, tuple[str | int, ...]], ...] = (
    ("shared_census", "shared_ingest", mlmd.Event.OUTPUT, ("census",)),
    ("shared_census", "a_trainer", mlmd.Event.INPUT, ("train", 0)),
    ("a_data", "a_trainer", mlmd.Event.INPUT, (1,)),
    ("legacy_data", "a_trainer", mlmd.Event.INPUT, ()),  # default -> A
    ("a_model", "a_trainer", mlmd.Event.OUTPUT, ("model",)),
    ("shared_census", "b_trainer", mlmd.Event.INPUT, ("train",)),  # shared -> B
    ("b_data", "b_trainer", mlmd.Event.INPUT, ()),
    ("b_model", "b_trainer", mlmd.Event.OUTPUT, ()),
    ("a_model", "b_evaluator", mlmd.Event.INPUT, ("candidate",)),  # A -> B
    ("b_report", "b_evaluator", mlmd.Event.OUTPUT, ()),
    ("a_model", "a_eval", mlmd.Event.INPUT, ()),
    ("b_model", "a_eval", mlmd.Event.INPUT, ("baseline",)),  # B -> A
    ("shared_holdout", "a_eval", mlmd.Event.DECLARED_INPUT, ()),
    ("a_report", "a_eval", mlmd.Event.OUTPUT, ()),
    ("a_extra_1", "a_eval", mlmd.Event.INPUT, ()),
    ("b_extra_1", "b_extra_exec", mlmd.Event.INPUT, ()),
    ("legacy_data", "legacy_train", mlmd.Event.INPUT, ()),
    ("legacy_model", "legacy_train", mlmd.Event.OUTPUT, ()),
    ("shared_holdout", "shared_validate", mlmd.Event.INPUT, ()),
)
# (context, artifact)
ATTRIBUTIONS: tuple[tuple[str, str], ...] = (
    ("a_pipeline", "a_data"),
    ("a_pipeline", "a_model"),
    ("a_pipeline", "legacy_data"),  # a default artifact in A's context
    ("a_run", "a_model"),
    ("a_run", "a_extra_1"),
    ("a_run", "a_extra_2"),
    ("a_run", "a_extra_3"),
    ("shared_pipeline", "shared_census"),
    ("shared_pipeline", "b_model"),  # a B artifact in the shared context
    ("shared_pipeline", "a_model"),
    ("b_pipeline", "a_model"),  # an A artifact in B's context
    ("b_pipeline", "b_data"),
    ("b_run", "b_report"),
    ("legacy_pipeline", "legacy_data"),
)
# (context, execution)
ASSOCIATIONS: tuple[tuple[str, str], ...] = (
    ("a_pipeline", "a_trainer"),
    ("a_pipeline", "a_eval"),
    ("a_run", "a_trainer"),
    ("a_run", "legacy_train"),
    ("shared_pipeline", "shared_ingest"),
    ("shared_pipeline", "a_trainer"),
    ("shared_pipeline", "b_trainer"),
    ("b_pipeline", "b_trainer"),
    ("b_pipeline", "b_evaluator"),
    ("b_run", "b_evaluator"),
    ("legacy_pipeline", "legacy_train"),
)
# (child, parent)
PARENTS: tuple[tuple[str, str], ...] = (
    ("a_run", "a_pipeline"),
    ("b_run", "b_pipeline"),
    ("a_pipeline", "shared_pipeline"),
    ("b_pipeline", "shared_pipeline"),
    ("shared_run", "shared_pipeline"),
    ("a_run", "b_pipeline"),  # A child of a B parent
    ("b_run", "a_pipeline"),  # B child of an A parent
    ("a_pipeline", "legacy_pipeline"),  # A child of a default parent
)

ARTIFACT_TYPES: dict[str, dict[str, int]] = {
    "Dataset": {"split": mlmd.STRING, "rows": mlmd.INT},
    "Model": {"accuracy": mlmd.DOUBLE},
    "Report": {},
}
EXECUTION_TYPES: dict[str, dict[str, int]] = {"Trainer": {"epochs": mlmd.INT}, "Evaluator": {}}
CONTEXT_TYPES: dict[str, dict[str, int]] = {"Pipeline": {"owner": mlmd.STRING}, "Run": {}}


def _value(raw: object) -> mlmd.Value:
    if isinstance(raw, bool):
        return mlmd.Value(bool_value=raw)
    if isinstance(raw, int):
        return mlmd.Value(int_value=raw)
    if isinstance(raw, float):
        return mlmd.Value(double_value=raw)
    if isinstance(raw, dict):
        struct = struct_pb2.Struct()
        struct.update(raw)
        return mlmd.Value(struct_value=struct)
    return mlmd.Value(string_value=str(raw))


def _fill(message: Any, properties: Props, custom: Props) -> Any:
    for name, raw in properties.items():
        message.properties[name].CopyFrom(_value(raw))
    for name, raw in custom.items():
        message.custom_properties[name].CopyFrom(_value(raw))
    return message


@dataclass
class World:
    """The populated store and what a test needs to name its parts."""

    backend: str
    url: str
    database: Database
    store: MetadataStore
    artifact_types: dict[str, int]
    execution_types: dict[str, int]
    context_types: dict[str, int]
    artifacts: dict[str, int] = field(default_factory=dict)
    executions: dict[str, int] = field(default_factory=dict)
    contexts: dict[str, int] = field(default_factory=dict)
    namespace_of: dict[str, str] = field(default_factory=dict)  # node key -> namespace
    specs: dict[str, Spec] = field(default_factory=dict)

    def id(self, key: str) -> int:
        for ids in (self.artifacts, self.executions, self.contexts):
            if key in ids:
                return ids[key]
        raise KeyError(key)

    def keys_in(self, *namespaces: str) -> list[str]:
        return [key for key, namespace in self.namespace_of.items() if namespace in namespaces]


def populate(backend: str, url: str, database: Database, clock: FakeClock | None = None) -> World:
    """Write the dataset into a freshly prepared database."""
    store = MetadataStore(database, clock=clock or FakeClock())
    with acting_as(None):
        with database.transaction() as uow:
            for name in NAMESPACES:
                tenancy.create_namespace(uow, name, store.clock())
        types: dict[str, dict[str, int]] = {}
        for kind, declared in (
            ("artifact", ARTIFACT_TYPES),
            ("execution", EXECUTION_TYPES),
            ("context", CONTEXT_TYPES),
        ):
            put = _type_putter(store, kind)
            types[kind] = {name: put(type_message(kind, name, properties)) for name, properties in declared.items()}
    world = World(backend, url, database, store, types["artifact"], types["execution"], types["context"])
    for namespace, specs in BATCHES:
        # Membership is recorded from the acting namespace; reads/writes stay unrestricted.
        with acting_as(Tenancy(namespace=namespace)):
            _write_batch(world, specs)
        for spec in specs:
            world.namespace_of[spec.key] = namespace
            world.specs[spec.key] = spec
    with acting_as(None):
        _write_edges(world)
        _touch(world)
    return world


def type_message(kind: str, name: str, properties: Mapping[str, int]) -> Any:
    message_class = {"artifact": mlmd.ArtifactType, "execution": mlmd.ExecutionType, "context": mlmd.ContextType}[kind]
    message = message_class(name=name, external_id=f"ext-type-{name.lower()}", description=f"{name} ({kind})")
    for key, data_type in properties.items():
        message.properties[key] = data_type
    return message


def _type_putter(store: MetadataStore, kind: str) -> Callable[[Any], int]:
    if kind == "artifact":
        return lambda t: store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=t)).type_id
    if kind == "execution":
        return lambda t: store.put_execution_type(svc.PutExecutionTypeRequest(execution_type=t)).type_id
    return lambda t: store.put_context_type(svc.PutContextTypeRequest(context_type=t)).type_id


def _write_batch(world: World, specs: Sequence[Spec]) -> None:
    store = world.store
    artifacts = [s for s in specs if isinstance(s, ArtifactSpec)]
    executions = [s for s in specs if isinstance(s, ExecutionSpec)]
    contexts = [s for s in specs if isinstance(s, ContextSpec)]
    if artifacts:
        messages = [
            _fill(
                mlmd.Artifact(
                    type_id=world.artifact_types[s.type],
                    name=s.name,
                    uri=s.uri,
                    external_id=s.external_id,
                    state=s.state,
                ),
                s.properties,
                s.custom,
            )
            for s in artifacts
        ]
        ids = store.put_artifacts(svc.PutArtifactsRequest(artifacts=messages)).artifact_ids
        world.artifacts.update(zip((s.key for s in artifacts), ids, strict=True))
    if executions:
        messages = [
            _fill(
                mlmd.Execution(
                    type_id=world.execution_types[s.type],
                    name=s.name,
                    external_id=s.external_id,
                    last_known_state=s.state,
                ),
                s.properties,
                s.custom,
            )
            for s in executions
        ]
        ids = store.put_executions(svc.PutExecutionsRequest(executions=messages)).execution_ids
        world.executions.update(zip((s.key for s in executions), ids, strict=True))
    if contexts:
        messages = [
            _fill(
                mlmd.Context(type_id=world.context_types[s.type], name=s.name, external_id=s.external_id),
                s.properties,
                s.custom,
            )
            for s in contexts
        ]
        ids = store.put_contexts(svc.PutContextsRequest(contexts=messages)).context_ids
        world.contexts.update(zip((s.key for s in contexts), ids, strict=True))


def _write_edges(world: World) -> None:
    store = world.store
    events = []
    for artifact, execution, event_type, steps in EVENTS:
        event = mlmd.Event(
            artifact_id=world.artifacts[artifact], execution_id=world.executions[execution], type=event_type
        )
        for step in steps:
            if isinstance(step, int):
                event.path.steps.add(index=step)
            else:
                event.path.steps.add(key=step)
        events.append(event)
    store.put_events(svc.PutEventsRequest(events=events))
    store.put_attributions_and_associations(
        svc.PutAttributionsAndAssociationsRequest(
            attributions=[
                mlmd.Attribution(context_id=world.contexts[c], artifact_id=world.artifacts[a]) for c, a in ATTRIBUTIONS
            ],
            associations=[
                mlmd.Association(context_id=world.contexts[c], execution_id=world.executions[e])
                for c, e in ASSOCIATIONS
            ],
        )
    )
    store.put_parent_contexts(
        svc.PutParentContextsRequest(
            parent_contexts=[
                mlmd.ParentContext(child_id=world.contexts[c], parent_id=world.contexts[p]) for c, p in PARENTS
            ]
        )
    )


def _touch(world: World) -> None:
    """Update a few nodes, so last-update times differ from create times (and from each other)."""
    store = world.store
    for key in ("a_data", "b_data", "shared_census", "legacy_data"):
        artifact = store.get_artifacts_by_id(
            svc.GetArtifactsByIDRequest(artifact_ids=[world.artifacts[key]])
        ).artifacts[0]
        artifact.custom_properties["touched"].string_value = key
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[artifact]))
    for key in ("b_pipeline", "a_run"):
        context = store.get_contexts_by_id(svc.GetContextsByIDRequest(context_ids=[world.contexts[key]])).contexts[0]
        context.custom_properties["touched"].bool_value = True
        store.put_contexts(svc.PutContextsRequest(contexts=[context]))


# -- databases -------------------------------------------------------------------------------


def all_tables(dialect: str) -> list[sa.Table]:
    """MLMD's tables and LineageDB's namespace tables (not Alembic's version table)."""
    return list(schema_for(dialect).metadata.sorted_tables) + list(tenancy.METADATA.sorted_tables)


@contextmanager
def world_database(backend: str, directory: str) -> Iterator[World]:
    """A scratch database holding the dataset; dropped afterwards."""
    with scratch_database(backend, directory) as url, open_database(url) as database:
        yield populate(backend, url, database)


@contextmanager
def reference_store(world: World, readable: frozenset[str], directory: str) -> Iterator[MetadataStore]:
    """A copy of the world's database holding only what `readable` may see, as a store
    to query unrestricted."""
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(world.backend, directory))
        if world.backend == "sqlite":
            _sqlite_copy(world.url, url)
            engine = create_engine(url)
        else:
            engine = create_engine(url)
            prepare_database(engine)  # the same schema and Alembic stamp; its rows are replaced
            _copy_rows(world.database.engine, engine)
        database = Database(engine)
        stack.callback(database.dispose)
        prune(engine, readable)
        yield MetadataStore(database, clock=FakeClock())


def _sqlite_path(url: str) -> str:
    path = sa.engine.make_url(url).database
    assert path
    return path


def _sqlite_copy(source_url: str, target_url: str) -> None:
    # The backup API copies committed pages, WAL included, while the source stays open.
    source = sqlite3.connect(_sqlite_path(source_url))
    target = sqlite3.connect(_sqlite_path(target_url))
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _copy_rows(source: sa.Engine, target: sa.Engine) -> None:
    dialect = source.dialect.name
    schema = schema_for(dialect)
    tables = all_tables(dialect)
    with source.connect() as reader, target.begin() as writer:
        for table in reversed(tables):
            writer.execute(sa.delete(table))  # the seeded system types and MLMDEnv row
        for table in tables:
            query = sa.select(table)
            if table is schema.event_path and dialect == "postgresql":
                # Paths are read back in physical order (ctid): copy them in that order.
                query = query.order_by(sa.literal_column("ctid"))
            rows = [dict(row) for row in reader.execute(query).mappings()]
            if rows:
                writer.execute(sa.insert(table), rows)


def prune(engine: sa.Engine, readable: frozenset[str]) -> None:
    """Delete every node outside `readable`, its properties, and every edge touching it."""
    schema = schema_for(engine.dialect.name)
    membership = tenancy.MEMBERSHIP
    kinds = (
        (tenancy.ARTIFACT_NODE, schema.artifact, schema.artifact_property, "artifact_id"),
        (tenancy.EXECUTION_NODE, schema.execution, schema.execution_property, "execution_id"),
        (tenancy.CONTEXT_NODE, schema.context, schema.context_property, "context_id"),
    )
    with engine.begin() as connection:
        hidden: dict[int, list[int]] = {}
        for kind, table, _, _ in kinds:
            namespaces = dict(
                connection.execute(
                    sa.select(membership.c.node_id, membership.c.namespace).where(membership.c.node_kind == kind)
                ).all()
            )
            ids = connection.execute(sa.select(table.c.id)).scalars().all()
            hidden[kind] = [i for i in ids if namespaces.get(i, DEFAULT_NAMESPACE) not in readable]
        artifacts, executions, contexts = (
            hidden[tenancy.ARTIFACT_NODE],
            hidden[tenancy.EXECUTION_NODE],
            hidden[tenancy.CONTEXT_NODE],
        )
        e = schema.event
        events = (
            connection.execute(
                sa.select(e.c.id).where(e.c.artifact_id.in_(artifacts) | e.c.execution_id.in_(executions))
            )
            .scalars()
            .all()
        )
        connection.execute(sa.delete(schema.event_path).where(schema.event_path.c.event_id.in_(events)))
        connection.execute(sa.delete(e).where(e.c.id.in_(events)))
        at, asn, pc = schema.attribution, schema.association, schema.parent_context
        connection.execute(sa.delete(at).where(at.c.artifact_id.in_(artifacts) | at.c.context_id.in_(contexts)))
        connection.execute(sa.delete(asn).where(asn.c.execution_id.in_(executions) | asn.c.context_id.in_(contexts)))
        connection.execute(sa.delete(pc).where(pc.c.context_id.in_(contexts) | pc.c.parent_context_id.in_(contexts)))
        for kind, table, properties, owner in kinds:
            connection.execute(sa.delete(properties).where(properties.c[owner].in_(hidden[kind])))
            connection.execute(sa.delete(table).where(table.c.id.in_(hidden[kind])))
            connection.execute(
                sa.delete(membership).where(membership.c.node_kind == kind, membership.c.node_id.in_(hidden[kind]))
            )


Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot(engine: sa.Engine) -> Snapshot:
    """Every row of every table, as sorted tuples (EventPath has no key: a multiset)."""
    with engine.connect() as connection:
        return {
            table.name: sorted((tuple(row) for row in connection.execute(sa.select(table))), key=repr)
            for table in all_tables(engine.dialect.name)
        }
