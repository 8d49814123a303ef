"""The root ASGI application: HTTP APIs mounted side by side under their own path prefixes.

Starlette does not run the lifespan of a mounted application, so each component's
startup and shutdown run from the root application's lifespan instead (in the listener's
event loop: where their asynchronous clients must be created and closed).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp


class HttpComponent(Protocol):
    """One HTTP API: an ASGI application served under `prefix` (e.g. "/api/v1")."""

    @property
    def prefix(self) -> str: ...

    @property
    def app(self) -> ASGIApp: ...

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...


def build_app(components: Sequence[HttpComponent]) -> Starlette:
    prefixes = [component.prefix for component in components]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"two HTTP components share a prefix: {prefixes}")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        started: list[HttpComponent] = []
        try:
            for component in components:
                await component.startup()
                started.append(component)
            yield
        finally:
            for component in reversed(started):
                await component.shutdown()

    # Longest prefix first, so a component under another's prefix is still reached.
    ordered = sorted(components, key=lambda component: len(component.prefix), reverse=True)
    return Starlette(routes=[Mount(c.prefix, app=c.app) for c in ordered], lifespan=lifespan)
