"""The committed protobuf code is what protos/ generates, and it is wire-compatible with
tritonclient's descriptors (same full names, field numbers, types and methods)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tritonclient.grpc.model_config_pb2 as triton_config
import tritonclient.grpc.service_pb2 as triton_service

from server._proto import grpc_service_pb2, model_config_pb2

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "server" / "_proto"
TRITON_POOL = triton_service.DESCRIPTOR.pool
OUR_FILES = [grpc_service_pb2.DESCRIPTOR, model_config_pb2.DESCRIPTOR]


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "protos_generate", ROOT / "protos" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("proto")
    _load_generator().generate(out=out)
    return _files(out)


def test_generated_file_set_equals_committed(generated: dict[str, bytes]) -> None:
    assert sorted(generated) == sorted(_files(COMMITTED))


@pytest.mark.parametrize("name", sorted(_files(COMMITTED)))
def test_committed_file_equals_generated(name: str, generated: dict[str, bytes]) -> None:
    assert generated.get(name) == (COMMITTED / name).read_bytes(), (
        f"server/_proto/{name} differs from protos/generate.py output; regenerate it"
    )


def _walk(messages: Any) -> Iterator[Any]:
    for message in messages:
        yield message
        yield from _walk(message.nested_types)


def _our_messages() -> list[Any]:
    return [m for f in OUR_FILES for m in _walk(f.message_types_by_name.values())]


def _our_enums() -> list[Any]:
    enums = [e for f in OUR_FILES for e in f.enum_types_by_name.values()]
    enums += [e for m in _our_messages() for e in m.enum_types]
    return enums


def _type_name(field: Any) -> str | None:
    if field.message_type is not None:
        return str(field.message_type.full_name)
    if field.enum_type is not None:
        return str(field.enum_type.full_name)
    return None


def _oneof_name(field: Any) -> str | None:
    return None if field.containing_oneof is None else str(field.containing_oneof.name)


def _field_signature(field: Any) -> tuple[Any, ...]:
    return (
        field.number,
        field.type,
        field.is_repeated,
        field.is_required,
        _type_name(field),
        _oneof_name(field),
    )


def test_descriptors_live_in_a_private_pool() -> None:
    assert grpc_service_pb2.DESCRIPTOR.pool is not TRITON_POOL
    assert model_config_pb2.DESCRIPTOR.pool is grpc_service_pb2.DESCRIPTOR.pool


def test_both_sets_of_messages_work_in_one_process() -> None:
    ours = grpc_service_pb2.ModelInferRequest(model_name="m", raw_input_contents=[b"\x01"])
    theirs = triton_service.ModelInferRequest.FromString(ours.SerializeToString())
    assert theirs.model_name == "m"
    assert list(theirs.raw_input_contents) == [b"\x01"]
    back = grpc_service_pb2.ModelInferRequest.FromString(theirs.SerializeToString())
    assert back == ours
    assert triton_config.ModelConfig(name="x").name == "x"


def test_we_define_messages_and_enums() -> None:
    assert len(_our_messages()) > 30
    assert any(e.full_name == "inference.DataType" for e in _our_enums())


@pytest.mark.parametrize("ours", _our_messages(), ids=lambda m: m.full_name)
def test_message_fields_match_tritonclient(ours: Any) -> None:
    theirs = TRITON_POOL.FindMessageTypeByName(ours.full_name)
    for field in ours.fields:
        assert field.name in theirs.fields_by_name, f"{ours.full_name}.{field.name} not in triton"
        other = theirs.fields_by_name[field.name]
        assert _field_signature(field) == _field_signature(other), f"{ours.full_name}.{field.name}"


@pytest.mark.parametrize("ours", _our_enums(), ids=lambda e: e.full_name)
def test_enum_values_are_a_subset_of_tritonclient(ours: Any) -> None:
    theirs = TRITON_POOL.FindEnumTypeByName(ours.full_name)
    for value in ours.values:
        assert value.name in theirs.values_by_name, f"{ours.full_name}.{value.name} not in triton"
        assert value.number == theirs.values_by_name[value.name].number, value.name


def _methods(file: Any) -> dict[str, tuple[str, str, bool, bool]]:
    service = file.services_by_name["GRPCInferenceService"]
    return {
        m.name: (
            m.input_type.full_name,
            m.output_type.full_name,
            m.client_streaming,
            m.server_streaming,
        )
        for m in service.methods
    }


OUR_METHODS = _methods(grpc_service_pb2.DESCRIPTOR)


def test_service_full_name_matches_tritonclient() -> None:
    ours = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == "inference.GRPCInferenceService"
    assert TRITON_POOL.FindServiceByName(ours.full_name) is not None


@pytest.mark.parametrize("name", sorted(OUR_METHODS))
def test_service_method_matches_tritonclient(name: str) -> None:
    theirs = _methods(triton_service.DESCRIPTOR)
    assert name in theirs
    assert OUR_METHODS[name] == theirs[name]


def test_stream_infer_streams_both_ways() -> None:
    assert OUR_METHODS["ModelStreamInfer"][2:] == (True, True)
