"""The wire between the server process and a model process.

A frame is ``<u32 header length><u32 payload length>``, a JSON header (orjson) and a payload.
Tensors travel in a shared arena (a memfd both processes map) when they fit, otherwise in
the payload. A tensor is described in the header as ``[name, dtype, shape, where, offset,
nbytes]``: ``where`` is ``"a"`` (arena) or ``"p"`` (payload); dtype ``"O"`` is a string tensor
in the V2 BYTES layout (4-byte length before each element). No pickles: a model process can
only send numbers and strings.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

from .datatypes import deserialize_bytes, serialize_bytes
from .types import Array

HEAD = struct.Struct("<II")
ALIGN = 64
Descriptor = list[Any]
Payload = bytes | bytearray | memoryview


def frame(header: dict[str, Any], payload: Payload = b"") -> list[Payload]:
    """The parts of one frame, ready for ``sendmsg`` or ``transport.writelines``."""
    head = orjson.dumps(header)
    return [HEAD.pack(len(head), len(payload)), head, payload]


def send_frame(sock: socket.socket, header: dict[str, Any], payload: Payload = b"") -> None:
    """Write one frame to a blocking socket."""
    sock.sendall(b"".join(frame(header, payload)))


def recv_frame(sock: socket.socket) -> tuple[dict[str, Any], Payload] | None:
    """Read one frame from a blocking socket; None at a clean end of stream. The payload is
    a view of the bytes received, not a copy."""
    head = _recv_exactly(sock, HEAD.size)
    if head is None:
        return None
    header_len, payload_len = HEAD.unpack(head)
    body = _recv_exactly(sock, header_len + payload_len)
    if body is None:
        raise ConnectionError("the stream ended inside a frame")
    view = memoryview(body)
    return orjson.loads(view[:header_len]), view[header_len:]


def _recv_exactly(sock: socket.socket, count: int) -> bytearray | None:
    buffer = bytearray(count)
    view = memoryview(buffer)
    got = 0
    while got < count:
        n = sock.recv_into(view[got:])
        if n == 0:
            if got == 0:
                return None
            raise ConnectionError("the stream ended inside a frame")
        got += n
    return buffer


class FrameBuffer:
    """Bytes as they arrive on a non-blocking stream, cut into frames."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        buffer = self._data
        buffer += data
        frames = []
        while len(buffer) >= HEAD.size:
            header_len, payload_len = HEAD.unpack_from(buffer)
            end = HEAD.size + header_len + payload_len
            if len(buffer) < end:
                break
            with memoryview(buffer) as view:  # one copy of each part, then the view is gone
                header = orjson.loads(view[HEAD.size : HEAD.size + header_len])
                payload = bytes(view[HEAD.size + header_len : end])
            frames.append((header, payload))
            del buffer[:end]
        return frames


class Arena:
    """A shared memory region (a memfd) that grows; both processes map the same file."""

    def __init__(self, fd: int, size: int = 0) -> None:
        self.fd = fd
        self.size = 0
        self.map: mmap.mmap | None = None
        if size:
            self.resize(size, grow_file=True)

    @classmethod
    def create(cls, size: int) -> Arena:
        return cls(os.memfd_create("ortserve-arena", 0), size)

    def resize(self, size: int, grow_file: bool = False) -> None:
        """Map ``size`` bytes (the side that owns the file makes it that big first)."""
        if size == self.size:
            return
        if grow_file:
            os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)  # the old map goes when its last view does
        self.size = size

    def close(self) -> None:
        self.map = None
        os.close(self.fd)


def aligned(offset: int) -> int:
    return (offset + ALIGN - 1) // ALIGN * ALIGN


class Writer:
    """Places tensors in the arena from ``start`` on while they fit, else in the payload."""

    def __init__(self, arena: Arena, start: int = 0) -> None:
        self.arena = arena
        self.offset = start
        self.payload = bytearray()
        self.overflow = 0  # bytes that did not fit in the arena

    def put(self, name: str, array: Array) -> Descriptor:
        if array.dtype.kind in "OSU":
            data = serialize_bytes(array)
            return self._payload(name, "O", array.shape, data)
        begin = aligned(self.offset)
        nbytes = array.nbytes
        if self.arena.map is not None and begin + nbytes <= self.arena.size:
            target = np.ndarray(array.shape, array.dtype, self.arena.map, begin)
            target[...] = array
            self.offset = begin + nbytes
            return [name, array.dtype.str, array.shape, "a", begin, nbytes]
        self.overflow += nbytes
        return self._payload(name, array.dtype.str, array.shape, np.ascontiguousarray(array).data)

    def put_joined(self, name: str, parts: list[Array]) -> Descriptor:
        """Several arrays joined along the first dim, written straight into the arena."""
        if len(parts) == 1 or parts[0].dtype.kind in "OSU":
            return self.put(name, parts[0] if len(parts) == 1 else np.concatenate(parts))
        first = parts[0]
        shape = (sum(p.shape[0] for p in parts), *first.shape[1:])
        nbytes = int(np.prod(shape, dtype=np.int64)) * first.dtype.itemsize
        begin = aligned(self.offset)
        if self.arena.map is not None and begin + nbytes <= self.arena.size:
            target = np.ndarray(shape, first.dtype, self.arena.map, begin)
            np.concatenate(parts, out=target)
            self.offset = begin + nbytes
            return [name, first.dtype.str, shape, "a", begin, nbytes]
        return self.put(name, np.concatenate(parts))

    def _payload(self, name: str, dtype: str, shape: Iterable[int], data: Any) -> Descriptor:
        begin = len(self.payload)
        self.payload += data
        return [name, dtype, tuple(shape), "p", begin, len(self.payload) - begin]


def read(descriptor: Descriptor, arena: Arena, payload: Payload, copy: bool) -> tuple[str, Array]:
    """The array a descriptor names; ``copy`` takes arena data out of the shared region."""
    name, dtype, shape, where, offset, nbytes = descriptor
    shape = tuple(shape)
    if where == "a":
        assert arena.map is not None
        source: Any = memoryview(arena.map)[offset : offset + nbytes]
    else:
        source = memoryview(payload)[offset : offset + nbytes]
    if dtype == "O":
        count = int(np.prod(shape, dtype=np.int64))
        return name, deserialize_bytes(source, count, f'tensor "{name}"').reshape(shape)
    array = np.frombuffer(source, dtype=np.dtype(dtype)).reshape(shape)
    return name, array.copy() if copy and where == "a" else array
