"""Pipeline step 2, the decorator form: clean directory -> model file; `--fail` raises after reading."""

import sys
from pathlib import Path

from lineagedb import track


@track.step("Train", inputs={"clean": "Dataset"}, outputs={"model": "Model"})
def train(clean: str, model: str, learning_rate: float, fail: bool = False) -> None:
    rows = sum(len(p.read_text().split()) for p in sorted(Path(clean).iterdir()))
    if fail:
        raise RuntimeError("diverged")
    Path(model).write_text(f"weights rows={rows} learning_rate={learning_rate}\n")
    track.current().metric("loss", 1.0 / (1.0 + learning_rate))


data = Path(sys.argv[1])
train(str(data / "clean"), str(data / f"model-{sys.argv[2]}.txt"), float(sys.argv[2]), fail="--fail" in sys.argv)
