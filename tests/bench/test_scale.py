"""bench/scale.py at a tiny size on SQLite: the API loader, the set-based loader and the
measurements agree with the generator's shapes (so `make bench-scale` cannot rot)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import sqlalchemy as sa

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import scale  # noqa: E402
import scale_data  # noqa: E402
from run import LINEAGEDB, running  # noqa: E402


def test_tiny_store_loads_through_both_paths_and_reads_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scale.db'}"
    command = [str(LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--database", url]
    with running(command, tmp_path / "server.log") as server:
        channel, stub, lineage = scale.stubs(f"127.0.0.1:{server.port}")
        with channel:
            types = scale.put_types(stub)
            api = scale.load_api(stub, types, 500)
            assert api["artifacts"] == 500 and api["events"] == 2 * 500 - 2  # the pipeline's first step reads nothing
            engine = sa.create_engine(url)
            try:
                sql = scale.load_sql(engine, types, 500, 1000)
                with engine.connect() as connection:
                    artifacts = connection.execute(sa.text("SELECT COUNT(*), MAX(id) FROM Artifact")).one()
                    events = connection.execute(sa.text("SELECT COUNT(*) FROM Event")).scalar_one()
            finally:
                engine.dispose()
            assert sql["rows"]["artifact"] == 500 and sql["rows"]["attribution"] == 1000
            assert tuple(artifacts) == (1000, 1000)
            assert events == 2 * 1000 - 2
            # Rows of both parts read back as generated (types, properties, contexts, events).
            assert scale.check(stub, types, 1000, random.Random(3)) == []
            calls = scale.operations(stub, lineage, 1000)
            rng = random.Random(5)
            assert calls["get_artifacts_by_id_100"](rng) == 100
            assert calls["get_artifacts_by_context_run"](rng) == scale_data.ARTIFACTS_PER_RUN
            assert calls["filter_selective_walk"](rng) == 100  # 100 artifacts per batch, over 5 pages
            assert calls["filter_context_walk"](rng) == 2  # the last step writes two Models
            # A run's model: its 10 steps and their outputs, plus the pipeline's dataset step.
            assert calls["provenance_model"](rng) in (19 + 10, 21 + 11)
            measured = scale.measure(stub, lineage, 1000, reps=1, seed=1)
            assert set(measured) == set(calls)
            assert measured["get_executions_by_id_100"]["answer_median"] == 100
            assert scale.rss_bytes(server.process.pid) > 0
