"""Fixtures for the namespace (tenancy) tests.

The leak matrix and the forbidden-write checks only read the dataset (a forbidden write
must leave it unchanged), so each test module builds it once per backend: a
module-scoped backend parameter, so pytest runs one backend's tests together.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lineagedb.store.unit_of_work import Database
from tests.tenancy.world import World, populate, world_database


@pytest.fixture(scope="module")
def world(module_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The dataset, shared by a module's tests on one backend."""
    with world_database(module_backend, str(tmp_path_factory.mktemp("tenancy"))) as built:
        yield built


@pytest.fixture
def fresh_world(backend: str, database_url: str, database: Database) -> World:
    """The dataset in a database of its own, for tests that change it."""
    return populate(backend, database_url, database)
