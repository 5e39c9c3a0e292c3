"""Many clients at once over both protocols: every response is correct and is the caller's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.integration.clients import MODES, client_for, infer

pytestmark = pytest.mark.integration
CLIENTS = 20
REQUESTS = 200


def test_200_requests_from_20_clients_mixed_protocols(server):
    modes = list(MODES)

    def one_client(index: int) -> int:
        mode = modes[index % len(modes)]
        client = client_for(mode, server)
        correct = 0
        for k in range(REQUESTS // CLIENTS):
            rows = 1 + (index + k) % 4
            # values unique to this caller and request, so a mixed-up answer shows
            a = np.full((rows, 16), index * 1000 + k, dtype=np.float32)
            b = np.arange(rows * 16, dtype=np.float32).reshape(rows, 16)
            result = infer(mode, client, "add_sub", {"INPUT0": a, "INPUT1": b})
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
            correct += 1
        client.close()
        return correct

    with ThreadPoolExecutor(CLIENTS) as pool:
        assert sum(pool.map(one_client, range(CLIENTS))) == REQUESTS


def test_aio_clients_of_both_protocols(server):
    """tritonclient's asyncio clients, 20 at once, 200 requests, each answer its caller's."""
    import asyncio

    import tritonclient.grpc.aio as grpc_aio
    import tritonclient.http.aio as http_aio

    async def one_client(index: int) -> int:
        module = grpc_aio if index % 2 else http_aio
        client = module.InferenceServerClient(server.grpc if index % 2 else server.http)
        try:
            for k in range(REQUESTS // CLIENTS):
                a = np.full((2, 16), index * 100 + k, dtype=np.float32)
                inputs = [module.InferInput(n, [2, 16], "FP32") for n in ("INPUT0", "INPUT1")]
                for item in inputs:
                    item.set_data_from_numpy(a)
                result = await client.infer("add_sub", inputs)
                np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)
        finally:
            await client.close()
        return REQUESTS // CLIENTS

    async def main() -> int:
        return sum(await asyncio.gather(*(one_client(i) for i in range(CLIENTS))))

    assert asyncio.run(main()) == REQUESTS
