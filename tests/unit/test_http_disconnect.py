"""DisconnectWatch: a waiting HTTP request is cancelled once its client has gone, and only then."""

from __future__ import annotations

import asyncio
from typing import Any

from server.frontends.http_disconnect import DisconnectWatch

AFTER_S = 0.02


class Client:
    """An ASGI ``receive`` whose connection the test closes, or a request that sends more."""

    def __init__(self) -> None:
        self.calls = 0
        self.message: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def receive(self) -> dict[str, Any]:
        self.calls += 1
        return await self.message

    def hang_up(self) -> None:
        self.message.set_result({"type": "http.disconnect"})


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_request_answered_in_time_is_never_watched():
    async def main() -> None:
        watch = DisconnectWatch(AFTER_S)
        client = Client()
        answer = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(AFTER_S / 4, answer.set_result, "answer")
        assert await watch.await_answer(client.receive, answer) == "answer"
        await asyncio.sleep(AFTER_S * 3)
        assert client.calls == 0
        assert len(watch) == 0

    run(main())


def test_a_client_that_hangs_up_while_waiting_cancels_its_request():
    async def main() -> None:
        watch = DisconnectWatch(AFTER_S)
        staying, leaving = Client(), Client()
        answers = [asyncio.get_running_loop().create_future() for _ in range(2)]
        waits = [
            asyncio.ensure_future(watch.await_answer(c.receive, a))
            for c, a in zip((staying, leaving), answers, strict=True)
        ]
        await asyncio.sleep(AFTER_S * 3)
        assert staying.calls == leaving.calls == 1  # both waited long enough to be watched
        leaving.hang_up()
        assert await waits[1] is None
        assert answers[1].cancelled()  # the cancel reached what the request awaited
        assert not waits[0].done()
        answers[0].set_result("answer")
        assert await waits[0] == "answer"
        assert len(watch) == 0

    run(main())


def test_a_cancel_that_is_not_a_hang_up_still_propagates():
    async def main() -> None:
        watch = DisconnectWatch(AFTER_S)
        answer = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(watch.await_answer(Client().receive, answer))
        await asyncio.sleep(AFTER_S * 3)
        waiting.cancel()  # the server shutting down, say
        try:
            await waiting
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the cancel was swallowed")
        assert len(watch) == 0

    run(main())


def test_a_receive_that_brings_no_hang_up_leaves_the_request_alone():
    async def main() -> None:
        watch = DisconnectWatch(AFTER_S)
        client = Client()
        answer = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(watch.await_answer(client.receive, answer))
        await asyncio.sleep(AFTER_S * 3)
        client.message.set_result({"type": "http.request", "body": b"", "more_body": False})
        await asyncio.sleep(AFTER_S)
        assert not waiting.done()
        answer.set_result("answer")
        assert await waiting == "answer"

    run(main())
