#!/usr/bin/env node
// Walks one small ML pipeline story against an MLMD-compatible server (LineageDB or
// Google's ML Metadata server) and checks every answer.
//
//   node client.js HOST:PORT
//
// Exits 0 when every check passed and 1 on the first unexpected answer. Names carry a
// unique run tag, so it can run repeatedly against one database.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');

// Loader options, chosen deliberately (see README.md):
//   keepCase: true  -> field names exactly as in the .proto (snake_case), like every
//                      other MLMD client and the filter_query language.
//   longs: String   -> int64 values (ids, times, int_value) arrive as decimal strings,
//                      never rounded. Requests accept numbers or strings.
//   enums: String   -> enums arrive as names ('LIVE'); requests accept names or numbers.
//   defaults: false -> unset proto2 fields are absent from decoded objects, so
//                      presence stays visible (e.g. GetArtifactByTypeAndName's artifact).
//   arrays/objects  -> empty repeated fields and maps still appear as [] and {}.
//   oneofs: true    -> a virtual property names the oneof case that is set
//                      (value.value === 'double_value').
const packageDefinition = protoLoader.loadSync('ml_metadata/proto/metadata_store_service.proto', {
  includeDirs: [PROTOS],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: true,
});
const mlmd = grpc.loadPackageDefinition(packageDefinition).ml_metadata;

let checks = 0;

class CheckFailed extends Error {}

function ok(cond, what) {
  if (!cond) throw new CheckFailed(what);
  checks += 1;
  console.log(`ok   ${what}`);
}

// int64 arrives as a string: compare and sort as BigInt, never as strings
// ('10' < '9') and never through Number for values that may exceed 2^53.
const big = (v) => BigInt(v);
const sortIds = (ids) => ids.map(big).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
const sameIds = (a, b) => JSON.stringify(sortIds(a).map(String)) === JSON.stringify(sortIds(b).map(String));
const ids = (nodes) => nodes.map((n) => n.id);

function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node client.js HOST:PORT');
    process.exit(2);
  }
  const address = process.argv[2];
  const client = new mlmd.MetadataStoreService(address, grpc.credentials.createInsecure());

  // Promise wrapper around the callback API, with a deadline per call.
  const call = (method, request) =>
    new Promise((resolve, reject) => {
      client[method](request, { deadline: Date.now() + 15000 }, (err, response) =>
        err ? reject(Object.assign(err, { rpc: method })) : resolve(response),
      );
    });
  const callFails = async (method, request) => {
    try {
      await call(method, request);
      return grpc.status.OK;
    } catch (err) {
      if (err.code === undefined) throw err;
      return err.code;
    }
  };
  const codeName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code);
  const wantCode = (got, want, what) =>
    ok(got === want, `${what} -> ${codeName(want)} (got ${codeName(got)})`);

  const run = `node-${Date.now()}-${process.pid}`;
  console.log(`Node client against ${address}, run tag ${run}`);

  return (async () => {
    // 1. Types. Enum values may be given by name.
    console.log('-- types');
    const datasetType = { name: 'DataSet', properties: { split: 'STRING', num_rows: 'INT' } };
    const ds = await call('PutArtifactType', { artifact_type: datasetType, can_add_fields: true });
    const dsTypeId = ds.type_id;
    ok(typeof dsTypeId === 'string' && big(dsTypeId) > 0n, `PutArtifactType DataSet -> type id ${dsTypeId} (a string: longs: String)`);
    const again = await call('PutArtifactType', { artifact_type: datasetType, can_add_fields: true });
    ok(again.type_id === dsTypeId, `PutArtifactType is idempotent (same id ${again.type_id})`);
    const modelTypeId = (await call('PutArtifactType', {
      artifact_type: { name: 'Model', properties: { framework: 'STRING', accuracy: 'DOUBLE' } },
      can_add_fields: true,
    })).type_id;
    ok(big(modelTypeId) > 0n && modelTypeId !== dsTypeId, `PutArtifactType Model -> type id ${modelTypeId}`);
    const trainerTypeId = (await call('PutExecutionType', {
      execution_type: { name: 'Trainer', properties: { learning_rate: 'DOUBLE', epochs: 'INT' } },
      can_add_fields: true,
    })).type_id;
    ok(big(trainerTypeId) > 0n, `PutExecutionType Trainer -> type id ${trainerTypeId}`);
    const runTypeId = (await call('PutContextType', {
      context_type: { name: 'PipelineRun', properties: { pipeline: 'STRING' } },
      can_add_fields: true,
    })).type_id;
    ok(big(runTypeId) > 0n, `PutContextType PipelineRun -> type id ${runTypeId}`);
    const got = await call('GetArtifactType', { type_name: 'DataSet' });
    ok(got.artifact_type.id === dsTypeId && got.artifact_type.properties.num_rows === 'INT',
      `GetArtifactType DataSet has id ${dsTypeId} and num_rows: 'INT' (enum as name)`);

    // 2. Input data sets. A google.protobuf.Struct is NOT a plain JS object here: it is
    // the message form { fields: { key: Value } }. And its field names are camelCase
    // (stringValue, numberValue, listValue, structValue, boolValue, nullValue) even with
    // keepCase: true, because proto-loader takes google/protobuf/*.proto from protobufjs'
    // built-in definitions, which are written in camelCase. Snake-case keys such as
    // string_value are silently dropped and the server stores empty Values.
    console.log('-- artifacts');
    const source = {
      fields: {
        origin: { stringValue: 'synthetic' },
        seed: { numberValue: 42 },
        columns: { listValue: { values: [{ stringValue: 'age' }, { stringValue: 'plan' }, { stringValue: 'churned' }] } },
      },
    };
    const splits = ['train', 'eval', 'test'];
    const put = await call('PutArtifacts', {
      artifacts: splits.map((split, i) => ({
        type_id: dsTypeId,
        name: `${run}-${split}`,
        uri: `file:///data/${run}/${split}`,
        state: 'LIVE',
        // A Value is a oneof: set exactly one of its fields.
        properties: { split: { string_value: split }, num_rows: { int_value: 1000 * (3 - i) } },
        custom_properties: { source: { struct_value: source } },
      })),
    });
    ok(put.artifact_ids.length === 3, `PutArtifacts created 3 data sets [${put.artifact_ids}]`);
    const [trainId, evalId, testId] = put.artifact_ids;

    // 3. One training run. Inputs are referenced by the event's artifact_id only: an
    // artifact with an id in PutExecution is a whole replacement of the stored one.
    console.log('-- PutExecution');
    const pathOf = (key, index) => ({ steps: [{ key }, { index }] });
    const pe = await call('PutExecution', {
      execution: {
        type_id: trainerTypeId,
        name: `${run}-trainer`,
        last_known_state: 'COMPLETE',
        properties: { learning_rate: { double_value: 0.01 }, epochs: { int_value: '10' } },
      },
      artifact_event_pairs: [
        { event: { artifact_id: trainId, type: 'INPUT', path: pathOf('examples', 0) } },
        { event: { artifact_id: evalId, type: 'INPUT', path: pathOf('examples', 1) } },
        {
          artifact: {
            type_id: modelTypeId,
            name: `${run}-model`,
            uri: `file:///models/${run}`,
            state: 'LIVE',
            properties: { framework: { string_value: 'sklearn' }, accuracy: { double_value: 0.93 } },
          },
          event: { type: 'OUTPUT', path: pathOf('model', 0) },
        },
      ],
      contexts: [{ type_id: runTypeId, name: run, properties: { pipeline: { string_value: 'churn' } } }],
      options: { reuse_context_if_already_exist: true },
    });
    const execId = pe.execution_id;
    ok(big(execId) > 0n, `PutExecution -> execution id ${execId}`);
    ok(pe.artifact_ids.length === 3 && pe.artifact_ids[0] === trainId && pe.artifact_ids[1] === evalId &&
      big(pe.artifact_ids[2]) > big(testId), `PutExecution artifact_ids aligned with the pairs [${pe.artifact_ids}]`);
    const modelId = pe.artifact_ids[2];
    ok(pe.context_ids.length === 1, `PutExecution created the pipeline-run context [${pe.context_ids}]`);
    const runCtxId = pe.context_ids[0];

    // 4. filter_query and paging.
    console.log('-- filter_query and paging');
    const filter = `type = 'DataSet' AND name LIKE '${run}-%'`;
    const paged = [];
    let token;
    let pages = 0;
    do {
      const options = { max_result_size: 2, filter_query: filter, order_by_field: { field: 'ID', is_asc: true } };
      if (token) options.next_page_token = token;
      const page = await call('GetArtifacts', { options });
      pages += 1;
      paged.push(...ids(page.artifacts));
      token = page.next_page_token; // absent on the last page (defaults: false)
    } while (token && pages < 5);
    ok(pages === 2, `GetArtifacts "${filter}", 2 per page -> ${pages} pages`);
    ok(JSON.stringify(paged) === JSON.stringify([trainId, evalId, testId]), `paged results in id order [${paged}]`);
    const filter2 = `contexts_run.name = '${run}' AND properties.accuracy.double_value > 0.9`;
    const models = await call('GetArtifacts', { options: { filter_query: filter2 } });
    ok(sameIds(ids(models.artifacts), [modelId]), `GetArtifacts "${filter2}" -> the model only`);
    const execs = await call('GetExecutions', {
      options: { filter_query: `last_known_state = COMPLETE AND contexts_r.name = '${run}'` },
    });
    ok(execs.executions.length === 1 && execs.executions[0].id === execId,
      'GetExecutions last_known_state = COMPLETE in this run -> the trainer');

    // 5. Reading back: oneof cases, presence, Struct.
    console.log('-- reads');
    const byId = await call('GetArtifactsByID', { artifact_ids: [modelId, trainId], populate_artifact_types: true });
    ok(byId.artifacts.length === 2 && byId.artifacts[0].id === trainId, 'GetArtifactsByID returns id order');
    const model = byId.artifacts[1];
    const acc = model.properties.accuracy;
    ok(acc.value === 'double_value' && acc.double_value === 0.93, "model accuracy: oneof case 'double_value', 0.93");
    const epochsProbe = await call('GetExecutionsByID', { execution_ids: [execId] });
    const epochs = epochsProbe.executions[0].properties.epochs;
    ok(epochs.value === 'int_value' && epochs.int_value === '10', "execution epochs: int_value arrives as the string '10'");
    ok(model.type === 'Model' && big(model.create_time_since_epoch) > 0n, `model has type name '${model.type}' and a create time`);
    ok(byId.artifact_types.length === 2, `populate_artifact_types returned ${byId.artifact_types.length} types`);
    const src = byId.artifacts[0].custom_properties.source.struct_value;
    ok(src.fields.origin.stringValue === 'synthetic' && src.fields.origin.kind === 'stringValue' &&
      src.fields.seed.numberValue === 42 && src.fields.columns.listValue.values.length === 3,
      'Struct custom property round-trips (camelCase Value fields; oneof case in .kind)');
    const byName = await call('GetArtifactByTypeAndName', { type_name: 'DataSet', artifact_name: `${run}-test` });
    ok(byName.artifact && byName.artifact.id === testId, 'GetArtifactByTypeAndName finds the test split');
    const missing = await call('GetArtifactByTypeAndName', { type_name: 'DataSet', artifact_name: `${run}-nope` });
    ok(!('artifact' in missing) || missing.artifact == null, 'GetArtifactByTypeAndName of a missing name -> OK with no artifact');

    // 6. Events.
    console.log('-- events');
    const evs = (await call('GetEventsByExecutionIDs', { execution_ids: [execId] })).events;
    const kinds = {};
    for (const e of evs) {
      kinds[e.artifact_id] = e.type;
      ok(e.execution_id === execId && big(e.milliseconds_since_epoch) > 0n,
        `event artifact ${e.artifact_id} -> execution ${e.execution_id} is ${e.type} at ${e.milliseconds_since_epoch} ms`);
    }
    ok(evs.length === 3 && kinds[trainId] === 'INPUT' && kinds[evalId] === 'INPUT' && kinds[modelId] === 'OUTPUT',
      'the execution has 2 INPUT events and 1 OUTPUT event');
    const modelEvents = (await call('GetEventsByArtifactIDs', { artifact_ids: [modelId] })).events;
    ok(modelEvents.length === 1, 'the model has one event');
    const steps = modelEvents[0].path.steps;
    ok(steps.length === 2 && steps[0].value === 'key' && steps[0].key === 'model' && steps[1].index === '0',
      "the OUTPUT event path is [key 'model', index '0']");

    // 7. Contexts.
    console.log('-- contexts');
    const byExec = (await call('GetContextsByExecution', { execution_id: execId })).contexts;
    ok(byExec.length === 1 && byExec[0].id === runCtxId && byExec[0].name === run,
      `GetContextsByExecution -> the run context '${run}'`);
    const byArt = (await call('GetContextsByArtifact', { artifact_id: modelId })).contexts;
    ok(byArt.length === 1 && byArt[0].id === runCtxId, 'GetContextsByArtifact(model) -> the run context');
    wantCode(await callFails('GetContextsByArtifact', { artifact_id: testId }), grpc.status.NOT_FOUND,
      'GetContextsByArtifact(unused test split)');
    const inRun = (await call('GetArtifactsByContext', { context_id: runCtxId })).artifacts;
    ok(sameIds(ids(inRun), [trainId, evalId, modelId]), 'GetArtifactsByContext -> train, eval and model');
    const execsInRun = (await call('GetExecutionsByContext', { context_id: runCtxId })).executions;
    ok(execsInRun.length === 1 && execsInRun[0].id === execId, 'GetExecutionsByContext -> the trainer');

    // 8. Lineage of the model, two hops upstream. starting_artifacts is a oneof case.
    console.log('-- lineage');
    const lin = await call('GetLineageSubgraph', {
      lineage_subgraph_query_options: {
        starting_artifacts: { filter_query: `id = ${modelId}` },
        max_num_hops: 2,
        direction: 'UPSTREAM',
      },
    });
    const g = lin.lineage_subgraph;
    ok(sameIds(ids(g.artifacts), [modelId, trainId, evalId]), 'lineage artifacts are the model and its two inputs (not the test split)');
    ok(g.executions.length === 1 && g.executions[0].id === execId, 'lineage execution is the trainer');
    ok(g.events.length === 3, 'lineage has the 3 events');
    ok(g.contexts.length === 1 && g.contexts[0].id === runCtxId, 'lineage context is the run');
    const typeNames = g.artifact_types.map((t) => t.name);
    ok(typeNames.includes('DataSet') && typeNames.includes('Model'), 'lineage artifact_types include DataSet and Model');

    // 9. Error codes.
    console.log('-- errors');
    wantCode(await callFails('PutArtifacts', { artifacts: [{ type_id: dsTypeId, name: `${run}-train` }] }),
      grpc.status.ALREADY_EXISTS, 'PutArtifacts with a (type, name) that exists');
    wantCode(await callFails('GetArtifactType', { type_name: `NoSuchType-${run}` }), grpc.status.NOT_FOUND,
      'GetArtifactType of a missing type');
    wantCode(await callFails('PutArtifacts', { artifacts: [{ type_id: String(2 ** 40), name: `${run}-orphan` }] }),
      grpc.status.NOT_FOUND, 'PutArtifacts with a type id that does not exist');

    console.log(`Node client: all ${checks} checks passed`);
  })().finally(() => client.close());
}

main().then(
  () => process.exit(0),
  (err) => {
    if (err instanceof CheckFailed) console.log(`FAIL ${err.message}`);
    else if (err.rpc) console.log(`FAIL ${err.rpc}: unexpected error ${codeNameOf(err.code)}: ${err.details}`);
    else console.log(`FAIL ${err.stack || err}`);
    process.exit(1);
  },
);

function codeNameOf(code) {
  return Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);
}
