"""The pure parts: the secrets:read grant and `lineagedb authz check`, the sensitive-property
policy, key files and the environment variable, and envelopes."""

from __future__ import annotations

import base64
import os
import tomllib
from pathlib import Path

import pytest

from lineagedb.cli import main
from lineagedb.ops import encryption as ops_encryption
from lineagedb.security.access_control import AccessControl
from lineagedb.security.encryption import (
    KEYS_ENV,
    EncryptionConfigError,
    StaticKeyProvider,
    add_generated_key,
    load_key_file,
    parse_key_environment,
    parse_sensitive_policy,
)
from lineagedb.security.identity import Identity
from lineagedb.security.policy import parse_policy
from lineagedb.security.settings import SecuritySettings
from lineagedb.security.static_tokens import new_token, tokens_file_line
from lineagedb.store.encryption import Keyring, SealError
from lineagedb.store.sensitive import SensitivePolicy, property_aad

POLICY = """
cluster_admins = ["root"]

[namespaces.team-a]
editor = ["alice", "group:team-a"]
"secrets:read" = ["alice", "group:leads"]

[namespaces.team-b]
viewer = ["alice"]

[namespaces."*"]
viewer = ["group:auditors"]
"secrets:read" = ["group:auditors"]
"""


def test_secrets_read_is_granted_per_namespace_and_never_implied_by_a_role() -> None:
    policy = parse_policy(tomllib.loads(POLICY))
    alice = policy.grants(Identity("alice"))
    assert alice.secrets_readable == frozenset({"team-a"})  # editor in team-a, viewer in team-b
    assert policy.grants(Identity("bob", frozenset({"team-a"}))).secrets_readable == frozenset()
    assert policy.grants(Identity("carol", frozenset({"auditors"}))).secrets_readable is None  # "*"
    assert policy.grants(Identity("root")).secrets_readable == frozenset()  # cluster admin, no secrets


def test_authz_check_prints_who_reads_secrets_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    assert main(["authz", "check", "--policy", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "alice: editor in team-a, viewer in team-b; secrets:read in team-a; acts in default by default" in lines
    assert any(line.startswith("group:leads: nothing; secrets:read in team-a") for line in lines)
    assert any(line.startswith("group:auditors: viewer in *; secrets:read in every namespace") for line in lines)
    assert not any("secrets:read" in line for line in lines if line.startswith("root:"))


def test_a_call_tenancy_carries_the_secrets_grant(tmp_path: Path) -> None:
    token = new_token()
    (tmp_path / "tokens").write_text(tokens_file_line(token, "alice", ()) + "\n")
    (tmp_path / "policy.toml").write_text(POLICY)
    access = AccessControl(
        SecuritySettings(tokens_file=str(tmp_path / "tokens"), authz_policy=str(tmp_path / "policy.toml"))
    )
    tenancy = access.admit("read", f"Bearer {token}", "team-b", {})
    assert tenancy is not None and tenancy.secrets_readable == frozenset({"team-a"})
    # Authentication off: no call reads secrets in clear.
    off = AccessControl(SecuritySettings()).admit("read", None, "team-a", {})
    assert off is not None and off.secrets_readable == frozenset()


def test_sensitive_policy_matches_patterns_prefixes_and_type_rules() -> None:
    policy = SensitivePolicy(custom_prefixes=("private.",), types={"my.Trainer": frozenset({"DSN"})})
    for name in ("password", "DB_Password", "api_token", "client_secret", "env.HOME", "ENV.path"):
        assert policy.is_sensitive("any", name, is_custom=True) and policy.is_sensitive("any", name, False), name
    for name in ("environment", "note", "passwd"):
        assert not policy.is_sensitive("any", name, is_custom=True), name
    assert policy.is_sensitive("x", "private.key", is_custom=True)
    assert not policy.is_sensitive("x", "private.key", is_custom=False)  # prefixes are for custom properties
    assert policy.is_sensitive("my.Trainer", "dsn", is_custom=False)
    assert not policy.is_sensitive("other.Type", "dsn", is_custom=False)
    assert policy.is_sensitive(None, "dsn", is_custom=False)  # type unknown: fail closed
    assert policy.in_filter("dsn", is_custom=False)  # a filter may match nodes of any type


def test_a_sensitive_properties_file_keeps_the_defaults_it_leaves_out() -> None:
    only_types = parse_sensitive_policy(tomllib.loads('[types]\n"my.T" = ["conn"]'))
    assert only_types.patterns == ("*password*", "*token*", "*secret*", "env.*")
    assert only_types.is_sensitive("my.T", "conn", False)
    none = parse_sensitive_policy({"patterns": []})
    assert not none.is_sensitive("t", "password", True)
    with pytest.raises(EncryptionConfigError, match="unknown key"):
        parse_sensitive_policy({"pattern": ["x"]})
    with pytest.raises(EncryptionConfigError, match="list of non-empty strings"):
        parse_sensitive_policy({"patterns": "x"})


def test_key_files_and_the_environment_never_echo_key_material(tmp_path: Path) -> None:
    short = base64.b64encode(os.urandom(20)).decode()
    path = tmp_path / "keys.toml"
    path.write_text(f'active = "k1"\n[keys]\nk1 = "{short}"\n')
    with pytest.raises(EncryptionConfigError) as caught:
        load_key_file(path)
    assert "32 bytes" in str(caught.value) and short not in str(caught.value)
    path.write_text(f'active = "k1"\n[keys]\nk1 = "{short}\n')  # broken TOML quoting the key
    with pytest.raises(EncryptionConfigError) as caught:
        load_key_file(path)
    assert "not valid TOML" in str(caught.value) and short not in str(caught.value)
    good = base64.b64encode(os.urandom(32)).decode()
    provider = parse_key_environment(f"new={good}, old={good}")
    assert provider.active_key_id() == "new" and provider.key_ids() == {"new", "old"}
    assert good not in repr(provider) and good not in repr(Keyring(provider))
    assert ops_encryption.KEYS_ENV == KEYS_ENV  # the command line's copy of the name
    with pytest.raises(EncryptionConfigError, match="ID=BASE64"):
        parse_key_environment(good.rstrip("="))
    with pytest.raises(EncryptionConfigError) as caught:
        parse_key_environment(good)  # no id: the base64 before its padding is taken for one, and refused
    assert good.rstrip("=") not in str(caught.value)
    with pytest.raises(EncryptionConfigError, match="key id"):
        parse_key_environment(f"a:b={good}")


def test_generate_adds_an_active_key_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    add_generated_key(path, "k1")
    first = load_key_file(path)
    add_generated_key(path, "k2")
    second = load_key_file(path)
    assert second.active_key_id() == "k2" and second.key("k1") == first.key("k1")
    with pytest.raises(EncryptionConfigError, match="already has"):
        add_generated_key(path, "k1")


def test_key_ids_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    # MySQL's LIKE compares without case: the registry would take one key for the other.
    with pytest.raises(EncryptionConfigError, match="'K1' and 'k1' differ only in case"):
        StaticKeyProvider({"k1": os.urandom(32), "K1": os.urandom(32)}, "k1")
    path = tmp_path / "keys.toml"
    add_generated_key(path, "k1")
    with pytest.raises(EncryptionConfigError, match="differ only in case"):
        add_generated_key(path, "K1")


def test_a_leftover_temporary_key_file_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    leftover = tmp_path / "keys.toml.tmp"
    leftover.write_text("someone else's")
    leftover.chmod(0o644)
    add_generated_key(path, "k1")
    assert path.stat().st_mode & 0o777 == 0o600 and not leftover.exists()


def test_an_envelope_opens_only_in_its_own_row_and_under_its_own_key() -> None:
    keyring = Keyring(StaticKeyProvider({"k1": os.urandom(32), "k2": os.urandom(32)}, "k1"))
    here = property_aad("artifact", 7, True, "password")
    envelope = keyring.seal(b"shhh", here)
    assert envelope.startswith("lineagedb:enc:v1:k1:") and keyring.open(envelope, here) == b"shhh"
    for elsewhere in (
        property_aad("artifact", 8, True, "password"),
        property_aad("execution", 7, True, "password"),
        property_aad("artifact", 7, False, "password"),
        property_aad("artifact", 7, True, "password2"),
    ):
        with pytest.raises(SealError, match="does not decrypt"):
            keyring.open(envelope, elsewhere)
    relabelled = envelope.replace(":k1:", ":k2:")
    with pytest.raises(SealError, match="does not decrypt"):
        keyring.open(relabelled, here)
    with pytest.raises(SealError, match="not configured"):
        keyring.open(envelope.replace(":k1:", ":k3:"), here)
