// Command mlmd-go-client walks one small ML pipeline story against an MLMD-compatible
// server (LineageDB or Google's ML Metadata server) and checks every answer.
//
//	mlmd-go-client HOST:PORT
//
// It exits 0 when every check passed and 1 on the first unexpected answer. All names
// it creates carry a unique run tag, so it can run repeatedly against one database.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pb "lineagedb/mlmdpb"
)

var checks int

// ok records one passed check, or stops the program with exit status 1.
func ok(cond bool, what string, args ...interface{}) {
	msg := fmt.Sprintf(what, args...)
	if !cond {
		fmt.Printf("FAIL %s\n", msg)
		os.Exit(1)
	}
	checks++
	fmt.Printf("ok   %s\n", msg)
}

// must stops the program if an RPC that should succeed failed.
func must(err error, rpc string) {
	if err != nil {
		fmt.Printf("FAIL %s: unexpected error %v\n", rpc, err)
		os.Exit(1)
	}
}

// wantCode checks that an RPC failed with the given gRPC status code.
func wantCode(err error, want codes.Code, what string) {
	got := status.Code(err) // codes.OK for err == nil
	ok(got == want, "%s -> %s (got %s)", what, want, got)
}

func call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

// Property values are a oneof: every case is its own wrapper type.
func intValue(v int64) *pb.Value      { return &pb.Value{Value: &pb.Value_IntValue{IntValue: v}} }
func doubleValue(v float64) *pb.Value { return &pb.Value{Value: &pb.Value_DoubleValue{DoubleValue: v}} }
func stringValue(v string) *pb.Value  { return &pb.Value{Value: &pb.Value_StringValue{StringValue: v}} }

func sortedIDs(ids []int64) []int64 {
	out := append([]int64(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sameIDs(a, b []int64) bool {
	a, b = sortedIDs(a), sortedIDs(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func artifactIDs(arts []*pb.Artifact) []int64 {
	var ids []int64
	for _, a := range arts {
		ids = append(ids, a.GetId())
	}
	return ids
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mlmd-go-client HOST:PORT")
		os.Exit(2)
	}
	addr := os.Args[1]
	dialCtx, cancelDial := context.WithTimeout(context.Background(), 15*time.Second)
	conn, err := grpc.DialContext(dialCtx, addr, grpc.WithInsecure(), grpc.WithBlock())
	cancelDial()
	if err != nil {
		fmt.Printf("FAIL connect %s: %v\n", addr, err)
		os.Exit(1)
	}
	defer conn.Close()
	store := pb.NewMetadataStoreServiceClient(conn)
	run := fmt.Sprintf("go-%d", time.Now().UnixNano())
	fmt.Printf("Go client against %s, run tag %s\n", addr, run)
	ctx, cancel := call()
	defer cancel()

	// 1. Types. proto2 scalars are pointers: proto.String / proto.Bool build them.
	fmt.Println("-- types")
	datasetType := &pb.ArtifactType{
		Name: proto.String("DataSet"),
		Properties: map[string]pb.PropertyType{
			"split": pb.PropertyType_STRING, "num_rows": pb.PropertyType_INT,
		},
	}
	dsResp, err := store.PutArtifactType(ctx, &pb.PutArtifactTypeRequest{
		ArtifactType: datasetType, CanAddFields: proto.Bool(true),
	})
	must(err, "PutArtifactType DataSet")
	dsTypeID := dsResp.GetTypeId()
	ok(dsTypeID > 0, "PutArtifactType DataSet -> type id %d", dsTypeID)
	again, err := store.PutArtifactType(ctx, &pb.PutArtifactTypeRequest{
		ArtifactType: datasetType, CanAddFields: proto.Bool(true),
	})
	must(err, "PutArtifactType DataSet again")
	ok(again.GetTypeId() == dsTypeID, "PutArtifactType is idempotent (same id %d)", again.GetTypeId())
	modelResp, err := store.PutArtifactType(ctx, &pb.PutArtifactTypeRequest{
		ArtifactType: &pb.ArtifactType{
			Name:       proto.String("Model"),
			Properties: map[string]pb.PropertyType{"framework": pb.PropertyType_STRING, "accuracy": pb.PropertyType_DOUBLE},
		},
		CanAddFields: proto.Bool(true),
	})
	must(err, "PutArtifactType Model")
	modelTypeID := modelResp.GetTypeId()
	ok(modelTypeID > 0 && modelTypeID != dsTypeID, "PutArtifactType Model -> type id %d", modelTypeID)
	trainerResp, err := store.PutExecutionType(ctx, &pb.PutExecutionTypeRequest{
		ExecutionType: &pb.ExecutionType{
			Name:       proto.String("Trainer"),
			Properties: map[string]pb.PropertyType{"learning_rate": pb.PropertyType_DOUBLE, "epochs": pb.PropertyType_INT},
		},
		CanAddFields: proto.Bool(true),
	})
	must(err, "PutExecutionType Trainer")
	trainerTypeID := trainerResp.GetTypeId()
	ok(trainerTypeID > 0, "PutExecutionType Trainer -> type id %d", trainerTypeID)
	runTypeResp, err := store.PutContextType(ctx, &pb.PutContextTypeRequest{
		ContextType:  &pb.ContextType{Name: proto.String("PipelineRun"), Properties: map[string]pb.PropertyType{"pipeline": pb.PropertyType_STRING}},
		CanAddFields: proto.Bool(true),
	})
	must(err, "PutContextType PipelineRun")
	runTypeID := runTypeResp.GetTypeId()
	ok(runTypeID > 0, "PutContextType PipelineRun -> type id %d", runTypeID)
	gotType, err := store.GetArtifactType(ctx, &pb.GetArtifactTypeRequest{TypeName: proto.String("DataSet")})
	must(err, "GetArtifactType DataSet")
	ok(gotType.GetArtifactType().GetId() == dsTypeID &&
		gotType.GetArtifactType().GetProperties()["num_rows"] == pb.PropertyType_INT,
		"GetArtifactType DataSet has id %d and num_rows: INT", dsTypeID)

	// 2. Input data sets, with a Struct custom property.
	fmt.Println("-- artifacts")
	source, err := structpb.NewStruct(map[string]interface{}{
		"origin": "synthetic", "seed": 42, "columns": []interface{}{"age", "plan", "churned"},
	})
	must(err, "structpb.NewStruct")
	var datasets []*pb.Artifact
	for i, split := range []string{"train", "eval", "test"} {
		datasets = append(datasets, &pb.Artifact{
			TypeId: proto.Int64(dsTypeID),
			Name:   proto.String(run + "-" + split),
			Uri:    proto.String("file:///data/" + run + "/" + split),
			State:  pb.Artifact_LIVE.Enum(), // enums too are pointers in proto2
			Properties: map[string]*pb.Value{
				"split": stringValue(split), "num_rows": intValue(int64(1000 * (3 - i))),
			},
			CustomProperties: map[string]*pb.Value{
				"source": {Value: &pb.Value_StructValue{StructValue: source}},
			},
		})
	}
	putArts, err := store.PutArtifacts(ctx, &pb.PutArtifactsRequest{Artifacts: datasets})
	must(err, "PutArtifacts")
	dsIDs := putArts.GetArtifactIds()
	ok(len(dsIDs) == 3 && dsIDs[0] > 0, "PutArtifacts created 3 data sets %v", dsIDs)
	trainID, evalID, testID := dsIDs[0], dsIDs[1], dsIDs[2]

	// 3. One training run, atomically: inputs by id (event only, no artifact: an
	// artifact message with an id would be a whole replacement of the stored one),
	// the new model as output, and the pipeline-run context.
	fmt.Println("-- PutExecution")
	step := func(key string, index int64) *pb.Event_Path {
		return &pb.Event_Path{Steps: []*pb.Event_Path_Step{
			{Value: &pb.Event_Path_Step_Key{Key: key}},
			{Value: &pb.Event_Path_Step_Index{Index: index}},
		}}
	}
	putExec, err := store.PutExecution(ctx, &pb.PutExecutionRequest{
		Execution: &pb.Execution{
			TypeId:         proto.Int64(trainerTypeID),
			Name:           proto.String(run + "-trainer"),
			LastKnownState: pb.Execution_COMPLETE.Enum(),
			Properties:     map[string]*pb.Value{"learning_rate": doubleValue(0.01), "epochs": intValue(10)},
		},
		ArtifactEventPairs: []*pb.PutExecutionRequest_ArtifactAndEvent{
			{Event: &pb.Event{ArtifactId: proto.Int64(trainID), Type: pb.Event_INPUT.Enum(), Path: step("examples", 0)}},
			{Event: &pb.Event{ArtifactId: proto.Int64(evalID), Type: pb.Event_INPUT.Enum(), Path: step("examples", 1)}},
			{
				Artifact: &pb.Artifact{
					TypeId:     proto.Int64(modelTypeID),
					Name:       proto.String(run + "-model"),
					Uri:        proto.String("file:///models/" + run),
					State:      pb.Artifact_LIVE.Enum(),
					Properties: map[string]*pb.Value{"framework": stringValue("sklearn"), "accuracy": doubleValue(0.93)},
				},
				Event: &pb.Event{Type: pb.Event_OUTPUT.Enum(), Path: step("model", 0)},
			},
		},
		Contexts: []*pb.Context{{
			TypeId:     proto.Int64(runTypeID),
			Name:       proto.String(run),
			Properties: map[string]*pb.Value{"pipeline": stringValue("churn")},
		}},
		Options: &pb.PutExecutionRequest_Options{ReuseContextIfAlreadyExist: proto.Bool(true)},
	})
	must(err, "PutExecution")
	execID := putExec.GetExecutionId()
	ok(execID > 0, "PutExecution -> execution id %d", execID)
	ids := putExec.GetArtifactIds()
	ok(len(ids) == 3 && ids[0] == trainID && ids[1] == evalID && ids[2] > testID,
		"PutExecution artifact_ids aligned with the pairs %v", ids)
	modelID := ids[2]
	ok(len(putExec.GetContextIds()) == 1 && putExec.GetContextIds()[0] > 0,
		"PutExecution created the pipeline-run context %v", putExec.GetContextIds())
	runCtxID := putExec.GetContextIds()[0]

	// 4. Queries: filter_query and paging.
	fmt.Println("-- filter_query and paging")
	filter := fmt.Sprintf("type = 'DataSet' AND name LIKE '%s-%%'", run)
	var paged []int64
	token := ""
	pages := 0
	for {
		opts := &pb.ListOperationOptions{
			MaxResultSize: proto.Int32(2),
			FilterQuery:   proto.String(filter),
			OrderByField: &pb.ListOperationOptions_OrderByField{
				Field: pb.ListOperationOptions_OrderByField_ID.Enum(), IsAsc: proto.Bool(true),
			},
		}
		if token != "" {
			opts.NextPageToken = proto.String(token)
		}
		resp, err := store.GetArtifacts(ctx, &pb.GetArtifactsRequest{Options: opts})
		must(err, "GetArtifacts "+filter)
		pages++
		paged = append(paged, artifactIDs(resp.GetArtifacts())...)
		token = resp.GetNextPageToken()
		if token == "" || pages > 5 {
			break
		}
	}
	ok(pages == 2, "GetArtifacts %q, 2 per page -> %d pages", filter, pages)
	ok(len(paged) == 3 && paged[0] == trainID && paged[1] == evalID && paged[2] == testID,
		"paged results in id order %v", paged)
	filter2 := fmt.Sprintf("contexts_run.name = '%s' AND properties.accuracy.double_value > 0.9", run)
	models, err := store.GetArtifacts(ctx, &pb.GetArtifactsRequest{
		Options: &pb.ListOperationOptions{FilterQuery: proto.String(filter2)},
	})
	must(err, "GetArtifacts "+filter2)
	ok(sameIDs(artifactIDs(models.GetArtifacts()), []int64{modelID}), "GetArtifacts %q -> the model only", filter2)
	execs, err := store.GetExecutions(ctx, &pb.GetExecutionsRequest{Options: &pb.ListOperationOptions{
		FilterQuery: proto.String(fmt.Sprintf("last_known_state = COMPLETE AND contexts_r.name = '%s'", run)),
	}})
	must(err, "GetExecutions filter")
	ok(len(execs.GetExecutions()) == 1 && execs.GetExecutions()[0].GetId() == execID,
		"GetExecutions last_known_state = COMPLETE in this run -> the trainer")

	// 5. Reading nodes back: presence, defaults, oneofs, Struct.
	fmt.Println("-- reads")
	byID, err := store.GetArtifactsByID(ctx, &pb.GetArtifactsByIDRequest{
		ArtifactIds: []int64{modelID, trainID}, PopulateArtifactTypes: proto.Bool(true),
	})
	must(err, "GetArtifactsByID")
	ok(len(byID.GetArtifacts()) == 2 && byID.GetArtifacts()[0].GetId() == trainID,
		"GetArtifactsByID returns id order")
	model := byID.GetArtifacts()[1]
	acc, isDouble := model.GetProperties()["accuracy"].GetValue().(*pb.Value_DoubleValue)
	ok(isDouble && acc.DoubleValue == 0.93, "model property accuracy is a double_value 0.93")
	ok(model.GetType() == "Model" && model.GetCreateTimeSinceEpoch() > 0, "model has type name %q and a create time", model.GetType())
	ok(len(byID.GetArtifactTypes()) == 2, "populate_artifact_types returned %d types", len(byID.GetArtifactTypes()))
	src := byID.GetArtifacts()[0].GetCustomProperties()["source"].GetStructValue()
	ok(src != nil && src.GetFields()["origin"].GetStringValue() == "synthetic" &&
		src.GetFields()["seed"].GetNumberValue() == 42 && len(src.GetFields()["columns"].GetListValue().GetValues()) == 3,
		"Struct custom property round-trips (seed comes back as number_value 42)")
	byName, err := store.GetArtifactByTypeAndName(ctx, &pb.GetArtifactByTypeAndNameRequest{
		TypeName: proto.String("DataSet"), ArtifactName: proto.String(run + "-test"),
	})
	must(err, "GetArtifactByTypeAndName")
	ok(byName.GetArtifact().GetId() == testID, "GetArtifactByTypeAndName finds the test split")
	missing, err := store.GetArtifactByTypeAndName(ctx, &pb.GetArtifactByTypeAndNameRequest{
		TypeName: proto.String("DataSet"), ArtifactName: proto.String(run + "-nope"),
	})
	must(err, "GetArtifactByTypeAndName missing")
	ok(missing.Artifact == nil, "GetArtifactByTypeAndName of a missing name -> OK with no artifact")

	// 6. Events.
	fmt.Println("-- events")
	evs, err := store.GetEventsByExecutionIDs(ctx, &pb.GetEventsByExecutionIDsRequest{ExecutionIds: []int64{execID}})
	must(err, "GetEventsByExecutionIDs")
	kinds := map[int64]pb.Event_Type{}
	for _, e := range evs.GetEvents() {
		kinds[e.GetArtifactId()] = e.GetType()
		ok(e.GetExecutionId() == execID && e.GetMillisecondsSinceEpoch() > 0,
			"event artifact %d -> execution %d is %s at %d ms", e.GetArtifactId(), e.GetExecutionId(), e.GetType(), e.GetMillisecondsSinceEpoch())
	}
	ok(len(evs.GetEvents()) == 3 && kinds[trainID] == pb.Event_INPUT && kinds[evalID] == pb.Event_INPUT &&
		kinds[modelID] == pb.Event_OUTPUT, "the execution has 2 INPUT events and 1 OUTPUT event")
	modelEvents, err := store.GetEventsByArtifactIDs(ctx, &pb.GetEventsByArtifactIDsRequest{ArtifactIds: []int64{modelID}})
	must(err, "GetEventsByArtifactIDs")
	ok(len(modelEvents.GetEvents()) == 1, "the model has one event")
	steps := modelEvents.GetEvents()[0].GetPath().GetSteps()
	ok(len(steps) == 2 && steps[0].GetKey() == "model" && steps[1].GetIndex() == 0,
		"the OUTPUT event path is [key model, index 0]")

	// 7. Contexts.
	fmt.Println("-- contexts")
	ctxByExec, err := store.GetContextsByExecution(ctx, &pb.GetContextsByExecutionRequest{ExecutionId: proto.Int64(execID)})
	must(err, "GetContextsByExecution")
	ok(len(ctxByExec.GetContexts()) == 1 && ctxByExec.GetContexts()[0].GetId() == runCtxID &&
		ctxByExec.GetContexts()[0].GetName() == run, "GetContextsByExecution -> the run context %q", run)
	ctxByArt, err := store.GetContextsByArtifact(ctx, &pb.GetContextsByArtifactRequest{ArtifactId: proto.Int64(modelID)})
	must(err, "GetContextsByArtifact")
	ok(len(ctxByArt.GetContexts()) == 1 && ctxByArt.GetContexts()[0].GetId() == runCtxID,
		"GetContextsByArtifact(model) -> the run context")
	_, err = store.GetContextsByArtifact(ctx, &pb.GetContextsByArtifactRequest{ArtifactId: proto.Int64(testID)})
	wantCode(err, codes.NotFound, "GetContextsByArtifact(unused test split)")
	inRun, err := store.GetArtifactsByContext(ctx, &pb.GetArtifactsByContextRequest{ContextId: proto.Int64(runCtxID)})
	must(err, "GetArtifactsByContext")
	ok(sameIDs(artifactIDs(inRun.GetArtifacts()), []int64{trainID, evalID, modelID}),
		"GetArtifactsByContext -> train, eval and model")
	execsInRun, err := store.GetExecutionsByContext(ctx, &pb.GetExecutionsByContextRequest{ContextId: proto.Int64(runCtxID)})
	must(err, "GetExecutionsByContext")
	ok(len(execsInRun.GetExecutions()) == 1 && execsInRun.GetExecutions()[0].GetId() == execID,
		"GetExecutionsByContext -> the trainer")

	// 8. Lineage of the model: two hops upstream.
	fmt.Println("-- lineage")
	lin, err := store.GetLineageSubgraph(ctx, &pb.GetLineageSubgraphRequest{
		LineageSubgraphQueryOptions: &pb.LineageSubgraphQueryOptions{
			StartingNodes: &pb.LineageSubgraphQueryOptions_StartingArtifacts{
				StartingArtifacts: &pb.LineageSubgraphQueryOptions_StartingNodes{
					FilterQuery: proto.String(fmt.Sprintf("id = %d", modelID)),
				},
			},
			MaxNumHops: proto.Int64(2),
			Direction:  pb.LineageSubgraphQueryOptions_UPSTREAM.Enum(),
		},
	})
	must(err, "GetLineageSubgraph")
	g := lin.GetLineageSubgraph()
	ok(sameIDs(artifactIDs(g.GetArtifacts()), []int64{modelID, trainID, evalID}),
		"lineage artifacts are the model and its two inputs (not the test split)")
	ok(len(g.GetExecutions()) == 1 && g.GetExecutions()[0].GetId() == execID, "lineage execution is the trainer")
	ok(len(g.GetEvents()) == 3, "lineage has the 3 events")
	ok(len(g.GetContexts()) == 1 && g.GetContexts()[0].GetId() == runCtxID, "lineage context is the run")
	var typeNames []string
	for _, t := range g.GetArtifactTypes() {
		typeNames = append(typeNames, t.GetName())
	}
	joined := "," + strings.Join(typeNames, ",") + ","
	ok(strings.Contains(joined, ",DataSet,") && strings.Contains(joined, ",Model,"),
		"lineage artifact_types include DataSet and Model")

	// 9. Error codes.
	fmt.Println("-- errors")
	_, err = store.PutArtifacts(ctx, &pb.PutArtifactsRequest{Artifacts: []*pb.Artifact{{
		TypeId: proto.Int64(dsTypeID), Name: proto.String(run + "-train"),
	}}})
	wantCode(err, codes.AlreadyExists, "PutArtifacts with a (type, name) that exists")
	_, err = store.GetArtifactType(ctx, &pb.GetArtifactTypeRequest{TypeName: proto.String("NoSuchType-" + run)})
	wantCode(err, codes.NotFound, "GetArtifactType of a missing type")
	_, err = store.PutArtifacts(ctx, &pb.PutArtifactsRequest{Artifacts: []*pb.Artifact{{
		TypeId: proto.Int64(1 << 40), Name: proto.String(run + "-orphan"),
	}}})
	wantCode(err, codes.NotFound, "PutArtifacts with a type id that does not exist")

	fmt.Printf("Go client: all %d checks passed\n", checks)
}
