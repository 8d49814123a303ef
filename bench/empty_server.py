"""The floor: a grpcio server whose every MLMD method answers an empty message at once.

No protobuf, no store: one generic handler for the whole ``ml_metadata.MetadataStoreService``
that returns zero bytes (an empty message of any type). Timing a trivial call against it
measures what any Python gRPC server pays per call (HTTP/2 framing, grpcio's C core,
thread-pool hand-off, the client's stub) before doing any work. Runs under any interpreter
that has grpcio. Prints ``empty listening on HOST:PORT``; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "ml_metadata.MetadataStoreService"


def _empty(_request: bytes, _context: grpc.ServicerContext) -> bytes:
    return b""


class EmptyService(grpc.GenericRpcHandler):
    """Answers every method of the MLMD service with an empty message."""

    _handler = grpc.unary_unary_rpc_method_handler(_empty)  # no (de)serializers: raw bytes

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        return self._handler if method.startswith(f"/{SERVICE}/") else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workers", type=int, default=16)
    args = p.parse_args()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        handlers=[EmptyService()],
        options=[("grpc.so_reuseport", 0)],
    )
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"empty listening on {args.host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
