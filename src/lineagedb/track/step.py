"""The step API: a context manager and a decorator that record one execution each.

    with track.step("Trainer", pipeline="churn", run="2026-12-03") as step:
        step.input("data/train.csv", type="Dataset")
        step.param("learning_rate", 0.1)
        ...train...
        step.output("model/", type="Model")
        step.metric("auc", 0.91)

    @track.step("Trainer", inputs={"train_csv": "Dataset"}, outputs={"model_dir": "Model"})
    def train(train_csv: str, model_dir: str, learning_rate: float = 0.1) -> None: ...

Decorator declarations: `inputs` and `outputs` map names to artifact types. A name that is a
parameter of the function takes that argument's value (a path or URI, or a list of them);
an output name that is not a parameter takes the return value (a dict by name, or, for a
single such output, the value itself). Every other argument whose value is a bool, int, float or
str is recorded as a parameter (except names that look like credentials: password, secret,
token, api_key, credential, private_key, auth...), or only those named in `params=[...]`.

Recorded without being asked: the code version of the repository holding the caller's file,
the environment, start and end times, the status (COMPLETE, or FAILED with the exception
type; the exception is re-raised) and the content digest of every local input and output.
Inputs are fingerprinted when declared; outputs when the step ends. A failed step records
its inputs, parameters and failure, not its outputs.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import math
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from lineagedb.track import codeversion, environment
from lineagedb.track.digests import fingerprint
from lineagedb.track.record import COMPLETE, FAILED, ArtifactRecord, CodeRecord, StepRecord, plain_param
from lineagedb.track.writer import RESERVED_PROPERTIES, WriteResult

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_INPUT_TYPE = "Dataset"
DEFAULT_OUTPUT_TYPE = "Artifact"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Arguments the decorator never records on its own (`params=[...]` can still name them):
# metadata is readable by everyone with access to the namespace.
_SECRET_NAME = re.compile(r"passw|secret|token|api_?key|credential|private_?key|auth", re.IGNORECASE)

_current: contextvars.ContextVar[Step | None] = contextvars.ContextVar("lineagedb_track_step", default=None)
_process_run: str | None = None


def current() -> Step:
    """The step being recorded in this thread or task (inside `with track.step(...)` or a
    decorated function)."""
    active = _current.get()
    if active is None:
        raise RuntimeError("no lineagedb.track step is active here")
    return active


def _default_run() -> str:
    # One run per process unless told: the steps of one script belong together.
    global _process_run
    if _process_run is None:
        _process_run = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
    return _process_run


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_local(path_or_uri: str) -> bool:
    return "://" not in path_or_uri or path_or_uri.startswith("file://")


def _local_path(path_or_uri: str) -> str:
    if path_or_uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(path_or_uri).path)
    return path_or_uri


@functools.cache
def _code_version(source_file: str) -> CodeRecord | None:
    found = codeversion.code_version(source_file)
    if found is None:
        return None
    return CodeRecord(commit=found.commit, dirty=found.dirty, source_file=found.source_file, label=found.label)


class Step:
    """One execution being recorded. Made by `track.step(...)`; not built directly."""

    def __init__(self, tracker: Any, name: str, pipeline: str | None, run: str, source_file: str | None) -> None:
        self._tracker = tracker
        self.record = StepRecord(
            step_id=uuid.uuid4().hex,
            step_name=name,
            pipeline=pipeline,
            run=run,
            started_ms=_now_ms(),
            environment=dict(environment.environment()),
            code=_code_version(source_file) if source_file else None,
        )
        self._pending_outputs: list[ArtifactRecord] = []
        self.result: WriteResult | None = None  # set once the store has the step

    @property
    def id(self) -> str:
        return self.record.step_id

    def _artifact(
        self,
        path_or_uri: str | os.PathLike[str],
        type_name: str,
        key: str | None,
        existing: list[ArtifactRecord],
        digest: str | None,
        properties: Mapping[str, Any] | None,
    ) -> ArtifactRecord:
        text = os.fspath(path_or_uri)
        if not text:
            raise ValueError("an input or output needs a path or URI")
        role = key or type_name.lower()
        index = sum(1 for item in existing if item.key == role)
        local = _is_local(text)
        uri = os.path.abspath(_local_path(text)) if local else text
        item = ArtifactRecord(key=role, index=index, uri=uri, type_name=type_name, local=local)
        item.properties = {name: plain_param(value) for name, value in (properties or {}).items()}
        if digest is not None:  # the caller knows the content (e.g. an object store's checksum)
            hexdigest = digest.lower().removeprefix("sha256:")
            if not _SHA256_HEX.fullmatch(hexdigest):
                raise ValueError(f"digest must be a SHA-256 ('sha256:' and 64 hex digits), not {digest!r}")
            item.sha256 = hexdigest
            item.identity = f"sha256:{hexdigest}"
        return item

    def _fingerprint(self, item: ArtifactRecord) -> None:
        if not item.local or item.identity is not None:
            return
        try:
            found = fingerprint(item.uri, self._tracker.cache, self._tracker.settings.max_hash_bytes)
        except OSError as error:  # unreadable: the step still runs and says why there is no digest
            item.skipped_reason = f"not hashed: {error.strerror or error}"
            return
        item.exists = found.exists
        item.is_dir = found.is_dir
        item.sha256 = found.sha256
        item.size = found.size if found.exists else None
        item.mtime_ns = found.mtime_ns if found.exists else None
        item.file_count = found.file_count if found.is_dir else None
        item.skipped_reason = found.skipped_reason
        item.identity = found.identity

    def input(
        self,
        path_or_uri: str | os.PathLike[str],
        type: str = DEFAULT_INPUT_TYPE,
        *,
        key: str | None = None,
        digest: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> str:
        """Declare something the step reads; a local file or directory is hashed now.
        Returns the recorded URI. `key` is the event's role (default: the type, lower case)."""
        item = self._artifact(path_or_uri, type, key, self.record.inputs, digest, properties)
        self._fingerprint(item)
        self.record.inputs.append(item)
        return item.uri

    def output(
        self,
        path_or_uri: str | os.PathLike[str],
        type: str = DEFAULT_OUTPUT_TYPE,
        *,
        key: str | None = None,
        digest: str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> str:
        """Declare something the step writes; a local one is hashed when the step ends."""
        item = self._artifact(path_or_uri, type, key, self.record.outputs, digest, properties)
        self.record.outputs.append(item)
        self._pending_outputs.append(item)
        return item.uri

    def param(self, name: str, value: Any) -> None:
        if name in RESERVED_PROPERTIES:
            raise ValueError(f"{name!r} is recorded by lineagedb.track itself; name the parameter otherwise")
        self.record.params[name] = plain_param(value)

    def params(self, **values: Any) -> None:
        for name, value in values.items():
            self.param(name, value)

    def metric(self, name: str, value: float) -> None:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"metric {name!r} must be a finite number, not {value!r}")
        if name == "digest":
            raise ValueError("'digest' is the metrics artifact's own property; name the metric otherwise")
        self.record.metrics[name] = number

    def _finish(self, error: BaseException | None) -> None:
        if isinstance(error, SystemExit) and error.code in (None, 0):
            error = None  # sys.exit(0) inside a step is a success
        record = self.record
        record.ended_ms = _now_ms()
        if error is None:
            for item in self._pending_outputs:
                self._fingerprint(item)
            record.status = COMPLETE
        else:
            kind = type(error)
            record.status = FAILED
            record.error_type = (
                kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
            )
        # A failing body's exception is the one the caller must see: tracking problems then only warn.
        self.result = self._tracker.submit(record, raise_on_refusal=error is None)


class StepSpec:
    """What `track.step(...)` returns: a context manager (each `with` records one step) and a
    decorator (each call records one step)."""

    def __init__(
        self,
        name: str,
        *,
        pipeline: str | None,
        run: str | None,
        tracker: Any,
        source_file: str | None,
        inputs: Mapping[str, str] | None,
        outputs: Mapping[str, str] | None,
        params: Sequence[str] | None,
    ) -> None:
        if not name:
            raise ValueError("a step needs a name (its execution type, e.g. 'Trainer')")
        self.name = name
        self.pipeline = pipeline
        self.run = run
        self._tracker = tracker
        self.source_file = source_file
        self.inputs = dict(inputs or {})
        self.outputs = dict(outputs or {})
        self.params = None if params is None else list(params)
        self._local = threading.local()  # the `with` form's open steps, per thread

    def _resolve_tracker(self) -> Any:
        if self._tracker is not None:
            return self._tracker
        from lineagedb.track import default_tracker

        return default_tracker()

    def _start(self) -> Step:
        tracker = self._resolve_tracker()
        settings = tracker.settings
        pipeline = self.pipeline if self.pipeline is not None else settings.pipeline
        run = self.run if self.run is not None else (settings.run or _default_run())
        return Step(tracker, self.name, pipeline, run, self.source_file)

    def _stack(self) -> list[tuple[Step, contextvars.Token[Step | None]]]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return cast(list[tuple[Step, contextvars.Token[Step | None]]], stack)

    def __enter__(self) -> Step:
        step = self._start()
        self._stack().append((step, _current.set(step)))
        return step

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        step, token = self._stack().pop()
        _current.reset(token)
        step._finish(error)

    @contextlib.contextmanager
    def _recording(self) -> Iterator[Step]:
        step = self._start()
        token = _current.set(step)
        try:
            yield step
        except BaseException as error:
            _current.reset(token)
            step._finish(error)
            raise
        _current.reset(token)
        step._finish(None)

    def __call__(self, function: F) -> F:
        if inspect.iscoroutinefunction(function) or inspect.isgeneratorfunction(function):
            # The call would return before the work is done: the step would end too early.
            raise TypeError(
                f"{function.__qualname__}: @track.step decorates plain functions; use `with track.step(...)`"
            )
        signature = inspect.signature(function)
        names = set(signature.parameters)
        for declared in self.inputs:
            if declared not in names:
                raise TypeError(f"input {declared!r} is not a parameter of {function.__qualname__}")
        returned = [name for name in self.outputs if name not in names]
        for declared in self.params or ():
            if declared not in names:
                raise TypeError(f"param {declared!r} is not a parameter of {function.__qualname__}")
        if self.source_file is None:
            self.source_file = function.__code__.co_filename

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with self._recording() as step:
                for name, type_name in self.inputs.items():
                    for value in _paths(bound.arguments[name]):
                        step.input(value, type_name, key=name)
                for name, type_name in self.outputs.items():
                    if name in names:
                        for value in _paths(bound.arguments[name]):
                            step.output(value, type_name, key=name)
                for name, value in bound.arguments.items():
                    if name in self.inputs or name in self.outputs:
                        continue
                    if self.params is not None and name not in self.params:
                        continue
                    if self.params is None and (
                        not isinstance(value, bool | int | float | str) or _SECRET_NAME.search(name)
                    ):
                        continue
                    step.param(name, value)
                result = function(*args, **kwargs)
                if returned and isinstance(result, Mapping):
                    for name in returned:
                        for value in _paths(result.get(name)):
                            step.output(value, self.outputs[name], key=name)
                elif len(returned) == 1:
                    for value in _paths(result):
                        step.output(value, self.outputs[returned[0]], key=returned[0])
                elif returned:
                    raise TypeError(f"{function.__qualname__} declares outputs {returned}: return a dict of them")
                return result

        return cast(F, wrapper)


def _paths(value: Any) -> list[str | os.PathLike[str]]:
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str | os.PathLike)]
    raise TypeError(f"an input or output must be a path or URI (or a list of them), not {type(value).__name__}")


def step(
    name: str,
    *,
    pipeline: str | None = None,
    run: str | None = None,
    inputs: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    params: Sequence[str] | None = None,
    tracker: Any = None,
    source_file: str | os.PathLike[str] | None = None,
) -> StepSpec:
    """Record one step (see the module docs). `pipeline` and `run` default to
    LINEAGEDB_PIPELINE / LINEAGEDB_RUN, else no pipeline and one generated run per process."""
    caller = source_file
    if caller is None:
        frame = sys._getframe(1)
        caller = frame.f_code.co_filename
    path = os.fspath(caller)
    known = path if Path(path).is_file() else None  # "<stdin>", "<string>": no source file
    return StepSpec(
        name,
        pipeline=pipeline,
        run=run,
        tracker=tracker,
        source_file=known,
        inputs=inputs,
        outputs=outputs,
        params=params,
    )
