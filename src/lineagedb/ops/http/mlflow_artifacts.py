"""MLflow's proxied artifact store: /api/2.0/mlflow-artifacts/artifacts on the HTTP listener, and
the tracking API's ListArtifacts (/api/2.0/mlflow/artifacts/list) over the same files.

The `mlflow` client sends a run's files here when the run's artifact_uri is
`mlflow-artifacts:/<experiment_id>/<run_id>/artifacts` (what the tracking API gives every run):
PUT <path> uploads one file, GET <path> downloads it, GET ?path=<dir> lists a directory, DELETE
<path> removes a file or directory. Files live in the artifact store of --artifact-root (a
directory or an S3 bucket, lineagedb.ops.artifact_store) at the same relative path; this module
never knows which.

Every request is authorized before a byte moves, by a gRPC call on the server's private
channel (lineagedb.v1.MlflowArtifactsService/AuthorizeRead, AuthorizeWrite or
AuthorizeListArtifacts) carrying the request's credentials and namespace: the same
authentication, permission table, namespace scoping and audit log as any other call decide it,
and anything but OK refuses the request (fail closed). The owner of a path is the run (or
experiment) its first segments name.

Paths never leave the root: a path is refused before authorization when a segment is empty,
`.` or `..`, when it is absolute, or holds a backslash, NUL or drive letter (checked again by
the service); the store adds its own checks (symbolic links, for a directory). Bodies stream
both ways in chunks: an upload is written chunk by chunk and appears whole when complete (a
reader never sees half a file), a download is read from the store as it is sent. Downloads are
sent as attachments, sandboxed and never sniffed, so a logged HTML or SVG file cannot run
script in the explorer's origin.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import grpc
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from lineagedb import errors
from lineagedb.ops.artifact_store import ArtifactPathError, ArtifactStore, ArtifactStoreUnavailable
from lineagedb.ops.http.forwarding import ForwardError, GrpcForwarder
from lineagedb.ops.http.mlflow_api import BASIC_USER_METADATA, basic_to_bearer, mlflow_error
from lineagedb.ops.http.mlflow_api import PREFIXES as MLFLOW_PREFIXES
from lineagedb.proto.lineagedb.v1 import mlflow_artifacts_pb2 as pb
from lineagedb.service.mlflow_artifacts import path_segments

log = logging.getLogger(__name__)

PREFIX = "/api/2.0/mlflow-artifacts"
AUTHORIZE_READ = "/lineagedb.v1.MlflowArtifactsService/AuthorizeRead"
AUTHORIZE_WRITE = "/lineagedb.v1.MlflowArtifactsService/AuthorizeWrite"
AUTHORIZE_LIST = "/lineagedb.v1.MlflowArtifactsService/AuthorizeListArtifacts"
# The authorization calls are tiny; the file bytes never pass through gRPC.
_CALL_BYTES = 64 * 1024
# Types a browser would render as active content: served as plain text instead.
_ACTIVE_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml")
_ACTIVE_TYPES_JS = ("javascript", "ecmascript")


class ArtifactError(ForwardError):
    """A refused artifact request (rendered as MLflow's error JSON)."""


def _empty() -> Response:
    return Response(b"{}", media_type="application/json")


class _StoreComponent:
    """A component of the HTTP listener (see lineagedb.ops.http.app) serving `routes` over `store`."""

    def __init__(self, prefix: str, store: ArtifactStore, grpc_target: str, routes: list[Route]) -> None:
        self.prefix = prefix
        self.store = store
        self.forwarder = GrpcForwarder(grpc_target, _CALL_BYTES, _CALL_BYTES)
        self._app = Starlette(routes=routes)

    @property
    def app(self) -> ASGIApp:
        return self._app

    async def startup(self) -> None:
        await self.forwarder.startup()

    async def shutdown(self) -> None:
        await self.forwarder.shutdown()


class MlflowArtifacts(_StoreComponent):
    """The /api/2.0/mlflow-artifacts component of the HTTP listener."""

    def __init__(self, store: ArtifactStore, grpc_target: str) -> None:
        routes = [
            Route("/artifacts", self._list, methods=["GET"]),
            Route("/artifacts/{path:path}", self._file, methods=["GET", "PUT", "DELETE"]),
        ]
        super().__init__(PREFIX, store, grpc_target, routes)

    # -- authorization ----------------------------------------------------------------------

    async def _authorize(self, request: Request, path: str, write: bool) -> None:
        """OK from the server's own permission checks, or ForwardError with their refusal. The
        credentials travel as on MLflow's REST API (Bearer, or Basic with a token as password)."""
        await authorized_call(
            self.forwarder, request, AUTHORIZE_WRITE if write else AUTHORIZE_READ, pb.ArtifactPath(path=path)
        )

    # -- endpoints --------------------------------------------------------------------------

    async def _list(self, request: Request) -> Response:
        async def work() -> Response:
            segments = path_segments(request.query_params.get("path", ""))
            await self._authorize(request, "/".join(segments), write=False)
            files = await list_files(self.store, segments)
            return Response(json.dumps({"files": files} if files else {}).encode(), media_type="application/json")

        return await guarded(request, work)

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
            await run_in_threadpool(self.store.delete, segments)
            return _empty()

        return await guarded(request, work)

    async def _download(self, segments: list[str]) -> Response:
        download = await run_in_threadpool(self.store.open, segments)
        if download is None:
            raise ArtifactError(grpc.StatusCode.NOT_FOUND, f"No such file: {'/'.join(segments)}")
        media_type = mimetypes.guess_type(segments[-1])[0] or "application/octet-stream"
        if media_type in _ACTIVE_TYPES or any(word in media_type for word in _ACTIVE_TYPES_JS):
            media_type = "text/plain"

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await run_in_threadpool(download.read):
                    yield chunk
            finally:
                await run_in_threadpool(download.close)

        return StreamingResponse(
            chunks(),
            media_type=media_type,
            headers={
                "Content-Length": str(download.size),
                "Content-Disposition": _attachment(segments[-1]),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
            },
        )

    async def _upload(self, request: Request, segments: list[str]) -> Response:
        upload = await run_in_threadpool(self.store.begin_upload, segments)
        try:
            async for chunk in request.stream():
                if chunk:
                    await run_in_threadpool(upload.write, chunk)
            await run_in_threadpool(upload.commit)
        except BaseException:
            await run_in_threadpool(upload.abort)
            raise
        return _empty()


class MlflowListArtifacts(_StoreComponent):
    """MLflow's tracking ListArtifacts, `GET <prefix>/list?run_id=&path=&page_token=` under
    /api/2.0/mlflow/artifacts and /ajax-api/2.0/mlflow/artifacts (one instance per prefix; the
    longer prefix puts it ahead of the MLflow REST API's component).

    As MLflow's server answers it for a proxied (`mlflow-artifacts:`) run root: `root_uri` is the
    run's artifact_uri and `files` the entries directly under `path`, named relative to the run's
    root; all of them in one page (MLflow's server pages only stores that page themselves). The
    server decides READ on the run and where the listing is (AuthorizeListArtifacts)."""

    def __init__(self, prefix: str, store: ArtifactStore, grpc_target: str) -> None:
        routes = [
            Route("/list", self._list, methods=["GET"]),
            Route("/{path:path}", self._unknown, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        ]
        super().__init__(prefix, store, grpc_target, routes)

    async def _unknown(self, request: Request) -> Response:
        body = {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No endpoint {request.method} {request.url.path}"}
        return Response(json.dumps(body).encode(), status_code=404, media_type="application/json")

    async def _list(self, request: Request) -> Response:
        async def work() -> Response:
            query = request.query_params
            ask = pb.ListArtifactsRequest(
                run_id=query.get("run_id", ""), run_uuid=query.get("run_uuid", ""), path=query.get("path", "")
            )
            where = await authorized_call(self.forwarder, request, AUTHORIZE_LIST, ask, pb.RunArtifactLocation)
            relative = path_segments(ask.path)
            files = await list_files(self.store, path_segments(where.path), prefix="/".join(relative))
            answer: dict[str, Any] = {"root_uri": where.root_uri}
            if files:
                answer["files"] = files
            return Response(json.dumps(answer).encode(), media_type="application/json")

        return await guarded(request, work)


def list_components(store: ArtifactStore, grpc_target: str) -> list[MlflowListArtifacts]:
    return [MlflowListArtifacts(f"{prefix}/artifacts", store, grpc_target) for prefix in MLFLOW_PREFIXES]


async def authorized_call(
    forwarder: GrpcForwarder,
    request: Request,
    method: str,
    message: Message,
    response: type[Message] = pb.ArtifactOwner,
) -> Any:
    """The server's answer to an authorization RPC made with the request's credentials (Bearer, or
    Basic with a token as password, as on MLflow's REST API), or ForwardError with its refusal."""
    authorization, user = basic_to_bearer(request)
    extra = [(BASIC_USER_METADATA, user)] if user is not None else []
    return await forwarder.call(method, message, response, request, authorization, extra_metadata=extra)


async def list_files(store: ArtifactStore, segments: list[str], prefix: str = "") -> list[dict[str, Any]]:
    """The entries under `segments` as MLflow lists them (path, is_dir, file_size of files), each
    path `prefix`/name."""
    entries = await run_in_threadpool(store.entries, segments)
    files: list[dict[str, Any]] = []
    for entry in entries:
        path = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_dir:
            files.append({"path": path, "is_dir": True})
        else:
            files.append({"path": path, "is_dir": False, "file_size": entry.size})
    return files


async def guarded(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    """`work`'s answer, or MLflow's error JSON for a refusal, a bad path or an unavailable store."""
    try:
        return await work()
    except ForwardError as error:
        response = mlflow_error(error.code, error.message, error.http_status)
        response.headers.update(error.headers)
        return response
    except (errors.InvalidArgumentError, ArtifactPathError) as error:
        return mlflow_error(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    except ArtifactStoreUnavailable as error:
        log.warning("MLflow artifact request %s %s: %s", request.method, request.url.path, error)
        return mlflow_error(grpc.StatusCode.UNAVAILABLE, str(error))
    except ClientDisconnect:
        return Response(status_code=499)
    except Exception:
        log.exception("MLflow artifact request %s %s failed", request.method, request.url.path)
        return mlflow_error(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def _attachment(filename: str) -> str:
    """Content-Disposition of a download (as Starlette's FileResponse writes it)."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'
