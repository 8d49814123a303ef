"""Encryption at rest end to end, on every backend: `lineagedb serve` with a key file, tokens and
a policy granting secrets:read, driven over gRPC; `lineagedb keys generate|rotate`; and the
startup refusals (exit code and message) for missing and wrong keys. Logs are checked for
every secret the tests handled: values, keys and tokens."""

from __future__ import annotations

import base64
import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.security.encryption import build_protection, key_file_text, new_key
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import encryption
from lineagedb.store.codecs import REDACTED
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database
from tests.auth.conftest import CALL_TIMEOUT_S, bearer, create_namespaces, make_callers, write_tokens
from tests.encryption.conftest import READER
from tests.ops.conftest import Server, run_to_exit, start
from tests.tenancy.world import acting_as

POLICY = """
type_writers = "editor"

[namespaces.default]
editor = ["writer"]
viewer = ["reader", "viewer"]
"secrets:read" = ["reader"]
"""
SECRET_TEXT = "s3cr3t-db-password-1f2e"
SECRET_INT = 8675309123
SECRET_STRUCT_TEXT = "struct-held-credential-77"


def key_file(path: Path, active: str, **keys: str) -> Path:
    path.write_text(key_file_text(active, keys))
    return path


def file_keys(path: Path) -> list[str]:
    return list(tomllib.loads(path.read_text())["keys"].values())


def secret_artifact(type_id: int) -> mlmd.Artifact:
    artifact = mlmd.Artifact(type_id=type_id, uri="s3://bucket/model")
    artifact.custom_properties["db_password"].string_value = SECRET_TEXT
    artifact.custom_properties["auth_token"].int_value = SECRET_INT
    artifact.custom_properties["secret_score"].double_value = 0.5
    artifact.custom_properties["env.VERBOSE"].bool_value = False
    artifact.custom_properties["secret_config"].struct_value.update({"credential": SECRET_STRUCT_TEXT})
    artifact.custom_properties["note"].string_value = "not sensitive"
    return artifact


def assert_no_plaintext_in_database(url: str) -> None:
    engine = create_engine(url)
    try:
        database = Database(engine)
        with database.transaction(write=False) as uow:
            rows = [
                list(uow.execute(getattr(uow.schema, f"{kind}_property").select()))
                for kind in ("artifact", "execution", "context")
            ]
    finally:
        engine.dispose()
    text = repr(rows)
    for secret in (SECRET_TEXT, str(SECRET_INT), SECRET_STRUCT_TEXT):
        assert secret not in text
    assert "lineagedb:enc:v1:" in text


@pytest.fixture
def upgraded(database_url: str, tmp_path: Path) -> str:
    create_namespaces(database_url, tmp_path, [])  # `lineagedb db upgrade`
    return database_url


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.toml"
    code, stdout, stderr = run_to_exit(["keys", "generate", "--id", "k1", "--file", str(path)], tmp_path)
    assert code == 0, stderr
    assert "added key 'k1'" in stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path


@pytest.fixture
def server(upgraded: str, keys: Path, tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    callers = make_callers({"writer": (), "reader": (), "viewer": ()})
    tokens = write_tokens(tmp_path / "tokens", callers.values())
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    args = ["--host", "127.0.0.1", "--port", "0", "--database", upgraded, "--log-level", "DEBUG"]
    args += ["--auth-tokens", str(tokens), "--authz-policy", str(policy), "--encryption-keys-file", str(keys)]
    running = start(args, tmp_path)
    yield running, {name: caller.token for name, caller in callers.items()}
    running.stop()


def test_over_grpc_readers_get_plaintext_others_redacted_write_back_keeps_filter_refused(
    server: tuple[Server, dict[str, str]], upgraded: str, keys: Path
) -> None:
    running, tokens = server
    with running.channel() as channel:
        stub = svc_stub(channel)

        def call(method: str, request: object, who: str) -> object:
            return getattr(stub, method)(request, metadata=bearer(tokens[who]), timeout=CALL_TIMEOUT_S)

        type_id = call(
            "PutArtifactType",
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="enc.Model")),
            "writer",
        ).type_id
        written = secret_artifact(type_id)
        [artifact_id] = call("PutArtifacts", svc.PutArtifactsRequest(artifacts=[written]), "writer").artifact_ids
        by_id = svc.GetArtifactsByIDRequest(artifact_ids=[artifact_id])

        [plain] = call("GetArtifactsByID", by_id, "reader").artifacts
        assert dict(plain.custom_properties) == dict(written.custom_properties)
        for who in ("viewer", "writer"):
            [redacted] = call("GetArtifactsByID", by_id, who).artifacts
            for name in ("db_password", "auth_token", "secret_score", "env.VERBOSE", "secret_config"):
                assert redacted.custom_properties[name] == mlmd.Value(string_value=REDACTED)
            assert redacted.custom_properties["note"].string_value == "not sensitive"

        # The writer (no secrets:read) reads, edits and writes the whole node back.
        redacted.custom_properties["note"].string_value = "edited"
        call("PutArtifacts", svc.PutArtifactsRequest(artifacts=[redacted]), "writer")
        [after] = call("GetArtifactsByID", by_id, "reader").artifacts
        expected = dict(written.custom_properties)
        expected["note"] = mlmd.Value(string_value="edited")
        assert dict(after.custom_properties) == expected

        refused = mlmd.ListOperationOptions(filter_query="custom_properties.db_password.string_value = 'x'")
        with pytest.raises(grpc.RpcError) as caught:
            call("GetArtifacts", svc.GetArtifactsRequest(options=refused), "reader")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "custom_properties.db_password" in (caught.value.details() or "")

    assert_no_plaintext_in_database(upgraded)
    running.stop()
    log = running.stderr()
    assert "encryption at rest: on, active key 'k1'" in log
    for secret in (SECRET_TEXT, str(SECRET_INT), SECRET_STRUCT_TEXT, *file_keys(keys), *tokens.values()):
        assert secret not in log


def svc_stub(channel: grpc.Channel) -> object:
    from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc

    return svc_grpc.MetadataStoreServiceStub(channel)


def write_secrets(url: str, keys: Path) -> list[int]:
    """Values written through the service with the key file's keys (no server needed)."""
    guard = build_protection(str(keys), None, {})
    assert guard is not None
    engine = create_engine(url)
    encryption.check_database_keys(engine, guard.keyring, url)
    database = Database(engine, protection=guard)
    try:
        store = MetadataStore(database)
        type_id = store.put_artifact_type(
            svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="enc.Model"))
        ).type_id
        return list(store.put_artifacts(svc.PutArtifactsRequest(artifacts=[secret_artifact(type_id)] * 3)).artifact_ids)
    finally:
        database.dispose()


def read_back(url: str, keys: Path, ids: list[int]) -> list[mlmd.Artifact]:
    guard = build_protection(str(keys), None, {})
    database = Database(create_engine(url), protection=guard)
    try:
        with acting_as(READER):
            request = svc.GetArtifactsByIDRequest(artifact_ids=ids)
            return list(MetadataStore(database).get_artifacts_by_id(request).artifacts)
    finally:
        database.dispose()


def serve_until_exit(url: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    code, _, stderr = run_to_exit(
        ["serve", "--host", "127.0.0.1", "--port", "0", "--database", url, *extra], tmp_path, env
    )
    return code, stderr


def test_keys_rotate_then_every_value_reads_back_and_startup_refuses_missing_or_wrong_keys(
    upgraded: str, keys: Path, tmp_path: Path
) -> None:
    ids = write_secrets(upgraded, keys)
    first_key = file_keys(keys)[0]

    # A key set without k1, and one with other bytes under the id k1: both refused at startup.
    other = key_file(tmp_path / "other.toml", "k9", k9=new_key())
    code, stderr = serve_until_exit(upgraded, tmp_path, "--encryption-keys-file", str(other))
    assert code == 3, stderr[-2000:]
    assert "holds values encrypted under key 'k1', which is not in the configured key set" in stderr
    wrong = key_file(tmp_path / "wrong.toml", "k1", k1=new_key())
    code, stderr = serve_until_exit(upgraded, tmp_path, "--encryption-keys-file", str(wrong))
    assert code == 3, stderr[-2000:]
    assert "'k1' is not the key this database's values were encrypted with" in stderr
    # The keys in the environment instead of a file: the same check.
    code, stderr = serve_until_exit(upgraded, tmp_path, env={"LINEAGEDB_ENCRYPTION_KEYS": f"k1={new_key()}"})
    assert code == 3 and "'k1' is not the key" in stderr

    # Rotation: a new active key, then `keys rotate` in small batches.
    code, stdout, stderr = run_to_exit(["keys", "generate", "--id", "k2", "--file", str(keys)], tmp_path)
    assert code == 0, stderr
    code, stdout, stderr = run_to_exit(
        ["keys", "rotate", "--database", upgraded, "--encryption-keys-file", str(keys), "--batch-size", "2"],
        tmp_path,
    )
    assert code == 0, stdout + stderr
    assert "re-encrypted 15 values under key 'k2' (8 batches of <= 2)" in stdout
    assert "no value is left under 'k1'" in stdout
    engine = create_engine(upgraded)
    try:
        with engine.connect() as connection:
            table = Database(engine).schema.artifact_property
            stored = [row.string_value for row in connection.execute(table.select()) if row.string_value]
    finally:
        engine.dispose()
    envelopes = [text for text in stored if text.startswith("lineagedb:enc:")]
    assert len(envelopes) == 15 and all(text.startswith("lineagedb:enc:v1:k2:") for text in envelopes)

    # k1 can go: a key file with k2 alone reads every value back.
    only_new = key_file(tmp_path / "new.toml", "k2", k2=file_keys(keys)[0])
    for artifact in read_back(upgraded, only_new, ids):
        assert dict(artifact.custom_properties) == dict(secret_artifact(artifact.type_id).custom_properties)
    assert_no_plaintext_in_database(upgraded)
    for text in (stdout, stderr):
        assert first_key not in text and SECRET_TEXT not in text


def test_unreadable_key_configuration_stops_startup_before_anything_listens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    missing = tmp_path / "absent.toml"
    code, stderr = serve_until_exit(url, tmp_path, "--encryption-keys-file", str(missing))
    assert code == 2 and f"cannot read the encryption key file {missing}" in stderr
    secret_key = base64.b64encode(os.urandom(16)).decode()  # 16 bytes: not an AES-256 key
    bad = tmp_path / "bad.toml"
    bad.write_text(f'active = "k1"\n[keys]\nk1 = "{secret_key}"\n')
    code, stderr = serve_until_exit(url, tmp_path, "--encryption-keys-file", str(bad))
    assert code == 2 and "must be 32 bytes" in stderr and secret_key not in stderr
    code, stderr = serve_until_exit(url, tmp_path, "--sensitive-properties", str(bad))
    assert code == 2 and "--sensitive-properties needs encryption keys" in stderr
    # A database holding encrypted values, served without any keys: refused, not shown as ciphertext.
    good = key_file(tmp_path / "keys.toml", "k1", k1=new_key())
    code, _, stderr = run_to_exit(["db", "upgrade", "--database", url], tmp_path)
    assert code == 0, stderr
    write_secrets(url, good)
    code, stderr = serve_until_exit(url, tmp_path)
    assert code == 3 and "no encryption keys are configured" in stderr


@pytest.mark.compat
def test_mlmd_opening_the_database_sees_ciphertext_never_plaintext(
    mlmd_python: Path, upgraded: str, keys: Path
) -> None:
    """MLMD's own library, on the same database: sensitive values are envelopes in string_value."""
    import json
    import subprocess

    from tests.compat.conftest import _clean_env
    from tests.compat.test_two_way import mlmd_store_spec

    ids = write_secrets(upgraded, keys)
    script = Path(__file__).with_name("mlmd_read.py")
    completed = subprocess.run(
        [str(mlmd_python), str(script), mlmd_store_spec(upgraded)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    seen = json.loads(completed.stdout)
    assert sorted(seen) == sorted(str(i) for i in ids)
    for strings in seen.values():
        assert strings["note"] == "not sensitive"
        for name in ("db_password", "auth_token", "secret_score", "env.VERBOSE", "secret_config"):
            assert strings[name].startswith("lineagedb:enc:v1:k1:"), name
    assert SECRET_TEXT not in completed.stdout and SECRET_STRUCT_TEXT not in completed.stdout
