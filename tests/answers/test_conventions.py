"""Conventions: which properties hold digests, versions, code versions and environments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.answers import conventions
from lineagedb.service.answers.conventions import DEFAULT


def _execution(**custom: object) -> mlmd.Execution:
    execution = mlmd.Execution()
    for name, value in custom.items():
        if isinstance(value, int):
            execution.custom_properties[name].int_value = value
        else:
            execution.custom_properties[name].string_value = str(value)
    return execution


def test_defaults_read_what_tfx_and_kfp_record() -> None:
    # KFP v2: the image is the environment, `inputs` the parameters, the rest bookkeeping.
    kfp = _execution(image="python:3.11", inputs="{}", task_name="train", pod_name="p-1", cache_fingerprint="f")
    assert DEFAULT.first(kfp, DEFAULT.environment) == ("image", "python:3.11")
    assert DEFAULT.parameters(kfp) == {"inputs": "{}"}
    # TFX: the module path names the code; exec properties are the parameters.
    tfx = _execution(module_path="m@gs://w.whl", train_args='{"num_steps": 5}', tfx_version="1.16.0")
    assert DEFAULT.first(tfx, DEFAULT.code_version) == ("module_path", "m@gs://w.whl")
    assert DEFAULT.first(tfx, DEFAULT.environment) == ("tfx_version", "1.16.0")
    assert DEFAULT.parameters(tfx) == {"train_args": '{"num_steps": 5}'}
    examples = mlmd.Artifact()
    examples.custom_properties["input_fingerprint"].string_value = "split:train,num_files:1,total_bytes:9"
    examples.custom_properties["span"].int_value = 3
    assert DEFAULT.first(examples, DEFAULT.digest) == ("input_fingerprint", "split:train,num_files:1,total_bytes:9")
    assert DEFAULT.first(examples, DEFAULT.version) == ("span", 3)


def test_properties_win_over_custom_properties_of_the_same_name() -> None:
    artifact = mlmd.Artifact()
    artifact.properties["digest"].string_value = "declared"
    artifact.custom_properties["digest"].string_value = "custom"
    assert DEFAULT.first(artifact, DEFAULT.digest) == ("digest", "declared")


def test_a_file_replaces_the_lists_it_names(tmp_path: Path) -> None:
    path = tmp_path / "conventions.json"
    path.write_text(json.dumps({"digest": ["etag"], "code_version": ["git_rev"]}))
    loaded = conventions.load(path)
    assert loaded.digest == ("etag",) and loaded.code_version == ("git_rev",)
    assert loaded.environment == DEFAULT.environment


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1]", "must be a JSON object"),
        ('{"digests": ["x"]}', "unknown keys \\['digests'\\]"),
        ('{"digest": "x"}', "digest must be a list of property names"),
        ('{"digest": [""]}', "digest must be a list of property names"),
        ("{", "cannot read lineage conventions"),
    ],
)
def test_a_bad_file_is_refused_with_what_to_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "conventions.json"
    path.write_text(content)
    with pytest.raises(errors.InvalidArgumentError, match=message):
        conventions.load(path)


def test_the_server_refuses_to_start_with_a_bad_conventions_file(tmp_path: Path) -> None:
    path = tmp_path / "conventions.json"
    path.write_text('{"digest": "sha"}')
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lineagedb",
            "serve",
            "--port",
            "0",
            "--database",
            f"sqlite:///{tmp_path}/x.db",
            "--lineage-conventions",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "digest must be a list of property names" in completed.stderr
