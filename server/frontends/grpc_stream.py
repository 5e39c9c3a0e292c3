"""ModelStreamInfer: one bidirectional gRPC stream of V2 requests and their answers."""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import DecodeError

from .._proto import grpc_service_pb2 as pb
from ..errors import ServeError
from ..pending import Started
from ..service import InferenceService
from . import grpc_codec, grpc_wire


class InferenceStream:
    """One ModelStreamInfer call: requests in, answers out as each finishes (any order).

    Every request is a ModelInferRequest joining the same batches as unary calls; every answer
    a ModelStreamInferResponse carrying the request's id, with errors in ``error_message`` so
    the stream stays open. Requests are started as they are read (no task per request); a
    single writer sends the answers.

    Answers wait for the writer while the client does not read them. Once they hold more than
    ``backlog_limit`` bytes, the stream reads no more requests until the writer has brought
    them back under it: HTTP/2 flow control then holds the client's sends, and the server's
    memory stays bounded.
    """

    def __init__(self, service: InferenceService, context: Any, backlog_limit: int) -> None:
        self.service = service
        self.context = context
        self.answers: collections.deque[bytes | None] = collections.deque()  # None: the end
        self.wakeup: asyncio.Future[None] | None = None  # set while the writer waits
        self.backlog = 0  # bytes of answers not yet written
        self.backlog_limit = backlog_limit
        self.drained: asyncio.Future[None] | None = None  # set while the reader waits
        self.outstanding = 0
        self.reading = True
        self.pending: dict[int, Started] = {}  # by ticket: the requests still running
        self.tickets = 0

    async def serve(self, messages: AsyncIterator[bytes]) -> None:
        reader = asyncio.create_task(self._read(messages))
        answers, write = self.answers, self.context.write
        loop = asyncio.get_running_loop()
        try:
            while True:
                while answers:
                    answer = answers.popleft()
                    if answer is None:
                        return
                    await write(answer)
                    self.backlog -= len(answer)
                    drained = self.drained
                    if drained is not None and self.backlog <= self.backlog_limit:
                        self.drained = None
                        if not drained.done():
                            drained.set_result(None)
                self.wakeup = loop.create_future()
                await self.wakeup
        finally:
            reader.cancel()
            for pending in list(self.pending.values()):
                pending.withdraw()  # the client is gone: nobody to answer

    async def _read(self, messages: AsyncIterator[bytes]) -> None:
        async for data in messages:
            if self.service.must_wait_for_log:
                try:
                    await self.service.wait_for_log()
                except ServeError as error:
                    self.outstanding += 1
                    self._answer(_stream_error(str(error), "", ""))
                    continue
            self._start(data)
            if self.backlog > self.backlog_limit:  # the client is not reading its answers
                self.drained = asyncio.get_running_loop().create_future()
                await self.drained
        self.reading = False
        if self.outstanding == 0:
            self._put(None)

    def _start(self, data: bytes) -> None:
        self.outstanding += 1
        try:
            message = pb.ModelInferRequest.FromString(data)
        except DecodeError as error:
            self._answer(_stream_error(f"malformed request: {error}", "", ""))
            return
        request_id, model_name = message.id, message.model_name
        try:
            request = grpc_codec.decode_request(message)
        except ServeError as error:
            self._answer(_stream_error(str(error), request_id, model_name))
            return
        request.protocol = "grpc-stream"
        request.timeout_s = self.context.time_remaining()
        ticket = self.tickets = self.tickets + 1
        pending = self.service.submit(
            request, functools.partial(self._finished, request_id, model_name, ticket)
        )
        if pending is not None and not pending.is_done:
            self.pending[ticket] = pending

    def _finished(self, request_id: str, model_name: str, ticket: int, outcome: Any) -> None:
        self.pending.pop(ticket, None)
        if isinstance(outcome, ServeError):
            self._answer(_stream_error(str(outcome), request_id, model_name))
            return
        try:
            response = grpc_wire.encode_response(outcome)
        except ServeError as error:
            self._answer(_stream_error(str(error), request_id, model_name))
            return
        self._answer(grpc_wire.stream_response(response))

    def _answer(self, answer: bytes) -> None:
        self.outstanding -= 1
        self._put(answer)
        if not self.reading and self.outstanding == 0:
            self._put(None)

    def _put(self, answer: bytes | None) -> None:
        self.answers.append(answer)
        if answer is not None:
            self.backlog += len(answer)
        wakeup = self.wakeup
        if wakeup is not None:
            self.wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)


def _stream_error(text: str, request_id: str, model_name: str) -> bytes:
    answer: bytes = pb.ModelStreamInferResponse(
        error_message=text,
        infer_response=pb.ModelInferResponse(id=request_id, model_name=model_name),
    ).SerializeToString()
    return answer
