"""Domain errors shared by every layer.

Each class corresponds to exactly one gRPC status code; the mapping lives in
`lineagedb.api.status` and nowhere else. Messages are written for users: they
say what was wrong with the request and never contain database text.
"""

from __future__ import annotations


class LineageError(Exception):
    """Base class of every error a request can end with."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(LineageError):
    pass


class NotFoundError(LineageError):
    pass


class AlreadyExistsError(LineageError):
    pass


class FailedPreconditionError(LineageError):
    pass


class OutOfRangeError(LineageError):
    pass


class UnimplementedError(LineageError):
    pass


class AbortedError(LineageError):
    """A retryable conflict (deadlock, serialization failure, busy database)."""


class UnavailableError(LineageError):
    """The database cannot be reached, or a commit's outcome is unknown."""


class ResourceExhaustedError(LineageError):
    pass


class DeadlineExceededError(LineageError):
    pass


class DataLossError(LineageError):
    pass


class UnauthenticatedError(LineageError):
    """No credentials, or credentials that are not valid; the message never echoes them."""


class PermissionDeniedError(LineageError):
    """Authenticated, but the policy does not allow this call."""


class InternalError(LineageError):
    """A server-side fault. MLMD also answers INTERNAL for a few update clashes."""
