"""The wire to model processes: frames, the shared arena, tensors in it or in the payload."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from server import model_ipc


@pytest.fixture
def arena():
    made = model_ipc.Arena.create(4096)
    yield made
    made.close()


def round_trip(arena, array, start=0):
    writer = model_ipc.Writer(arena, start)
    descriptor = writer.put("t", array)
    header, payload = model_ipc.FrameBuffer().feed(
        b"".join(model_ipc.frame({"d": descriptor}, writer.payload))
    )[0]
    name, got = model_ipc.read(header["d"], arena, payload, copy=True)
    return descriptor, writer, got


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8", "uint64", "bool", "float64"])
def test_numbers_travel_in_the_arena(arena, dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 2).astype(dtype)
    descriptor, writer, got = round_trip(arena, array, start=10)
    assert descriptor[3] == "a" and descriptor[4] % model_ipc.ALIGN == 0
    assert got.dtype == array.dtype and got.shape == array.shape
    assert np.array_equal(got, array) and not writer.payload and writer.overflow == 0


def test_what_does_not_fit_travels_in_the_payload(arena):
    array = np.arange(2048, dtype=np.float32)  # 8 KiB > 4 KiB arena
    descriptor, writer, got = round_trip(arena, array)
    assert descriptor[3] == "p" and writer.overflow == array.nbytes
    assert np.array_equal(got, array)


def test_strings_travel_in_the_payload(arena):
    array = np.array([["a", "é", ""]], dtype=np.object_)
    descriptor, _, got = round_trip(arena, array)
    assert descriptor[1] == "O" and descriptor[3] == "p"
    assert got.tolist() == [["a", "é", ""]]


def test_joined_requests_are_written_once_into_the_arena(arena):
    parts = [np.full((rows, 3), rows, np.int64) for rows in (1, 2, 3)]
    writer = model_ipc.Writer(arena)
    descriptor = writer.put_joined("x", parts)
    assert descriptor[2] == (6, 3) and descriptor[3] == "a"
    _, got = model_ipc.read(descriptor, arena, b"", copy=False)
    assert np.array_equal(got, np.concatenate(parts))


def test_a_copy_survives_the_arena_being_overwritten(arena):
    _, _, got = round_trip(arena, np.ones(4, np.float32))
    model_ipc.Writer(arena).put("t", np.zeros(4, np.float32))
    assert got.tolist() == [1.0] * 4


def test_a_grown_arena_is_seen_by_a_second_mapping(arena):
    other = model_ipc.Arena(os.dup(arena.fd))
    arena.resize(1 << 16, grow_file=True)
    model_ipc.Writer(arena, 60000).put("t", np.arange(8, dtype=np.float64))
    other.resize(1 << 16)
    _, got = model_ipc.read(["t", "<f8", [8], "a", 60032, 64], other, b"", copy=True)
    assert got.tolist() == list(range(8))
    other.close()


def test_frames_cut_anywhere_come_out_whole():
    data = b"".join(b"".join(model_ipc.frame({"n": n}, bytes([n]) * n)) for n in range(1, 6))
    buffer = model_ipc.FrameBuffer()
    frames = []
    for i in range(0, len(data), 3):
        frames += buffer.feed(data[i : i + 3])
    assert [(h["n"], p) for h, p in frames] == [(n, bytes([n]) * n) for n in range(1, 6)]


def test_blocking_frames_and_end_of_stream():
    left, right = socket.socketpair()
    with left, right:
        model_ipc.send_frame(left, {"hello": [1, 2]}, b"xyz")
        assert model_ipc.recv_frame(right) == ({"hello": [1, 2]}, b"xyz")
        left.sendall(model_ipc.HEAD.pack(10, 0) + b"{")
        left.shutdown(socket.SHUT_WR)
        with pytest.raises(ConnectionError):
            model_ipc.recv_frame(right)
    a, b = socket.socketpair()
    with a, b:
        a.shutdown(socket.SHUT_WR)
        assert model_ipc.recv_frame(b) is None
