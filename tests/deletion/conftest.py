"""Deletion fixtures: the TFX-shaped runs of the lineage-answer tests and a Deletion service."""

from __future__ import annotations

from typing import Any

import pytest

from lineagedb.service.deletion import Deletion
from lineagedb.store.unit_of_work import Database
from tests.answers.conftest import answers, audit, client, two_runs  # noqa: F401  (fixtures)
from tests.audit.conftest import audited_db, audited_store  # noqa: F401  (fixtures)
from tests.tenancy.conftest import fresh_world  # noqa: F401  (fixture)


@pytest.fixture
def deletion(database: Database, clock: Any) -> Deletion:
    return Deletion(database, clock)
