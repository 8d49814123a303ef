"""The exceptions of `ml_metadata.errors`, by the same names and status codes.

Code written for the official client catches `errors.NotFoundError` and so on, and reads
`error.error_code` (the gRPC status number); both behave the same here. `make_exception`
turns a status number and message into the matching class (UnknownError for a number
outside the table), for gRPC answers and for the embedded store alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16


class StatusError(Exception):
    """Base class: a call ended with a non-OK status."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


class CancelledError(StatusError):
    """The call was cancelled."""

    def __init__(self, message: str) -> None:
        super().__init__(message, CANCELLED)


class UnknownError(StatusError):
    """A status without a more precise class."""

    def __init__(self, message: str, error_code: int = UNKNOWN) -> None:
        super().__init__(message, error_code)


class InvalidArgumentError(StatusError):
    """The request is malformed or names something inconsistent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, INVALID_ARGUMENT)


class DeadlineExceededError(StatusError):
    """The call's deadline passed before it finished."""

    def __init__(self, message: str) -> None:
        super().__init__(message, DEADLINE_EXCEEDED)


class NotFoundError(StatusError):
    """A named or numbered node, type or context does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message, NOT_FOUND)


class AlreadyExistsError(StatusError):
    """A name is taken, or a type change is not backward compatible."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ALREADY_EXISTS)


class PermissionDeniedError(StatusError):
    """The caller is known but not allowed to make this call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, PERMISSION_DENIED)


class UnauthenticatedError(StatusError):
    """No credentials, or credentials the server does not accept."""

    def __init__(self, message: str) -> None:
        super().__init__(message, UNAUTHENTICATED)


class ResourceExhaustedError(StatusError):
    """A size or rate limit was reached (a message larger than allowed, say)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, RESOURCE_EXHAUSTED)


class FailedPreconditionError(StatusError):
    """The store is not in a state that allows the call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, FAILED_PRECONDITION)


class AbortedError(StatusError):
    """A conflict with a concurrent call; running it again may succeed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ABORTED)


class OutOfRangeError(StatusError):
    """A value outside the accepted range."""

    def __init__(self, message: str) -> None:
        super().__init__(message, OUT_OF_RANGE)


class UnimplementedError(StatusError):
    """The server does not offer this call."""

    def __init__(self, message: str) -> None:
        super().__init__(message, UNIMPLEMENTED)


class InternalError(StatusError):
    """A fault inside the server."""

    def __init__(self, message: str) -> None:
        super().__init__(message, INTERNAL)


class UnavailableError(StatusError):
    """The server or its database cannot be reached right now."""

    def __init__(self, message: str) -> None:
        super().__init__(message, UNAVAILABLE)


class DataLossError(StatusError):
    """Stored data is damaged."""

    def __init__(self, message: str) -> None:
        super().__init__(message, DATA_LOSS)


_CLASS_BY_CODE: dict[int, type[StatusError]] = {
    CANCELLED: CancelledError,
    UNKNOWN: UnknownError,
    INVALID_ARGUMENT: InvalidArgumentError,
    DEADLINE_EXCEEDED: DeadlineExceededError,
    NOT_FOUND: NotFoundError,
    ALREADY_EXISTS: AlreadyExistsError,
    PERMISSION_DENIED: PermissionDeniedError,
    UNAUTHENTICATED: UnauthenticatedError,
    RESOURCE_EXHAUSTED: ResourceExhaustedError,
    FAILED_PRECONDITION: FailedPreconditionError,
    ABORTED: AbortedError,
    OUT_OF_RANGE: OutOfRangeError,
    UNIMPLEMENTED: UnimplementedError,
    INTERNAL: InternalError,
    UNAVAILABLE: UnavailableError,
    DATA_LOSS: DataLossError,
}


def exception_type_from_error_code(error_code: int) -> type[StatusError]:
    """The class for a status number (KeyError for OK or an unknown number, as in MLMD)."""
    return _CLASS_BY_CODE[error_code]


def make_exception(message: str, error_code: int) -> StatusError:
    """The exception for a status number and message; UnknownError when the number is not known."""
    cls = _CLASS_BY_CODE.get(error_code)
    if cls is None:
        return UnknownError(message)
    if error_code == INTERNAL:
        # A server fault is worth a log line on the client too; the caller's mistakes are not.
        log.warning("metadata store %s: %s", cls.__name__, message)
    # Every class but StatusError itself takes the message alone.
    return cast(Callable[[str], StatusError], cls)(message)
