"""Runs under the official ml-metadata client (.venv-mlmd): connect, write, read, print JSON.

Usage: python mlmd_client.py '{"host": ..., "port": ..., "ca": path, "cert": path, "key": path}'
Prints {"ok": true, "artifact_ids": [...], "type_id": N} or {"ok": false, "error": "<ErrorClass>", "message": ...}.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd


def main() -> int:
    options = json.loads(sys.argv[1])
    config = mlmd.MetadataStoreClientConfig(host=options["host"], port=int(options["port"]))
    config.client_timeout_sec = float(options.get("timeout", 10))
    if options.get("ca"):
        config.ssl_config.custom_ca = Path(options["ca"]).read_text()
    if options.get("cert"):
        # The official client passes ssl_config.server_cert as the *client* certificate chain.
        config.ssl_config.server_cert = Path(options["cert"]).read_text()
    if options.get("key"):
        config.ssl_config.client_key = Path(options["key"]).read_text()
    try:
        store = metadata_store.MetadataStore(config)
        type_id = store.put_artifact_type(mlmd.ArtifactType(name=f"ops.Dataset.{uuid.uuid4().hex[:8]}"))
        ids = store.put_artifacts([mlmd.Artifact(type_id=type_id, uri="s3://bucket/a")])
        got = store.get_artifacts_by_id(ids)
        result = {"ok": True, "type_id": type_id, "artifact_ids": list(ids), "uris": [a.uri for a in got]}
    except errors.StatusError as error:
        result = {"ok": False, "error": type(error).__name__, "message": str(error)[:500]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
