"""Settings: one frozen object built from command-line flags, then LINEAGEDB_* variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8080
DEFAULT_SQLITE_FILE = "lineagedb.sqlite"
# KFP raised MLMD's 4 MiB inbound limit to 100 MiB for large lineage writes.
DEFAULT_MAX_MESSAGE_BYTES = 100 * 1024 * 1024


def default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    database_url: str = field(default_factory=default_database_url)
    worker_threads: int = 16
    pool_size: int = 8
    pool_max_overflow: int = 4
    enable_database_upgrade: bool = False
    max_receive_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_send_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    shutdown_grace_s: float = 10.0
    log_level: str = "INFO"


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"LINEAGEDB_{name}", default)
