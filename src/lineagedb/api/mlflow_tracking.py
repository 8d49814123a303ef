"""lineagedb.v1.mlflow.TrackingService: MLflow's tracking API, pure delegation, one line per RPC.

The HTTP listener maps MLflow's REST paths onto these methods (lineagedb.ops.http.mlflow_api);
domain errors become status codes in lineagedb.api.status as for every service.
"""

from __future__ import annotations

import grpc

from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2 as pb
from lineagedb.proto.lineagedb.v1 import mlflow_tracking_pb2_grpc as pb_grpc
from lineagedb.service.mlflow_tracking import MlflowTracking


class MlflowTrackingServicer(pb_grpc.TrackingServiceServicer):
    def __init__(self, tracking: MlflowTracking) -> None:
        self._tracking = tracking

    def CreateExperiment(
        self, request: pb.CreateExperimentRequest, context: grpc.ServicerContext
    ) -> pb.CreateExperimentResponse:
        return self._tracking.create_experiment(request)

    def GetExperiment(
        self, request: pb.GetExperimentRequest, context: grpc.ServicerContext
    ) -> pb.GetExperimentResponse:
        return self._tracking.get_experiment(request)

    def GetExperimentByName(
        self, request: pb.GetExperimentByNameRequest, context: grpc.ServicerContext
    ) -> pb.GetExperimentResponse:
        return self._tracking.get_experiment_by_name(request)

    def SearchExperiments(
        self, request: pb.SearchExperimentsRequest, context: grpc.ServicerContext
    ) -> pb.SearchExperimentsResponse:
        return self._tracking.search_experiments(request)

    def UpdateExperiment(self, request: pb.UpdateExperimentRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.update_experiment(request)

    def DeleteExperiment(self, request: pb.ExperimentIdRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.delete_experiment(request)

    def RestoreExperiment(self, request: pb.ExperimentIdRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.restore_experiment(request)

    def SetExperimentTag(self, request: pb.SetExperimentTagRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.set_experiment_tag(request)

    def DeleteExperimentTag(self, request: pb.DeleteExperimentTagRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.delete_experiment_tag(request)

    def CreateRun(self, request: pb.CreateRunRequest, context: grpc.ServicerContext) -> pb.RunResponse:
        return self._tracking.create_run(request)

    def GetRun(self, request: pb.RunIdRequest, context: grpc.ServicerContext) -> pb.RunResponse:
        return self._tracking.get_run(request)

    def UpdateRun(self, request: pb.UpdateRunRequest, context: grpc.ServicerContext) -> pb.UpdateRunResponse:
        return self._tracking.update_run(request)

    def DeleteRun(self, request: pb.RunIdRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.delete_run(request)

    def RestoreRun(self, request: pb.RunIdRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.restore_run(request)

    def SearchRuns(self, request: pb.SearchRunsRequest, context: grpc.ServicerContext) -> pb.SearchRunsResponse:
        return self._tracking.search_runs(request)

    def LogMetric(self, request: pb.LogMetricRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.log_metric(request)

    def LogParam(self, request: pb.LogParamRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.log_param(request)

    def SetTag(self, request: pb.SetTagRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.set_tag(request)

    def DeleteTag(self, request: pb.DeleteTagRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.delete_tag(request)

    def LogBatch(self, request: pb.LogBatchRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.log_batch(request)

    def LogInputs(self, request: pb.LogInputsRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.log_inputs(request)

    def LogOutputs(self, request: pb.LogOutputsRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.log_outputs(request)

    def GetMetricHistory(
        self, request: pb.GetMetricHistoryRequest, context: grpc.ServicerContext
    ) -> pb.GetMetricHistoryResponse:
        return self._tracking.get_metric_history(request)

    def CreateLoggedModel(
        self, request: pb.CreateLoggedModelRequest, context: grpc.ServicerContext
    ) -> pb.LoggedModelResponse:
        return self._tracking.create_logged_model(request)

    def GetLoggedModel(self, request: pb.LoggedModelIdRequest, context: grpc.ServicerContext) -> pb.LoggedModelResponse:
        return self._tracking.get_logged_model(request)

    def FinalizeLoggedModel(
        self, request: pb.FinalizeLoggedModelRequest, context: grpc.ServicerContext
    ) -> pb.LoggedModelResponse:
        return self._tracking.finalize_logged_model(request)

    def SetLoggedModelTags(
        self, request: pb.SetLoggedModelTagsRequest, context: grpc.ServicerContext
    ) -> pb.LoggedModelResponse:
        return self._tracking.set_logged_model_tags(request)

    def LogLoggedModelParams(self, request: pb.LogLoggedModelParamsRequest, context: grpc.ServicerContext) -> pb.Empty:
        return self._tracking.log_logged_model_params(request)

    def SearchLoggedModels(
        self, request: pb.SearchLoggedModelsRequest, context: grpc.ServicerContext
    ) -> pb.SearchLoggedModelsResponse:
        return self._tracking.search_logged_models(request)
