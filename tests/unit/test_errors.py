"""Every ServeError subclass maps to the HTTP status and gRPC code the protocol spec gives."""

from __future__ import annotations

import grpc
import pytest

from server import errors

# Spec section 1.6: error class -> (HTTP status, gRPC status code name).
EXPECTED = {
    "ServeError": (500, "INTERNAL"),
    "InvalidInput": (400, "INVALID_ARGUMENT"),
    "ModelNotFound": (404, "NOT_FOUND"),
    "ModelNotReady": (503, "UNAVAILABLE"),
    "Overloaded": (429, "RESOURCE_EXHAUSTED"),
    "PayloadTooLarge": (413, "RESOURCE_EXHAUSTED"),
    "DeadlineExceeded": (504, "DEADLINE_EXCEEDED"),
    "Unauthenticated": (401, "UNAUTHENTICATED"),
    "Unsupported": (501, "UNIMPLEMENTED"),
    "InternalError": (500, "INTERNAL"),
}


def _all_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


ERROR_CLASSES = [errors.ServeError, *_all_subclasses(errors.ServeError)]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_error_class_is_in_the_spec_table(cls: type[errors.ServeError]) -> None:
    assert cls.__name__ in EXPECTED, f"{cls.__name__} has no row in the expected table"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_error_class_has_the_spec_codes(cls: type[errors.ServeError]) -> None:
    assert (cls.http_status, cls.grpc_code) == EXPECTED[cls.__name__]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_grpc_code_is_a_real_status_code(cls: type[errors.ServeError]) -> None:
    assert cls.grpc_code in grpc.StatusCode.__members__


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_table_row_exists_in_the_tree(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, errors.ServeError)


def test_message_is_what_str_gives() -> None:
    assert str(errors.InvalidInput('input "x": expected FP32, got INT64')) == (
        'input "x": expected FP32, got INT64'
    )


def test_config_error_is_not_a_client_error() -> None:
    assert not issubclass(errors.ConfigError, errors.ServeError)
