"""A WebSocket connection's outgoing text frames, in order, for senders that must not wait on it.

The live fan-out (resolvers.live_fanout) sends one event to thousands of connections from one task: it
cannot await each connection in turn, since a client that stops reading would stall everyone after it. A
send normally completes without waiting (the socket takes the frame), so `post` runs it at once; only a send
that does wait (the socket's buffer is full) is finished by a task of this connection, and later frames
queue behind it, up to `limit`. Beyond that, `post` refuses and the sender leaves that connection to its own
operation, whose sends wait (`send`) as they always did. Every frame of the connection goes through here,
so a refused or queued frame is never overtaken.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, cast


class Outbox:
    def __init__(self, send_text: Callable[[str], Coroutine[Any, Any, None]], limit: int = 256) -> None:
        self._send_text = send_text
        self._limit = limit
        self._queue: deque[str] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._error: Exception | None = None

    def post(self, text: str) -> bool:
        """Send `text` without waiting for the client: False (nothing sent) when the connection is gone or
        `limit` frames are already waiting."""
        return self._offer(text, bounded=True)

    async def send(self, text: str) -> None:
        """Send `text` after what is queued, and wait until the connection took it (and everything queued
        after it). Raises what the send raised when the connection is gone."""
        self._offer(text, bounded=False)
        if self._writer is not None:
            await asyncio.shield(self._writer)
        if self._error is not None:
            raise self._error

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """A send failed: the connection is gone (its operations are ended by the protocol's shutdown)."""
        return self._error is not None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()

    def _offer(self, text: str, *, bounded: bool) -> bool:
        if self._error is not None:
            return False
        if self._writer is not None:
            if bounded and len(self._queue) >= self._limit:
                return False
            self._queue.append(text)
            return True
        try:
            rest = _until_blocked(self._send_text(text))
        except Exception as exc:  # the connection is gone
            self._error = exc
            return False
        if rest is not None:
            self._writer = asyncio.create_task(self._write(rest))
        return True

    async def _write(self, rest: Awaitable[None]) -> None:
        try:
            await rest
            while self._queue:
                await self._send_text(self._queue.popleft())
        except Exception as exc:
            self._error = exc
            self._queue.clear()
        finally:
            self._writer = None


def _until_blocked(coroutine: Coroutine[Any, Any, None]) -> Awaitable[None] | None:
    """Run `coroutine` in the caller's step until it completes (None) or first waits: then an awaitable that
    finishes it (a task awaits it). A send that completes at once costs no task and no turn of the loop.

    This is how `await` drives a coroutine: what it yields (the future it waits on) is handed to the task that
    awaits the rest, which resumes it once that future is done."""
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    except BaseException:
        coroutine.close()
        raise
    return cast(Awaitable[None], _finish(coroutine, waiting_on))


@types.coroutine
def _finish(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    try:
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # cancelled (or thrown into) while waiting: the coroutine's business
                waiting_on = coroutine.throw(exc)
            else:
                waiting_on = coroutine.send(sent)
    except StopIteration:
        return
    finally:
        with contextlib.suppress(RuntimeError):
            coroutine.close()
