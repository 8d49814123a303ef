"""Sensitive property values at the service level, on every backend: ciphertext in the raw
database, plaintext for secrets readers on every read path, redacted for everyone else,
write-backs of redacted nodes that keep the secret, and filters that are refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.store import tenancy
from lineagedb.store.codecs import REDACTED
from lineagedb.store.schema import schema_for
from lineagedb.store.tenancy import Tenancy
from tests.encryption.conftest import (
    CONNECTION_TYPE,
    READER,
    VIEWER,
    Protected,
    assert_plaintext,
    assert_redacted,
    protected_database,
    sample_artifact,
    values,
)
from tests.tenancy.world import acting_as

ENVELOPE = "lineagedb:enc:v1:k1:"


def by_id(protected: Protected, artifact_id: int) -> mlmd.Artifact:
    response = protected.store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[artifact_id]))
    [artifact] = response.artifacts
    return artifact


def test_sensitive_values_are_ciphertext_in_the_raw_database(protected: Protected) -> None:
    sample = sample_artifact(protected.store)
    stored = protected.raw_values("artifact", sample.node_id)
    for key in sample.sensitive:
        int_value, double_value, string_value, proto_value, bool_value = stored[key]
        assert (int_value, double_value, proto_value, bool_value) == (None, None, None, None), key
        assert string_value.startswith(ENVELOPE), key
    assert stored[(False, "port")][0] == 5432
    assert stored[(True, "note")][2].startswith("plain-note-")
    # No secret anywhere in any property table, in any column.
    text = repr([protected.raw_rows(table) for table in ("artifact", "execution", "context")])
    for secret in sample.secrets:
        assert secret not in text


def test_secrets_reader_reads_every_kind_back_exactly(protected: Protected) -> None:
    sample = sample_artifact(protected.store)
    with acting_as(READER):
        assert_plaintext(by_id(protected, sample.node_id), sample)


def test_viewer_reads_sensitive_values_redacted_and_the_rest_as_written(protected: Protected) -> None:
    sample = sample_artifact(protected.store)
    with acting_as(VIEWER):
        assert_redacted(by_id(protected, sample.node_id), sample)
    with acting_as(None):  # no call tenancy at all (authentication off): redacted too
        assert_redacted(by_id(protected, sample.node_id), sample)


def test_every_read_path_decodes_at_the_same_point(protected: Protected) -> None:
    store = protected.store
    sample = sample_artifact(store)
    written = sample.written
    context_type = store.put_context_type(
        svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="enc.Run"))
    ).type_id
    context = mlmd.Context(type_id=context_type, name=f"run-{uuid.uuid4().hex[:8]}")
    context.custom_properties["run_token"].string_value = "ctx-token-value"
    [context_id] = store.put_contexts(svc.PutContextsRequest(contexts=[context])).context_ids
    store.put_attributions_and_associations(
        svc.PutAttributionsAndAssociationsRequest(
            attributions=[mlmd.Attribution(artifact_id=sample.node_id, context_id=context_id)]
        )
    )
    execution_type = store.put_execution_type(
        svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="enc.Job"))
    ).type_id
    execution = mlmd.Execution(type_id=execution_type)
    execution.custom_properties["env.AWS_KEY"].string_value = "exec-env-value"
    [execution_id] = store.put_executions(svc.PutExecutionsRequest(executions=[execution])).execution_ids
    store.put_events(
        svc.PutEventsRequest(
            events=[mlmd.Event(artifact_id=sample.node_id, execution_id=execution_id, type=mlmd.Event.INPUT)]
        )
    )

    def reads() -> list[mlmd.Artifact]:
        found = [by_id(protected, sample.node_id)]
        by_type = store.get_artifacts_by_type(svc.GetArtifactsByTypeRequest(type_name=CONNECTION_TYPE)).artifacts
        found += [a for a in by_type if a.id == sample.node_id]
        found += store.get_artifacts_by_uri(svc.GetArtifactsByURIRequest(uris=[written.uri])).artifacts
        found += store.get_artifacts_by_external_ids(
            svc.GetArtifactsByExternalIdsRequest(external_ids=[written.external_id])
        ).artifacts
        found += store.get_artifacts_by_context(svc.GetArtifactsByContextRequest(context_id=context_id)).artifacts
        found += [a for a in store.get_artifacts(svc.GetArtifactsRequest()).artifacts if a.id == sample.node_id]
        # A page of a filtered listing (on a property that is not sensitive).
        note = written.custom_properties["note"].string_value
        options = mlmd.ListOperationOptions(
            max_result_size=1, filter_query=f"custom_properties.note.string_value = '{note}'"
        )
        found += store.get_artifacts(svc.GetArtifactsRequest(options=options)).artifacts
        # GetLineageSubgraph returns ids only; the deprecated GetLineageGraph hydrates its nodes.
        found += [a for a in lineage_graph().artifacts if a.id == sample.node_id]
        return found

    def lineage_graph() -> mlmd.LineageGraph:
        options = mlmd.LineageGraphQueryOptions(
            artifacts_options=mlmd.ListOperationOptions(filter_query=f"id = {sample.node_id}")
        )
        return store.get_lineage_graph(svc.GetLineageGraphRequest(options=options)).subgraph

    with acting_as(READER):
        artifacts = reads()
        assert len(artifacts) == 8
        for artifact in artifacts:
            assert_plaintext(artifact, sample)
        [execution_read] = store.get_executions_by_id(
            svc.GetExecutionsByIDRequest(execution_ids=[execution_id])
        ).executions
        assert execution_read.custom_properties["env.AWS_KEY"].string_value == "exec-env-value"
        [context_read] = store.get_contexts_by_id(svc.GetContextsByIDRequest(context_ids=[context_id])).contexts
        assert context_read.custom_properties["run_token"].string_value == "ctx-token-value"
    with acting_as(VIEWER):
        artifacts = reads()
        assert len(artifacts) == 8
        for artifact in artifacts:
            assert_redacted(artifact, sample)
        [execution_read] = lineage_graph().executions
        assert execution_read.custom_properties["env.AWS_KEY"].string_value == REDACTED
        [context_read] = store.get_contexts_by_artifact(
            svc.GetContextsByArtifactRequest(artifact_id=sample.node_id)
        ).contexts
        assert context_read.custom_properties["run_token"].string_value == REDACTED
    execution_text = repr(protected.raw_rows("execution")) + repr(protected.raw_rows("context"))
    assert "exec-env-value" not in execution_text and "ctx-token-value" not in execution_text


def test_write_back_of_a_redacted_node_keeps_the_stored_secret(protected: Protected) -> None:
    store = protected.store
    sample = sample_artifact(store)
    stored_before = protected.raw_values("artifact", sample.node_id)
    with acting_as(VIEWER):
        redacted = by_id(protected, sample.node_id)
        redacted.custom_properties["note"].string_value = "edited by a viewer"
        # Whole-node replacement (PutArtifacts with the id), as a read-modify-write client does.
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[redacted]))
        # A masked update naming a sensitive property, holding the marker.
        masked = mlmd.Artifact(id=sample.node_id)
        masked.custom_properties["db_password"].string_value = REDACTED
        masked.properties["dsn"].string_value = REDACTED
        store.put_artifacts(
            svc.PutArtifactsRequest(
                artifacts=[masked],
                update_mask={"paths": ["custom_properties.db_password", "properties.dsn"]},
            )
        )
    stored_after = protected.raw_values("artifact", sample.node_id)
    for key in sample.sensitive:
        assert stored_after[key] == stored_before[key], key  # not even re-encrypted
    with acting_as(READER):
        read = by_id(protected, sample.node_id)
        expected = values(sample.written)
        expected[(True, "note")] = mlmd.Value(string_value="edited by a viewer")
        assert values(read) == expected
        # A secrets reader writing back a node it got redacted from someone else keeps the secrets too.
        with acting_as(VIEWER):
            from_viewer = by_id(protected, sample.node_id)
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[from_viewer]))
        assert values(by_id(protected, sample.node_id)) == expected


def test_a_viewer_may_overwrite_a_secret_it_cannot_read(protected: Protected) -> None:
    store = protected.store
    sample = sample_artifact(store)
    with acting_as(VIEWER):
        node = by_id(protected, sample.node_id)
        node.custom_properties["db_password"].string_value = "rotated-by-the-owner"
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[node]))
        assert by_id(protected, sample.node_id).custom_properties["db_password"].string_value == REDACTED
    assert "rotated-by-the-owner" not in repr(protected.raw_rows())
    with acting_as(READER):
        assert by_id(protected, sample.node_id).custom_properties["db_password"].string_value == "rotated-by-the-owner"


def test_redaction_marker_for_a_sensitive_property_of_a_new_node_is_invalid_argument(protected: Protected) -> None:
    store = protected.store
    sample = sample_artifact(store)
    with acting_as(VIEWER):
        copy = by_id(protected, sample.node_id)
    copy.ClearField("id")
    copy.ClearField("name")
    copy.ClearField("external_id")
    with pytest.raises(errors.InvalidArgumentError, match="redaction marker"):
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[copy]))
    # Outside the sensitive set the marker is an ordinary string.
    plain = mlmd.Artifact(type_id=sample.written.type_id)
    plain.custom_properties["comment"].string_value = REDACTED
    [plain_id] = store.put_artifacts(svc.PutArtifactsRequest(artifacts=[plain])).artifact_ids
    assert by_id(protected, plain_id).custom_properties["comment"].string_value == REDACTED


@pytest.mark.parametrize(
    "filter_query",
    [
        "custom_properties.db_password.string_value = 'x'",
        "custom_properties.api_token.int_value > 3",  # MLMD lower-cases names in filters
        "properties.dsn.string_value LIKE 'postgres%'",
        "custom_properties.`env.DEBUG`.bool_value = true OR uri = 'x'",
        "custom_properties.`private.anything`.string_value IS NOT NULL",
        "NOT (custom_properties.secret_ratio.double_value BETWEEN 0 AND 1)",
    ],
)
def test_filter_on_a_sensitive_property_is_invalid_argument(protected: Protected, filter_query: str) -> None:
    store = protected.store
    sample_artifact(store)
    with acting_as(READER), pytest.raises(errors.InvalidArgumentError, match="sensitive property"):
        store.get_artifacts(svc.GetArtifactsRequest(options=mlmd.ListOperationOptions(filter_query=filter_query)))


def test_lineage_filters_on_a_sensitive_property_are_invalid_argument(protected: Protected) -> None:
    store = protected.store
    sample = sample_artifact(store)
    starting = mlmd.LineageSubgraphQueryOptions.StartingNodes
    for options in (
        mlmd.LineageSubgraphQueryOptions(
            starting_artifacts=starting(filter_query="custom_properties.db_password.string_value = 'x'")
        ),
        mlmd.LineageSubgraphQueryOptions(
            starting_artifacts=starting(filter_query=f"id = {sample.node_id}"),
            ending_executions=mlmd.LineageSubgraphQueryOptions.EndingNodes(
                filter_query="custom_properties.auth_token.string_value = 'x'"
            ),
            max_num_hops=2,
        ),
    ):
        with pytest.raises(errors.InvalidArgumentError, match="sensitive property"):
            store.get_lineage_subgraph(svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options))
    with pytest.raises(errors.InvalidArgumentError, match="sensitive property"):
        store.get_lineage_graph(
            svc.GetLineageGraphRequest(
                options=mlmd.LineageGraphQueryOptions(
                    artifacts_options=mlmd.ListOperationOptions(filter_query=f"id = {sample.node_id}"),
                    stop_conditions=mlmd.LineageGraphQueryOptions.BoundaryConstraint(
                        boundary_artifacts="custom_properties.db_password.string_value = 'x'"
                    ),
                )
            )
        )


def test_ciphertext_moved_to_another_row_does_not_decrypt(protected: Protected) -> None:
    """The associated data binds a ciphertext to its row: copying one node's envelope over
    another's (a database-level attacker swapping secrets) is DATA_LOSS for a reader."""
    store = protected.store
    first, second = sample_artifact(store), sample_artifact(store)
    schema = schema_for(protected.engine.dialect.name)
    table = schema.artifact_property
    envelope = protected.raw_values("artifact", first.node_id)[(True, "db_password")][2]
    with protected.engine.begin() as connection:
        connection.execute(
            sa.update(table)
            .where(table.c.artifact_id == second.node_id, table.c.name == "db_password")
            .values(string_value=envelope)
        )
    with acting_as(READER), pytest.raises(errors.DataLossError, match="db_password"):
        by_id(protected, second.node_id)
    with acting_as(VIEWER):  # never decrypted for a viewer: still just redacted
        assert by_id(protected, second.node_id).custom_properties["db_password"].string_value == REDACTED


def test_client_strings_that_look_like_envelopes_are_invalid_argument(protected: Protected) -> None:
    store = protected.store
    sample = sample_artifact(store)
    forged = mlmd.Artifact(type_id=sample.written.type_id)
    forged.custom_properties["note"].string_value = ENVELOPE + "AAAA"
    with pytest.raises(errors.InvalidArgumentError, match="reserved for encrypted values"):
        store.put_artifacts(svc.PutArtifactsRequest(artifacts=[forged]))


def test_secrets_read_is_per_namespace(protected: Protected) -> None:
    store = protected.store
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    with protected.database.transaction() as uow:
        tenancy.create_namespace(uow, namespace, 1)
    with acting_as(Tenancy(namespace=namespace)):
        inside = sample_artifact(store)
    outside = sample_artifact(store)  # default namespace
    scoped = Tenancy(secrets_readable=frozenset({namespace}))
    with acting_as(scoped):
        assert_plaintext(by_id(protected, inside.node_id), inside)
        assert_redacted(by_id(protected, outside.node_id), outside)
        both = store.get_artifacts_by_id(
            svc.GetArtifactsByIDRequest(artifact_ids=[inside.node_id, outside.node_id])
        ).artifacts
        assert [a.custom_properties["db_password"].string_value != REDACTED for a in both] == [True, False]


def test_the_audit_log_records_changes_of_sensitive_values_redacted(backend: str, tmp_path: Path) -> None:
    from lineagedb.store.audit_log import AuditLog

    with protected_database(backend, str(tmp_path)) as protected:
        protected.database.audit = AuditLog(b"audit-key-for-the-encryption-tests-0123456789")
        store = protected.store
        sample = sample_artifact(store)
        with acting_as(READER):
            node = by_id(protected, sample.node_id)
            node.custom_properties["db_password"].string_value = "the-new-secret-value"
            node.custom_properties["note"].string_value = "a plain change"
            store.put_artifacts(svc.PutArtifactsRequest(artifacts=[node]))
        with protected.engine.connect() as connection:
            names = [n for n in sa.inspect(connection).get_table_names() if n.startswith("lineagedb_audit")]
            tables = [sa.Table(name, sa.MetaData(), autoload_with=connection) for name in names]
            dump = repr([list(connection.execute(table.select())) for table in tables])
        assert "a plain change" in dump and REDACTED in dump
        for secret in (*sample.secrets, "the-new-secret-value"):
            assert secret not in dump


def test_a_value_encrypted_under_an_older_policy_stays_out_of_the_audit_log(backend: str, tmp_path: Path) -> None:
    """The policy no longer names `db_password`, but the stored value is still an envelope:
    a secrets reader who changes or removes it leaves its previous value redacted in the
    audit log, which must never hold what the database holds only encrypted."""
    from lineagedb.store.audit_log import AuditLog
    from lineagedb.store.sensitive import SensitivePolicy
    from tests.encryption.conftest import protection

    with protected_database(backend, str(tmp_path)) as protected:
        protected.database.audit = AuditLog(b"audit-key-for-the-encryption-tests-0123456789")
        store = protected.store
        sample = sample_artifact(store)
        protected.database.protection = protection(protected.keys, "k1", SensitivePolicy(patterns=()))
        with acting_as(READER):
            node = by_id(protected, sample.node_id)
            old_password = node.custom_properties["db_password"].string_value
            assert old_password.startswith("hunter2-")  # read in clear
            node.custom_properties["db_password"].string_value = "no-longer-a-secret"
            del node.custom_properties["API_TOKEN"]
            store.put_artifacts(svc.PutArtifactsRequest(artifacts=[node]))
        with protected.engine.connect() as connection:
            newest = sa.text("SELECT detail FROM lineagedb_audit ORDER BY id DESC")
            detail = connection.execute(newest).scalars().first()
        changes = {c["field"]: (c["from"], c["to"]) for c in json.loads(detail)["changes"]}
        assert changes == {
            "custom_properties.db_password": ({"string_value": REDACTED}, {"string_value": REDACTED}),
            "custom_properties.API_TOKEN": ({"string_value": REDACTED}, None),
        }
        assert old_password not in detail and "918273645546372" not in detail
