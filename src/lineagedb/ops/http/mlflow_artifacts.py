"""MLflow's proxied artifact store: /api/2.0/mlflow-artifacts/artifacts on the HTTP listener.

The `mlflow` client sends a run's files here when the run's artifact_uri is
`mlflow-artifacts:/<experiment_id>/<run_id>/artifacts` (what the tracking API gives every run):
PUT <path> uploads one file, GET <path> downloads it, GET ?path=<dir> lists a directory, DELETE
<path> removes a file or directory. Files live under --artifact-root at the same relative path.

Every request is authorized before a byte moves, by a gRPC call on the server's private
channel (lineagedb.v1.MlflowArtifactsService/AuthorizeRead or AuthorizeWrite) carrying the
request's credentials and namespace: the same authentication, permission table, namespace
scoping and audit log as any other call decide it, and anything but OK refuses the request
(fail closed). The owner of a path is the run (or experiment) its first segments name.

Paths never leave the root: a path is refused before authorization when a segment is empty,
`.` or `..`, when it is absolute, or holds a backslash, NUL or drive letter (checked again by
the service); the resolved location (symbolic links followed) must still lie inside the root.
Bodies stream both ways in chunks: an upload goes to a temporary file beside its target and
is renamed into place when complete (a reader never sees half a file), a download is read
from disk as it is sent. Downloads are sent as attachments, sandboxed and never sniffed, so a
logged HTML or SVG file cannot run script in the explorer's origin.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import secrets
import shutil
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from lineagedb import errors
from lineagedb.ops.http.forwarding import ForwardError, GrpcForwarder
from lineagedb.ops.http.mlflow_api import BASIC_USER_METADATA, basic_to_bearer, mlflow_error
from lineagedb.proto.lineagedb.v1 import mlflow_artifacts_pb2 as pb
from lineagedb.service.mlflow_artifacts import path_segments

log = logging.getLogger(__name__)

PREFIX = "/api/2.0/mlflow-artifacts"
AUTHORIZE_READ = "/lineagedb.v1.MlflowArtifactsService/AuthorizeRead"
AUTHORIZE_WRITE = "/lineagedb.v1.MlflowArtifactsService/AuthorizeWrite"
CHUNK_BYTES = 1024 * 1024
# The authorization calls are tiny; the file bytes never pass through gRPC.
_CALL_BYTES = 64 * 1024
# Types a browser would render as active content: served as plain text instead.
_ACTIVE_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml")
_ACTIVE_TYPES_JS = ("javascript", "ecmascript")


class ArtifactError(ForwardError):
    """A refused artifact request (rendered as MLflow's error JSON)."""


def _empty() -> Response:
    return Response(b"{}", media_type="application/json")


class ArtifactRoot:
    """The directory artifacts live in, and the one way to turn a request path into a location."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root).absolute()
        self._real = ""

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._real = os.path.realpath(self.path)

    def location(self, segments: list[str]) -> Path:
        """Where `segments` (already checked by path_segments) live; refuses any location that
        symbolic links take outside the root."""
        candidate = self.path.joinpath(*segments)
        self.check_inside(candidate)
        return candidate

    def check_inside(self, candidate: Path) -> None:
        real = os.path.realpath(candidate)
        if real != self._real and not real.startswith(self._real + os.sep):
            raise ArtifactError(grpc.StatusCode.INVALID_ARGUMENT, "Invalid path")


class MlflowArtifacts:
    """The /api/2.0/mlflow-artifacts component of the HTTP listener (see lineagedb.ops.http.app)."""

    prefix = PREFIX

    def __init__(self, root: str | os.PathLike[str], grpc_target: str) -> None:
        self.root = ArtifactRoot(root)
        self.forwarder = GrpcForwarder(grpc_target, _CALL_BYTES, _CALL_BYTES)
        self._app = Starlette(
            routes=[
                Route("/artifacts", self._list, methods=["GET"]),
                Route("/artifacts/{path:path}", self._file, methods=["GET", "PUT", "DELETE"]),
            ]
        )

    @property
    def app(self) -> ASGIApp:
        return self._app

    async def startup(self) -> None:
        await run_in_threadpool(self.root.ensure)
        await self.forwarder.startup()

    async def shutdown(self) -> None:
        await self.forwarder.shutdown()

    # -- authorization ----------------------------------------------------------------------

    async def _authorize(self, request: Request, path: str, write: bool) -> None:
        """OK from the server's own permission checks, or ForwardError with their refusal. The
        credentials travel as on MLflow's REST API (Bearer, or Basic with a token as password)."""
        authorization, user = basic_to_bearer(request)
        extra = [(BASIC_USER_METADATA, user)] if user is not None else []
        await self.forwarder.call(
            AUTHORIZE_WRITE if write else AUTHORIZE_READ,
            pb.ArtifactPath(path=path),
            pb.ArtifactOwner,
            request,
            authorization,
            extra_metadata=extra,
        )

    async def _guarded(self, request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await work()
        except ForwardError as error:
            response = mlflow_error(error.code, error.message, error.http_status)
            response.headers.update(error.headers)
            return response
        except errors.InvalidArgumentError as error:
            return mlflow_error(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception:
            log.exception("MLflow artifact request %s %s failed", request.method, request.url.path)
            return mlflow_error(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    # -- endpoints --------------------------------------------------------------------------

    async def _list(self, request: Request) -> Response:
        async def work() -> Response:
            segments = path_segments(request.query_params.get("path", ""))
            await self._authorize(request, "/".join(segments), write=False)
            directory = self.root.location(segments)
            files = await run_in_threadpool(_listing, directory)
            return Response(json.dumps({"files": files} if files else {}).encode(), media_type="application/json")

        return await self._guarded(request, work)

    async def _file(self, request: Request) -> Response:
        async def work() -> Response:
            segments = path_segments(request.path_params["path"])
            if not segments:
                raise ArtifactError(grpc.StatusCode.INVALID_ARGUMENT, "Invalid path")
            path = "/".join(segments)
            if request.method == "GET":
                await self._authorize(request, path, write=False)
                return await self._download(segments)
            await self._authorize(request, path, write=True)
            if request.method == "PUT":
                return await self._upload(request, segments)
            return await self._delete(segments)

        return await self._guarded(request, work)

    async def _download(self, segments: list[str]) -> Response:
        location = self.root.location(segments)
        info = await run_in_threadpool(_stat, location)
        if info is None or not stat.S_ISREG(info.st_mode):
            raise ArtifactError(grpc.StatusCode.NOT_FOUND, f"No such file: {'/'.join(segments)}")
        media_type = mimetypes.guess_type(segments[-1])[0] or "application/octet-stream"
        if media_type in _ACTIVE_TYPES or any(word in media_type for word in _ACTIVE_TYPES_JS):
            media_type = "text/plain"
        return FileResponse(
            location,
            media_type=media_type,
            filename=segments[-1],
            stat_result=info,
            headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
        )

    async def _upload(self, request: Request, segments: list[str]) -> Response:
        target = self.root.location(segments)
        await run_in_threadpool(self._make_parents, target)
        partial = target.with_name(f".{target.name}.upload-{secrets.token_hex(8)}")
        handle = await run_in_threadpool(_open_new, partial)
        try:
            async for chunk in request.stream():
                if chunk:
                    await run_in_threadpool(handle.write, chunk)
            await run_in_threadpool(handle.close)
            self.root.check_inside(target)
            await run_in_threadpool(os.replace, partial, target)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
        return _empty()

    def _make_parents(self, target: Path) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as error:
            raise ArtifactError(grpc.StatusCode.INVALID_ARGUMENT, "a parent of the path is a file") from error
        self.root.check_inside(target.parent)
        if target.is_dir():
            raise ArtifactError(grpc.StatusCode.INVALID_ARGUMENT, "the path is a directory")

    async def _delete(self, segments: list[str]) -> Response:
        location = self.root.location(segments)
        await run_in_threadpool(_remove, location)
        return _empty()


def _stat(location: Path) -> os.stat_result | None:
    try:
        return location.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _open_new(path: Path) -> Any:
    # O_EXCL | O_NOFOLLOW: never write through a link planted at the temporary name.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    return os.fdopen(descriptor, "wb", buffering=CHUNK_BYTES)


def _listing(directory: Path) -> list[dict[str, Any]]:
    """The entries of `directory` as MLflow lists them (name, is_dir, file_size of files); a file
    or a missing path lists as nothing. Partial uploads are not shown."""
    if not directory.is_dir():
        return []
    files: list[dict[str, Any]] = []
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(".") and ".upload-" in entry.name:
                continue
            if entry.is_dir(follow_symlinks=False):
                files.append({"path": entry.name, "is_dir": True})
            elif entry.is_file(follow_symlinks=False):
                files.append({"path": entry.name, "is_dir": False, "file_size": entry.stat().st_size})
    return files


def _remove(location: Path) -> None:
    if location.is_symlink() or location.is_file():
        location.unlink(missing_ok=True)
    elif location.is_dir():
        shutil.rmtree(location)
