"""lineagedb.client against a real server: the MLMD API, errors, close and the context manager.

On SQLite only: what the backend changes is the server's business (tests/service, tests/compat),
and the embedded tests run the client's own database path on every backend. Cost: about 3 s."""

from __future__ import annotations

import pytest

from lineagedb.client import MetadataStore, errors, proto
from tests.conftest import LiveServer
from tests.pyclient.workload import exercise


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_workload_over_grpc(live_server: LiveServer) -> None:
    with MetadataStore(live_server.address) as store:
        exercise(store)
    with pytest.raises(ValueError, match="closed"):
        store.get_artifact_types()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_client_config_as_mlmd_spells_it(live_server: LiveServer) -> None:
    host, port = live_server.address.rsplit(":", 1)
    config = proto.MetadataStoreClientConfig(host=host, port=int(port))
    store = MetadataStore(config)
    try:
        assert store.get_artifact_types() == []
        assert store._max_num_retries == 5
    finally:
        store.close()
        store.close()  # idempotent
    with pytest.raises(ValueError, match="Upgrade migration"):
        MetadataStore(config, enable_upgrade_migration=True)


def test_unreachable_server_is_unavailable() -> None:
    store = MetadataStore("127.0.0.1:1", max_retries=2)
    with pytest.raises(errors.UnavailableError):
        store.put_artifact_type(proto.ArtifactType(name="T"))
    store.close()
