"""Write the TFX-shaped pipeline's two runs through the official ml-metadata client.

Run with the official client's interpreter (.venv-mlmd):
    python write_pipeline.py HOST PORT
Prints the ids of both runs' nodes as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tfx_pipeline


def main() -> None:
    config = metadata_store_pb2.MetadataStoreClientConfig(host=sys.argv[1], port=int(sys.argv[2]))
    store = metadata_store.MetadataStore(config)
    print(json.dumps(tfx_pipeline.write_two_runs(metadata_store_pb2, store)))


if __name__ == "__main__":
    main()
