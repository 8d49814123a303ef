"""MLflow's tracking API at the service layer (lineagedb.service.mlflow_tracking), on every backend:
the graph it writes, MLflow's limits and error kinds, search filters and ordering, one transaction
per request. The real `mlflow` client drives the same code over HTTP in test_mlflow_client.py.
About 1 s per backend.
"""

from __future__ import annotations

import math

import pytest

from lineagedb import errors
from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.service.mlflow_tracking import MlflowTracking
from lineagedb.store.unit_of_work import Database


@pytest.fixture
def tracking(database: Database) -> MlflowTracking:
    return MlflowTracking(database, MetadataStore(database).types)


def _run(tracking: MlflowTracking, experiment_id: str, name: str) -> str:
    answer = tracking.create_run(pb.CreateRunRequest(experiment_id=experiment_id, run_name=name, start_time=1000))
    return answer.run.info.run_id


def _search(
    tracking: MlflowTracking, experiment_id: str, filter_: str = "", order: list[str] | None = None
) -> list[str]:
    request = pb.SearchRunsRequest(experiment_ids=[experiment_id], filter=filter_, order_by=order or [])
    return [run.info.run_name for run in tracking.search_runs(request).runs]


def test_runs_params_metrics_tags_are_one_graph(tracking: MlflowTracking, database: Database) -> None:
    experiment_id = tracking.create_experiment(pb.CreateExperimentRequest(name="exp")).experiment_id
    run_id = _run(tracking, experiment_id, "first")
    metrics = [pb.Metric(key="loss", value=1.0 / (step + 1), timestamp=10 + step, step=step) for step in range(5)]
    tracking.log_batch(pb.LogBatchRequest(run_id=run_id, metrics=metrics, params=[pb.KeyValue(key="lr", value="0.1")]))
    tracking.set_tag(pb.SetTagRequest(run_id=run_id, key="team", value="a"))
    run = tracking.get_run(pb.RunIdRequest(run_id=run_id)).run
    assert [(m.key, m.value, m.step) for m in run.data.metrics] == [("loss", 0.2, 4)]
    assert {p.key: p.value for p in run.data.params} == {"lr": "0.1"}
    assert {t.key: t.value for t in run.data.tags} == {"mlflow.runName": "first", "team": "a"}
    history = tracking.get_metric_history(pb.GetMetricHistoryRequest(run_id=run_id, metric_key="loss")).metrics
    assert [m.step for m in history] == [0, 1, 2, 3, 4]

    store = MetadataStore(database)
    (execution,) = store.get_executions_by_type(svc.GetExecutionsByTypeRequest(type_name="mlflow.Run")).executions
    assert execution.name == run_id
    assert execution.custom_properties["param.lr"].string_value == "0.1"
    assert execution.custom_properties["metric.loss"].double_value == 0.2
    (context,) = store.get_contexts_by_execution(svc.GetContextsByExecutionRequest(execution_id=execution.id)).contexts
    assert context.name == "exp" and str(context.id) == experiment_id


def test_search_filters_and_orders_like_mlflow(tracking: MlflowTracking) -> None:
    experiment_id = tracking.create_experiment(pb.CreateExperimentRequest(name="search")).experiment_id
    for index, name in enumerate(["a", "b", "c"]):
        run_id = _run(tracking, experiment_id, name)
        tracking.log_batch(
            pb.LogBatchRequest(
                run_id=run_id,
                metrics=[pb.Metric(key="acc", value=0.5 + index / 10, timestamp=1, step=0)],
                params=[pb.KeyValue(key="lr", value=f"0.{index}")],
                tags=[pb.KeyValue(key="kind", value="even" if index % 2 == 0 else "odd")],
            )
        )
    assert _search(tracking, experiment_id, "metrics.acc > 0.55", ["metrics.acc DESC"]) == ["c", "b"]
    assert _search(tracking, experiment_id, "params.lr = '0.0'") == ["a"]
    assert _search(tracking, experiment_id, "tags.kind LIKE 'ev%'", ["params.lr DESC"]) == ["c", "a"]
    assert _search(tracking, experiment_id, "tags.kind LIKE 'EV%'") == []
    assert _search(tracking, experiment_id, "tags.kind ILIKE 'EV%'", ["attributes.run_name"]) == ["a", "c"]
    assert _search(tracking, experiment_id, "attributes.run_name = 'b'") == ["b"]
    page = tracking.search_runs(
        pb.SearchRunsRequest(experiment_ids=[experiment_id], max_results=2, order_by=["params.lr"])
    )
    assert [r.info.run_name for r in page.runs] == ["a", "b"]
    rest = tracking.search_runs(
        pb.SearchRunsRequest(experiment_ids=[experiment_id], order_by=["params.lr"], page_token=page.next_page_token)
    )
    assert [r.info.run_name for r in rest.runs] == ["c"]
    with pytest.raises(errors.InvalidArgumentError):
        _search(tracking, experiment_id, "metrics.acc > 'x'")
    with pytest.raises(errors.InvalidArgumentError):
        _search(tracking, experiment_id, "params.lr = '1' OR params.lr = '2'")


def test_limits_and_errors_write_nothing(tracking: MlflowTracking) -> None:
    experiment_id = tracking.create_experiment(pb.CreateExperimentRequest(name="limits")).experiment_id
    with pytest.raises(errors.AlreadyExistsError):
        tracking.create_experiment(pb.CreateExperimentRequest(name="limits"))
    with pytest.raises(errors.NotFoundError):
        tracking.get_experiment(pb.GetExperimentRequest(experiment_id="999999"))
    with pytest.raises(errors.NotFoundError):
        tracking.get_run(pb.RunIdRequest(run_id="0" * 32))
    run_id = _run(tracking, experiment_id, "r")
    bad_key = pb.KeyValue(key="p\x01", value="x")
    good = pb.Metric(key="m", value=1.0, timestamp=1, step=0)
    with pytest.raises(errors.InvalidArgumentError):
        tracking.log_batch(pb.LogBatchRequest(run_id=run_id, metrics=[good], params=[bad_key]))
    with pytest.raises(errors.InvalidArgumentError):
        tracking.log_batch(pb.LogBatchRequest(run_id=run_id, metrics=[good] * 1001))
    tracking.log_param(pb.LogParamRequest(run_id=run_id, key="p", value="1"))
    with pytest.raises(errors.InvalidArgumentError):
        tracking.log_batch(pb.LogBatchRequest(run_id=run_id, metrics=[good], params=[pb.KeyValue(key="p", value="2")]))
    run = tracking.get_run(pb.RunIdRequest(run_id=run_id)).run
    assert list(run.data.metrics) == []  # the refused batches wrote no metric
    tracking.log_metric(pb.LogMetricRequest(run_id=run_id, key="nan", value=math.nan, timestamp=1))
    (nan,) = tracking.get_run(pb.RunIdRequest(run_id=run_id)).run.data.metrics
    assert math.isnan(nan.value)
    # The longest keys fit MLMD's property names with their prefixes on every backend.
    tracking.log_param(pb.LogParamRequest(run_id=run_id, key="k" * 249, value="v"))
    tracking.log_metric(pb.LogMetricRequest(run_id=run_id, key="m" * 248, value=1.0, timestamp=1))
    with pytest.raises(errors.InvalidArgumentError):
        tracking.log_param(pb.LogParamRequest(run_id=run_id, key="k" * 250, value="v"))
    # Over-long values are cut to MLflow's limit, as MLflow's server does by default.
    tracking.log_param(pb.LogParamRequest(run_id=run_id, key="long", value="x" * 6001))
    params = {p.key: p.value for p in tracking.get_run(pb.RunIdRequest(run_id=run_id)).run.data.params}
    assert len(params["long"]) == 6000


def test_datasets_are_input_artifacts_and_models_outputs(tracking: MlflowTracking, database: Database) -> None:
    run_id = _run(tracking, "0", "with-data")  # the Default experiment, made on first use
    dataset = pb.Dataset(name="iris", digest="abc123", source_type="local", source='{"uri": "/d"}')
    item = pb.DatasetInput(dataset=dataset, tags=[pb.KeyValue(key="mlflow.data.context", value="training")])
    tracking.log_inputs(pb.LogInputsRequest(run_id=run_id, datasets=[item]))
    tracking.log_inputs(pb.LogInputsRequest(run_id=run_id, datasets=[item]))  # logged once
    model = tracking.create_logged_model(pb.CreateLoggedModelRequest(experiment_id="0", source_run_id=run_id)).model
    tracking.log_outputs(pb.LogOutputsRequest(run_id=run_id, models=[pb.ModelOutput(model_id=model.info.model_id)]))
    run = tracking.get_run(pb.RunIdRequest(run_id=run_id)).run
    (given,) = run.inputs.dataset_inputs
    assert given.dataset.digest == "abc123" and given.tags[0].value == "training"
    assert run.outputs.model_outputs[0].model_id == model.info.model_id
    store = MetadataStore(database)
    execution = store.get_executions_by_type(svc.GetExecutionsByTypeRequest(type_name="mlflow.Run")).executions[0]
    events = store.get_events_by_execution_ids(svc.GetEventsByExecutionIDsRequest(execution_ids=[execution.id])).events
    assert sorted(e.type for e in events) == [mlmd.Event.INPUT, mlmd.Event.OUTPUT]
    experiment = tracking.get_experiment(pb.GetExperimentRequest(experiment_id="0")).experiment
    assert experiment.name == "Default"


def test_logged_models_filter_by_name_and_source_run(tracking: MlflowTracking) -> None:
    run_id = _run(tracking, "0", "models")
    model = tracking.create_logged_model(
        pb.CreateLoggedModelRequest(experiment_id="0", name="model", source_run_id=run_id)
    ).model

    def search(filter_: str) -> list[str]:
        request = pb.SearchLoggedModelsRequest(experiment_ids=["0"], filter=filter_)
        return [m.info.model_id for m in tracking.search_logged_models(request).models]

    assert search("name = 'model'") == [model.info.model_id]
    assert search(f"name = 'model' AND source_run_id = '{run_id}'") == [model.info.model_id]
    assert search("name = 'other'") == []
    with pytest.raises(errors.InvalidArgumentError):
        search("metrics.x > 1")


def test_renaming_an_experiment_to_a_taken_name_is_already_exists(tracking: MlflowTracking) -> None:
    """The update's unique clash (INTERNAL for MLMD's own RPCs) is MLflow's RESOURCE_ALREADY_EXISTS here."""
    first = tracking.create_experiment(pb.CreateExperimentRequest(name="first")).experiment_id
    tracking.create_experiment(pb.CreateExperimentRequest(name="second"))
    with pytest.raises(errors.AlreadyExistsError, match=r"Experiment 'second' already exists\."):
        tracking.update_experiment(pb.UpdateExperimentRequest(experiment_id=first, new_name="second"))
    assert tracking.get_experiment(pb.GetExperimentRequest(experiment_id=first)).experiment.name == "first"


def _dataset(name: str, context: str | None, **extra: str) -> pb.DatasetInput:
    tags = [pb.KeyValue(key="mlflow.data.context", value=context)] if context is not None else []
    tags += [pb.KeyValue(key=key, value=value) for key, value in extra.items()]
    return pb.DatasetInput(dataset=pb.Dataset(name=name, digest=f"d-{name}", source_type="code"), tags=tags)


def test_search_by_datasets_compares_each_input_like_mlflow(tracking: MlflowTracking) -> None:
    """An input's context is the value step after the mlflow.data.context key step of its event's
    path: another tag's value, or a value that reads `mlflow.data.context`, never counts."""
    experiment_id = tracking.create_experiment(pb.CreateExperimentRequest(name="datasets")).experiment_id
    inputs = {
        "a": [_dataset("tiny", "training")],
        "b": [_dataset("tiny", "eval", note="training"), _dataset("big", "training")],
        "c": [_dataset("big", None, odd="mlflow.data.context", other="eval")],
        "d": [],
    }
    for name, datasets in inputs.items():
        run_id = _run(tracking, experiment_id, name)
        if datasets:
            tracking.log_inputs(pb.LogInputsRequest(run_id=run_id, datasets=datasets))
    order = ["attributes.run_name"]
    assert _search(tracking, experiment_id, "datasets.name = 'tiny'", order) == ["a", "b"]
    assert _search(tracking, experiment_id, "datasets.name != 'tiny'", order) == ["b", "c"]
    assert _search(tracking, experiment_id, "datasets.digest IN ('d-big')", order) == ["b", "c"]
    assert _search(tracking, experiment_id, "datasets.name NOT IN ('big')", order) == ["a", "b"]
    assert _search(tracking, experiment_id, "datasets.name LIKE 'T%'", order) == []
    assert _search(tracking, experiment_id, "datasets.name ILIKE 'T%'", order) == ["a", "b"]
    assert _search(tracking, experiment_id, "datasets.context = 'training'", order) == ["a", "b"]
    assert _search(tracking, experiment_id, "datasets.context = 'eval'", order) == ["b"]
    assert _search(tracking, experiment_id, "datasets.context = 'nothing'", order) == []
    assert _search(tracking, experiment_id, "datasets.context != 'training'", order) == ["b"]
    assert _search(tracking, experiment_id, "datasets.context LIKE 'tr_in%'", order) == ["a", "b"]
    assert _search(tracking, experiment_id, "datasets.context ILIKE 'EV%'", order) == ["b"]
    assert _search(tracking, experiment_id, "datasets.context IN ('eval', 'x')", order) == ["b"]
    assert _search(tracking, experiment_id, "datasets.context NOT IN ('eval')", order) == ["a", "b"]
    assert _search(tracking, experiment_id, "datasets.name = 'tiny' AND datasets.context = 'eval'", order) == ["b"]
    assert _search(tracking, experiment_id, "datasets.context = 'training' AND attributes.run_name = 'a'") == ["a"]
    for bad in ("datasets.source = 'x'", "datasets.name > 'x'", "datasets.name = 1", "datasets.context IN 'x'"):
        with pytest.raises(errors.InvalidArgumentError):
            _search(tracking, experiment_id, bad)
