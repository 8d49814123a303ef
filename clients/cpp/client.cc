// Walks a short ML pipeline story against an MLMD-compatible server (LineageDB or
// Google's ML Metadata server) and checks every answer.
//
//   mlmd-cpp-client HOST:PORT
//
// Exits 0 when every check passed and 1 on the first unexpected answer. Names carry a
// unique run tag, so it can run repeatedly against one database.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include "ml_metadata/proto/metadata_store.pb.h"
#include "ml_metadata/proto/metadata_store_service.grpc.pb.h"

namespace mlmd = ml_metadata;
using Stub = mlmd::MetadataStoreService::Stub;

namespace {

int checks = 0;

void Ok(bool cond, const std::string& what) {
  if (!cond) {
    std::printf("FAIL %s\n", what.c_str());
    std::exit(1);
  }
  ++checks;
  std::printf("ok   %s\n", what.c_str());
}

std::string CodeName(int code) {
  static const char* const kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                       "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                       "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : std::to_string(code);
}

void Must(const grpc::Status& status, const std::string& rpc) {
  if (!status.ok()) {
    std::printf("FAIL %s: unexpected error %s: %s\n", rpc.c_str(),
                CodeName(static_cast<int>(status.error_code())).c_str(), status.error_message().c_str());
    std::exit(1);
  }
}

void WantCode(const grpc::Status& status, grpc::StatusCode want, const std::string& what) {
  Ok(status.error_code() == want,
     what + " -> " + CodeName(want) + " (got " + CodeName(static_cast<int>(status.error_code())) + ")");
}

// One context per call: a grpc::ClientContext must not be reused.
std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  return ctx;
}

template <typename Nodes>
std::set<int64_t> Ids(const Nodes& nodes) {
  std::set<int64_t> ids;
  for (const auto& n : nodes) ids.insert(n.id());
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mlmd-cpp-client HOST:PORT\n");
    return 2;
  }
  const std::string address = argv[1];
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(15))) {
    std::printf("FAIL connect %s\n", address.c_str());
    return 1;
  }
  std::unique_ptr<Stub> store = mlmd::MetadataStoreService::NewStub(channel);
  const std::string run = "cpp-" +
      std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count()) +
      "-" + std::to_string(getpid());
  std::printf("C++ client against %s, run tag %s\n", address.c_str(), run.c_str());

  // 1. Types.
  std::puts("-- types");
  int64_t ds_type, model_type, trainer_type, run_type;
  {
    mlmd::PutArtifactTypeRequest req;
    req.set_can_add_fields(true);
    req.mutable_artifact_type()->set_name("DataSet");
    (*req.mutable_artifact_type()->mutable_properties())["split"] = mlmd::STRING;
    (*req.mutable_artifact_type()->mutable_properties())["num_rows"] = mlmd::INT;
    mlmd::PutArtifactTypeResponse resp;
    Must(store->PutArtifactType(Ctx().get(), req, &resp), "PutArtifactType DataSet");
    ds_type = resp.type_id();
    Ok(resp.has_type_id() && ds_type > 0, "PutArtifactType DataSet -> type id " + std::to_string(ds_type));

    req.mutable_artifact_type()->Clear();
    req.mutable_artifact_type()->set_name("Model");
    (*req.mutable_artifact_type()->mutable_properties())["framework"] = mlmd::STRING;
    (*req.mutable_artifact_type()->mutable_properties())["accuracy"] = mlmd::DOUBLE;
    Must(store->PutArtifactType(Ctx().get(), req, &resp), "PutArtifactType Model");
    model_type = resp.type_id();
    Ok(model_type > 0 && model_type != ds_type, "PutArtifactType Model -> type id " + std::to_string(model_type));

    mlmd::PutExecutionTypeRequest ereq;
    ereq.set_can_add_fields(true);
    ereq.mutable_execution_type()->set_name("Trainer");
    (*ereq.mutable_execution_type()->mutable_properties())["learning_rate"] = mlmd::DOUBLE;
    (*ereq.mutable_execution_type()->mutable_properties())["epochs"] = mlmd::INT;
    mlmd::PutExecutionTypeResponse eresp;
    Must(store->PutExecutionType(Ctx().get(), ereq, &eresp), "PutExecutionType Trainer");
    trainer_type = eresp.type_id();
    Ok(trainer_type > 0, "PutExecutionType Trainer -> type id " + std::to_string(trainer_type));

    mlmd::PutContextTypeRequest creq;
    creq.set_can_add_fields(true);
    creq.mutable_context_type()->set_name("PipelineRun");
    (*creq.mutable_context_type()->mutable_properties())["pipeline"] = mlmd::STRING;
    mlmd::PutContextTypeResponse cresp;
    Must(store->PutContextType(Ctx().get(), creq, &cresp), "PutContextType PipelineRun");
    run_type = cresp.type_id();
    Ok(run_type > 0, "PutContextType PipelineRun -> type id " + std::to_string(run_type));
  }

  // 2. Input data sets.
  std::puts("-- artifacts");
  int64_t train_id, eval_id;
  {
    mlmd::PutArtifactsRequest req;
    for (const char* split : {"train", "eval"}) {
      mlmd::Artifact* a = req.add_artifacts();
      a->set_type_id(ds_type);
      a->set_name(run + "-" + split);
      a->set_uri("file:///data/" + run + "/" + split);
      a->set_state(mlmd::Artifact::LIVE);
      (*a->mutable_properties())["split"].set_string_value(split);
      (*a->mutable_properties())["num_rows"].set_int_value(1000);
    }
    mlmd::PutArtifactsResponse resp;
    Must(store->PutArtifacts(Ctx().get(), req, &resp), "PutArtifacts");
    Ok(resp.artifact_ids_size() == 2, "PutArtifacts created 2 data sets");
    train_id = resp.artifact_ids(0);
    eval_id = resp.artifact_ids(1);
  }

  // 3. PutExecution: inputs by event.artifact_id, a new model as output, a run context.
  std::puts("-- PutExecution");
  int64_t exec_id, model_id, ctx_id;
  {
    mlmd::PutExecutionRequest req;
    mlmd::Execution* e = req.mutable_execution();
    e->set_type_id(trainer_type);
    e->set_name(run + "-trainer");
    e->set_last_known_state(mlmd::Execution::COMPLETE);
    (*e->mutable_properties())["learning_rate"].set_double_value(0.01);
    (*e->mutable_properties())["epochs"].set_int_value(10);
    for (int64_t input : {train_id, eval_id}) {
      mlmd::Event* ev = req.add_artifact_event_pairs()->mutable_event();
      ev->set_artifact_id(input);
      ev->set_type(mlmd::Event::INPUT);
      ev->mutable_path()->add_steps()->set_key("examples");
    }
    auto* out = req.add_artifact_event_pairs();
    out->mutable_artifact()->set_type_id(model_type);
    out->mutable_artifact()->set_name(run + "-model");
    out->mutable_artifact()->set_uri("file:///models/" + run);
    (*out->mutable_artifact()->mutable_properties())["accuracy"].set_double_value(0.93);
    out->mutable_event()->set_type(mlmd::Event::OUTPUT);
    mlmd::Context* c = req.add_contexts();
    c->set_type_id(run_type);
    c->set_name(run);
    req.mutable_options()->set_reuse_context_if_already_exist(true);
    mlmd::PutExecutionResponse resp;
    Must(store->PutExecution(Ctx().get(), req, &resp), "PutExecution");
    exec_id = resp.execution_id();
    Ok(exec_id > 0, "PutExecution -> execution id " + std::to_string(exec_id));
    Ok(resp.artifact_ids_size() == 3 && resp.artifact_ids(0) == train_id && resp.artifact_ids(1) == eval_id,
       "PutExecution artifact_ids aligned with the pairs");
    model_id = resp.artifact_ids(2);
    Ok(resp.context_ids_size() == 1, "PutExecution created the pipeline-run context");
    ctx_id = resp.context_ids(0);
  }

  // 4. filter_query with paging (1 per page).
  std::puts("-- filter_query and paging");
  {
    const std::string filter = "contexts_run.name = '" + run + "'";
    std::vector<int64_t> seen;
    std::string token;
    int pages = 0;
    do {
      mlmd::GetArtifactsRequest req;
      req.mutable_options()->set_max_result_size(1);
      req.mutable_options()->set_filter_query(filter);
      if (!token.empty()) req.mutable_options()->set_next_page_token(token);
      mlmd::GetArtifactsResponse resp;
      Must(store->GetArtifacts(Ctx().get(), req, &resp), "GetArtifacts " + filter);
      ++pages;
      for (const auto& a : resp.artifacts()) seen.push_back(a.id());
      token = resp.next_page_token();
    } while (!token.empty() && pages < 10);
    Ok(pages == 3 && seen == std::vector<int64_t>({train_id, eval_id, model_id}),
       "GetArtifacts \"" + filter + "\", 1 per page -> 3 pages in id order");
  }

  // 5. Events and contexts.
  std::puts("-- events and contexts");
  {
    mlmd::GetEventsByExecutionIDsRequest req;
    req.add_execution_ids(exec_id);
    mlmd::GetEventsByExecutionIDsResponse resp;
    Must(store->GetEventsByExecutionIDs(Ctx().get(), req, &resp), "GetEventsByExecutionIDs");
    int inputs = 0, outputs = 0;
    for (const auto& ev : resp.events()) {
      if (ev.type() == mlmd::Event::INPUT) ++inputs;
      if (ev.type() == mlmd::Event::OUTPUT && ev.artifact_id() == model_id) ++outputs;
    }
    Ok(inputs == 2 && outputs == 1, "the execution has 2 INPUT events and 1 OUTPUT event to the model");

    mlmd::GetContextsByArtifactRequest creq;
    creq.set_artifact_id(model_id);
    mlmd::GetContextsByArtifactResponse cresp;
    Must(store->GetContextsByArtifact(Ctx().get(), creq, &cresp), "GetContextsByArtifact");
    Ok(cresp.contexts_size() == 1 && cresp.contexts(0).id() == ctx_id && cresp.contexts(0).name() == run,
       "GetContextsByArtifact(model) -> the run context");

    mlmd::GetArtifactsByIDRequest areq;
    areq.add_artifact_ids(model_id);
    mlmd::GetArtifactsByIDResponse aresp;
    Must(store->GetArtifactsByID(Ctx().get(), areq, &aresp), "GetArtifactsByID");
    const auto& props = aresp.artifacts(0).properties();
    auto acc = props.find("accuracy");
    Ok(acc != props.end() && acc->second.value_case() == mlmd::Value::kDoubleValue &&
           acc->second.double_value() == 0.93 && !aresp.artifacts(0).has_state(),
       "model accuracy is a double_value 0.93; state was never set (has_state() false)");
  }

  // 6. Lineage of the model.
  std::puts("-- lineage");
  {
    mlmd::GetLineageSubgraphRequest req;
    auto* opts = req.mutable_lineage_subgraph_query_options();
    opts->mutable_starting_artifacts()->set_filter_query("id = " + std::to_string(model_id));
    opts->set_max_num_hops(2);
    opts->set_direction(mlmd::LineageSubgraphQueryOptions::UPSTREAM);
    mlmd::GetLineageSubgraphResponse resp;
    Must(store->GetLineageSubgraph(Ctx().get(), req, &resp), "GetLineageSubgraph");
    const auto& g = resp.lineage_subgraph();
    Ok(Ids(g.artifacts()) == std::set<int64_t>({train_id, eval_id, model_id}),
       "lineage artifacts are the model and its two inputs");
    Ok(Ids(g.executions()) == std::set<int64_t>({exec_id}) && g.events_size() == 3,
       "lineage has the trainer and 3 events");
  }

  // 7. Error codes.
  std::puts("-- errors");
  {
    mlmd::PutArtifactsRequest req;
    req.add_artifacts()->set_type_id(ds_type);
    req.mutable_artifacts(0)->set_name(run + "-train");
    mlmd::PutArtifactsResponse resp;
    WantCode(store->PutArtifacts(Ctx().get(), req, &resp), grpc::StatusCode::ALREADY_EXISTS,
             "PutArtifacts with a (type, name) that exists");
    mlmd::GetArtifactTypeRequest treq;
    treq.set_type_name("NoSuchType-" + run);
    mlmd::GetArtifactTypeResponse tresp;
    WantCode(store->GetArtifactType(Ctx().get(), treq, &tresp), grpc::StatusCode::NOT_FOUND,
             "GetArtifactType of a missing type");
  }

  std::printf("C++ client: all %d checks passed\n", checks);
  return 0;
}
