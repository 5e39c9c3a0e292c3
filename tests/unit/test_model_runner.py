"""ModelRunner's IO binding path, run on a CPU session (bound outputs in host memory), so the
binding code is checked where no GPU is; and models with string tensors, which it cannot bind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from server.model_process import ModelRunner
from tests.integration.test_datatypes import random_tensor
from tests.onnx_models import ONNX_TYPES, identity, strings

NUMERIC = [t for t in ONNX_TYPES if t != "BYTES"]


def cpu_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_binding_is_off_on_cpu_unless_asked(tmp_path: Path) -> None:
    session = cpu_session(identity(tmp_path, datatypes=["FP32"]))
    assert not ModelRunner(session, 0).io_binding
    assert ModelRunner(session, 0, io_binding=True).io_binding


def test_bound_runs_give_every_numeric_datatype_back_in_the_order_asked(tmp_path: Path) -> None:
    runner = ModelRunner(cpu_session(identity(tmp_path, datatypes=NUMERIC)), 0, io_binding=True)
    assert runner.io_binding
    rng = np.random.default_rng(0)
    feeds = {f"IN_{t}": random_tensor(t, (4, 6), rng) for t in NUMERIC}
    feeds["IN_FP32"] = feeds["IN_FP32"][:, ::-1]  # a strided view is bound as a copy
    names = [f"OUT_{t}" for t in reversed(NUMERIC)][:7]  # a subset, not in graph order
    got = runner.run(feeds, names)
    assert len(got) == len(names)
    for name, array in zip(names, got, strict=True):
        sent = feeds["IN_" + name[4:]]
        assert array.dtype == sent.dtype and array.shape == sent.shape, name
        np.testing.assert_array_equal(array, sent, err_msg=name)


def test_bound_and_plain_runs_agree(tmp_path: Path) -> None:
    session = cpu_session(identity(tmp_path, datatypes=["FP16", "INT64", "BOOL"]))
    rng = np.random.default_rng(1)
    feeds = {f"IN_{t}": random_tensor(t, (3, 5), rng) for t in ("FP16", "INT64", "BOOL")}
    names = ["OUT_FP16", "OUT_INT64", "OUT_BOOL"]
    bound = ModelRunner(session, 0, io_binding=True).run(feeds, names)
    plain = ModelRunner(session, 0).run(feeds, names)
    for a, b in zip(bound, plain, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_a_model_with_string_tensors_runs_unbound_even_when_binding_is_asked(
    tmp_path: Path,
) -> None:
    # Binding a string input raises, and copying a bound string output back crashes the
    # process, so a model with either runs through session.run.
    runner = ModelRunner(cpu_session(strings(tmp_path)), 0, io_binding=True)
    assert runner.has_strings and not runner.io_binding
    x = np.array([[1.5, -2.0], [0.0, 3.25]], np.float32)
    t = np.array([["a", "bc"], ["", "déf"]], dtype=object)
    s, y, u = runner.run({"x": x, "t": t}, ["s", "y", "u"])
    assert s.tolist() == [["1.5", "-2"], ["0", "3.25"]]
    np.testing.assert_array_equal(y, x)
    assert u.tolist() == t.tolist()
