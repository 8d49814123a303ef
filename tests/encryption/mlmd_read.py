"""Run by the official ml-metadata library (its own virtualenv): open a database in place with
MLMD's own store and print every artifact's custom string values as JSON.

Usage: python mlmd_read.py STORE   (STORE as tests/compat/dataset.py takes it)
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat"))

from dataset import open_store

store = open_store(sys.argv[1])
print(
    json.dumps(
        {
            str(artifact.id): {
                name: value.string_value
                for name, value in [*artifact.properties.items(), *artifact.custom_properties.items()]
                if value.HasField("string_value")
            }
            for artifact in store.get_artifacts()
        }
    )
)
