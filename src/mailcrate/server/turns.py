"""Sharing the event loop between the API calls run on it and the ones run in threads.

With SQLite, bounded reads (:data:`mailcrate.server.dispatch.INLINE_TARGETS`) run on the event
loop: handing a sub-millisecond call to a thread and back costs as much CPU as the call. Every
other API call (Start, Cancel, IAM, KMS...) runs in a thread, and its answer goes out only when
the loop gets to it: the thread's result is seen in one loop turn and its task resumes in the
next. Under load, one turn ran every waiting read back to back: with 50 clients, 40 of them
reading, a turn took ~30 ms, and StartMailboxExportJob had p50 270-350 ms and p99 over 1 s, even
when it failed validation after 0.3 ms in its thread (issue 18; measured in the handler: ~135 ms
from arrival to the thread, ~55 ms from the thread's end to the loop's answer; BENCHMARKS.md).

:class:`LoopShare` fixes both ends:

* Threaded calls go straight to an executor (:meth:`LoopShare.in_thread`): one hop in, one hop
  back. anyio's ``to_thread.run_sync`` with a ``CapacityLimiter`` took two loop turns on the way
  in (its checkpoints) and held the limiter's token while its result waited for the loop, so
  calls queued behind the token for whole turns.
* While any threaded call is in flight, reads run on the loop in turns of at most
  :data:`INLINE_BUDGET` seconds (:meth:`LoopShare.inline`): first come, first served, one turn per
  loop iteration, with a pause for the GIL between turns (:data:`GIL_HANDOFF`), so a thread runs
  and its answer waits a few milliseconds for the loop, not every queued read. With no threaded
  call in flight (a read-only load) a read runs at once, as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds of inline reads the loop runs per iteration while threaded calls are in flight: long
#: enough to run a few reads (~0.3-0.7 ms each) per turn, short enough that a threaded call's
#: answer and its thread's GIL share wait only a few ms for the loop.
INLINE_BUDGET = 0.002

#: Seconds the loop sleeps between two turns while threaded calls are in flight. A thread waiting
#: for the GIL asks the holder to drop it only after 5 ms (``sys.getswitchinterval()``) in which
#: no thread took it; the loop releases and retakes the GIL in every iteration's ``select``, so
#: with short turns that never happened and a thread could wait until the queue was empty (400
#: queued 1 ms reads: a 5 ms sleep in a thread ended after 0.31 s). Sleeping this long lets the
#: waiting thread take the GIL (it then ended after 5 ms); the loop loses 5 % of its time while
#: threaded calls and queued reads are both there, never otherwise.
GIL_HANDOFF = 0.0001

#: The turn's budget while a thread holds the database's write lock (``writing()``): a Start's
#: transaction releases the GIL at each of its ~12 SQLite calls, and at each release the loop took
#: it for a whole 2 ms turn, so a transaction of 4 ms of CPU held the lock for ~8 ms (p50) and the
#: other writers queued behind it (measured inside serve under the Start-under-load mix: created
#: Starts waited 15 ms p50 and 200 ms p99 for the lock, BENCHMARKS.md). Shorter turns then give
#: the lock holder the GIL back sooner; reads still progress, one or two per turn.
WRITER_BUDGET = 0.0003


class LoopShare:
    """The API threads of one server, and the turns its inline reads take on the loop."""

    def __init__(
        self,
        threads: int,
        budget: float = INLINE_BUDGET,
        writing: Callable[[], bool] = lambda: False,
    ) -> None:
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="api")
        self.budget = budget
        self.writing = writing  # whether a thread holds the database's write lock now
        self.in_flight = 0  # threaded calls not yet answered
        self._queue: deque[tuple[contextvars.Context, Callable[[], Any], asyncio.Future[Any]]] = deque()
        self._draining = False

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in an API thread, in a copy of the caller's context (the request id and
        principal the logs show are per call, never left over from the thread's last call)."""
        self.in_flight += 1
        try:
            ctx = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(self.executor, ctx.run, fn, *args)
        finally:
            self.in_flight -= 1

    async def inline(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the loop: at once when no threaded call waits for the loop, else in
        its turn (see the module docstring)."""
        if not self.in_flight and not self._queue:
            return fn(*args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((contextvars.copy_context(), lambda: fn(*args), future))
        if not self._draining:
            self._draining = True
            loop.call_soon(self._turn)
        return await future

    def _turn(self) -> None:
        """Run queued reads for up to ``budget`` seconds; the rest wait for the next iteration."""
        end = time.perf_counter() + (min(self.budget, WRITER_BUDGET) if self.writing() else self.budget)
        while self._queue:
            ctx, call, future = self._queue.popleft()
            if not future.cancelled():
                try:
                    future.set_result(ctx.run(call))
                except Exception as exc:
                    future.set_exception(exc)
            if time.perf_counter() >= end:
                break
        if self._queue:
            if self.in_flight:
                time.sleep(GIL_HANDOFF)
            asyncio.get_running_loop().call_soon(self._turn)
        else:
            self._draining = False

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
