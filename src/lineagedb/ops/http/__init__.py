"""The HTTP listener (`lineagedb serve --http-port`): one ASGI application in the server process.

- app.py: the root Starlette application; each HTTP API is a component mounted under its
  own path prefix (the JSON API under /api/v1; the MLflow REST API will mount next to it)
  with startup/shutdown hooks run by the root application's lifespan.
- listener.py: the socket, TLS with the gRPC port's certificate, and uvicorn running the
  application on its own event loop in a thread, stopped gracefully with the gRPC server.
- json_api.py: POST /api/v1/<Service>/<Method> for every unary method of the registered
  services, forwarded over a private Unix socket to this process's own gRPC server, so
  authentication, namespaces, limits, metrics, the audit log and the status mapping are
  exactly those of gRPC.
- openapi.py: the OpenAPI 3.1 document of that API, generated from the descriptors.
- explorer.py: the web lineage explorer at / (static files in explorer_files/, calling the
  JSON API from the browser), under a strict Content-Security-Policy.
- well_known.py: the well-known protobuf types an Any property may hold, loaded here so
  every JSON component can convert them.
"""

from lineagedb.ops.http import well_known as _well_known  # noqa: F401  (loads the descriptors)
