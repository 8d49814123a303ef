"""The authorization policy file and `lineagedb authz check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineagedb.cli import main
from lineagedb.security.identity import Identity
from lineagedb.security.policy import PolicyError, Role, load_policy, parse_policy

POLICY = """
cluster_admins = ["root", "group:platform"]
type_writers = "editor"

[namespaces.team-a]
viewer = ["group:analysts"]
editor = ["group:team-a"]
admin = ["bob"]

[namespaces."*"]
viewer = ["group:auditors"]

[defaults]
"group:team-a" = "team-a"
"""


def test_roles_nest_and_the_star_namespace_reads_everything() -> None:
    policy = parse_policy(_toml(POLICY))
    alice = policy.grants(Identity("alice", frozenset({"team-a", "analysts"})))
    assert alice.role_in("team-a") is Role.EDITOR  # the highest of her bindings
    assert alice.readable == frozenset({"team-a"}) and alice.writable == frozenset({"team-a"})
    assert alice.acting_namespace(None, None) == "team-a"  # [defaults] by group
    assert alice.acting_namespace("team-b", None) == "team-b"  # the header wins (then checked)
    assert alice.may_write_types("team-a") and not alice.may_write_types("team-b")
    auditor = policy.grants(Identity("carol", frozenset({"auditors"})))
    assert auditor.readable is None and auditor.writable == frozenset()
    root = policy.grants(Identity("root"))
    assert root.cluster_admin and root.readable is None and root.writable is None
    stranger = policy.grants(Identity("mallory", frozenset({"nobody"})))
    assert stranger.readable == frozenset() and stranger.role_in("team-a") is None


def test_an_anonymous_grant_applies_only_to_calls_without_credentials() -> None:
    policy = parse_policy(_toml(POLICY), anonymous=("viewer", "public"))
    anonymous = policy.grants(Identity("anonymous", method="anonymous"))
    assert anonymous.readable == frozenset({"public"}) and not anonymous.cluster_admin
    # A principal that happens to be called "anonymous" gets nothing from the grant.
    named = policy.grants(Identity("anonymous", method="token"))
    assert named.readable == frozenset()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("owners = []", "unknown key"),
        ('[namespaces.team-a]\nowner = ["x"]', "unknown role"),
        ('[namespaces.Team_A]\nviewer = ["x"]', "not a namespace name"),
        ('type_writers = "viewer"', "editor or admin"),
        ('cluster_admins = "root"', "must be a list"),
        ('[namespaces.team-a]\nviewer = [" x"]', "not a principal"),
        ('[defaults]\nx = "*"', "not a namespace name"),
    ],
)
def test_a_bad_policy_is_refused_saying_why(text: str, complaint: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(_toml(text))
    assert complaint in str(refused.value)


def test_authz_check_prints_what_each_subject_may_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    assert main(["authz", "check", "--policy", str(path), "--principal", "zed"]) == 0
    out = capsys.readouterr().out
    assert f"{path}: valid" in out
    assert "bob: admin in team-a" in out
    assert "group:auditors: viewer in *" in out
    assert "root: cluster admin" in out
    assert "zed: nothing" in out
    assert "types are created and changed by: editors" in out


def test_authz_check_refuses_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[namespaces\n")
    assert main(["authz", "check", "--policy", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    with pytest.raises(PolicyError):
        load_policy(tmp_path / "missing.toml")


def _toml(text: str) -> dict[str, object]:
    import tomllib

    return tomllib.loads(text)
