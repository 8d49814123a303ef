"""Pipeline step 3: model + clean data -> evaluation file."""

import sys
from pathlib import Path

from lineagedb import track

data, model = Path(sys.argv[1]), Path(sys.argv[2])
with track.step("Evaluate") as step:
    step.input(model, type="Model")
    step.input(data / "clean", type="Dataset", key="examples")
    evaluation = data / f"evaluation-{model.stem}.json"
    step.output(evaluation, type="ModelEvaluation")
    evaluation.write_text('{"auc": 0.9}\n')
    step.metric("auc", 0.9)
