from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc


def test_round_trip_every_value_kind(store):
    t = mlmd.ArtifactType(name="T")
    t.properties["i"] = mlmd.INT
    tid = store.put_artifact_type(svc.PutArtifactTypeRequest(artifact_type=t)).type_id
    assert tid == 10
    a = mlmd.Artifact(type_id=tid, uri="u", name="n", external_id="x", state=mlmd.Artifact.LIVE)
    a.properties["i"].int_value = 2**40
    a.custom_properties["d"].double_value = 0.123456789
    a.custom_properties["s"].string_value = "hello"
    a.custom_properties["st"].struct_value.update({"k": [1, "x", None, True]})
    a.custom_properties["p"].proto_value.Pack(mlmd.Artifact(id=5))
    a.custom_properties["b"].bool_value = False
    ids = store.put_artifacts(svc.PutArtifactsRequest(artifacts=[a, mlmd.Artifact(type_id=tid)])).artifact_ids
    assert list(ids) == [1, 2]
    got = store.get_artifacts_by_id(svc.GetArtifactsByIDRequest(artifact_ids=[2, 1])).artifacts
    assert [x.id for x in got] == [1, 2]
    first = got[0]
    assert first.properties["i"].int_value == 2**40
    assert first.custom_properties["d"].double_value == 0.123457
    assert first.custom_properties["st"] == a.custom_properties["st"]
    assert first.custom_properties["p"] == a.custom_properties["p"]
    assert first.custom_properties["b"].HasField("bool_value") and not first.custom_properties["b"].bool_value
    assert first.type == "T" and first.uri == "u" and first.state == mlmd.Artifact.LIVE
    assert got[1].uri == "" and not got[1].HasField("name")
