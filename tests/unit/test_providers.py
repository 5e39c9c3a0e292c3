"""Which ONNX Runtime providers a model gets, how they reach a model process, and what
happens when ONNX Runtime quietly puts a CUDA model on the CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import orjson
import pytest

from server.errors import ConfigError
from server.model_process import preload_cuda_libraries, providers_from_wire
from server.ort_options import check_providers, cuda_provider, resolve_providers, wants_cuda
from tests.onnx_models import identity

CUDA = [cuda_provider("cuda:1", "heuristic"), "CPUExecutionProvider"]


def test_cuda_provider_names_the_gpu_and_the_conv_search() -> None:
    assert cuda_provider("cuda:1", "heuristic") == (
        "CUDAExecutionProvider",
        {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC"},
    )
    assert cuda_provider("cuda", "exhaustive")[1] == {
        "device_id": 0,
        "cudnn_conv_algo_search": "EXHAUSTIVE",
    }


def test_cpu_needs_no_cuda() -> None:
    assert resolve_providers("cpu") == ["CPUExecutionProvider"]


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is here")
def test_auto_without_cuda_is_the_cpu_and_cuda_is_an_error() -> None:
    assert resolve_providers("auto") == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="no CUDAExecutionProvider"):
        resolve_providers("cuda")


def test_a_cuda_model_put_on_the_cpu_is_an_error_when_cuda_was_asked() -> None:
    with pytest.raises(ConfigError) as caught:
        check_providers("cuda:1", CUDA, ["CPUExecutionProvider"], Path("m/1/model.onnx"))
    message = str(caught.value)
    assert 'device "cuda:1"' in message and "m/1/model.onnx" in message
    assert "fell back to CPUExecutionProvider" in message


def test_a_cuda_model_put_on_the_cpu_is_a_warning_for_auto(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.ort_options"):
        check_providers("auto", CUDA, ["CPUExecutionProvider"], Path("m/1/model.onnx"))
    assert "device auto: serving it on the CPU" in caplog.text


def test_nothing_to_say_when_the_session_got_what_it_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    check_providers("cuda", CUDA, ["CUDAExecutionProvider", "CPUExecutionProvider"], Path("m"))
    check_providers("cpu", ["CPUExecutionProvider"], ["CPUExecutionProvider"], Path("m"))
    assert caplog.text == ""


def test_provider_options_survive_the_trip_to_a_model_process(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    wanted = [("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})]
    arrived = orjson.loads(orjson.dumps(wanted))
    assert arrived != wanted  # JSON makes the tuple a list, which ONNX Runtime refuses
    providers = providers_from_wire(arrived)
    assert providers == wanted
    session = ort.InferenceSession(str(identity(tmp_path, datatypes=["FP32"])), providers=providers)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "EP Error" not in capfd.readouterr().out  # no refusal and quiet fallback


def test_wants_cuda_reads_names_and_name_option_pairs() -> None:
    assert wants_cuda(CUDA)
    assert wants_cuda([["CUDAExecutionProvider", {}]])
    assert not wants_cuda(["CPUExecutionProvider"])


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is here")
def test_preloading_cuda_libraries_is_quiet_on_a_cpu_build(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    preload_cuda_libraries.cache_clear()
    with caplog.at_level(logging.WARNING):
        preload_cuda_libraries()
    assert caplog.text == "" and capfd.readouterr().out == ""
