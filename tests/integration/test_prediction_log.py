"""The prediction log of a real server: every answered request has exactly one record, also
when SIGTERM arrives under load."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from server import log_reader
from tests.conftest import start_server
from tests.onnx_models import add_sub

pytestmark = pytest.mark.integration


def test_sigterm_under_load_answers_and_logs_every_accepted_request(tmp_path):
    add_sub(tmp_path / "repo")
    (tmp_path / "repo" / "add_sub" / "config.toml").write_text('[logging]\ninputs = "full"\n')
    log_dir = tmp_path / "log"
    server = start_server(tmp_path / "repo", "--prediction-log-dir", str(log_dir))
    answered: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(index: int) -> None:
        module = grpcclient if index % 2 else httpclient
        url = server.grpc if index % 2 else server.http
        c = module.InferenceServerClient(url)
        k = 0
        while not stop.is_set() and k < 2000:
            request_id = f"c{index}-{k}"
            inputs = [module.InferInput(n, [1, 16], "FP32") for n in ("INPUT0", "INPUT1")]
            for item in inputs:
                item.set_data_from_numpy(np.full((1, 16), index * 10000 + k, np.float32))
            try:
                result = c.infer("add_sub", inputs, request_id=request_id)
                assert result.as_numpy("OUTPUT0")[0, 0] == 2 * (index * 10000 + k)
                with lock:
                    answered.append(request_id)
            except InferenceServerException:
                with lock:
                    refused.append(request_id)  # shutting down: 503 / UNAVAILABLE
                break
            except Exception:
                break  # connection closed by the stopped server
            k += 1

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, i) for i in range(8)]
        while len(answered) < 300:
            threading.Event().wait(0.05)
        assert server.stop() == 0
        stop.set()
        for future in futures:
            future.result()

    skipped: Counter[str] = Counter()
    records = list(log_reader.read_records(log_dir, skipped))
    assert skipped["lines"] == 0, "a line did not parse"
    ok = [r for r in records if r["status"] == "ok"]
    assert sorted(r["id"] for r in ok) == sorted(answered)
    assert len(ok) == len({r["id"] for r in ok})  # exactly once each
    sample = ok[0]
    assert sample["inputs"]["INPUT0"][0][0] * 2 == sample["outputs"]["OUTPUT0"][0][0]
    assert f"{len(answered)} records written, 0 dropped" in "".join(server.output)
