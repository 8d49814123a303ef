"""`lineagedb retention plan|apply`: the policy file, the plan file, progress output.

A policy is TOML:

    [[rule]]
    name = "old runs"
    contexts = "type = 'pipeline_run'"   # an MLMD filter_query over contexts
    older_than_days = 90

    [protect]
    live_artifact_types = ["PushedModel", "Model"]   # LIVE artifacts of these types
    in_contexts = ["production"]                      # artifacts in contexts with these names
    with_properties = ["deployed", "alias"]           # artifacts carrying any of these properties
    artifacts = ["uri LIKE 's3://keep/%'"]            # any other filter_query over artifacts

`plan` writes the plan (JSON, with its id) and prints counts per type and a sample;
`apply --plan FILE` carries out exactly that plan, in batches, printing progress; run
again after a crash, it finishes the plan.

`apply --archive DIR` first writes everything the plan deletes to
DIR/retention-<plan id>.lineagedb.gz (store.archive_selection), synced to disk, and
deletes nothing unless that succeeded; `lineagedb import` puts it back. Applied again
after a crash, it keeps the complete archive of that plan it finds there (the nodes
deleted since are in it) rather than write a smaller one.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import sys
import threading
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa

from lineagedb import errors
from lineagedb.config import default_database_url
from lineagedb.ops.archive import archive_selection
from lineagedb.ops.database import parse_url
from lineagedb.service.answers.closure import ARTIFACT, CONTEXT, EXECUTION, Node
from lineagedb.service.deletion import Deletion
from lineagedb.service.retention import SAMPLE, Policy, Retention, Rule, read_plan
from lineagedb.store import archive
from lineagedb.store.archive_selection import Selection
from lineagedb.store.bootstrap import inspect_schema, upgrade_command
from lineagedb.store.engine import create_engine
from lineagedb.store.repositories.nodes import NodeKind
from lineagedb.store.unit_of_work import Database

log = logging.getLogger(__name__)


def _quoted(text: str) -> str:
    """A filter_query string literal (MLMD's grammar: single quotes, doubled inside)."""
    return "'" + text.replace("'", "''") + "'"


def load_policy(path: str) -> tuple[Policy, dict[str, Any]]:
    """The policy and a description of it (its file's SHA-256 and rules) for the plan."""
    try:
        raw = Path(path).read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise errors.InvalidArgumentError(f"cannot read the retention policy {path}: {error}") from None
    unknown = sorted(set(data) - {"rule", "protect"})
    if unknown:
        raise errors.InvalidArgumentError(f"{path}: unknown sections {unknown}; known: rule, protect")
    rules = []
    for index, rule in enumerate(data.get("rule", []), start=1):
        if not isinstance(rule, dict) or set(rule) - {"name", "contexts", "older_than_days"}:
            raise errors.InvalidArgumentError(f"{path}: rule {index} takes name, contexts and older_than_days")
        contexts, days = rule.get("contexts"), rule.get("older_than_days")
        if not isinstance(contexts, str) or not contexts.strip():
            raise errors.InvalidArgumentError(f"{path}: rule {index} needs contexts, a filter_query over contexts")
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            raise errors.InvalidArgumentError(f"{path}: rule {index} needs older_than_days, a number >= 0")
        rules.append(Rule(str(rule.get("name", f"rule {index}")), contexts, float(days)))
    if not rules:
        raise errors.InvalidArgumentError(f"{path}: a policy needs at least one [[rule]]")
    protect = data.get("protect", {})
    known = {"live_artifact_types", "in_contexts", "with_properties", "artifacts"}
    if not isinstance(protect, dict) or set(protect) - known:
        raise errors.InvalidArgumentError(f"{path}: [protect] takes {', '.join(sorted(known))}")
    for key, value in protect.items():
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise errors.InvalidArgumentError(f"{path}: protect.{key} must be a list of strings")
    filters = [f"type = {_quoted(t)} AND state = LIVE" for t in protect.get("live_artifact_types", [])]
    filters += [f"contexts_c.name = {_quoted(name)}" for name in protect.get("in_contexts", [])]
    for name in protect.get("with_properties", []):
        # A property is "carried" whatever its value type. One filter per map and column:
        # a condition on a property a node lacks fails its whole filter (MLMD's joins), so
        # the alternatives cannot be OR-ed into one.
        filters += [
            f"{field}.{_property(name)}.{column} IS NOT NULL"
            for field in ("properties", "custom_properties")
            for column in ("int_value", "double_value", "string_value", "bool_value")
        ]
    filters += list(protect.get("artifacts", []))
    description = {
        "policy_sha256": hashlib.sha256(raw).hexdigest(),
        "rules": [{"name": r.name, "contexts": r.contexts, "older_than_days": r.older_than_days} for r in rules],
        "protect": filters,
    }
    return Policy(tuple(rules), tuple(filters)), description


def _property(name: str) -> str:
    # Property names with characters outside identifiers are back-quoted in MLMD's grammar.
    return name if name.replace("_", "a").isalnum() else "`" + name.replace("`", "") + "`"


def add_parser(sub: Any) -> None:
    retention = sub.add_parser("retention", help="delete old runs by policy, never what protected artifacts need")
    commands = retention.add_subparsers(dest="retention_command", required=True)
    plan = commands.add_parser("plan", help="what a policy would delete: counts per type, a sample, a plan file")
    plan.add_argument("--policy", required=True, help="the policy TOML file")
    plan.add_argument("--output", required=True, help="where to write the plan (JSON)")
    apply = commands.add_parser("apply", help="carry out a plan made by `plan` (resumable)")
    apply.add_argument("--plan", required=True, help="the plan file")
    apply.add_argument(
        "--archive", default=None, metavar="DIR", help="first write what the plan deletes to an archive in DIR"
    )
    for command in (plan, apply):
        command.add_argument("--database", default=None, help="SQLAlchemy URL (default: the embedded SQLite file)")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    engine = create_engine(parse_url(args.database or default_database_url()))
    with engine.connect() as connection:
        connection.info["lineagedb_write"] = False
        state = inspect_schema(connection)
    if state.missing_tables or state.revision is None:
        engine.dispose()
        raise errors.FailedPreconditionError(
            "this database has no LineageDB schema (or an incomplete one); run: "
            + upgrade_command(engine.url.render_as_string(hide_password=True))
        )
    database = Database(engine)
    try:
        retention = Retention(Deletion(database, lambda: int(time.time() * 1000)))
        if args.retention_command == "plan":
            return _plan(retention, args.policy, Path(args.output), out)
        archive_dir = Path(args.archive) if args.archive is not None else None
        return _apply(retention, Path(args.plan), out, archive_dir, engine)
    finally:
        database.dispose()


def _plan(retention: Retention, policy_path: str, output: Path, out: TextIO) -> int:
    policy, description = load_policy(policy_path)
    plan = retention.plan(policy, int(time.time() * 1000), description)
    document = plan.document()
    output.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    out.write(f"plan {document['plan_id']}: {len(plan.order)} nodes to delete\n")
    for type_name, count in plan.types.items():
        out.write(f"  {count:>8}  {type_name}\n")
    out.write(f"kept because protected or upstream of a protected artifact: {plan.kept_protected}\n")
    out.write(f"kept because a surviving node depends on them: {plan.kept_dependents}\n")
    if plan.order:
        sample = ", ".join(f"{kind.value}:{node_id}" for kind, node_id in plan.order[:SAMPLE])
        out.write(f"sample: {sample}{' ...' if len(plan.order) > SAMPLE else ''}\n")
    out.write(f"written to {output}; carry it out with: lineagedb retention apply --plan {output}\n")
    return 0


def _apply(
    retention: Retention, plan_path: Path, out: TextIO, archive_dir: Path | None = None, engine: sa.Engine | None = None
) -> int:
    try:
        document = json.loads(plan_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise errors.InvalidArgumentError(f"cannot read the plan {plan_path}: {error}") from None
    identifier, order = read_plan(document)
    if archive_dir is not None:
        assert engine is not None, "an archive needs the database's engine"
        path = archive_before_purge(engine, identifier, order, archive_dir, out)
        out.write(f"archived to {path}; restore with: lineagedb import {path}\n")
    out.write(f"applying plan {identifier}: {len(order)} nodes\n")

    def progress(done: int, total: int) -> None:
        out.write(f"  {done}/{total}\n")
        out.flush()

    retention.apply(order, progress)
    out.write("done\n")
    return 0


def archive_path(directory: Path, identifier: str) -> Path:
    return directory / f"retention-{identifier[:16]}.lineagedb.gz"


def archive_before_purge(
    engine: sa.Engine, identifier: str, order: Sequence[Node], directory: Path, out: TextIO
) -> Path:
    """The plan's archive in `directory`: written now, or kept from an earlier run of the same plan."""
    path = archive_path(directory, identifier)
    if path.exists():
        stats = archive.ArchiveReader(path).check()
        if stats.header.get("retention_plan") != identifier:
            raise errors.FailedPreconditionError(f"{path} exists and is not the archive of plan {identifier}")
        out.write(f"the plan's archive {path} is already complete (an earlier apply wrote it); keeping it\n")
        return path
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise errors.FailedPreconditionError(f"cannot create {directory}: {error.strerror or error}") from None
    ids: dict[NodeKind, set[int]] = {ARTIFACT: set(), EXECUTION: set(), CONTEXT: set()}
    for kind, node_id in order:
        ids[kind].add(node_id)
    selection = Selection(frozenset(ids[ARTIFACT]), frozenset(ids[EXECUTION]), frozenset(ids[CONTEXT]))
    trailer = archive_selection(engine, selection, path, {"retention_plan": identifier}, sys.stderr)
    out.write(f"archived {int(trailer['rows']):,} rows of {len(order):,} nodes\n")
    return path


class RetentionSchedule:
    """Plan and apply a policy every `interval_s` seconds inside the server (a daemon
    thread; the first run one interval after start). Several servers on one database
    may all run it: a batch deletes only what is still there and re-checks dependents,
    so concurrent runs cannot break lineage, they only repeat work."""

    def __init__(
        self, retention: Retention, policy_path: str, interval_s: float, archive_dir: Path | None = None
    ) -> None:
        self.policy, self.description = load_policy(policy_path)  # refused at startup if bad
        self.retention = retention
        self.interval_s = interval_s
        self.archive_dir = archive_dir
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def run_once(self) -> int:
        """One plan and apply; returns the nodes deleted (0 after an error, which is logged)."""
        try:
            plan = self.retention.plan(self.policy, int(time.time() * 1000), self.description)
            if plan.order and self.archive_dir is not None:
                identifier = plan.document()["plan_id"]
                shown = io.StringIO()
                path = archive_before_purge(self.retention.db.engine, identifier, plan.order, self.archive_dir, shown)
                log.info("retention: archived what plan %s deletes to %s", identifier[:16], path)
            if plan.order:
                self.retention.apply(plan.order)
            log.info(
                "retention: deleted %d nodes (kept %d protected, %d depended on)",
                len(plan.order),
                plan.kept_protected,
                plan.kept_dependents,
            )
            return len(plan.order)
        except errors.LineageError as error:
            log.error("retention run stopped: %s", error.message)
        except Exception as error:  # a failed run must not kill the thread; the next one retries
            log.error("retention run failed: %s", type(error).__name__)
        return 0
