"""The caller's address for calls the server's own HTTP listener forwards to its gRPC handlers.

The JSON API (lineagedb.ops.http) turns each HTTP request into a gRPC call on a private
Unix socket of this process, so every interceptor applies unchanged; gRPC then sees the
socket, not the HTTP client, as the peer. The HTTP layer names the real client in one
metadata entry that starts with a random secret made when this module is imported (per
process, never written anywhere). The interceptors honour the entry only when it carries
that secret and the call came over a Unix socket: a gRPC client cannot know the secret,
so it cannot put another address into the audit log; a forged entry is ignored.
"""

from __future__ import annotations

import hmac
import logging
import secrets

import grpc

log = logging.getLogger("lineagedb.auth")

FORWARDED_PEER_METADATA = "x-lineagedb-forwarded-peer"
_SECRET = secrets.token_hex(32)


def forwarded_peer_entry(peer: str) -> tuple[str, str]:
    """The metadata entry that names `peer` (gRPC's spelling: ipv4:1.2.3.4:5678) as the caller."""
    return FORWARDED_PEER_METADATA, f"{_SECRET} {peer}"


def peer_of(context: grpc.ServicerContext) -> str:
    """The caller's address: the HTTP client for forwarded calls, else the transport's peer."""
    transport_peer: str = context.peer() or ""
    for key, value in context.invocation_metadata() or ():
        if key != FORWARDED_PEER_METADATA:
            continue
        secret, _, peer = value.partition(" ") if isinstance(value, str) else ("", "", "")
        if transport_peer.startswith("unix:") and peer and hmac.compare_digest(secret.encode(), _SECRET.encode()):
            return peer
        log.warning("ignored a forged %s metadata entry from %s", FORWARDED_PEER_METADATA, transport_peer)
        return transport_peer
    return transport_peer
