"""The web lineage explorer: static files served at / by the HTTP listener, next to the JSON API.

The page is plain JavaScript shipped in the package (lineagedb/ops/http/explorer_files/): no
library, no CDN, no request to any other origin. It calls the JSON API with fetch, so it
sees exactly what the caller's token may read. Every response carries a strict
Content-Security-Policy: scripts and styles only from this origin (no inline script, no
eval), connections only to this origin, nothing may frame the page. Metadata is untrusted,
and the script inserts every value as text (textContent / createElementNS), so even a bug
there cannot run a script an attacker stored in a property.
"""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The files change with the package; revalidating them costs one small request each.
    "Cache-Control": "no-cache",
}
# The only files served: a fixed list, so no path from a request ever reaches the file system.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "graph.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _load() -> dict[str, bytes]:
    folder = resources.files("lineagedb.ops.http").joinpath("explorer_files")
    return {name: folder.joinpath(name).read_bytes() for name in FILES}


class Explorer:
    """The HTTP component serving the explorer at / (index.html) and /explorer/<file>."""

    prefix = ""

    def __init__(self) -> None:
        self._files = _load()
        everything = ["GET", "HEAD"]
        self._app = Starlette(
            routes=[
                Route("/", self._index, methods=everything),
                Route("/explorer/{name}", self._file, methods=everything),
                # Browsers ask for it whatever the page says; a 404 would log an error in the console.
                Route("/favicon.ico", self._favicon, methods=everything),
            ]
        )

    @property
    def app(self) -> ASGIApp:
        return self._app

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def _send(self, name: str) -> Response:
        return Response(self._files[name], media_type=FILES[name], headers=HEADERS)

    async def _index(self, _request: Request) -> Response:
        return self._send("index.html")

    async def _favicon(self, _request: Request) -> Response:
        return self._send("favicon.svg")

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._files or name == "index.html":
            return Response("not found\n", status_code=404, media_type="text/plain", headers=HEADERS)
        return self._send(name)
