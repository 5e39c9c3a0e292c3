"""The one exception tree of ortserve, each class mapped once to an HTTP status and a gRPC code.

    ServeError                 500  INTERNAL
    ├── InvalidInput           400  INVALID_ARGUMENT
    ├── ModelNotFound          404  NOT_FOUND
    ├── ModelNotReady          503  UNAVAILABLE
    ├── Overloaded             429  RESOURCE_EXHAUSTED
    ├── PayloadTooLarge        413  RESOURCE_EXHAUSTED
    ├── DeadlineExceeded       504  DEADLINE_EXCEEDED
    ├── Unauthenticated        401  UNAUTHENTICATED
    ├── Unsupported            501  UNIMPLEMENTED
    └── InternalError          500  INTERNAL

Front ends translate in one place each (the Starlette handler, the gRPC wrapper); anything
that is not a ServeError becomes 500 / INTERNAL and is logged with its traceback.
`ConfigError` is separate: it stops start-up and never reaches a client.
"""

from __future__ import annotations


class ServeError(Exception):
    """An error that a client sees; ``str(error)`` is the message it gets."""

    http_status = 500
    grpc_code = "INTERNAL"


class InvalidInput(ServeError):
    http_status, grpc_code = 400, "INVALID_ARGUMENT"


class ModelNotFound(ServeError):
    http_status, grpc_code = 404, "NOT_FOUND"


class ModelNotReady(ServeError):
    http_status, grpc_code = 503, "UNAVAILABLE"


class Overloaded(ServeError):
    http_status, grpc_code = 429, "RESOURCE_EXHAUSTED"


class PayloadTooLarge(ServeError):
    http_status, grpc_code = 413, "RESOURCE_EXHAUSTED"


class DeadlineExceeded(ServeError):
    http_status, grpc_code = 504, "DEADLINE_EXCEEDED"


class Unauthenticated(ServeError):
    http_status, grpc_code = 401, "UNAUTHENTICATED"


class Unsupported(ServeError):
    http_status, grpc_code = 501, "UNIMPLEMENTED"


class InternalError(ServeError):
    http_status, grpc_code = 500, "INTERNAL"


class ConfigError(Exception):
    """A setting, config file or model file that stops start-up; the message names the file."""
