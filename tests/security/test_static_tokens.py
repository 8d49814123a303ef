"""Static bearer tokens: the hash-only file, lookups, reloads and `lineagedb token create`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineagedb.cli import main
from lineagedb.config import ConfigurationError
from lineagedb.security.authn import Authenticator
from lineagedb.security.identity import AuthenticationError, Identity
from lineagedb.security.settings import SecuritySettings
from lineagedb.security.static_tokens import (
    StaticTokens,
    TokensFileError,
    new_token,
    token_digest,
    tokens_file_line,
)


def authenticator(path: Path) -> Authenticator:
    return Authenticator.from_settings(SecuritySettings(tokens_file=str(path)))


def test_new_tokens_are_long_random_and_prefixed() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(token.startswith("ldb_") and len(token) >= 4 + 43 for token in tokens)


def test_a_listed_token_authenticates_and_an_unknown_one_does_not(tmp_path: Path) -> None:
    alice, bob = new_token(), new_token()
    path = tmp_path / "tokens"
    path.write_text(
        "# CI robots\n\n"
        f"{tokens_file_line(alice, 'alice', ['ml-team', 'readers'])}\n"
        f"   {tokens_file_line(bob, 'system:serviceaccount:kubeflow:pipeline-runner')}   \n"
    )
    auth = authenticator(path)
    assert auth.authenticate(f"Bearer {alice}", {}) == Identity(
        "alice", frozenset({"ml-team", "readers"}), None, "token"
    )
    identity = auth.authenticate(f"bearer {bob}", {})
    assert identity is not None and identity.principal == "system:serviceaccount:kubeflow:pipeline-runner"
    assert identity.groups == frozenset()
    with pytest.raises(AuthenticationError, match="not valid or has been revoked"):
        auth.authenticate(f"Bearer {new_token()}", {})
    # The hash itself is not a credential.
    with pytest.raises(AuthenticationError):
        auth.authenticate(f"Bearer {token_digest(alice)}", {})


def test_uppercase_hex_in_the_file_is_accepted() -> None:
    token = new_token()
    tokens = StaticTokens.parse(f"sha256:{token_digest(token).upper()} carol")
    assert tokens.lookup(token) == Identity("carol", method="token")


def test_a_removed_token_stops_working_after_reload(tmp_path: Path) -> None:
    keep, revoke = new_token(), new_token()
    path = tmp_path / "tokens"
    path.write_text(f"{tokens_file_line(keep, 'keep')}\n{tokens_file_line(revoke, 'revoke')}\n")
    auth = authenticator(path)
    assert auth.authenticate(f"Bearer {revoke}", {}) is not None
    path.write_text(f"{tokens_file_line(keep, 'keep')}\n")
    assert auth.authenticate(f"Bearer {revoke}", {}) is not None  # nothing changes before the reload
    auth.reload()
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(f"Bearer {revoke}", {})
    assert auth.authenticate(f"Bearer {keep}", {}) == Identity("keep", method="token")


def test_a_broken_file_on_reload_keeps_the_old_tokens(tmp_path: Path) -> None:
    token = new_token()
    path = tmp_path / "tokens"
    path.write_text(tokens_file_line(token, "alice") + "\n")
    auth = authenticator(path)
    path.write_text(tokens_file_line(token, "alice") + "\nsha256:nothex bob\n")
    with pytest.raises(TokensFileError, match="line 2"):
        auth.reload()
    assert auth.authenticate(f"Bearer {token}", {}) == Identity("alice", method="token")
    path.unlink()
    with pytest.raises(TokensFileError, match="cannot read"):
        auth.reload()
    assert auth.authenticate(f"Bearer {token}", {}) is not None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("sha256:" + "a" * 64, "expected"),
        ("ldb_sometoken alice", "first field"),
        ("sha256:" + "a" * 63 + " alice", "64 hexadecimal"),
        ("sha256:" + "g" * 64 + " alice", "64 hexadecimal"),
        ("sha512:" + "a" * 64 + " alice", "first field"),
        ("sha256:" + "a" * 64 + " alice # the CI bot", "start with '#'"),
        ("sha256:" + "a" * 64 + " al\x07ice", "control"),
    ],
)
def test_malformed_lines_name_the_line_number(line: str, message: str) -> None:
    text = "# header\n\nsha256:" + "b" * 64 + " ok\n" + line + "\n"
    with pytest.raises(TokensFileError, match=rf"line 4: .*{message}") as raised:
        StaticTokens.parse(text, "tokens.txt")
    assert isinstance(raised.value, ConfigurationError)  # so startup exits 2 with the message
    assert "ldb_sometoken" not in str(raised.value)


def test_a_hash_listed_twice_is_refused() -> None:
    line = "sha256:" + "c" * 64
    with pytest.raises(TokensFileError, match=r"line 2: .*already listed"):
        StaticTokens.parse(f"{line} alice\n{line} bob\n")


def test_an_empty_file_revokes_everything(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# no tokens yet\n")
    with pytest.raises(AuthenticationError, match="revoked"):
        authenticator(path).authenticate(f"Bearer {new_token()}", {})


def test_token_create_output_appended_to_the_file_authenticates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tokens"
    path.write_text("# tokens\n")
    assert main(["token", "create", "--principal", "system:serviceaccount:team-a:trainer", "--group", "ml"]) == 0
    out = capsys.readouterr().out
    labelled = dict(line.split(": ", 1) for line in out.splitlines() if not line.startswith("#"))
    token, line = labelled["token"], labelled["tokens file line"]
    assert token.startswith("ldb_") and token not in line
    assert out.count(token) == 1  # shown once
    with path.open("a") as handle:
        handle.write(line + "\n")
    assert authenticator(path).authenticate(f"Bearer {token}", {}) == Identity(
        "system:serviceaccount:team-a:trainer", frozenset({"ml"}), None, "token"
    )


@pytest.mark.parametrize(
    "argv", [["--principal", "two words"], ["--principal", ""], ["--principal", "ok", "--group", "a b"]]
)
def test_token_create_refuses_names_with_whitespace(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "create", *argv])
    assert exited.value.code == 2
    assert "ldb_" not in capsys.readouterr().out


def test_token_create_runs_as_a_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "lineagedb", "token", "create", "--principal", "bot"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "token: ldb_" in result.stdout and "tokens file line: sha256:" in result.stdout
