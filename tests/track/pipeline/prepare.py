"""Pipeline step 1 (run as a script by tests/track/test_pipeline.py): raw CSV -> clean directory."""

import sys
from pathlib import Path

from lineagedb import track

data = Path(sys.argv[1])
with track.step("Prepare") as step:
    step.input(data / "raw.csv", type="Dataset")
    step.param("drop_header", True)
    clean = data / "clean"
    step.output(clean, type="Dataset", key="clean")
    clean.mkdir(exist_ok=True)
    rows = (data / "raw.csv").read_text().splitlines()[1:]
    (clean / "part-0.csv").write_text("\n".join(rows[::2]) + "\n")
    (clean / "part-1.csv").write_text("\n".join(rows[1::2]) + "\n")
