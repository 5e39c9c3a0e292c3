"""tritonclient helpers shared by the integration tests: one inference call per protocol mode."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpc_aio
import tritonclient.http as httpclient

from tests.integration.raw_http import wait_in_flight

# (client module, binary tensors?) for every way the tests send a request
MODES = {
    "http-json": (httpclient, False),
    "http-binary": (httpclient, True),
    "grpc": (grpcclient, True),
}


def client_for(mode: str, server: Any) -> Any:
    module, _ = MODES[mode]
    url = server.http if module is httpclient else server.grpc
    return module.InferenceServerClient(url)


def infer(
    mode: str,
    client: Any,
    model: str,
    inputs: dict[str, np.ndarray],
    outputs: list[str] | None = None,
    version: str = "",
) -> Any:
    """Send ``inputs`` with tritonclient in ``mode``; returns its InferResult."""
    module, binary = MODES[mode]
    infer_inputs = []
    for name, array in inputs.items():
        datatype = "BYTES" if array.dtype == np.object_ else _datatype(array)
        item = module.InferInput(name, list(array.shape), datatype)
        if module is httpclient:
            item.set_data_from_numpy(array, binary_data=binary)
        else:
            item.set_data_from_numpy(array)
        infer_inputs.append(item)
    requested = None
    if outputs is not None:
        if module is httpclient:
            requested = [module.InferRequestedOutput(n, binary_data=binary) for n in outputs]
        else:
            requested = [module.InferRequestedOutput(n) for n in outputs]
    return client.infer(model, infer_inputs, model_version=version, outputs=requested)


def _datatype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return str(np_to_triton_dtype(array.dtype))


def as_json(mode: str, method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call a tritonclient method that returns JSON (HTTP) or a message (gRPC) as a dict."""
    if MODES[mode][0] is grpcclient:
        kwargs["as_json"] = True
    result: dict[str, Any] = method(*args, **kwargs)
    return result.get("config", result) if "config" in result else result


def slow_input(client_module: Any) -> list[Any]:
    """The one-value request (``x`` of shape [1, 1], FP32) of the tests' slow models."""
    item = client_module.InferInput("x", [1, 1], "FP32")
    item.set_data_from_numpy(np.ones((1, 1), dtype=np.float32))
    return [item]


def cancel_queued_grpc_call(server: Any, model: str) -> None:
    """Queue a gRPC call to ``model`` behind a blocker (both inside the server), cancel it,
    and wait for the blocker's answer."""

    async def main() -> None:
        client = grpc_aio.InferenceServerClient(server.grpc)
        try:
            blocker = asyncio.ensure_future(client.infer(model, slow_input(grpc_aio)))
            await asyncio.to_thread(wait_in_flight, server, 1)
            queued = asyncio.ensure_future(client.infer(model, slow_input(grpc_aio)))
            await asyncio.to_thread(wait_in_flight, server, 2)
            queued.cancel()
            await blocker
            with pytest.raises(asyncio.CancelledError):
                await queued
        finally:
            await client.close()

    asyncio.run(main())
